"""SIGINT (Ctrl-C) and SIGTERM during a long command: stop at the next point where what
was done so far is whole, say what was done, exit 128 + the signal (130, 143), as a shell
reports a process the signal ended.

`signals(handler)` installs one handler for both in the main thread (and puts the previous
handlers back). `explore --exec` raises from it to leave the checkers; the others only set
an `Interrupt` that they read where stopping leaves a consistent partial result: the
in-process explorer between crash states, `scenarios run` between scenarios, `crashkit
run` between ticks (a tick's append and publish are never cut apart, so a stop never
publishes what was not persisted; the backend is then closed as at the end of the input).
It lives in the orchestrator layer because `crashkit run` needs it too, and the harness
above it imports it from here (one handler for every command).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

#: The signals that end a run with its partial summary.
STOPPING: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], None]


def exit_code(signum: int) -> int:
    """What a command that a signal stopped exits with (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


@contextlib.contextmanager
def signals(handler: Handler) -> Iterator[None]:
    """`handler` for SIGINT and SIGTERM while inside (main thread only: elsewhere a signal
    handler cannot be installed, and nothing is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOPPING}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Interrupt:
    """A stop asked by a signal: the first one is recorded and the command ends at its next
    safe point (a crash state, a scenario, a tick: its partial summary is consistent); a
    second one exits at once (SystemExit: `finally` blocks still close and remove what
    they hold)."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def asked(self) -> bool:
        return self.signal is not None

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is not None:  # asked twice: leave now, without a summary
            raise SystemExit(exit_code(self.signal))
        self.signal = signum

    @property
    def exit_code(self) -> int:
        assert self.signal is not None
        return exit_code(self.signal)

    def line(self) -> str:
        """How the summary says it was stopped."""
        assert self.signal is not None
        return f"interrupted by {signal_name(self.signal)}"
