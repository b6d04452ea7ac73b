"""Checks every tuning strategy should pass, shipped for plugin authors (needs pytest).

Subclass :class:`StrategyContract` in a test module and override its ``strategy`` fixture; pytest
then runs every check against your strategy (after optuna's ``BasicSamplerTestCase`` and
scikit-learn's estimator checks)::

    import pytest
    from tunekit.testing.strategy_contract import StrategyContract
    from my_plugin import GreedyFallback

    class TestGreedyContract(StrategyContract):
        @pytest.fixture(params=[1, 5])
        def strategy(self, request):
            return GreedyFallback(max_fallbacks=request.param)

The checks drive the strategy with :func:`tunekit.testing.run_strategy` (the tuner's loop) over a
few small spaces and synthetic metrics, with synthetic ``ctx.sensitivity`` and ``ctx.hessian``
probes. What a strategy must do:

- propose only configs of the space, and cope with failed trials (no exception);
- be a function of its parameters, the seed and the trials: two runs give the same proposals,
  also from one instance reused (resume replays the strategy) or from a clone;
- end by itself on a finite space, within a few times the space's size;
- leave the context alone: not append to the history, not touch the space, and use ``ctx.rng``
  instead of the global ``random`` or ``numpy.random`` state;
- take keyword-only constructor parameters and store each one as an attribute of the same name,
  and nothing else (a YAML section is the constructor call; ``type(s)(**vars(s))`` is a clone);
- not propose one config twice in a row (the second answer is the first one: a wasted turn);
- give each proposal valid signals (``Batch(configs, needed=..., final=...)``: ``needed`` is
  ``"exact"``, ``"goal"`` or a metric value), the same for the same seed from a reused
  instance: a strategy whose signals change per stage keeps that state in its run.

Repeating an older config is legal: the tuner answers it from the history without evaluating.
"""

from __future__ import annotations

import inspect
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from tunekit.criterion import AccuracyCriterion
from tunekit.errors import TrialError
from tunekit.space import OpConfig, OpKey, QuantConfig, TuningSpace
from tunekit.strategy import Strategy
from tunekit.testing.driver import AccuracyFn, StrategyRun, run_strategy
from tunekit.testing.fake import DIGITS_OPS, FakeAdaptor


@dataclass(frozen=True)
class Case:
    """One synthetic tuning problem: a space, a metric over it, and the goal."""

    space: TuningSpace
    accuracy_fn: AccuracyFn
    criterion: AccuracyCriterion

    def run(self, strategy: Strategy, max_proposals: int = 300, seed: int = 0) -> StrategyRun:
        """Drive ``strategy`` past accepted trials, so more of its walk is checked."""
        return run_strategy(strategy, self.space, self.accuracy_fn, self.criterion,
                            max_trials=max_proposals, seed=seed, baseline=1.0,
                            stop_on_first_accept=False, max_proposals=max_proposals,
                            sensitivity=_hashed_sensitivity, hessian=_hashed_hessian)


def _int8(algorithm: str, scheme: str = "asym") -> OpConfig:
    return OpConfig("int8", "static", scheme, "per_channel", algorithm)


def _small_space() -> TuningSpace:
    """Three ops of two types; ``fc`` has no bf16 but static and dynamic int8 (size 60)."""
    return TuningSpace({
        OpKey("conv1", "Conv2d"): (_int8("minmax"), _int8("histogram"), _int8("minmax", "sym"),
                                   OpConfig("bf16"), OpConfig("fp32")),
        OpKey("conv2", "Conv2d"): (_int8("minmax"), _int8("histogram"), OpConfig("bf16"),
                                   OpConfig("fp32")),
        OpKey("fc", "Linear"): (_int8("minmax"), OpConfig("int8", "dynamic", None, "per_channel"),
                                OpConfig("fp32")),
    })


def _tiny_space() -> TuningSpace:
    """One op that may only stay int8 or go to fp32, one fp32-only op (size 2)."""
    return TuningSpace({OpKey("a", "Linear"): (_int8("minmax"), OpConfig("fp32")),
                        OpKey("b", "LayerNorm"): (OpConfig("fp32"),)})


def _hashed(config: QuantConfig) -> float:
    """A deterministic pseudo-random metric: fp32 ops free, bf16 cheap, int8 costly."""
    loss = 0.0
    for op, option in config.ops.items():
        if option.precision != "fp32":
            spread = 0.02 if option.precision == "bf16" else 0.2
            loss += spread * (zlib.crc32(f"{op}{option}".encode()) % 1000) / 1000
    return 1.0 - loss


def _crc_score(text: str) -> float:
    return (zlib.crc32(text.encode()) % 1000) / 1000


def _hashed_sensitivity(config: QuantConfig) -> dict[OpKey, float]:
    """Deterministic per-op scores (fp32 ops 0), standing in for measured output MSE."""
    return {op: 0.0 if option.precision == "fp32" else _crc_score(f"{op}{option}")
            for op, option in config.ops.items()}


def _hashed_hessian(loss: str | None) -> dict[OpKey, float]:
    """Deterministic per-op scores for every op name the cases use, standing in for traces."""
    return {op: _crc_score(f"{op}{loss}") for op in (*_small_space().ops, *_tiny_space().ops,
                                                     *DIGITS_OPS)}


def _failing(config: QuantConfig) -> float:
    if zlib.crc32(config.to_json().encode()) % 3 == 0:
        raise TrialError("synthetic quantization failure")
    return _hashed(config)


_DIGITS = FakeAdaptor(ops=DIGITS_OPS, base_accuracy=1.0, drops={"conv1": 0.2, "fc2": 0.01},
                      bf16_drops={"conv2": 0.001})


def _numpy_state() -> tuple[bytes, int]:
    """Where the global numpy generator stands (draws move ``pos`` long before the key)."""
    state = np.random.get_state(legacy=False)["state"]
    return state["key"].tobytes(), int(state["pos"])


#: name → (space, metric, criterion) factories; spaces are built per test (they are cheap).
CASES: dict[str, Callable[[], Case]] = {
    "small-hashed": lambda: Case(_small_space(), _hashed, AccuracyCriterion(relative=0.05)),
    "small-never": lambda: Case(_small_space(), lambda c: 0.5, AccuracyCriterion(relative=0.01)),
    "small-failing": lambda: Case(_small_space(), _failing, AccuracyCriterion(relative=0.05)),
    "tiny-never": lambda: Case(_tiny_space(), lambda c: 0.5, AccuracyCriterion(absolute=0.0)),
    "digits": lambda: Case(_DIGITS.capabilities(None), _DIGITS.accuracy,
                           AccuracyCriterion(absolute=0.0)),
}


class StrategyContract:
    """The checks; see the module docstring. Override the ``strategy`` fixture."""

    #: Proposals driven per check (the termination check uses :meth:`termination_bound`). A
    #: model-based strategy whose proposals cost a model fit may lower it to keep tests fast.
    max_proposals: int = 300

    @pytest.fixture
    def strategy(self) -> Strategy:
        raise NotImplementedError("override the 'strategy' fixture to return your strategy")

    def termination_bound(self, space: TuningSpace) -> int:
        """How many proposals a strategy may make on a finite space before it must end."""
        return 4 * space.size() + 16

    @pytest.mark.parametrize("name", sorted(CASES))
    def test_proposes_only_configs_of_the_space(self, strategy: Strategy, name: str) -> None:
        case = CASES[name]()
        run = case.run(strategy, self.max_proposals)
        assert run.proposals, "the strategy proposed nothing"
        outside = [c.summary() for c in run.proposals if not case.space.contains(c)]
        assert not outside, f"configs outside the space: {outside[:3]}"

    @pytest.mark.parametrize("name", ["small-hashed", "small-failing", "digits"])
    def test_same_proposals_for_the_same_seed(self, strategy: Strategy, name: str) -> None:
        case = CASES[name]()
        first = case.run(strategy, self.max_proposals, seed=7).proposals
        assert first, "the strategy proposed nothing"
        assert case.run(strategy, self.max_proposals, seed=7).proposals == first, "a reused instance diverged"
        clone = type(strategy)(**vars(strategy))
        assert case.run(clone, self.max_proposals, seed=7).proposals == first, "a clone diverged"

    @pytest.mark.parametrize("name", ["small-never", "small-failing", "tiny-never"])
    def test_ends_by_itself_on_a_finite_space(self, strategy: Strategy, name: str) -> None:
        case = CASES[name]()
        bound = self.termination_bound(case.space)
        run = case.run(strategy, max_proposals=bound)
        assert run.status == "strategy_done", (
            f"still proposing after {bound} proposals on a space of {case.space.size()} configs "
            f"(status {run.status})")

    @pytest.mark.parametrize("name", ["small-hashed", "digits"])
    def test_leaves_the_context_alone(self, strategy: Strategy, name: str) -> None:
        case = CASES[name]()
        before = case.space.to_dict()
        global_state = random.getstate(), _numpy_state()
        run = case.run(strategy, self.max_proposals)
        assert len(run.history) == run.evaluations, "the strategy appended to the history"
        assert run.context.space is case.space and case.space.to_dict() == before
        assert run.history.baseline_metric == 1.0
        assert random.getstate() == global_state[0], "the global random state was used"
        assert _numpy_state() == global_state[1], "the global numpy random state was used"

    def test_constructor_only_stores_its_keyword_parameters(self, strategy: Strategy) -> None:
        parameters = inspect.signature(type(strategy)).parameters
        positional = [n for n, p in parameters.items() if p.kind is not p.KEYWORD_ONLY]
        assert not positional, f"parameters must be keyword-only: {positional}"
        assert set(vars(strategy)) == set(parameters), (
            f"attributes {sorted(vars(strategy))} differ from parameters {sorted(parameters)}")
        clone = type(strategy)(**vars(strategy))
        assert vars(clone) == vars(strategy)

    @pytest.mark.parametrize("name", sorted(CASES))
    def test_never_repeats_the_previous_proposal(self, strategy: Strategy, name: str) -> None:
        case = CASES[name]()
        proposals = case.run(strategy, self.max_proposals).proposals
        repeats = [i for i in range(1, len(proposals)) if proposals[i] == proposals[i - 1]]
        assert not repeats, f"proposal {repeats[0]} repeats the one before it"


    @pytest.mark.parametrize("name", ["small-hashed", "small-failing", "digits"])
    def test_signals_are_valid_and_belong_to_the_run(self, strategy: Strategy, name: str) -> None:
        case = CASES[name]()
        first = case.run(strategy, self.max_proposals, seed=3).signals
        bad = [needed for needed, _ in first if needed not in ("exact", "goal")
               and (isinstance(needed, bool) or not isinstance(needed, (int, float)))]
        assert not bad, f"a proposal's needed must be 'exact', 'goal' or a metric, got {bad[0]!r}"
        assert case.run(strategy, self.max_proposals, seed=3).signals == first, (
            "a reused instance gave other signals: keep per-run state in the run (its generator "
            "or Walker), not in the instance or the module")


__all__ = ["CASES", "Case", "StrategyContract"]
