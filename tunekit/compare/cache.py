"""Evaluations shared across the strategies of a comparison, keyed on what was evaluated.

The same config proposed by two strategies (default int8 is proposed by nearly all) is built and
scored once. A full evaluation is keyed by the config's canonical JSON and answers any later
request for that config. A candidate stopped early (``evaluation.early_reject``) holds only a
bound of its metric, valid for the question it was asked: it is keyed by the config *and* the
proposal's ``needed`` (``goal``, or the metric it had to beat), and answers only that same
question, so a strategy that reads exact metrics never gets a bound. The cache may live in a JSON
file, so a later comparison on the same workload (same model, data, criterion and objectives: the
caller's responsibility) reuses it too.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tunekit.errors import ConfigError
from tunekit.history import Trial
from tunekit.space import QuantConfig
from tunekit.strategy import Needed


class EvaluationCache:
    """``QuantConfig.to_json() -> Trial`` attributes; ``path`` None keeps it in memory only."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._trials: dict[str, dict] = {}
        if path is not None and path.exists():
            self._trials = _read(path)

    def __len__(self) -> int:
        return len(self._trials)

    def get(self, config: QuantConfig, number: int, needed: Needed = "exact") -> Trial | None:
        """The cached trial that answers ``config`` evaluated under ``needed``, renumbered as
        trial ``number`` of the asking run: a full evaluation, else one stopped early under the
        same ``needed``."""
        for key in (config.to_json(), _key(config, needed)):
            attrs = self._trials.get(key)
            if attrs is not None and (key != config.to_json() or not _bounded(attrs)):
                return replace(Trial.from_attrs(number, attrs), number=number)
        return None

    def put(self, trial: Trial, needed: Needed = "exact") -> None:
        """Keep ``trial``, evaluated under ``needed``: under its config alone when its metric is
        exact, else under its config and ``needed``."""
        key = _key(trial.config, needed) if trial.details.get("early_rejected") \
            else trial.config.to_json()
        self._trials[key] = trial.to_attrs()

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self._trials, indent=0, sort_keys=True),
                                 encoding="utf-8")


def _key(config: QuantConfig, needed: Needed) -> str:
    """The key of an early-rejected evaluation: the config and what it had to show."""
    return f"{config.to_json()} needed={json.dumps(needed)}"


def _bounded(attrs: dict) -> bool:
    """Whether a stored trial's metric is an early-rejection bound (an older cache may hold one
    under its config alone)."""
    return bool((attrs.get("details") or {}).get("early_rejected"))


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
