"""The ``tunekit`` command line.

Exit codes (README, "From the command line"): 0 goal met, 3 goal not met (best-so-far saved),
2 configuration, usage or data error, 1 anything else (e.g. every candidate failed:
tunekit.failures). Every error prints as one line, no traceback (``TUNEKIT_DEBUG=1`` shows it);
an unexpected one says so.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tunekit.errors import ConfigError, DataError, PluginError, TunekitError, TunekitWarning
from tunekit.outputs import check_out

EXIT_MET, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_MET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: what ``tunekit compare`` writes into ``--out`` (refused when present, unless ``--force``)
COMPARE_OUTPUTS = ("compare.csv", "compare.json", "compare.png")
#: What ``add_subparsers`` returns, to which each ``_add_<command>`` adds its command
Commands = argparse._SubParsersAction


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunekit", description="Accuracy-driven low-precision "
                                     "tuning of PyTorch and TensorFlow models.")
    from tunekit.version import __version__

    parser.add_argument("--version", action="version", version=f"tunekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_tune(sub)
    _add_worker(sub)
    _add_compare(sub)
    _add_benchmark(sub)
    _add_optimize(sub)
    sub.add_parser("plugins", help="list installed plugins per group and who provides them")
    _add_report(sub)
    return parser


def _add_tune(sub: Commands) -> None:
    """``tunekit tune``: its flags override the config's ``tuning`` fields
    (:func:`_tune_overrides`)."""
    tune = sub.add_parser("tune", help="tune a model as a YAML config describes")
    tune.add_argument("config", type=Path, help="the YAML config (see examples/)")
    tune.add_argument("--workspace", type=Path, help="folder for history, best model and report")
    tune.add_argument("--resume", action="store_true", help="continue the tuning in the workspace")
    tune.add_argument("--max-trials", type=int, help="override tuning.exit_policy.max_trials")
    tune.add_argument("--timeout", type=float, help="override tuning.exit_policy.timeout (s)")
    tune.add_argument("--seed", type=int, help="override tuning.random_seed")
    tune.add_argument("--storage", help="optuna storage URL for the history (default: a journal "
                                        "file in the workspace)")
    tune.add_argument("--study", help="distributed: coordinate the tuning as this optuna "
                                      "study in --storage; `tunekit worker` processes evaluate "
                                      "its trials (docs/distributed.md)")
    tune.add_argument("--workers", type=int, help="distributed: start N local worker "
                                                  "processes (default storage: an SQLite file "
                                                  "in the workspace)")
    tune.add_argument("--heartbeat", type=int, help="distributed: seconds between worker "
                                                    "heartbeats; a worker silent for 3 is "
                                                    "presumed dead and its trial re-queued "
                                                    "(default 10)")
    tune.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY.PATH=VALUE", help="override any config field (repeatable)")
    tune.add_argument("-q", "--quiet", action="store_true", help="only warnings and the summary")


def _add_worker(sub: Commands) -> None:
    """``tunekit worker``: what a worker may import and unpickle is its own command line's call."""
    worker = sub.add_parser("worker", help="evaluate the trials of a distributed tuning")
    worker.add_argument("--storage", required=True,
                        help="the coordinator's storage URL (postgresql://…, or sqlite:///… "
                             "on its machine)")
    worker.add_argument("--study", required=True, help="the coordinator's --study")
    worker.add_argument("--workspace", type=Path,
                        help="folder with the calibration cache (default: the coordinator's "
                             "workspace path, which suits one machine or a shared filesystem)")
    worker.add_argument("--heartbeat", type=int, default=10,
                        help="seconds between heartbeats; use the coordinator's (default 10)")
    worker.add_argument("--wait", type=float, default=600.0,
                        help="seconds to wait for the coordinator to create the study and "
                             "post its tuning (default 600)")
    worker.add_argument("--allow-code", action="append", default=[], metavar="MODULE",
                        help="a module (and its submodules) whose code the study's config may "
                             "make this worker import, e.g. model (repeatable); nothing else "
                             "is imported")
    worker.add_argument("--code-dir", type=Path,
                        help="the folder those modules are imported from (default: the "
                             "current directory)")
    worker.add_argument("--allow-pickle", action="store_true",
                        help="honour the study's model.options.allow_pickle (unpickling a "
                             "model file runs its code)")
    worker.add_argument("--trust-study", action="store_true",
                        help="import, from the coordinator's folder, and unpickle whatever the "
                             "study says: only for a database that only trusted people can "
                             "write")
    worker.add_argument("-q", "--quiet", action="store_true", help="only warnings")


def _add_compare(sub: Commands) -> None:
    """``tunekit compare``: strategies × seeds on one workload."""
    compare = sub.add_parser("compare", help="compare strategies on one workload (research)")
    compare.add_argument("config", type=Path, help="the YAML config of the workload")
    compare.add_argument("--strategies", required=True,
                         help="comma-separated strategy names, e.g. basic,mse,bayesian")
    compare.add_argument("--seeds", type=int, default=1,
                         help="seeds per strategy: tuning.random_seed, +1, ... (default 1)")
    compare.add_argument("--out", type=Path, default=Path("tunekit_compare"),
                         help="folder for compare.csv/.json/.png (default ./tunekit_compare)")
    compare.add_argument("--force", action="store_true",
                         help="replace the compare.* files already in --out")
    compare.add_argument("--cache", type=Path,
                         help="JSON file of evaluations to reuse and extend across comparisons")
    compare.add_argument("--max-trials", type=int, help="override tuning.exit_policy.max_trials")
    compare.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY.PATH=VALUE", help="override any config field (repeatable)")
    compare.add_argument("-q", "--quiet", action="store_true", help="only the table")


def _add_benchmark(sub: Commands) -> None:
    """``tunekit benchmark``: the tuned model timed beside the FP32 one."""
    bench = sub.add_parser("benchmark", help="time the FP32 and the tuned model side by side")
    bench.add_argument("config", type=Path, help="the YAML config the model was tuned with")
    bench.add_argument("--model", type=Path, help="the tuned model: a workspace or its "
                                                  "best_model file (default: the config's "
                                                  "tuning.workspace.path)")
    bench.add_argument("--out", type=Path, help="JSON output (default: benchmark.json in the "
                                                "workspace)")
    bench.add_argument("--force", action="store_true", help="replace the JSON output if it "
                                                            "exists")
    bench.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY.PATH=VALUE", help="override any config field, e.g. "
                                                      "benchmark.instances=2 (repeatable)")


def _add_optimize(sub: Commands) -> None:
    """``tunekit optimize``: graph optimization."""
    optimize = sub.add_parser("optimize", help="graph optimization: FP32 passes, or bf16+fp32 "
                                               "auto mixed precision (graph_optimization:)")
    optimize.add_argument("config", type=Path, help="the YAML config (see examples/)")
    optimize.add_argument("--out", type=Path, help="write the optimized model here (PyTorch: "
                                                   "state_dict .pt; TensorFlow: a GraphDef for a "
                                                   ".pb path, else a SavedModel folder)")
    optimize.add_argument("--force", action="store_true", help="replace what --out names if it "
                                                               "exists")
    optimize.add_argument("--set", dest="overrides", action="append", default=[],
                          metavar="KEY.PATH=VALUE", help="override any config field (repeatable)")
    optimize.add_argument("-q", "--quiet", action="store_true", help="only the summary")


def _add_report(sub: Commands) -> None:
    """``tunekit report``: the text report, or ``report.html`` with ``--html``."""
    report = sub.add_parser("report", help="print the tuning report of a workspace, or write "
                                           "it as a web page with figures (--html)")
    report.add_argument("workspace", type=Path)
    report.add_argument("--html", action="store_true",
                        help="write report.html from the workspace's result.json: one "
                             "self-contained file with figures (default: in the workspace)")
    report.add_argument("--out", type=Path, help="with --html: the file to write instead")
    report.add_argument("--force", action="store_true",
                        help="with --out: overwrite an existing file")


def _tune_overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.overrides)
    for flag, path in (("max_trials", "tuning.exit_policy.max_trials"),
                       ("timeout", "tuning.exit_policy.timeout"), ("seed", "tuning.random_seed"),
                       ("storage", "tuning.storage"), ("study", "tuning.study"),
                       ("workers", "tuning.workers"), ("heartbeat", "tuning.heartbeat")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{path}={value}")
    return overrides


def _cmd_tune(args: argparse.Namespace) -> int:
    from tunekit import api, config

    spec = config.load(args.config, _tune_overrides(args))
    tuning = spec.tuning
    if args.workspace is not None:
        tuning = replace(tuning, workspace=args.workspace)
    if args.resume:
        tuning = replace(tuning, resume=True)
    result = api.tune_config(replace(spec, tuning=tuning))
    print(result.summary())
    return EXIT_MET if result.met else EXIT_NOT_MET


def _cmd_worker(args: argparse.Namespace) -> int:
    from tunekit.worker import Trust, run_worker

    if args.heartbeat < 1:
        raise ConfigError("--heartbeat", f"must be ≥ 1 second, got {args.heartbeat}")
    trust = Trust(tuple(args.allow_code), args.code_dir, args.allow_pickle, args.trust_study)
    run_worker(args.storage, args.study, heartbeat=args.heartbeat, wait_s=args.wait,
               workspace=args.workspace, trust=trust)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from tunekit import config
    from tunekit.compare import EvaluationCache, compare, summarize
    from tunekit.compare.figure import plot
    from tunekit.compare.output import table, write_raw

    overrides = list(args.overrides)
    if args.max_trials is not None:
        overrides.append(f"tuning.exit_policy.max_trials={args.max_trials}")
    spec = config.load(args.config, overrides)
    names = [n.strip() for n in args.strategies.split(",") if n.strip()]
    if not names or args.seeds < 1:
        raise ConfigError("--strategies/--seeds", "give at least one strategy and one seed")
    from tunekit import plugins

    for name in names:
        if name not in plugins.names("tunekit.strategies"):
            raise ConfigError("--strategies", f"unknown strategy {name!r}; installed: "
                                              f"{', '.join(plugins.names('tunekit.strategies'))}")
    for name in COMPARE_OUTPUTS:  # checked before any evaluation
        check_out(args.out / name, "--out", args.force)
    spec = replace(spec, tuning=replace(spec.tuning, workspace=args.out / "workspace"))
    seeds = [spec.tuning.seed + i for i in range(args.seeds)]
    comparison = compare(spec, names, seeds, EvaluationCache(args.cache))
    rows = summarize(comparison)
    paths = [*write_raw(comparison, rows, args.out), plot(comparison, rows,
                                                          args.out / "compare.png")]
    print(table(rows))
    print(f"{comparison.evaluations} configs evaluated for {len(comparison.runs)} runs; wrote "
          + ", ".join(str(p) for p in paths))
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from tunekit import benchmark, config

    spec = config.load(args.config, args.overrides)  # fails on a bad config before any work
    model = args.model if args.model is not None else spec.tuning.workspace
    benchmark.workspace_of(model)  # a wrong --model fails first, creating nothing
    out = args.out or (model.parent if model.is_file() else model) / "benchmark.json"
    check_out(out, "--out", args.force)  # a taken or unwritable --out fails before the timing
    report = benchmark.run(args.config, args.overrides, model)
    report.write(out)
    print(report.table())
    print(f"wrote {out}")
    return 0


def _cmd_optimize(args: argparse.Namespace) -> int:
    from tunekit import config
    from tunekit.graph.graph_result import prepare_out
    from tunekit.graph.optimize import optimize_config

    spec = config.load(args.config, args.overrides)
    if args.out is not None:  # a wrong --out fails now, not after the optimization
        prepare_out(args.out, spec.model.framework, "--out", args.force)
    result = optimize_config(spec)
    if args.out is not None:
        result.save(args.out, force=args.force)
    print(result.summary())
    print(f"wrote {args.out}" if args.out is not None
          else "not saved: give --out PATH to write the optimized model")
    return EXIT_MET if result.met else EXIT_NOT_MET


def _cmd_report(args: argparse.Namespace) -> int:
    if args.html:
        from tunekit.htmlreport import write_html

        print(f"wrote {write_html(args.workspace, args.out, args.force)}")
        return 0
    if args.out is not None or args.force:
        raise ConfigError("--out", "only goes with --html (report.md is printed, not written)")
    path = args.workspace / "report.md"
    if not path.exists():
        raise ConfigError("workspace", f"{str(path)!r} does not exist; is {str(args.workspace)!r} a "
                                       "tunekit workspace?")
    print(path.read_text(encoding="utf-8"), end="")
    return 0


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tunekit")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    warnings.simplefilter("default", TunekitWarning)
    warnings.formatwarning = lambda msg, category, *a, **k: f"warning: {msg}\n"  # type: ignore


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(getattr(args, "quiet", False))
    try:
        if args.command == "tune":
            return _cmd_tune(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "worker":
            return _cmd_worker(args)
        if args.command == "benchmark":
            return _cmd_benchmark(args)
        if args.command == "optimize":
            return _cmd_optimize(args)
        if args.command == "plugins":
            from tunekit import plugins

            print(plugins.describe())
            return 0
        return _cmd_report(args)
    except (ConfigError, PluginError, DataError) as exc:  # the user's config or data
        _report_error(exc)
        return EXIT_USAGE
    except TunekitError as exc:
        _report_error(exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted: the history is kept; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug or an unforeseen failure: still one line, not a trace
        _report_error(exc, unexpected=True)
        return EXIT_ERROR


def _report_error(exc: BaseException, unexpected: bool = False) -> None:
    """One line on stderr (the traceback too with ``TUNEKIT_DEBUG=1``)."""
    if os.environ.get("TUNEKIT_DEBUG"):
        import traceback

        traceback.print_exc()
    text = str(exc)
    if unexpected:
        first = text.strip().splitlines()[0] if text.strip() else ""
        text = (f"{type(exc).__name__}: {first} (unexpected; set TUNEKIT_DEBUG=1 to see the "
                "traceback, and please report it)")
    print(f"tunekit: error: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
