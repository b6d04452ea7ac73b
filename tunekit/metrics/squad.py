"""SQuAD v1.1 answer scores: token-overlap F1 and exact match, as the official script computes.

The official ``evaluate-v1.1.py`` normalises answers (lower case, strip punctuation and the
articles a/an/the, collapse white space), scores each prediction against every reference answer
and keeps the best. Here the values are fractions in [0, 1] (the script prints them ×100), so an
accuracy criterion reads the same as for every other metric.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from tunekit.errors import DataError
from tunekit.metric import Metric

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """The official normalisation, step for step (order matters: articles go after punctuation)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def f1_score(prediction: str, reference: str) -> float:
    """Token-overlap F1 of one prediction against one reference answer."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(reference).split()
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(expected)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


class _SquadScore(Metric):
    """The mean over questions of the best score against any reference answer.

    ``update(preds, labels)``: ``preds`` is a sequence of predicted answer strings, one per
    question; ``labels`` a sequence of the same length whose items are the reference answers of
    that question (a string or a sequence of strings, as SQuAD's ``answers["text"]``). A QA model
    outputs start/end logits, not text: wrap it so that it returns answer strings (the PyTorch
    adaptor passes string outputs through), or use ``eval_func``.
    """

    #: scores one prediction against one reference answer (set by each subclass)
    _score: ClassVar[Callable[[str, str], float]]

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._sum = 0.0
        self._count = 0

    def update(self, preds: Any, labels: Any) -> None:
        predictions = _strings(preds, "predictions")
        if labels is None or len(labels) != len(predictions):
            raise DataError(f"{type(self).__name__} needs one list of reference answers per "
                            f"prediction; got {len(predictions)} predictions and "
                            f"{'no labels' if labels is None else len(labels)}")
        for prediction, references in zip(predictions, labels):
            answers = [references] if isinstance(references, str) \
                else _strings(references, "reference answers")
            if not answers:
                raise DataError("a question has no reference answer")
            self._sum += max(self._score(prediction, answer) for answer in answers)
            self._count += 1

    def compute(self) -> float:
        if self._count == 0:
            raise DataError(f"{type(self).__name__} has seen no questions")
        return self._sum / self._count


class SquadF1(_SquadScore):
    """SQuAD v1.1 F1: the mean best token-overlap F1 (see :class:`_SquadScore` for inputs)."""

    _score = staticmethod(f1_score)


class SquadExactMatch(_SquadScore):
    """SQuAD v1.1 exact match: the share of questions whose normalised prediction equals a
    normalised reference answer (see :class:`_SquadScore` for inputs)."""

    _score = staticmethod(exact_match_score)


def _strings(values: Any, what: str) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence) and not hasattr(values,
                                                                                   "tolist"):
        raise DataError(f"{what} must be a sequence of strings, got {type(values).__name__}")
    items = values.tolist() if hasattr(values, "tolist") else list(values)
    if not all(isinstance(item, str) for item in items):
        raise DataError(f"{what} must be strings")
    return items
