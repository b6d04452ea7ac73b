"""optuna-dashboard reads a workspace's history as it is, and shows each op's precision as a
trial parameter (the whole config stays in the user attributes, which replay reads)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tunekit.history import Trial, TrialState
from tunekit.store import Store
from tunekit.space import OpConfig, OpKey, QuantConfig

dashboard = pytest.importorskip("optuna_dashboard")

CONV, FC = OpKey("features.conv1", "Conv2d"), OpKey("fc", "Linear")
INT8 = OpConfig("int8", "static", "asym", "per_channel", "minmax")
CONFIGS = [QuantConfig({CONV: INT8, FC: INT8}), QuantConfig({CONV: OpConfig("fp32"), FC: INT8})]


def _get(app: Any, path: str) -> Any:
    """A GET through the dashboard's WSGI app, as its web page asks it."""
    status: list[str] = []
    body = app({"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
                "SERVER_NAME": "test", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO()},
               lambda code, headers, *exc: status.append(code))
    assert status[0].startswith("200"), (status, b"".join(body)[:500])
    return json.loads(b"".join(body))


def _tune(store: Store) -> None:
    for number, config in enumerate(CONFIGS):
        store.begin(config)
        store.finish(Trial(number, config, TrialState.COMPLETE, metric=0.8 + 0.1 * number,
                           accepted=bool(number)))


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_the_dashboard_loads_the_history_with_precisions_as_parameters(
        tmp_path: Path, kind: str) -> None:
    path = tmp_path / ("history.log" if kind == "journal" else "history.db")
    url = str(path) if kind == "journal" else f"sqlite:///{path}"
    _tune(Store(url, "tunekit", "maximize"))
    app = dashboard.wsgi(url)  # what `optuna-dashboard <url>` serves (README)
    [study] = _get(app, "/api/studies")["study_summaries"]
    trials = _get(app, f"/api/studies/{study['study_id']}")["trials"]
    params = [{p["name"]: p["param_external_value"] for p in t["params"]} for t in trials]
    assert params == [{"features.conv1.precision": "int8", "fc.precision": "int8"},
                      {"features.conv1.precision": "fp32", "fc.precision": "int8"}]
    stored = Store(url, "tunekit", "maximize").load()  # resume reads the configs as before
    assert [t.config for t in stored.trials] == CONFIGS
    assert [t.metric for t in stored.trials] == pytest.approx([0.8, 0.9])
