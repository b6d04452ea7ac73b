"""Tools for testing tunekit plugins without a framework (shipped for plugin authors).

- :class:`FakeAdaptor`: a numpy adaptor whose accuracy and latency are formulas of the config;
- :class:`TableAdaptor`: config → (accuracy, latency) from a recorded table (strategy research);
- :func:`run_strategy`: the tuner's loop around a strategy, with a function as the metric;
- :mod:`tunekit.testing.strategy_contract`: checks every strategy should pass (needs pytest,
  so it is imported on its own: ``from tunekit.testing.strategy_contract import
  StrategyContract``);
- :mod:`tunekit.testing.metric_contract`: checks every metric should pass (batched updates equal
  one update, reset, equality with a reference); also needs pytest, so it is imported on its own:
  ``from tunekit.testing.metric_contract import MetricContract``;
- :mod:`tunekit.testing.adaptor_contract`: checks every framework adaptor should pass (the
  tuning space's order, fallback, save/load, inspection, errors; the list is in its docstring and
  in docs/writing-an-adaptor.md); needs pytest: ``from tunekit.testing.adaptor_contract import
  AdaptorContract``. The PyTorch, TensorFlow and ONNX Runtime adaptors and :class:`FakeAdaptor`
  pass it.
"""

from __future__ import annotations

from tunekit.testing.driver import AccuracyFn, StrategyRun, run_strategy
from tunekit.testing.fake import (DIGITS_OPS, LATENCIES, FakeAdaptor, FakeModel, ModelledLatency,
                                  fake_data)
from tunekit.testing.table import TableAdaptor

__all__ = ["DIGITS_OPS", "LATENCIES", "AccuracyFn", "FakeAdaptor", "FakeModel", "ModelledLatency",
           "StrategyRun", "TableAdaptor", "fake_data", "run_strategy"]
