"""The one judge: how every driver turns what it observed into violations.

The oracles (`oracles.py`) check one invariant each. A driver (the explorer, the
scenario runner, both state machines, the kit) observes three kinds of moment, and
this module composes the oracles for each, with every message built here:

- a **refused start**: `judge_refusal` (was refusing allowed?);
- a **restore** that started: `judge_restored` (is what came back what must, and may,
  be on disk?), against a `Ledger` of what was acknowledged, attempted, written and
  published before it;
- a **process** that ran: `judge_process` (publish after commit, the halt rule, the
  engine invariant downstream), and over processes `judge_continuity`.

What the contract's reading of the disk says (`expected`, a `ModelRestore`) is known
only for backends that store contract-v1 JSON Lines (or for an empty disk); for any
other backend the restore-table checks are skipped and the rest still hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from crashkit.faults import DiskImage, Op, OpKind
from crashkit.harness.judge import oracles as orc
from crashkit.harness.judge.invariants import Invariant, Violation
from crashkit.harness.judge.model import ModelRestore, model_restore
from crashkit.harness.judge.paths import STATE_DIR, STATE_PATH
from crashkit.harness.judge.runtime_model import Skip, comparable, model_run
from crashkit.orchestrator.events import Event, state_payload
from crashkit.orchestrator.store.protocol import Backend
from crashkit.regime_engine.contracts import (
    PERSISTED_FIELDS,
    HysteresisConfig,
    HysteresisState,
    RegimeInputSnapshot,
)

Fields = tuple[object, ...]

#: The start of a refusal reason that is really a crash: the factory raised something
#: other than StartupRefused (a backend must refuse cleanly, not crash).
CRASHED = "unhandled exception instead of a clean refusal: "


def crash_reason(exc: BaseException) -> str:
    """The refusal reason recorded for an exception that is not a clean refusal."""
    return f"{CRASHED}{type(exc).__name__}: {exc}"


def is_crash(reason: str) -> bool:
    return reason.startswith(CRASHED)


#: The invariant a startup crash (and any other breach of the protocol) is reported under.
STARTUP_CRASH = Invariant.PROTOCOL


# -- what must be on disk ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ledger:
    """What was known before a restore, precomputed for cheap repeated judging.

    `latest_acked`: each symbol's latest acknowledged (or seeded) state; `later`: the
    persisted fields of states attempted after it (acknowledged or not), which may
    legitimately supersede it if they reached the disk; `written`: the persisted fields
    of every state ever written whole; `published`: each symbol's latest published
    decision (timestamp, run_id), which must still be on disk.
    """

    latest_acked: Mapping[str, HysteresisState] = field(default_factory=dict)
    later: frozenset[Fields] = frozenset()
    written: frozenset[Fields] = frozenset()
    published: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        acked: Iterable[HysteresisState],
        *,
        later: Iterable[HysteresisState] = (),
        written: Iterable[HysteresisState] = (),
        published: Iterable[Event] = (),
    ) -> Ledger:
        """`acked` in acknowledgement order (seeded states first)."""
        return cls(
            orc.latest_per_symbol(acked),
            frozenset(s.persisted_fields() for s in later),
            frozenset(s.persisted_fields() for s in written),
            orc.latest_published((0, e) for e in published),
        )


# -- messages ------------------------------------------------------------------------------


def _fields(state: HysteresisState | None) -> dict[str, object] | None:
    if state is None:
        return None
    payload = state_payload(state)
    return {key: payload[key] for key in PERSISTED_FIELDS}


def _reading(expected: ModelRestore) -> str:
    """The contract's reading of a disk, for a message."""
    if expected.outcome == "fatal":
        lines = list(expected.invalid_lines)
        return f"fatal: invalid line(s) {lines} and no valid record" if lines else "fatal"
    return f"{expected.outcome} with {len(expected.records)} valid record(s)"


# -- what the disk should restore to -------------------------------------------------------


def expected_reading(
    backend: Backend,
    config: HysteresisConfig,
    *,
    state_bytes: bytes | None,
    folder_empty: bool,
) -> ModelRestore | None:
    """The contract's reading of the disk a restore is about to read, when the harness
    can tell: for a backend that stores contract-v1 lines, the state file's bytes (None:
    no file); for any backend, an empty (or missing) state folder reads as bootstrap.
    None otherwise: a backend's own format is its own business, and every other
    invariant still holds."""
    if backend.capabilities.line_format:
        return model_restore(state_bytes, config)
    if folder_empty:
        return model_restore(None, config)
    return None


def image_reading(
    backend: Backend, image: DiskImage, config: HysteresisConfig
) -> ModelRestore | None:
    """`expected_reading` of a whole disk image."""
    prefix = STATE_DIR + "/"
    return expected_reading(
        backend,
        config,
        state_bytes=image.get(STATE_PATH),
        folder_empty=not any(path.startswith(prefix) for path in image.files),
    )


# -- a refused start -------------------------------------------------------------------------


def judge_refusal(
    reason: str,
    *,
    expected: ModelRestore | None,
    crashed: bool,
    injected: bool = False,
) -> list[Violation]:
    """A start that refused (or crashed). Allowed when an injected fault caused it or the
    contract's reading is fatal; after a power cut a refusal is crash damage taken as
    fatal (4); otherwise it misreads the restore table (R4)."""
    if is_crash(reason):
        return [
            Violation(
                STARTUP_CRASH,
                f"startup crashed: {reason.removeprefix(CRASHED)} (a backend that cannot "
                "start must raise orchestrator.errors.StartupRefused, not crash)",
            )
        ]
    if injected or (expected is not None and expected.outcome == "fatal"):
        return []
    if crashed:
        return orc.check_crash_not_fatal(reason)
    if expected is None:
        return []
    return [
        Violation(
            Invariant.RESTORE_TABLE,
            f"restore should be {_reading(expected)}, backend refused: {reason}",
        )
    ]


# -- a restore -------------------------------------------------------------------------------


def judge_selection(
    restored: Mapping[str, HysteresisState], expected: ModelRestore
) -> list[Violation]:
    """R4: a start happened exactly when the contract's reading allows one, and restored
    exactly its selection (per symbol the highest timestamp, ties to the later line)."""
    if expected.outcome == "fatal":
        return [
            Violation(
                Invariant.RESTORE_TABLE,
                f"restore should be {_reading(expected)}, backend started",
            )
        ]
    out = []
    for symbol in sorted(set(restored) | set(expected.states)):
        got, want = _fields(restored.get(symbol)), _fields(expected.states.get(symbol))
        if got != want:
            out.append(
                Violation(
                    Invariant.RESTORE_TABLE,
                    f"restored {got} but the contract selects {want}",
                    symbol,
                )
            )
    return out


def judge_restored(
    restored: Mapping[str, HysteresisState],
    ledger: Ledger,
    *,
    expected: ModelRestore | None = None,
) -> list[Violation]:
    """What a restore returned: the contract's selection when it is known (R4), nothing
    acknowledged lost (1), nothing restored that was never written whole (2), every
    published decision still there (3), the engine invariant (7). In that order."""
    out = [] if expected is None else judge_selection(restored, expected)
    out += orc.durability_violations(ledger.latest_acked, restored, ledger.later)
    out += orc.invalid_restored_violations(restored, ledger.written)
    out += orc.check_published_survived(ledger.published, restored)
    out += orc.check_engine(restored.values())
    return out


# -- a process -------------------------------------------------------------------------------


def judge_process(
    publishes: Sequence[tuple[int, Event]],
    *,
    acks: Sequence[tuple[int, HysteresisState]] = (),
    outcomes: Sequence[tuple[int, bool]] = (),
    refused_next: bool | None = None,
    refused: bool = False,
) -> list[Violation]:
    """One process's timeline: nothing published before its record was acknowledged (3),
    the halt rule after a failed append (6), the engine invariant downstream (7), and
    nothing at all published by a process that refused to start (6).

    `publishes` are (seq, event); `acks` (seq, state) of acknowledged appends; `outcomes`
    (seq, acknowledged) of every append; `refused_next` whether a tick offered after a
    halt was refused (None: none was offered)."""
    out = orc.check_publish_implies_committed(publishes, acks, None)
    out += orc.check_halt(publishes, outcomes, refused_next)
    out += orc.check_engine_events(e for _, e in publishes)
    if refused and publishes:
        out.append(Violation(Invariant.HALT, "events published by a process that refused to start"))
    return out


def judge_append(*, acked: bool, failed_before: bool, poisoned: bool) -> list[Violation]:
    """One store-level append (contract C5.6): a writer that failed once refuses every
    later append, and one whose append failed says it is poisoned (6)."""
    out = []
    if acked and failed_before:
        out.append(Violation(Invariant.HALT, "a poisoned writer acknowledged an append"))
    if not acked and not poisoned:
        out.append(Violation(Invariant.HALT, "the writer is not poisoned after a failed append"))
    return out


def judge_close(errors: Iterable[str]) -> list[Violation]:
    """`close()` must release the writer and return: what it raised is a finding (P)."""
    return [Violation(Invariant.PROTOCOL, f"close() raised {error}") for error in errors]


def judge_continuity(
    events: Iterable[Event],
    reference: Mapping[str, orc.Decision],
    *,
    up_to_ms: int | None = None,
) -> list[Violation]:
    """Over every process: the decisions of the uninterrupted run, each run_id one state (5)."""
    return orc.check_continuity(events, reference, up_to_ms=up_to_ms)


def _said(item: Event | Skip) -> str:
    if isinstance(item, Skip):
        category = f" ({item.category})" if item.category else ""
        return f"{item.event_type}{category} {item.symbol}@{item.engine_timestamp_ms}"
    state = item.payload.get("state")
    if isinstance(state, Mapping):
        fields = ", ".join(f"{k}={state.get(k)}" for k in PERSISTED_FIELDS[2:5])
        fields += f", progress_required={state.get('progress_required')}"
        return f"{item.event_type} {item.symbol}@{item.engine_timestamp_ms} ({fields})"
    return f"{item.event_type} {item.symbol}@{item.engine_timestamp_ms}"


#: The calls whose failure at start is row 4 or 5 of the restore table.
_START_READS = frozenset({OpKind.OPEN.value, OpKind.READ.value})


def start_faults(ops: Iterable[Op]) -> tuple[str, ...]:
    """The opens and reads of the state path that failed by the plan, as "op ERRNO"."""
    return tuple(
        f"{op.op} {op.error or 'error'}"
        for op in ops
        if op.injected and op.op in _START_READS and op.path == STATE_PATH
    )


def judge_undeclared_files(paths: Sequence[str]) -> list[Violation]:
    """P: a backend creates only the files it declares (`Capabilities.files`,
    `temp_files`): those are the ones the harness faults, damages and checks."""
    if not paths:
        return []
    return [
        Violation(
            Invariant.PROTOCOL,
            f"created {', '.join(paths)}, which its Capabilities declare neither as files "
            "nor as temp_files: the harness faults, damages and checks declared files only",
        )
    ]


def judge_leftover_temp(paths: Sequence[str]) -> list[Violation]:
    """P: once a start returned, no temp file a crash left behind is still there."""
    if not paths:
        return []
    return [
        Violation(
            Invariant.PROTOCOL,
            f"the start returned with {', '.join(paths)} still on disk: a temp file a crash "
            "left behind must be removed by the next start (Capabilities.temp_files)",
        )
    ]


def judge_start_fault(started: bool, faults: Sequence[str]) -> list[Violation]:
    """R4, rows 4 and 5 of the restore table (C4.3): a start during which an open or a
    read of the state path failed (`faults`, each "op errno") must refuse."""
    if not started or not faults:
        return []
    return [
        Violation(
            Invariant.RESTORE_TABLE,
            f"the start went on after {', '.join(faults)} on the state path; a state file "
            "that cannot be opened or read must refuse the start (C4.3)",
        )
    ]


def judge_single_writer(second: str | None, third: str | None) -> list[Violation]:
    """W5 (C5.9): `second` is why a second open of the held state path was refused (None:
    it opened), `third` why an open after the first writer closed was refused (None: it
    opened). The second must be refused cleanly, the third must start."""
    out: list[Violation] = []
    if second is None:
        out.append(
            Violation(
                Invariant.SINGLE_WRITER,
                "a second writer opened the state path while the first still held it "
                "(C5.9: it must be refused with WriterLocked)",
            )
        )
    elif is_crash(second):
        out += judge_refusal(second, expected=None, crashed=False)
    if third is not None:
        out.append(
            Violation(
                Invariant.SINGLE_WRITER,
                f"after the first writer closed, a new one was refused: {third}",
            )
        )
    return out


def judge_published(
    events: Sequence[Event], expected: Sequence[Event], *, process: str = "the process"
) -> list[Violation]:
    """5, event by event: a process published exactly what the contract's reading of the
    runtime rules (`runtime_model`) publishes from the states it restored, for the ticks
    it read: its restored events (C6.3, with the active window, C1.3), its decisions,
    and its answers that are not decisions, a duplicate (C6.6) or a hard-failed symbol
    (C6.5, C6.9). The first difference is reported (the rest follow from it)."""
    got, want = comparable(events), comparable(expected)
    if got == want:
        return []
    at = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), None)
    if at is None:
        at = min(len(got), len(want))
    if at >= len(got):
        item = want[at]
        message = f"{process} never published {_said(item)} (event {at + 1} by the contract)"
    elif at >= len(want):
        item = got[at]
        message = (
            f"{process} published {_said(item)} as event {at + 1}: the contract has no such event"
        )
    else:
        item = got[at]
        message = (
            f"{process} published {_said(item)} as event {at + 1}; "
            f"the contract's reading publishes {_said(want[at])}"
        )
    symbol = item.symbol
    return [Violation(Invariant.CONTINUITY, message, symbol)]


# -- the uninterrupted run ---------------------------------------------------------------------


def uninterrupted(
    config: HysteresisConfig,
    seed: Mapping[str, HysteresisState],
    snapshots: Iterable[RegimeInputSnapshot],
) -> dict[str, orc.Decision]:
    """The reference for continuity: the decisions a correct process makes on the same
    input from the states a correct restore of the initial disk gives, never interrupted.
    Computed by the harness's own reading of the runtime rules (`runtime_model`), so a
    bug in the runtime is not also in its reference."""
    return orc.decisions_of(model_run(config, seed, snapshots).events)[0]


__all__ = [
    "CRASHED",
    "STARTUP_CRASH",
    "Ledger",
    "crash_reason",
    "expected_reading",
    "is_crash",
    "judge_append",
    "judge_close",
    "judge_continuity",
    "judge_leftover_temp",
    "judge_process",
    "judge_published",
    "judge_refusal",
    "judge_restored",
    "judge_selection",
    "judge_single_writer",
    "judge_start_fault",
    "judge_undeclared_files",
    "start_faults",
    "uninterrupted",
]
