"""A backend that keeps nothing on disk: replays and reference runs use it.

It still honours the protocol (poisoning included) so the runtime cannot tell.
"""

from __future__ import annotations

from collections.abc import Sequence

from crashkit.orchestrator.errors import PersistenceError
from crashkit.orchestrator.store.protocol import OpenedStore, Outcome, RestoreSummary
from crashkit.regime_engine.contracts import HysteresisState, HysteresisStore


class MemoryBackend:
    def __init__(self) -> None:
        self.appended: list[HysteresisState] = []
        self._poisoned = False

    @property
    def poisoned(self) -> bool:
        return self._poisoned

    def append(self, states: Sequence[HysteresisState]) -> None:
        if self._poisoned:
            raise PersistenceError("memory backend is poisoned")
        self.appended.extend(states)

    def close(self) -> None:
        pass


def memory_store(store: HysteresisStore | None = None, path: str = "<memory>") -> OpenedStore:
    """An opened in-memory store, optionally seeded (mid-stream replay)."""
    seeded = store or HysteresisStore()
    outcome: Outcome = "ok" if seeded.states else "bootstrap"
    return OpenedStore(MemoryBackend(), seeded, RestoreSummary(path=path, outcome=outcome))
