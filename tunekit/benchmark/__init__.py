"""``tunekit benchmark``: the FP32 model and its tuned model timed side by side.

:mod:`.measure` times both models in one process (through the performance objective and the
adaptor, as the tuning does); :mod:`.instances` runs several such processes at once on disjoint
core sets; :mod:`.report` turns the figures into a table with ratios and a JSON file.
"""

from tunekit.benchmark.instances import run
from tunekit.benchmark.measure import workspace_of
from tunekit.benchmark.report import Report

__all__ = ["Report", "run", "workspace_of"]
