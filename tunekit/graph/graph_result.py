"""What graph optimization hands back: the model, the pass report, and the tuning if one ran."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunekit import plugins
from tunekit.graph.pipeline import PassReport
from tunekit.outputs import check_out, clear
from tunekit.result import TuneResult
from tunekit.speed import Speed

ADAPTORS = "tunekit.adaptors"


def prepare_out(path: str | Path, framework: str, where: str = "path",
                force: bool = False) -> Path:
    """``path``, ready to take an optimized model: its folder exists (created if needed), and
    what is there already is replaced only with ``force`` (a file, or a folder the adaptor
    saved: its ``saved_folder_markers``; see :func:`tunekit.outputs.check_out`). ``tunekit
    optimize`` calls it before any work, so a wrong ``--out`` costs no optimization; ``where``
    names the setting in the error."""
    markers = plugins.load(ADAPTORS, framework).saved_folder_markers
    return check_out(Path(path), where, force, markers)


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
    #: the optimized model timed beside the input model on the example batch (``tunekit
    #: optimize``; ``tunekit.optimize_graph`` leaves the timing to its caller)
    speed: Speed | None = None
    #: why ``speed`` is None when a timing was asked for (no example batch, or it failed)
    speed_note: str = ""

    @property
    def met(self) -> bool:
        """Whether the accuracy goal holds (True when no evaluation was asked for)."""
        return self.tuning is None or self.tuning.met

    def save(self, path: str | Path, force: bool = False) -> None:
        """The model in a safe native form, written by its adaptor
        (:meth:`~tunekit.adaptor.Adaptor.save_optimized`): ONNX, a ``.onnx`` file; TensorFlow,
        a GraphDef for a ``.pb`` path, else a SavedModel folder; PyTorch, a TorchScript archive
        (a result lowered to TorchScript) or the tensors of a ``state_dict`` (an FX result;
        rebuild with :func:`tunekit.optimize_graph` and load them). What ``path`` names already
        is replaced only with ``force``."""
        path = prepare_out(path, self.framework, force=force)
        if force:
            clear(path)
        plugins.create(ADAPTORS, self.framework).save_optimized(self.model, path)

    def summary(self) -> str:
        lines = [f"graph optimization ({self.framework}, precisions {'+'.join(self.precisions)}):"]
        lines += ["  " + report.line() for report in self.reports]
        if "bf16" in self.precisions:
            lines.append(f"  bf16 ops: {len(self.bf16_ops)}"
                         + (f" ({', '.join(list(self.bf16_ops)[:6])}"
                            f"{', ...' if len(self.bf16_ops) > 6 else ''})" if self.bf16_ops else ""))
        if self.speed is not None or self.speed_note:
            lines.append("  against the input model: "
                         + (self.speed.text() if self.speed is not None else self.speed_note))
        if self.tuning is not None:
            lines.append("  " + self.tuning.summary().replace("\n", "\n  "))
        return "\n".join(lines)
