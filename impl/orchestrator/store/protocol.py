"""The backend protocol: the only way the orchestrator and the harness touch storage.

A backend is opened by a factory `(path, config) -> OpenedStore`. Opening
restores (or raises `StartupRefused`); `append` is durable on return or raises
`PersistenceError` and poisons the backend; `close` releases the writer.
A new backend (SQLite, a server database, ...) implements these two shapes and
is named on the command line as `module:callable`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from crashkit.orchestrator.errors import ConfigError
from crashkit.orchestrator.store.report import RestoreReport
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, HysteresisStore


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
        """Release the file/lock. Idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class OpenedStore:
    backend: StateBackend
    store: HysteresisStore
    report: RestoreReport


class BackendFactory(Protocol):
    def __call__(self, path: str, config: HysteresisConfig) -> OpenedStore:
        """Restore from `path` and open the writer; raise StartupRefused on a fatal outcome."""
        ...


class ReadOnlyRestore(Protocol):
    def __call__(self, path: str, config: HysteresisConfig) -> HysteresisStore:
        """Restore exactly as the factory would, without opening the writer or locking."""
        ...


DEFAULT_BACKEND = "crashkit.orchestrator.store.jsonl:open_jsonl_store"
RESTORE_ONLY_NAME = "restore_only"


def load_read_only_restore(spec: str) -> ReadOnlyRestore | None:
    """The backend module's optional `restore_only(path, config)`, or None.

    The harness uses it for its extra check restores (cheaper than opening the
    writer); the orchestrator never does.
    """
    module_name = spec.partition(":")[0]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    found = getattr(module, RESTORE_ONLY_NAME, None)
    return found if callable(found) else None


def load_backend_factory(spec: str) -> BackendFactory:
    """Resolve `module:callable` to a factory, with an error that says how to fix it."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"backend {spec!r} is not of the form 'module:callable' "
            f"(for example {DEFAULT_BACKEND!r})"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"backend {spec!r}: cannot import module {module_name!r} ({exc}); "
            "is it installed or on PYTHONPATH?"
        ) from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ConfigError(f"backend {spec!r}: module {module_name!r} has no callable {attr!r}")
    return factory  # type: ignore[no-any-return]
