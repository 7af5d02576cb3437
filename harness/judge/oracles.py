"""One function per invariant of contract §9, each returning specific violations.

Oracles judge only what the protocol and the sink expose (appends with their
outcome, published events, the restored store), so they hold for any backend.
A violation names the invariant, and where known the symbol, run_id and tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet

from crashkit.harness.judge.invariants import Invariant, Violation
from crashkit.orchestrator import events as ev
from crashkit.orchestrator.events import Event
from crashkit.regime_engine.contracts import DECISION_FIELDS, HysteresisState

Decision = tuple[object, ...]


def run_id(state: HysteresisState) -> str:
    return f"{state.symbol}:{state.engine_timestamp_ms}"


def decision_of_payload(payload: Mapping[str, object]) -> Decision:
    state = payload["state"]
    assert isinstance(state, Mapping)
    return tuple(state[k] for k in DECISION_FIELDS)


def decision_of_state(state: HysteresisState) -> Decision:
    return (
        state.symbol,
        state.engine_timestamp_ms,
        state.anchor_regime.value,
        None if state.candidate_regime is None else state.candidate_regime.value,
        state.progress_current,
    )


def decisions_of(events: Iterable[Event]) -> tuple[dict[str, Decision], list[Violation]]:
    """run_id -> decision over decision and restored events; conflicting repeats are violations."""
    out: dict[str, Decision] = {}
    conflicts: list[Violation] = []
    for event in events:
        if event.event_type not in (ev.DECISION_PUBLISHED, ev.STATE_RESTORED):
            continue
        key = event.run_id
        assert key is not None
        value = decision_of_payload(event.payload)
        seen = out.setdefault(key, value)
        if seen != value:
            conflicts.append(
                Violation(
                    Invariant.CONTINUITY,
                    f"{key} published twice with different states: {seen} then {value}",
                    event.symbol,
                    key,
                )
            )
    return out, conflicts


def latest_per_symbol(states: Iterable[HysteresisState]) -> dict[str, HysteresisState]:
    """The contract's selection over a sequence in file order: highest ts, later wins ties."""
    best: dict[str, HysteresisState] = {}
    for state in states:
        prev = best.get(state.symbol)
        if prev is None or state.engine_timestamp_ms >= prev.engine_timestamp_ms:
            best[state.symbol] = state
    return best


def check_durability(
    acked: Sequence[HysteresisState],
    restored: Mapping[str, HysteresisState],
    later_attempts: Sequence[HysteresisState] = (),
) -> list[Violation]:
    """§9.1: each symbol's last acknowledged state is restored, or superseded by a later record.

    `acked` is in acknowledgement order (so also file order for a log backend);
    `later_attempts` are states appended after it (acked or not), which may
    legitimately supersede it if they reached the disk.
    """
    return durability_violations(
        latest_per_symbol(acked), restored, {s.persisted_fields() for s in later_attempts}
    )


def durability_violations(
    latest_acked: Mapping[str, HysteresisState],
    restored: Mapping[str, HysteresisState],
    later: AbstractSet[tuple[object, ...]] = frozenset(),
) -> list[Violation]:
    """§9.1 on precomputed inputs (see `check_durability`): each symbol's latest acknowledged
    state, and the persisted fields of every later attempt."""
    out: list[Violation] = []
    for symbol, want in latest_acked.items():
        got = restored.get(symbol)
        rid = run_id(want)
        if got is None:
            out.append(
                Violation(
                    Invariant.DURABILITY,
                    f"acknowledged {rid} lost: symbol not restored",
                    symbol,
                    rid,
                )
            )
        elif got.engine_timestamp_ms < want.engine_timestamp_ms:
            out.append(
                Violation(
                    Invariant.DURABILITY,
                    f"acknowledged {rid} lost: restored an older state at {got.engine_timestamp_ms}",
                    symbol,
                    rid,
                )
            )
        elif (
            got.engine_timestamp_ms == want.engine_timestamp_ms
            and got.persisted_fields() != want.persisted_fields()
            and got.persisted_fields() not in later
        ):
            out.append(
                Violation(
                    Invariant.DURABILITY,
                    f"acknowledged {rid} restored with different fields: {got.persisted_fields()} "
                    f"instead of {want.persisted_fields()}",
                    symbol,
                    rid,
                )
            )
    return out


def check_no_invalid_restored(
    restored: Mapping[str, HysteresisState], written: Iterable[HysteresisState]
) -> list[Violation]:
    """§9.2: every restored state is one a writer really appended (not torn or garbled bytes)."""
    return invalid_restored_violations(restored, {s.persisted_fields() for s in written})


def invalid_restored_violations(
    restored: Mapping[str, HysteresisState], known: AbstractSet[tuple[object, ...]]
) -> list[Violation]:
    """§9.2 against the persisted fields of everything written (see `check_no_invalid_restored`)."""
    return [
        Violation(
            Invariant.NO_INVALID_RESTORED,
            f"restored {run_id(state)} was never written whole: {state.persisted_fields()}",
            symbol,
            run_id(state),
        )
        for symbol, state in sorted(restored.items())
        if state.persisted_fields() not in known
    ]


def check_publish_implies_committed(
    published: Sequence[tuple[int, Event]],
    acks: Sequence[tuple[int, HysteresisState]],
    restored: Mapping[str, HysteresisState] | None,
) -> list[Violation]:
    """§9.3: each published decision was acknowledged before it was published, and is durable.

    `published` and `acks` carry the timeline sequence numbers; `restored` is the
    store after a crash (None when there was no crash).
    """
    out: list[Violation] = []
    acked_at: dict[str, int] = {}
    acked_fields: dict[str, set[tuple[object, ...]]] = {}
    for seq, state in acks:
        acked_at.setdefault(run_id(state), seq)
        acked_fields.setdefault(run_id(state), set()).add(
            (*decision_of_state(state), state.last_commit_timestamp_ms)
        )
    for seq, event in published:
        if event.event_type != ev.DECISION_PUBLISHED:
            continue
        rid = event.run_id
        assert (
            rid is not None and event.symbol is not None and event.engine_timestamp_ms is not None
        )
        ack = acked_at.get(rid)
        if ack is None or ack > seq:
            out.append(
                Violation(
                    Invariant.PUBLISH_IMPLIES_COMMITTED,
                    f"{rid} published before its record was committed"
                    + (" (never committed)" if ack is None else ""),
                    event.symbol,
                    rid,
                )
            )
            continue
        payload_state = event.payload["state"]
        assert isinstance(payload_state, Mapping)
        fields = (
            *decision_of_payload(event.payload),
            payload_state["last_commit_timestamp_ms"],
        )
        if fields not in acked_fields[rid]:
            out.append(
                Violation(
                    Invariant.PUBLISH_IMPLIES_COMMITTED,
                    f"{rid} published a state that differs from its committed record: {fields}",
                    event.symbol,
                    rid,
                )
            )
            continue
        if restored is not None:
            got = restored.get(event.symbol)
            if got is None or got.engine_timestamp_ms < event.engine_timestamp_ms:
                out.append(
                    Violation(
                        Invariant.PUBLISH_IMPLIES_COMMITTED,
                        f"{rid} was published but is not on disk after the crash",
                        event.symbol,
                        rid,
                    )
                )
    return out


def latest_published(published: Iterable[tuple[int, Event]]) -> dict[str, tuple[int, str]]:
    """symbol -> (timestamp, run_id) of its latest published decision."""
    out: dict[str, tuple[int, str]] = {}
    for _, event in published:
        if event.event_type != ev.DECISION_PUBLISHED:
            continue
        symbol, ts, rid = event.symbol, event.engine_timestamp_ms, event.run_id
        assert symbol is not None and ts is not None and rid is not None
        best = out.get(symbol)
        if best is None or ts > best[0]:
            out[symbol] = (ts, rid)
    return out


def check_published_survived(
    latest: Mapping[str, tuple[int, str]], restored: Mapping[str, HysteresisState]
) -> list[Violation]:
    """§9.3 after a crash: each symbol's latest published decision is on disk (or superseded).

    The cheap per-crash-state half of `check_publish_implies_committed`, for callers
    that already checked publish-after-ack once on the run that published.
    """
    return published_not_on_disk(
        latest, {symbol: state.engine_timestamp_ms for symbol, state in restored.items()}
    )


def published_not_on_disk(
    latest: Mapping[str, tuple[int, str]], restored: Mapping[str, int]
) -> list[Violation]:
    """`check_published_survived` on restored timestamps (symbol -> its restored one), what
    a real process's restored events give."""
    out: list[Violation] = []
    for symbol, (ts, rid) in sorted(latest.items()):
        if restored.get(symbol, -1) < ts:
            out.append(
                Violation(
                    Invariant.PUBLISH_IMPLIES_COMMITTED,
                    f"{rid} was published but is not on disk after the crash",
                    symbol,
                    rid,
                )
            )
    return out


def check_crash_not_fatal(refusal: str | None) -> list[Violation]:
    """§9.4: torn tails and lost unsynced bytes must never make restore refuse to start."""
    if refusal is None:
        return []
    return [
        Violation(Invariant.CRASH_NOT_FATAL, f"restart after a crash refused to start: {refusal}")
    ]


def check_continuity(
    events: Iterable[Event],
    reference: Mapping[str, Decision],
    *,
    up_to_ms: int | None = None,
) -> list[Violation]:
    """§9.5: over crash + restart, the decisions equal the uninterrupted run's.

    `up_to_ms` limits the "missing" check when the resumed run stopped early.
    """
    got, out = decisions_of(events)
    return out + continuity_violations(got, reference, up_to_ms=up_to_ms)


def merge_decisions(
    first: Mapping[str, Decision], second: Mapping[str, Decision]
) -> tuple[dict[str, Decision], list[Violation]]:
    """Union of two processes' decisions; a run_id decided differently is a violation."""
    merged = dict(first)
    conflicts: list[Violation] = []
    for rid, value in second.items():
        seen = merged.setdefault(rid, value)
        if seen != value:
            conflicts.append(
                Violation(
                    Invariant.CONTINUITY,
                    f"{rid} published twice with different states: {seen} then {value}",
                    rid.rsplit(":", 1)[0],
                    rid,
                )
            )
    return merged, conflicts


def continuity_violations(
    got: Mapping[str, Decision],
    reference: Mapping[str, Decision],
    *,
    up_to_ms: int | None = None,
) -> list[Violation]:
    """§9.5 on already collected decisions (see `check_continuity`)."""
    out: list[Violation] = []
    for rid, value in sorted(got.items()):
        want = reference.get(rid)
        symbol = rid.rsplit(":", 1)[0]
        if want is None:
            out.append(
                Violation(
                    Invariant.CONTINUITY,
                    f"{rid} published but the uninterrupted run has no such run",
                    symbol,
                    rid,
                )
            )
        elif want != value:
            out.append(
                Violation(
                    Invariant.CONTINUITY,
                    f"{rid} decided {value}, uninterrupted run decided {want}",
                    symbol,
                    rid,
                )
            )
    for rid in sorted(reference):
        if rid in got:
            continue
        ts = int(rid.rsplit(":", 1)[1])
        if up_to_ms is None or ts <= up_to_ms:
            out.append(
                Violation(
                    Invariant.CONTINUITY,
                    f"{rid} of the uninterrupted run was never published",
                    rid.rsplit(":", 1)[0],
                    rid,
                )
            )
    return out


def check_halt(
    publishes: Sequence[tuple[int, Event]],
    appends: Sequence[tuple[int, bool]],
    refused_next_tick: bool | None,
) -> list[Violation]:
    """§9.6: after a failed append nothing is published but `scheduling_halted`, no tick runs.

    `appends` are (seq, acked); `refused_next_tick` says whether the runtime
    refused a tick offered after the halt (None if none was offered).
    """
    failed = next((seq for seq, ok in appends if not ok), None)
    if failed is None:
        return []
    out: list[Violation] = []
    for seq, event in publishes:
        if seq > failed and event.event_type != ev.SCHEDULING_HALTED:
            out.append(
                Violation(
                    Invariant.HALT,
                    f"{event.event_type} {event.run_id} published after a persist failure",
                    event.symbol,
                    event.run_id,
                )
            )
    if not any(seq > failed and e.event_type == ev.SCHEDULING_HALTED for seq, e in publishes):
        out.append(Violation(Invariant.HALT, "no scheduling_halted event after a persist failure"))
    later = [seq for seq, _ in appends if seq > failed]
    if later:
        out.append(
            Violation(Invariant.HALT, f"{len(later)} append(s) attempted after a persist failure")
        )
    if refused_next_tick is False:
        out.append(Violation(Invariant.HALT, "the runtime accepted a tick after halting"))
    return out


def check_engine(states: Iterable[HysteresisState]) -> list[Violation]:
    """§9.7: no candidate exactly when progress is 0, and never candidate == anchor."""
    out = []
    for state in states:
        if (state.candidate_regime is None) != (state.progress_current == 0) or (
            state.candidate_regime is not None and state.candidate_regime == state.anchor_regime
        ):
            out.append(
                Violation(
                    Invariant.ENGINE,
                    f"{run_id(state)} breaks the engine invariant: anchor {state.anchor_regime}, "
                    f"candidate {state.candidate_regime}, progress {state.progress_current}",
                    state.symbol,
                    run_id(state),
                )
            )
    return out


def check_engine_events(events: Iterable[Event]) -> list[Violation]:
    """§9.7 on what downstream saw."""
    out = []
    for event in events:
        if event.event_type not in (ev.DECISION_PUBLISHED, ev.STATE_RESTORED):
            continue
        state = event.payload["state"]
        assert isinstance(state, Mapping)
        candidate, anchor, progress = (
            state["candidate_regime"],
            state["anchor_regime"],
            state["progress_current"],
        )
        if (candidate is None) != (progress == 0) or (
            candidate is not None and candidate == anchor
        ):
            out.append(
                Violation(
                    Invariant.ENGINE,
                    f"{event.run_id} published breaking the engine invariant: anchor {anchor}, "
                    f"candidate {candidate}, progress {progress}",
                    event.symbol,
                    event.run_id,
                )
            )
    return out
