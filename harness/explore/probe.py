"""Can the fault layer see this backend's I/O? Asked once, before anything is explored.

A backend whose file I/O happens in C (the standard `sqlite3` module, a C extension)
reaches the real disk, where the harness's paths do not exist: no verdict about it
would mean anything, so it is told exactly that (exit 2 from the CLI, a usage error
from the kit) instead of being reported as broken.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from crashkit.faults import CrashFS
from crashkit.faults.escape import Escape, EscapeWatch
from crashkit.harness.judge.paths import STATE_DIR, STATE_PATH
from crashkit.orchestrator.store.protocol import Backend
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime

#: The fake disk's own top folder: nothing real lives there.
WATCHED_ROOT = STATE_DIR.rsplit("/", 1)[0]
DOCS = "docs/backends.md, section 'What the fault layer can and cannot see'"


class InvisibleIO(Exception):
    """The backend did I/O the fault layer cannot see."""

    def __init__(self, backend: Backend, escapes: list[Escape]) -> None:
        self.backend = backend
        self.escapes = escapes
        super().__init__(invisible_io_message(backend, escapes))


def invisible_io_message(backend: Backend, escapes: list[Escape]) -> str:
    touched = ", ".join(str(e) for e in dict.fromkeys(escapes))
    return (
        f"backend {backend.spec or backend.name} did file I/O the fault layer cannot see: "
        f"{touched}. The harness runs a backend on a fake disk by intercepting Python's os, "
        "open and pathlib calls; I/O done in C (the sqlite3 module, C extensions) goes to "
        f"the real disk instead, where {WATCHED_ROOT} does not exist, and none of it can be "
        "recorded, crashed or faulted, so no verdict about this backend would mean anything. "
        "Route its file I/O through Python's os module (for SQLite: a Python VFS, e.g. with "
        f"APSW) to test it here, or test it as it is, as real processes on a FUSE mount: "
        f"crashkit explore --real --backend {backend.spec or 'MODULE:ATTR'}. See {DOCS}."
    )


@dataclass(frozen=True, slots=True)
class ProbeResult:
    escapes: list[Escape]
    ops: int  # calls the fault layer saw

    @property
    def visible(self) -> bool:
        return not self.escapes


def probe(backend: Backend) -> ProbeResult:
    """Open the backend on an empty fake disk, append one state, close; watch for real-disk
    calls under the fake disk's paths. Whatever the backend raises is not judged here."""
    fs = CrashFS(record=True)
    fs.start(None)
    try:
        with EscapeWatch((WATCHED_ROOT,)) as watch, contextlib.suppress(Exception):
            opened = backend.open(STATE_PATH, HysteresisConfig())
            try:
                state = HysteresisState("SYM000", 0, Regime.CHOP_BALANCED, None, 0, 3, None)
                opened.backend.append([state])
            finally:
                opened.backend.close()
        return ProbeResult(list(watch.escapes), len(fs.trace))
    finally:
        fs.stop()


def require_visible(backend: Backend) -> None:
    """Raise `InvisibleIO` if the fault layer cannot see the backend's I/O."""
    result = probe(backend)
    if not result.visible:
        raise InvisibleIO(backend, result.escapes)
