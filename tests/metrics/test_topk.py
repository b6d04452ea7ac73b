"""TopK against a numpy reference (stable descending sort), batched and whole."""

from __future__ import annotations

import numpy as np
import pytest

from tunekit.errors import DataError
from tunekit.metrics.topk import TopK


def reference_topk(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Top-k by a stable descending sort: ties go to the lower class index, NaN ranks last."""
    values = np.where(np.isnan(scores), -np.inf, scores)
    top = np.argsort(-values, axis=1, kind="stable")[:, :k]
    return float(np.mean([label in row for row, label in zip(top, labels)]))


def run(metric: TopK, preds: np.ndarray, labels: np.ndarray, batch: int) -> float:
    metric.reset()
    for start in range(0, len(preds), batch):
        metric.update(preds[start:start + batch], labels[start:start + batch])
    return metric.compute()


@pytest.fixture
def logits() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=257)
    scores = rng.normal(size=(257, 10)).astype(np.float32)
    scores[np.arange(257), labels] += rng.normal(1.0, 1.0, size=257)  # better than chance
    return scores, labels


@pytest.mark.parametrize("k", [1, 2, 5, 10])
@pytest.mark.parametrize("batch", [1, 7, 64, 257])
def test_matches_reference_for_any_batching(logits, k, batch):
    scores, labels = logits
    expected = reference_topk(scores, labels, k)
    assert 0.0 < expected <= 1.0
    assert run(TopK(k=k), scores, labels, batch) == pytest.approx(expected, abs=1e-12)


def test_batched_equals_one_big_update(logits):
    scores, labels = logits
    metric = TopK(k=3)
    whole = run(metric, scores, labels, len(scores))
    assert run(metric, scores, labels, 10) == whole


def test_k1_is_argmax_accuracy(logits):
    scores, labels = logits
    assert run(TopK(), scores, labels, 32) == pytest.approx(np.mean(scores.argmax(1) == labels))


def test_k_greater_is_never_lower(logits):
    scores, labels = logits
    values = [run(TopK(k=k), scores, labels, 50) for k in range(1, 11)]
    assert values == sorted(values)
    assert values[-1] == 1.0


def test_one_hot_labels_equal_id_labels(logits):
    scores, labels = logits
    one_hot = np.eye(10, dtype=np.float32)[labels]
    for k in (1, 4):
        assert run(TopK(k=k), scores, one_hot, 20) == run(TopK(k=k), scores, labels, 20)


def test_class_id_predictions_and_column_labels():
    preds = np.array([0, 1, 2, 3])
    metric = TopK()
    metric.update(preds, np.array([[0], [1], [0], [0]]))
    assert metric.compute() == 0.5


def test_ties_go_to_the_lower_class_index():
    scores = np.array([[0.0, 1.0, 1.0, 1.0]] * 4)
    labels = np.array([1, 1, 2, 3])
    assert run(TopK(k=1), scores, labels, 4) == 0.5
    assert run(TopK(k=2), scores, labels, 4) == 0.75
    assert run(TopK(k=3), scores, labels, 4) == 1.0


@pytest.mark.parametrize("k", [1, 3])
def test_coarse_int8_like_scores_match_reference(logits, k):
    scores, labels = logits
    coarse = np.round(scores * 2) / 2  # few distinct values: many ties, as int8 outputs have
    assert run(TopK(k=k), coarse, labels, 16) == pytest.approx(reference_topk(coarse, labels, k))


def test_nan_scores_rank_last():
    scores = np.array([[np.nan, 0.5, 0.1], [np.nan, np.nan, np.nan]])
    labels = np.array([0, 2])
    assert run(TopK(k=1), scores, labels, 2) == 0.0
    assert run(TopK(k=2), scores, labels, 2) == reference_topk(scores, labels, 2) == 0.0


def test_reset_forgets():
    metric = TopK()
    metric.update(np.array([[0.0, 1.0]]), np.array([0]))
    metric.reset()
    metric.update(np.array([[0.0, 1.0]]), np.array([1]))
    assert metric.compute() == 1.0


def test_compute_before_update_fails():
    with pytest.raises(DataError, match="no samples"):
        TopK().compute()


def test_missing_labels_name_the_fix():
    with pytest.raises(DataError, match="yields no labels.*eval_func"):
        TopK().update(np.zeros((2, 3)), None)


@pytest.mark.parametrize("preds, labels, message", [
    (np.zeros((4, 3)), np.array([0, 1, 2]), "3 labels for 4 predictions"),
    (np.zeros((4, 3)), np.eye(4)[:, :4], r"shape \(4, 3\)"),
    (np.zeros((2, 3)), np.array([0, 3]), r"in \[0, 3\)"),
    (np.zeros((2, 3)), np.array([0.5, 1.0]), "integer class ids"),
    (np.zeros((2, 3, 1)), np.array([0, 1]), r"\(N, C\) or \(N,\)"),
    (np.zeros((2, 3)), np.zeros((2, 3)), "no positive entry"),
])
def test_shape_and_value_errors(preds, labels, message):
    with pytest.raises(DataError, match=message):
        TopK().update(preds, labels)


def test_class_ids_need_k1():
    with pytest.raises(DataError, match="per-class scores"):
        TopK(k=2).update(np.array([1, 2]), np.array([1, 2]))


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "2"])
def test_bad_k_fails_at_construction(k):
    with pytest.raises(ValueError, match="positive integer"):
        TopK(k=k)
