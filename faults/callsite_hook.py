"""The source line of each file-system call a Python program makes: copied as
`sitecustomize.py` onto the `PYTHONPATH` of a recorded command (`crashkit.faults.callsites`),
so every Python interpreter the command starts loads it before the program.

Why: the FUSE recorder sees the calls, not who made them; a vulnerability a user can act
on names the line of their program. This module logs, for each call on a path under
`$CRASHKIT_DIR`, the call, the path under the mount and the first frame outside the
standard library (and outside this file) to `$CRASHKIT_CALLSITES`, one tab-separated
line per call, in call order. Opens, renames, removals, folders, truncates and links
are seen through audit events (`sys.addaudithook`, whatever module made them); writes
and syncs through `os.write`, `os.pwrite`, `os.fsync`, `os.fdatasync`, `os.sync`
(a buffered file object's writes are attributed to the line that opened it).

Standard library only, no crashkit import: the recorded program's interpreter may be
another one. It then imports the `sitecustomize` it shadows, if there is one.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

_STDLIB = os.path.dirname(os.__file__)
_HERE = os.path.abspath(__file__)

#: audit event -> the call it is, and which argument names the path
_AUDITED: dict[str, tuple[str, int]] = {
    "open": ("open", 0),
    "os.rename": ("rename", 0),
    "os.remove": ("unlink", 0),
    "os.mkdir": ("mkdir", 0),
    "os.rmdir": ("rmdir", 0),
    "os.truncate": ("ftruncate", 0),
    "os.link": ("link", 0),
    "os.symlink": ("symlink", 1),
}


def _caller() -> str:
    """`file:line` of the first frame outside the standard library and this file."""
    frame: FrameType | None = sys._getframe(2)
    first = ""
    while frame is not None:
        name = frame.f_code.co_filename
        where = f"{name}:{frame.f_lineno}"
        first = first or where
        inside = name.startswith(_STDLIB) or name == _HERE or name.startswith("<")
        if not inside:
            return where
        frame = frame.f_back
    return first


def install(log_path: str, root: str) -> None:
    """Log every call on a path under `root` to `log_path` (see the module docstring)."""
    root = os.path.realpath(root)
    lock = threading.Lock()
    log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (for the process)
    busy = threading.local()

    def under(path: object) -> str | None:
        if isinstance(path, int):
            try:
                path = os.readlink(f"/proc/self/fd/{path}")
            except OSError:
                return None
        if not isinstance(path, (str, bytes, os.PathLike)):
            return None
        text = os.path.abspath(os.fsdecode(path))
        if text == root:
            return "/"
        if text.startswith(root + os.sep):
            return text[len(root) :]
        return None

    def note(call: str, path: object) -> None:
        if getattr(busy, "on", False):
            return
        busy.on = True
        try:
            where = under(path)
            if where is not None:
                with lock:
                    log.write(f"{call}\t{where}\t{_caller()}\n")
        finally:
            busy.on = False

    def hook(event: str, args: tuple[Any, ...]) -> None:
        known = _AUDITED.get(event)
        if known is not None and len(args) > known[1]:
            note(known[0], args[known[1]])

    def wrap(name: str, call: str) -> None:
        original: Callable[..., Any] = getattr(os, name)

        def wrapped(fd: int, *args: Any, **kwargs: Any) -> Any:
            note(call, fd)
            return original(fd, *args, **kwargs)

        wrapped.__name__ = original.__name__
        wrapped.__doc__ = original.__doc__
        setattr(os, name, wrapped)

    for name, call in (
        ("write", "write"),
        ("pwrite", "write"),
        ("fsync", "fsync"),
        ("fdatasync", "fdatasync"),
        ("ftruncate", "ftruncate"),
    ):
        wrap(name, call)
    real_sync = os.sync

    def sync() -> None:
        note("sync", root)
        real_sync()

    os.sync = sync
    sys.addaudithook(hook)


def _chain() -> None:
    """Import the `sitecustomize` this one shadows (a distribution's own), if any."""
    here = os.path.dirname(_HERE)
    saved = list(sys.path)
    module = sys.modules.pop("sitecustomize", None)
    try:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
        __import__("sitecustomize")
    except ImportError:
        pass
    finally:
        sys.path[:] = saved
        if module is not None:
            sys.modules["sitecustomize"] = module


if __name__ == "sitecustomize":
    _log, _root = os.environ.get("CRASHKIT_CALLSITES"), os.environ.get("CRASHKIT_DIR")
    if _log and _root:
        install(_log, _root)
    _chain()
