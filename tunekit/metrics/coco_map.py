"""COCO box mAP as a streaming metric, and the same figures from COCO json files.

``update(preds, labels)`` takes one batch of images (what torchvision detection models return,
turned into numpy by the adaptor):

- ``preds``: a sequence with one dict per image: ``boxes`` (n, 4), ``scores`` (n,), ``labels``
  (n,) category ids;
- ``labels``: a sequence with one dict per image: ``boxes`` (m, 4), ``labels`` (m,), and
  optionally ``iscrowd`` (m,), ``area`` (m,) (default: the box area) and ``image_id``.

Boxes are ``xyxy`` corners by default (torchvision's convention), or ``xywh`` (COCO's) with
``box_format="xywh"``. :func:`evaluate_json` takes a COCO ground-truth dataset and a COCO result
list (dicts, or paths of json files) instead. The evaluation itself is
:mod:`tunekit.metrics.coco_eval`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunekit.errors import DataError
from tunekit.metric import Metric
from tunekit.metrics.coco_eval import MAX_DETS, Boxes, evaluate

BOX_FORMATS = ("xyxy", "xywh")
STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


class CocoMAP(Metric):
    """COCO box AP (IoU 0.50:0.05:0.95) or another COCO summary figure (``stat``: AP50, AP75,
    APs/m/l, AR1/10/100, ARs/m/l), equal to pycocotools' ``COCOeval.stats`` on the same data.

    Categories are those of the ground truth, as in COCO: a category without ground-truth boxes
    has no AP and does not enter the mean. Images are numbered in the order they arrive unless
    the labels give an ``image_id``. :meth:`stats` gives all twelve figures.
    """

    def __init__(self, *, stat: str = "AP", box_format: str = "xyxy") -> None:
        if stat not in STATS:
            raise ValueError(f"stat must be one of {', '.join(STATS)}, got {stat!r}")
        if box_format not in BOX_FORMATS:
            raise ValueError(f"box_format must be xyxy or xywh, got {box_format!r}")
        self.stat = stat
        self.box_format = box_format
        self.reset()

    def reset(self) -> None:
        self._gts: dict[tuple[int, int], Boxes] = {}
        self._dts: dict[tuple[int, int], Boxes] = {}
        self._images: list[int] = []

    def update(self, preds: Any, labels: Any) -> None:
        if labels is None or len(preds) != len(labels):
            raise DataError("coco_map needs one ground-truth dict per image, as many as "
                            f"prediction dicts; got {len(preds)} predictions and "
                            f"{'no labels' if labels is None else len(labels)}")
        for dets, truth in zip(preds, labels):
            image = int(truth.get("image_id", len(self._images)))
            if image in self._images:
                raise DataError(f"coco_map got image_id {image} twice")
            self._images.append(image)
            self._add(image, dets, truth)

    def _add(self, image: int, dets: Mapping[str, Any], truth: Mapping[str, Any]) -> None:
        gt_boxes = _xywh(_field(truth, "boxes", (-1, 4)), self.box_format)
        gt_labels = _field(truth, "labels", (len(gt_boxes),)).astype(np.int64)
        crowd = _optional(truth, "iscrowd", len(gt_boxes), 0).astype(bool)
        area = _optional(truth, "area", len(gt_boxes), None)
        area = gt_boxes[:, 2] * gt_boxes[:, 3] if area is None else area
        dt_boxes = _xywh(_field(dets, "boxes", (-1, 4)), self.box_format)
        scores = _field(dets, "scores", (len(dt_boxes),))
        dt_labels = _field(dets, "labels", (len(dt_boxes),)).astype(np.int64)
        for category in np.unique(gt_labels).tolist():
            pick = gt_labels == category
            self._gts[image, category] = Boxes(gt_boxes[pick], area[pick], crowd=crowd[pick])
        for category in np.unique(dt_labels).tolist():
            pick = dt_labels == category
            box = dt_boxes[pick]
            self._dts[image, category] = Boxes(box, box[:, 2] * box[:, 3], scores=scores[pick])

    def stats(self) -> dict[str, float]:
        """All twelve COCO figures over the images seen; -1 where there is no ground truth."""
        categories = sorted({category for _, category in self._gts})
        return evaluate(sorted(self._images), categories, self._gts, self._dts)

    def compute(self) -> float:
        if not self._images:
            raise DataError("coco_map has seen no images")
        value = self.stats()[self.stat]
        if value < 0:
            raise DataError(f"coco_map {self.stat} is undefined: the ground truth has no "
                            "(non-crowd) box in its area range")
        return value


def evaluate_json(ground_truth: Mapping[str, Any] | str | Path,
                  detections: Sequence[Mapping[str, Any]] | str | Path,
                  max_dets: Sequence[int] = MAX_DETS) -> dict[str, float]:
    """The twelve COCO figures for a COCO dataset (``images``, ``annotations``, ``categories``)
    and a COCO result list (``image_id``, ``category_id``, ``bbox`` xywh, ``score``), as
    ``COCOeval(gt, gt.loadRes(dets), "bbox")`` gives them. A detection on an image the dataset
    does not list is an error, as in pycocotools."""
    dataset = _read_json(ground_truth)
    results = _read_json(detections)
    images = sorted(int(image["id"]) for image in dataset["images"])
    categories = sorted(int(category["id"]) for category in dataset["categories"])
    gts = _group(dataset["annotations"], crowd=True)
    unknown = {int(d["image_id"]) for d in results} - set(images)
    if unknown:
        raise DataError(f"detections refer to images the ground truth does not list: "
                        f"{sorted(unknown)[:5]}")
    return evaluate(images, categories, gts, _group(results, crowd=False), max_dets)


def _group(annotations: Sequence[Mapping[str, Any]], crowd: bool) -> dict[tuple[int, int], Boxes]:
    """COCO annotations by (image, category), in list order."""
    grouped: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for ann in annotations:
        grouped.setdefault((int(ann["image_id"]), int(ann["category_id"])), []).append(ann)
    boxes = {}
    for key, anns in grouped.items():
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        if crowd:
            area = np.array([a.get("area", b[2] * b[3]) for a, b in zip(anns, xywh)], dtype=float)
            boxes[key] = Boxes(xywh, area, crowd=np.array([bool(a.get("iscrowd", 0))
                                                           for a in anns]))
        else:
            boxes[key] = Boxes(xywh, xywh[:, 2] * xywh[:, 3],
                               scores=np.array([a["score"] for a in anns], dtype=np.float64))
    return boxes


def _read_json(source: Any) -> Any:
    if isinstance(source, (str, Path)):
        return json.loads(Path(source).read_text())
    return source


def _field(record: Mapping[str, Any], key: str, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(record, Mapping) or key not in record:
        raise DataError(f"coco_map: each image's dict needs {key!r}; got "
                        f"{sorted(record) if isinstance(record, Mapping) else type(record)}")
    values = np.asarray(record[key], dtype=np.float64)
    try:
        return values.reshape(shape)
    except ValueError:
        raise DataError(f"coco_map: {key!r} has shape {values.shape}, expected "
                        f"{tuple('n' if s == -1 else s for s in shape)}") from None


def _optional(record: Mapping[str, Any], key: str, n: int, default: float | None
              ) -> np.ndarray | None:
    if key in record:
        return _field(record, key, (n,))
    return None if default is None else np.full(n, default, dtype=np.float64)


def _xywh(boxes: np.ndarray, box_format: str) -> np.ndarray:
    if box_format == "xywh":
        return boxes
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
