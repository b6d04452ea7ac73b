"""The hawq strategy: fall back in order of second-order sensitivity (HAWQ).

An op whose loss surface is sharply curved (a large Hessian trace of the loss with respect to its
weights) loses most when its weights are perturbed by quantization. The trace is estimated per op
by Hutchinson's method (``E[vᵀHv]`` over random ±1 vectors ``v``) through
:attr:`TuneContext.hessian`, which the tuner answers with the adaptor's ``hessian_trace`` probe
(PyTorch models; it needs gradients, hence a loss function). The default config is tried first;
if it misses the goal, ops fall back cumulatively, the largest trace (per weight) first, as in
mse.

``loss`` is a ``module:attr`` reference to ``loss(outputs, labels) -> scalar tensor``, resolved
like any config reference; left out, the adaptor uses cross-entropy (classification).
"""

from __future__ import annotations

from collections.abc import Iterator

from tunekit.errors import NotSupportedError
from tunekit.space import QuantConfig
from tunekit.strategies.walk import ranked_fallback
from tunekit.strategy import Strategy, TuneContext


class HAWQStrategy(Strategy):
    """Default int8, then cumulative fallback by descending Hessian trace.

    - ``loss``: ``module:attr`` of the loss function, or None for cross-entropy.
    """

    def __init__(self, *, loss: str | None = None) -> None:
        if loss is not None and (not isinstance(loss, str) or ":" not in loss):
            raise ValueError(f"loss must be a 'module:attr' reference, got {loss!r}")
        self.loss = loss

    @property
    def first_accept_is_final(self) -> bool:
        return False  # the polish stage follows the first accepted config

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        if ctx.hessian is None:
            raise NotSupportedError("the hawq strategy needs Hessian traces, which this tuning "
                                    "does not offer (a PyTorch model and calibration data)")
        hessian = ctx.hessian
        yield from ranked_fallback(ctx, lambda default, ops: hessian(self.loss), "hessian")


__all__ = ["HAWQStrategy"]
