"""The data contract: what a batch is, decided once per loader and checked on the FP32 model
before trial 0.

A batch is ``inputs`` or ``(inputs, labels)``. Inputs are a tensor or array (called as
``model(x)``), a tuple or list (positional arguments, ``model(*x)``) or a mapping (keyword
arguments, ``model(**x)``). A mapping batch holding ``data.label_key`` (default ``labels``, the
HuggingFace name) has that key taken out as the labels before the call.

A flat tuple of tensors is the one ambiguous form: ``(a, b)`` may be ``(inputs, labels)`` or two
inputs (``forward(input_ids, attention_mask)`` fed by an inputs-only loader); ``(a, b, c)`` may
be three inputs or two and the labels. It is never split by guess; :func:`layout` decides, in
order:

1. ``data.pairs`` when set (``inputs``: every element is an input; ``labelled``: the last one
   is the labels);
2. the structure: a last element of another batch size than the first is labels;
3. the model's forward signature (:meth:`~tunekit.adaptor.Adaptor.forward_signature`): fewer
   positional parameters than elements means labels, as many required ones means inputs, and
   a parameter named like labels (``labels``, ``target``, ``y``...) in the last element's place
   means labels;
4. the FP32 model: the reading whose call succeeds; when both do, a last element of the first's
   exact shape (an attention mask beside its ids) is an input, and anything else is truly
   ambiguous: tuning stops and says how to fix it (``data.pairs``, or nest the inputs). An
   adaptor that offers no signature keeps the plain reading there (a 2-tuple is
   ``(inputs, labels)``, a longer tuple is inputs), since its models tell nothing more.

Non-flat batches keep the plain reading: ``((ids, mask), labels)``, ``(x, None)`` and
``(x, ["a", "b"])`` are ``(inputs, labels)``.

:func:`feed` resolves the calibration and evaluation loaders this way, runs the first batch of
each through the very calls candidates get (``adaptor.run_batch`` for calibration,
``adaptor.predict`` for evaluation) and hands on canonical ``(inputs, labels)`` pairs, so
calibration, evaluation, Hessian traces, QAT and timing all read batches with
:func:`tunekit.data.split_batch` and agree. A mismatch stops the tuning with one line naming the
batch, the call made, what the model's forward takes and the fix.

Framework-free: the model is only called through its adaptor, so a backend an adaptor adds (a
PT2E path inside the PyTorch adaptor, say) gets the same contract for free as long as its
candidates run through ``run_batch``/``predict``; an adaptor of a framework without Python
signatures returns None from ``forward_signature`` and step 3 is skipped.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunekit.errors import ConfigError, DataError, NotSupportedError

if TYPE_CHECKING:
    from tunekit.adaptor import Adaptor
    from tunekit.config import DataSpec

#: Parameter names that mean "the labels" when they take a flat tuple's last element.
LABEL_NAMES = frozenset({"labels", "label", "target", "targets", "y", "y_true", "gt"})
#: Parameters of a forward shown in messages (HuggingFace forwards take a dozen).
SHOWN_PARAMS = 5


@dataclass(frozen=True)
class Layout:
    """How one loader's batches split into ``(inputs, labels)``: ``labelled`` says whether a
    tuple's last element is the labels (for a 2-tuple: ``(inputs, labels)``) or an input."""

    labelled: bool
    label_key: str = "labels"

    def split(self, batch: Any) -> tuple[Any, Any]:
        """``(inputs, labels)`` of one batch (labels None when it carries none)."""
        if isinstance(batch, Mapping):
            if self.label_key in batch:
                inputs = {k: v for k, v in batch.items() if k != self.label_key}
                return inputs, batch[self.label_key]
            return batch, None
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            return batch, None
        if not self.labelled:
            return tuple(batch), None
        if len(batch) == 2:
            return batch[0], batch[1]
        return tuple(batch[:-1]), batch[-1]


class Canonical:
    """A loader whose batches come out as ``(inputs, labels)`` by a :class:`Layout`; iterable
    again and again (one pass per trial), with the loader's length when it has one."""

    def __init__(self, data: Iterable[Any], layout: Layout) -> None:
        self.data = data
        self.layout = layout

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return (self.layout.split(batch) for batch in self.data)

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]  # TypeError: no length, as the loader


def feed(adaptor: Adaptor, model: Any, calib: Sequence[Any] | None, eval_data: Any,
         spec: DataSpec) -> tuple[list[Any] | None, Any]:
    """The calibration batches and evaluation data as canonical ``(inputs, labels)`` pairs,
    after checking the first batch of each on the FP32 ``model`` (see the module docstring)."""
    runs = type(adaptor).run_batch is not _base_run_batch()
    call = (lambda inputs: adaptor.run_batch(model, inputs)) if runs else None
    signature = adaptor.forward_signature(model)
    name = type(model).__name__
    if calib:
        found = layout(calib[0], call, signature, spec, "calibration batch 0", name)
        if call is not None:
            check(lambda: call(found.split(calib[0])[0]), found.split(calib[0])[0],
                  signature, "calibration batch 0", name)
        calib = [found.split(batch) for batch in calib]
    if eval_data is not None:
        first = next(iter(eval_data), None)
        if first is not None:
            found = layout(first, call, signature, spec, "evaluation batch 0", name)
            pair = found.split(first)
            check(lambda: next(iter(adaptor.predict(model, [pair])), None), pair[0], signature,
                  "evaluation batch 0", name)
            eval_data = Canonical(eval_data, found)
    return calib, eval_data


def layout(batch: Any, call: Callable[[Any], Any] | None, signature: inspect.Signature | None,
           spec: DataSpec, where: str, name: str = "model") -> Layout:
    """How the loader whose first batch is ``batch`` is read (steps 1-4 of the module
    docstring); ``call`` runs the FP32 model on inputs (None: the adaptor cannot, step 4 then
    keeps the plain reading)."""
    if not _flat(batch):
        return Layout(isinstance(batch, (tuple, list)) and len(batch) == 2, spec.label_key)
    if spec.pairs != "auto":
        return Layout(spec.pairs == "labelled", spec.label_key)
    decided = _by_structure(batch)
    if decided is None:
        decided = _by_signature(batch, signature)
    if decided is None:
        decided = _by_running(batch, call, signature, where, name)
    return Layout(decided, spec.label_key)


def check(run: Callable[[], Any], inputs: Any, signature: inspect.Signature | None, where: str,
          name: str = "model") -> None:
    """Run ``run`` (one call of the FP32 model on ``inputs``); any failure stops the tuning
    with :func:`mismatch`'s one line."""
    try:
        run()
    except NotSupportedError:
        return  # the adaptor cannot run the model this way; its trials will say so
    except Exception as exc:
        raise mismatch(where, inputs, exc, signature, name) from exc


def mismatch(where: str, inputs: Any, exc: BaseException, signature: inspect.Signature | None,
             name: str = "model") -> DataError:
    """One line: the batch, the call made, what forward takes, the error and the fix."""
    text = (str(exc).strip().splitlines() or [""])[0]
    takes = f"; {name}.forward takes {show_signature(signature)}" if signature else ""
    fix = "" if "; fix: " in text else f"; fix: {_fix(text, inputs)}"  # the error's own fix
    return DataError(f"{where} does not fit the model: {describe_call(inputs)} raised "
                     f"{type(exc).__name__}: {text}{takes}{fix}")


def describe_call(inputs: Any) -> str:
    """``model(Tensor[8, 16], Tensor[8, 16])``, ``model(input_ids=Tensor[8, 16])``: the call a
    batch's inputs make."""
    if isinstance(inputs, Mapping):
        return "model(" + ", ".join(f"{k}={_show(v)}" for k, v in inputs.items()) + ")"
    if isinstance(inputs, (tuple, list)):
        return "model(" + ", ".join(_show(v) for v in inputs) + ")"
    return f"model({_show(inputs)})"


def show_signature(signature: inspect.Signature) -> str:
    """``(input_ids=None, attention_mask=None, ...)``: names, ``=…`` marking defaults shortened."""
    shown = []
    for param in signature.parameters.values():
        prefix = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "")
        default = "" if param.default is param.empty else f"={_short(param.default)}"
        shown.append(f"{prefix}{param.name}{default}")
    more = ", ..." if len(shown) > SHOWN_PARAMS else ""
    return "(" + ", ".join(shown[:SHOWN_PARAMS]) + more + ")"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 12 else "…"


def _show(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__}[{', '.join(str(d) for d in tuple(shape))}]"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return type(value).__name__


def _fix(error: str, inputs: Any) -> str:
    """The likely fix for a batch the model rejects, from the error text."""
    unexpected = re.search(r"unexpected keyword argument '([^']+)'", error)
    if unexpected and isinstance(inputs, Mapping):
        key = unexpected.group(1)
        return (f"drop the key {key!r} from the batches, or set data.label_key: {key} if it "
                "holds the labels")
    if "missing" in error and "required" in error or "positional argument" in error:
        return ("give every input forward needs, as a tuple (positional) or dict (keywords): "
                "a batch is inputs or (inputs, labels), e.g. ((input_ids, attention_mask), "
                "labels); data.pairs: inputs reads a flat tuple as inputs only")
    return ("make each batch inputs or (inputs, labels), with inputs what forward takes: a "
            "tensor, a tuple (positional) or a dict (keywords; data.label_key names the labels)")


def _leading(value: Any) -> int | None:
    shape = getattr(value, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) > 0 else None


def _flat(batch: Any) -> bool:
    """A tuple/list of ≥ 2 tensors or arrays, each with a batch dimension."""
    return isinstance(batch, (tuple, list)) and len(batch) >= 2 and \
        all(_leading(v) is not None for v in batch)


def _by_structure(batch: Sequence[Any]) -> bool | None:
    return True if _leading(batch[-1]) != _leading(batch[0]) else None


def _by_signature(batch: Sequence[Any], signature: inspect.Signature | None) -> bool | None:
    if signature is None:
        return None
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    required = [p for p in positional if p.default is p.empty]
    n = len(batch)
    if not varargs and len(positional) < n:
        return True
    if len(required) >= n:
        return False
    if len(positional) >= n and positional[n - 1].name.lower() in LABEL_NAMES:
        return True
    return None


def _by_running(batch: Sequence[Any], call: Callable[[Any], Any] | None,
                signature: inspect.Signature | None, where: str, name: str) -> bool:
    if call is None:
        return len(batch) == 2
    whole, head = tuple(batch), (batch[0] if len(batch) == 2 else tuple(batch[:-1]))
    whole_error, head_error = _attempt(call, whole), _attempt(call, head)
    if whole_error is None and head_error is not None:
        return False
    if head_error is not None:
        raise mismatch(where, head, head_error, signature, name)
    if whole_error is not None:
        return True
    if tuple(getattr(batch[-1], "shape", ())) == tuple(getattr(batch[0], "shape", ())):
        return False
    if signature is None:  # a framework without signatures: the plain reading
        return len(batch) == 2
    raise ConfigError("data.pairs", f"{where} is a flat {len(batch)}-tuple that {name} accepts "
                                    f"both as {len(batch)} inputs and as inputs plus labels; set "
                                    f"data.pairs: inputs or data.pairs: labelled, or nest the "
                                    f"inputs: ((a, b), labels)")


def _attempt(call: Callable[[Any], Any], inputs: Any) -> BaseException | None:
    try:
        call(inputs)
    except Exception as exc:  # noqa: BLE001 - a failed reading, weighed by the caller
        return exc
    return None


def _base_run_batch() -> Callable[..., Any]:
    from tunekit.adaptor import Adaptor

    return Adaptor.run_batch
