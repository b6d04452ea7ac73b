"""Distributed tuning's queue on a real PostgreSQL server, without a model: the coordinator's
Dispatcher queues a batch, worker threads (each with its own connection, claiming and answering
through the same Store calls ``tunekit worker`` uses) evaluate FakeAdaptor metrics, and a worker
that stops heartbeating has its trial re-queued and answered once. Plus the CLI's messages for
a bad storage URL, an unreachable database and a study that does not exist."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from tunekit import cli
from tunekit.criterion import AccuracyCriterion
from tunekit.distributed import NUMBER, WORKER, Dispatcher, Job
from tunekit.history import Trial, TrialState
from tunekit.store import Store, retried
from tunekit.loop import in_order
from tunekit.space import QuantConfig
from tunekit.testing import DIGITS_OPS, FakeAdaptor

ADAPTOR = FakeAdaptor(ops=DIGITS_OPS, base_accuracy=1.0, drops={"conv2": 0.2, "fc1": 0.2})
SPACE = ADAPTOR.capabilities(None)
CRITERION = AccuracyCriterion(absolute=0.25)
HEARTBEAT = 1


def evaluate(number: int, config: QuantConfig) -> Trial:
    metric = ADAPTOR.evaluate(config)
    return Trial(number, config, TrialState.COMPLETE, metric=metric,
                 accepted=CRITERION.accepts(metric, 1.0))


def singles() -> list[QuantConfig]:
    default = SPACE.default()
    return [default] + [default.with_op(op, SPACE.option(op, "fp32")) for op in SPACE.ops]


def open_store(url: str, study: str, create: bool = False) -> Store:
    return Store(url, study, "maximize" if create else None, heartbeat=HEARTBEAT)


class Worker(threading.Thread):
    """Claims and answers queued trials until stopped, as ``tunekit worker`` does."""

    def __init__(self, url: str, study: str, name: str) -> None:
        super().__init__(daemon=True)
        self.store, self.name_ = open_store(url, study), name
        self.stop = threading.Event()
        self.answered: list[int] = []

    def run(self) -> None:
        while not self.stop.is_set():
            attrs = self.store.claim(WORKER, self.name_)
            if attrs is None:
                time.sleep(0.05)
                continue
            trial = evaluate(int(attrs[NUMBER]), QuantConfig.from_json(attrs["config"]))
            if self.store.finish_claimed(trial):
                self.answered.append(trial.number)


def dispatcher(url: str) -> tuple[Dispatcher, str]:
    study = f"queue-{uuid.uuid4().hex[:8]}"
    store = open_store(url, study, create=True)
    job = Job.new({"tuning": {}}, Path("."), Path("."))
    result = Dispatcher(store, job, lambda: "exact")
    result.publish()
    return result, study


def run_batch(url: str, configs: Sequence[QuantConfig], stop: bool,
              workers: int = 2) -> list[Trial]:
    coordinator, study = dispatcher(url)
    threads = [Worker(url, study, f"w{i}") for i in range(workers)]
    for thread in threads:
        thread.start()
    try:
        return coordinator.run_batch(0, configs, stop, known={})
    finally:
        for thread in threads:
            thread.stop.set()
            thread.join()


def summary(trials: Sequence[Trial]) -> list[tuple[int, QuantConfig, float | None, bool]]:
    return [(t.number, t.config, t.metric, t.accepted) for t in trials]


@pytest.mark.parametrize("stop", [True, False])
def test_a_batch_through_postgres_equals_one_process_in_order(postgres_url: str,
                                                              stop: bool) -> None:
    expected = in_order(evaluate)(0, singles(), stop)
    assert summary(run_batch(postgres_url, singles(), stop)) == summary(expected)


def test_a_dead_workers_trial_is_requeued_and_answered_once(postgres_url: str) -> None:
    coordinator, study = dispatcher(postgres_url)
    configs = singles()[:3]
    answer: list[list[Trial]] = []
    queued = threading.Thread(target=lambda: answer.append(
        coordinator.run_batch(0, configs, False, known={})), daemon=True)
    queued.start()
    dead = open_store(postgres_url, study)
    claimed = None
    while claimed is None:  # first claim: one heartbeat, then silence, as a killed process
        claimed = dead.claim(WORKER, "dead")
    assert claimed[NUMBER] == 0
    alive = Worker(postgres_url, study, "alive")
    alive.start()
    queued.join(60)
    alive.stop.set()
    alive.join()
    trials = answer[0]
    assert summary(trials) == summary(in_order(evaluate)(0, configs, False))
    assert sorted(alive.answered) == [0, 1, 2]
    # the dead worker's late answer is refused: the retry already counted
    assert not dead.finish_claimed(evaluate(0, configs[0]))
    everything = coordinator.store.study.get_trials(deepcopy=False)
    assert len(retried(everything)) == 1
    assert sum(t.state.name == "COMPLETE" for t in everything) == 3


def test_worker_for_a_missing_study_names_the_flag(postgres_url: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["worker", "--storage", postgres_url, "--study", "no-such-study",
                     "--wait", "0"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert "--study" in err and "no-such-study" in err and "start the coordinator" in err


@pytest.mark.parametrize("url, expected", [
    ("postgresql://nobody:secret@127.0.0.1:1/tunekit", "cannot reach the database"),
    ("nosuchdb://x/y", "not a storage URL"),
])
def test_a_bad_storage_gives_a_message_not_a_traceback(
        url: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["worker", "--storage", url, "--study", "s", "--wait", "0"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and expected in err and "--storage" in err
    assert "secret" not in err and "Traceback" not in err


def test_a_worker_needs_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["worker", "--storage", str(tmp_path / "history.log"), "--study", "s"])
    assert code == cli.EXIT_USAGE and "database URL" in capsys.readouterr().err


def test_processes_starting_together_on_a_new_database_all_open_it(postgres_url: str) -> None:
    """A coordinator and its workers race to create optuna's tables in a new database."""
    import subprocess
    import sys

    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host=url.host, port=url.port, user=url.username,
                             password=url.password, dbname=url.database)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    fresh = url.set(database=name).render_as_string(hide_password=False)
    code = f"from tunekit.storage import rdb_storage; rdb_storage({fresh!r}, 1)"
    processes = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
    admin.close()
    assert all(p.returncode == 0 for p in processes), errors


def test_a_worker_stopped_by_a_config_error_stops_the_coordinator(postgres_url: str) -> None:
    """What ``tunekit worker`` posts when a trial raises an error every trial would hit."""
    from tunekit.distributed import FAILED
    from tunekit.errors import TunekitError

    coordinator, study = dispatcher(postgres_url)
    open_store(postgres_url, study).study.set_user_attr(
        FAILED, {"run": coordinator.job.run, "error": "objective size needs evaluation data"})
    with pytest.raises(TunekitError, match="a worker stopped: objective size needs"):
        coordinator.run_batch(0, singles()[:2], False, known={})
