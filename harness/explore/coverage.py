"""Which rules of `docs/contract.md` a run and each of its crash states exercised.

Coverage is counted, not assumed: a rule counts for a crash state only when that
state's disk or its restarted process really showed the situation the rule is about
(a torn tail on the disk, a duplicate answered after the restart, ...), and for a
recorded run only when the run did (it halted on a failed persist, it created the file).
The summary's coverage table gives, per rule, how many crash states and runs
exercised it; a rule the explorer can reach at 0 means the suite does not test it.

What is read, and why it is cheap enough for every crash state: the state file's bytes
in the crash image (a few C-level scans, no JSON), the restarted process's events and
what it restored, and per run the facts of its recording. The contract's own reading
of a seeded file (`judge.model`) is computed once per workload.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass

from crashkit.faults import DiskImage, FaultPlan, Op, OpKind
from crashkit.harness.judge.model import ModelRestore
from crashkit.harness.judge.paths import STATE_PATH
from crashkit.harness.judge.runtime_model import NON_MONOTONIC, RESUME_MISMATCH, skip_of
from crashkit.orchestrator import events as ev
from crashkit.orchestrator.events import Event
from crashkit.orchestrator.store.protocol import Capabilities
from crashkit.regime_engine.contracts import HysteresisState

#: The rules the explorer can reach, in contract order: id -> the situation counted.
RULES: dict[str, str] = {
    "C1.3": "restarted with another window: restored states take the active one",
    "C3.2": "a torn tail on the disk (an append cut short)",
    "C4.2": "no state file on the disk: bootstrap",
    "C4.3": "a state path that is not a regular file, or an open/read error at start",
    "C4.4": "blank lines in the state file",
    "C4.6": "invalid lines beside valid records: skipped",
    "C4.7": "only invalid lines: fatal",
    "C4.8": "an empty file, or only blank lines or a torn tail: bootstrap",
    "C4.10": "several records of one symbol: the highest timestamp wins",
    "C4.11": "two records of one symbol at its top timestamp: the later line wins",
    "C5.3": "the run created the state file",
    "C5.4": "restarted on a torn tail and appended: the tail was cut first",
    "C5.5": "an append failed (an I/O error or a short write)",
    "C5.6": "after a failed append the next tick was refused",
    "C5.7": "an fsync failed under an fsync-failure model",
    "C5.9": "a second writer on the held state path",
    "C6.3": "restored events published at start",
    "C6.5": "a late snapshot hard-failed its symbol",
    "C6.6": "a run delivered again was skipped and reported",
    "C6.7": "a restarted process skipped the input it had already applied",
    "C6.8": "a restarted run compared with the uninterrupted one",
    "C6.9": "the input did not reach a symbol's restored timestamp in time",
    "C6.11": "a tick only partly persisted at the crash",
    "C6.12": "a persist failure halted scheduling",
}

#: The rules about a line file's bytes (torn tails, blank and invalid lines, several
#: records of a symbol): not applicable to a backend that does not declare `line_format`,
#: whose bytes the explorer does not read (an SQLite database keeps one row per symbol).
LINE_RULES: frozenset[str] = frozenset({"C3.2", "C4.4", "C4.6", "C4.7", "C4.10", "C4.11", "C5.4"})

#: Rules a workload reaches only from a seeded state file of contract-v1 lines (a restored
#: timestamp the input never reaches): n/a, as the line rules, without `line_format`.
SEEDED_RULES: frozenset[str] = frozenset({"C6.9"})

_RENAMES = frozenset({OpKind.RENAME, OpKind.REPLACE})
_IN_PLACE = frozenset({OpKind.WRITE, OpKind.FTRUNCATE})
_ONTO_STATE = f"-> {STATE_PATH}"


def unreachable(trace: Sequence[Op], capabilities: Capabilities, *, appends: int) -> dict[str, str]:
    """rule -> why a backend cannot reach it, from what it is (its `Capabilities`) and what
    its recorded run did (`trace`, with `appends` calls of its append): the coverage
    table shows these as n/a, not as a 0 against it, while no state or run reached them.

    - C5.9: a second writer is tried only on a backend that declares `single_writer`;
    - C6.9: only a seeded state file reaches it, and seeds need `line_format`;
    - C4.8, C6.11: a backend that never writes its state file in place, only renames a
      whole new one onto it (at most once per append), never leaves an empty file or a
      tick persisted in part there (unless its rename outruns its data: then they count).
    """
    out: dict[str, str] = {}
    if not capabilities.single_writer:
        out["C5.9"] = "no single_writer declared: no second writer is tried"
    if not capabilities.line_format:
        out.update(dict.fromkeys(SEEDED_RULES, "needs a seeded state file: not a line file"))
    renames = sum(
        1 for op in trace if op.op in _RENAMES and op.detail == _ONTO_STATE and op.error is None
    )
    in_place = any(op.op in _IN_PLACE and op.path == STATE_PATH for op in trace)
    alone = capabilities.file_patterns(STATE_PATH) == (STATE_PATH,)
    if renames and not in_place and alone and renames <= max(appends, 1):
        why = "writes by rename: its state file is replaced whole, never written in place"
        out["C4.8"] = why
        out["C6.11"] = f"{why} (a tick at a time)"
    return out


def created_state_file(trace: Sequence[Op], *, existed: bool) -> bool:
    """The run created the state file (C5.3): opened it to create it, or (when there was
    none at the start) renamed a new file onto it, as a backend that writes by rename."""
    return any(
        (op.op == OpKind.OPEN and op.path == STATE_PATH and op.mutating)
        or (not existed and op.op in _RENAMES and op.detail == _ONTO_STATE and op.error is None)
        for op in trace
    )


_BLANK_LINE = re.compile(rb"(?:^|\n)[ \t\r\v\f]*\n")
_NOT_SPACE = re.compile(rb"[^ \t\r\n\v\f]")
_MISSING = frozenset({"C4.2"})
_FILE_RULES = {
    (torn, nothing): frozenset((["C3.2"] if torn else []) + (["C4.8"] if nothing else []))
    for torn in (False, True)
    for nothing in (False, True)
}
_ANSWERS = {
    (ev.DUPLICATE_SKIPPED, ""): "C6.6",
    (ev.SYMBOL_HALTED, NON_MONOTONIC): "C6.5",
    (ev.SYMBOL_HALTED, RESUME_MISMATCH): "C6.9",
}


def seed_rules(seed: ModelRestore, data: bytes | None) -> frozenset[str]:
    """What the contract's reading of a seeded state file shows. Every crash state of the
    workload keeps it (the seed is durable, committed bytes are never changed, C5.1), so
    every restart reads it again: these count for each of them."""
    if data is None:
        return frozenset()
    rules = set(file_rules(data))
    if _BLANK_LINE.search(data, 0, data.rfind(b"\n") + 1) is not None:
        rules.add("C4.4")
    if seed.invalid_lines:
        rules.add("C4.7" if seed.outcome == "fatal" else "C4.6")
    top: dict[str, int] = {}
    tied: set[str] = set()
    for record in seed.records:
        best = top.get(record.symbol)
        if best is not None:
            rules.add("C4.10")
            if record.engine_timestamp_ms == best:
                tied.add(record.symbol)
            elif record.engine_timestamp_ms > best:
                tied.discard(record.symbol)
        if best is None or record.engine_timestamp_ms > best:
            top[record.symbol] = record.engine_timestamp_ms
    if tied:
        rules.add("C4.11")
    return frozenset(rules)


def file_rules(data: bytes | None) -> frozenset[str]:
    """What a state file's bytes show, from its ends only (a crash adds no blank line:
    lost bytes are cut or zero-filled, and appended lines are canonical; blank lines
    come from a seed, see `seed_rules`)."""
    if data is None:
        return _MISSING
    cut = data.rfind(b"\n") + 1
    torn = cut < len(data)
    nothing = _NOT_SPACE.search(data, 0, cut) is None  # no complete non-blank line
    return _FILE_RULES[torn, nothing]


_EMPTY = frozenset({"C4.8"})
_NONE: frozenset[str] = frozenset()


def image_rules(image: DiskImage, *, line_format: bool = True) -> frozenset[str]:
    """What a crash image's state path holds (for a backend of another format: only
    whether it is missing, empty or a directory)."""
    if STATE_PATH in image.dirs:
        return frozenset({"C4.3"})
    data = image.files.get(STATE_PATH)
    if line_format or data is None:
        return file_rules(data)
    return _EMPTY if not data else _NONE


def answer_rules(events: Iterable[Event]) -> set[str]:
    """The rules a process's events answered (restored, duplicate, hard-failed)."""
    rules: set[str] = set()
    for event in events:
        if event.event_type == ev.STATE_RESTORED:
            rules.add("C6.3")
            continue
        skip = skip_of(event)
        if skip is not None:
            rule = _ANSWERS.get((skip.event_type, skip.category))
            if rule is not None:
                rules.add(rule)
    return rules


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the recorded run did that every one of its crash states inherits."""

    #: the seed's rules (`seed_rules`): every crash state's disk holds the seed
    rules: frozenset[str]
    #: timestamp -> the symbols the run appended at it (a crash state whose newest
    #: timestamp restored fewer of them holds a partly persisted tick, C6.11)
    appended_at: Mapping[int, Set[str]]


def run_rules(
    *,
    plan: FaultPlan,
    created: bool,
    refused_start: bool,
    start_fault: bool,
    halted: bool,
    refused_next: bool | None,
    events: Iterable[Event],
    second_writer_checked: bool,
) -> frozenset[str]:
    """What a recorded run exercised, from its facts."""
    rules = answer_rules(events)
    if created:
        rules.add("C5.3")
    if start_fault and refused_start:
        rules.add("C4.3")
    if halted:
        rules.update(("C5.5", "C6.12"))
    if refused_next:
        rules.add("C5.6")
    if halted and any(r.op in (OpKind.FSYNC, OpKind.FDATASYNC) for r in plan.rules):
        rules.add("C5.7")
    if second_writer_checked:
        rules.add("C5.9")
    return frozenset(rules)


def state_rules(
    facts: RunFacts,
    image: DiskImage,
    *,
    restored: Mapping[str, HysteresisState] | None,
    events: Iterable[Event],
    appended: bool,
    window_changed: bool,
    compared: bool,
    seeded: bool,
    line_format: bool = True,
) -> set[str]:
    """What one crash state and the process restarted on it exercised."""
    rules = set(image_rules(image, line_format=line_format)) | facts.rules
    if restored is None:  # refused: only the disk counts
        return rules
    rules |= answer_rules(events)
    if "C3.2" in rules and appended:
        rules.add("C5.4")
    if restored:
        if any(s.engine_timestamp_ms in facts.appended_at for s in restored.values()):
            rules.add("C6.7")  # (its restored timestamp is in the input)
        if window_changed:
            rules.add("C1.3")
        newest = max(s.engine_timestamp_ms for s in restored.values())
        at_newest = {s.symbol for s in restored.values() if s.engine_timestamp_ms == newest}
        if at_newest < set(facts.appended_at.get(newest, ())):
            rules.add("C6.11")
        data = image.files.get(STATE_PATH) if line_format else None
        if not seeded and data is not None and data.count(b"\n") > len(restored):
            rules.add("C4.10")  # (only appended lines: more lines than symbols)
    if compared:
        rules.add("C6.8")
    return rules
