"""COCO box evaluation (``COCOeval`` with ``iouType="bbox"``) in numpy, step for step.

Why our own and not pycocotools: pycocotools is a C extension that needs a compiler where no
wheel exists, prints to stdout, reads only whole json datasets, and its ``loadRes`` fails on an
empty detection list; a metric must stream batches and work wherever numpy does. pycocotools
stays the test oracle (the ``coco`` extra): the tests require equal results to 1e-6 on
randomised inputs with crowd regions, empty images and images without detections.

Every choice below mirrors ``pycocotools/cocoeval.py`` 2.0.x: stable (mergesort) ordering by
descending score, gts sorted so that ignored ones come last, greedy matching in score order
where a crowd gt may match many detections, unmatched detections outside the area range
ignored, 101-point interpolated precision made monotone from the right, and ``-1`` for a figure
that has no ground truth to measure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES: Mapping[str, tuple[float, float]] = {
    "all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
    "large": (96.0 ** 2, 1e5 ** 2)}
MAX_DETS = (1, 10, 100)


@dataclass(frozen=True)
class Boxes:
    """The boxes of one image and one category: ``xywh`` (n, 4) float64, ``area`` (n,),
    ``crowd`` (n,) bool for ground truth or ``scores`` (n,) for detections, in input order."""

    xywh: np.ndarray
    area: np.ndarray
    crowd: np.ndarray | None = None
    scores: np.ndarray | None = None


@dataclass(frozen=True)
class _ImageEval:
    scores: np.ndarray       # (D,) detections by descending score, at most max(max_dets)
    matched: np.ndarray      # (T, D) bool
    ignored: np.ndarray      # (T, D) bool
    gt_ignored: np.ndarray   # (G,) bool


def box_iou(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU (D, G) of ``xywh`` boxes as pycocotools' ``bbIou``; for a crowd gt the union is the
    detection's own area (a detection inside a crowd region is fully covered)."""
    if not len(dets) or not len(gts):
        return np.zeros((len(dets), len(gts)))
    d, g = dets[:, None, :], gts[None, :, :]
    w = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    inter = w * h
    d_area, g_area = d[..., 2] * d[..., 3], g[..., 2] * g[..., 3]
    union = np.where(crowd[None, :], d_area, d_area + g_area - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((w > 0) & (h > 0), inter / union, 0.0)


def _match(ious: np.ndarray, gt_ignored: np.ndarray, crowd: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching per IoU threshold: each detection, best score first, takes the free gt
    with the highest IoU ≥ the threshold (the last one on ties), preferring gts that are not
    ignored; a crowd gt never becomes taken."""
    n_t, (n_d, n_g) = len(IOU_THRESHOLDS), ious.shape
    matched = np.zeros((n_t, n_d), dtype=bool)
    ignored = np.zeros((n_t, n_d), dtype=bool)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(n_g, dtype=bool)
        for d in range(n_d):
            eligible = ~(taken & ~crowd) & (ious[d] >= min(threshold, 1 - 1e-10))
            for pool in (eligible & ~gt_ignored, eligible & gt_ignored):
                if pool.any():
                    candidates = np.flatnonzero(pool)
                    values = ious[d, candidates]
                    best = candidates[np.flatnonzero(values == values.max())[-1]]
                    matched[t, d], ignored[t, d], taken[best] = True, gt_ignored[best], True
                    break
    return matched, ignored


def evaluate_image(gt: Boxes, dt: Boxes, area_range: tuple[float, float], max_det: int
                   ) -> _ImageEval | None:
    """One image, one category, one area range; None when it has neither gts nor detections."""
    if not len(gt.xywh) and not len(dt.xywh):
        return None
    assert gt.crowd is not None and dt.scores is not None
    lo, hi = area_range
    outside = gt.crowd | (gt.area < lo) | (gt.area > hi)
    gt_order = np.argsort(outside, kind="mergesort")
    dt_order = np.argsort(-dt.scores, kind="mergesort")[:max_det]
    crowd = gt.crowd[gt_order]
    ious = box_iou(dt.xywh[dt_order], gt.xywh[gt_order], crowd)
    matched, ignored = _match(ious, outside[gt_order], crowd)
    dt_area = dt.area[dt_order]
    ignored |= ~matched & ((dt_area < lo) | (dt_area > hi))[None, :]
    return _ImageEval(dt.scores[dt_order], matched, ignored, outside[gt_order])


def _precision_recall(evals: Sequence[_ImageEval], max_det: int
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """Interpolated precision (T, R) and final recall (T,) over images; None without gts."""
    gt_ignored = np.concatenate([e.gt_ignored for e in evals])
    positives = np.count_nonzero(~gt_ignored)
    if positives == 0:
        return None
    scores = np.concatenate([e.scores[:max_det] for e in evals])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e.matched[:, :max_det] for e in evals], axis=1)[:, order]
    ignored = np.concatenate([e.ignored[:, :max_det] for e in evals], axis=1)[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1, dtype=np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1, dtype=np.float64)
    n_t, n_d = tp.shape
    precision = np.zeros((n_t, len(RECALL_THRESHOLDS)))
    recall = np.zeros(n_t)
    for t in range(n_t):
        if not n_d:
            continue
        rc = tp[t] / positives
        pr = np.maximum.accumulate((tp[t] / (fp[t] + tp[t] + np.spacing(1)))[::-1])[::-1]
        recall[t] = rc[-1]
        at = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        found = at < n_d
        precision[t, found] = pr[at[found]]
    return precision, recall


def evaluate(images: Sequence[int], categories: Sequence[int],
             gts: Mapping[tuple[int, int], Boxes], dts: Mapping[tuple[int, int], Boxes],
             max_dets: Sequence[int] = MAX_DETS) -> dict[str, float]:
    """The 12 COCO summary figures (AP, AP50, AP75, APs/m/l, AR at each max_dets, ARs/m/l).

    ``gts``/``dts`` map (image, category) to that image's boxes of that category; missing keys
    are empty. AP figures use the largest ``max_dets``.
    """
    empty = Boxes(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0))
    max_dets = sorted(max_dets)
    shape = (len(IOU_THRESHOLDS), len(categories), len(AREA_RANGES), len(max_dets))
    precision = -np.ones(shape[:1] + (len(RECALL_THRESHOLDS),) + shape[1:])
    recall = -np.ones(shape)
    for k, category in enumerate(categories):
        for a, area_range in enumerate(AREA_RANGES.values()):
            evals = [e for image in images if (e := evaluate_image(
                gts.get((image, category), empty), dts.get((image, category), empty),
                area_range, max_dets[-1])) is not None]
            if not evals:
                continue
            for m, max_det in enumerate(max_dets):
                curves = _precision_recall(evals, max_det)
                if curves is not None:
                    precision[:, :, k, a, m], recall[:, k, a, m] = curves
    return _summarize(precision, recall, max_dets)


def _summarize(precision: np.ndarray, recall: np.ndarray, max_dets: Sequence[int]
               ) -> dict[str, float]:
    areas = list(AREA_RANGES)

    def mean(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    def ap(iou: float | None = None, area: str = "all") -> float:
        s = precision[..., areas.index(area), len(max_dets) - 1]
        return mean(s[np.where(iou == IOU_THRESHOLDS)[0]] if iou is not None else s)

    def ar(max_det_index: int, area: str = "all") -> float:
        return mean(recall[:, :, areas.index(area), max_det_index])

    last = len(max_dets) - 1
    stats = {"AP": ap(), "AP50": ap(0.5), "AP75": ap(0.75), "APs": ap(area="small"),
             "APm": ap(area="medium"), "APl": ap(area="large")}
    stats.update({f"AR{m}": ar(i) for i, m in enumerate(max_dets)})
    stats.update({"ARs": ar(last, "small"), "ARm": ar(last, "medium"), "ARl": ar(last, "large")})
    return stats
