"""tunekit's numpy entropy search picks exactly the thresholds ONNX Runtime's own search picks, on
the histograms ONNX Runtime collects from a real model, in a fraction of the time."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator  # noqa: E402

from tunekit.adaptors.onnxrt.calibration import Feeds  # noqa: E402
from tunekit.adaptors.onnxrt.entropy import entropy_threshold  # noqa: E402
from tunekit.adaptors.onnxrt.graph import COMPUTE, FOLLOWERS, JOINS, named  # noqa: E402


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_same_thresholds_as_onnx_runtime(onnx_digits: Any, onnx_calib: list,
                                         scale: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder, "model.onnx")
        onnx.save_model(named(onnx_digits), source)
        calibrator = create_calibrator(source, list(COMPUTE + JOINS + FOLLOWERS),
                                       augmented_model_path=str(Path(folder, "augmented.onnx")),
                                       calibrate_method=CalibrationMethod.Entropy,
                                       extra_options={"num_bins": 512, "num_quantized_bins": 128})
        calibrator.collect_data(Feeds([{"x": x * scale} for x, _ in onnx_calib]))
        histograms = calibrator.collector.histogram_dict
        started = time.perf_counter()
        theirs = {t: calibrator.collector.get_entropy_threshold(h, 128)
                  for t, h in histograms.items()}
        middle = time.perf_counter()
        ours = {t: entropy_threshold(h, 128) for t, h in histograms.items()}
        ended = time.perf_counter()
    assert len(ours) >= 10
    for tensor, (low, high) in theirs.items():
        assert (ours[tensor][0], ours[tensor][1]) == (low, high), tensor
        assert ours[tensor][0].dtype == low.dtype
    # the point of it: several times faster (ONNX Runtime's loop took ~1 s here, ours ~0.2 s)
    assert ended - middle < (middle - started) / 2
    # entropy clips: at least one tensor's range is narrower than its observed min..max
    assert any(low > h[2] or high < h[3] for (low, high), h in
               zip((theirs[t] for t in histograms), histograms.values()))


@pytest.mark.parametrize("seed", range(6))
def test_same_thresholds_on_varied_histograms(seed: int) -> None:
    """Histograms ONNX Runtime can hand over besides 512 even bins: odd widths (its collector
    widens a histogram when later data exceed the range), sparse bins, heavy tails."""
    import numpy as np
    from onnxruntime.quantization.calibrate import HistogramCollector

    rng = np.random.default_rng(seed)
    size = int(rng.choice([300, 511, 512, 777, 1024]))
    values = np.concatenate([rng.standard_t(2 + seed, 20_000), rng.normal(0, 0.1, 5_000)])
    hist, edges = np.histogram(values, bins=size)
    hist[rng.random(size) < 0.2 * (seed % 3)] = 0  # sparse bins on some seeds
    histogram = (hist, edges.astype(np.float32), np.float32(values.min()),
                 np.float32(values.max()))
    collector = HistogramCollector("entropy", False, size, 128, 99.999, "same")
    assert entropy_threshold(histogram, 128) == collector.get_entropy_threshold(histogram, 128)


def test_one_shared_pass_gives_onnx_runtimes_own_ranges(onnx_digits: Any,
                                                        onnx_calib: list) -> None:
    """The histogram algorithms share one calibration pass (:mod:`..calibration`); each one's
    ranges are the ones ONNX Runtime's own calibrator of that method computes alone."""
    import numpy as np

    from tunekit.adaptors.onnxrt import calibration

    model = named(onnx_digits)
    feeds = [{"x": x} for x, _ in onnx_calib]
    shared = calibration._calibrate(model, feeds, ["percentile", "entropy"])
    for algorithm in ("percentile", "entropy"):
        with tempfile.TemporaryDirectory() as folder:
            onnx.save_model(model, Path(folder, "model.onnx"))
            alone = create_calibrator(Path(folder, "model.onnx"), list(COMPUTE + JOINS + FOLLOWERS),
                                      augmented_model_path=str(Path(folder, "augmented.onnx")),
                                      calibrate_method=calibration.METHODS[algorithm],
                                      extra_options=calibration._extra(algorithm))
            alone.collect_data(Feeds(feeds))
            data = alone.compute_data().data
        assert shared[algorithm] == {
            name: (float(np.min(td.range_value[0])), float(np.max(td.range_value[1])))
            for name, td in data.items()}, algorithm
