"""The NNCF side of ``benchmarks/vs_nncf.py``: runs in NNCF's own virtual environment.

    nncf_driver.py MODEL.onnx DATA.npz MAX_DROP OUT.onnx

``nncf.quantize_with_accuracy_control`` (ONNX backend) with the validation function of
``workloads/onnx_eval.py`` (top-1, per-batch values so NNCF ranks without one call per sample),
an absolute maximum drop, and the 100 calibration samples; writes the quantized model to
OUT.onnx and prints one JSON line: baseline, metric, met, evaluations (validation calls), wall_s.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nncf
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent / "workloads"))
import onnx_eval  # noqa: E402


def main(model_path: str, data_path: str, max_drop: str, out: str) -> int:
    model = onnx.load(model_path)
    data = onnx_eval.load_data(Path(data_path))
    calls = 0

    def validate(candidate: onnx.ModelProto, _items: object) -> tuple[float, list[float]]:
        nonlocal calls
        calls += 1
        session = onnx_eval.session(candidate.SerializeToString())
        return onnx_eval.accuracy(lambda feed: session.run(None, feed)[0], data)

    calibration = nncf.Dataset(onnx_eval.batches(data, "calib", 1))
    validation = nncf.Dataset(onnx_eval.batches(data, "eval"))
    started = time.perf_counter()
    quantized = nncf.quantize_with_accuracy_control(
        model, calibration, validation, validation_fn=validate, max_drop=float(max_drop),
        drop_type=nncf.DropType.ABSOLUTE, subset_size=len(data["x_calib"]))
    wall = time.perf_counter() - started
    onnx.save_model(quantized, out)
    baseline = validate(model, None)[0]
    metric = validate(quantized, None)[0]
    print(json.dumps({"baseline": baseline, "metric": metric, "evaluations": calls - 2,
                      "met": metric >= baseline - float(max_drop) - 1e-9, "wall_s": wall}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
