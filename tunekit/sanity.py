"""Checks on the FP32 baseline before any trial: a broken evaluation makes every trial meaningless.

Hours of tuning against a baseline of 0 (labels offset by one, the wrong metric, eval data that
does not belong to the model) accept every candidate, since nothing can lose accuracy from 0.
The check runs once, on the baseline, so it costs nothing per trial.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from tunekit.errors import TunekitWarning, UserCodeError

CAUSES = ("common causes: labels offset by one (1-based labels), a metric that does not fit the "
          "task, or evaluation data that does not belong to this model")


class PredictionSpread:
    """Whether a model gave at least two different answers over an evaluation.

    An answer is a row's argmax for class scores, or the row itself otherwise. Outputs that are
    not arrays (detection records, strings) are not judged: ``constant`` stays None.
    """

    def __init__(self) -> None:
        self._first: np.ndarray | None = None
        self.varied = False
        self.samples = 0

    def update(self, preds: Any) -> None:
        if self.varied or not isinstance(preds, np.ndarray) or preds.ndim == 0 or not len(preds):
            return
        answers = preds.argmax(-1) if preds.ndim == 2 and preds.shape[1] > 1 else preds
        rows = answers.reshape(len(answers), -1)
        if self._first is None:
            self._first = rows[0].copy()
        self.varied = rows.shape[1:] != self._first.shape or not bool(np.all(rows == self._first))
        self.samples += len(rows)

    @property
    def constant(self) -> bool | None:
        return None if self.samples < 2 else not self.varied


def check_baseline(metric: float, higher_is_better: bool, constant: bool | None) -> None:
    """Raise on a baseline that cannot anchor a tuning; warn on one that is suspicious."""
    if not math.isfinite(metric):
        raise UserCodeError(f"the FP32 baseline metric is {metric}; check the evaluation "
                            f"(data, labels, metric) before tuning; {CAUSES}")
    if higher_is_better and metric == 0:
        raise UserCodeError("the FP32 baseline metric is 0: every candidate would meet the goal. "
                            f"Check evaluation.data and evaluation.metric; {CAUSES}. If lower "
                            "is better for this metric, set tuning.accuracy_criterion."
                            "higher_is_better: false")
    if constant:
        warnings.warn("the FP32 model gives every evaluation sample the same prediction (constant "
                      f"output); its baseline {metric:.4g} says little about accuracy; {CAUSES}, "
                      "or an untrained model", TunekitWarning, stacklevel=3)
