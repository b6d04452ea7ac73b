"""A per-trial time limit (``tuning.exit_policy.trial_timeout``) enforced inside the process.

Why not a thread or a subprocess: a watchdog thread cannot stop torch ops, and a subprocess per
trial would pay a torch import, a model transfer and a calibration replay on every trial
(docs/reliability.md has the figures). Instead the limit raises :class:`TrialTimeout` *in* the
trial's own thread:

- in the main thread, ``SIGALRM`` (``signal.setitimer``): the handler runs as soon as the
  interpreter regains control, which is between two torch ops of a forward pass and also during
  ``time.sleep`` or a blocking read (the handler's exception ends the wait);
- in another thread (``tunekit.tune`` from a worker), an asynchronous exception set by a timer
  thread (``PyThreadState_SetAsyncExc``), seen at the next Python bytecode.

Neither can stop a single native call that never returns (a deadlock inside a kernel); the tuner
therefore also fails any trial that returns after its limit.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from tunekit.errors import TrialError


class TrialTimeout(TrialError):
    """A trial ran longer than ``tuning.exit_policy.trial_timeout``."""


def _message(seconds: float) -> str:
    return (f"timed out after {seconds:g} s (tuning.exit_policy.trial_timeout); raise the limit "
            "if trials of this model need longer")


def raise_if_overrun(started: float, seconds: float) -> None:
    """Fail a trial that returned after its limit (a native call that no alarm could cut short);
    ``started`` is a ``time.perf_counter()`` instant."""
    if seconds > 0 and time.perf_counter() - started > seconds:
        raise TrialTimeout(_message(seconds))


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`TrialTimeout` in the calling thread once ``seconds`` have passed (0: no
    limit)."""
    if seconds <= 0:
        yield
    elif threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _alarm(seconds):
            yield
    else:
        with _async_raise(seconds):
            yield


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise TrialTimeout(_message(seconds))

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _AsyncTimeout(TrialTimeout):
    """Raised by ``PyThreadState_SetAsyncExc``, which can only pass a class, not a message."""

    def __init__(self) -> None:
        super().__init__("timed out (tuning.exit_policy.trial_timeout)")


@contextmanager
def _async_raise(seconds: float) -> Iterator[None]:
    target = ctypes.c_ulong(threading.get_ident())
    done = threading.Lock()

    def expire() -> None:
        with done:  # never fire once the trial's block has been left
            ctypes.pythonapi.PyThreadState_SetAsyncExc(target, ctypes.py_object(_AsyncTimeout))

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except _AsyncTimeout:
        raise TrialTimeout(_message(seconds)) from None
    finally:
        with done:
            timer.cancel()
            ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)
