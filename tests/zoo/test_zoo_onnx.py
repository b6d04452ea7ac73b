"""The ONNX Runtime adaptor on ONNX models it was not built around (tests/zoo/onnx_zoo.py):
CNNs, transformers (BERT, DistilBERT, a GPT-2 decoder, a ViT), an LSTM, several inputs and
outputs, int64 token inputs, both torch exporters, a dynamic batch axis (calibration on batch
8, evaluation on 16 and 1), external data, a model nothing in can be quantized, and the CLI.
Each one is tuned end to end with ``tunekit.tune(..., framework="onnxrt")`` or ``tunekit
tune``; what broke on the way is in test_zoo_onnx_fixes.py."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import tunekit
from tests.zoo import onnx_zoo as zoo
from tunekit import cli
from tunekit.adaptors.onnxrt import OrtModel
from tunekit.errors import ModelError

pytestmark = pytest.mark.slow


def test_cnn_with_depthwise_joins_and_conv_transpose(cnn: tuple[Path, onnx.ModelProto],
                                                    tmp_path: Path) -> None:
    """Given as a path; calibrated on batch 8, evaluated on batches of 16 and 1."""
    path, proto = cnn
    evaluation = zoo.labelled(proto, zoo.images(2, 16, seed=5) + zoo.images(2, 1, seed=6))
    result = zoo.tune(path, zoo.images(2, 8), tmp_path, eval_data=evaluation)
    zoo.assert_tuned(result)
    types = {op.type for op in result.best_config.ops}
    assert {"Conv", "ConvTranspose", "Gemm", "Add", "Concat"} <= types
    quantized = {n.op_type for n in result.best_model.proto.graph.node}
    assert "QuantizeLinear" in quantized and "DequantizeLinear" in quantized


@pytest.mark.parametrize("name, exporter", [
    ("mobilenet_v3", "torchscript"), ("mobilenet_v3", "dynamo"), ("resnet18", "dynamo")])
def test_torch_zoo_cnns(name: str, exporter: str, folder: Path, tmp_path: Path) -> None:
    """MobileNetV3-small (depthwise convs, squeeze-excite gates, hardswish) and ResNet18
    (tests/zoo/zoo_models.py, BatchNorm settled on random images), exported and tuned."""
    from tests.zoo.zoo_models import MobileNetV3Small, ResNet18, settled

    torch.manual_seed(zoo.SEED)
    model = settled({"mobilenet_v3": MobileNetV3Small, "resnet18": ResNet18}[name](),
                    (8, 3, 32, 32))
    proto = zoo.export(model, zoo.images(1, 8), folder / f"{name}-{exporter}.onnx", ["x"],
                       ["logits"], exporter)
    result = zoo.tune(proto, zoo.images(2, 8), tmp_path,
                      eval_data=zoo.labelled(proto, zoo.images(2, 16, seed=5)))
    zoo.assert_tuned(result)
    assert result.best_config.counts()["int8"] >= 20


@pytest.mark.parametrize("family, exporter", [
    ("bert", "torchscript"), ("bert", "dynamo"), ("distilbert", "dynamo"),
    ("gpt2", "torchscript"), ("gpt2", "dynamo")])
def test_transformers_with_token_ids_and_masks(family: str, exporter: str, folder: Path,
                                               tmp_path: Path) -> None:
    """Two int64 inputs; calibration batches are ``(input_ids, attention_mask)`` pairs, the
    evaluation ``(dict, labels)`` at batch 16 and 1, rows padded as a tokenizer pads them."""
    calib = zoo.tokens(2, 8)
    proto = zoo.export(zoo.hf_model(family), [calib[0]["input_ids"],
                                              calib[0]["attention_mask"]],
                       folder / f"{family}-{exporter}.onnx", ["input_ids", "attention_mask"],
                       ["logits"], exporter)
    evaluation = zoo.labelled(proto, zoo.tokens(2, 16, seed=7) + zoo.tokens(4, 1, seed=8))
    pairs = [(b["input_ids"], b["attention_mask"]) for b in calib]
    result = zoo.tune(proto, pairs, tmp_path, eval_data=evaluation,
                      accuracy_criterion={"relative": 0.05})  # 36 rows: two may flip
    zoo.assert_tuned(result)
    assert {"MatMul"} <= {op.type for op in result.best_config.ops}


def test_a_vit_scored_by_cosine_with_an_eval_func(folder: Path, tmp_path: Path) -> None:
    """A patch conv + attention model, given as an OrtModel, scored by an eval_func (the
    cosine similarity of its logits to FP32's): a random ViT's logits lie too close together
    for top-1 agreement to say much."""
    torch.manual_seed(zoo.SEED)
    proto = zoo.export(zoo.TinyViT(), zoo.images(1, 8), folder / "vit.onnx", ["x"], ["logits"],
                       "dynamo")
    fp32 = OrtModel(proto)
    result = zoo.tune(fp32, zoo.images(2, 8), tmp_path, accuracy_criterion={"absolute": 0.01},
                      eval_func=zoo.cosine_to(fp32, zoo.images(2, 16, seed=5)))
    zoo.assert_tuned(result)
    assert result.best_trial.metric >= 0.98
    assert {"Conv", "MatMul", "Gemm"} <= {op.type for op in result.best_config.ops}


def test_lstm_classifier_with_int64_ids(folder: Path, tmp_path: Path) -> None:
    """An LSTM op stays float (ONNX Runtime has no int8 LSTM here); its Gemm head is tuned.
    Calibration batches are ``(inputs, labels)`` pairs, as an evaluation loader's are."""
    from tests.zoo.zoo_models import LSTMClassifier

    torch.manual_seed(zoo.SEED)
    ids = [np.random.default_rng(i).integers(0, 100, (8, 16)) for i in range(3)]
    proto = zoo.export(LSTMClassifier(), ids[:1], folder / "lstm.onnx", ["ids"], ["logits"],
                       "torchscript")
    assert "LSTM" in {n.op_type for n in proto.graph.node}
    result = zoo.tune(proto, zoo.labelled(proto, ids[:2]), tmp_path,
                      eval_data=zoo.labelled(proto, ids[2:]))
    zoo.assert_tuned(result)


@pytest.mark.parametrize("exporter", zoo.EXPORTERS)
def test_two_inputs_two_outputs_scored_by_output_name(exporter: str, folder: Path,
                                                      tmp_path: Path) -> None:
    """Calibration as dicts by input name; the metric reads the second output, named."""
    rng = np.random.default_rng(3)
    batches = [{"features": rng.standard_normal((8, 16), dtype=np.float32),
                "extra": rng.standard_normal((8, 8), dtype=np.float32)} for _ in range(4)]
    torch.manual_seed(zoo.SEED)
    proto = zoo.export(zoo.TwoInTwoOut(), [batches[0]["features"], batches[0]["extra"]],
                       folder / f"two-{exporter}.onnx", ["features", "extra"],
                       ["merged", "logits"], exporter)
    result = zoo.tune(proto, batches[:2], tmp_path, eval_data=zoo.labelled(proto, batches[2:], 1),
                      config={"model": {"options": {"output": "logits"}}})
    zoo.assert_tuned(result)
    outputs = result.best_model.run(batches[2])
    assert [o.shape for o in outputs] == [(8, 64), (8, 5)]
    assert all(o.dtype == np.float32 for o in outputs)


def test_external_data_by_path_then_load_reproduces(cnn: tuple[Path, onnx.ModelProto],
                                                    tmp_path: Path) -> None:
    """A model whose weights live beside it (``save_as_external_data``), given by path; the
    saved result loaded with ``tunekit.load`` gives the tuned model's outputs bit for bit."""
    source = tmp_path / "external" / "model.onnx"
    source.parent.mkdir()
    onnx.save_model(onnx.load(str(cnn[0])), str(source), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    bare = onnx.load(str(source), load_external_data=False)
    assert all(w.data_location == TensorProto.EXTERNAL for w in bare.graph.initializer)
    evaluation = zoo.labelled(cnn[1], zoo.images(2, 16, seed=5))
    result = zoo.tune(source, zoo.images(2, 8), tmp_path / "ws", eval_data=evaluation)
    zoo.assert_tuned(result)
    loaded = tunekit.load(tmp_path / "ws", source)
    assert np.array_equal(loaded(evaluation[0][0]), result.best_model(evaluation[0][0]))


ELEMENTWISE = helper.make_model(helper.make_graph(
    [helper.make_node("Relu", ["x"], ["r"], name="relu"),
     helper.make_node("Mul", ["r", "x"], ["y"], name="mul")], "elementwise",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])]),
    opset_imports=[helper.make_opsetid("", 17)])


def test_nothing_quantizable_is_one_line(tmp_path: Path, capsys: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Only elementwise ops: ``tunekit.tune`` raises a ModelError naming what is tunable, and
    the CLI prints it as one line (no traceback) and exits non-zero."""
    data = [(np.ones((4, 4), np.float32), np.zeros(4, np.int64))]
    with pytest.raises(ModelError, match="no op the static approach can quantize") as caught:
        zoo.tune(ELEMENTWISE, data, tmp_path / "py", eval_data=data)
    assert "\n" not in str(caught.value)
    onnx.save_model(ELEMENTWISE, str(tmp_path / "elementwise.onnx"))
    (tmp_path / "zoo_data.py").write_text(
        "import numpy as np\n"
        "def batches():\n"
        "    return [(np.ones((4, 4), np.float32), np.zeros(4, np.int64))]\n")
    config = _config(tmp_path, "elementwise.onnx", "zoo_data:batches", "zoo_data:batches")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = cli.main(["tune", str(config), "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_ERROR and len(err) == 1 and "no op the static approach" in err[0], err
    assert "Traceback" not in err[0]


def _config(folder: Path, model: str, calib: str, evaluation: str) -> Path:
    path = folder / "config.yaml"
    path.write_text(textwrap.dedent(f"""
        model: {{framework: onnxrt, path: {model}}}
        quantization: {{calibration: {{data: "{calib}"}}}}
        evaluation: {{metric: topk, data: "{evaluation}"}}
        tuning: {{accuracy_criterion: {{relative: 0.02}}, objective: size,
                 exit_policy: {{max_trials: 4}}}}
    """))
    return path


CLI_DATA = """
import numpy as np
import onnxruntime as ort

def _tokens(count, batch, seed):
    rng = np.random.default_rng(seed)
    ids = [rng.integers(2, 200, (batch, 16)) for _ in range(count)]
    return [{"input_ids": i, "attention_mask": np.ones_like(i)} for i in ids]

def calib():
    return _tokens(2, 8, 0)

def evaluation():
    session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
    return [(b, session.run(None, b)[0].argmax(-1)) for b in _tokens(2, 16, 1)]
"""


def test_cli_tunes_a_dynamo_exported_bert_file(folder: Path, tmp_path: Path, capsys: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``tunekit tune config.yaml`` with ``model.framework: onnxrt`` and ``model.path``; the
    workspace loaded back with ``tunekit.load`` (recorded path) reproduces the outputs."""
    calib = zoo.tokens(1, 8)
    zoo.export(zoo.hf_model("bert"), [calib[0]["input_ids"], calib[0]["attention_mask"]],
               tmp_path / "model.onnx", ["input_ids", "attention_mask"], ["logits"], "dynamo")
    (tmp_path / "bert_data.py").write_text(CLI_DATA)
    config = _config(tmp_path, "model.onnx", "bert_data:calib", "bert_data:evaluation")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    code = cli.main(["tune", str(config), "--workspace", str(tmp_path / "ws")])
    assert code == 0, capsys.readouterr()
    model = tunekit.load(tmp_path / "ws", trust=True)
    assert isinstance(model, OrtModel)
    saved = OrtModel(onnx.load(str(tmp_path / "ws" / "best_model.onnx")))
    batch = zoo.tokens(1, 4, seed=11)[0]
    assert np.array_equal(model(batch), saved(batch))
    assert "QuantizeLinear" in {n.op_type for n in model.proto.graph.node}
