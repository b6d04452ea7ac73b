"""Saving and reloading tuned models in TensorFlow's own formats, beside their recipe.

A tuned model is a folder: ``model.tflite`` (int8/fp32 candidates: the flatbuffer the tuning
evaluated, byte for byte) or ``model.keras`` (bf16 candidates: Keras' zip format, weights and
per-layer dtype policies, no pickled code), plus ``tunekit.json`` with the format tag, the
recipe, the input order and the kernels it ran on (``xnnpack``, or ``builtin`` where XNNPACK
refused it). The folder is written aside and renamed into place, so a crash never leaves a
half-written best model.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from tunekit.adaptors.tensorflow.bf16 import KerasBF16Model
from tunekit.adaptors.tensorflow.runtime import XNNPACK, TFLiteModel
from tunekit.adaptors.tensorflow.source import FloatModel
from tunekit.errors import ModelError
from tunekit.space import QuantConfig

FORMAT = "tunekit.tensorflow/1"
HEADER = "tunekit.json"


def save(candidate: Any, config: QuantConfig, path: Path) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    header: dict[str, Any] = {"format": FORMAT, "config": config.to_json(),
                              "input_names": candidate.input_names}
    if isinstance(candidate, TFLiteModel):
        (partial / "model.tflite").write_bytes(candidate.blob)
        header.update(runtime="tflite", output=candidate.output, order=candidate.order,
                      kernels=candidate.kernels)
    elif isinstance(candidate, KerasBF16Model):
        candidate.keras.save(partial / "model.keras")
        header.update(runtime="keras", bf16_layers=candidate.layers)
    else:
        raise ModelError(f"cannot save a {type(candidate).__name__}: not a tunekit TensorFlow "
                         "candidate")
    (partial / HEADER).write_text(json.dumps(header, indent=1), encoding="utf-8")
    if path.exists():
        shutil.rmtree(path)
    os.replace(partial, path)


def load(source: FloatModel, config: QuantConfig, path: Path, threads: int | None) -> Any:
    """The candidate saved at ``path``, checked against the recipe it is loaded with."""
    header_file = path / HEADER
    if not header_file.is_file():
        raise ModelError(f"{path} is not a tuned TensorFlow model folder (no {HEADER})")
    header = json.loads(header_file.read_text(encoding="utf-8"))
    if header.get("format") != FORMAT:
        raise ModelError(f"{path} was not written by tunekit's tensorflow adaptor "
                         f"(format {header.get('format')!r}, expected {FORMAT!r})")
    if QuantConfig.from_json(header["config"]) != config:
        raise ModelError(f"{path} was saved for another config than the recipe given; load it "
                         "with the best_config.json saved beside it")
    if header["runtime"] == "tflite":
        return TFLiteModel((path / "model.tflite").read_bytes(), config, header["input_names"],
                           order=header["order"], output=header["output"], threads=threads,
                           kernels=header.get("kernels", XNNPACK))
    import tensorflow as tf

    keras = tf.keras.models.load_model(path / "model.keras", compile=False)
    return KerasBF16Model(keras, source, header["bf16_layers"])
