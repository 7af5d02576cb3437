"""Every use of pyfakefs beyond its public classes, in one place.

Checked against pyfakefs 6.3.2 (`CHECKED_VERSION`). pyfakefs has no stable API for what
the crash layer needs (descriptor tables, inode numbers, the open() entry point, the
process-wide Patcher), so the layer reaches into it; an upgrade that changes one of
these breaks here and nowhere else. No other `crashkit.faults` module imports pyfakefs:
the public classes they subclass or construct are re-exported from here.

The touches, and why each is needed:

Patcher (process-global state; `crashkit.faults.fs` keeps one Patcher for the process):

- `Patcher.PATCHER` / `Patcher.REF_COUNT`: pyfakefs's "one active Patcher" slot.
  Read to refuse a foreign Patcher; set when ours resumes and cleared when it is
  parked, so another pyfakefs user (the pytest `fs` fixture) can run between runs.
  (`active_patcher`, `claim_patcher_slot`, `release_patcher_slot`)
- `Patcher.PATCHED_MODULE_NAMES` / `ADDITIONAL_SKIP_NAMES` / `PATCH_DEFAULT_ARGS`:
  the key of pyfakefs's class-level module cache. Another Patcher with other arguments
  rebuilds that cache; ours then restores its key, `clear_cache()`s and re-runs
  `_find_modules()`. (`module_cache_key`, `rebuild_module_cache`)
- `Patcher._find_modules()`: also re-run when modules were imported while our
  Patcher was paused, so they are patched too. (`find_new_modules`)
- `Patcher.fake_modules`: to check that our `os` replacement was installed
  (`installed_fake_module`), and the fakes `ClassAliases` installs.
- `Patcher.SKIPMODULES`, `Patcher.skip_names`, `Patcher._is_fs_function` and
  `Patcher._fake_module_functions`: pyfakefs's rules for which modules it leaves alone
  and which functions it fakes (and with what), applied by `ClassAliases` to what
  pyfakefs does not patch: the file-system modules and functions a *class* holds as
  attributes (`dbm.dumb`'s `_Database._os = os`, `_Database._io = io`). pyfakefs
  patches a module's own names only, and its stub-out helper cannot set a class
  attribute (a class's `__dict__` is read-only), so `ClassAliases` sets and restores
  them with `setattr` as the Patcher resumes and pauses. (`ClassAliases`)
- `fake_pathlib.init_module(fs)`: re-points pyfakefs's fake pathlib at our file system
  on resume (another Patcher may have pointed it at its own). (`repoint_pathlib`)

The file system (`crashkit.faults.fs` resets it directly, ~8x cheaper than `reset()`):

- `mount_points`, `open_files`, `_free_fd_heap`, `last_ino`, `_cwd`,
  `_add_standard_streams()`, root `st_ino`/`st_dev`: what `FakeFilesystem.reset()` sets,
  set by hand for the common case (POSIX, one mount, /tmp as temp dir). (`fast_reset`)
- Replacing the bound methods `absnormpath`, `resolve_path`, `exists` and
  `create_symlink` on our instance: pyfakefs looks them up on the instance for every
  path it resolves, so clean absolute paths can skip its generic code; relies on
  what those return for a clean absolute path on a case-sensitive POSIX file system
  without symlinks (the path itself; `exists` = a walk of `entries`). `_is_windows_fs`
  is read on every such call (the public property costs a call). (`FastPaths`)
- `get_open_file(fd)`: the handle of a descriptor. (`open_file`)
- `open_files`: every descriptor's handles, to see which handles are still open (flock
  release) and which descriptors share a handle (os.dup). (`live_handle_ids`,
  `close_shared_descriptor`)
- `add_open_file` / `close_open_file` and a handle's `filedes`: a directory descriptor
  without pyfakefs's general open path, and closing one `os.dup` copy without closing
  the shared handle (pyfakefs closes it, leaving the copies unusable).
  (`open_directory`, `close_shared_descriptor`)

Files and directories (`crashkit.faults.model` freezes them into snapshots):

- `FakeDirectory.entries`: name -> child. (`entries`)
- `FakeFile.stat_result`: `st_ino` (the inode key of the durability model) and
  `st_mode` (regular file, symbolic link or neither). (`inode`, `is_regular`, `is_link`)
- `FakeFile.byte_contents` (compared by identity to see whether a flush or close moved
  bytes into the file) and `set_initial_contents` (the DROP fsync model rewrites what
  reads see). (`byte_contents`, `set_contents`)

File objects (open(), io.open(), os.fdopen(), pathlib; see `crashkit.faults.intercept`):

- `FakeFileOpen.call`: the one function every fake open() goes through; replaced
  while a session runs, restored after. Its parameter list and `raw_io` (set on the
  opens pyfakefs's own os.open makes, which are recorded there) are internal.
  (`hook_file_open`)
- Swapping a returned wrapper's `__class__` to a subclass: the wrappers have no
  `__slots__`, so a subclass adding only methods is layout-compatible. (`retype_wrapper`)
- `FakeFileWrapper.__getattr__`: the wrappers produce `write`, `truncate` and the read
  methods there (not as methods), so the hooks fetch them through it. (`wrapper_attr`)
- `FakeBinaryFileWrapper.__getattribute__`/`FakeTextFileWrapper.__getattribute__`: their
  rule (a name of `FakeFileWrapper` or of the instance, else `__getattr__`) is answered
  from a set by our subclasses, and the descriptors of the fake `os.open` get such a
  subclass too: pyfakefs asks `hasattr` for every attribute, hundreds of times per
  `os.read`. (`wrapper_getattribute`, `retype_raw_handle`)
- `FakeFileWrapper._is_open`, `_binary`, `file_object` (read from the instance dict,
  past the hooks' `__getattribute__`), `open_modes.truncate`/`can_write`.
  (`wrapper_is_open`, `is_binary`, `wrapped_file`, `truncates_on_open`)

The fake os module:

- `fake_os.handle_original_call`: the decorator pyfakefs puts on its own os methods so
  calls from skipped modules reach the real os; our overrides get it too.
  (`route_skipped_modules`)
- `FakeOsModule.open` calls `self.chmod` on every file it opens (`CrashOs` skips it
  when nothing is created); `FakeOsModule.dir()` lists the names the Patcher also
  patches where they were imported with `from os import ...`. Behaviours relied on,
  not touched here.
"""

from __future__ import annotations

import errno
import inspect
import stat
import sys
from collections.abc import Callable
from operator import attrgetter
from os import getenv
from types import ModuleType
from typing import Any, Final

from pyfakefs import fake_os, fake_pathlib
from pyfakefs.fake_file import (
    FakeBinaryFileWrapper,
    FakeDirectory,
    FakeDirWrapper,
    FakeFile,
    FakeFileWrapper,
    FakeTextFileWrapper,
)
from pyfakefs.fake_filesystem import FakeFilesystem
from pyfakefs.fake_filesystem_unittest import Patcher
from pyfakefs.fake_io import FakeFcntlModule
from pyfakefs.fake_open import FakeFileOpen
from pyfakefs.fake_os import FakeOsModule

__all__ = [
    "CHECKED_VERSION",
    "ClassAliases",
    "FakeBinaryFileWrapper",
    "FakeDirWrapper",
    "FakeDirectory",
    "FakeFcntlModule",
    "FakeFile",
    "FakeFileWrapper",
    "FakeFilesystem",
    "FakeOsModule",
    "FakeTextFileWrapper",
    "FastPaths",
    "ModuleCacheKey",
    "OpenHook",
    "Patcher",
    "active_patcher",
    "byte_contents",
    "claim_patcher_slot",
    "close_shared_descriptor",
    "entries",
    "fast_paths",
    "fast_reset",
    "find_new_modules",
    "hook_file_open",
    "inode",
    "installed_fake_module",
    "is_binary",
    "is_clean_abs",
    "is_link",
    "is_regular",
    "last_inode",
    "live_handle_ids",
    "module_cache_key",
    "open_directory",
    "open_file",
    "rebuild_module_cache",
    "release_patcher_slot",
    "repoint_pathlib",
    "retype_wrapper",
    "route_skipped_modules",
    "set_contents",
    "truncates_on_open",
    "wrapped_file",
    "wrapper_attr",
    "wrapper_is_open",
]

#: The pyfakefs version every touch below was checked against.
CHECKED_VERSION: Final = "6.3.2"

# -- the Patcher ------------------------------------------------------------------------

#: What pyfakefs's module cache was built for: (patched names, skip names, default args).
ModuleCacheKey = tuple[frozenset[str], frozenset[str], bool]


def active_patcher() -> Patcher | None:
    """The Patcher holding pyfakefs's global slot, if any."""
    return Patcher.PATCHER


def claim_patcher_slot(patcher: Patcher) -> None:
    """Make `patcher` the active one (as its first `setUp()` would)."""
    Patcher.PATCHER = patcher
    Patcher.REF_COUNT = 1


def release_patcher_slot(patcher: Patcher) -> None:
    """Free the global slot if `patcher` holds it (it stays usable for a later claim)."""
    if Patcher.PATCHER is patcher:
        Patcher.PATCHER = None
        Patcher.REF_COUNT = 0


def module_cache_key() -> ModuleCacheKey:
    return (
        frozenset(Patcher.PATCHED_MODULE_NAMES),
        frozenset(Patcher.ADDITIONAL_SKIP_NAMES),
        Patcher.PATCH_DEFAULT_ARGS,
    )


def rebuild_module_cache(patcher: Patcher, key: ModuleCacheKey) -> None:
    """Rebuild the module cache for `key` after another Patcher rebuilt it for its own."""
    names, skips, defaults = key
    Patcher.PATCHED_MODULE_NAMES = set(names)
    Patcher.ADDITIONAL_SKIP_NAMES = set(skips)
    Patcher.PATCH_DEFAULT_ARGS = defaults
    patcher.clear_cache()
    patcher._find_modules()


def find_new_modules(patcher: Patcher) -> None:
    """Find the modules imported since the last scan, so resuming patches them too."""
    patcher._find_modules()


def installed_fake_module(patcher: Patcher, name: str) -> Any:
    """The fake module `patcher` installed for `name` (None if it installed none)."""
    return patcher.fake_modules.get(name)


def repoint_pathlib(fs: FakeFilesystem) -> None:
    fake_pathlib.init_module(fs)  # type: ignore[no-untyped-call]


#: The modules whose aliases held by a class `ClassAliases` replaces with pyfakefs's fake
#: (`os`: our `CrashOs`; `io`: pyfakefs's fake `io`, whose `open` is hooked; `fcntl`:
#: our `CrashFcntl`). `pathlib` and `os.path` are left as they are: a class holding them
#: (pathlib's own flavours) works on real path objects.
ALIASED_MODULES: Final = frozenset({"os", "io", "fcntl"})

#: Modules never scanned: pyfakefs and the fault layer hold the real modules on purpose.
_OWN_PREFIXES: Final = ("pyfakefs", "crashkit.faults")


class ClassAliases:
    """The file-system modules and functions classes hold as attributes, faked while our
    Patcher patches.

    pyfakefs replaces `os`, `io`, `open` & co. where a module holds them (`import os as
    _os`, `from os import replace`), not where a class does: `dbm.dumb` keeps
    `_Database._os = _os` and `_Database._io = _io` (so that its `__del__` works at
    shutdown) and calls `self._os.chmod`, `self._os.rename`, `self._io.open` through
    them, which then reach the real disk. `scan` finds such attributes in the classes a
    module defines (the modules pyfakefs skips, pyfakefs itself and the fault layer
    excepted), `patch` sets each to what pyfakefs gives a module holding the same value
    (the fake module, or the fake function bound to it; a `staticmethod` stays one), and
    `unpatch` puts the originals back. Modules imported since the last scan are scanned
    by `refresh`, cheaply (a count of `sys.modules` says whether any is new).
    """

    def __init__(self) -> None:
        self.found: list[tuple[type, str, Any]] = []  # (class, attribute, original value)
        self.scanned: set[str] = set()
        self.saved: list[tuple[type, str, Any]] = []
        self._marker: tuple[int, str | None] = (0, None)

    def _fake_for(self, patcher: Patcher, value: Any) -> Any:
        """What pyfakefs would put in place of `value` in a module (None: leave it)."""
        if isinstance(value, staticmethod):
            fake = self._fake_for(patcher, value.__func__)
            return None if fake is None else staticmethod(fake)
        if isinstance(value, ModuleType):
            if value.__name__ not in ALIASED_MODULES:
                return None
            return patcher.fake_modules.get(value.__name__)
        if not (inspect.isfunction(value) or inspect.isbuiltin(value)):
            return None
        if not patcher._is_fs_function(value):  # type: ignore[arg-type]
            return None
        method, module_name = patcher._fake_module_functions[value.__name__][value.__module__]
        fake_module = patcher.fake_modules.get(module_name)
        if fake_module is None:
            return None
        return method.__get__(fake_module, type(fake_module))

    def _skipped(self, patcher: Patcher, name: str, module: ModuleType) -> bool:
        if name.startswith(_OWN_PREFIXES):
            return True
        try:
            return module in patcher.SKIPMODULES or any(
                skip.startswith(name) for skip in patcher.skip_names
            )
        except TypeError:  # an unhashable module object
            return False

    def scan(self, patcher: Patcher) -> list[tuple[type, str, Any]]:
        """Look at the modules not looked at yet; return the aliases found in them."""
        new: list[tuple[type, str, Any]] = []
        for name, module in list(sys.modules.items()):
            if name in self.scanned:
                continue
            self.scanned.add(name)
            if not isinstance(module, ModuleType) or self._skipped(patcher, name, module):
                continue
            for value in list(vars(module).values()):
                if not isinstance(value, type) or getattr(value, "__module__", None) != name:
                    continue
                for attr, member in list(vars(value).items()):
                    if self._fake_for(patcher, member) is not None:
                        new.append((value, attr, member))
        self.found.extend(new)
        self._marker = (len(sys.modules), next(reversed(sys.modules), None))
        return new

    def patch(self, patcher: Patcher, which: list[tuple[type, str, Any]] | None = None) -> None:
        """Fake every alias found (or those of `which`) that still holds its original."""
        for cls, attr, original in self.found if which is None else which:
            if cls.__dict__.get(attr) is not original:
                continue  # changed since (by its own module): leave it
            fake = self._fake_for(patcher, original)
            if fake is not None:
                setattr(cls, attr, fake)
                self.saved.append((cls, attr, original))

    def unpatch(self) -> None:
        """Put back every original `patch` replaced."""
        for cls, attr, original in reversed(self.saved):
            setattr(cls, attr, original)
        self.saved.clear()

    def refresh(self, patcher: Patcher) -> None:
        """While patching: scan the modules imported since the last scan, patch theirs."""
        if (len(sys.modules), next(reversed(sys.modules), None)) != self._marker:
            self.patch(patcher, self.scan(patcher))


# -- the file system ----------------------------------------------------------------------


def fast_reset(fs: FakeFilesystem, disk_size: int | None) -> None:
    """An empty file system holding /tmp, like `fs.reset(total_size=disk_size)`.

    Done by hand for a POSIX file system with only the root mount and /tmp as temp dir
    (~8x cheaper); any other case goes to `reset()`.
    """
    mounts = fs.mount_points
    if fs.is_windows_fs or list(mounts) != ["/"] or (getenv("TMPDIR") or "/tmp") != "/tmp":
        fs.reset(total_size=disk_size)
        return
    mount = mounts["/"]
    root = FakeDirectory("/", filesystem=fs)
    root.st_ino = 1
    root.st_dev = mount["idev"]
    fs.root = root
    fs.open_files.clear()
    fs._free_fd_heap.clear()
    fs.last_ino = 1
    fs._cwd = "/"
    mount["used_size"] = 0
    mount["total_size"] = disk_size
    fs._add_standard_streams()
    root.add_entry(FakeDirectory("tmp", filesystem=fs))


def is_clean_abs(path: object) -> bool:
    """An absolute, already normalised str path (pyfakefs would return it unchanged)."""
    return (
        type(path) is str
        and path.startswith("/")
        and "//" not in path
        and "/." not in path
        and (len(path) == 1 or not path.endswith("/"))
    )


def _override(fs: FakeFilesystem, name: str, replacement: Callable[..., Any]) -> Any:
    """Replace method `name` on this instance only; return the class's version, bound."""
    original = getattr(type(fs), name).__get__(fs)
    setattr(fs, name, replacement)
    return original


class FastPaths:
    """Fast paths for pyfakefs's path resolution on our own fake file system.

    pyfakefs spends most of an `os.open` normalising and resolving paths (~25 us per
    call). For a clean absolute path on a POSIX fake file system holding no symlink,
    `absnormpath` and `resolve_path` return the path unchanged and `exists` is a walk
    of the entry dicts: those cases skip the generic code (identical results), every
    other case goes to pyfakefs. Any symlink creation turns the fast paths off until
    `symlinks` is reset (by the next `CrashFS.start()`).
    """

    def __init__(self, fs: FakeFilesystem) -> None:
        self.fs = fs
        self.symlinks = False
        self._absnormpath = _override(fs, "absnormpath", self.absnormpath)
        self._resolve_path = _override(fs, "resolve_path", self.resolve_path)
        self._exists = _override(fs, "exists", self.exists)
        self._create_symlink = _override(fs, "create_symlink", self.create_symlink)

    def _fast(self, path: object) -> bool:
        fs = self.fs
        return (
            not self.symlinks
            and not fs._is_windows_fs
            and fs.is_case_sensitive
            and is_clean_abs(path)
        )

    def absnormpath(self, path: Any) -> Any:
        return path if self._fast(path) else self._absnormpath(path)

    def resolve_path(self, file_path: Any, allow_fd: bool = False) -> Any:
        return file_path if self._fast(file_path) else self._resolve_path(file_path, allow_fd)

    def exists(self, file_path: Any, check_link: bool = False) -> bool:
        if check_link or not self._fast(file_path) or file_path == self.fs.devnull:
            return bool(self._exists(file_path, check_link))
        node: Any = self.fs.root
        for name in file_path.split("/")[1:]:
            if not name:
                continue
            if not isinstance(node, FakeDirectory):
                return False
            node = node.entries.get(name)
            if node is None:
                return False
        return True

    def create_symlink(self, *args: Any, **kwargs: Any) -> Any:
        self.symlinks = True
        return self._create_symlink(*args, **kwargs)


def fast_paths(fs: FakeFilesystem) -> FastPaths:
    """The `FastPaths` of `fs`, installed on first use (kept in the instance's dict)."""
    found = fs.__dict__.get("_crash_fast_paths")
    if isinstance(found, FastPaths):
        return found
    shortcuts = FastPaths(fs)
    fs.__dict__["_crash_fast_paths"] = shortcuts
    return shortcuts


#: The handle (file or directory wrapper) of a descriptor; OSError EBADF if none.
#: (An alias, not a wrapper: it is called on every descriptor op.)
open_file: Final = FakeFilesystem.get_open_file


#: The last inode number handed out (`fs.last_ino`): it grows when a call creates a file.
last_inode: Final[Callable[[FakeFilesystem], int]] = attrgetter("last_ino")


def live_handle_ids(fs: FakeFilesystem) -> set[int]:
    """`id()` of every handle some descriptor still refers to."""
    return {id(handle) for entry in fs.open_files if entry for handle in entry}


def open_directory(
    fs: FakeFilesystem, directory: FakeDirectory, path: str
) -> tuple[int, FakeDirWrapper]:
    """A new descriptor on `directory`, and its handle."""
    wrapper = FakeDirWrapper(directory, path, fs)
    fd = fs.add_open_file(wrapper)
    wrapper.filedes = fd
    return fd, wrapper


def close_shared_descriptor(fs: FakeFilesystem, fd: int) -> bool:
    """Close `fd` alone if other descriptors (os.dup copies) share its handle.

    False when `fd` is the handle's last descriptor: the caller closes it normally.
    """
    handle = fs.get_open_file(fd)
    others = [i for i, e in enumerate(fs.open_files) if e and i != fd and handle in e]
    if not others:
        return False
    fs.close_open_file(fd)
    if getattr(handle, "filedes", None) == fd:
        handle.filedes = others[0]
    return True


def _resync_readers(fs: FakeFilesystem, obj: FakeFile) -> None:
    """Reload the buffer of every non-append handle on `obj` from its content.

    A pyfakefs handle buffers the whole file, and a flush (which a seek or a close
    makes) writes that buffer back: one left stale by a change made on the file object
    would undo the change. (Append handles merge their buffer onto the content instead.)"""
    for handles in fs.open_files:
        for handle in handles or ():
            if (
                isinstance(handle, FakeFileWrapper)
                and handle.file_object is obj
                and not handle.open_modes.append
            ):
                handle._sync_io()


def positioned_read(fs: FakeFilesystem, fd: int, n: int, offset: int) -> bytes:
    """pread(2) on the file object itself: no seek, no flush of the handle's buffer."""
    handle = fs.get_open_file(fd)
    if not isinstance(handle, FakeFileWrapper) or not handle.open_modes.can_read:
        fs.raise_os_error(errno.EBADF)
    if n < 0 or offset < 0:
        fs.raise_os_error(errno.EINVAL)
    data = handle.file_object.byte_contents or b""
    return data[offset : offset + n]


def positioned_write(fs: FakeFilesystem, fd: int, data: bytes, offset: int) -> int:
    """pwrite(2) on the file object itself: the bytes land at `offset` (at the end for an
    `O_APPEND` descriptor, as on Linux), a gap reads as zeros, other handles see it."""
    handle = fs.get_open_file(fd)
    if not isinstance(handle, FakeFileWrapper) or not handle.open_modes.can_write:
        fs.raise_os_error(errno.EBADF)
    if offset < 0:
        fs.raise_os_error(errno.EINVAL)
    obj = handle.file_object
    old = obj.byte_contents or b""
    if handle.open_modes.append:
        offset = len(old)
    data = bytes(data)
    gap = b"\0" * max(0, offset - len(old))
    obj.set_initial_contents(old[:offset] + gap + data + old[offset + len(data) :])
    _resync_readers(fs, obj)
    return len(data)


def truncated(fs: FakeFilesystem, obj: FakeFile) -> None:
    """After a truncate of `obj`: no handle may write a stale buffer back over it."""
    _resync_readers(fs, obj)


# -- files and directories ------------------------------------------------------------------


#: The live name -> child mapping of a directory (do not mutate). An `attrgetter`, not a
#: function: the snapshot walks call it for every directory.
entries: Final[Callable[[FakeDirectory], dict[str, FakeFile]]] = attrgetter("entries")


def inode(obj: FakeFile) -> int:
    """The inode number (pyfakefs assigns it when the object enters a directory)."""
    ino = obj.stat_result.st_ino
    assert ino is not None, f"{obj.name!r} was never added to a directory"
    return ino


def is_regular(obj: FakeFile) -> bool:
    return stat.S_ISREG(obj.stat_result.st_mode)


def is_link(obj: FakeFile) -> bool:
    """A symbolic link (pyfakefs keeps its target as the file's content)."""
    return stat.S_ISLNK(obj.stat_result.st_mode)


#: What reads of a file see (None for a file never written); a new object whenever the
#: content changes. An `attrgetter`, like `entries`.
byte_contents: Final[Callable[[FakeFile], bytes | None]] = attrgetter("byte_contents")


def set_contents(obj: FakeFile, data: bytes) -> None:
    """Replace what reads of the file see (no size checks, no timestamps)."""
    obj.set_initial_contents(data)


# -- file objects ---------------------------------------------------------------------------

#: The `name` method of a file wrapper as pyfakefs builds it (write, truncate, read...).
wrapper_attr: Final = FakeFileWrapper.__getattr__

#: Whether a file wrapper is still open.
wrapper_is_open: Final = FakeFileWrapper._is_open


def wrapped_file(wrapper: Any) -> FakeFile:
    """The file a wrapper reads and writes."""
    file: FakeFile = wrapper.__dict__["file_object"]
    return file


def is_binary(wrapper: Any) -> bool:
    return bool(wrapper.__dict__.get("_binary"))


def truncates_on_open(wrapper: FakeFileWrapper) -> bool:
    """The open mode truncated the file ("w", "w+", "wb"...)."""
    return bool(wrapper.open_modes.truncate and wrapper.open_modes.can_write)


#: What `hasattr(FakeFileWrapper, name)` answers, as a set: the wrappers' own
#: `__getattribute__` asks it (a `hasattr` call) for every attribute, including each
#: `self.x` inside their methods, hundreds of times per `os.read`.
_WRAPPER_NAMES: Final = frozenset(dir(FakeFileWrapper))
_object_getattribute: Final = object.__getattribute__


def wrapper_getattribute(self: Any, name: str) -> Any:
    """pyfakefs's wrapper `__getattribute__` rule, answered from a set: a name of the
    wrapper class or of the instance is looked up normally, any other goes to the
    wrapper's `__getattr__` (where it produces `write`, `read` and the rest). Same
    answers, a fifth of the cost; for subclasses of the binary and text wrappers."""
    if name in _WRAPPER_NAMES or name in _object_getattribute(self, "__dict__"):
        return _object_getattribute(self, name)
    return _object_getattribute(self, "__getattr__")(name)


class RawBinaryFile(FakeBinaryFileWrapper):
    """The handle behind a descriptor of the fake `os.open`: pyfakefs's binary wrapper
    with the faster attribute rule (the fault layer records these calls at the os level,
    so the handle itself needs no hooks)."""

    __slots__ = ()
    __getattribute__ = wrapper_getattribute


def retype_raw_handle(handle: Any) -> None:
    """Give a plain binary handle of the fake `os.open` the faster attribute rule."""
    if type(handle) is FakeBinaryFileWrapper:
        handle.__class__ = RawBinaryFile


def retype_wrapper(wrapper: Any, binary: type, text: type) -> bool:
    """Give a binary/text file wrapper the class `binary`/`text` (False: neither kind)."""
    if isinstance(wrapper, FakeBinaryFileWrapper):
        wrapper.__class__ = binary
    elif isinstance(wrapper, FakeTextFileWrapper):
        wrapper.__class__ = text
    else:
        return False
    return True


#: `hook(fs, call, file_, mode, opener)`: called for every fake open() while installed;
#: `call()` performs the open and returns the wrapper.
OpenHook = Callable[[FakeFilesystem, Callable[[], Any], Any, str, Any], Any]

_ORIGINAL_OPEN_CALL: Final = FakeFileOpen.call
_open_hook: OpenHook | None = None


def _hooked_open_call(
    self: FakeFileOpen,
    file_: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Any = None,
    open_modes: Any = None,
) -> Any:
    def call() -> Any:
        return _ORIGINAL_OPEN_CALL(
            self, file_, mode, buffering, encoding, errors, newline, closefd, opener, open_modes
        )

    hook = _open_hook
    if hook is None or self.raw_io:  # raw_io: the fake os.open's own open
        return call()
    return hook(self.filesystem, call, file_, mode, opener)


def hook_file_open(hook: OpenHook | None) -> None:
    """Send every fake open() through `hook` (None: back to pyfakefs's own)."""
    global _open_hook
    _open_hook = hook
    if hook is None:
        FakeFileOpen.call = _ORIGINAL_OPEN_CALL  # type: ignore[method-assign]
    else:
        FakeFileOpen.call = _hooked_open_call  # type: ignore[method-assign]


# -- the fake os module ---------------------------------------------------------------------

#: Decorator for FakeOsModule overrides: calls from modules pyfakefs skips go to the real os.
route_skipped_modules: Final = fake_os.handle_original_call
