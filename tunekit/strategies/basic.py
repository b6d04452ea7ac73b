"""The basic strategy: Intel Neural Compressor's staged fallback search, with fewer trials.

``order="impact"`` (the default) walks from the fastest model towards FP32 and stops at the first
config that meets the goal:

1. **default**: every op at its first option (int8 with the adaptor's preferred parameters);
2. **int8 items, op type by op type**: coordinate descent from the best config so far. For each
   op type, each int8 tuning item and each value the type's ops support, all ops of the type are
   switched together and the change is kept only if the metric improves;
3. **fallback, one op at a time**: from that best int8 config, each int8 op alone at its first
   fallback option (bf16 before fp32 where allowed), in space order, as one
   :class:`~tunekit.strategy.Batch` (distributed workers evaluate them at once); where a
   candidate fails to build or run, the op's next fallback in a second batch. Each result
   ranks the op;
4. **accumulated fallback**: ops fall back cumulatively, the most helpful first (ops whose
   single fallbacks tie are ordered by their output error, ``ctx.sensitivity``, where the tuner
   offers it, never by position); if the ops' first fallback was bf16 and that fails, the
   accumulation is repeated with fp32;
5. **polish** (:mod:`tunekit.strategies.polish`): the fallen-back ops return to int8 in groups
   while the goal holds, so the answer is 1-minimal (INC's basic stops at step 4 and may keep
   every op it accumulated in float).

The single-fallback gains of step 3 are published as the ``"fallback_impact"`` sensitivity.

Differences from INC 2.6's basic, and why:

- stage 2 is coordinate descent per item instead of INC's cartesian product of every op type's
  item combinations, so it costs the sum of the alternatives, not their product;
- with ``tune_items="accuracy"`` stage 2 skips moves that cannot make the int8 grid finer: an
  asymmetric activation range (``asym``) is never wider than the symmetric one around zero
  (``max - min ≤ 2·max|x|``), a per-channel weight scale is never larger than the per-tensor
  one, and int8 activations have the 256 levels of uint8 ones (ONNX Runtime). Stage 2 only keeps changes that raise the metric, so those moves are (up to rounding
  noise) wasted trials; they are tried the other way round (``sym → asym``) when the adaptor
  prefers the coarser value;
- items that move activation ranges (approach, calibration algorithm) are tried before the grid
  refinements (scheme, granularity): a range problem is the usual source of an int8 loss;
- the fallback walks ops top-down, so a first-layer culprit (the common case: the input
  quantizer) is found first, where INC walks bottom-up; bf16 and fp32 share one ranking pass;
- a config already proposed is never proposed again (the tuner would answer it from the history
  anyway, but it would still cost a proposal).

``order="conservative"`` is INC's quantization level 0: start from FP32 (the baseline, so it is not
evaluated again) and lower op types to int8 one by one, the type with the most ops first (INC
uses a fixed list, conv, matmul, linear, and never lowers other types); a type is kept in int8
only if the goal still holds. Unlike INC 2.6, a type that fails is retried op by op (otherwise one
sensitive conv keeps every conv in FP32), ops still in FP32 then get the same treatment with
bf16, as INC's docstring describes but its code does not do, and the polish stage ends it. Every accepted config is a step on
the way, so this order asks the tuner not to stop at the first accepted config
(its proposals carry ``final=False``); the tuner then keeps the fastest accepted one.

The impact order returns after the polish of its first accepted config, also when the tuner
would go on (``exit_policy.timeout > 0``): every other proposal would run more ops in a slower
precision. The polish makes accepted configs faster as it goes, so neither order lets the tuner
stop at the first accepted config.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence

from tunekit.history import Trial
from tunekit.space import INT8_ITEMS, OpConfig, OpKey, QuantConfig, TuningSpace
from tunekit.strategies.polish import int8_targets, polish
from tunekit.strategies.walk import Walker, probe
from tunekit.strategy import Batch, Strategy, TuneContext

ORDERS = ("impact", "conservative")
TUNE_ITEMS = ("accuracy", "all", "none")

#: Stage-2 item order: items that move activation ranges first, grid refinements last.
_ITEM_ORDER = ("approach", "algorithm", "scheme", "activation", "granularity")
assert set(_ITEM_ORDER) == set(INT8_ITEMS), "every int8 tuning item needs a place in the order"

#: ``(item, from, to)`` moves that cannot make the quantization grid finer (see module docstring).
_COARSER = frozenset({("scheme", "asym", "sym"), ("granularity", "per_channel", "per_tensor"),
                      ("activation", "uint8", "int8")})  # 256 levels either way


class BasicStrategy(Strategy):
    """Staged search: default int8, int8 item tuning, per-op then accumulated fallback.

    Parameters (keyword-only, stored as given):

    - ``order``: ``"impact"`` (fastest model first, fall back what hurts) or ``"conservative"``
      (FP32 first, lower op types while the goal holds).
    - ``tune_items``: stage 2 of the impact order. ``"accuracy"`` tries only moves that can raise
      the metric, ``"all"`` every alternative value, ``"none"`` skips the stage.

    There is no fallback-precision parameter: which precisions an op may fall back to is the
    tuning space's business (``quantization.op_rules``), so it is said in one place only.
    """

    def __init__(self, *, order: str = "impact", tune_items: str = "accuracy") -> None:
        # checked here so that a bad YAML value fails before any model is loaded
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        if tune_items not in TUNE_ITEMS:
            raise ValueError(f"tune_items must be one of {TUNE_ITEMS}, got {tune_items!r}")
        self.order = order
        self.tune_items = tune_items

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig | Batch]:
        """Its proposals say what they need (:class:`Batch` signals): exact metrics where they
        rank ops or seed the item descent, only "better than the best so far" in the item
        descent, only the goal in the conservative order and the accumulated fallback; and a
        first accepted config is final only in the single-op fallback stage (one op out of int8
        is 1-minimal), since elsewhere accepted configs grow faster (the conservative order's
        lowering, the polish stage)."""
        walker = Walker(ctx)
        walker.needed, walker.final = "exact", False
        if self.order == "conservative":
            walker.needed = "goal"  # _conservative, _lower and polish read only trial.accepted
            yield from _conservative(walker)
            return
        ctx.enter_stage("default")
        best = yield from walker.visit(ctx.space.default())
        if best.accepted:
            return
        if self.tune_items != "none":
            ctx.enter_stage("int8_items")
            best = yield from tune_int8_items(walker, best, every=self.tune_items == "all",
                                              bounded=True)
            if best.accepted:
                return
        walker.needed = "exact"
        yield from _fallback(walker, best.config)


def tune_int8_items(walker: Walker, best: Trial, every: bool,
                    bounded: bool = False) -> Generator[QuantConfig | Batch, None, Trial]:
    """Stage 2: coordinate descent over the int8 items, all ops of one type switched together.

    A change is kept only if it improves the best metric, so with ``bounded`` a candidate that
    can neither meet the goal nor beat that metric may be stopped early (``walker.needed``)."""
    space = walker.ctx.space
    for ops in space.by_type().values():
        for item in _ITEM_ORDER:
            for value in _values(space, ops, item):
                changes = _switch(space, best.config, ops, item, value, every)
                if not changes:
                    continue
                if bounded and best.metric is not None:
                    walker.needed = best.metric
                trial = yield from walker.visit(best.config.with_ops(changes))
                if walker.ctx.improves(trial, best):
                    best = trial
                    if best.accepted:
                        return best
    return best


def _values(space: TuningSpace, ops: Sequence[OpKey], item: str) -> list[str]:
    """The values of ``item`` that the int8 options of ``ops`` offer, in option order."""
    values: list[str] = []
    for op in ops:
        for option in space.options[op]:
            value = getattr(option, item)
            if option.precision == "int8" and value is not None and value not in values:
                values.append(value)
    return values


def _switch(space: TuningSpace, config: QuantConfig, ops: Sequence[OpKey], item: str,
            value: str, every: bool) -> dict[OpKey, OpConfig]:
    """Per op of ``ops`` now in int8 with another ``item`` value: its option with ``value``."""
    changes = {}
    for op in ops:
        current = config.ops[op]
        old = getattr(current, item)
        if current.precision != "int8" or old == value:
            continue
        if not every and (item, old, value) in _COARSER:
            continue
        option = _with_item(space, op, current, item, value)
        if option is not None:
            changes[op] = option
    return changes


def _with_item(space: TuningSpace, op: OpKey, current: OpConfig, item: str,
               value: str) -> OpConfig | None:
    """The int8 option of ``op`` with ``item == value`` that keeps the other items (an item
    one side leaves unset, as dynamic int8 does, does not constrain)."""
    return next((o for o in space.alternatives(op, current, item) if getattr(o, item) == value),
                None)


def _fallback(walker: Walker, base: QuantConfig) -> Iterator[QuantConfig | Batch]:
    """Stages 3 to 5: rank the int8 ops by their single fallback (exact metrics; the first
    accepted is final), accumulate (only the goal matters), polish."""
    ctx = walker.ctx
    ops = [op for op in ctx.space.ops if _fallbacks(ctx.space, base, op)]
    ctx.enter_stage("fallback_single")
    walker.final = True
    first, results = yield from _single_fallbacks(walker, base, ops)
    walker.final = False
    if not results:
        return  # a single fallback met the goal: one op out of int8 is 1-minimal
    base_trial = walker.trials.get(base)
    ctx.record_sensitivity("fallback_impact", {
        op: -_rank(ctx, trial) + _rank(ctx, base_trial) for op, trial in results.items()
        if base_trial is not None and not trial.failed and not base_trial.failed})
    error = probe(ctx, "mse", lambda: ctx.sensitivity(base) if ctx.sensitivity else {})
    ranked = sorted(ops, key=lambda op: (_rank(ctx, results[op]), -error.get(op, 0.0)))
    fp32 = {op: next((o for o in _fallbacks(ctx.space, base, op) if o.precision == "fp32"),
                     first[op])
            for op in ops}
    walker.needed = "goal"
    ctx.enter_stage("fallback_accumulated")
    for targets in ([first, fp32] if fp32 != first else [first]):
        config = base
        for op in ranked:
            config = config.with_op(op, targets[op])
            trial = yield from walker.visit(config)
            if trial.accepted:
                yield from polish(walker, config, int8_targets(base), error)
                return


def _single_fallbacks(walker: Walker, base: QuantConfig, ops: list[OpKey]
                      ) -> Generator[Batch, None, tuple[dict[OpKey, OpConfig], dict[OpKey, Trial]]]:
    """Stage 3: each op alone at its first fallback, one batch per round; the options tried and
    the trials (none if one of them met the goal).

    The single fallbacks do not depend on each other: one batch per round. A fallback that
    breaks the candidate (the trial failed) says nothing about the op's impact: the op's next
    fallback precision goes into the next round instead of ranking the op last."""
    space = walker.ctx.space
    first: dict[OpKey, OpConfig] = {}
    results: dict[OpKey, Trial] = {}
    left = {op: list(_fallbacks(space, base, op)) for op in ops}
    while left:
        for op, options in left.items():
            first[op] = options[0]
        trials = yield from walker.visit_batch([base.with_op(op, first[op]) for op in left])
        if any(trial.accepted for trial in trials):
            return first, {}
        results.update(zip(left, trials))
        left = {op: options[1:] for (op, options), trial in zip(left.items(), trials)
                if trial.failed and len(options) > 1}
    return first, results


def _fallbacks(space: TuningSpace, base: QuantConfig, op: OpKey) -> list[OpConfig]:
    """The float options above ``op``'s precision in ``base``: bf16 then fp32 for an int8 op,
    fp32 for a bf16 op (a bf16/fp32 space, as auto mixed precision tunes), none for fp32."""
    current = base.precision_of(op)
    return [o for o in space.fallbacks(op) if o.precision != current]


def _rank(ctx: TuneContext, trial: Trial) -> float:
    """Sort key of an op by its single-fallback trial: the best metric first, failures last."""
    if trial.failed or trial.metric is None:
        return float("inf")
    return -trial.metric if ctx.criterion.higher_is_better else trial.metric


def _conservative(walker: Walker) -> Iterator[QuantConfig | Batch]:
    """FP32 first; lower op types to int8, then bf16, keeping what still meets the goal; then
    the polish returns what it can of the rest to int8."""
    space = walker.ctx.space
    config = space.uniform("fp32")
    for precision in ("int8", "bf16"):
        walker.ctx.enter_stage(f"lower_{precision}")
        groups = {op_type: [op for op in ops if config.precision_of(op) == "fp32"
                            and precision in space.precisions(op)]
                  for op_type, ops in space.by_type().items()}
        for ops in sorted(groups.values(), key=len, reverse=True):  # stable: ties in space order
            targets = {op: space.option(op, precision) for op in ops}
            config = yield from _lower(walker, config, targets)
    if config == space.uniform("fp32"):
        return  # nothing could be lowered, each op alone included: nothing to win back
    yield from polish(walker, config, {op: space.option(op, "int8") for op in space.ops
                                       if "int8" in space.precisions(op)})


def _lower(walker: Walker, config: QuantConfig,
           targets: Mapping[OpKey, OpConfig]) -> Generator[QuantConfig | Batch, None, QuantConfig]:
    """Lower all ``targets`` at once; if that misses the goal, each op alone on top of the rest."""
    if not targets:
        return config
    trial = yield from walker.visit(config.with_ops(targets))
    if trial.accepted:
        return trial.config
    if len(targets) > 1:
        for op, option in targets.items():
            trial = yield from walker.visit(config.with_op(op, option))
            if trial.accepted:
                config = trial.config
    return config


__all__ = ["BasicStrategy"]
