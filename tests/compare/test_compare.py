"""tunekit compare on the FakeAdaptor: shared evaluations, determinism per seed, outputs; the
slow end-to-end case runs the CLI on the digits fallback example."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tunekit import cli, config
from tunekit.compare import EvaluationCache, compare, summarize
from tunekit.compare.figure import draw, plot
from tunekit.compare.output import table, write_raw
from tunekit.compare.run import _run
from tunekit.evaluate import Evaluator
from tunekit.history import History
from tunekit.loop import Budget
from tunekit.metrics.topk import TopK
from tunekit.runner import TrialRunner
from tunekit.space import QuantConfig
from tunekit.strategies.basic import BasicStrategy
from tunekit.strategy import Batch, Strategy, TuneContext
from tunekit.testing import DIGITS_OPS, FakeAdaptor, FakeModel, ModelledLatency, fake_data
from tunekit.tuner import Parts, Tuner
from tunekit.workspace import Workspace

DATA = fake_data(500, 100)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_pytorch"


def workload(tmp_path: Path, adaptor: FakeAdaptor, **tuning: Any) -> tuple[Any, Parts]:
    raw = {"model": {"framework": "pytorch", "factory": "m:f"},
           "tuning": {"accuracy_criterion": {"absolute": 0.0}, "strategy": {"name": "basic"},
                      "workspace": {"path": str(tmp_path / "ws")}, **tuning}}
    spec = config.parse(raw, check_plugins=False)
    parts = Parts(spec, adaptor, FakeModel(), DATA, Evaluator(adaptor, DATA, TopK(), None),
                  BasicStrategy(), [("latency", ModelledLatency(), 1.0)])
    return spec, parts


def conv1_culprit() -> FakeAdaptor:
    return FakeAdaptor(ops=DIGITS_OPS, base_accuracy=0.998, drops={"conv1": 0.2})


def test_identical_configs_are_evaluated_once_across_strategies(tmp_path: Path) -> None:
    adaptor = conv1_culprit()
    spec, parts = workload(tmp_path, adaptor)
    comparison = compare(spec, ["basic", "mse", "mse_v2"], [0], parts=parts)
    distinct = {t.config for run in comparison.runs for t in run.trials}
    # predict calls beside the candidates': the data contract's check of one batch, the baseline
    assert comparison.evaluations == len(distinct) == adaptor.predict_calls - 2
    assert all(run.goal_trial is not None for run in comparison.runs)
    mse_run = comparison.runs[1]
    assert [t.cached for t in mse_run.trials] == [True, True]  # default and conv1→bf16: basic's
    rows = {row.strategy: row for row in summarize(comparison)}
    assert rows["mse"].trials_to_goal == 2 and rows["mse"].mix == "int8×4 bf16×1"
    assert rows["basic"].met == 1 and rows["basic"].best_objective is not None


def test_same_seed_same_runs_and_a_disk_cache_is_reused(tmp_path: Path) -> None:
    spec, parts = workload(tmp_path, conv1_culprit())
    cache = EvaluationCache(tmp_path / "cache.json")
    first = compare(spec, ["random", "tpe"], [5, 6], cache, parts=parts)
    adaptor = conv1_culprit()
    spec, parts = workload(tmp_path, adaptor)
    again = compare(spec, ["random", "tpe"], [5, 6], EvaluationCache(tmp_path / "cache.json"),
                    parts=parts)
    assert [[t.config for t in r.trials] for r in again.runs] == \
        [[t.config for t in r.trials] for r in first.runs]
    assert again.evaluations == 0 and adaptor.quantize_calls == 0


def test_outputs(tmp_path: Path) -> None:
    spec, parts = workload(tmp_path, conv1_culprit())
    comparison = compare(spec, ["basic", "exhaustive"], [0, 1], parts=parts)
    rows = summarize(comparison)
    text = table(rows)
    assert text.splitlines()[0].startswith("strategy") and "exhaustive" in text
    csv_path, json_path = write_raw(comparison, rows, tmp_path / "out")
    data = json.loads(json_path.read_text())
    assert len(data["runs"]) == 4 and len(csv_path.read_text().splitlines()) == \
        1 + sum(len(r.trials) for r in comparison.runs)
    assert plot(comparison, rows, tmp_path / "out" / "compare.png").stat().st_size > 1000
    assert data["target"] == pytest.approx(comparison.baseline["metric"])  # absolute 0.0


def test_the_figure_keeps_identical_paths_apart(tmp_path: Path) -> None:
    """basic and exhaustive start with the same configs: their paths are drawn side by side
    in distinct styles; the target is a line; passing trials are filled; costs to the goal
    are bars."""
    import matplotlib.pyplot as plt

    spec, parts = workload(tmp_path, conv1_culprit())
    comparison = compare(spec, ["basic", "exhaustive"], [0], parts=parts)
    assert comparison.runs[0].trials[0].config == comparison.runs[1].trials[0].config
    rows = summarize(comparison)
    figure = draw(comparison, rows)
    try:
        metric, _objective, evaluations, seconds = figure.axes
        paths = {line.get_label(): line for line in metric.get_lines()}
        basic, exhaustive = paths["basic"], paths["exhaustive"]
        assert basic.get_xdata()[0] != exhaustive.get_xdata()[0]  # shifted apart
        assert abs(basic.get_xdata()[0] - exhaustive.get_xdata()[0]) < 0.5
        assert (basic.get_color(), basic.get_linestyle()) != \
            (exhaustive.get_color(), exhaustive.get_linestyle())
        target = [line for line in metric.get_lines() if line.get_label().startswith("target")]
        assert target and target[0].get_ydata()[0] == pytest.approx(comparison.target)
        filled = [c for c in metric.collections if len(c.get_offsets()) and
                  c.get_facecolor().size and c.get_facecolor()[0][3] > 0]
        passing = sum(t.accepted for run in comparison.runs for t in run.trials)
        assert sum(len(c.get_offsets()) for c in filled) == passing > 0
        bars = [round(p.get_width()) for p in evaluations.patches]
        assert bars == [r.trials_to_goal + 1 for r in rows]  # + the FP32 baseline
        assert [t.get_text() for t in seconds.get_yticklabels()] == ["basic", "exhaustive"]
    finally:
        plt.close(figure)


def test_a_failing_strategy_is_reported_not_fatal(tmp_path: Path) -> None:
    spec, parts = workload(tmp_path, conv1_culprit())
    comparison = compare(spec, ["hawq", "mse"], [0], parts=parts)
    (hawq,) = [r for r in summarize(comparison) if r.strategy == "hawq"]
    assert hawq.errors and "Hessian" in hawq.errors[0]


def test_cli_rejects_an_unknown_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["compare", str(EXAMPLE / "fallback.yaml"), "--strategies", "basic,nope"])
    assert code == cli.EXIT_USAGE and "unknown strategy 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_digits_fallback_mse_meets_the_goal_within_three_evaluations(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    code = cli.main(["compare", str(EXAMPLE / "fallback.yaml"), "--strategies", "mse,basic",
                     "--out", str(tmp_path), "-q"])
    assert code == 0
    data = json.loads((tmp_path / "compare.json").read_text())
    rows = {row["strategy"]: row for row in data["summary"]}
    assert rows["mse"]["met"] == 1 and rows["mse"]["trials_to_goal"] <= 3
    assert rows["basic"]["trials_to_goal"] + 1 <= 24  # INC 2.6 basic: 24 evaluations
    assert (tmp_path / "compare.png").exists()


class Yields(Strategy):
    """Proposes ``configs`` as one batch under ``needed``."""

    def __init__(self, *, configs: tuple[QuantConfig, ...], needed: str) -> None:
        self.configs, self.needed = configs, needed

    def propose(self, ctx: TuneContext) -> Iterator[Batch]:
        yield Batch(self.configs, needed=self.needed, final=False)


def test_a_bound_from_early_rejection_never_answers_a_strategy_that_needs_the_metric(
        tmp_path: Path) -> None:
    adaptor = conv1_culprit()
    spec = config.parse({"model": {"framework": "pytorch", "factory": "m:f"},
                         "evaluation": {"early_reject": True},
                         "tuning": {"accuracy_criterion": {"absolute": 0.0},
                                    "workspace": {"path": str(tmp_path / "ws")}}},
                        check_plugins=False)
    data = fake_data(500, 50)
    parts = Parts(spec, adaptor, FakeModel(), data, Evaluator(adaptor, data, TopK(), None),
                  BasicStrategy(), [])
    workspace = Workspace(spec.tuning.workspace)
    workspace.prepare(False)
    runner = TrialRunner(parts, workspace)
    space = runner.set_up()
    runner.measure_baseline()
    default = space.default()  # conv1 in int8: far below the goal
    conv1 = next(op for op in space.ops if op.name == "conv1")
    configs = (default, default.with_op(conv1, space.option(conv1, "fp32")))
    cache, budget = EvaluationCache(), Budget(max_trials=10, stop_on_first_accept=False)
    ctx = runner.context(space, History(runner.baseline["metric"]), 0)

    def run(needed: str) -> list:
        strategy = Yields(configs=configs, needed=needed)
        fresh_ctx = replace(ctx, history=History(runner.baseline["metric"]))
        return list(_run("yields", 0, strategy, fresh_ctx, budget, runner, cache)[0].trials)

    goal = run("goal")
    assert not goal[0].accepted and goal[1].accepted
    exact = run("exact")
    assert [t.cached for t in exact] == [False, True]  # the bound is not reused; the pass is
    assert goal[0].metric > exact[0].metric  # stopped early: its metric was only a bound
    assert [t.cached for t in run("goal")] == [True, True]  # the full evaluation answers all


def test_each_run_keeps_the_trial_a_tuning_would_keep(tmp_path: Path) -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, base_accuracy=0.998, drops={"conv1": 0.2, "fc1": 0.01})
    spec, parts = workload(tmp_path / "compare", adaptor, exit_policy={"timeout": 60})
    run = compare(spec, ["basic"], [spec.tuning.seed], parts=parts).runs[0]
    spec, parts = workload(tmp_path / "tune", adaptor, exit_policy={"timeout": 60})
    result = Tuner(parts).run()
    assert [t.config for t in run.trials] == [t.config for t in result.trials]
    assert run.best is not None and run.best.config == result.best_trial.config
