"""The workspace folder: where a tuning keeps its history, best model, recipe and report.

Layout: ``history.log`` (optuna journal; or an external ``--storage``),
``best_model<suffix>`` (framework-native, safe format), ``best_config.json`` (the recipe),
``result.json`` (machine-readable summary), ``report.md`` and ``report.html`` (the same report as
a self-contained page with figures, drawn from ``result.json``). A new tuning in a workspace that
holds an earlier one moves the old files to ``previous/<timestamp>/`` instead of deleting them:
only tunekit's own files (:data:`OWN`), whatever the storage (an external ``--storage`` leaves no
history here, but the best model, recipe and reports are still moved), so a user's files that
share the folder stay where they are.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tunekit.errors import ConfigError

HISTORY = "history.log"
#: The history of a tuning with local workers (``--workers N``): an SQLite database, since
#: optuna's heartbeats, which re-queue the trials of a dead worker, need a database storage.
HISTORY_DB = "history.db"
RECIPE = "best_config.json"
RESULT = "result.json"
REPORT = "report.md"
HTML_REPORT = "report.html"
SPACE = "space.json"
BEST_MODEL = "best_model"
#: What a tuning or a benchmark writes here: the names (``best_model*``, ``history.*``: any
#: suffix) that archiving moves; nothing else in the folder is touched.
OWN = ("history.", "best_model", RECIPE, RESULT, REPORT, HTML_REPORT, SPACE, "calibration",
       "workers", "benchmark.json")

log = logging.getLogger("tunekit")


class Workspace:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def prepare(self, resume: bool) -> None:
        """Create the folder (checking it is writable); archive an earlier tuning unless resuming."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError("tuning.workspace.path",
                              f"cannot write to {str(self.path)!r} ({exc.strerror or exc}); "
                              "choose a writable folder with --workspace") from exc
        self._drop_partials()
        if not resume and self.own_files():
            self._archive()

    def _drop_partials(self) -> None:
        """Remove what a killed process was writing (``<output>….tmp``): the finished file
        beside it is whole, since every output is written aside and then swapped in."""
        outputs = (BEST_MODEL, RECIPE, RESULT, REPORT, HTML_REPORT, SPACE)
        for item in self.path.glob("*.tmp"):
            if item.is_dir() and item.name.startswith(outputs):
                shutil.rmtree(item)
            elif item.name.startswith(outputs):
                item.unlink()

    def own_files(self) -> list[Path]:
        """tunekit's files in the folder (see :data:`OWN`), which a new tuning archives."""
        return sorted(item for item in self.path.iterdir()
                      if item.name.startswith(OWN) and not item.name.endswith(".tmp"))

    def _archive(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path / "previous" / stamp
        suffix = 1
        while target.exists():
            target = target.with_name(f"{stamp}-{suffix}")
            suffix += 1
        target.mkdir(parents=True)
        moved = self.own_files()
        for item in moved:
            shutil.move(str(item), str(target / item.name))
        log.warning("the earlier tuning in %s (%d file(s)) moved to %s", self.path, len(moved),
                    target)

    def file(self, name: str) -> Path:
        return self.path / name

    def model_file(self, suffix: str) -> Path:
        return self.path / f"{BEST_MODEL}{suffix}"

    def write_json(self, name: str, data: Any) -> None:
        """Write atomically: a crash mid-write leaves the previous file intact."""
        target = self.path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, target)

    def write_text(self, name: str, text: str) -> None:
        target = self.path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)

    def read_json(self, name: str) -> Any:
        path = self.path / name
        if not path.exists():
            raise ConfigError("workspace", f"{str(path)!r} does not exist; is {str(self.path)!r} "
                                           "a tunekit workspace of a finished tuning?")
        return json.loads(path.read_text(encoding="utf-8"))
