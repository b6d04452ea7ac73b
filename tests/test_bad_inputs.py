"""The bad-input corpus: one row per mistake a user makes, run through the real CLI.

Each row says what the user does, the exit code, and the phrases the message must contain: the
field or file at fault and what to do about it. Every row runs in a workspace that already holds
a tuning history, and that history must survive byte for byte (in place, or archived under
``previous/``). Rows reuse the tiny real project of :mod:`tiny_project`; cases about one layer
alone stay in that layer's tests (test_config.py, test_plugins.py).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tiny_project import CONFIG, write_project

from tunekit import cli

torch = pytest.importorskip("torch")

USAGE, ERROR = cli.EXIT_USAGE, cli.EXIT_ERROR


def _pickled_module(root: Path) -> None:
    import model  # the project's model.py (the project folder is the cwd and on sys.path)

    torch.save(model.build(), root / "whole.pt")


def _state_dict(root: Path) -> None:
    import model

    torch.save(model.build().state_dict(), root / "weights.pt")


def _keras_file(root: Path) -> None:
    with zipfile.ZipFile(root / "digits.keras", "w") as archive:  # a .keras file's layout
        archive.writestr("metadata.json", '{"keras_version": "3.10.0"}')
        archive.writestr("config.json", '{"class_name": "Sequential"}')
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")


def _torch_model_file(root: Path) -> None:
    import model

    torch.export.save(torch.export.export(model.build(), (torch.rand(1, 1, 8, 8),)),
                      str(root / "net.pt2"))


def _corrupt_journal(root: Path) -> None:
    history = root / "ws" / "history.log"
    lines = history.read_bytes().splitlines(keepends=True)
    history.write_bytes(b"".join(lines[:3]) + b"{not json at all\n" + b"".join(lines[3:]))


@dataclass(frozen=True)
class Case:
    """What the user does (``args`` to ``tunekit tune``, a changed config, extra files) and what
    they must be told."""

    does: str
    code: int
    phrases: tuple[str, ...]
    args: tuple[str, ...] = ()
    config: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    make: Callable[[Path], None] | None = None
    workspace: str = "ws"
    config_file: str = "config.yaml"


def _set(*pairs: str) -> tuple[str, ...]:
    return tuple(arg for pair in pairs for arg in ("--set", pair))


CASES = [
    # --- the YAML file itself
    Case("config file missing", USAGE, ("nothere.yaml", "does not exist"),
         config_file="nothere.yaml"),
    Case("malformed YAML", USAGE, ("config.yaml is not valid YAML at line 2",),
         config="model: {framework: pytorch\nquantization: [\n"),
    Case("empty config", USAGE, ("config.yaml is empty", "examples/"), config=""),
    Case("config is a list", USAGE, ("must hold a mapping of sections", "model, quantization"),
         config="- model\n- tuning\n"),
    Case("unknown top-level key", USAGE, ("tunning: unknown key (did you mean 'tuning'?)",),
         config=CONFIG + "tunning: {}\n"),
    Case("unknown nested key", USAGE,
         ("tuning.exit_policy.max_trial: unknown key (did you mean 'max_trials'?)",),
         args=_set("tuning.exit_policy.max_trial=5")),
    Case("malformed --set", USAGE,
         ("--set", "'tuning.exit_policy' is not of the form key.path=value"),
         args=("--set", "tuning.exit_policy")),
    # --- wrong types and values
    Case("max_trials is text", USAGE,
         ("tuning.exit_policy.max_trials: must be int, got str 'ten'",),
         args=_set("tuning.exit_policy.max_trials=ten")),
    Case("negative trial budget", USAGE, ("tuning.exit_policy.max_trials: must be > 0, got -3",),
         args=_set("tuning.exit_policy.max_trials=-3")),
    Case("negative time budget", USAGE, ("tuning.exit_policy.timeout: must be ≥ 0 seconds",),
         args=("--timeout", "-5")),
    Case("negative per-trial limit", USAGE,
         ("tuning.exit_policy.trial_timeout: must be ≥ 0 seconds per trial",),
         args=_set("tuning.exit_policy.trial_timeout=-1")),
    Case("relative loss given in percent", USAGE,
         ("tuning.accuracy_criterion.relative: is a fraction (0.01 = 1%), got 5.0",),
         args=_set("tuning.accuracy_criterion={relative: 5}")),
    Case("relative and absolute loss", USAGE,
         ("tuning.accuracy_criterion: give either 'relative' or 'absolute'",),
         args=_set("tuning.accuracy_criterion={relative: 0.01, absolute: 0.01}")),
    Case("unknown approach", USAGE,
         ("quantization.approach: 'semi' is not one of static, dynamic, auto",),
         args=_set("quantization.approach=semi")),
    Case("zero calibration samples", USAGE,
         ("quantization.calibration.sampling_size: must be > 0, got 0",),
         args=_set("quantization.calibration.sampling_size=0")),
    Case("seed is a float", USAGE, ("tuning.random_seed: must be int, got float 1.5",),
         args=_set("tuning.random_seed=1.5")),
    # --- plugins
    Case("unknown strategy", USAGE,
         ("tuning.strategy: unknown strategies plugin 'bayes'; installed:", "basic"),
         args=_set("tuning.strategy=bayes")),
    Case("unknown metric", USAGE,
         ("evaluation.metric.name: unknown metrics plugin 'acc'; installed:", "topk"),
         args=_set("evaluation.metric={name: acc}")),
    Case("unknown objective", USAGE, ("tuning.objective: unknown objectives plugin 'speed'",
                                      "performance"), args=_set("tuning.objective=speed")),
    Case("unknown framework", USAGE, ("model.framework: unknown adaptors plugin 'jax'",
                                      "pytorch"), args=_set("model.framework=jax")),
    Case("strategy parameter it does not take", USAGE,
         ("strategies plugin 'basic' rejects parameters ['tries']", "it accepts:"),
         args=_set("tuning.strategy={name: basic, tries: 3}")),
    Case("plugin that is not a Strategy", USAGE,
         ("tuning.strategy: strategies plugin 'notastrategy'",
          "is not a subclass of tunekit.strategy.Strategy"),
         args=_set("tuning.strategy=notastrategy")),
    # --- the model
    Case("path and factory both given", USAGE, ("model: give exactly one of 'path'",),
         args=_set("model={framework: pytorch, path: m.pt, factory: model:build}")),
    Case("model file missing", USAGE, ("nothere.pt2", "does not exist"),
         args=_set("model={framework: pytorch, path: nothere.pt2}")),
    Case("model file corrupt", ERROR, ("broken.pt", "is not a PyTorch model file or is corrupt"),
         args=_set("model={framework: pytorch, path: broken.pt}"),
         files={"broken.pt": "\x00\x01 this is not a checkpoint"}),
    Case("pickled whole model without opt-in", ERROR,
         ("whole.pt holds a pickled Python object", "can run arbitrary code", "allow_pickle"),
         args=_set("model={framework: pytorch, path: whole.pt}"), make=_pickled_module),
    Case("weights only, no architecture", ERROR,
         ("weights.pt holds a state_dict", "model.factory"),
         args=_set("model={framework: pytorch, path: weights.pt}"), make=_state_dict),
    Case("Keras model given to the pytorch adaptor", ERROR,
         ("digits.keras", "Keras", "model.framework: tensorflow"),
         args=_set("model={framework: pytorch, path: digits.keras}"), make=_keras_file),
    Case("torch model given to the tensorflow adaptor", ERROR,
         ("net.pt2", "model.framework: pytorch"),
         args=_set("model={framework: tensorflow, path: net.pt2}"), make=_torch_model_file),
    Case("factory returns no model", ERROR,
         ("could not analyse the model, a builtins.dict", "check that model.factory",
          "gives a pytorch model"),
         args=_set("model.factory=extra:not_a_model"),
         files={"extra.py": "def not_a_model():\n    return {'conv1': 1}\n"}),
    Case("factory raises", ERROR,
         ("model.factory extra:broken raised RuntimeError: weights file is corrupt",
          "extra.py"), args=_set("model.factory=extra:broken"),
         files={"extra.py": "def broken():\n    raise RuntimeError('weights file is corrupt')\n"}),
    Case("factory module missing", USAGE, ("model.factory: cannot import module 'modle'",),
         args=_set("model.factory=modle:build")),
    # --- data
    Case("empty calibration data", USAGE,
         ("the calibration data yielded no batches", "check the dataset"),
         args=_set("quantization.calibration.data=extra:nothing"),
         files={"extra.py": "def nothing():\n    return []\n"}),
    Case("evaluation data not iterable", USAGE,
         ("evaluation.data: must be iterable", "got int"),
         args=_set("evaluation.data=extra:number"),
         files={"extra.py": "def number():\n    return 3\n"}),
    Case("metric without evaluation data", USAGE, ("evaluation.data: is required with a metric",),
         args=_set("evaluation={metric: {name: topk}}")),
    Case("evaluation inputs of the wrong shape", USAGE,
         ("evaluation batch 0 does not fit the model: model(Tensor[4, 3, 8, 8]) raised",
          "to have 1 channels, but got 3", ".forward takes (x)", "fix: "),
         args=_set("evaluation.data=extra:wrong_shape"),
         files={"extra.py": "import torch\n\ndef wrong_shape():\n"
                            "    return [(torch.rand(4, 3, 8, 8), torch.zeros(4).long())]\n"}),
    Case("labels offset by one: baseline 0", ERROR,
         ("the FP32 baseline metric is 0", "labels offset by one", "evaluation.metric"),
         args=_set("evaluation.data=extra:offset"),
         files={"extra.py": "import data\n\ndef offset():\n"
                            "    return [(x, (y + 1) % 5) for x, y in data.evaluate_loader()]\n"}),
    # --- op rules
    Case("op rule naming an op that does not exist", USAGE,
         ("quantization.op_rules", "conv9", "tunable ops are: conv1"),
         args=_set("quantization.op_rules=[{name: conv9, allow: [fp32]}]")),
    Case("op rule with an unknown precision", USAGE,
         ("quantization.op_rules[0].allow", "int4", "int8"),
         args=_set("quantization.op_rules=[{type: Conv2d, allow: [int4]}]")),
    # --- user evaluation code
    Case("eval_func returns text", ERROR,
         ("evaluation.eval_func extra:evaluate returned 'good' (a str); it must return a number",),
         args=_set("evaluation={eval_func: extra:evaluate}"),
         files={"extra.py": "def evaluate(model):\n    return 'good'\n"}),
    Case("eval_func returns NaN", ERROR, ("the FP32 baseline metric is nan",),
         args=_set("evaluation={eval_func: extra:evaluate}"),
         files={"extra.py": "def evaluate(model):\n    return float('nan')\n"}),
    Case("eval_func raises", ERROR,
         ("baseline", "raised KeyError", "extra.py"),
         args=_set("evaluation={eval_func: extra:evaluate}"),
         files={"extra.py": "def evaluate(model):\n    raise KeyError('label')\n"}),
    # --- workspace and history
    Case("unwritable workspace", USAGE,
         ("tuning.workspace.path: cannot write to", "choose a writable folder"),
         workspace="config.yaml/ws"),
    Case("corrupt history on resume", USAGE,
         ("history.log is damaged at line 4", "move it away", "--resume"),
         args=("--resume",), make=_corrupt_journal),
]
BROKEN_PLUGIN = ("[tunekit.strategies]\nnotastrategy = not_a_strategy:Thing\n",
                 {"not_a_strategy": "class Thing:\n    pass\n"})


@pytest.fixture(scope="module")
def prior_history(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The journal of a real (one-trial) tuning: the history no failing run may lose."""
    root = tmp_path_factory.mktemp("prior")
    config = write_project(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        code = cli.main(["tune", str(config), "--workspace", str(root / "ws"), "-q",
                         "--max-trials", "1"])
    assert code in (cli.EXIT_MET, cli.EXIT_NOT_MET)
    return (root / "ws" / "history.log").read_bytes()


def _histories(workspace: Path) -> list[bytes]:
    return [p.read_bytes() for p in workspace.rglob("history.log")]


@pytest.mark.parametrize("case", CASES, ids=[c.does for c in CASES])
def test_bad_input_names_the_fault_and_keeps_history(
        case: Case, tmp_path: Path, prior_history: bytes, install_dist, capsys,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    config = write_project(root, CONFIG if case.config is None else case.config, **{
        name.replace(".", "__"): text for name, text in case.files.items()})
    (root / "ws").mkdir()
    (root / "ws" / "history.log").write_bytes(prior_history)
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    for module in ("model", "data", "extra"):
        monkeypatch.delitem(__import__("sys").modules, module, raising=False)
    install_dist("not-a-strategy", *BROKEN_PLUGIN)
    if case.make is not None:
        case.make(root)
    before = _histories(root / "ws")
    code = cli.main(["tune", str(config.with_name(case.config_file)), "--workspace",
                     str(root / case.workspace), *case.args])
    err = capsys.readouterr().err
    assert code == case.code, err
    for phrase in case.phrases:
        assert phrase in err, f"{phrase!r} not in: {err}"
    assert "Traceback" not in err
    after = _histories(root / "ws")
    assert all(history in after for history in before), "the earlier tuning history was lost"


def test_corpus_is_large() -> None:
    assert len(CASES) >= 30
