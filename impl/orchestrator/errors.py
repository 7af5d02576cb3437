"""Errors the orchestrator distinguishes, each mapped to one CLI exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What every `crashkit` command exits with (README "Exit codes", contract D.36)."""

    OK = 0
    CHECK_FAILED = 1  # a harness verdict: a violation, a failed scenario, demo differs
    USAGE = 2  # usage or config error, a bad scenario file, a backend the harness cannot see
    REFUSED = 3  # refused to start: fatal restore, writer lock held, non-regular path
    HALTED = 4  # an append failed: scheduling halted
    SYMBOL_FAILED = 5  # ran to the end, but at least one symbol was hard-failed
    OUTPUT_FAILED = 6  # an output failed: a run's tick was persisted, its events may be lost


class ConfigError(ValueError):
    """The configuration is missing or wrong (exit 2)."""


class StartupRefused(RuntimeError):
    """The orchestrator must not schedule anything (exit 3)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RestoreFatal(StartupRefused):
    """Restore found a state file it must not start from (contract §4)."""


class WriterLocked(StartupRefused):
    """Another writer holds the state file (contract §5: one writer per file)."""


class PersistenceError(OSError):
    """An append was not made durable; the backend is poisoned (contract §5)."""

    def __init__(self, message: str, errno_code: int | None = None) -> None:
        super().__init__(errno_code, message) if errno_code is not None else super().__init__(
            message
        )
        self.message = message
        self.errno_code = errno_code

    def __str__(self) -> str:
        return self.message


class PublishError(OSError):
    """The events output could not take a tick's events (contract D.39).

    The tick was already persisted (persist before publish), so nothing durable is
    lost: a restart publishes each symbol's latest state as `hysteresis_state_restored`.
    """

    def __init__(self, output: str, exc: OSError) -> None:
        detail = exc.strerror or str(exc) or type(exc).__name__
        super().__init__(exc.errno, f"{output}: cannot publish events: {detail}")
        self.output = output

    def __str__(self) -> str:
        return str(self.args[1])


class HaltedError(RuntimeError):
    """A tick was asked of a runtime that halted after a persist failure (contract §6)."""


def os_error_text(exc: OSError) -> str:
    """`Not a directory: /a/file`, not `[Errno 20] ...`: the reason, and the file when known."""
    if isinstance(exc, FileExistsError):  # from makedirs(exist_ok=True): a file in the way
        return f"{exc.filename} is a file, not a folder"
    text = exc.strerror or str(exc)
    return f"{text}: {exc.filename}" if exc.filename else text
