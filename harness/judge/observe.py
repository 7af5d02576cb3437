"""What the oracles see: every append and every publish, in one global order.

The wrappers sit on the protocol seams (backend, sink), so they observe any
backend the same way. `position` ties each observation to the file-system op
trace, so a crash after op k knows what had been acknowledged and published.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from crashkit.orchestrator.events import Event, EventSink
from crashkit.orchestrator.runtime import HysteresisRuntime
from crashkit.orchestrator.store.protocol import BackendFactory, OpenedStore, StateBackend
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState


@dataclass(frozen=True, slots=True)
class AppendRecord:
    seq: int
    states: tuple[HysteresisState, ...]
    acked: bool  # append returned normally
    error: str | None
    position: int  # op-trace length when the call returned or raised


@dataclass(frozen=True, slots=True)
class PublishRecord:
    seq: int
    event: Event
    position: int


@dataclass(slots=True)
class Timeline:
    """One process's observations. `position()` reads the op trace (0 without one)."""

    position: Callable[[], int] = lambda: 0
    appends: list[AppendRecord] = field(default_factory=list)
    publishes: list[PublishRecord] = field(default_factory=list)
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def acked_before(self, position: int | None = None) -> list[HysteresisState]:
        """States whose append returned at or before `position` (all if None), in order."""
        return [
            s
            for a in self.appends
            if a.acked and (position is None or a.position <= position)
            for s in a.states
        ]

    def attempted(self) -> list[HysteresisState]:
        return [s for a in self.appends for s in a.states]

    def published_before(self, position: int | None = None) -> list[PublishRecord]:
        return [p for p in self.publishes if position is None or p.position <= position]

    def first_failure(self) -> AppendRecord | None:
        return next((a for a in self.appends if not a.acked), None)

    # What the judge reads (`harness.judge.verdicts.judge_process`), up to a position.

    def publish_pairs(self, position: int | None = None) -> list[tuple[int, Event]]:
        """(seq, event) of every publish at or before `position` (all if None)."""
        return [
            (p.seq, p.event) for p in self.publishes if position is None or p.position <= position
        ]

    def ack_pairs(self, position: int | None = None) -> list[tuple[int, HysteresisState]]:
        """(seq, state) of every state acknowledged at or before `position`."""
        return [
            (a.seq, s)
            for a in self.appends
            if a.acked and (position is None or a.position <= position)
            for s in a.states
        ]

    def append_outcomes(self, position: int | None = None) -> list[tuple[int, bool]]:
        """(seq, acknowledged) of every append that returned or raised by `position`."""
        return [
            (a.seq, a.acked) for a in self.appends if position is None or a.position <= position
        ]


class RecordingBackend:
    """Forwards to the real backend and records each append's outcome."""

    def __init__(self, inner: StateBackend, timeline: Timeline) -> None:
        self.inner = inner
        self.timeline = timeline

    @property
    def poisoned(self) -> bool:
        return self.inner.poisoned

    def append(self, states: Sequence[HysteresisState]) -> None:
        try:
            self.inner.append(states)
        except BaseException as exc:
            t = self.timeline
            t.appends.append(
                AppendRecord(t.next_seq(), tuple(states), False, str(exc), t.position())
            )
            raise
        t = self.timeline
        t.appends.append(AppendRecord(t.next_seq(), tuple(states), True, None, t.position()))

    def close(self) -> None:
        self.inner.close()

    def abandon(self) -> None:
        abandon(self.inner)


def abandon(backend: object) -> None:
    """A power cut took the process of `backend`: let it drop what lives in memory with no
    I/O (its optional `abandon()`, see `orchestrator.store.protocol`). What it raises is
    ignored: the process is gone."""
    drop = getattr(backend, "abandon", None)
    if callable(drop):
        try:
            drop()
        except Exception:
            return


def abandon_runtime(runtime: HysteresisRuntime) -> None:
    """`abandon` the backend of a runtime the power cut took (if it had one open)."""
    try:
        backend = runtime.backend
    except RuntimeError:  # never started, or refused to
        return
    abandon(backend)


def offer_again(backend: StateBackend, states: Sequence[HysteresisState]) -> tuple[bool, bool]:
    """Offer a failed append's records to the backend itself once more, past the runtime
    (which has halted): (it acknowledged them, it says it is poisoned). Contract C5.6: a
    writer that failed refuses every later append; `judge_append` judges the answer."""
    inner = backend.inner if isinstance(backend, RecordingBackend) else backend
    try:
        inner.append(states)
        acked = True
    except Exception:
        acked = False
    try:
        poisoned = bool(inner.poisoned)
    except Exception:
        poisoned = False
    return acked, poisoned


class RecordingSink:
    """Keeps every published event with its place in the timeline."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.events: list[Event] = []

    def publish(self, events: Sequence[Event]) -> None:
        t = self.timeline
        for event in events:
            t.publishes.append(PublishRecord(t.next_seq(), event, t.position()))
        self.events.extend(events)


def recording_factory(factory: BackendFactory, timeline: Timeline) -> BackendFactory:
    """Wrap a backend factory so the opened backend records into `timeline`."""

    def open_recorded(path: str, config: HysteresisConfig) -> OpenedStore:
        opened = factory(path, config)
        return OpenedStore(RecordingBackend(opened.backend, timeline), opened.store, opened.report)

    return open_recorded


def event_sink_of(timeline: Timeline) -> EventSink:
    return RecordingSink(timeline)


def close_quietly(close: Callable[[], None], errors: list[str]) -> None:
    """Call a backend's close; what it raises is recorded (a finding), never propagated."""
    try:
        close()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
