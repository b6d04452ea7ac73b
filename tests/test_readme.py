"""The README's two commands are the contract with a new user; CI must run the same test line."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    return [line for block in blocks for line in block.splitlines()
            if line.startswith("python3 -m venv")]


def test_readme_has_example_and_test_commands() -> None:
    example, test = readme_commands()[:2]
    assert "tunekit tune examples/digits_pytorch/config.yaml" in example
    assert "pytest" in test
    assert "torch==2.13.0" in example and "torch==2.13.0" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test = readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci
