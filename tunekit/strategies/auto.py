"""The auto strategy (the default): rank ops by cheap proxies, find the culprits by group
testing, then polish to a 1-minimal answer.

1. **default**: every op at its first option (int8 with the adaptor's preferred parameters);
2. **int8 items** (``tune_items``, as basic's stage 2): the int8 parameters op type by op type,
   a change kept only if the metric improves. A calibration or granularity problem is fixed here
   without leaving int8;
3. **rank**: the int8 ops by per-op sensitivity proxies measured in one pass each and cached by
   the tuner: the relative output error of each op against FP32 in the current config
   (``ctx.sensitivity``, the adaptor's ``inspect``), ties broken by the Hessian trace where the
   adaptor offers one (``ctx.hessian``, computed only when the error leaves ties). Both are
   published (``"mse"``, ``"hessian"``). No trial is spent on ranking;
4. **group fallback**: the top 1, 2, 4, 8... ranked ops fall back together (their first
   fallback precision, bf16 where allowed, then, if even all of them miss the goal, fp32) until
   a prefix meets the goal. A culprit ranked ``r`` costs about ``log2(r) + 1`` trials; ops that
   matter only together are in the same prefix once both are;
5. **polish** (:mod:`tunekit.strategies.polish`): the fallen-back ops return to int8 by adaptive
   group testing while the goal holds, so the answer is 1-minimal.

Evaluations, for ``k`` ops that must stay float among ``n`` whose proxy ranks them within the
top ``m`` (``m ≥ k``): 1 (default) + the item trials (a few per op type, none with
``tune_items: none``) + ``⌈log2 m⌉ + 1`` (prefixes) + about ``k·log2(2m/k)`` (polish). The proxy
only has to put the culprits near the top, not first: an op whose error comes from an upstream
culprit ranks high too and is won back by the polish. Worst case (a proxy that ranks the culprits
last, or culprits found only in fp32): ``2·(⌈log2 n⌉ + 1)`` prefixes and a polish over all
``n`` ops, still ``O(k log n)`` trials, never one per op.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence

from tunekit.history import Trial
from tunekit.space import OpConfig, OpKey, QuantConfig
from tunekit.strategies.basic import TUNE_ITEMS, tune_int8_items
from tunekit.strategies.polish import int8_targets, polish
from tunekit.strategies.walk import Walker, fallback_candidates, probe
from tunekit.strategy import Batch, Strategy, TuneContext


class AutoStrategy(Strategy):
    """Default int8, int8 items, proxy-ranked group fallback, polish.

    - ``tune_items``: the int8-item stage, as basic's: ``"accuracy"`` (moves that can raise the
      metric), ``"all"``, or ``"none"`` to go straight to the fallback.
    """

    def __init__(self, *, tune_items: str = "accuracy") -> None:
        if tune_items not in TUNE_ITEMS:
            raise ValueError(f"tune_items must be one of {TUNE_ITEMS}, got {tune_items!r}")
        self.tune_items = tune_items

    @property
    def first_accept_is_final(self) -> bool:
        """False: the polish after the first accepted config makes faster accepted configs."""
        return False

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig | Batch]:
        walker = Walker(ctx)
        ctx.enter_stage("default")
        best = yield from walker.visit(ctx.space.default())
        if best.accepted:
            return
        if self.tune_items != "none":
            ctx.enter_stage("int8_items")
            best = yield from tune_int8_items(walker, best, every=self.tune_items == "all")
            if best.accepted:
                return
        base = best.config
        ops = fallback_candidates(ctx.space, base)
        scores = proxies(ctx, base, ops)
        ctx.enter_stage("group_fallback")
        accepted = yield from group_fallback(walker, base, ranked(scores, ops))
        if accepted is not None:
            yield from polish(walker, accepted.config, int8_targets(base),
                              {op: score[0] for op, score in scores.items()})


def proxies(ctx: TuneContext, base: QuantConfig,
            ops: Sequence[OpKey]) -> dict[OpKey, tuple[float, float]]:
    """Per op, ``(output error, Hessian trace)``, each measured once (the tuner caches the
    probes) and published through ``ctx.record_sensitivity``. The trace, which needs gradients,
    is only computed where the error leaves ties (0 where not offered or not needed)."""
    error = probe(ctx, "mse", lambda: ctx.sensitivity(base) if ctx.sensitivity else {})
    values = [error.get(op, 0.0) for op in ops]
    trace: Mapping[OpKey, float] = {}
    if len(set(values)) < len(values):
        trace = probe(ctx, "hessian", lambda: ctx.hessian(None) if ctx.hessian else {})
    return {op: (error.get(op, 0.0), trace.get(op, 0.0)) for op in ops}


def ranked(scores: Mapping[OpKey, tuple[float, float]], ops: Sequence[OpKey]) -> list[OpKey]:
    """``ops`` by proxy, most sensitive first (stable: only exact ties keep space order)."""
    return sorted(ops, key=lambda op: tuple(-s for s in scores[op]))


def group_fallback(walker: Walker, base: QuantConfig,
                   order: Sequence[OpKey]) -> Generator[QuantConfig | Batch, None, Trial | None]:
    """Fall back the top 1, 2, 4... ops of ``order`` together, first to their first fallback,
    then (if all of them miss the goal) to fp32; the first accepted trial, or None."""
    space = walker.ctx.space
    first = {op: space.fallbacks(op)[0] for op in order}
    fp32 = {op: next((o for o in space.fallbacks(op) if o.precision == "fp32"), first[op])
            for op in order}
    for targets in ([first, fp32] if fp32 != first else [first]):
        accepted = yield from _prefixes(walker, base, order, targets)
        if accepted is not None:
            return accepted
    return None


def _prefixes(walker: Walker, base: QuantConfig, order: Sequence[OpKey],
              targets: Mapping[OpKey, OpConfig]) -> Generator[QuantConfig | Batch, None, Trial | None]:
    size = 1
    while order:
        size = min(size, len(order))
        trial = yield from walker.visit(base.with_ops({op: targets[op] for op in order[:size]}))
        if trial.accepted:
            return trial
        if size == len(order):
            return None
        size *= 2
    return None


__all__ = ["AutoStrategy", "group_fallback", "proxies", "ranked"]
