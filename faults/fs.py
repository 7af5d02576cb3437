"""`CrashFS`: a crash-simulating, fault-injecting file system for ordinary Python I/O.

Usage::

    fs = CrashFS(plan=FaultPlan(...), model=FsyncModel.MARK_CLEAN, record=True)
    fs.start(image)                 # fake file system holding `image`, fully durable
    ...                             # the code under test does os/open/pathlib I/O
    for point in fs.crash_points():
        for state in fs.crash_states(point):
            ...                     # state.image: a disk a power cut may leave
    fs.stop()

The fault model is split by concern: which calls are seen (`intercept`), what they
may fail with (`plan`), what is durable (`model`), what a power cut may leave
(`crash`), the op names (`ops`). This module only runs them together.

Speed matters (an explorer restarts a program on tens of thousands of crash images),
so one pyfakefs `Patcher` is kept for the whole process: `stop()` pauses it and hands
the global Patcher slot back (so other pyfakefs users are unaffected), `start()` resumes
it (~0.1 ms instead of ~0.4 ms for a new Patcher), and the fake file system is reset and
filled directly with pyfakefs objects instead of going through path resolution.
Leaving a `with CrashFS()` block only stops (the Patcher stays parked for the next
run); `close()` releases it for good.
"""

from __future__ import annotations

import bisect
import sys
from types import TracebackType
from typing import Any

from crashkit.faults._pyfakefs import (
    ClassAliases,
    FakeDirectory,
    FakeFile,
    FakeFilesystem,
    ModuleCacheKey,
    Patcher,
    active_patcher,
    claim_patcher_slot,
    entries,
    fast_paths,
    fast_reset,
    find_new_modules,
    installed_fake_module,
    module_cache_key,
    rebuild_module_cache,
    release_patcher_slot,
    repoint_pathlib,
)
from crashkit.faults.crash import (
    DEFAULT_CAP,
    CrashEnumeration,
    CrashState,
    Exploration,
    TornMode,
    enumerate_states,
)
from crashkit.faults.crash import crash_states as _crash_states
from crashkit.faults.crash import durable_image as _durable_image
from crashkit.faults.crash import visible_image as _visible_image
from crashkit.faults.image import DiskImage
from crashkit.faults.intercept import (
    CrashFcntl,
    CrashOs,
    Session,
    active_session,
    set_active_session,
)
from crashkit.faults.model import Snapshot
from crashkit.faults.plan import FaultPlan, FsyncModel
from crashkit.faults.profiles import PREFIX, Profile
from crashkit.faults.trace import Op

_MODULES_TO_PATCH: dict[str, Any] = {"os": CrashOs, "fcntl": CrashFcntl}


def _modules_marker() -> tuple[int, str | None]:
    """Cheap fingerprint of sys.modules: imports append at the end of the dict."""
    return len(sys.modules), next(reversed(sys.modules), None)


class _Host:
    """The process-wide pyfakefs Patcher (a singleton in pyfakefs too) and its user."""

    patcher: Patcher | None = None
    owner: CrashFS | None = None
    cache_key: ModuleCacheKey = (frozenset(), frozenset(), False)
    modules: tuple[int, str | None] = (0, None)
    #: the file-system modules and functions classes hold (`dbm.dumb`'s `_Database._os`),
    #: faked while our Patcher patches (pyfakefs patches modules' own names only)
    aliases: ClassAliases = ClassAliases()


def _acquire_patcher() -> Patcher:
    """Start (first time) or resume our Patcher; refuse if a foreign one is active."""
    patcher = _Host.patcher
    active = active_patcher()
    if active is not None and active is not patcher:
        raise RuntimeError(
            "another pyfakefs Patcher (e.g. the pytest `fs` fixture) is active; "
            "CrashFS needs its own: do not nest them"
        )
    if patcher is None:
        patcher = Patcher(modules_to_patch=dict(_MODULES_TO_PATCH))
        patcher.setUp()
        if not isinstance(installed_fake_module(patcher, "os"), CrashOs):
            patcher.tearDown()
            raise RuntimeError("pyfakefs did not install the CrashFS os module")
        _Host.patcher = patcher
        _Host.cache_key = module_cache_key()
        _Host.aliases.scan(patcher)
        _Host.aliases.patch(patcher)
        return patcher
    claim_patcher_slot(patcher)
    if module_cache_key() != _Host.cache_key:
        # another Patcher with other arguments rebuilt pyfakefs's module cache: redo ours
        rebuild_module_cache(patcher, _Host.cache_key)
    elif _modules_marker() != _Host.modules:
        find_new_modules(patcher)  # modules imported while paused must be patched too
    patcher.resume()
    assert patcher.fs is not None
    repoint_pathlib(patcher.fs)  # another Patcher may have pointed it at its own
    _Host.aliases.scan(patcher)
    _Host.aliases.patch(patcher)
    return patcher


def _park_patcher(patcher: Patcher) -> None:
    """Pause patching and free pyfakefs's global Patcher slot, keeping ours for later."""
    _Host.aliases.unpatch()
    patcher.pause()
    release_patcher_slot(patcher)
    _Host.modules = _modules_marker()


def _materialise(fs: FakeFilesystem, image: DiskImage) -> None:
    """Put `image` into the (just reset) fake file system, bypassing path resolution."""
    dirs: dict[str, FakeDirectory] = {"/": fs.root}
    for name, entry in entries(fs.root).items():
        if isinstance(entry, FakeDirectory):
            dirs["/" + name] = entry

    def ensure(path: str) -> FakeDirectory:
        found = dirs.get(path)
        if found is not None:
            return found
        parent_path, _, name = path.rpartition("/")
        parent = ensure(parent_path or "/")
        directory = FakeDirectory(name, filesystem=fs)
        parent.add_entry(directory)
        dirs[path] = directory
        return directory

    for path in image.dirs:
        ensure(path)
    for path, data in image.files.items():
        parent_path, _, name = path.rpartition("/")
        new = FakeFile(name, filesystem=fs, contents=data)  # type: ignore[type-var]
        ensure(parent_path or "/").add_entry(new)
    for path, target in image.links.items():
        parent_path = path.rpartition("/")[0]
        ensure(parent_path or "/")
        fs.create_symlink(path, target)  # (turns the fast paths off: see FastPaths)


class CrashFS:
    """A fake file system that knows what is durable, injects faults and records ops.

    `plan`: the faults to inject (`FaultPlan`). `model`: what a failed fsync does
    (`FsyncModel`). `record`: keep the op trace and a snapshot after every mutating op,
    so that `crash_points()`/`crash_states(point)` work (off for cheap restarts).
    `cap`: the most crash states enumerated per point (sampled above it). `disk_size`:
    total bytes of the fake disk (pyfakefs then raises ENOSPC by itself).
    """

    def __init__(
        self,
        plan: FaultPlan | None = None,
        model: FsyncModel = FsyncModel.KEEP_DIRTY,
        record: bool = True,
        *,
        cap: int = DEFAULT_CAP,
        disk_size: int | None = None,
    ) -> None:
        self.plan = plan if plan is not None else FaultPlan()
        self.model = FsyncModel(model)
        self.record = record
        self.cap = cap
        self.disk_size = disk_size
        self._session: Session | None = None
        #: points (None = "now") whose enumeration hit `cap`, with the full combination count
        self.capped: dict[int | None, int] = {}

    # -- lifecycle -----------------------------------------------------------------------

    def configure(
        self,
        *,
        plan: FaultPlan | None = None,
        model: FsyncModel | None = None,
        record: bool | None = None,
        cap: int | None = None,
        disk_size: int | None = None,
    ) -> None:
        """Change settings for the next `start()` (a new plan also applies at once)."""
        if plan is not None:
            self.plan = plan
        if model is not None:
            self.model = FsyncModel(model)
        if record is not None:
            self.record = record
        if cap is not None:
            self.cap = cap
        if disk_size is not None:
            self.disk_size = disk_size
        session = self._session
        if session is not None and self.started:
            if plan is not None:
                session.injector = type(session.injector)(plan)
            session.model.model = self.model

    @property
    def started(self) -> bool:
        return _Host.owner is self

    def start(self, image: DiskImage | None = None) -> CrashFS:
        """Patch the file system modules and hold `image` (empty if None), fully durable.

        Resets everything: trace, crash points, fault counters, open files, locks.
        """
        if _Host.owner is not None:
            which = "this CrashFS is" if _Host.owner is self else "another CrashFS is"
            raise RuntimeError(f"{which} already started; stop() it first")
        patcher = _acquire_patcher()
        _Host.owner = self
        try:
            assert patcher.fs is not None
            self._begin(patcher.fs, image)
        except BaseException:
            _Host.owner = None
            set_active_session(None)
            _park_patcher(patcher)
            raise
        return self

    def restart(self, image: DiskImage | None = None) -> CrashFS:
        """Crash and reboot onto `image` without unpatching in between.

        Same as `stop()` + `start(image)` but ~85 us cheaper per run, for loops that
        restart a program on many crash images and do no real-disk I/O in between
        (while started, every os/open call of the process goes to the fake).
        """
        if not self.started:
            return self.start(image)
        self._finish()
        session = self._session
        assert session is not None
        self._begin(session.fs, image)
        return self

    def _begin(self, fs: FakeFilesystem, image: DiskImage | None) -> None:
        set_active_session(None)
        if _Host.patcher is not None:  # classes of modules imported while patching
            _Host.aliases.refresh(_Host.patcher)
        fast_paths(fs).symlinks = False
        fast_reset(fs, self.disk_size)
        if image is not None:
            _materialise(fs, image)
        session = Session(fs, self.plan, self.model, self.record)
        session.model.reset_durable(fs.root)
        if self.record:
            session.initial = session.model.snapshot(fs.root)
        self._session = session
        self.capped = {}
        set_active_session(session)

    def _finish(self) -> None:
        """End the current run: freeze its final state for later queries."""
        session = self._session
        if session is not None and session.record and active_session() is session:
            session.final = session.model.snapshot(session.fs.root)
        set_active_session(None)

    def stop(self) -> None:
        """Unpatch (the real file system is back); trace and crash states stay queryable."""
        if _Host.owner is not self:
            return
        try:
            self._finish()
        finally:
            set_active_session(None)
            _Host.owner = None
            if _Host.patcher is not None:
                _park_patcher(_Host.patcher)

    def close(self) -> None:
        """Stop and release the process-wide Patcher (the next start builds a new one)."""
        self.stop()
        if _Host.owner is None and _Host.patcher is not None:
            _Host.patcher = None

    def __enter__(self) -> CrashFS:
        if not self.started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inspection ----------------------------------------------------------------------

    @property
    def filesystem(self) -> FakeFilesystem:
        """The pyfakefs file system (only meaningful while started)."""
        session = self._require_session()
        return session.fs

    @property
    def trace(self) -> list[Op]:
        """The ops of the current (or last) run, in order. The live list: do not mutate."""
        return self._session.trace if self._session is not None else []

    def crash_points(self) -> list[int]:
        """Indices of the mutating ops: a crash "after op k" is a distinct situation."""
        return list(self._session.points) if self._session is not None else []

    def snapshot(self, point: int | None = None) -> Snapshot:
        """The durability snapshot just after op `point` (None: now, or at stop())."""
        session = self._require_session()
        if point is None:
            if self.started and active_session() is session:
                return session.model.snapshot(session.fs.root)
            if session.final is not None:
                return session.final
            raise RuntimeError("not started, and the last run was not recorded")
        if not session.record:
            raise RuntimeError("crash points need record=True")
        if not 0 <= point < len(session.trace):
            raise ValueError(f"no op {point}: the trace has {len(session.trace)} ops")
        return session.snapshot_at(point)

    def enumerate_crash_states(
        self,
        point: int | None = None,
        torn: TornMode | str = TornMode.DEFAULT,
        cap: int | None = None,
        profile: Profile | str = PREFIX,
    ) -> CrashEnumeration:
        """Crash states after op `point` (None: now) under the file-system `profile`, with
        the combination count and cap flag."""
        result = enumerate_states(
            self.snapshot(point),
            torn=torn,
            cap=self.cap if cap is None else cap,
            point=point,
            profile=profile,
        )
        if result.capped:
            self.capped[point] = result.combinations
        return result

    def crash_states(
        self,
        point: int | None = None,
        torn: TornMode | str = TornMode.DEFAULT,
        profile: Profile | str = PREFIX,
        exploration: Exploration | str = Exploration.EXHAUSTIVE,
    ) -> list[CrashState]:
        """Distinct disks a power cut just after op `point` (None: now) may leave: all
        of them under `cap` (`EXHAUSTIVE`), or one deviation at a time (`BOUNDED`;
        `LINEAR`: each at the last crash point where it still holds, as `crash_states`
        in crashkit.faults.crash says)."""
        exploration = Exploration(exploration)
        if exploration is Exploration.EXHAUSTIVE:
            return list(self.enumerate_crash_states(point, torn, profile=profile).states)
        following = None
        if exploration is Exploration.LINEAR and point is not None:
            points = self.crash_points()
            at = bisect.bisect_right(points, point)
            following = self.snapshot(points[at]) if at < len(points) else None
        found = _crash_states(
            self.snapshot(point),
            exploration=exploration,
            torn=torn,
            point=point,
            profile=profile,
            following=following,
        )
        return list(found.states)

    def visible_image(self) -> DiskImage:
        """What readers see now (the page cache), as a disk image."""
        return _visible_image(self.snapshot())

    def durable_image(self) -> DiskImage:
        """What survives a crash for sure: durable entries holding durable bytes."""
        return _durable_image(self.snapshot())

    def _require_session(self) -> Session:
        if self._session is None:
            raise RuntimeError("CrashFS was never started")
        return self._session
