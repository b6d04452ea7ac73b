"""tunekit.peak_rss: the child's /proc figures and the parent's run of it, with no framework."""

from __future__ import annotations

import pytest

from tunekit import peak_rss
from tunekit.errors import TrialError

pytestmark = pytest.mark.skipif(not peak_rss.CLEAR_REFS.exists(), reason="needs Linux /proc")

ALLOCATE = r"""
import sys

from tunekit.peak_rss import print_peak, reset_peak, status

reset_peak()
before = status("VmRSS")
block = bytearray(int(sys.argv[1]) * 2**20)  # zero-filled: every page is touched
del block
print("noise before the figure")
print_peak(before)
"""


def test_child_reports_the_peak_above_its_start() -> None:
    small = peak_rss.run_child(ALLOCATE, ["8"], timeout=60)
    large = peak_rss.run_child(ALLOCATE, ["64"], timeout=60)
    assert abs((large - small) - 56 * 2**20) <= 8 * 2**20  # the 56 MiB more it allocated


def test_failing_child_fails_the_trial_with_its_last_line() -> None:
    with pytest.raises(TrialError, match="fresh process failed: ValueError: no model here"):
        peak_rss.run_child("raise ValueError('no model here')", [], timeout=60)
