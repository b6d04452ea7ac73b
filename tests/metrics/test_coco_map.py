"""COCO mAP against pycocotools' COCOeval on randomised data the test generates (fixed seeds).

The data has what breaks naive implementations: empty images, images without detections, crowd
regions, annotation areas that differ from box areas, all three area ranges, more detections
than maxDets, a category without ground truth and detections of a category the dataset lacks.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest

from tunekit.errors import DataError
from tunekit.metrics.coco_eval import box_iou
from tunekit.metrics.coco_map import STATS, CocoMAP, evaluate_json
from tunekit.testing.metric_contract import MetricContract

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """xywh boxes whose sizes span small (<32²), medium and large (>96²) areas."""
    scale = rng.choice([12.0, 50.0, 160.0], size=n)
    wh = scale[:, None] * rng.uniform(0.5, 1.5, size=(n, 2))
    xy = rng.uniform(0, 400, size=(n, 2))
    return np.round(np.concatenate([xy, wh], axis=1), 2)


def jitter(rng: np.random.Generator, boxes: np.ndarray) -> np.ndarray:
    """Detections near ground-truth boxes, with IoUs spread over the 0.5..0.95 thresholds."""
    noise = rng.normal(0, 0.12, size=boxes.shape) * boxes[:, [2, 3, 2, 3]]
    out = boxes + noise
    out[:, 2:] = np.maximum(out[:, 2:], 1.0)
    return np.round(out, 2)


def random_dataset(seed: int, images: int = 40, categories: int = 4) -> tuple[dict, list, list]:
    """(COCO dataset, COCO results, per-image arrays) describing the same data."""
    rng = np.random.default_rng(seed)
    anns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    per_image = []
    for image in range(1, images + 1):
        kind = rng.integers(0, 6)
        n_gt = 0 if kind == 0 else int(rng.integers(1, 12))
        gt = random_boxes(rng, n_gt)
        gt_labels = rng.integers(1, categories + 1, size=n_gt)  # category `categories+1` unused
        crowd = rng.random(n_gt) < 0.1
        area = np.where(rng.random(n_gt) < 0.2, gt[:, 2] * gt[:, 3] * rng.uniform(0.3, 1.2, n_gt),
                        gt[:, 2] * gt[:, 3])
        for box, label, is_crowd, a in zip(gt, gt_labels, crowd, area):
            anns.append({"id": len(anns) + 1, "image_id": image, "category_id": int(label),
                         "bbox": box.tolist(), "area": float(a), "iscrowd": int(is_crowd)})
        if kind == 1:  # an image without detections
            dt, scores, dt_labels = np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int)
        else:
            hits = jitter(rng, gt[rng.random(n_gt) < 0.8])
            false = random_boxes(rng, int(rng.integers(0, 120 if kind == 2 else 8)))
            dt = np.concatenate([hits, false])
            scores = np.round(rng.random(len(dt)), 3)  # rounded: ties happen, order must hold
            dt_labels = np.concatenate([gt_labels[: len(hits)] if len(hits) else [],
                                        rng.integers(1, categories + 3, size=len(false))]
                                       ).astype(int)
            dt_labels[: len(hits)] = np.where(rng.random(len(hits)) < 0.9, dt_labels[: len(hits)],
                                              rng.integers(1, categories + 1, size=len(hits)))
        for box, score, label in zip(dt, scores, dt_labels):
            results.append({"image_id": image, "category_id": int(label),
                            "bbox": box.tolist(), "score": float(score)})
        per_image.append(({"boxes": dt, "scores": scores, "labels": dt_labels},
                          {"boxes": gt, "labels": gt_labels, "iscrowd": crowd, "area": area,
                           "image_id": image}))
    dataset = {"images": [{"id": i} for i in range(1, images + 1)], "annotations": anns,
               "categories": [{"id": c} for c in range(1, categories + 2)]}
    return dataset, results, per_image


def pycocotools_stats(dataset: dict, results: list) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(STATS, evaluator.stats.tolist()))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_json_form_equals_pycocotools(seed):
    dataset, results, _ = random_dataset(seed)
    ours = evaluate_json(dataset, results)
    expected = pycocotools_stats(dataset, results)
    assert ours == pytest.approx(expected, abs=1e-6)
    assert 0 < ours["AP"] < 1 and ours["APs"] != -1 and ours["APl"] != -1


@pytest.mark.parametrize("seed", [4, 5])
def test_streamed_arrays_equal_pycocotools(seed):
    dataset, results, per_image = random_dataset(seed)
    metric = CocoMAP(box_format="xywh")
    for start in range(0, len(per_image), 7):
        chunk = per_image[start:start + 7]
        metric.update([p for p, _ in chunk], [t for _, t in chunk])
    assert metric.stats() == pytest.approx(pycocotools_stats(dataset, results), abs=1e-6)
    assert metric.compute() == pytest.approx(metric.stats()["AP"])


def test_xyxy_boxes_are_converted():
    _, _, per_image = random_dataset(6, images=10)
    xywh = CocoMAP(box_format="xywh", stat="AP50")
    xyxy = CocoMAP(stat="AP50")
    xywh.update([p for p, _ in per_image], [t for _, t in per_image])

    def corners(record: dict) -> dict:
        boxes = record["boxes"]
        return {**record, "boxes": np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)}

    xyxy.update([corners(p) for p, _ in per_image], [corners(t) for _, t in per_image])
    assert xyxy.compute() == pytest.approx(xywh.compute(), abs=1e-9)


def test_perfect_detections_score_one_and_crowd_iou_uses_detection_area():
    boxes = np.array([[0, 0, 10, 10], [20, 20, 60, 60]], dtype=float)
    metric = CocoMAP()
    metric.update([{"boxes": boxes, "scores": [0.9, 0.8], "labels": [1, 2]}],
                  [{"boxes": boxes, "labels": [1, 2]}])
    assert metric.compute() == pytest.approx(1.0)
    # a 5x5 detection inside a 10x10 crowd region: IoU 1 against the crowd, 0.25 otherwise
    inside, region = np.array([[0, 0, 5, 5.0]]), np.array([[0, 0, 10, 10.0]])
    assert box_iou(inside, region, np.array([True]))[0, 0] == 1.0
    assert box_iou(inside, region, np.array([False]))[0, 0] == 0.25


def test_undefined_figure_and_bad_inputs_are_data_errors():
    metric = CocoMAP(stat="APl")
    metric.update([{"boxes": np.zeros((0, 4)), "scores": [], "labels": []}],
                  [{"boxes": [[0, 0, 5, 5]], "labels": [1]}])
    with pytest.raises(DataError, match="undefined"):
        metric.compute()
    with pytest.raises(DataError, match="'scores'"):
        metric.update([{"boxes": np.zeros((1, 4)), "labels": [1]}],
                      [{"boxes": [[0, 0, 5, 5]], "labels": [1]}])
    with pytest.raises(DataError, match="seen no images"):
        CocoMAP().compute()
    with pytest.raises(ValueError, match="stat"):
        CocoMAP(stat="mAP")


class TestCocoContract(MetricContract):
    """The shipped contract: batching does not matter, reset forgets, matches pycocotools."""

    def make_metric(self) -> CocoMAP:
        return CocoMAP(box_format="xywh")

    def make_batches(self, seed: int) -> list[tuple[Any, Any]]:
        _, _, per_image = random_dataset(seed, images=12)
        return [([p for p, _ in per_image[i:i + 5]], [t for _, t in per_image[i:i + 5]])
                for i in range(0, len(per_image), 5)]

    def reference(self, preds: Any, labels: Any) -> float:
        return pycocotools_stats(*to_coco_json(preds, labels))["AP"]


def to_coco_json(preds: list[dict], labels: list[dict]) -> tuple[dict, list]:
    """Per-image xywh arrays as a COCO dataset and result list (what pycocotools reads)."""
    anns, results = [], []
    for dets, truth in zip(preds, labels):
        image = truth["image_id"]
        for box, label, crowd, area in zip(truth["boxes"], truth["labels"], truth["iscrowd"],
                                           truth["area"]):
            anns.append({"id": len(anns) + 1, "image_id": image, "category_id": int(label),
                         "bbox": box.tolist(), "area": float(area), "iscrowd": int(crowd)})
        results += [{"image_id": image, "category_id": int(label), "bbox": box.tolist(),
                     "score": float(score)}
                    for box, score, label in zip(dets["boxes"], dets["scores"], dets["labels"])]
    categories = sorted({a["category_id"] for a in anns})
    return ({"images": [{"id": t["image_id"]} for t in labels], "annotations": anns,
             "categories": [{"id": c} for c in categories]}, results)
