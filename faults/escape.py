"""I/O the fake file system cannot see: calls that reach the real disk under paths that only
exist on the fake one.

The fault layer sees what goes through Python's `os`, `open` and `pathlib`. Code that
does its file I/O in C (the standard `sqlite3` module, most C extensions, anything that
calls `fopen` or `open(2)` itself) talks to the real disk, where the fake paths do not
exist: nothing of it is recorded, crashed or faulted, and its results mean nothing.
Python raises an audit event (PEP 578) for many such calls before they happen (`open`
for a real `open`/`os.open`, `sqlite3.connect` with the database path, `os.mkdir`,
`os.remove`, ...); `EscapeWatch` records those whose path lies under the roots it
watches (the fake disk's own folders). C code that raises no audit event cannot be seen
at all; the harness then only notices that the backend did no I/O it could see.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar

#: Audit events whose first argument is a path the call touches.
PATH_EVENTS: frozenset[str] = frozenset(
    {
        "open",
        "sqlite3.connect",
        "os.mkdir",
        "os.remove",
        "os.rename",
        "os.rmdir",
        "os.listdir",
        "os.scandir",
        "os.truncate",
        "os.chmod",
        "os.utime",
        "os.link",
        "os.symlink",
        "shutil.copyfile",
        "shutil.copytree",
        "shutil.move",
        "shutil.rmtree",
    }
)


@dataclass(frozen=True, slots=True)
class Escape:
    """One call that reached the real disk: its audit event and the path it named."""

    event: str
    path: str

    def __str__(self) -> str:
        return f"{self.event}({self.path!r})"


def _as_path(value: object) -> str | None:
    if isinstance(value, str | bytes | os.PathLike):
        try:
            return os.fsdecode(value)
        except (TypeError, ValueError):
            return None
    return None


class EscapeWatch:
    """While entered, records real-disk calls under `roots` (absolute folder paths).

    One audit hook is installed for the process on first use (audit hooks cannot be
    removed); it does nothing while no watch is entered."""

    _current: ClassVar[EscapeWatch | None] = None
    _installed: ClassVar[bool] = False

    def __init__(self, roots: Iterable[str]) -> None:
        self.roots = tuple(root.rstrip("/") for root in roots)
        self.escapes: list[Escape] = []

    def _seen(self, event: str, path: str) -> None:
        for root in self.roots:
            if path == root or path.startswith(root + "/"):
                self.escapes.append(Escape(event, path))
                return

    def __enter__(self) -> EscapeWatch:
        if not EscapeWatch._installed:
            sys.addaudithook(_hook)
            EscapeWatch._installed = True
        EscapeWatch._current = self
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        EscapeWatch._current = None


def _hook(event: str, args: tuple[object, ...]) -> None:
    watch = EscapeWatch._current
    if watch is None or event not in PATH_EVENTS or not args:
        return
    path = _as_path(args[0])
    if path is not None:
        watch._seen(event, path)
