"""Research comparisons: several strategies on one workload and budget (``tunekit compare``).

:func:`~tunekit.compare.run.compare` runs them, :mod:`~tunekit.compare.summary` reduces the runs
to medians over seeds, :mod:`~tunekit.compare.output` writes the table, CSV/JSON and plot.
"""

from tunekit.compare.cache import EvaluationCache
from tunekit.compare.run import Comparison, RunRecord, TrialRecord, compare
from tunekit.compare.summary import Summary, summarize

__all__ = ["Comparison", "EvaluationCache", "RunRecord", "Summary", "TrialRecord", "compare",
           "summarize"]
