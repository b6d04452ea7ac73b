"""Running torch models on user batches: calling conventions, outputs, calibration.

A batch's inputs may be a tensor (``model(x)``), a tuple/list of tensors (``model(*inputs)``) or
a dict of tensors (``model(**inputs)``, as HuggingFace tokenizers produce). Every backend goes
through :func:`call_model`, so all of them accept the same data.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from tunekit.data import split_batch
from tunekit.errors import DataError, TrialError, TunekitError
from tunekit.space import QuantConfig

_log = logging.getLogger(__name__)
#: attribute naming the backend that built a candidate (inspecting and saving follow it)
BACKEND_ATTR = "_tunekit_backend"


def model_fingerprint(model: nn.Module) -> tuple[Any, ...]:
    """Changes when a parameter or buffer is replaced or modified in place (its version bumps):
    per-model caches (export, tracing) compare it to rebuild rather than serve a stale graph."""
    return tuple((name, id(t), t._version) for name, t in
                 [*model.named_parameters(), *model.named_buffers()])


def call_model(model: nn.Module, inputs: Any) -> Any:
    """One forward call with the calling convention the inputs imply."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def first_tensor(outputs: Any) -> torch.Tensor:
    """The tensor a metric should see: the output itself, ``outputs["logits"]`` for a dict
    (HuggingFace ``ModelOutput`` is one), or the first tensor of a tuple/list/dict.

    Models that return ``(logits, aux)`` or ``{"logits": ..., "loss": ...}`` thus work unchanged;
    a model whose prediction is not its first output needs an ``eval_func``.
    """
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping):
        if isinstance(outputs.get("logits"), torch.Tensor):
            return outputs["logits"]
        values: Iterable[Any] = outputs.values()
    elif isinstance(outputs, (tuple, list)):
        values = outputs
    else:
        values = ()
    for value in values:
        try:
            return first_tensor(value)
        except DataError:
            continue
    raise DataError(f"the model returned {type(outputs).__name__} with no tensor in it; "
                    "return a tensor, a tuple starting with one, or a dict with 'logits'")


def to_float_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A float32 numpy copy, dequantizing quantized tensors and widening bf16."""
    if tensor.is_quantized:
        tensor = tensor.dequantize()
    return tensor.detach().float().cpu().numpy()


def outputs_for_metric(outputs: Any) -> Any:
    """What a metric gets: per-sample records (a list of dicts, as torchvision detection models
    return, or a list of strings, as a QA model wrapped to return answers) with tensors as
    numpy; otherwise :func:`first_tensor` as float32 numpy."""
    if is_records(outputs):
        return records_to_numpy(outputs)
    return to_float_numpy(first_tensor(outputs))


def labels_to_numpy(labels: Any) -> Any:
    """Labels as numpy; per-sample records (dicts or strings, see :func:`outputs_for_metric`)
    stay a list, with their tensors as numpy."""
    if labels is None:
        return None
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy()
    if is_records(labels):
        return records_to_numpy(labels)
    return np.asarray(labels)


def is_records(values: Any) -> bool:
    """A non-empty list/tuple of dicts, strings or lists of strings (not of numbers)."""
    return isinstance(values, (list, tuple)) and bool(values) and all(
        isinstance(v, (Mapping, str)) or isinstance(v, (list, tuple))
        and all(isinstance(x, str) for x in v) for v in values)


def records_to_numpy(values: Any) -> Any:
    """Tensors inside dicts and lists as numpy arrays (quantized ones dequantized)."""
    if isinstance(values, torch.Tensor):
        return to_float_numpy(values) if values.is_floating_point() or values.is_quantized \
            else values.detach().cpu().numpy()
    if isinstance(values, Mapping):
        return {key: records_to_numpy(value) for key, value in values.items()}
    if isinstance(values, (list, tuple)):
        return [records_to_numpy(value) for value in values]
    return values


def calibrate(model: nn.Module, batches: Iterable[Any]) -> int:
    """Run the batches' inputs through an observed model; returns how many batches ran."""
    count = 0
    with torch.no_grad():
        for batch in batches:
            inputs, _ = split_batch(batch)
            call_model(model, inputs)
            count += 1
    return count


def use_x86_engine() -> None:
    """Select the x86 quantized engine (oneDNN/FBGEMM by shape) where torch offers it.

    Packed int8 weights are prepared for the engine active at convert time, so the engine must be
    set before building a candidate; torch's own default differs by build.
    """
    engines = torch.backends.quantized.supported_engines
    wanted = "x86" if "x86" in engines else "fbgemm" if "fbgemm" in engines else None
    if wanted and torch.backends.quantized.engine != wanted:
        _log.debug("switching torch.backends.quantized.engine to %s", wanted)
        torch.backends.quantized.engine = wanted


def replace_module(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` at the dotted path ``name`` inside ``root``."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


@contextlib.contextmanager
def quiet_torch_ao(*, uncalibrated: bool = False) -> Iterator[None]:
    """Silence torch.ao's per-call deprecation notices (one per prepare/convert, hundreds per
    tuning; docs/pytorch-backend.md records the deprecation once) and, when a candidate is
    rebuilt on purpose without calibration, the "must run observer" notice."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions")
        # torch.ao's own reference RNN modules copy tensors the way torch now warns about
        warnings.filterwarnings("ignore", message=r"To copy construct from a tensor")
        if uncalibrated:
            warnings.filterwarnings("ignore", message=r".*must run observer before")
        yield


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode (no dropout, BN running stats), restoring each submodule's
    own mode afterwards, so evaluating a user's model leaves it as it was handed over. A
    frozen TorchScript module (graph optimization's lowering) has no mode left to set."""
    if not getattr(model, "training", False):
        yield model
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training





def checked_build(build: Callable[[], nn.Module], batches: Sequence[Any], backend: str,
                  what: str) -> nn.Module:
    """Build a candidate and run one batch through it, so that a graph torch cannot build or
    run fails here, as this config's :class:`TrialError`, rather than later in evaluation."""
    use_x86_engine()
    stage = "building"
    try:
        with quiet_torch_ao():
            candidate = build()
            if batches:
                stage = "running one batch through"
                with torch.inference_mode():
                    call_model(candidate, split_batch(batches[0])[0])
    except TunekitError:
        raise
    except Exception as exc:
        raise TrialError(f"{stage} {what} failed: {type(exc).__name__}: {exc}") from exc
    setattr(candidate, BACKEND_ATTR, backend)
    return candidate


def describe(config: QuantConfig, limit: int = 4) -> str:
    """Ops grouped by option: ``int8(static,asym,per_channel,minmax): conv1, conv2; fp32: fc``."""
    groups: dict[str, list[str]] = {}
    for op, op_config in config.ops.items():
        groups.setdefault(str(op_config), []).append(op.name)
    parts = []
    for option, names in groups.items():
        more = f", +{len(names) - limit} more" if len(names) > limit else ""
        parts.append(f"{option}: {', '.join(names[:limit])}{more}")
    return "; ".join(parts)


def fx_problem(model: nn.Module, fuse: Callable[[], nn.Module],
               probe: Sequence[Any]) -> str | None:
    """Why FX is unusable for ``model``, or None: ``fuse()`` (its traced, fused graph) fails,
    or the graph's outputs on the ``probe`` batch differ from the model's (a trace can silently
    bake in one branch)."""
    try:
        with quiet_torch_ao():
            fused = fuse()
    except ImportError as exc:
        return f"torch.ao's FX graph mode is not available ({exc})"
    except Exception as exc:
        return f"torch.fx cannot trace it ({type(exc).__name__}: {exc})"
    if not probe:
        return None
    inputs = split_batch(probe[0])[0]
    try:
        with torch.inference_mode():
            with eval_mode(model):
                expected = first_tensor(call_model(model, inputs)).float()
            got = first_tensor(call_model(fused, inputs)).float()
    except Exception as exc:
        return f"its traced graph fails to run ({type(exc).__name__}: {exc})"
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-3,
                                                          atol=1e-3 * max(scale, 1e-6)):
        return "its traced graph does not reproduce the model's outputs"
    return None
