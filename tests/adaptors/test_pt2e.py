"""The PT2E backend (torch.export + torchao + Inductor), ``backend: auto``'s choice by
measurement, ``.pt2`` files, and tuning on a torch without FX graph mode.

An Inductor compile costs 10-60 s on this machine: only the tests marked slow compile, once each.
"""

from __future__ import annotations

import json
import logging
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchao")

import tunekit  # noqa: E402
from tunekit.adaptors.pytorch.adaptor import PyTorchAdaptor  # noqa: E402
from tunekit.errors import ModelError  # noqa: E402
from tunekit.space import OpConfig, OpKey  # noqa: E402


def _op_inputs(candidate: Any, name: str) -> list[str]:
    """The targets feeding the conv/linear of module ``name`` in a PT2E candidate's graph."""
    for node in candidate.graph.graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        if node.op == "call_function" and "conv" in str(node.target) and stack \
                and list(stack.values())[-1][0] == name:
            return [str(arg.target) for arg in node.all_input_nodes]
    raise AssertionError(f"no conv of {name} in the graph")


def _eval_batches(digits: dict[str, np.ndarray]) -> list[tuple[Any, Any]]:
    """597 held-out digits in 3 batches of 199: one shape, so a compiled model compiles once."""
    x, y = torch.from_numpy(digits["x_eval"]), torch.from_numpy(digits["y_eval"])
    return [(x[i:i + 199], y[i:i + 199]) for i in range(0, 597, 199)]


def test_a_fallen_back_op_stays_float_and_trials_reuse_the_calibration(trained_digits: Any,
                                                                        calib: list) -> None:
    adaptor = PyTorchAdaptor(backend="pt2e")
    space = adaptor.capabilities(trained_digits)
    options = {o.precision for opts in space.options.values() for o in opts}
    assert "bf16" not in options  # what PT2E cannot build is not offered
    assert all(o.algorithm != "percentile" for opts in space.options.values() for o in opts)
    adaptor.calibrate(trained_digits, space, calib)
    conv2 = OpKey("conv2", "Conv2d")
    config = space.default().with_op(conv2, OpConfig("fp32"))
    candidate = adaptor.quantize(trained_digits, config, calib)
    assert not any("dequantize" in t for t in _op_inputs(candidate, "conv2"))
    assert any("dequantize" in t for t in _op_inputs(candidate, "conv3"))

    # statistics come from the calibration pass: other data handed to a trial is not run
    halved = [(x * 0.5, y) for x, y in calib]
    reused = adaptor.quantize(trained_digits, config, halved)
    fresh = PyTorchAdaptor(backend="pt2e").quantize(trained_digits, config, halved)
    x = calib[0][0][:16]
    with torch.no_grad():
        assert torch.equal(reused(x), candidate(x))
        assert not torch.equal(fresh(x), candidate(x))


def test_save_and_load_round_trip_through_a_torch_export_archive(trained_digits: Any,
                                                                  calib: list,
                                                                  tmp_path: Path) -> None:
    adaptor = PyTorchAdaptor(backend="pt2e")
    config = adaptor.capabilities(trained_digits).default()
    candidate = adaptor.quantize(trained_digits, config, calib)
    path = tmp_path / "best_model.pt"
    adaptor.save(candidate, config, path)
    names = zipfile.ZipFile(path).namelist()
    assert not any(n.endswith(".pkl") for n in names)
    header = next(n for n in names if n.endswith("tunekit.json"))
    assert json.loads(zipfile.ZipFile(path).read(header))["backend"] == "pt2e"

    loaded = PyTorchAdaptor().load(trained_digits, config, path)  # any backend option reads it
    x = calib[0][0][:16]
    with torch.no_grad():
        assert torch.equal(loaded.graph(x), candidate.graph(x))
    assert loaded.deployed  # compiles on its first call
    other = config.with_op(OpKey("fc2", "Linear"), OpConfig("fp32"))
    with pytest.raises(ModelError, match="another config"):
        adaptor.load(trained_digits, other, path)


def test_auto_skips_a_backend_that_fails_with_one_line_naming_it(zoo: Any, tmp_path: Path,
                                                                 caplog: Any) -> None:
    """Data-dependent control flow: neither torch.fx nor torch.export can take the model, so the
    trials run eagerly and PT2E is skipped at deployment."""
    torch.manual_seed(0)
    model = zoo.Untraceable().eval()
    x = torch.randn(64, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    data = [(x[:32], y[:32]), (x[32:], y[32:])]
    with caplog.at_level(logging.WARNING):
        result = tunekit.tune(model, data, eval_data=data, metric="topk", framework="pytorch",
                              config={"model": {"options": {"pt2e_min_params": 0}}},
                              accuracy_criterion={"absolute": 1.0}, max_trials=1, objective="size",
                              workspace=str(tmp_path / "ws"))
    assert result.met and result.deployment["backend"] == "eager"
    assert "pt2e" in result.deployment["skipped"]
    skipped = [r for r in caplog.records if "backend pt2e skipped" in r.getMessage()]
    assert len(skipped) == 1 and "\n" not in skipped[0].getMessage()
    saved = json.loads((tmp_path / "ws" / "best_config.json").read_text())
    assert saved["deployment"]["backend"] == "eager"

    # by default a model this small is not worth a compile: PT2E is not even tried
    result = tunekit.tune(model, data, eval_data=data, metric="topk", framework="pytorch",
                          accuracy_criterion={"absolute": 1.0}, max_trials=1, objective="size",
                          workspace=str(tmp_path / "ws2"))
    assert result.deployment["backend"] == "eager" and "pt2e" in result.deployment["not_tried"]


@pytest.mark.slow
def test_pt2e_tunes_a_cnn_end_to_end_and_reloads_without_tuning(trained_digits: Any, calib: list,
                                                                 digits: dict,
                                                                 tmp_path: Path) -> None:
    eval_data = _eval_batches(digits)
    result = tunekit.tune(trained_digits, calib, eval_data=eval_data, metric="topk",
                          framework="pytorch", config={"model": {"options": {"backend": "pt2e"}}},
                          accuracy_criterion={"relative": 0.02}, max_trials=3,
                          workspace=str(tmp_path / "ws"))
    assert result.met
    assert result.deployment["backend"] == "pt2e" and result.deployment["compiled"]
    assert result.best_trial.details["time.compile_s"] > 0  # timed, hence compiled
    x = eval_data[0][0]
    with torch.inference_mode():
        expected = result.best_model(x)
    loaded = tunekit.load(tmp_path / "ws", trained_digits)
    with torch.inference_mode():
        got = loaded(x)
    assert loaded.compile_s is not None  # the reloaded program runs compiled
    assert torch.allclose(got, expected, atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()


def _tiny_bert() -> Any:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=128,
                                     max_position_embeddings=64)
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config).eval()


@pytest.mark.slow
def test_pt2e_tunes_a_tiny_transformers_bert(tmp_path: Path) -> None:
    model = _tiny_bert()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 300, (32, 32), generator=generator)
    batches = [({"input_ids": ids[i:i + 16], "attention_mask": torch.ones(16, 32,
                                                                            dtype=torch.long)},
                None) for i in (0, 16)]
    with torch.no_grad():
        reference = torch.cat([model(**b[0]).logits for b, in zip(batches)])

    def fidelity(candidate: Any) -> float:
        with torch.inference_mode():
            out = torch.cat([candidate(**b[0]).logits for b, in zip(batches)])
        return float(torch.nn.functional.cosine_similarity(out, reference, dim=1).mean())

    result = tunekit.tune(model, batches, eval_func=fidelity, objective="size",
                          framework="pytorch", config={"model": {"options": {"backend": "pt2e"}}},
                          accuracy_criterion={"absolute": 0.05}, max_trials=2,
                          workspace=str(tmp_path / "ws"))
    assert result.met and result.deployment == {**result.deployment, "backend": "pt2e",
                                                "compiled": True}
    assert result.best_config.counts()["int8"] >= 12  # every Linear of the encoder
    assert fidelity(result.best_model) > 0.95


@pytest.mark.slow
def test_tuning_works_without_fx_graph_mode(trained_digits: Any, calib: list, digits: dict,
                                            tmp_path: Path, monkeypatch: Any) -> None:
    for name in ("torch.ao.quantization.quantize_fx", "tunekit.adaptors.pytorch.fx_backend",
                 "tunekit.adaptors.pytorch.qat"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError):
        from torch.ao.quantization.quantize_fx import prepare_fx  # noqa: F401
    result = tunekit.tune(trained_digits, calib, eval_data=_eval_batches(digits),
                          metric="topk", framework="pytorch", objective="size",
                          config={"model": {"options": {"pt2e_min_params": 0}}},
                          accuracy_criterion={"relative": 0.02}, max_trials=3,
                          workspace=str(tmp_path / "ws"))
    assert result.met
    assert result.deployment["backend"] in ("pt2e", "eager")
    assert set(result.deployment["latency_ms"]) == {"pt2e", "eager"}


def test_the_fastest_backend_that_meets_the_goal_is_deployed() -> None:
    from tunekit.adaptors.pytorch import deployment

    torch.manual_seed(0)
    fast = torch.nn.Linear(64, 64).eval()
    slow = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(40)]).eval()
    x = torch.randn(32, 64)
    chosen, info = deployment.choose({"fx": slow, "pt2e": fast}, "fx", x, lambda m: True, {})
    assert chosen == "pt2e" and info["latency_ms"]["pt2e"] < info["latency_ms"]["fx"]
    # faster but missing the goal: the trial's own model stays
    chosen, info = deployment.choose({"fx": slow, "pt2e": fast}, "fx", x,
                                     lambda m: m is not fast, {})
    assert chosen == "fx" and info["backend"] == "fx"
