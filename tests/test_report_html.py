"""report.html: written beside report.md by every tuning, self-contained, every section present,
failure messages whole and escaped; ``tunekit report --html``; and, where Chromium is installed,
the page of a real digits tuning rendered in a headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path
from typing import Any

import pytest

from tunekit import cli, config
from tunekit.changes import encode
from tunekit.errors import TrialError, TuningFailed
from tunekit.evaluate import Evaluator
from tunekit.htmlreport import render
from tunekit.htmlreport.views import ReportView
from tunekit.metrics.topk import TopK
from tunekit.space import OpConfig, OpKey, QuantConfig
from tunekit.speed import Speed
from tunekit.strategies.basic import BasicStrategy
from tunekit.testing import DIGITS_OPS, FakeAdaptor, FakeModel, ModelledLatency, fake_data
from tunekit.tuner import Parts, Tuner

ROOT = Path(__file__).resolve().parents[1]
DATA = fake_data(500, 100)
#: a failure message that is long, multi-line and holds markup: the page must show it whole
HOSTILE = "bf16 conv2 broke: <script>alert('x')</script> & more\n" + "detail " * 80 + "END"
SECTIONS = ("summary", "trials", "sensitivity", "precisions", "tradeoff", "failures")


class BrokenBf16Conv2(FakeAdaptor):
    """The digits ops with conv1 a culprit in int8 and conv2 unbuildable in bf16."""

    def quantize(self, model, config, calib_data):  # type: ignore[no-untyped-def]
        if config.precision_of(DIGITS_OPS[1]) == "bf16":
            raise TrialError(HOSTILE)
        return super().quantize(model, config, calib_data)


def tune(tmp_path: Path) -> Path:
    """A FakeAdaptor tuning that explores past the first pass (timeout > 0): single-op
    fallbacks, a failure, a Pareto front; returns its workspace."""
    raw = {"model": {"framework": "pytorch", "factory": "m:f"},
           "tuning": {"accuracy_criterion": {"absolute": 0.0}, "exit_policy": {"timeout": 60},
                      "workspace": {"path": str(tmp_path / "ws")}}}
    spec = config.parse(raw, check_plugins=False)
    adaptor = BrokenBf16Conv2(ops=DIGITS_OPS, base_accuracy=0.998, drops={"conv1": 0.2, "fc2": 0.01})
    parts = Parts(spec, adaptor, FakeModel(), DATA, Evaluator(adaptor, DATA, TopK(), None),
                  BasicStrategy(), [("latency", ModelledLatency(), 1.0)])
    Tuner(parts).run()
    return tmp_path / "ws"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tune(tmp_path_factory.mktemp("report"))


def test_every_tuning_writes_a_self_contained_page(workspace: Path) -> None:
    page = (workspace / "report.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'id="{section}"' in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "<img" not in page  # figures drawn as SVG text
    figures = re.findall(r"<figure><svg [^>]*><title>([^<]*)</title>", page)
    assert figures == ["metric and speed per trial", "per-op sensitivity",
                       "accuracy against speed-up, Pareto front"]
    front = json.loads((workspace / "result.json").read_text())["pareto_front"]
    tradeoff = page.split('id="tradeoff"')[1]
    assert front and all(f">trial {entry['trial']}</text>" in tradeoff for entry in front)


def test_drawing_the_page_imports_no_plotting_library(workspace: Path) -> None:
    """Every tuning draws the page: matplotlib's import and PNG encoding cost 0.3–0.8 s each
    time. A fresh interpreter, since other tests import matplotlib into this one."""
    code = ("import json, sys; from tunekit.htmlreport import render; "
            f"page = render(json.load(open({str(workspace / 'result.json')!r}))); "
            "print(page.count('<svg '), sorted(m for m in sys.modules if 'matplotlib' in m))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert run.stdout.split() == ["3", "[]"]


def test_a_failure_message_is_whole_and_escaped(workspace: Path) -> None:
    page = (workspace / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page
    escaped = HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
        .replace("'", "&#x27;")
    assert escaped in page  # untruncated, line breaks kept inside <pre>
    record = json.loads((workspace / "result.json").read_text())
    assert [t["error"] for t in record["history"] if t["failed"]] == [HOSTILE]


def test_per_op_views(workspace: Path) -> None:
    view = ReportView(json.loads((workspace / "result.json").read_text()))
    measured = view.fallbacks
    assert (measured[0].op.name, measured[0].trial, measured[0].reference) == ("conv1", 5, 0)
    assert measured[0].metric_change == pytest.approx(0.2, abs=0.01)  # costliest op first
    conv2 = [(f.precision, f.metric_change) for f in measured if f.op.name == "conv2"]
    assert conv2 == [("fp32", 0.0)]  # its bf16 trial failed: only the fp32 one is measured
    fell = [row.op.name for row in view.final_ops() if row.fell_back]
    assert fell == [n for n, p in view.data["fallback_ops"].items()] and "conv1" in fell
    page = (workspace / "report.html").read_text(encoding="utf-8")
    row = re.search(r'<tr class="fallback"><td>conv1</td>.*?</tr>', page)
    assert row and "+0.2000 (trial 5 vs 0)" in row.group(0)  # what conv1's fallback won back
    speedup = view.speedup(view.best)  # type: ignore[arg-type]
    assert speedup is not None and speedup > 1  # ModelledLatency: int8 ops are faster


def test_single_op_pairs_need_every_other_op_equal() -> None:
    """Two ops swapping configs is no single-op pair; an op left at a bf16 default (AMP) is
    the wider side of its pair."""
    x, y = OpKey("x", "Linear"), OpKey("y", "Linear")
    hist = OpConfig("int8", "static", "asym", "per_channel", "histogram")

    def record(number: int, metric: float, **changes: OpConfig) -> dict[str, Any]:
        ops = {OpKey(n, "Linear"): c for n, c in changes.items()}
        return {"trial": number, "metric": metric, "accepted": False, "failed": False,
                "changes": encode(QuantConfig(ops), None)}

    data = {"baseline": 1.0, "target": 0.99, "best_trial": None,
            "op_types": {"x": "Linear", "y": "Linear"},
            "default_ops": QuantConfig({x: OpConfig("int8", "static", "asym", "per_channel",
                                                    "minmax"), y: OpConfig("bf16")}).to_list(),
            "history": [record(0, 0.5, x=hist, y=OpConfig("fp32")),
                        record(1, 0.6, x=OpConfig("fp32"), y=hist),
                        record(2, 0.7, y=OpConfig("int8", "static", "asym", "per_channel",
                                                  "minmax")),
                        record(3, 0.9)]}
    found = [(f.op.name, f.precision, f.trial, f.reference) for f in ReportView(data).fallbacks]
    assert found == [("y", "bf16", 3, 2)]


def test_proxy_scores_are_shown_when_the_strategy_recorded_them(workspace: Path) -> None:
    data = json.loads((workspace / "result.json").read_text())
    data["sensitivity"] = {"mse": {"conv1": 0.9, "fc2<b>": 0.1},
                           "hessian": {"conv1": 12.0, "conv2": 3.5}}
    page = render(data)
    assert "<h3>Proxy scores</h3>" in page and "fc2&lt;b&gt;" in page
    assert re.search(r"<th>mse</th><th>hessian</th>", page)
    rows = re.findall(r"<tr><td>([^<]+)</td>", page.split("Proxy scores")[1].split("</table>")[0])
    assert rows[0] == "conv1"  # most sensitive first


def test_a_timed_trial_shows_the_tunings_own_speed_figure(workspace: Path) -> None:
    """Where a trial was timed beside FP32, the page shows :class:`Speed` as the console and
    report.md do, disturbed timings flagged."""
    data = json.loads((workspace / "result.json").read_text())
    best = data["best_trial"]
    speed = Speed(model_ms=2.0, fp32_ms=9.0, batch_size=64, spread=0.3)
    data["history"][best]["speed"] = {"latency": speed.to_dict()}
    page = render(data)
    assert escape(speed.text()) in page  # the header's best-trial speed line
    assert f"<td class=\"num\">{speed.cell()}</td>" in page and "noisy" in speed.cell()


def test_cli_report_html(workspace: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "page.html"
    assert cli.main(["report", str(workspace), "--html", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == \
        (workspace / "report.html").read_text(encoding="utf-8")
    assert cli.main(["report", str(workspace), "--html", "--out", str(out)]) == cli.EXIT_USAGE
    assert "already exists; add --force" in capsys.readouterr().err
    assert cli.main(["report", str(workspace), "--html", "--out", str(out), "--force"]) == 0
    assert cli.main(["report", str(workspace), "--out", str(out)]) == cli.EXIT_USAGE


def test_cli_report_html_refuses_an_old_or_broken_result(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    (tmp_path / "result.json").write_text('{"met": true, "baseline": 1.0, "target": 1.0}')
    assert cli.main(["report", str(tmp_path), "--html"]) == cli.EXIT_USAGE
    assert "no trial history" in capsys.readouterr().err
    (tmp_path / "result.json").write_text('{"baseline": 1.0, "target": 1.0, "history": [{}]}')
    assert cli.main(["report", str(tmp_path), "--html"]) == cli.EXIT_USAGE
    assert "result.json: is damaged" in capsys.readouterr().err
    (tmp_path / "result.json").write_text("{not json")
    assert cli.main(["report", str(tmp_path), "--html"]) == cli.EXIT_USAGE
    assert "not valid JSON" in capsys.readouterr().err


def test_a_tuning_where_every_trial_failed_still_has_a_page(tmp_path: Path) -> None:
    raw = {"model": {"framework": "pytorch", "factory": "m:f"},
           "tuning": {"accuracy_criterion": {"relative": 0.01},
                      "exit_policy": {"max_trials": 3},
                      "workspace": {"path": str(tmp_path / "ws")}}}
    spec = config.parse(raw, check_plugins=False)
    adaptor = FakeAdaptor(ops=DIGITS_OPS, fails=lambda config: True)
    parts = Parts(spec, adaptor, FakeModel(), DATA, Evaluator(adaptor, DATA, TopK(), None),
                  BasicStrategy(), [])  # no objective: no speed figures
    with pytest.raises(TuningFailed):  # the first 2 failed alike: the tuning stops with it
        Tuner(parts).run()
    page = (tmp_path / "ws" / "report.html").read_text(encoding="utf-8")
    assert "none (every trial failed)" in page and "Failures (2)" in page
    assert "No trial's speed was measured" in page
    assert page.count("<svg ") == 1  # the metric per trial only


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="headless Chromium not installed (apt-get install chromium)")
def test_chromium_renders_the_report_of_a_digits_tuning(
        tmp_path: Path, example_env: dict[str, str]) -> None:
    pytest.importorskip("torch")
    image = pytest.importorskip("PIL.Image")
    shot = tmp_path / "report.png"
    # 7 trials: basic's op-type stage, conv1's fallback (meets the goal), one more fallback
    script = ROOT / "tools" / "report_screenshot.sh"
    run = subprocess.run(["bash", str(script), str(tmp_path / "ws"), str(shot), "--max-trials",
                          "7"], env={**example_env, "TUNEKIT_PYTHON": sys.executable},
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    with image.open(shot) as picture:
        width, height = picture.size
        colours = picture.convert("RGB").resize((120, 400)).getcolors(maxcolors=1 << 16)
    assert width == 1200 and height > 2000
    assert colours is not None and len(colours) > 50  # text, tables and plots, not a blank page
    page = (tmp_path / "ws" / "report.html").read_text(encoding="utf-8")
    assert re.search(r'<tr class="fallback"><td>conv1</td>', page)  # the op the goal needs
