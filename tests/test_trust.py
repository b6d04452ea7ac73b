"""What a user can rely on: nothing overwritten or swept (workspace archiving, ``--out`` and
``--force``), one line for every error with the README's exit codes, and trust boundaries that
hold (a worker imports and unpickles only what its command line allows; ``tunekit.load`` runs
no workspace code unasked). Real tiny tunings and files in a temp folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_project import CONFIG, write_project

import tunekit
from tunekit import cli
from tunekit.distributed import Job, trust_flags
from tunekit.errors import ConfigError
from tunekit.references import allowed_code, resolve
from tunekit.worker import Trust
from tunekit.workspace import Workspace

torch = pytest.importorskip("torch")

#: a one-trial tuning of the tiny project (size objective: no timing)
QUICK = ("--set", "tuning.exit_policy.max_trials=1", "-q")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_project(tmp_path, CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tune(project: Path, *args: str) -> int:
    return cli.main(["tune", str(project / "config.yaml"), "--workspace", str(project / "ws"),
                     *QUICK, *args])


# ------------------------------------------------------------------ nothing overwritten or swept

def test_archiving_moves_only_tunekits_files_and_says_so(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = project / "ws"
    assert tune(project) in (cli.EXIT_MET, cli.EXIT_NOT_MET)
    (ws / "notes.txt").write_text("mine")
    (ws / "data").mkdir()
    first = json.loads((ws / "result.json").read_text())
    capsys.readouterr()
    assert tune(project) in (cli.EXIT_MET, cli.EXIT_NOT_MET)
    [archive] = list((ws / "previous").iterdir())
    assert {p.name for p in archive.iterdir()} >= {"history.log", "best_config.json",
                                                  "result.json", "report.md", "best_model.pt"}
    assert json.loads((archive / "result.json").read_text()) == first
    assert (ws / "notes.txt").read_text() == "mine" and (ws / "data").is_dir()
    assert not (archive / "notes.txt").exists()
    moved = [line for line in capsys.readouterr().err.splitlines() if "moved to" in line]
    assert len(moved) == 1 and str(archive) in moved[0]


def test_archiving_works_with_an_external_storage(project: Path, tmp_path: Path) -> None:
    """The history lives elsewhere, yet the best model, recipe and reports are not lost."""
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert tune(project, "--storage", storage) in (cli.EXIT_MET, cli.EXIT_NOT_MET)
    recipe = (project / "ws" / "best_config.json").read_text()
    assert not (project / "ws" / "history.log").exists()
    assert tune(project, "--storage", storage) in (cli.EXIT_MET, cli.EXIT_NOT_MET)
    [archive] = list((project / "ws" / "previous").iterdir())
    assert (archive / "best_config.json").read_text() == recipe


def test_a_workspace_of_user_files_only_is_not_archived(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    Workspace(tmp_path).prepare(resume=False)
    assert not (tmp_path / "previous").exists()


def test_optimize_out_is_refused_before_the_work_unless_forced(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = project / "opt.yaml"
    config.write_text("model: {framework: pytorch, factory: model:build}\n"
                      "graph_optimization: {precisions: [fp32]}\n")
    out = project / "m.pt"
    out.write_text("user data")
    assert cli.main(["optimize", str(config), "--out", str(out), "-q"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "--out" in err and "already exists" in err and "--force" in err
    assert out.read_text() == "user data"
    assert cli.main(["optimize", str(config), "--out", str(out), "--force", "-q"]) == 0
    assert out.read_bytes() != b"user data"


def test_force_never_replaces_a_folder_that_is_not_an_output(project: Path) -> None:
    from tunekit.outputs import check_out

    (project / "mine").mkdir()
    (project / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(ConfigError, match="holds no tunekit output"):
        check_out(project / "mine", "--out", force=True, markers=("saved_model.pb",))


def test_compare_out_and_a_broken_cache_fail_before_any_evaluation(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = project / "cmp"
    out.mkdir()
    (out / "compare.json").write_text("{}")
    args = ["compare", str(project / "config.yaml"), "--strategies", "basic", "--out", str(out)]
    assert cli.main(args) == cli.EXIT_USAGE
    assert "compare.json already exists" in capsys.readouterr().err
    (project / "broken.json").write_text("{not json")
    assert cli.main([*args, "--force", "--cache", str(project / "broken.json")]) == \
        cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--cache" in err and "broken.json" in err
    assert not (out / "workspace").exists()  # nothing was evaluated


def test_benchmark_out_is_checked_before_timing(project: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert tune(project) in (cli.EXIT_MET, cli.EXIT_NOT_MET)
    (project / "taken.json").write_text("{}")
    code = cli.main(["benchmark", str(project / "config.yaml"), "--model", str(project / "ws"),
                     "--out", str(project / "taken.json")])
    assert code == cli.EXIT_USAGE
    assert "taken.json already exists" in capsys.readouterr().err
    code = cli.main(["benchmark", str(project / "config.yaml"), "--model", str(project / "no")])
    assert code == cli.EXIT_USAGE and not (project / "no").exists()  # nothing created


# ------------------------------------------------------------------ one line per error

def test_an_unexpected_error_is_one_line_naming_tunekit_debug(
        project: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    from tunekit import api

    def bug(spec: object) -> None:
        raise KeyError("a bug\nwith a second line")

    monkeypatch.setattr(api, "tune_config", bug)
    assert tune(project) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KeyError" in err and "TUNEKIT_DEBUG=1" in err
    monkeypatch.setenv("TUNEKIT_DEBUG", "1")
    assert tune(project) == cli.EXIT_ERROR
    assert "Traceback" in capsys.readouterr().err


def test_a_missing_model_file_is_a_usage_error(project: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = tune(project, "--set", "model={framework: pytorch, path: nothere.pt2}")
    assert code == cli.EXIT_USAGE
    assert "model.path" in capsys.readouterr().err


# ------------------------------------------------------------------ trust boundaries

def test_load_runs_no_workspace_code_unless_trusted(project: Path) -> None:
    assert tune(project) in (cli.EXIT_MET, cli.EXIT_NOT_MET)
    ws = project / "ws"
    with pytest.raises(ConfigError, match="trust=True"):
        tunekit.load(ws)
    import model  # the project's own model.py: the caller passes the FP32 model

    inputs = torch.rand(2, 1, 8, 8)
    given = tunekit.load(ws, model.build())
    trusted = tunekit.load(ws, trust=True)
    torch.testing.assert_close(given(inputs), trusted(inputs))


def test_resolve_imports_only_allowed_modules(project: Path) -> None:
    with allowed_code(("model",)):
        assert callable(resolve("model:build", project, "model.factory"))
        with pytest.raises(ConfigError, match="--allow-code data"):
            resolve("data:calib", project, "quantization.calibration.data")
        with pytest.raises(ConfigError, match="may not import"):
            resolve("os:system", project, "evaluation.eval_func")
    assert callable(resolve("os:getcwd", project, "x"))  # outside the block: the user's own


def test_a_worker_ignores_the_studys_pickle_option_and_folder(tmp_path: Path) -> None:
    job = Job("r", {"model": {"framework": "pytorch", "path": "m.pt",
                              "options": {"allow_pickle": True}}}, "/elsewhere", str(tmp_path))
    raw, base = Trust(code_dir=tmp_path).job_config(job)
    assert raw["model"]["options"]["allow_pickle"] is False and base == tmp_path.resolve()
    assert job.config["model"]["options"]["allow_pickle"] is True  # the job is not changed
    raw, base = Trust(allow_pickle=True, code_dir=tmp_path).job_config(job)
    assert raw["model"]["options"]["allow_pickle"] is True
    raw, base = Trust(trust_study=True).job_config(job)
    assert base == Path("/elsewhere") and Trust(trust_study=True).modules is None


def test_local_workers_are_allowed_exactly_the_coordinators_code(tmp_path: Path) -> None:
    job = Job.new({"model": {"framework": "pytorch", "factory": "pkg.model:build"},
                   "evaluation": {"data": "data:loader", "metric": {"name": "topk"}},
                   "tuning": {"strategy": {"name": "hawq", "loss": "losses:ce"},
                              "storage": "sqlite:///x.db"}}, tmp_path, tmp_path)
    flags = trust_flags(job)
    allowed = [flags[i + 1] for i, f in enumerate(flags) if f == "--allow-code"]
    assert allowed == ["data", "losses", "pkg.model"]
    assert flags[:2] == ["--code-dir", str(tmp_path.resolve())] and "--allow-pickle" not in flags


def test_a_worker_refuses_code_its_command_line_does_not_allow(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real coordinator posts its job in SQLite; a worker allowed only ``model`` refuses the
    study's ``data`` module, says which flag would allow it, and the coordinator stops."""
    import subprocess
    import sys

    storage = f"sqlite:///{project / 'study.db'}"
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "tunekit.cli", "tune", str(project / "config.yaml"),
         "--workspace", str(project / "ws"), "--storage", storage, "--study", "s", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        code = cli.main(["worker", "--storage", storage, "--study", "s", "--allow-code",
                         "model", "--code-dir", str(project), "--wait", "120", "-q"])
        err = capsys.readouterr().err
        assert code == cli.EXIT_USAGE and "--allow-code data" in err
        _, coordinator_err = coordinator.communicate(timeout=120)
        assert coordinator.returncode != 0 and "a worker stopped" in coordinator_err
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait()
