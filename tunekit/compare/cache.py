"""Evaluations shared across the strategies of a comparison, keyed by the config's canonical JSON.

The same config proposed by two strategies (default int8 is proposed by nearly all) is built and
scored once. The cache may live in a JSON file, so a later comparison on the same workload (same
model, data, criterion and objectives: the caller's responsibility) reuses it too.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tunekit.errors import ConfigError
from tunekit.history import Trial
from tunekit.space import QuantConfig


class EvaluationCache:
    """``QuantConfig.to_json() -> Trial`` attributes; ``path`` None keeps it in memory only."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._trials: dict[str, dict] = {}
        if path is not None and path.exists():
            self._trials = _read(path)

    def __len__(self) -> int:
        return len(self._trials)

    def get(self, config: QuantConfig, number: int) -> Trial | None:
        """The cached trial of ``config``, renumbered as trial ``number`` of the asking run."""
        attrs = self._trials.get(config.to_json())
        return None if attrs is None else replace(Trial.from_attrs(number, attrs), number=number)

    def put(self, trial: Trial) -> None:
        self._trials[trial.config.to_json()] = trial.to_attrs()

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self._trials, indent=0, sort_keys=True),
                                 encoding="utf-8")


def _read(path: Path) -> dict[str, dict]:
    """The cache file's trials; a ConfigError naming ``--cache`` if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError("--cache", f"cannot read {str(path)!r} as an evaluation cache ({exc}); "
                                     "delete it or give another --cache file") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError("--cache", f"{str(path)!r} is not a tunekit compare cache (a JSON "
                                     "object of trials); give another --cache file")
    return data


__all__ = ["EvaluationCache"]
