"""Crafted workloads: the inputs, seeded state files and faults that reach the contract's
rules a seeded synthetic market alone never reaches.

More seeds of the same market buy no new kind of bug; these do. Each is named after
what it exercises. The `ci` suite runs them all (`suite.py`), and every deliberately
broken variant (`crashkit.harness.kit.variants`) is explored on one of them, so the
explorer alone catches each variant on the `ci` suite.

Seeded files are written with the engine's canonical encoding, plus hand-made damage:
the market of `regime_engine.synthetic` starts at `MARKET_START` with one tick a minute,
so `T0` (one tick before it) restores a symbol the input never reaches (C6.9), and a
timestamp of the market restores one it resumes from (C6.7).
"""

from __future__ import annotations

from dataclasses import replace

from crashkit.faults import FaultPlan, FaultRule, FsyncModel, OpKind
from crashkit.harness.explore.workload import Workload
from crashkit.harness.judge.paths import STATE_FILE_GLOB
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import HysteresisState, Regime

MARKET_START = 1_700_000_000_000
MINUTE = 60_000
T0 = MARKET_START - MINUTE  # one tick before the synthetic market starts


def line(symbol: str, ts: int, anchor: Regime, progress: int = 0) -> bytes:
    """One canonical record (a candidate exactly when progress > 0, never the anchor)."""
    candidate = Regime.SQUEEZE_UP if progress else None
    if candidate == anchor:
        candidate = Regime.SQUEEZE_DOWN
    return encode_state(HysteresisState(symbol, ts, anchor, candidate, progress, 3, None))


# -- seeded state files ---------------------------------------------------------------------

#: C4.10: the later line is older; the highest timestamp must win, not the last line.
OUT_OF_ORDER = line("SYM000", T0, Regime.TREND_BUILD_UP) + line(
    "SYM000", T0 - MINUTE, Regime.CHOP_BALANCED
)
#: C4.11: two records at the top timestamp; the later line wins.
TIED = line("SYM000", T0, Regime.TREND_BUILD_UP) + line("SYM000", T0, Regime.CHOP_BALANCED, 1)
#: C4.6: an invalid line between valid ones is skipped.
ONE_INVALID = (
    line("SYM000", T0 - MINUTE, Regime.TREND_BUILD_UP)
    + b"garbage\n"
    + line("SYM000", T0, Regime.CHOP_BALANCED)
)
#: C4.7: only invalid lines: fatal.
ALL_INVALID = b"garbage\n{}\n"
#: C4.6 / 2-no-invalid-restored: a line a lenient reader could repair (fields missing).
SALVAGEABLE = (
    line("SYM000", T0, Regime.TREND_BUILD_UP)
    + b'{"symbol":"SYM001","engine_timestamp_ms":'
    + str(T0).encode()
    + b"}\n"
)
#: C4.4, C4.5 (row 10), C4.10: blank and whitespace lines among records, a torn tail.
BLANK_AND_TORN = (
    b"\n"
    + line("SYM000", MARKET_START, Regime.CHOP_BALANCED)
    + b"  \t\n"
    + line("SYM001", MARKET_START, Regime.TREND_BUILD_UP, 1)
    + b"\r\n"
    + line("SYM000", MARKET_START + MINUTE, Regime.CHOP_BALANCED)
    + b'{"anchor_regime":"CHOP_BALANCED","candidate_regime":null,"engine_timest'
)
#: C4.6 with D.5-D.8: values of the wrong JSON type, a duplicate key, a broken engine
#: invariant, an unknown schema version: each line invalid, the valid ones restored.
WRONG_TYPES = (
    line("SYM000", MARKET_START + MINUTE, Regime.TREND_BUILD_UP)
    + line("SYM001", MARKET_START, Regime.CHOP_BALANCED).replace(
        b'"progress_current":0', b'"progress_current":"0"'
    )
    + line("SYM001", MARKET_START + MINUTE, Regime.CHOP_BALANCED).replace(
        b'"symbol":"SYM001"', b'"symbol":"SYM001","symbol":"SYM001"'
    )
    + line("SYM002", MARKET_START, Regime.CHOP_BALANCED).replace(
        b'"candidate_regime":null', b'"candidate_regime":"CHOP_BALANCED"'
    )
    + line("SYM002", MARKET_START + MINUTE, Regime.CHOP_BALANCED).replace(
        b'"schema_version":"1"', b'"schema_version":"2"'
    )
    + line("SYM001", MARKET_START, Regime.SQUEEZE_DOWN)
)
#: C2.4, C2.7: a value of the wrong JSON type that a loose decoder reads as right (`true`
#: as the integer 1, the number 1 as the string "1"), in the newest line of each symbol:
#: the contract skips both lines (each symbol restores its older record); reading either
#: as right restores another state. All in one clean block, which restore's block path
#: judges first; after a blank line (`PER_LINE`), the path that judges each line.
WRONG_JSON_TYPES = (
    line("SYM000", T0 - MINUTE, Regime.TREND_BUILD_UP)
    + line("SYM001", T0 - MINUTE, Regime.CHOP_BALANCED)
    + line("SYM000", T0, Regime.CHOP_BALANCED, 1).replace(
        b'"progress_current":1', b'"progress_current":true'
    )
    + line("SYM001", T0, Regime.TREND_BUILD_UP).replace(
        b'"schema_version":"1"', b'"schema_version":1'
    )
)
WRONG_JSON_TYPES_PER_LINE = b"\n" + WRONG_JSON_TYPES
#: Compaction (§8): four records of each of three symbols, at the input's first ticks, so
#: a start with an eager policy compacts them to three lines before resuming.
COMPACTABLE = b"".join(
    line(f"SYM00{s}", MARKET_START + t * MINUTE, Regime.CHOP_BALANCED)
    for t in range(4)
    for s in range(3)
)
#: C4.8: only blank lines (bootstrap).
ONLY_BLANK = b"\n \n\t\r\n"
#: C4.8, C3.2: only a torn tail (bootstrap).
ONLY_TORN = b'{"anchor_regime":"CHOP_BALANCED","candidate_regime":null,"engine_timest'
#: C6.7 and C6.9 from a seed: SYM000 restored at a tick of the input (it resumes after
#: it), SYM001 at a timestamp between two ticks (the input passes it: hard-failed).
RESUME_AND_MISMATCH = line("SYM000", MARKET_START + 2 * MINUTE, Regime.CHOP_BALANCED) + line(
    "SYM001", MARKET_START + MINUTE + 1, Regime.TREND_BUILD_UP, 1
)

# -- fault plans ------------------------------------------------------------------------------

#: The 4th fsync of the state file fails: mid-run, after some acknowledged ticks.
FSYNC_FAULT = FaultPlan((FaultRule(OpKind.FSYNC, STATE_FILE_GLOB, nth=4, errno="EIO"),))
#: The 4th write fails for good (ENOSPC).
WRITE_FAULT = FaultPlan(
    (FaultRule(OpKind.WRITE, STATE_FILE_GLOB, nth=4, errno="ENOSPC", persistent=True),)
)
#: The 3rd write fails once (the run halts; a restart may write again).
WRITE_FAULT_ONCE = FaultPlan((FaultRule(OpKind.WRITE, STATE_FILE_GLOB, nth=3, errno="EIO"),))
#: The first open of the state file, at start, fails (row 4 of the restore table).
OPEN_FAULT = FaultPlan((FaultRule(OpKind.OPEN, STATE_FILE_GLOB, nth=1, errno="EACCES"),))

# -- workloads -----------------------------------------------------------------------------------

#: The small workload every variant is explored on (2 symbols, 8 ticks).
BASE = Workload(symbols=2, ticks=8, seed=5, name="broken")

#: Small, one rule each: what the variants are caught on (names say what is crafted).
SMALL: tuple[Workload, ...] = (
    BASE,
    replace(BASE, initial_state=OUT_OF_ORDER, name="seeded-out-of-order"),
    replace(BASE, initial_state=TIED, name="seeded-tie"),
    replace(BASE, initial_state=ONE_INVALID, name="seeded-one-invalid"),
    replace(BASE, initial_state=ALL_INVALID, name="seeded-all-invalid"),
    replace(BASE, initial_state=SALVAGEABLE, name="seeded-salvageable"),
    replace(BASE, directory_at_state_path=True, name="directory-at-state-path"),
    replace(BASE, plan=OPEN_FAULT, name="open-fails-at-start"),
    replace(BASE, plan=FSYNC_FAULT, model=FsyncModel.DROP, name="fsync-fails-drop"),
    replace(BASE, plan=FSYNC_FAULT, model=FsyncModel.MARK_CLEAN, name="fsync-fails-mark-clean"),
    replace(BASE, plan=WRITE_FAULT, name="write-fails-for-good"),
    replace(BASE, plan=WRITE_FAULT_ONCE, name="write-fails-once"),
    replace(BASE, duplicates=(2, 5), name="duplicates"),
    replace(BASE, late=(3,), name="late-snapshot"),
    replace(BASE, second_writer=True, name="second-writer"),
    replace(BASE, restart_window_updates=1, name="small-window-3-to-1"),
    replace(BASE, initial_state=BLANK_AND_TORN, name="seeded-blank-and-torn"),
)
#: Small workloads whose start compacts with an eager policy (`jsonl.COMPACTING_BACKEND`):
#: with the reference's default policy they are plain seeded runs.
COMPACTION: tuple[Workload, ...] = (
    Workload(3, 8, seed=5, initial_state=COMPACTABLE, name="compaction-at-start"),
    Workload(3, 8, seed=6, window_updates=1, initial_state=COMPACTABLE, name="compaction-w1"),
    Workload(3, 8, seed=7, compact_after=4, name="compaction-mid-history"),
)
SMALL_BY_NAME: dict[str, Workload] = {w.name: w for w in SMALL}

#: Small crafted workloads for bug classes `SMALL` misses, one or more per class: the
#: `quick` suite runs them (the `ci` suite's job list is pinned by its golden verdicts,
#: tests/harness/golden).
EDGES: tuple[Workload, ...] = (
    replace(BASE, initial_state=WRONG_JSON_TYPES, name="seeded-wrong-json-types"),
    replace(BASE, initial_state=WRONG_JSON_TYPES_PER_LINE, name="seeded-wrong-json-types-per-line"),
)
EDGES_BY_NAME: dict[str, Workload] = {w.name: w for w in EDGES}


WINDOWS = (1, 2, 3)


def coverage_workloads(symbols: int = 3, ticks: int = 30) -> tuple[Workload, ...]:
    """Market-sized workloads for the rules around restarts, each at every window:
    duplicates and late snapshots (also with 5 symbols a tick, so more ticks are cut
    part-way, C6.11), every change of window between restarts, each seeded file."""
    market = Workload(symbols=symbols, ticks=ticks, seed=7)
    edits = {"duplicates": (3, ticks // 3, ticks - 4), "late": (6, ticks // 2 + 1)}
    out = [
        replace(market, seed=7 + w, window_updates=w, name=f"duplicates-late-w{w}") for w in WINDOWS
    ]
    out += [
        replace(market, symbols=5, seed=12 + w, window_updates=w, name=f"duplicates-late-5-w{w}")
        for w in WINDOWS
    ]
    out = [replace(w, duplicates=edits["duplicates"], late=edits["late"]) for w in out]
    out += [
        replace(
            market,
            seed=20 + 3 * before + after,
            window_updates=before,
            restart_window_updates=after,
            name=f"window-{before}-to-{after}",
        )
        for before in WINDOWS
        for after in WINDOWS
        if before != after
    ]
    seeds = {
        "seeded-blank-and-torn": BLANK_AND_TORN,
        "seeded-wrong-types": WRONG_TYPES,
        "seeded-only-blank": ONLY_BLANK,
        "seeded-only-torn": ONLY_TORN,
        "seeded-resume-and-mismatch": RESUME_AND_MISMATCH,
        "seeded-tie": TIED,
    }
    out += [
        replace(
            market, seed=40 + 3 * i + w, window_updates=w, initial_state=data, name=f"{name}-w{w}"
        )
        for i, (name, data) in enumerate(seeds.items())
        for w in WINDOWS
    ]
    return tuple(out)
