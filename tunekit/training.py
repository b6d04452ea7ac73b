"""The user's training function for quantization-aware training (``quantization.approach: qat``).

The function is user code, like ``eval_func``: tunekit hands it the fake-quantized model of one
trial and it trains that model with the user's own data, loss and optimizer, for the budget its
keywords set (``quantization.training: {func: train:train, epochs: 1}`` calls
``train(model, epochs=1)``). The keywords are checked against its signature when the tuning is
assembled, so a typo fails before the FP32 baseline is measured, not in trial 0.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tunekit.errors import ConfigError
from tunekit.references import call_user


@dataclass(frozen=True)
class TrainingCall:
    """``func(model, **params)``, with anything it raises reported as the user's error."""

    func: Callable[..., Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str = "the training function"

    def __post_init__(self) -> None:
        if not callable(self.func):
            raise ConfigError("quantization.training.func", f"{self.name} is not callable")
        try:
            inspect.signature(self.func).bind(None, **self.params)
        except TypeError as exc:
            raise ConfigError("quantization.training", f"{self.name} cannot be called as "
                                                       f"func(model, **{dict(self.params)}): "
                                                       f"{exc}") from exc
        except ValueError:  # a builtin without a signature: called unchecked
            pass

    def __call__(self, model: Any) -> Any:
        return call_user(lambda m: self.func(m, **self.params), model, what=self.name)


__all__ = ["TrainingCall"]
