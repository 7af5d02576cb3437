"""The backend protocol: the only way the orchestrator and the harness touch storage.

A backend is opened by a factory `(path, config) -> OpenedStore`. Opening restores
(or raises `StartupRefused`); `append` is durable on return or raises
`PersistenceError` and poisons the backend; `close` releases the writer. Optionally,
`abandon()`: the harness simulated a power cut and this process is gone; make no
further I/O and release what lives in this process (a backend on a C library whose
teardown would otherwise write, on a later garbage collection, into whatever disk the
harness booted next; the SQLite backend has one). The factory
and what the backend is are declared once, in a `Backend` object (its capabilities
tell the harness which checks apply), and named as `module:attribute`.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from types import ModuleType
from typing import Literal, Protocol, cast, runtime_checkable

from crashkit.orchestrator.errors import ConfigError
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, HysteresisStore

Outcome = Literal["ok", "bootstrap", "fatal"]


@runtime_checkable
class StateBackend(Protocol):
    @property
    def poisoned(self) -> bool:
        """True once any append failed: every later append must raise."""
        ...

    def append(self, states: Sequence[HysteresisState]) -> None:
        """Make `states` durable before returning, or raise PersistenceError (and poison)."""
        ...

    def close(self) -> None:
        """Release the file/lock. Idempotent; must not raise."""
        ...


@dataclass(frozen=True, slots=True)
class RestoreSummary:
    """What a restore saw, in terms any backend can give: the outcome (`ok`: states
    restored, `bootstrap`: an empty store, `fatal`: refused) and why.

    `notes` are short lines for an operator (what restore skipped, what it will repair).
    A line-file backend returns the richer `RestoreReport` (store.report)."""

    path: str
    outcome: Outcome
    reason: str | None = None

    def notes(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class OpenedStore:
    backend: StateBackend
    store: HysteresisStore
    report: RestoreSummary


class BackendFactory(Protocol):
    def __call__(self, path: str, config: HysteresisConfig) -> OpenedStore:
        """Restore from `path` and open the writer; raise StartupRefused on a fatal outcome."""
        ...


class ReadOnlyRestore(Protocol):
    def __call__(self, path: str, config: HysteresisConfig) -> HysteresisStore:
        """Restore exactly as the factory would, without opening the writer or locking."""
        ...


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend is, so the harness knows which checks apply to it.

    - `line_format`: the state lives at the path as contract-v1 JSON Lines, so the
      byte-level restore table (torn tails, invalid lines, ties by line order), seeded
      state files and `crashkit inspect` apply;
    - `single_writer`: a second open of a path that is open must be refused;
    - `files`: the files it keeps, as patterns in which `{path}` is the state path and
      `{dir}` its folder (default: only the path; a journal beside it would add
      `"{path}-journal"`; a whole folder `"{dir}/*"`);
    - `temp_files`: files (same patterns) it writes only for a while, such as a
      compaction's temp file: one a crash left behind must be gone once a start returns.
    """

    line_format: bool = False
    single_writer: bool = False
    files: tuple[str, ...] = ("{path}",)
    temp_files: tuple[str, ...] = ()

    def file_patterns(self, path: str) -> tuple[str, ...]:
        directory = path.rsplit("/", 1)[0] if "/" in path else "."
        return tuple(p.format(path=path, dir=directory) for p in self.files)

    def temp_paths(self, path: str) -> tuple[str, ...]:
        directory = path.rsplit("/", 1)[0] if "/" in path else "."
        return tuple(p.format(path=path, dir=directory) for p in self.temp_files)


class SeedHook(Protocol):
    def __call__(self, path: str, states: Sequence[HysteresisState]) -> None:
        """Leave at `path` (its folder exists, nothing else of the store does) the store a
        writer leaves that committed `states` one at a time, in this order, and closed:
        durable, unlocked. Plain `os` calls only (the harness's disk is fake)."""
        ...


class DamageOp(Enum):
    """What a `Damage` does to a file's bytes, as a failing disk does."""

    TRUNCATE = "truncate"  # cut the file at `at`
    FLIP = "flip"  # every bit of the byte at `at` flipped
    ZERO = "zero"  # `length` bytes from `at` zeroed (a lost block)


class DamageExpect(Enum):
    """What restore must give after a `Damage`."""

    #: refuse to start (StartupRefused): the damage leaves nothing a restore may serve
    FATAL = "fatal"
    #: refuse, or restore only states that were written whole, with every symbol written
    #: before (never empty, never a state nobody wrote, never a symbol reset)
    NOT_INVENTED = "not-invented"


@dataclass(frozen=True, slots=True)
class Damage:
    """One offline damage to one file of a store, and what restore must give after it."""

    what: str  # said in findings: "page 2's b-tree header flipped"
    file: str  # the damaged file's path (one of the store's files)
    op: DamageOp
    at: int  # byte offset in the file
    expect: DamageExpect = DamageExpect.NOT_INVENTED
    length: int = 1  # bytes zeroed (ZERO only)

    def apply(self, data: bytes) -> bytes:
        """`data` with this damage done (unchanged where `at` is past its end)."""
        if not 0 <= self.at < len(data):
            return data
        if self.op is DamageOp.TRUNCATE:
            return data[: self.at]
        if self.op is DamageOp.FLIP:
            return data[: self.at] + bytes([data[self.at] ^ 0xFF]) + data[self.at + 1 :]
        end = min(len(data), self.at + self.length)
        return data[: self.at] + bytes(end - self.at) + data[end:]


class DamageHook(Protocol):
    def __call__(self, path: str, files: Mapping[str, bytes]) -> Sequence[Damage]:
        """The damages to try on the store at `path`, whose files (every path that exists
        among its declared `files`, closed and durable) hold `files`, each with what
        restore must give after it. Pure: it reads only `files`."""
        ...


@dataclass(frozen=True, slots=True)
class Backend:
    """A backend, declared once: `BACKEND = Backend("mystore", open_store, ...)` in the
    backend's module, named as `mymodule:BACKEND`.

    Calling it opens the store (a `Backend` is itself a `BackendFactory`). `restore_only`
    is an optional read-only restore, as the factory would restore but with no writer
    and no lock; the harness uses it for its extra check restores."""

    name: str
    open: BackendFactory
    restore_only: ReadOnlyRestore | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    #: How it was named (`module:attribute`), for messages and exported scenarios.
    spec: str | None = None
    #: An optional offline compaction of the state (what `crashkit compact` runs for the
    #: reference): under the writer lock, refusing (StartupRefused) what it must not touch.
    compact: Callable[[str, HysteresisConfig], None] | None = None
    #: An optional read-only restore report of the state at a path (what `crashkit inspect
    #: --backend` prints): writes nothing, holds no lock once it returns, never raises for
    #: content (a refusal is the outcome `fatal`). The line-file and SQLite backends return
    #: their `store.report.RestoreReport`, with its line counts and each winner's line.
    report: Callable[[str], RestoreSummary] | None = None
    #: An optional way to write a store holding given states (`SeedHook`): the kit's
    #: seeded rows and scenarios use it. Without it they seed through the backend itself
    #: (open, one append per state, close), and a line-format backend gets the lines.
    seed: SeedHook | None = None
    #: An optional list of damages to its files and what restore must give after each
    #: (`DamageHook`): the kit's `declared-damage` row tries each. Without it the kit
    #: truncates, flips a byte and zeroes a block of each file it keeps, and holds
    #: restore to `DamageExpect.NOT_INVENTED`.
    damage: DamageHook | None = None

    def __call__(self, path: str, config: HysteresisConfig) -> OpenedStore:
        return self.open(path, config)


DEFAULT_BACKEND = "crashkit.orchestrator.store.jsonl:BACKEND"


def _check_factory(spec: str, factory: object, what: str) -> None:
    """A factory must take (path, config): say so now, not as a crash at startup."""
    if not callable(factory):
        raise ConfigError(f"backend {spec!r}: {what} is not callable")
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to check
    try:
        signature.bind("path", HysteresisConfig())
    except TypeError as exc:
        raise ConfigError(
            f"backend {spec!r}: {what} must take (path, config), but its signature is "
            f"{signature} ({exc})"
        ) from exc


def importable_from(*folders: str | os.PathLike[str]) -> None:
    """Let `module:attribute` specs name modules in these folders (as `python -m` would
    the current one): they go first on `sys.path`, once."""
    for folder in reversed(folders):
        text = os.fspath(folder)
        if text not in sys.path:
            sys.path.insert(0, text)


class BackendProtocolError(ConfigError):
    """A backend broke the protocol where no check can judge it (its factory returned no
    `OpenedStore`): said as that, by name, not as an AttributeError deep in the caller."""


class _CheckedFactory:
    """A loaded backend's factory, whose result is checked before anyone uses it."""

    def __init__(self, spec: str, what: str, factory: BackendFactory) -> None:
        self.spec = spec
        self.what = what
        self.factory = factory
        self.__wrapped__ = factory

    def __call__(self, path: str, config: HysteresisConfig) -> OpenedStore:
        opened: object = self.factory(path, config)  # (what it says it returns: checked)
        if isinstance(opened, OpenedStore):
            return opened
        if all(hasattr(opened, name) for name in ("backend", "store", "report")):
            return cast(OpenedStore, opened)  # one of its own shape: judged by its use
        got = "None" if opened is None else f"a {type(opened).__name__}"
        raise BackendProtocolError(
            f"backend {self.spec!r}: {self.what} returned {got}, not an "
            "OpenedStore(backend, store, report): a factory returns the store it opened, "
            "or raises StartupRefused to refuse to start"
        )

    def __repr__(self) -> str:
        return f"checked({self.factory!r})"


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A typo's likely meaning, so the error says what to write instead."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def _modules_near(module_name: str) -> list[str]:
    """Module names a typo of `module_name` may have meant: the shipped backends, the
    siblings in its package (when that imports), the top-level modules on sys.path."""
    names = [DEFAULT_BACKEND.partition(":")[0], "crashkit.orchestrator.store.sqlite"]
    parent, dot, _ = module_name.rpartition(".")
    if dot:
        try:
            package = importlib.import_module(parent)
        except Exception:  # (the parent is the typo, or broken: no sibling to offer)
            return names
        found = pkgutil.iter_modules(getattr(package, "__path__", []), prefix=parent + ".")
    else:
        found = pkgutil.iter_modules([os.getcwd(), *sys.path])
    return names + [info.name for info in found]


def _import(spec: str, module_name: str) -> ModuleType:
    """Import the backend's module; every way that fails is a ConfigError saying which."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            hint = _did_you_mean(module_name, _modules_near(module_name))
            raise ConfigError(
                f"backend {spec!r}: cannot import module {module_name!r} ({exc})"
                f"{hint or '; is it installed, on PYTHONPATH or in the current folder?'}"
            ) from exc
        raise ConfigError(
            f"backend {spec!r}: importing module {module_name!r} failed: a module it imports "
            f"is missing ({exc})"
        ) from exc
    except Exception as exc:  # a syntax error, an exception its top level raised
        where = ""
        if isinstance(exc, SyntaxError) and exc.filename:
            where = f" ({exc.filename}, line {exc.lineno})"
        detail = " ".join(str(exc).split())
        raise ConfigError(
            f"backend {spec!r}: importing module {module_name!r} failed: "
            f"{type(exc).__name__}: {detail}{where}"
        ) from exc


def load_backend(spec: str) -> Backend:
    """Resolve `module:attribute` to a `Backend`, with an error that says how to fix it.

    The attribute is a `Backend` declaration, or a bare factory `(path, config)`, which
    is taken as a backend that declares no capabilities. The factory is wrapped so that
    one returning anything but an `OpenedStore` is told so (`BackendProtocolError`)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"backend {spec!r} is not of the form 'module:attribute' "
            f"(for example {DEFAULT_BACKEND!r})"
        )
    module = _import(spec, module_name)
    if not hasattr(module, attr):
        public = (name for name in dir(module) if not name.startswith("_"))
        raise ConfigError(
            f"backend {spec!r}: module {module_name!r} has no attribute {attr!r}"
            f"{_did_you_mean(attr, public)}"
        )
    found = getattr(module, attr)
    if isinstance(found, Backend):
        _check_factory(spec, found.open, f"{attr}.open")
        if found.restore_only is not None:
            _check_factory(spec, found.restore_only, f"{attr}.restore_only")
        checked = _CheckedFactory(spec, f"{attr}.open", found.open)
        if found.spec == spec:
            return replace(found, open=checked)
        return replace(_with_spec(found, spec), open=checked)
    if not callable(found):
        raise ConfigError(
            f"backend {spec!r}: {attr!r} is neither a Backend declaration nor a factory "
            f"(path, config) -> OpenedStore, but {type(found).__name__}"
        )
    _check_factory(spec, found, repr(attr))
    return Backend(name=spec, open=_CheckedFactory(spec, repr(attr), found), spec=spec)


def _with_spec(backend: Backend, spec: str) -> Backend:
    return replace(backend, spec=spec)  # (every declared hook kept)


def load_backend_factory(spec: str) -> BackendFactory:
    """The factory of `load_backend(spec)` (what the orchestrator opens stores with)."""
    return load_backend(spec)
