"""Stopping a tuning whose candidates all fail, with their error, instead of spending the budget.

A broken data path, an ``eval_func`` that raises for every low-precision model, or a backend
that cannot build this model fails every candidate the same way; trying 100 configs only hides
the error under "goal NOT met". The tuning stops (``tuning.exit_policy.failure_share``):

- when the first two trials of the run failed with the same message, or
- once at least :data:`MIN_TRIALS` trials ran and the share of failed ones reaches
  ``failure_share`` (default 1.0: all of them, so three failures in a row from the start stop
  it; a lower share also stops a run in which most, not all, candidates fail).

The error raised carries the failure message whole: a :class:`~tunekit.errors.DataError` when
the candidates failed on the user's data (exit code 2), else :class:`~tunekit.errors.TuningFailed`.
"""

from __future__ import annotations

from collections.abc import Sequence

from tunekit.errors import DataError, TunekitError, TuningFailed
from tunekit.history import Trial

#: Trials that must have run before the share of failures can stop a tuning.
MIN_TRIALS = 3


class FailureWatch:
    """Watches the trials of one run and says when their failures should stop it."""

    def __init__(self, share: float = 1.0) -> None:
        self.share = share
        self.trials: list[Trial] = []
        #: per failed trial number, the exception it raised (absent for a worker's trials)
        self.causes: dict[int, BaseException] = {}
        #: the error :meth:`check` raised, if it stopped the tuning
        self.stopped: TunekitError | None = None

    def record(self, trial: Trial, cause: BaseException | None = None) -> None:
        self.trials.append(trial)
        if cause is not None:
            self.causes[trial.number] = cause

    def check(self) -> None:
        """Raise the tuning's stop error when the failures so far call for it (the tuner asks
        before each new trial, once the history holds the ones before)."""
        failed = [t for t in self.trials if t.failed]
        first = self.trials[:2]
        if len(first) == 2 and all(t.failed for t in first) and first[0].error == first[1].error:
            raise self.error(f"the first 2 candidates (trials {first[0].number} and "
                             f"{first[1].number}) failed with the same error", first[1],
                             " (when only some configs fail so, keep the op it names out of "
                             "int8 with quantization.op_rules)")
        if len(self.trials) >= MIN_TRIALS and failed and \
                len(failed) >= self.share * len(self.trials):
            raise self.error(f"{len(failed)} of {len(self.trials)} candidates failed "
                             f"(tuning.exit_policy.failure_share: {self.share:g})", failed[-1])

    def check_end(self) -> None:
        """At the end of a run: with no candidate built and some failed, there is no model to
        return; raise the last failure rather than report a goal not met."""
        failed = [t for t in self.trials if t.failed]
        if failed and len(failed) == len(self.trials):
            raise self.error(f"every candidate failed ({len(failed)} trial(s))", failed[-1])

    def error(self, reason: str, trial: Trial, hint: str = "") -> TunekitError:
        message = f"{reason}, so the tuning stopped with no model: {trial.error}{hint}"
        kind = DataError if isinstance(self.causes.get(trial.number), DataError) else TuningFailed
        self.stopped = kind(message)
        return self.stopped


def failures(trials: Sequence[Trial]) -> list[dict[str, object]]:
    """Every failed trial with its whole message (for ``result.json``)."""
    return [{"trial": t.number, "error": t.error} for t in trials if t.failed]
