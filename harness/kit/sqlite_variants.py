"""Deliberately broken SQLite backends: the kit must catch every one on the SQLite backend.

Each breaks one thing the SQLite backend relies on for durability, the way a plausible
configuration mistake or VFS bug would; `crashkit.harness.kit.variants.VARIANTS` names
the invariant each must be caught under, and `crashkit.orchestrator.store.sqlite:BACKEND`
must pass the same workloads. They are written on the backend's public hooks only
(`Settings`, `writer=`, `SqliteStateBackend.commit_states`), as an outside author would,
and are module-level `Backend`s so an exported scenario can name them
(`backend: crashkit.harness.kit.sqlite_variants:synchronous_off`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace

from crashkit.harness.kit.loose import loose_record
from crashkit.orchestrator.errors import PersistenceError
from crashkit.orchestrator.store import sqlite
from crashkit.orchestrator.store.protocol import Backend, BackendFactory
from crashkit.orchestrator.store.sqlite import (
    SAFE,
    Settings,
    SqliteStateBackend,
    open_sqlite_store,
)
from crashkit.regime_engine.contracts import HysteresisState


class LastCommitDeferred(SqliteStateBackend):
    """One transaction per record, and the tick acknowledged before its last commit: the
    last record's transaction is committed by the next append (or the close)."""

    pending = False

    def commit_states(self, states: Sequence[HysteresisState]) -> None:
        cursor = self.connection.cursor()
        if self.pending:
            cursor.execute("COMMIT")
            self.pending = False
        for n, state in enumerate(states):
            cursor.execute("BEGIN IMMEDIATE")
            if self._fresh:
                cursor.execute(sqlite.SCHEMA)
                self._fresh = False
            cursor.executemany(sqlite.UPSERT, self.rows([state]))
            if n < len(states) - 1:
                cursor.execute("COMMIT")
        self.pending = True

    def close(self) -> None:
        if self.pending and self._connection is not None and not self.poisoned:
            self.pending = False
            self._connection.cursor().execute("COMMIT")
        super().close()


class ClosedOnPoison(SqliteStateBackend):
    """Closes its connection when a commit fails (poisoned, it writes no more), which
    releases the writer lock while the failed process is still there (C5.9)."""

    def _fail(self, what: str, exc: BaseException) -> PersistenceError:
        error = super()._fail(what, exc)
        self.close()
        return error


class LastWriteWins(SqliteStateBackend):
    """The upsert without its timestamp guard: the last write of a symbol wins, even an
    older state written after a newer one (selection by position, not by timestamp)."""

    def commit_states(self, states: Sequence[HysteresisState]) -> None:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        if self._fresh:
            cursor.execute(sqlite.SCHEMA)
        cursor.executemany(sqlite.UPSERT.rpartition(" WHERE ")[0], self.rows(states))
        cursor.execute("COMMIT")
        self._fresh = False


def _declared(name: str, factory: BackendFactory) -> Backend:
    """A broken variant of the SQLite backend, declared like it."""
    return replace(
        sqlite.BACKEND, name=name, open=factory, restore_only=None, spec=f"{__name__}:{name}"
    )


def _with(name: str, **changes: object) -> Backend:
    settings: Settings = replace(SAFE, **changes)  # type: ignore[arg-type]
    return _declared(name, functools.partial(open_sqlite_store, settings=settings))


synchronous_off = _with("synchronous_off", synchronous="OFF")
#: DELETE mode's commit is the journal's deletion; FULL does not make it durable
synchronous_full = _with("synchronous_full", synchronous="FULL")
journal_off = _with("journal_off", journal_mode="OFF")
journal_memory = _with("journal_memory", journal_mode="MEMORY")
vfs_sync_does_nothing = _with("vfs_sync_does_nothing", sync=False)
vfs_ignores_dirsync_on_delete = _with("vfs_ignores_dirsync_on_delete", dirsync_on_delete=False)
#: C2.4, C2.7: a row's record read with `isinstance(v, int)` and `str(v)` when the rows
#: are judged one by one (what a damaged row makes them)
rows_decoded_loosely = _with("rows_decoded_loosely", decode_row=loose_record)
#: a damaged database (a flipped byte, a zeroed page, a cut file): no `PRAGMA quick_check`
#: at open, and whatever rows a scan reads are served, the rest skipped
integrity_unchecked = _with("integrity_unchecked", check_integrity=False, skip_invalid_rows=True)
closed_on_poison = _declared(
    "closed_on_poison", functools.partial(open_sqlite_store, writer=ClosedOnPoison)
)
last_commit_after_ack = _declared(
    "last_commit_after_ack", functools.partial(open_sqlite_store, writer=LastCommitDeferred)
)
#: no `PRAGMA quick_check`: a database whose rows scan without an error is served, so a
#: damaged page the scan does not read (a flipped freelist field, a freeblock offset)
#: goes unseen
damaged_pages_served = _with("damaged_pages_served", check_integrity=False)
last_write_wins = _declared(
    "last_write_wins", functools.partial(open_sqlite_store, writer=LastWriteWins)
)
