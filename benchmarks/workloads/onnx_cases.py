"""The four ONNX models of ``benchmarks/vs_nncf.py``, exported from torch into a folder.

Each case is ``NAME.onnx`` plus ``NAME.npz`` (``x_calib``, ``x_eval``, ``y_eval``, for the
encoder also ``mask_*``; see :mod:`onnx_eval`) and a maximum absolute top-1 drop:

- ``digits-half``: the fallback case NNCF can only answer in FP32: a plain digits CNN
  (``nn.Sequential`` of conv 1→8, ReLU, conv 8→16, ReLU, max-pool, fc 1024→64, ReLU,
  fc 64→10; no batch norm, so its ONNX nodes are ``/0/Conv``, ``/2/Conv``, ``/6/Gemm``,
  ``/8/Gemm``) trained on the example's digits split, calibrated on images at half
  intensity, no loss allowed. Without batch norm every activation range scales with the
  input, so each int8 op clips its input: NNCF reverts all four ops and answers the FP32
  graph (the example's CNN, whose batch norms re-centre the activations, let NNCF keep two
  ops in int8, so the check never triggered);
- ``resnet``: the ResNet-like CNN of :mod:`resnet_digits` (3×32×32, 0.7 M parameters), normal
  calibration, 1 point;
- ``bert``: a BERT-like encoder (``transformers``' ``BertForSequenceClassification`` from a
  config: 4 layers, hidden 256, sequence 64, random init), labelled by its own FP32 predictions,
  1 point;
- ``culprit-middle``: the digits CNN with conv2's output channel 0 dead (ReLU of a value below
  -1) and conv3's weights on that channel set to 1000: the FP32 function is unchanged, but
  conv3's int8 weight grid (per output channel) is stretched by them and rounds every real
  weight to zero. The ops in the middle of the network (conv2, conv3 of conv1..fc2) must return
  to float; no loss allowed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "examples" / "digits_pytorch")]

import model as digits_example  # noqa: E402  (examples/digits_pytorch/model.py)
import resnet_digits  # noqa: E402

#: the digits-half model's trained weights, cached beside resnet_digits' (same folder)
PLAIN_WEIGHTS = resnet_digits.CACHE / "digits_plain_e15.pt"


@dataclass(frozen=True)
class Case:
    name: str
    model: Path
    data: Path
    max_drop: float
    #: tunekit's ``quantization.approach``. ``auto`` (static or dynamic int8 per op) where the
    #: calibration data misleads static ranges: NNCF's ONNX backend has static int8 only, so
    #: its best answer there is all-FP32, while dynamic int8 needs no calibrated ranges
    approach: str = "static"


def _export(model: nn.Module, example: tuple, path: Path, names: list[str]) -> None:
    torch.onnx.export(model.eval(), example, str(path), input_names=names,
                      output_names=["logits"], dynamic_axes={n: {0: "batch"} for n in names},
                      dynamo=False, opset_version=17)


def plain_digits() -> nn.Sequential:
    """The digits-half model, trained once (the example's training loop, 15 epochs, seed 0)
    and cached."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(16 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10))
    if PLAIN_WEIGHTS.exists():
        model.load_state_dict(torch.load(PLAIN_WEIGHTS, map_location="cpu", weights_only=True))
        return model.eval()
    digits_example.fit(model, 15, 64, 1e-3)
    PLAIN_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), PLAIN_WEIGHTS)
    return model.eval()


def digits_half(folder: Path) -> Case:
    data = digits_example.digits_data()
    model = plain_digits()
    path = folder / "digits-half.onnx"
    _export(model, (torch.from_numpy(data.x_calib[:2]),), path, ["x"])
    np.savez(folder / "digits-half.npz", x_calib=data.x_calib * np.float32(0.5),
             x_eval=data.x_eval, y_eval=data.y_eval)
    return Case("digits-half", path, folder / "digits-half.npz", 0.0, approach="auto")


def resnet(folder: Path) -> Case:
    data = resnet_digits.digits32()
    path = folder / "resnet.onnx"
    _export(resnet_digits.load_model(), (torch.from_numpy(data["x_calib"][:2]),), path, ["x"])
    np.savez(folder / "resnet.npz", x_calib=data["x_calib"], x_eval=data["x_eval"],
             y_eval=data["y_eval"])
    return Case("resnet", path, folder / "resnet.npz", 0.01)


class _Encoder(nn.Module):
    """BERT's logits from ``(input_ids, attention_mask)``, as one-output ONNX."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(vocab_size=1000, hidden_size=256, num_hidden_layers=4,
                            num_attention_heads=4, intermediate_size=1024,
                            max_position_embeddings=64, num_labels=4,
                            attn_implementation="eager")
        torch.manual_seed(0)
        self.bert = BertForSequenceClassification(config).eval()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=x, attention_mask=mask).logits


def bert(folder: Path) -> Case:
    model = _Encoder().eval()
    rng = np.random.RandomState(0)
    ids = rng.randint(5, 1000, size=(356, 64)).astype(np.int64)
    lengths = rng.randint(16, 65, size=356)
    mask = (np.arange(64)[None] < lengths[:, None]).astype(np.int64)
    with torch.inference_mode():
        labels = torch.cat([model(torch.from_numpy(ids[i:i + 64]), torch.from_numpy(mask[i:i + 64]))
                            for i in range(100, 356, 64)]).argmax(1).numpy()
    path = folder / "bert.onnx"
    _export(model, (torch.from_numpy(ids[:2]), torch.from_numpy(mask[:2])), path, ["x", "mask"])
    np.savez(folder / "bert.npz", x_calib=ids[:100], mask_calib=mask[:100], x_eval=ids[100:],
             mask_eval=mask[100:], y_eval=labels)
    return Case("bert", path, folder / "bert.npz", 0.01)


def culprit_middle(folder: Path) -> Case:
    data = digits_example.digits_data()
    model = digits_example.load_model()
    conv2 = torch.nn.utils.fusion.fuse_conv_bn_eval(model.conv2, model.bn2)
    with torch.no_grad():  # channel 0 of conv2 is dead (its inputs are ReLU outputs, ≥ 0)
        conv2.weight[0] = -0.01
        conv2.bias[0] = -1.0
        model.conv3.weight[:, 0] = 1000.0  # so these weights change nothing in FP32
    model.conv2, model.bn2 = conv2, nn.Identity()
    path = folder / "culprit-middle.onnx"
    _export(model, (torch.from_numpy(data.x_calib[:2]),), path, ["x"])
    np.savez(folder / "culprit-middle.npz", x_calib=data.x_calib, x_eval=data.x_eval,
             y_eval=data.y_eval)
    return Case("culprit-middle", path, folder / "culprit-middle.npz", 0.0)


BUILDERS = {"digits-half": digits_half, "resnet": resnet, "culprit-middle": culprit_middle,
            "bert": bert}


def build(names: list[str], folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    return [BUILDERS[name](folder) for name in names]
