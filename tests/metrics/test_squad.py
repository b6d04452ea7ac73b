"""SQuAD v1.1 F1 and exact match against the official evaluation script's functions.

The oracle below is ``evaluate-v1.1.py`` from the SQuAD site, copied unchanged except for names;
the answers are generated from a seed with case, punctuation, articles and white space noise.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any

import numpy as np
import pytest

from tunekit.errors import DataError
from tunekit.metrics.squad import SquadExactMatch, SquadF1
from tunekit.testing.metric_contract import MetricContract


# --- official evaluate-v1.1.py ---------------------------------------------------------------
def official_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_f1_score(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def official_exact_match_score(prediction, ground_truth):
    return (official_normalize_answer(prediction) == official_normalize_answer(ground_truth))


def official_max_over_ground_truths(metric_fn, prediction, ground_truths):
    return max(metric_fn(prediction, gt) for gt in ground_truths)
# ----------------------------------------------------------------------------------------------


WORDS = ["The", "a", "An", "cat", "Paris", "1984", "rock-'n'-roll", "U.S.", "theory", "an",
         "Anne", "the", "atlas", "", "  ", "Einstein's", "(1905)", "e=mc²", "Ünïcode", "again!"]


def phrase(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(0, 6))).tolist())


def questions(seed: int, n: int = 60, batch: int = 16) -> list[tuple[list[str], list[Any]]]:
    rng = np.random.default_rng(seed)
    preds, labels = [], []
    for _ in range(n):
        answers = [phrase(rng) for _ in range(int(rng.integers(1, 4)))]
        preds.append(answers[0].upper() if rng.random() < 0.2 else phrase(rng))
        labels.append(answers if len(answers) > 1 or rng.random() < 0.5 else answers[0])
    return [(preds[i:i + batch], labels[i:i + batch]) for i in range(0, n, batch)]


def official(fn: Any, preds: list[str], labels: list[Any]) -> float:
    scores = [official_max_over_ground_truths(fn, p, [a] if isinstance(a, str) else a)
              for p, a in zip(preds, labels)]
    return float(np.mean(scores))


class TestSquadF1(MetricContract):
    seeds = (0, 1, 2)

    def make_metric(self) -> SquadF1:
        return SquadF1()

    def make_batches(self, seed: int) -> list[tuple[Any, Any]]:
        return questions(seed)

    def reference(self, preds: Any, labels: Any) -> float:
        return official(official_f1_score, preds, labels)


class TestSquadExactMatch(TestSquadF1):
    def make_metric(self) -> SquadExactMatch:
        return SquadExactMatch()

    def reference(self, preds: Any, labels: Any) -> float:
        return official(official_exact_match_score, preds, labels)


def test_scores_are_not_trivial_and_inputs_are_checked():
    metric = SquadF1()
    metric.update(["the Eiffel tower", "Paris"], [["Eiffel Tower!", "tower"], "in Paris, France"])
    assert metric.compute() == pytest.approx((1.0 + 2 * (1 * 1 / 3) / (1 + 1 / 3)) / 2)
    with pytest.raises(DataError, match="one list of reference answers"):
        metric.update(["a", "b"], [["a"]])
    with pytest.raises(DataError, match="strings"):
        metric.update([3], [["3"]])
