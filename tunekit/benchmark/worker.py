"""One benchmark instance (``python -m tunekit.benchmark.worker JOB_JSON``), see
:mod:`.instances`. It pins itself to its cores before anything imports the framework, so the
framework's thread pools are created on those cores only, and talks JSON lines on stdout."""

from __future__ import annotations

import json
import os
import sys


def _say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def main(job_json: str) -> int:
    job = json.loads(job_json)
    os.sched_setaffinity(0, job["cores"])
    os.environ.setdefault("OMP_NUM_THREADS", str(job["threads"]))
    os.environ["TUNEKIT_PROGRESS"] = "0"  # the parent draws the one bar

    from pathlib import Path

    from tunekit import config as config_module
    from tunekit.benchmark import measure as measuring

    spec = config_module.load(job["config"], job["overrides"])
    adaptor, models, data = measuring.load(spec, Path(job["model"]))
    _say("ready")
    sys.stdin.readline()  # "go": every instance starts timing at once
    figures = measuring.measure(adaptor, models, data, spec.benchmark, job["threads"],
                                tick=lambda: _say("tick"), drop_busy=job["drop_busy"])
    _say("result", figures=[vars(f) for f in figures])
    return 0


if __name__ == "__main__":
    from tunekit.errors import TunekitError

    try:
        sys.exit(main(sys.argv[1]))
    except TunekitError as error:  # the parent shows stderr's last lines: the message, no trace
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(2)
