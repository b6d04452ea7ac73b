"""Keras models users bring, each tuned end to end through the public API with a real metric.

Sequential, Functional with two named inputs (dict batches), subclassed, a Conv1D model, a
model on raw features that XNNPACK cannot run in int8 (tuned with ``model.predict``), and a
SavedModel folder and a ``.keras`` file tuned by path from a YAML config with ``tunekit tune``.
Accuracy is top-1 on held-out data of scikit-learn's bundled datasets.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import keras_zoo_models as zoo

tf = pytest.importorskip("tensorflow")

import tunekit
from tunekit import cli
from tunekit.adaptors.tensorflow import TensorFlowAdaptor
from tunekit.adaptors.tensorflow.runtime import BUILTIN, XNNPACK, new_interpreter

GOAL = {"relative": 0.02}


def tune(model: Any, calib: list, workspace: Path, **kw: Any) -> Any:
    return tunekit.tune(model, calib, workspace=str(workspace), accuracy_criterion=GOAL,
                        max_trials=8, random_seed=0, **kw)


def check_met(result: Any, baseline: float) -> None:
    """Met, no trial failed, and the tuned model really quantizes something. ``status`` says
    why the run stopped (the default ``auto`` strategy goes on after the first accepted config,
    so a met run usually ends ``strategy_done``); ``met`` says whether the goal is met."""
    assert result.met and result.best_trial is not None and result.best_trial.accepted, result
    assert [t.error for t in result.trials if t.error] == []
    assert result.baseline["metric"] == pytest.approx(baseline)
    assert result.best_trial.config.counts().get("int8", 0) >= 1


@pytest.fixture(scope="module")
def cancer() -> zoo.Split:
    return zoo.cancer()


@pytest.mark.slow
def test_sequential_with_a_metric_on_label_pairs(cancer: zoo.Split, tmp_path: Path) -> None:
    model = zoo.sequential(cancer)
    baseline = zoo.accuracy(model.predict(cancer.x_eval, verbose=0), cancer.y_eval)
    assert baseline > 0.9
    result = tune(model, zoo.batches(cancer.x), tmp_path / "ws",
                  eval_data=zoo.batches(cancer.x_eval, cancer.y_eval), metric={"name": "topk"})
    check_met(result, baseline)
    tuned = result.best_model
    assert zoo.accuracy(tuned.predict(cancer.x_eval), cancer.y_eval) >= baseline - 0.02


@pytest.mark.slow
def test_functional_two_named_inputs_fed_dicts(cancer: zoo.Split, tmp_path: Path) -> None:
    model = zoo.two_inputs(cancer)
    x_eval = zoo.named(cancer.x_eval)
    baseline = zoo.accuracy(model.predict(x_eval, verbose=0), cancer.y_eval)
    result = tune(model, zoo.batches(zoo.named(cancer.x)), tmp_path / "ws",
                  eval_data=zoo.batches(x_eval, cancer.y_eval), metric={"name": "topk"})
    check_met(result, baseline)
    tuned = result.best_model
    reordered = {"spread": x_eval["spread"], "means": x_eval["means"]}
    by_name = tuned.predict(reordered, batch_size=50)
    np.testing.assert_array_equal(by_name, tuned([x_eval["means"], x_eval["spread"]]))
    assert zoo.accuracy(by_name, cancer.y_eval) >= baseline - 0.02


@pytest.mark.slow
def test_subclassed_model_with_a_keras_style_call(cancer: zoo.Split, tmp_path: Path) -> None:
    model = zoo.subclassed(cancer)
    x_eval = tf.constant(cancer.x_eval)  # tf arrays, as a Keras user's eval code passes them

    def eval_func(candidate: Any) -> float:
        return zoo.accuracy(candidate(x_eval, training=False), cancer.y_eval)

    baseline = eval_func(model)
    result = tune(model, zoo.batches(cancer.x), tmp_path / "ws", eval_func=eval_func,
                  framework="tensorflow")
    check_met(result, baseline)
    assert eval_func(result.best_model) >= baseline - 0.02


@pytest.mark.slow
def test_conv1d_over_digit_rows(tmp_path: Path) -> None:
    digits = zoo.digit_rows()
    model = zoo.conv1d(digits)
    baseline = zoo.accuracy(model.predict(digits.x_eval, verbose=0), digits.y_eval)
    assert baseline > 0.9
    result = tune(model, zoo.batches(digits.x[:128]), tmp_path / "ws",
                  eval_data=zoo.batches(digits.x_eval, digits.y_eval), metric={"name": "topk"})
    check_met(result, baseline)
    assert {op.type for op in result.best_trial.config.ops} >= {"Conv1D", "Dense"}


@pytest.mark.slow
def test_raw_features_that_xnnpack_refuses_tune_with_predict(tmp_path: Path) -> None:
    wine = zoo.raw_wine()
    model = zoo.raw_features(wine)

    def eval_func(candidate: Any) -> float:
        return zoo.accuracy(candidate.predict(wine.x_eval, verbose=0), wine.y_eval)

    baseline = eval_func(model)
    calib = zoo.batches(wine.x[:96])
    adaptor = TensorFlowAdaptor()
    default = adaptor.quantize(model, adaptor.capabilities(model).default(), calib)
    with pytest.raises(RuntimeError, match="XNNPACK"):  # the case this test is about
        new_interpreter(default.blob, [calib[0].shape], kernels=XNNPACK)
    assert default.kernels == BUILTIN and default(calib[0]).shape == (32, 3)
    adaptor.save(default, default.config, tmp_path / "default")
    reloaded = adaptor.load(model, default.config, tmp_path / "default")
    assert reloaded.kernels == BUILTIN  # saved with the kernels it runs on
    np.testing.assert_array_equal(reloaded(calib[0]), default(calib[0]))

    result = tune(model, calib, tmp_path / "ws", eval_func=eval_func)
    check_met(result, baseline)
    assert eval_func(result.best_model) >= baseline - 0.02


DATA_MODULE = """
    from pathlib import Path

    import numpy as np

    HERE = Path(__file__).parent
    x, y, x_eval, y_eval = (np.load(HERE / f"{name}.npy")
                            for name in ("x", "y", "x_eval", "y_eval"))


    def calib():
        return [x[i:i + 32] for i in range(0, 128, 32)]


    def evaluation():
        return [(x_eval[i:i + 32], y_eval[i:i + 32]) for i in range(0, len(y_eval), 32)]
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["savedmodel", "keras_file"])
def test_model_files_tune_by_path_from_the_cli(kind: str, cancer: zoo.Split, tmp_path: Path,
                                               capsys: Any) -> None:
    model = zoo.sequential(cancer)
    path = tmp_path / ("saved" if kind == "savedmodel" else "model.keras")
    model.export(str(path), verbose=False) if kind == "savedmodel" else model.save(path)
    for name in ("x", "y", "x_eval", "y_eval"):
        np.save(tmp_path / f"{name}.npy", getattr(cancer, name))
    (tmp_path / "keras_zoo_data.py").write_text(textwrap.dedent(DATA_MODULE))
    (tmp_path / "tune.yaml").write_text(textwrap.dedent(f"""
        model: {{framework: tensorflow, path: {path.name}}}
        quantization: {{approach: static, calibration: {{data: keras_zoo_data:calib}}}}
        evaluation: {{data: keras_zoo_data:evaluation, metric: {{name: topk}}}}
        tuning:
          accuracy_criterion: {{relative: 0.02}}
          exit_policy: {{max_trials: 8}}
    """))
    workspace = tmp_path / "ws"
    code = cli.main(["tune", str(tmp_path / "tune.yaml"), "--workspace", str(workspace)])
    assert code == cli.EXIT_MET, capsys.readouterr().err
    result = json.loads((workspace / "result.json").read_text())
    baseline = zoo.accuracy(model.predict(cancer.x_eval, verbose=0), cancer.y_eval)
    assert result["baseline"] == pytest.approx(baseline)
    reloaded = tunekit.load(workspace)  # rebuilt from the path the run recorded
    assert zoo.accuracy(reloaded.predict(cancer.x_eval), cancer.y_eval) == pytest.approx(
        result["best_metric"])
