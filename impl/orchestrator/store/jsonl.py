"""The reference backend: an append-only JSON Lines state file (contract §§3-5).

Plain `os` calls only (no buffering layer to second-guess), so the `faults`
layer can intercept and crash every one of them. Declared as `BACKEND` (what
`crashkit.orchestrator.store.jsonl:BACKEND` names). Variants (the harness's broken
backends, an author's experiment) subclass `JsonlStateBackend` and pass it as
`writer=` to `open_jsonl_store`: its `fd`, `committed_bytes` and `torn_tail_bytes`
are public, and `fsync_file`, `fsync_directory` and `lock` are the hooks for every
fsync of the state file, every directory fsync and the writer lock.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import stat
from collections.abc import Callable, Iterator, Sequence

from crashkit.orchestrator.errors import PersistenceError, RestoreFatal, WriterLocked
from crashkit.orchestrator.store.compact import (
    COMPACT_NOW,
    DEFAULT_POLICY,
    EAGER_POLICY,
    SAFE_STEPS,
    TEMP_SUFFIX,
    CompactPolicy,
    CompactSteps,
    compact_locked,
    remove_stale_temp,
    temp_path,
)
from crashkit.orchestrator.store.protocol import Backend, Capabilities, OpenedStore
from crashkit.orchestrator.store.report import (
    CHUNK_BYTES,
    ENGINE_SCHEMA,
    RestoreReport,
    parse_state_bytes,
    parse_state_stream,
    store_from_report,
)
from crashkit.regime_engine.codec import encode_states
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, HysteresisStore


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check_regular(fd: int, path: str) -> os.stat_result:
    """fstat the opened path and refuse anything but a regular file (before any read)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise RestoreFatal(
            path,
            f"state path is {_kind(info.st_mode)}, not a regular file; refusing to read or write it",
        )
    return info


def _read_chunks(fd: int, path: str) -> Iterator[bytes]:
    """The file from the descriptor's offset to its end, `CHUNK_BYTES` per `read`, so a
    restore holds one chunk at a time. A regular file reads short only at its end, so
    a file smaller than a chunk takes one read."""
    while True:
        try:
            chunk = os.read(fd, CHUNK_BYTES)
        except OSError as exc:
            raise RestoreFatal(
                path, f"cannot read state file: {exc.strerror} (errno {exc.errno})"
            ) from exc
        if chunk:
            yield chunk
        if len(chunk) < CHUNK_BYTES:
            return


def _open_error(path: str, exc: OSError) -> RestoreFatal:
    if exc.errno == errno.EISDIR:
        return RestoreFatal(
            path, "state path is a directory, not a regular file; refusing to read or write it"
        )
    return RestoreFatal(path, f"cannot open state file: {exc.strerror} (errno {exc.errno})")


def _open_for_reading(path: str) -> int | None:
    """A read-only descriptor on a regular file, or None if there is no file. Raises
    RestoreFatal if it cannot be opened or is not regular. Opens non-blocking and checks
    the opened file before any read, so a FIFO or a device is refused rather than read
    forever (and never written)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _open_error(path, exc) from exc
    try:
        _check_regular(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_state_file(path: str) -> bytes | None:
    """The file's bytes, or None if it does not exist. Raises RestoreFatal if unreadable.

    Read-only (what check restores of small files use; `restore_report` streams)."""
    fd = _open_for_reading(path)
    if fd is None:
        return None
    try:
        return b"".join(_read_chunks(fd, path))
    finally:
        os.close(fd)


def restore_report(
    path: str,
    *,
    engine_schema: tuple[str, str] = ENGINE_SCHEMA,
    max_timestamp_ms: int | None = None,
) -> RestoreReport:
    """Read-only restore of a state file (what `crashkit inspect` shows). Never raises for
    content; streams the file, so memory does not grow with it."""
    try:
        fd = _open_for_reading(path)
        if fd is None:
            if engine_schema != ENGINE_SCHEMA:
                return parse_state_bytes(b"", path, engine_schema=engine_schema)
            return RestoreReport(path=path, outcome="bootstrap")
        try:
            return parse_state_stream(
                _read_chunks(fd, path),
                path,
                engine_schema=engine_schema,
                max_timestamp_ms=max_timestamp_ms,
            )
        finally:
            os.close(fd)
    except RestoreFatal as exc:
        return RestoreReport(path=path, outcome="fatal", reason=exc.reason)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_parents(directory: str, fsync_dir: Callable[[str], None]) -> None:
    """Create missing parent folders one by one, each made durable in its own parent."""
    missing: list[str] = []
    current = directory
    while current and not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        fsync_dir(os.path.dirname(folder) or ".")


class JsonlStateBackend:
    """The writer side. Holds an exclusive lock on the file for its lifetime."""

    def __init__(self, path: str, fd: int, committed_bytes: int, torn_tail_bytes: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self._committed_bytes = committed_bytes
        self._torn_tail_bytes = torn_tail_bytes
        self._poisoned: str | None = None
        self.close_error: str | None = None

    @property
    def poisoned(self) -> bool:
        return self._poisoned is not None

    @property
    def fd(self) -> int:
        """The locked `O_APPEND` descriptor every append writes through."""
        if self._fd is None:
            raise PersistenceError(f"writer for {self.path} is closed")
        return self._fd

    @property
    def committed_bytes(self) -> int:
        """Where the next append starts: the file up to its last `\\n` (once cut)."""
        return self._committed_bytes

    @property
    def torn_tail_bytes(self) -> int:
        """Bytes after the last `\\n` still to be cut before the first append (C5.4)."""
        return self._torn_tail_bytes

    @staticmethod
    def fsync_file(fd: int) -> None:
        """Make the state file's bytes durable (every fsync of it goes through here)."""
        os.fsync(fd)

    @staticmethod
    def fsync_directory(directory: str) -> None:
        """Make a directory's entries durable (every directory fsync goes through here)."""
        _fsync_dir(directory)

    @staticmethod
    def lock(fd: int, path: str) -> None:
        """Take the single-writer lock on the descriptor (C5.9), or refuse."""
        _lock(fd, path)

    def _fail(self, what: str, exc: OSError | None, detail: str = "") -> PersistenceError:
        code = exc.errno if exc is not None else None
        reason = f"{what} failed on {self.path}"
        if exc is not None:
            reason += f": {exc.strerror or exc} (errno {errno.errorcode.get(code or 0, code)})"
        if detail:
            reason += f": {detail}"
        self._poisoned = reason
        return PersistenceError(reason, code)

    def append(self, states: Sequence[HysteresisState]) -> None:
        """One write of all encoded lines, one fsync; durable on return (contract §5)."""
        if self._poisoned is not None:
            raise PersistenceError(f"writer is poisoned after an earlier failure: {self._poisoned}")
        if self._fd is None:
            raise PersistenceError(f"writer for {self.path} is closed")
        if not states:
            return
        fd = self._fd
        if self._torn_tail_bytes:
            try:
                os.ftruncate(fd, self._committed_bytes)
            except OSError as exc:
                raise self._fail("cutting the torn tail (ftruncate)", exc) from exc
            try:
                self.fsync_file(fd)
            except OSError as exc:
                raise self._fail("making the torn-tail cut durable (fsync)", exc) from exc
            self._torn_tail_bytes = 0
        data = encode_states(states)
        try:
            written = os.write(fd, data)
        except OSError as exc:
            raise self._fail("write", exc) from exc
        if written != len(data):
            raise self._fail("write", None, f"short write ({written} of {len(data)} bytes)")
        try:
            self.fsync_file(fd)
        except OSError as exc:
            raise self._fail("fsync", exc) from exc
        self._committed_bytes += len(data)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)  # also releases the flock
            except OSError as exc:
                # Every acknowledged append was already fsynced, so a failing close
                # loses nothing acknowledged; the descriptor is released either way
                # on Linux. Keep the reason for diagnostics instead of crashing.
                self.close_error = f"close failed on {self.path}: {exc.strerror}"


def _lock(fd: int, path: str) -> None:
    """The single-writer lock (contract §5): exclusive, never waited for."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise WriterLocked(
                path,
                "another process holds the writer lock on this state file; "
                "only one orchestrator may write it at a time",
            ) from exc
        raise RestoreFatal(path, f"cannot lock state file: {exc.strerror}") from exc


def open_jsonl_writer(
    path: str,
    report: RestoreReport,
    *,
    existed: bool = False,
    writer: type[JsonlStateBackend] = JsonlStateBackend,
) -> JsonlStateBackend:
    """Open (creating durably if needed) and lock the state file after a restore of it.

    `existed`: restore just read the file, so try a plain open first (the common
    restart; saves a failing O_EXCL create). Creation stays exclusive either way.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if not existed:
            _make_parents(directory, writer.fsync_directory)
    except OSError as exc:
        raise RestoreFatal(
            path,
            f"cannot create the state folder {exc.filename or directory}: "
            f"{exc.strerror} (errno {errno.errorcode.get(exc.errno or 0, exc.errno)})",
        ) from exc
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NONBLOCK
    created = False
    fd = -1
    if existed:
        try:
            fd = os.open(path, flags)
        except FileNotFoundError as exc:
            raise RestoreFatal(
                path,
                "state file vanished while starting (restored, then gone): is another "
                "process managing it?",
            ) from exc
        except OSError as exc:
            raise RestoreFatal(
                path, f"cannot open state file for appending: {exc.strerror} (errno {exc.errno})"
            ) from exc
    if fd < 0:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
            created = True
        except FileExistsError:
            try:
                fd = os.open(path, flags)
            except OSError as exc:
                raise RestoreFatal(
                    path,
                    f"cannot open state file for appending: {exc.strerror} (errno {exc.errno})",
                ) from exc
        except OSError as exc:
            raise RestoreFatal(
                path, f"cannot create state file: {exc.strerror} (errno {exc.errno})"
            ) from exc
    try:
        writer.lock(fd, path)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RestoreFatal(path, f"state path is {_kind(st.st_mode)}, not a regular file")
        if st.st_size != report.file_bytes:
            raise RestoreFatal(
                path,
                f"state file changed while starting ({report.file_bytes} bytes restored, "
                f"{st.st_size} now): is another writer running?",
            )
        if created:
            try:
                writer.fsync_directory(directory)
            except OSError as exc:
                raise RestoreFatal(
                    path,
                    f"cannot make the new state file durable (directory fsync): {exc.strerror}",
                ) from exc
    except BaseException:
        os.close(fd)
        raise
    return writer(path, fd, report.committed_bytes, report.torn_tail_bytes)


def open_jsonl_store(
    path: str,
    config: HysteresisConfig,
    *,
    writer: type[JsonlStateBackend] = JsonlStateBackend,
    policy: CompactPolicy | None = DEFAULT_POLICY,
    steps: CompactSteps = SAFE_STEPS,
) -> OpenedStore:
    """The reference `BackendFactory`: lock, restore through the same descriptor, refuse
    on fatal; the descriptor then becomes the writer.

    Locking before reading means the bytes restored are the bytes appended to:
    no other writer can slip in between. A missing file is created durably. A stale
    compaction temp file is removed first; a file the `policy` finds due is compacted
    (contract §8, `store.compact`) before the first append.
    """
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        report = RestoreReport(path=path, outcome="bootstrap")
        backend = open_jsonl_writer(path, report, writer=writer)
        return OpenedStore(backend, store_from_report(report, config), report)
    except OSError as exc:
        raise _open_error(path, exc) from exc
    try:
        opened = _check_regular(fd, path)
        writer.lock(fd, path)
        _check_still_linked(opened, path)
        if steps.clean_stale and os.path.exists(temp_path(path)):
            remove_stale_temp(path, writer.fsync_directory)
        report = parse_state_stream(_read_chunks(fd, path), path)
        if report.outcome == "fatal":
            raise RestoreFatal(path, report.reason or "fatal restore")
        # The file may be one an earlier start created and then could not make durable
        # (its directory fsync failed, so it refused): make the entry durable now, before
        # anything appended to it is acknowledged. Once per start.
        directory = os.path.dirname(os.path.abspath(path))
        try:
            writer.fsync_directory(directory)
        except OSError as exc:
            raise RestoreFatal(
                path,
                f"cannot make the state file's directory entry durable (directory fsync): "
                f"{exc.strerror}",
            ) from exc
    except BaseException:
        os.close(fd)
        raise
    if policy is not None and policy.due(report):
        compacted = compact_locked(
            path,
            fd,
            report,
            config,
            lock=writer.lock,
            fsync_directory=writer.fsync_directory,
            steps=steps,
        )
        if compacted is not None:
            fd, report = compacted.fd, compacted.report
    backend = writer(path, fd, report.committed_bytes, report.torn_tail_bytes)
    return OpenedStore(backend=backend, store=store_from_report(report, config), report=report)


def _check_still_linked(mine: os.stat_result, path: str) -> None:
    """The locked descriptor (`mine`: its fstat) is still the file at `path`: a compaction
    by the writer this one waited for may have replaced it (then its bytes are history,
    not state)."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        here = None
    if here is None or (here.st_ino, here.st_dev) != (mine.st_ino, mine.st_dev):
        raise RestoreFatal(
            path,
            "state file replaced while starting (compacted by another process?); start again",
        )


def restore_only(path: str, config: HysteresisConfig) -> HysteresisStore:
    """Restore as `open_jsonl_store` does, read-only (no writer, no lock, no torn-tail cut)."""
    report = restore_report(path)
    if report.outcome == "fatal":
        raise RestoreFatal(path, report.reason or "fatal restore")
    return store_from_report(report, config)


def compact_store(path: str, config: HysteresisConfig, *, steps: CompactSteps = SAFE_STEPS) -> None:
    """`crashkit compact`: open under the writer lock, compact now (unless the file already
    holds one line per symbol), close. Raises StartupRefused for a file it must not
    touch (fatal, locked)."""
    opened = open_jsonl_store(path, config, policy=COMPACT_NOW, steps=steps)
    opened.backend.close()


#: The reference backend's declaration (`crashkit.orchestrator.store.jsonl:BACKEND`).
BACKEND = Backend(
    name="jsonl",
    open=open_jsonl_store,
    restore_only=restore_only,
    capabilities=Capabilities(
        line_format=True,
        single_writer=True,
        files=("{path}",),
        temp_files=("{path}" + TEMP_SUFFIX,),
    ),
    spec="crashkit.orchestrator.store.jsonl:BACKEND",
    compact=compact_store,
    report=restore_report,
)


#: The reference with the eager compaction policy: every start that finds more than two
#: lines per symbol compacts (how the explorer and the tests exercise compaction).
COMPACTING_BACKEND = Backend(
    name="jsonl-compacting",
    open=functools.partial(open_jsonl_store, policy=EAGER_POLICY),
    restore_only=restore_only,
    capabilities=BACKEND.capabilities,
    spec="crashkit.orchestrator.store.jsonl:COMPACTING_BACKEND",
    compact=compact_store,
    report=restore_report,
)
