"""Stopping on failing candidates (tunekit.failures) and framework detection by the installed
adaptors (Adaptor.handles)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tunekit.api import guess_framework
from tunekit.errors import ConfigError, DataError, TuningFailed
from tunekit.failures import FailureWatch
from tunekit.history import Trial, TrialState
from tunekit.result import table_cell
from tunekit.space import QuantConfig


def trial(number: int, error: str | None = None) -> Trial:
    state = TrialState.FAILED if error else TrialState.COMPLETE
    return Trial(number, QuantConfig({}), state, metric=None if error else 1.0, error=error)


def test_the_first_two_failing_alike_stop() -> None:
    watch = FailureWatch()
    watch.record(trial(0, "boom"))
    watch.check()
    watch.record(trial(1, "boom"), DataError("boom"))
    with pytest.raises(DataError, match="first 2 candidates .* same error.*no model: boom "
                                        r"\(when only some configs fail so, keep the op"):
        watch.check()


def test_different_first_errors_stop_at_the_third_failure() -> None:
    watch = FailureWatch()
    for number in range(2):
        watch.record(trial(number, f"error {number}"))
        watch.check()
    watch.record(trial(2, "error 2"))
    with pytest.raises(TuningFailed, match="3 of 3 candidates failed .*failure_share: 1"):
        watch.check()


def test_a_share_below_one_stops_a_mostly_failing_run() -> None:
    watch = FailureWatch(share=0.5)
    for t in (trial(0), trial(1, "a"), trial(2), trial(3, "b")):
        watch.record(t)
    with pytest.raises(TuningFailed, match="2 of 4"):
        watch.check()
    lenient = FailureWatch()
    for t in (trial(0), trial(1, "a"), trial(2, "a"), trial(3, "a")):
        lenient.record(t)
    lenient.check()  # one candidate was built: the default share (all) is not reached
    lenient.check_end()


def test_a_run_that_built_nothing_ends_with_its_error() -> None:
    watch = FailureWatch()
    watch.record(trial(0, "only one trial, and it failed"))
    with pytest.raises(TuningFailed, match="every candidate failed .*only one trial"):
        watch.check_end()


def test_report_cells_keep_the_whole_message() -> None:
    text = "a | b\n" + "x" * 300
    cell = table_cell(text)
    assert "\n" not in cell and cell.endswith("x" * 300) and "a \\| b<br>" in cell


def test_adaptors_claim_their_models_and_files(tmp_path: Path) -> None:
    class MyNet(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    assert guess_framework(MyNet()) == "pytorch"
    assert guess_framework(torch.fx.symbolic_trace(MyNet())) == "pytorch"
    for name in ("model.pt", "model.pt2"):
        (tmp_path / name).write_bytes(b"")
        assert guess_framework(tmp_path / name) == "pytorch"
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    (tmp_path / "model.keras").write_bytes(b"")
    had_tf = "tensorflow" in sys.modules
    assert guess_framework(saved) == guess_framework(str(tmp_path / "model.keras")) \
        == "tensorflow"
    assert ("tensorflow" in sys.modules) == had_tf  # answered without importing TensorFlow
    with pytest.raises(ConfigError, match="no installed adaptor handles 'nothing.txt'"):
        guess_framework("nothing.txt")


@pytest.mark.parametrize("raw, where", [
    ({"tuning": {"exit_policy": {"failure_share": 0}}}, "tuning.exit_policy.failure_share"),
    ({"data": {"pairs": "both"}}, "data.pairs"),
    ({"data": {"label_keys": "y"}}, "data"),
])
def test_data_and_failure_settings_are_checked(raw: dict, where: str) -> None:
    from tunekit import config

    with pytest.raises(ConfigError) as caught:
        config.parse({"model": {"framework": "pytorch", "factory": "m:f"}, **raw})
    assert caught.value.path.startswith(where)
