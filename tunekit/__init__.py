"""tunekit: accuracy-driven low-precision tuning for PyTorch and TensorFlow models.

Plugin authors import everything they need from here; frameworks are imported lazily by adaptors.
"""

from __future__ import annotations

from tunekit.adaptor import Adaptor
from tunekit.api import load, tune
from tunekit.criterion import AccuracyCriterion
from tunekit.errors import (ConfigError, DataError, ModelError, NotSupportedError, PluginError,
                            TrialError, TunekitError, TunekitWarning, UserCodeError)
from tunekit.graph.optimize import optimize_graph
from tunekit.history import History, Trial, TrialState
from tunekit.metric import Metric
from tunekit.objective import Objective
from tunekit.result import TuneResult
from tunekit.space import INT8_ITEMS, PRECISIONS, OpConfig, OpKey, OpRule, QuantConfig, TuningSpace
from tunekit.strategy import Batch, Strategy, TuneContext
from tunekit.version import __version__

__all__ = [
    "INT8_ITEMS", "PRECISIONS", "AccuracyCriterion", "Adaptor", "Batch", "ConfigError", "DataError",
    "History", "Metric", "ModelError", "NotSupportedError", "Objective", "OpConfig", "OpKey",
    "OpRule", "PluginError", "QuantConfig", "Strategy", "Trial", "TrialError", "TrialState",
    "TuneContext", "TuneResult", "TuningSpace", "TunekitError", "TunekitWarning", "UserCodeError",
    "__version__", "load", "optimize_graph", "tune",
]
