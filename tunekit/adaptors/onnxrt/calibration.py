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
from onnxruntime.quantization.calibrate import (HistogramCollector, TensorsData, create_calibrator,
                                                save_tensors_data)

from tunekit.adaptors.onnxrt.entropy import entropy_threshold
from tunekit.adaptors.onnxrt.graph import COMPUTE, FOLLOWERS, JOINS, MASK_MAGNITUDE
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


def collect(model: onnx.ModelProto, feeds: Sequence[Mapping[str, np.ndarray]],
            algorithms: Sequence[str], cache_dir: Path | None = None,
            key: str | None = None) -> dict[str, Ranges]:
    """The ranges of each of ``algorithms`` over ``feeds``, from the cache folder where it has
    them. MinMax runs in its own pass (ONNX Runtime reduces each tensor in the graph, so no
    activation is kept); the histogram algorithms share one pass: each calibration pass costs
    an augmented model, a session and a run over every calibration batch."""
    paths = {a: cache_dir / f"onnxrt-{a}-{key}.json" if cache_dir and key else None
             for a in algorithms}
    found = {a: _load(path) for a, path in paths.items() if path is not None and path.is_file()}
    missing = [a for a in algorithms if a not in found]
    for group in ([a for a in missing if a == "minmax"], [a for a in missing if a != "minmax"]):
        if group:
            found.update(_calibrate(model, feeds, group))
    for algorithm in missing:
        path = paths[algorithm]
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(found[algorithm]))
    return found


def _load(path: Path) -> Ranges:
    return {name: (lo, hi) for name, (lo, hi) in json.loads(path.read_text()).items()}


def _calibrate(model: onnx.ModelProto, feeds: Sequence[Mapping[str, np.ndarray]],
               algorithms: Sequence[str]) -> dict[str, Ranges]:
    """One pass of ONNX Runtime's calibrator for ``algorithms[0]`` whose collected activations
    go to one collector per algorithm (all of them histogram algorithms, or MinMax alone)."""
    with tempfile.TemporaryDirectory(prefix="tunekit-onnxrt-") as folder, quiet():
        source = Path(folder, "model.onnx")
        onnx.save_model(model, source, save_as_external_data=model.ByteSize() > 1_500_000_000)
        calibrator = create_calibrator(source, list(COMPUTE + JOINS + FOLLOWERS),
                                       augmented_model_path=str(Path(folder, "augmented.onnx")),
                                       calibrate_method=METHODS[algorithms[0]],
                                       extra_options=_extra(algorithms[0]))
        collectors = {a: _collector(a) for a in algorithms if a != "minmax"}
        if collectors:
            calibrator.collector = _Tee(list(collectors.values()))
        calibrator.collect_data(Feeds(feeds))
        results = {a: TensorsData(METHODS[a], c.compute_collection_result()).data
                   if c.histogram_dict else {} for a, c in collectors.items()}
        if not collectors:
            results["minmax"] = calibrator.compute_data().data
        del calibrator
    return {algorithm: {name: (float(np.min(td.range_value[0])), float(np.max(td.range_value[1])))
                        for name, td in data.items()}
            for algorithm, data in results.items()}


class _Tee:
    """The collector ONNX Runtime's calibrator feeds: hands one pass's activations to each
    histogram collector in turn (none of them changes them), one tensor at a time, its batches
    as one flat array: ONNX Runtime's collector stacks them with ``np.asarray``, which fails
    when they differ in shape (a last, smaller calibration batch), and a tensor then lost its
    histogram ranges. A tensor no histogram can span (:func:`_spannable`: an attention mask's
    -3.4e38 or -inf beside O(1) scores) is left out of every histogram algorithm, and so takes
    its MinMax range (:func:`write_ranges`), instead of failing the algorithm for every
    tensor."""

    def __init__(self, collectors: Sequence[HistogramCollector]) -> None:
        self.collectors = collectors

    def collect(self, name_to_arr: Mapping[str, Any]) -> None:
        for name, arrays in name_to_arr.items():
            parts = arrays if isinstance(arrays, (list, tuple)) else [arrays]
            values = np.concatenate([np.asarray(a).ravel() for a in parts])
            if _spannable(values):
                for collector in self.collectors:
                    collector.collect({name: values})


def _spannable(values: np.ndarray) -> bool:
    """Whether a histogram can span ``values``: all finite and below the magnitude that marks
    a mask's "minus infinity" (:data:`~.graph.MASK_MAGNITUDE`: a sentinel, not data; a
    histogram over ±3.4e38 overflows float32, numpy cannot make finite-width bins)."""
    return bool(values.size == 0 or np.abs(values).max() < MASK_MAGNITUDE)


def _collector(algorithm: str) -> HistogramCollector:
    """ONNX Runtime's histogram collector for ``algorithm`` with :func:`_extra`'s settings;
    entropy's threshold search is :mod:`.entropy`'s (the same search, without Python loops)."""
    extra = _extra(algorithm)
    collector = HistogramCollector(method=algorithm, symmetric=extra["symmetric"],
                                   num_bins=extra["num_bins"],
                                   num_quantized_bins=extra.get("num_quantized_bins", 128),
                                   percentile=extra.get("percentile", 99.999), scenario="same")
    if algorithm == "entropy":
        collector.get_entropy_threshold = entropy_threshold  # type: ignore[method-assign]
    return collector


def _extra(algorithm: str) -> dict[str, Any]:
    """Calibrator settings. Percentile keeps 99.999 % of the values (ONNX Runtime's default)
    in 2,048 bins. Entropy searches 512 bins for the 128-bin window that loses the least
    information. ONNX Runtime's default of 128 bins for both leaves nothing to search (its
    "entropy" ranges equal MinMax's); TensorRT's 2,048 bins cost ONNX Runtime's Python search
    21 s on the digits CNN here, 512 bins about 1 s (0.02 s with :mod:`.entropy`)."""
    if algorithm == "percentile":
        return {"percentile": 99.999, "symmetric": False, "num_bins": 2048}
    if algorithm == "entropy":
        return {"num_bins": 512, "num_quantized_bins": 128, "symmetric": False}
    return {}


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
