"""The §9 oracles of `harness/judge/oracles.py`, one by one, then on a real recorded run.

Each oracle gets at least one input that must pass and one input per distinct
failure mode, and the failure must be exactly the expected `Violation`:
invariant id, symbol, run_id and tick (no oracle sets `tick` today, so it is
always None), with the message checked by a fragment.
Inputs are built from the real types: `HysteresisState`, events from
`crashkit.orchestrator.events.state_event`, restored stores via `parse_state_bytes` on
crafted bytes, timelines from `crashkit.harness.judge.observe`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from crashkit.harness.judge import oracles as orc
from crashkit.harness.judge.invariants import INVARIANTS, Invariant, Violation
from crashkit.harness.judge.observe import (
    AppendRecord,
    PublishRecord,
    RecordingSink,
    Timeline,
    recording_factory,
)
from crashkit.orchestrator import events as ev
from crashkit.orchestrator.errors import HaltedError, PersistenceError
from crashkit.orchestrator.events import Event, MemorySink, state_event
from crashkit.orchestrator.runtime import HysteresisRuntime, engine_commit_clock, seeded_factory
from crashkit.orchestrator.store.jsonl import open_jsonl_store
from crashkit.orchestrator.store.memory import memory_store
from crashkit.orchestrator.store.protocol import BackendFactory, OpenedStore
from crashkit.orchestrator.store.report import parse_state_bytes, store_from_report
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import (
    HysteresisConfig,
    HysteresisState,
    Regime,
    RegimeInputSnapshot,
)
from crashkit.regime_engine.synthetic import generate
from tests.conftest import make_state

CB = Regime.CHOP_BALANCED
SU = Regime.SQUEEZE_UP
SD = Regime.SQUEEZE_DOWN
TU = Regime.TREND_BUILD_UP

A100 = make_state("A", 100, CB)
A200 = make_state("A", 200, SU, SD, 1)
A300 = make_state("A", 300, SD, None, 0, last_commit=300)
B150 = make_state("B", 150, TU)

# invariant, symbol, run_id, message fragment, tick, line (as `Violation.to_dict` gives them)
Expected = tuple[str, str | None, str | None, str, int | None, int | None]


def V(
    invariant: str, symbol: str | None, rid: str | None, fragment: str, *, line: int | None = None
) -> Expected:
    """An expected violation; its tick is the run's engine timestamp (none without a run)."""
    tick = None if rid is None else int(rid.rsplit(":", 1)[1])
    return (invariant, symbol, rid, fragment, tick, line)


def restored_from(
    data: bytes, config: HysteresisConfig | None = None
) -> dict[str, HysteresisState]:
    """The store a restart would hold after reading `data` (crafted state-file bytes)."""
    report = parse_state_bytes(data)
    assert report.outcome != "fatal", report.reason
    return dict(store_from_report(report, config or HysteresisConfig()).states)


def file_of(*states: HysteresisState) -> bytes:
    return b"".join(encode_state(s) for s in states)


def assert_violations(got: Sequence[Violation], want: Iterable[Expected]) -> None:
    """Exactly these violations, in this order: every field, the message by fragment."""
    want = list(want)
    shape = [
        (d["invariant"], d["symbol"], d["run_id"], d["tick"], d["line"])
        for d in (v.to_dict() for v in got)
    ]
    assert shape == [(w[0], w[1], w[2], w[4], w[5]) for w in want], [v.to_dict() for v in got]
    for v, w in zip(got, want, strict=True):
        assert w[3] in v.message, (v.message, w[3])


def decision(state: HysteresisState) -> Event:
    return state_event(ev.DECISION_PUBLISHED, state)


def restored_event(state: HysteresisState) -> Event:
    return state_event(ev.STATE_RESTORED, state)


def halted_event(ts: int | None = None) -> Event:
    return Event(ev.SCHEDULING_HALTED, None, ts, {"reason": "persist_failed"})


# -- the small helpers ------------------------------------------------------------------------


def test_invariant_ids_match_the_contract_section_9_table() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text("utf-8")
    section = doc.split("## 9. Invariants", 1)[1].split("\n## ", 1)[0]
    ids = tuple(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))
    assert ids == INVARIANTS
    assert len(set(INVARIANTS)) == len(INVARIANTS)


def test_violation_to_dict_has_every_field_and_takes_the_tick_from_the_run_id() -> None:
    v = Violation(Invariant.HALT, "m", "A", "A:1", 7, 3)
    assert v.to_dict() == {
        "invariant": Invariant.HALT,
        "message": "m",
        "symbol": "A",
        "run_id": "A:1",
        "tick": 7,
        "line": 3,
    }
    derived = Violation(Invariant.DURABILITY, "m", "X:Y", "X:Y:200").to_dict()
    assert (derived["tick"], derived["line"]) == (200, None)
    bare = Violation(Invariant.CRASH_NOT_FATAL, "m").to_dict()
    assert (bare["symbol"], bare["run_id"], bare["tick"], bare["line"]) == (None, None, None, None)


def test_run_id_and_decisions_of_state_and_payload_agree() -> None:
    assert orc.run_id(A200) == "A:200"
    assert orc.run_id(make_state("X:Y", 5)) == "X:Y:5"
    assert orc.decision_of_state(A200) == ("A", 200, "SQUEEZE_UP", "SQUEEZE_DOWN", 1)
    assert orc.decision_of_state(A100) == ("A", 100, "CHOP_BALANCED", None, 0)
    for state in (A100, A200, A300, B150):
        assert orc.decision_of_payload(decision(state).payload) == orc.decision_of_state(state)
    # last_commit_timestamp_ms is not part of a decision (contract §9.5)
    assert orc.decision_of_state(A300) == orc.decision_of_state(
        dataclasses.replace(A300, last_commit_timestamp_ms=1)
    )


def test_latest_per_symbol_highest_timestamp_then_later_wins_ties() -> None:
    tie_first = make_state("A", 200, SU, SD, 1, last_commit=1)
    tie_second = make_state("A", 200, SU, SD, 1, last_commit=2)
    best = orc.latest_per_symbol([A300, tie_first, B150, tie_second, A100])
    assert best == {"A": A300, "B": B150}
    assert orc.latest_per_symbol([tie_first, A100, tie_second]) == {"A": tie_second}
    assert orc.latest_per_symbol([]) == {}


def test_decisions_of_keeps_state_events_only_and_flags_conflicting_repeats() -> None:
    events = [
        restored_event(A100),
        Event(ev.DUPLICATE_SKIPPED, "A", 100, {"reason": "same run delivered again"}),
        decision(A200),
        Event(ev.SYMBOL_HALTED, "B", 10, {"reason": "non_monotonic_timestamp: x"}),
        halted_event(300),
        decision(A200),  # same run, same decision: no conflict
    ]
    got, conflicts = orc.decisions_of(events)
    assert got == {"A:100": orc.decision_of_state(A100), "A:200": orc.decision_of_state(A200)}
    assert conflicts == []

    other = make_state("A", 200, SU, TU, 2)
    got, conflicts = orc.decisions_of([decision(A200), restored_event(other)])
    assert got == {"A:200": orc.decision_of_state(A200)}  # the first one seen is kept
    assert_violations(
        conflicts, [V(Invariant.CONTINUITY, "A", "A:200", "published twice with different states")]
    )


# -- 1-durability ---------------------------------------------------------------------------


def test_durability_passes_when_every_acked_state_is_restored() -> None:
    restored = restored_from(file_of(A100, B150, A200))
    assert orc.check_durability([A100, B150, A200], restored) == []


def test_durability_passes_when_an_unacked_append_was_torn() -> None:
    restored = restored_from(file_of(A100, B150) + encode_state(A200)[:17])
    assert orc.check_durability([A100, B150], restored, later_attempts=[A200]) == []


def test_durability_passes_when_a_later_record_supersedes_the_acked_one() -> None:
    # A200's append failed (not acked) but its bytes reached the disk: allowed (D.17)
    restored = restored_from(file_of(A100, B150, A200))
    assert orc.check_durability([A100, B150], restored, later_attempts=[A200]) == []


def test_durability_passes_for_a_same_run_rewrite_found_among_later_attempts() -> None:
    rewrite = dataclasses.replace(A200, last_commit_timestamp_ms=42)
    restored = restored_from(file_of(A200, rewrite))
    assert orc.check_durability([A200], restored, later_attempts=[rewrite]) == []


def test_durability_fails_when_an_acked_symbol_is_not_restored() -> None:
    restored = restored_from(file_of(B150))
    assert_violations(
        orc.check_durability([A100, B150], restored),
        [V(Invariant.DURABILITY, "A", "A:100", "acknowledged A:100 lost: symbol not restored")],
    )


def test_durability_fails_when_an_older_state_is_restored() -> None:
    restored = restored_from(file_of(A100, B150))  # A200's committed line is gone
    assert_violations(
        orc.check_durability([A100, B150, A200], restored),
        [V(Invariant.DURABILITY, "A", "A:200", "restored an older state at 100")],
    )


def test_durability_fails_when_the_acked_run_is_restored_with_other_fields() -> None:
    garbled = dataclasses.replace(A200, progress_current=2)
    restored = restored_from(file_of(B150, garbled))
    assert_violations(
        orc.check_durability([B150, A200], restored),
        [V(Invariant.DURABILITY, "A", "A:200", "restored with different fields")],
    )
    # a later attempt of another run does not excuse it
    assert_violations(
        orc.check_durability([B150, A200], restored, later_attempts=[A300]),
        [V(Invariant.DURABILITY, "A", "A:200", "restored with different fields")],
    )


def test_durability_reports_each_symbol_once_in_acked_order() -> None:
    assert_violations(
        orc.check_durability([A100, B150, A200], {}),
        [
            V(Invariant.DURABILITY, "A", "A:200", "symbol not restored"),
            V(Invariant.DURABILITY, "B", "B:150", "symbol not restored"),
        ],
    )


# -- 2-no-invalid-restored ------------------------------------------------------------------


def test_no_invalid_restored_passes_for_written_states() -> None:
    restored = restored_from(file_of(A100, B150, A200))
    assert orc.check_no_invalid_restored(restored, [A100, B150, A200, A300]) == []


def test_no_invalid_restored_passes_when_a_parseable_torn_tail_is_ignored() -> None:
    # the tail is a whole record except for its "\n": never restored (C4.5)
    data = file_of(A100, B150) + encode_state(A300).rstrip(b"\n")
    restored = restored_from(data)
    assert restored["A"] == dataclasses.replace(A100, progress_required=3)
    assert orc.check_no_invalid_restored(restored, [A100, B150]) == []


def test_no_invalid_restored_ignores_fields_that_are_not_persisted() -> None:
    restored = restored_from(file_of(A200), HysteresisConfig(window_updates=9))
    written = [dataclasses.replace(A200, reason_codes=("x",), debug={"k": 1})]
    assert orc.check_no_invalid_restored(restored, written) == []


def test_no_invalid_restored_fails_for_a_state_nobody_wrote() -> None:
    restored = restored_from(file_of(A100, B150))
    assert_violations(
        orc.check_no_invalid_restored(restored, [A100]),
        [V(Invariant.NO_INVALID_RESTORED, "B", "B:150", "restored B:150 was never written whole")],
    )


def test_no_invalid_restored_fails_for_a_garbled_but_valid_record() -> None:
    garbled = dataclasses.replace(A200, last_commit_timestamp_ms=9)
    restored = restored_from(file_of(garbled, A100))
    assert_violations(
        orc.check_no_invalid_restored(restored, [A100, A200]),
        [V(Invariant.NO_INVALID_RESTORED, "A", "A:200", "never written whole")],
    )


def test_no_invalid_restored_reports_in_symbol_order() -> None:
    restored = restored_from(file_of(B150, A100))
    assert_violations(
        orc.check_no_invalid_restored(restored, []),
        [
            V(Invariant.NO_INVALID_RESTORED, "A", "A:100", "never written whole"),
            V(Invariant.NO_INVALID_RESTORED, "B", "B:150", "never written whole"),
        ],
    )


# -- 3-publish-implies-committed ------------------------------------------------------------


def test_publish_implies_committed_passes_in_order_with_and_without_a_crash() -> None:
    acks = [(1, A100), (1, B150), (3, A200)]
    published = [(2, decision(A100)), (2, decision(B150)), (4, decision(A200))]
    assert orc.check_publish_implies_committed(published, acks, None) == []
    restored = restored_from(file_of(A100, B150, A200))
    assert orc.check_publish_implies_committed(published, acks, restored) == []
    # a later committed record of the symbol also keeps it "on disk"
    restored = restored_from(file_of(A100, B150, A200, A300))
    assert orc.check_publish_implies_committed(published, acks, restored) == []


def test_publish_implies_committed_ignores_events_that_carry_no_decision() -> None:
    published = [
        (1, restored_event(A100)),
        (2, Event(ev.DUPLICATE_SKIPPED, "A", 100, {"reason": "same run delivered again"})),
        (3, Event(ev.SYMBOL_HALTED, "B", 10, {"reason": "non_monotonic_timestamp: x"})),
        (4, halted_event()),
    ]
    assert orc.check_publish_implies_committed(published, [], {}) == []


def test_publish_implies_committed_fails_for_a_never_committed_decision() -> None:
    assert_violations(
        orc.check_publish_implies_committed([(2, decision(A200))], [(1, A100)], None),
        [
            V(
                Invariant.PUBLISH_IMPLIES_COMMITTED,
                "A",
                "A:200",
                "A:200 published before its record was committed (never committed)",
            )
        ],
    )


def test_publish_implies_committed_fails_when_published_before_the_ack() -> None:
    got = orc.check_publish_implies_committed([(2, decision(A200))], [(3, A200)], None)
    assert_violations(
        got,
        [V(Invariant.PUBLISH_IMPLIES_COMMITTED, "A", "A:200", "published before its record")],
    )
    assert "never committed" not in got[0].message


def test_publish_implies_committed_fails_when_the_published_state_differs_from_the_committed() -> (
    None
):
    # same run_id, but downstream got another state than the one made durable
    published_state = dataclasses.replace(A200, last_commit_timestamp_ms=999)
    assert_violations(
        orc.check_publish_implies_committed([(2, decision(published_state))], [(1, A200)], None),
        [V(Invariant.PUBLISH_IMPLIES_COMMITTED, "A", "A:200", "differs from its committed record")],
    )


def test_publish_implies_committed_fails_when_a_published_decision_is_lost_by_a_crash() -> None:
    published = [(2, decision(A100)), (2, decision(B150)), (4, decision(A200))]
    acks = [(1, A100), (1, B150), (3, A200)]
    expected_a = V(Invariant.PUBLISH_IMPLIES_COMMITTED, "A", "A:200", "not on disk after the crash")
    # older record restored
    got = orc.check_publish_implies_committed(published, acks, restored_from(file_of(A100, B150)))
    assert_violations(got, [expected_a])
    # symbol missing altogether: both of its published decisions are reported
    got = orc.check_publish_implies_committed(published, acks, restored_from(file_of(B150)))
    assert_violations(
        got,
        [
            V(Invariant.PUBLISH_IMPLIES_COMMITTED, "A", "A:100", "not on disk after the crash"),
            expected_a,
        ],
    )


# -- 4-crash-damage-not-fatal ---------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        b"",
        encode_state(A100)[:20],
        file_of(A100, B150) + encode_state(A200)[:-1],
        file_of(A100) + b"   ",
    ],
    ids=["empty", "torn-only", "torn-after-records", "whitespace-tail"],
)
def test_crash_not_fatal_passes_when_a_crash_image_restores(image: bytes) -> None:
    report = parse_state_bytes(image)
    assert orc.check_crash_not_fatal(report.reason if report.outcome == "fatal" else None) == []


def test_crash_not_fatal_fails_on_any_refusal() -> None:
    report = parse_state_bytes(b"{not json\n")
    assert report.outcome == "fatal" and report.reason is not None
    assert_violations(
        orc.check_crash_not_fatal(report.reason),
        [V(Invariant.CRASH_NOT_FATAL, None, None, f"refused to start: {report.reason}")],
    )


# -- 5-continuity ---------------------------------------------------------------------------


REFERENCE, _ = orc.decisions_of([decision(A100), decision(B150), decision(A200)])


def test_continuity_passes_for_the_same_decisions() -> None:
    assert orc.check_continuity([decision(A100), decision(B150), decision(A200)], REFERENCE) == []


def test_continuity_passes_across_a_restart_that_republishes_restored_states() -> None:
    # before the crash A100 and B150 went out; after it, both are restored (C6.3),
    # with another wall-clock commit time that continuity ignores, then A200 is decided
    events = [
        decision(A100),
        decision(B150),
        restored_event(dataclasses.replace(A100, last_commit_timestamp_ms=7)),
        restored_event(B150),
        decision(A200),
    ]
    assert orc.check_continuity(events, REFERENCE) == []


def test_continuity_fails_for_a_different_decision() -> None:
    other = make_state("A", 200, SU, TU, 1)
    assert_violations(
        orc.check_continuity([decision(A100), decision(B150), decision(other)], REFERENCE),
        [V(Invariant.CONTINUITY, "A", "A:200", "uninterrupted run decided")],
    )


def test_continuity_fails_for_a_run_the_reference_never_had() -> None:
    events = [decision(A100), decision(B150), decision(A200), decision(A300)]
    assert_violations(
        orc.check_continuity(events, REFERENCE),
        [V(Invariant.CONTINUITY, "A", "A:300", "the uninterrupted run has no such run")],
    )


def test_continuity_fails_for_a_missing_run_unless_past_the_stop_point() -> None:
    events = [decision(A100), decision(B150)]
    missing = V(Invariant.CONTINUITY, "A", "A:200", "A:200 of the uninterrupted run was never")
    assert_violations(orc.check_continuity(events, REFERENCE), [missing])
    assert_violations(orc.check_continuity(events, REFERENCE, up_to_ms=200), [missing])
    assert orc.check_continuity(events, REFERENCE, up_to_ms=199) == []


def test_continuity_fails_for_a_run_published_twice_with_different_states() -> None:
    other = make_state("A", 200, SU, TU, 1)
    events = [decision(A100), decision(B150), decision(A200), restored_event(other)]
    assert_violations(
        orc.check_continuity(events, REFERENCE),
        [V(Invariant.CONTINUITY, "A", "A:200", "published twice with different states")],
    )


def test_continuity_takes_the_symbol_from_the_last_colon_of_the_run_id() -> None:
    odd = make_state("X:Y", 5)
    assert_violations(
        orc.check_continuity([decision(odd)], {}),
        [V(Invariant.CONTINUITY, "X:Y", "X:Y:5", "no such run")],
    )
    assert_violations(
        orc.check_continuity([], {"X:Y:5": orc.decision_of_state(odd)}),
        [V(Invariant.CONTINUITY, "X:Y", "X:Y:5", "never published")],
    )


# -- 6-halt ---------------------------------------------------------------------------------


def test_halt_passes_without_any_failure() -> None:
    publishes = [(2, decision(A100)), (4, decision(A200))]
    assert orc.check_halt(publishes, [(1, True), (3, True)], None) == []


@pytest.mark.parametrize("refused", [True, None])
def test_halt_passes_when_only_scheduling_halted_follows_the_failure(refused: bool | None) -> None:
    publishes = [(2, decision(A100)), (4, halted_event(200))]
    assert orc.check_halt(publishes, [(1, True), (3, False)], refused) == []


def test_halt_fails_for_a_decision_published_after_the_failure() -> None:
    publishes = [(2, decision(A100)), (4, decision(A200)), (5, halted_event(200))]
    assert_violations(
        orc.check_halt(publishes, [(1, True), (3, False)], True),
        [
            V(
                Invariant.HALT,
                "A",
                "A:200",
                "hysteresis_decision_published A:200 published after a persist failure",
            )
        ],
    )


@pytest.mark.parametrize(
    "event",
    [
        restored_event(A200),
        Event(ev.DUPLICATE_SKIPPED, "A", 200, {"reason": "same run delivered again"}),
        Event(ev.SYMBOL_HALTED, "A", 200, {"reason": "non_monotonic_timestamp: x"}),
    ],
    ids=lambda e: e.event_type,
)
def test_halt_fails_for_any_other_event_after_the_failure(event: Event) -> None:
    """D.29: the failed tick's duplicate and symbol_halted events are dropped too."""
    publishes = [(2, decision(A100)), (4, event), (5, halted_event(200))]
    assert_violations(
        orc.check_halt(publishes, [(1, True), (3, False)], True),
        [
            V(
                Invariant.HALT,
                "A",
                "A:200",
                f"{event.event_type} A:200 published after a persist failure",
            )
        ],
    )


def test_halt_fails_without_scheduling_halted_after_the_failure() -> None:
    expected = [V(Invariant.HALT, None, None, "no scheduling_halted event after a persist failure")]
    assert_violations(
        orc.check_halt([(2, decision(A100))], [(1, True), (3, False)], True), expected
    )
    # a scheduling_halted that precedes the failure does not count
    assert_violations(orc.check_halt([(2, halted_event())], [(3, False)], True), expected)


def test_halt_fails_for_an_append_after_the_failure() -> None:
    assert_violations(
        orc.check_halt([(2, halted_event())], [(1, False), (3, True), (4, False)], True),
        [V(Invariant.HALT, None, None, "2 append(s) attempted after a persist failure")],
    )


def test_halt_fails_when_the_runtime_accepts_a_tick_after_halting() -> None:
    assert_violations(
        orc.check_halt([(2, halted_event())], [(1, False)], False),
        [V(Invariant.HALT, None, None, "the runtime accepted a tick after halting")],
    )


# -- 7-engine-invariant ---------------------------------------------------------------------


ENGINE_OK = [
    make_state("A", 1, CB),
    make_state("A", 2, CB, SU, 1),
    make_state("A", 3, CB, SU, 5, required=3),  # above the window (D.13): still fine
    make_state("B", 4, TU, None, 0, last_commit=4),
]
ENGINE_BAD = {
    "no-candidate-but-progress": make_state("A", 10, CB, None, 1),
    "candidate-but-no-progress": make_state("A", 10, CB, SU, 0),
    "candidate-equals-anchor": make_state("A", 10, CB, CB, 1),
}


def test_engine_passes_for_consistent_states() -> None:
    assert orc.check_engine(ENGINE_OK) == []


@pytest.mark.parametrize("bad", list(ENGINE_BAD.values()), ids=list(ENGINE_BAD))
def test_engine_fails_for_each_broken_shape(bad: HysteresisState) -> None:
    assert_violations(
        orc.check_engine([ENGINE_OK[0], bad, ENGINE_OK[1]]),
        [V(Invariant.ENGINE, "A", "A:10", "A:10 breaks the engine invariant")],
    )


def test_engine_events_pass_for_consistent_states_and_ignore_other_events() -> None:
    events = [restored_event(ENGINE_OK[0]), *map(decision, ENGINE_OK[1:])]
    events += [
        Event(ev.SYMBOL_HALTED, "A", 9, {"reason": "x"}),
        Event(ev.DUPLICATE_SKIPPED, "A", 9, {"reason": "same run delivered again"}),
        halted_event(9),
        Event(ev.ENGINE_RUN_COMPLETED, "A", 9, {"regime": "CHOP_BALANCED", "confidence": 1.0}),
    ]
    assert orc.check_engine_events(events) == []


@pytest.mark.parametrize("kind", [ev.DECISION_PUBLISHED, ev.STATE_RESTORED])
@pytest.mark.parametrize("bad", list(ENGINE_BAD.values()), ids=list(ENGINE_BAD))
def test_engine_events_fail_for_each_broken_shape(bad: HysteresisState, kind: str) -> None:
    assert_violations(
        orc.check_engine_events([decision(ENGINE_OK[1]), state_event(kind, bad)]),
        [V(Invariant.ENGINE, "A", "A:10", "A:10 published breaking the engine invariant")],
    )


# -- end to end: a real recorded run, then corrupted observations ---------------------------


CONFIG = HysteresisConfig()
SNAPSHOTS: list[RegimeInputSnapshot] = list(generate(2, 10, seed=3))
TICK_TS = sorted({s.engine_timestamp_ms for s in SNAPSHOTS})


def reference_decisions() -> dict[str, orc.Decision]:
    sink = MemorySink()
    runtime = HysteresisRuntime(
        config=CONFIG,
        state_path="<reference>",
        sink=sink,
        backend_factory=seeded_factory(memory_store()),
        clock=engine_commit_clock,
    )
    runtime.start()
    runtime.run(SNAPSHOTS)
    decisions, conflicts = orc.decisions_of(sink.events)
    assert conflicts == []
    return decisions


REFERENCE_RUN = reference_decisions()


def recorded_runtime(
    path: Path, timeline: Timeline, factory: BackendFactory = open_jsonl_store
) -> HysteresisRuntime:
    return HysteresisRuntime(
        config=CONFIG,
        state_path=str(path),
        sink=RecordingSink(timeline),
        backend_factory=recording_factory(factory, timeline),
        clock=engine_commit_clock,
    )


def record_run(path: Path) -> Timeline:
    timeline = Timeline()
    runtime = recorded_runtime(path, timeline)
    runtime.start()
    runtime.run(SNAPSHOTS)
    runtime.close()
    return timeline


def publishes_of(timeline: Timeline) -> list[tuple[int, Event]]:
    return [(p.seq, p.event) for p in timeline.publishes]


def acks_of(timeline: Timeline) -> list[tuple[int, HysteresisState]]:
    return [(a.seq, s) for a in timeline.appends if a.acked for s in a.states]


def all_oracles(
    timeline: Timeline,
    restored: dict[str, HysteresisState],
    *,
    refusal: str | None = None,
    refused_next_tick: bool | None = None,
    earlier: Timeline | None = None,
    earlier_events: Sequence[Event] = (),
    up_to_ms: int | None = None,
) -> list[Violation]:
    """Every oracle on one process's observations and the store restored after it.

    `earlier` is the process before a crash (its acked and attempted states count
    as written), `earlier_events` what it published before the crash.
    """
    events = [*earlier_events, *(p.event for p in timeline.publishes)]
    acked = [*(earlier.acked_before() if earlier else ()), *timeline.acked_before()]
    written = [*(earlier.attempted() if earlier else ()), *timeline.attempted()]
    return [
        *orc.check_durability(acked, restored),
        *orc.check_no_invalid_restored(restored, written),
        *orc.check_publish_implies_committed(publishes_of(timeline), acks_of(timeline), restored),
        *orc.check_crash_not_fatal(refusal),
        *orc.check_continuity(events, REFERENCE_RUN, up_to_ms=up_to_ms),
        *orc.check_halt(
            publishes_of(timeline),
            [(a.seq, a.acked) for a in timeline.appends],
            refused_next_tick,
        ),
        *orc.check_engine(restored.values()),
        *orc.check_engine(timeline.attempted()),
        *orc.check_engine_events(events),
    ]


@pytest.fixture(name="run")
def fixture_run(tmp_path: Path) -> tuple[Timeline, Path]:
    path = tmp_path / "state" / "hysteresis.jsonl"
    return record_run(path), path


def test_recorded_run_passes_every_oracle(run: tuple[Timeline, Path]) -> None:
    timeline, path = run
    # the workload is not trivial: 10 ticks of 2 symbols, candidates and a switch
    assert [len(a.states) for a in timeline.appends] == [2] * 10
    assert all(a.acked for a in timeline.appends)
    assert len(timeline.publishes) == 20
    attempted = timeline.attempted()
    assert any(s.candidate_regime is not None for s in attempted)
    assert any(s.last_commit_timestamp_ms is not None for s in attempted)
    data = path.read_bytes()
    assert data == b"".join(encode_state(s) for s in attempted)
    restored = restored_from(data)
    assert all_oracles(timeline, restored) == []


@pytest.mark.parametrize("crash_after", [0, 1, 4, 9, 10])
def test_crash_and_restart_on_the_recorded_run_passes_every_oracle(
    run: tuple[Timeline, Path], crash_after: int
) -> None:
    """Cut the file after `crash_after` acked appends plus a torn piece of the next one."""
    timeline, path = run
    appends = timeline.appends
    kept = b"".join(encode_state(s) for a in appends[:crash_after] for s in a.states)
    torn = encode_state(appends[crash_after].states[0])[:31] if crash_after < 10 else b""
    path.write_bytes(kept + torn)
    cut_seq = appends[crash_after].seq if crash_after < 10 else timeline.seq + 1
    before = [p.event for p in timeline.publishes if p.seq < cut_seq]
    acked_then = [s for a in appends[:crash_after] for s in a.states]

    report = parse_state_bytes(path.read_bytes())
    assert orc.check_crash_not_fatal(report.reason) == []
    restarted = Timeline()
    runtime = recorded_runtime(path, restarted)
    runtime.start()
    restored = dict(runtime.states)
    runtime.run(SNAPSHOTS)
    runtime.close()

    assert orc.check_durability(acked_then, restored, timeline.attempted()[len(acked_then) :]) == []
    assert orc.check_no_invalid_restored(restored, timeline.attempted()) == []
    assert (
        orc.check_publish_implies_committed(
            [(p.seq, p.event) for p in timeline.publishes if p.seq < cut_seq],
            acks_of(timeline),
            restored,
        )
        == []
    )
    final = restored_from(path.read_bytes())
    assert all_oracles(restarted, final, earlier=timeline, earlier_events=before) == []
    assert len(restarted.publishes) == len(restored) + 2 * (10 - crash_after)


def tick_ids(tick: int) -> list[str]:
    return [f"SYM000:{TICK_TS[tick]}", f"SYM001:{TICK_TS[tick]}"]


def test_dropped_append_observation_breaks_publish_implies_committed(
    run: tuple[Timeline, Path],
) -> None:
    timeline, _ = run
    del timeline.appends[3]
    got = orc.check_publish_implies_committed(publishes_of(timeline), acks_of(timeline), None)
    assert_violations(
        got,
        [
            V(Invariant.PUBLISH_IMPLIES_COMMITTED, sym, rid, "(never committed)")
            for sym, rid in zip(("SYM000", "SYM001"), tick_ids(3), strict=True)
        ],
    )


def test_publish_before_commit_breaks_publish_implies_committed(
    run: tuple[Timeline, Path],
) -> None:
    timeline, _ = run
    late = timeline.appends[5]
    # the tick-5 append now returns only after everything was published
    timeline.appends[5] = dataclasses.replace(late, seq=timeline.next_seq())
    got = orc.check_publish_implies_committed(publishes_of(timeline), acks_of(timeline), None)
    assert_violations(
        got,
        [
            V(Invariant.PUBLISH_IMPLIES_COMMITTED, sym, rid, "published before its record was")
            for sym, rid in zip(("SYM000", "SYM001"), tick_ids(5), strict=True)
        ],
    )
    assert all("never committed" not in v.message for v in got)


def test_lost_committed_line_breaks_durability_and_publish_implies_committed(
    run: tuple[Timeline, Path],
) -> None:
    timeline, path = run
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[-2]  # SYM000's record of the last tick: acked and published, then lost
    restored = restored_from(b"".join(lines))
    last = TICK_TS[-1]
    rid = f"SYM000:{last}"
    got = all_oracles(timeline, restored)
    assert_violations(
        got,
        [
            V(Invariant.DURABILITY, "SYM000", rid, f"restored an older state at {TICK_TS[-2]}"),
            V(Invariant.PUBLISH_IMPLIES_COMMITTED, "SYM000", rid, "not on disk after the crash"),
        ],
    )


def test_garbled_committed_line_breaks_durability_and_no_invalid_restored(
    run: tuple[Timeline, Path],
) -> None:
    timeline, path = run
    state = timeline.appends[-1].states[1]  # SYM001, last tick, no candidate
    assert state.candidate_regime is None
    garbled = dataclasses.replace(state, anchor_regime=Regime.LIQUIDATION_DOWN)
    data = path.read_bytes().replace(encode_state(state), encode_state(garbled))
    restored = restored_from(data)
    rid = orc.run_id(state)
    assert_violations(
        all_oracles(timeline, restored),
        [
            V(Invariant.DURABILITY, "SYM001", rid, "restored with different fields"),
            V(Invariant.NO_INVALID_RESTORED, "SYM001", rid, "never written whole"),
        ],
    )


def test_tampered_published_decision_breaks_continuity_engine_and_commit(
    run: tuple[Timeline, Path],
) -> None:
    timeline, path = run
    index = 6  # SYM000 at tick 3: anchor CHOP_STOPHUNT, no candidate
    record = timeline.publishes[index]
    payload_state = dict(record.event.payload["state"])  # type: ignore[call-overload]
    assert payload_state["candidate_regime"] is None
    payload_state["candidate_regime"] = payload_state["anchor_regime"]  # breaks §9.7 twice
    event = dataclasses.replace(record.event, payload={"state": payload_state})
    timeline.publishes[index] = PublishRecord(record.seq, event, record.position)
    rid = event.run_id
    assert rid == f"SYM000:{TICK_TS[3]}"
    assert_violations(
        all_oracles(timeline, restored_from(path.read_bytes())),
        [
            V(Invariant.PUBLISH_IMPLIES_COMMITTED, "SYM000", rid, "differs from its committed"),
            V(Invariant.CONTINUITY, "SYM000", rid, "uninterrupted run decided"),
            V(Invariant.ENGINE, "SYM000", rid, "published breaking the engine invariant"),
        ],
    )


def test_failed_append_observation_breaks_halt(run: tuple[Timeline, Path]) -> None:
    """Pretend the last tick's append failed while the runtime went on publishing."""
    timeline, _ = run
    last = timeline.appends[-1]
    timeline.appends[-1] = dataclasses.replace(last, acked=False, error="EIO")
    got = orc.check_halt(publishes_of(timeline), [(a.seq, a.acked) for a in timeline.appends], None)
    assert_violations(
        got,
        [
            V(Invariant.HALT, sym, rid, "published after a persist failure")
            for sym, rid in zip(("SYM000", "SYM001"), tick_ids(9), strict=True)
        ]
        + [V(Invariant.HALT, None, None, "no scheduling_halted event")],
    )


class FailingBackend:
    """Forwards to the real backend until append number `fail_at` (1-based), then fails for good."""

    def __init__(self, inner: OpenedStore, fail_at: int) -> None:
        self.inner = inner.backend
        self.calls = 0
        self.fail_at = fail_at
        self._poisoned = False

    @property
    def poisoned(self) -> bool:
        return self._poisoned

    def append(self, states: Sequence[HysteresisState]) -> None:
        self.calls += 1
        if self._poisoned or self.calls >= self.fail_at:
            self._poisoned = True
            raise PersistenceError("injected EIO", 5)
        self.inner.append(states)

    def close(self) -> None:
        self.inner.close()


def test_real_persist_failure_passes_halt_and_a_restart_keeps_every_ack(tmp_path: Path) -> None:
    path = tmp_path / "hysteresis.jsonl"

    def failing_factory(path: str, config: HysteresisConfig) -> OpenedStore:
        opened = open_jsonl_store(path, config)
        return OpenedStore(FailingBackend(opened, fail_at=4), opened.store, opened.report)

    timeline = Timeline()
    runtime = recorded_runtime(path, timeline, failing_factory)
    runtime.start()
    stats = runtime.run(SNAPSHOTS)
    assert stats.halted and stats.ticks == 4
    with pytest.raises(HaltedError):
        runtime.tick(SNAPSHOTS[-2:])
    runtime.close()
    assert [a.acked for a in timeline.appends] == [True, True, True, False]
    assert timeline.publishes[-1].event.event_type == ev.SCHEDULING_HALTED

    restored = restored_from(path.read_bytes())
    # the halted process decided ticks 0-2 only: continuity is judged up to there
    assert all_oracles(timeline, restored, refused_next_tick=True, up_to_ms=TICK_TS[2]) == []
    missing = orc.check_continuity([p.event for p in timeline.publishes], REFERENCE_RUN)
    assert len(missing) == 2 * 7 and all("never published" in v.message for v in missing)
    # corrupting what the halt looked like makes 6-halt fire
    assert_violations(
        orc.check_halt(publishes_of(timeline), [(a.seq, a.acked) for a in timeline.appends], False),
        [V(Invariant.HALT, None, None, "accepted a tick after halting")],
    )

    # restart (C5.8): every acknowledged state comes back, the run completes
    restarted = Timeline()
    again = recorded_runtime(path, restarted)
    again.start()
    restored = dict(again.states)
    assert orc.check_durability(timeline.acked_before(), restored) == []
    again.run(SNAPSHOTS)
    again.close()
    earlier = [p.event for p in timeline.publishes]
    assert all_oracles(restarted, restored_from(path.read_bytes()), earlier_events=earlier) == []


def test_observation_records_seq_order_and_failures() -> None:
    """The Timeline helpers the explorer uses, on hand-made records."""
    timeline = Timeline()
    timeline.appends += [
        AppendRecord(1, (A100,), True, None, 3),
        AppendRecord(3, (A200,), True, None, 6),
        AppendRecord(5, (A300,), False, "EIO", 8),
    ]
    timeline.publishes += [
        PublishRecord(2, decision(A100), 3),
        PublishRecord(4, decision(A200), 6),
    ]
    assert timeline.acked_before() == [A100, A200]
    assert timeline.acked_before(5) == [A100]
    assert timeline.acked_before(6) == [A100, A200]
    assert timeline.attempted() == [A100, A200, A300]
    assert [p.seq for p in timeline.published_before(5)] == [2]
    assert timeline.first_failure() == timeline.appends[2]
