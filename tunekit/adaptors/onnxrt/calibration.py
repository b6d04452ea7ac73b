"""Activation ranges: collected once per calibration algorithm, reused by every trial.

ONNX Runtime's ``quantize_static`` would run the calibration data through the model on every
call. tunekit instead runs ONNX Runtime's own calibrators (MinMax, Entropy, Percentile) once per
algorithm the tuning space offers, keeps each one's ``(min, max)`` per tensor, and hands every
trial a ranges file built from the algorithms its ops chose (``calibration_cache_path``: ONNX
Runtime then skips calibration). With a cache folder (the workspace's ``calibration/``) the
ranges are also kept on disk, keyed by a hash of the model and the data, so a resumed tuning
skips calibration too.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
from onnxruntime.quantization.calibrate import TensorsData, create_calibrator, save_tensors_data

from tunekit.adaptors.onnxrt.entropy import entropy_threshold
from tunekit.adaptors.onnxrt.graph import COMPUTE, FOLLOWERS, JOINS
from tunekit.adaptors.onnxrt.runtime import quiet
from tunekit.space import OpConfig

#: tunekit's algorithm names → ONNX Runtime's calibration methods.
METHODS: Mapping[str, CalibrationMethod] = {"minmax": CalibrationMethod.MinMax,
                                             "percentile": CalibrationMethod.Percentile,
                                             "entropy": CalibrationMethod.Entropy}
#: Per tensor, its calibrated (min, max).
Ranges = dict[str, tuple[float, float]]


class Feeds(CalibrationDataReader):
    """ONNX Runtime's data-reader protocol over a list of ready input feeds."""

    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
        self.feeds = list(feeds)
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= len(self.feeds):
            return None
        self.position += 1
        return dict(self.feeds[self.position - 1])

    def __len__(self) -> int:
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.feeds = self.feeds[start_index:end_index]
        self.position = 0


def fingerprint(model: onnx.ModelProto, feeds: Sequence[Mapping[str, np.ndarray]]) -> str:
    """A hash of the model and the calibration inputs: what the ranges depend on."""
    digest = hashlib.sha256(model.SerializeToString())
    for feed in feeds:
        for name in sorted(feed):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(feed[name]).tobytes())
    return digest.hexdigest()[:20]


def collect(model: onnx.ModelProto, feeds: Sequence[Mapping[str, np.ndarray]], algorithm: str,
            cache_dir: Path | None = None, key: str | None = None) -> Ranges:
    """The ranges of ``algorithm`` over ``feeds``, from the cache folder when it has them."""
    path = cache_dir / f"onnxrt-{algorithm}-{key}.json" if cache_dir and key else None
    if path is not None and path.is_file():
        return {name: (lo, hi) for name, (lo, hi) in json.loads(path.read_text()).items()}
    with tempfile.TemporaryDirectory(prefix="tunekit-onnxrt-") as folder, quiet():
        source = Path(folder, "model.onnx")
        onnx.save_model(model, source, save_as_external_data=model.ByteSize() > 1_500_000_000)
        calibrator = create_calibrator(source, list(COMPUTE + JOINS + FOLLOWERS),
                                       augmented_model_path=str(Path(folder, "augmented.onnx")),
                                       calibrate_method=METHODS[algorithm],
                                       extra_options=_extra(algorithm))
        calibrator.collect_data(Feeds(feeds))
        if algorithm == "entropy":  # the same search, without ONNX Runtime's Python loops
            calibrator.collector.get_entropy_threshold = entropy_threshold
        data = calibrator.compute_data()
        del calibrator
    ranges = {name: (float(np.min(td.range_value[0])), float(np.max(td.range_value[1])))
              for name, td in data.data.items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ranges))
    return ranges


def _extra(algorithm: str) -> dict[str, Any]:
    """Calibrator settings. Percentile keeps 99.999 % of the values (ONNX Runtime's default).
    Entropy searches 512 bins for the 128-bin window that loses the least information. ONNX
    Runtime's default of 128 bins for both leaves nothing to search (its "entropy" ranges equal
    MinMax's); TensorRT's 2,048 bins cost ONNX Runtime's Python search 21 s on the digits CNN
    here, 512 bins about 1 s (0.1 s with :mod:`.entropy`'s numpy sums)."""
    if algorithm == "percentile":
        return {"percentile": 99.999, "symmetric": False}
    return {"num_bins": 512, "num_quantized_bins": 128} if algorithm == "entropy" else {}


def write_ranges(ranges: Mapping[str, Ranges], owners: Mapping[str, OpConfig],
                 path: Path) -> None:
    """The ranges file of one trial: each tensor's range by its owner's algorithm (MinMax for
    tensors no int8 op owns), in the format ``quantize_static(calibration_cache_path=...)``
    reads."""
    default = ranges["minmax"]
    merged: dict[str, Any] = {}
    for name, (lo, hi) in default.items():
        owner = owners.get(name)
        algorithm = owner.algorithm if owner is not None and owner.algorithm else "minmax"
        lo, hi = ranges[algorithm].get(name, (lo, hi))
        merged[name] = (np.array(lo, dtype=np.float32), np.array(hi, dtype=np.float32))
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, merged), path)


def algorithms_of(configs: Iterable[OpConfig]) -> list[str]:
    """The calibration algorithms ``configs`` use, MinMax always among them."""
    found = ["minmax"]
    for config in configs:
        if config.algorithm and config.algorithm not in found:
            found.append(config.algorithm)
    return found
