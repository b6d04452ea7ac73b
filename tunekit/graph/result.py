"""What graph optimization hands back: the model, the pass report, and the tuning if one ran."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunekit.errors import ConfigError
from tunekit.graph.pipeline import PassReport
from tunekit.result import TuneResult


def prepare_out(path: str | Path, framework: str, where: str = "path") -> Path:
    """``path``, ready to take an optimized model: its folder exists (created if needed), and a
    TensorFlow SavedModel target (not ``.pb``) is new or an empty folder. ``tunekit optimize``
    calls it before any work, so a wrong ``--out`` costs no optimization; ``where`` names the
    setting in the error."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(where, f"cannot create the folder of {path} ({exc.strerror}); give a "
                                 "path in a writable folder") from exc
    if framework == "tensorflow" and path.suffix != ".pb" and path.exists() \
            and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(where, f"{path} exists and is not an empty folder: a SavedModel needs "
                                 "its own folder (or give a .pb path for the GraphDef)")
    return path


@dataclass
class GraphResult:
    """``model`` runs like the original (same inputs, float32 outputs).

    ``bf16_ops`` names the ops converted to bf16 (empty for FP32 optimization); ``tuning`` is the
    accuracy-driven tuning that chose them, when an evaluation was given.
    """

    model: Any
    framework: str
    precisions: tuple[str, ...]
    reports: Sequence[PassReport] = field(default_factory=list)
    bf16_ops: Sequence[str] = ()
    tuning: TuneResult | None = None

    @property
    def met(self) -> bool:
        """Whether the accuracy goal holds (True when no evaluation was asked for)."""
        return self.tuning is None or self.tuning.met

    def save(self, path: str | Path) -> None:
        """The model in a safe native form: ONNX, a ``.onnx`` file; TensorFlow, a GraphDef for a ``.pb`` path, else a
        SavedModel folder (see :meth:`FrozenGraph.save`); PyTorch, a TorchScript
        archive (a PyTorch result lowered to TorchScript; read it with
        :func:`tunekit.graph.pytorch.torchscript.load`), or the tensors of a ``state_dict`` (an
        FX result; rebuild with :func:`tunekit.optimize_graph` and load them)."""
        path = prepare_out(path, self.framework)
        if self.framework != "pytorch":  # FrozenGraph, OrtModel (ONNX): they save themselves
            self.model.save(path)
            return
        import torch

        if isinstance(self.model, torch.jit.ScriptModule):
            from tunekit.graph.pytorch import torchscript

            torchscript.save(self.model, path)
            return

        source = getattr(self.model, "_orig_mod", self.model)  # torch.compile'd: its FX graph
        state = {key: value.to_dense() if value.is_mkldnn else value  # oneDNN-layout weights
                 for key, value in source.state_dict().items()}
        torch.save(state, Path(path))

    def summary(self) -> str:
        lines = [f"graph optimization ({self.framework}, precisions {'+'.join(self.precisions)}):"]
        lines += ["  " + report.line() for report in self.reports]
        if "bf16" in self.precisions:
            lines.append(f"  bf16 ops: {len(self.bf16_ops)}"
                         + (f" ({', '.join(list(self.bf16_ops)[:6])}"
                            f"{', ...' if len(self.bf16_ops) > 6 else ''})" if self.bf16_ops else ""))
        if self.tuning is not None:
            lines.append("  " + self.tuning.summary().replace("\n", "\n  "))
        return "\n".join(lines)
