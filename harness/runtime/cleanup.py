"""Process-wide teardown for the harness: a registry of teardown callbacks and process groups, and the
SIGINT/SIGTERM policy.

- `register(cb)`: `cb()` runs at interpreter exit (atexit) unless unregistered first; callbacks run in
  reverse order of registration, each guarded (an exception is printed, the next one still runs).
- `track_group(pgid)`: a process group that `hard_kill_all()` SIGKILLs. `LocalNode` tracks each process
  it starts (the process leads its own group) until it has reaped it.
- `install_handlers()`: the first SIGINT or SIGTERM raises KeyboardInterrupt in the main thread, so the
  `finally` blocks (and atexit) tear everything down in order; a second one SIGKILLs every tracked process
  group immediately and exits 130 without further ado. A first signal that arrives while a teardown is
  already under way (see `tearing_down()`) does not interrupt it; the next one is the hard one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator

HARD_EXIT_CODE = 130
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_callbacks: list[Callable[[], object]] = []
_groups: set[int] = set()
_signal_count = 0
_teardown_depth = 0
_previous_handlers: dict[int, object] = {}


def register(callback: Callable[[], object]) -> Callable[[], object]:
    """Run `callback()` at exit (or in `run_teardowns()`); registering it twice is a no-op."""
    if callback not in _callbacks:
        _callbacks.append(callback)
    return callback


def unregister(callback: Callable[[], object]) -> None:
    """Forget `callback`; unknown callbacks are ignored."""
    while callback in _callbacks:
        _callbacks.remove(callback)


def registered() -> list[Callable[[], object]]:
    return list(_callbacks)


def run_teardowns() -> None:
    """Run and forget every registered callback, newest first, each guarded. Never raises."""
    with tearing_down():
        while _callbacks:
            callback = _callbacks.pop()
            try:
                callback()
            except BaseException:  # a teardown must not stop the next one
                with contextlib.suppress(Exception):
                    print(f"onceproof: teardown {callback!r} failed:", file=sys.stderr)
                    traceback.print_exc()


atexit.register(run_teardowns)


def track_group(pgid: int) -> None:
    _groups.add(pgid)


def untrack_group(pgid: int) -> None:
    _groups.discard(pgid)


def tracked_groups() -> set[int]:
    return set(_groups)


def hard_kill_all() -> int:
    """SIGKILL every tracked process group right now (no reaping); returns how many were signalled.

    Safe in a signal handler: no locks, no allocation beyond a tuple.
    """
    n = 0
    for pgid in tuple(_groups):
        try:
            os.killpg(pgid, signal.SIGKILL)
            n += 1
        except OSError:
            pass
    return n


@contextlib.contextmanager
def tearing_down() -> Iterator[None]:
    """Mark an orderly teardown in progress: a first signal meanwhile does not interrupt it."""
    global _teardown_depth
    _teardown_depth += 1
    try:
        yield
    finally:
        _teardown_depth -= 1


_critical_depth = 0
_pending: list[str] = []


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A step that must not be cut in half by the first Ctrl-C (say, creating a container: the engine
    finishes a create the client gave up on, and the container would be left behind). A signal
    meanwhile is held and raised as KeyboardInterrupt when the step ends; a second one still kills hard."""
    global _critical_depth
    _critical_depth += 1
    try:
        yield
    finally:
        _critical_depth -= 1
    if _critical_depth == 0 and _pending and _teardown_depth == 0:
        name = _pending.pop()
        _pending.clear()
        raise KeyboardInterrupt(name)


def interrupted() -> bool:
    """Whether a handled SIGINT/SIGTERM arrived since `install_handlers()`."""
    return _signal_count > 0


def _hard_exit(signum: int) -> None:
    with contextlib.suppress(Exception):
        name = signal.Signals(signum).name
        os.write(2, f"onceproof: second {name}: killing every process group hard, exit 130\n".encode())
    hard_kill_all()
    os._exit(HARD_EXIT_CODE)


def _handler(signum: int, frame: object) -> None:
    global _signal_count
    _signal_count += 1
    if _signal_count >= 2:
        _hard_exit(signum)
    if _teardown_depth > 0:
        with contextlib.suppress(Exception):
            os.write(2, b"onceproof: teardown under way; signal again to kill everything hard\n")
        return
    if _critical_depth > 0 and threading.current_thread() is threading.main_thread():
        _pending.append(signal.Signals(signum).name)
        return
    raise KeyboardInterrupt(f"{signal.Signals(signum).name}")


def install_handlers() -> None:
    """Install the SIGINT/SIGTERM policy (main thread only; idempotent)."""
    global _signal_count
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("install_handlers() must be called from the main thread")
    for sig in HANDLED_SIGNALS:
        previous = signal.signal(sig, _handler)
        if previous is not _handler:
            _previous_handlers[sig] = previous
    _signal_count = 0


def uninstall_handlers() -> None:
    """Restore the handlers that `install_handlers()` replaced."""
    global _signal_count
    for sig, previous in list(_previous_handlers.items()):
        signal.signal(sig, previous)  # type: ignore[arg-type]
    _previous_handlers.clear()
    _signal_count = 0
