"""The Adaptor plugin interface: what tunekit needs from a framework.

An adaptor turns a real model into a :class:`~tunekit.space.TuningSpace`, builds a candidate for any
config in it, and runs models. It holds no evaluation loop: metrics and objectives live in the core,
so every framework is judged by the same code.
"""

from __future__ import annotations

import abc
import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from tunekit.errors import NotSupportedError
from tunekit.model_state import ModelStates
from tunekit.space import OpKey, QuantConfig, TuningSpace

State = TypeVar("State")
#: Where :meth:`Adaptor.model_state` keeps its states on the instance (never pickled).
_STATES = "_tunekit_model_states"

#: A batch: ``(inputs, labels)``; inputs may be a tensor, tuple or dict. Adaptors receive the
#: canonical pairs of the data contract (:mod:`tunekit.batches`), labels None when absent.
DataBatch = Any
#: The old name of :data:`DataBatch` (``tunekit.Batch`` is the strategy's batch of configs): still
#: imported by third-party adaptors; use ``DataBatch``.
Batch = DataBatch


class Adaptor(abc.ABC):
    """Base class of framework adaptors (entry-point group ``tunekit.adaptors``).

    Three methods are abstract (:meth:`capabilities`, :meth:`quantize`, :meth:`predict`). The
    others default to raising :class:`~tunekit.errors.NotSupportedError`, but a tuning needs
    :meth:`save`/:meth:`load` (to keep the best model), :meth:`run_batch` (the default
    ``performance`` objective), :meth:`model_size` and :meth:`inspect` (MSE-ranked strategies),
    and :class:`tunekit.testing.adaptor_contract.AdaptorContract` checks them all. Contract
    rules the signatures cannot show: the constructor takes keyword-only parameters (the YAML's
    ``model.options``; the recipe keeps them for :func:`tunekit.load`); an unknown approach
    raises a ``TunekitError`` mentioning "approach"; :meth:`predict` yields float32 outputs;
    :meth:`load` given another config than the saved model's raises ``ModelError`` saying
    "another config"; a config naming an op the model lacks raises ``ModelError`` naming it.
    What an adaptor derives from one FP32 model lives in :meth:`model_state`, never in other
    attributes. docs/writing-an-adaptor.md walks through all of it with the ONNX Runtime adaptor.
    """

    #: File suffix of saved tuned models, e.g. ``.pt``.
    model_suffix: ClassVar[str] = ""
    #: Files that mark a folder as a model this adaptor saved (a TensorFlow SavedModel's
    #: ``saved_model.pb``): ``--force`` replaces a taken ``--out`` folder only when it holds one,
    #: so a folder of the user's own is never removed.
    saved_folder_markers: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse, when the class is defined, a ``calibrate`` the tuner cannot call: it passes
        ``cache_dir`` to every adaptor (adaptors written before tunekit did took it optionally)."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("calibrate")
        if own is None:
            return
        parameters = inspect.signature(own).parameters.values()
        if not any(p.name == "cache_dir" or p.kind is p.VAR_KEYWORD for p in parameters):
            raise TypeError(f"{cls.__qualname__}.calibrate must take the keyword 'cache_dir': "
                            "add '*, cache_dir=None' to its parameters (a folder for statistics "
                            "a resumed tuning may reuse, or None)")

    def model_state(self, model: Any, build: Callable[[], State]) -> State:
        """The state this adaptor keeps for ``model``, made by ``build()`` on its first use.

        The one place for what an adaptor derives from an FP32 model once and reuses across
        the trials (its parsed graph and ops, an FP32 session, calibration statistics): the
        tuner calls the adaptor hundreds of times with the same model, and one adaptor may
        serve several models, whose states must not mix. The entry is found by the model
        object itself (a path by its resolved form), dies with the model, and is never pickled
        with the adaptor (:meth:`__getstate__`): statistics do not travel to another process.
        See :mod:`tunekit.model_state`.
        """
        states = vars(self).get(_STATES)
        if states is None:
            states = vars(self)[_STATES] = ModelStates()
        return states.get(model, build)

    def __getstate__(self) -> dict[str, Any]:
        """The instance without its per-model states (they hold models and stay local)."""
        return {k: v for k, v in vars(self).items() if k != _STATES}

    @classmethod
    def handles(cls, model: Any) -> bool:
        """Whether this adaptor tunes ``model``: a model object (tell by ``isinstance``) or a
        model path (a ``str``/``PathLike``: tell by suffix or folder layout).

        :func:`tunekit.api.guess_framework` asks every installed adaptor, so a third-party
        adaptor claims its own model types without any change to the core. Answer without
        importing a heavy framework: a model object of framework X cannot exist unless X is
        already in ``sys.modules``, so look there first. The default claims nothing.
        """
        return False

    def forward_signature(self, model: Any) -> inspect.Signature | None:
        """The signature a batch's inputs are bound to when ``model`` is called (``forward``'s
        for a torch module), or None when the framework has none to offer. The data contract
        (:mod:`tunekit.batches`) reads it to tell a 2-tuple of inputs from ``(inputs, labels)``
        and to name what the model expects when a batch does not fit."""
        return None

    @abc.abstractmethod
    def capabilities(self, model: Any, approach: str = "static") -> TuningSpace:
        """The tuning space of ``model``: per tunable op, its options, the default first.

        ``approach`` is ``static``, ``dynamic``, ``auto`` or ``qat`` (quantization-aware
        training, see :meth:`train_quantized`) and decides which int8 options appear.
        """

    @abc.abstractmethod
    def quantize(self, model: Any, config: QuantConfig, calib_data: Iterable[DataBatch]) -> Any:
        """A new model running each op in the precision ``config`` gives it; ``model`` is untouched."""

    def train_quantized(self, model: Any, config: QuantConfig, train_func: Callable[[Any], Any],
                        calib_data: Iterable[DataBatch]) -> Any:
        """Quantization-aware training (approach ``qat``): the candidate of ``config`` built by
        training rather than calibration.

        The adaptor makes a fake-quantized copy of ``model`` (ops ``config`` leaves in bf16/fp32
        stay float), calls ``train_func(copy)`` (the user's training loop, which sets its own
        budget), and converts the trained copy into the real low-precision model; ``model`` is
        untouched. ``calib_data`` may be empty; it serves at most to smoke-test the result.
        ``capabilities(model, "qat")`` gives the space these configs come from.
        """
        raise NotSupportedError(f"{type(self).__name__} does not support quantization-aware "
                                "training (quantization.approach: qat)")

    def calibrate(self, model: Any, space: TuningSpace, calib_data: Iterable[DataBatch], *,
                  cache_dir: Path | None = None) -> None:
        """Optional: collect calibration statistics for every option of ``space`` in one pass.

        The tuner calls it once before the trials; an adaptor that keeps the statistics in
        ``model``'s :meth:`model_state` lets its ``quantize`` calls for ``model`` skip the
        calibration data. The default does nothing, and ``quantize`` then calibrates each
        candidate itself. ``cache_dir`` (the workspace's ``calibration/`` folder, or None) is
        where statistics may be kept so a resumed tuning reuses them; keep them in a safe
        format, keyed by what they depend on. Every override takes ``cache_dir`` by keyword.
        """

    @abc.abstractmethod
    def predict(self, model: Any,
                data: Iterable[DataBatch]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Run ``model`` over ``data``; yield ``(outputs, labels)`` per batch as numpy arrays,
        float outputs as float32 whatever precision the model computes in."""

    def load_model(self, path: Path) -> Any:
        """Load an FP32 model from a file (``model.path`` in the YAML)."""
        raise NotSupportedError(f"{type(self).__name__} cannot load models from files; "
                                "give 'model.factory' instead")

    def run_batch(self, model: Any, inputs: Any) -> Any:
        """One inference call on one batch of inputs (used to time a model)."""
        raise NotSupportedError(f"{type(self).__name__} cannot time models")

    def runtime(self, model: Any) -> str | None:
        """The runtime ``model`` runs in (``TFLite``), for adaptors whose candidates may run in
        another runtime than the FP32 model: a speedup then says what it compares. None: the
        framework's own, the same for every model."""
        return None

    @contextlib.contextmanager
    def threads(self, count: int | None) -> Iterator[int | None]:
        """Run the body with ``count`` intra-op threads (``None``: leave the setting alone),
        restoring the previous setting after; yields the count in effect, None if unknown."""
        if count is not None:
            raise NotSupportedError(f"{type(self).__name__} cannot set the thread count")
        yield None

    def peak_memory(self, model: Any, inputs: Sequence[Any]) -> int:
        """Peak resident bytes of ``model`` (loaded) running each batch of ``inputs``, native
        allocations included (used by the memory objective)."""
        raise NotSupportedError(f"{type(self).__name__} cannot measure memory")

    def inspect(self, model: Any, candidate: Any, ops: Sequence[OpKey],
                data: Iterable[DataBatch]) -> Mapping[OpKey, tuple[np.ndarray, np.ndarray]]:
        """Per op, its outputs in the FP32 ``model`` and in ``candidate`` on the same inputs."""
        raise NotSupportedError(f"{type(self).__name__} cannot inspect op outputs "
                                "(needed to rank ops by quantization error)")

    def hessian_trace(self, model: Any, ops: Sequence[OpKey], data: Iterable[DataBatch],
                      loss: Any = None) -> Mapping[OpKey, float]:
        """Per op, the trace of the Hessian of ``loss(outputs, labels)`` with respect to the op's
        weights, divided by their number (Hutchinson estimate over ``data``); ``loss`` None means
        the adaptor's default (cross-entropy). Used by the hawq strategy."""
        raise NotSupportedError(f"{type(self).__name__} cannot compute Hessian traces "
                                "(needed by the hawq strategy)")

    def deploy(self, model: Any, config: QuantConfig, candidate: Any,
               calib_data: Iterable[DataBatch], inputs: Any,
               accepts: Callable[[Any], bool]) -> tuple[Any, dict[str, Any]]:
        """The form in which the tuning's accepted ``candidate`` is handed over, and what was
        decided (JSON-able, e.g. ``{"backend": ...}``; it goes into ``result.json`` and the
        recipe).

        The tuner calls it once, after the trials, with the user's timed batch ``inputs`` (None
        if there is none) and ``accepts(model)``, which evaluates a model and says whether it
        meets the accuracy goal. An adaptor whose deployed form differs from its trial
        candidates (compiled, another backend) builds it here, checks it with ``accepts`` and
        returns the candidate unchanged when it fails. The default hands the candidate over.
        """
        return candidate, {}

    def candidate_details(self, candidate: Any) -> Mapping[str, float]:
        """Figures about how a candidate was built beyond the tuner's own timings (e.g.
        ``time.compile_s``), stored with its trial; the default has none."""
        return {}

    def save(self, candidate: Any, config: QuantConfig, path: Path) -> None:
        """Write a tuned model to ``path`` in a safe, framework-native format (no pickle),
        with what :meth:`load` needs to check it was built from ``config``."""
        raise NotSupportedError(f"{type(self).__name__} cannot save models")

    def load(self, model: Any, config: QuantConfig, path: Path) -> Any:
        """Rebuild a tuned model saved by :meth:`save` from its FP32 ``model`` and recipe; its
        outputs equal the saved candidate's bit for bit. A file saved with another config than
        ``config`` raises ``ModelError`` saying "another config"."""
        raise NotSupportedError(f"{type(self).__name__} cannot load tuned models")

    def model_size(self, model: Any) -> int:
        """Serialized size of ``model`` in bytes."""
        raise NotSupportedError(f"{type(self).__name__} cannot report model size")

    def optimize_graph(self, model: Any, precisions: Sequence[str], passes: Any,
                       example_batch: DataBatch | None,
                       tune: Callable[[Any, Any], Any] | None) -> Any:
        """Graph optimization (``tunekit optimize``): a :class:`tunekit.graph.GraphResult`.

        Runs this framework's passes (entry points ``tunekit.passes`` named ``<adaptor
        name>.<pass>``, found with ``tunekit.graph.registry.available``) that ``passes`` selects
        (``tunekit.graph.pipeline.select``). ``example_batch`` is one ``(inputs, labels)``
        batch or None; ``tune(graph, amp_adaptor)``, when given, tunes the bf16/fp32 mix: the
        AMP adaptor offers bf16/fp32 per op and builds mixed candidates, and wraps this adaptor
        (composition, not a subclass) for running, timing and sizing them.
        """
        raise NotSupportedError(f"{type(self).__name__} offers no graph optimization")

    def save_optimized(self, model: Any, path: Path) -> None:
        """Write the model :meth:`optimize_graph` returned to ``path`` in a safe native form
        (``GraphResult.save``, ``tunekit optimize --out``); ``path`` is free to write.

        Graph optimization keeps framework code out of the core, so the framework saves its own
        optimized models. The default suits models that save themselves (a ``save(path)``
        method, as TensorFlow's frozen graphs and ONNX Runtime's models have); an adaptor whose
        optimized models are plain framework objects overrides it.
        """
        save = getattr(model, "save", None)
        if not callable(save):
            raise NotSupportedError(f"{type(self).__name__} cannot save a "
                                    f"{type(model).__name__} (it has no save method)")
        save(Path(path))
