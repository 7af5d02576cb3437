"""The scenario file format (docs/scenarios.md) as frozen msgspec Structs.

Decoding is strict (no type coercion, no unknown keys), so a typo in a scenario
is an error that names the key instead of a silently ignored setting. Checks a
Struct cannot express (exactly one of several keys, value ranges of the
engine's own types) live in `crashkit.harness.scenarios.loader`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from crashkit.harness.scenarios.corrupt import CorruptionKind, FileDamageKind
from crashkit.regime_engine.contracts import Regime

FsyncModelName = Literal["keep-dirty", "mark-clean", "drop"]
#: How the steps run: one simulated machine in this process (the fake disk of
#: `crashkit.faults.CrashFS`), or real `crashkit run` processes on a FUSE mount.
Mode = Literal["in-process", "real"]
Outcome = Literal["ok", "bootstrap", "fatal"]
NonNegInt = Annotated[int, Meta(ge=0)]
PosInt = Annotated[int, Meta(ge=1)]


class _Strict(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base: immutable, and an unknown key is an error rather than ignored."""


# -- input ------------------------------------------------------------------------------


class SyntheticInput(_Strict, frozen=True):
    symbols: PosInt
    ticks: NonNegInt
    seed: int


class SnapshotSpec(_Strict, frozen=True):
    symbol: str
    engine_timestamp_ms: int
    return_window: float
    volatility_z: float
    range_expansion: float
    oi_slope: float
    funding_z: float
    cvd_slope: float
    liquidation_intensity: float


class InputSpec(_Strict, frozen=True):
    synthetic: SyntheticInput | None = None
    snapshots: list[SnapshotSpec] | None = None
    file: str | None = None


# -- initial state ---------------------------------------------------------------------------


class RecordSpec(_Strict, frozen=True):
    """The six persisted fields; the schema keys are added when the line is written."""

    symbol: str
    engine_timestamp_ms: int
    anchor_regime: Regime
    candidate_regime: Regime | None = None
    progress_current: int = 0
    last_commit_timestamp_ms: int | None = None


class LineSpec(_Strict, frozen=True):
    """A non-string line item: exactly one of a record or raw bytes."""

    record: RecordSpec | None = None
    raw_hex: str | None = None


class InitialState(_Strict, frozen=True):
    lines: list[str | LineSpec] = msgspec.field(default_factory=list)
    missing_dir: bool = False
    kind: Literal["file", "directory", "fifo"] = "file"


class ConfigSpec(_Strict, frozen=True):
    window_updates: int = 3
    enter_threshold: float = 0.6
    commit_threshold: float = 0.6
    min_lead_over_anchor: float | None = None
    decay_step: int = 1
    allowed_regimes: list[Regime] | None = None


# -- steps ----------------------------------------------------------------------------------


class RunStep(_Strict, frozen=True):
    ticks: NonNegInt | Literal["all"]


class AppendStep(_Strict, frozen=True):
    records: list[RecordSpec]


class FaultStep(_Strict, frozen=True):
    op: str
    path: str = "*"
    nth: PosInt = 1
    errno: str = "EIO"
    persistent: bool = False
    short_write: NonNegInt | None = None


class CrashStep(_Strict, frozen=True):
    point: NonNegInt | Literal["last"] = "last"
    cut: NonNegInt | str = "last"
    # A named cut this code cannot leave: "fail" the step (default), or take the "last"
    # state and say so (exported regressions: once fixed, the bad state cannot occur).
    unreachable: Literal["fail", "last"] = "fail"


class RestartStep(_Strict, frozen=True):
    config: ConfigSpec | None = None


class CompactStep(_Strict, frozen=True):
    """Stop the running process, run the backend's offline compaction (`crashkit compact`
    for the reference), start a new process."""


class DamageStep(_Strict, frozen=True):
    """Offline damage to the state file, whatever its format (a flipped byte, a zeroed
    page, a cut): the process exits, the file is edited, the disk reboots durable."""

    with_: FileDamageKind = msgspec.field(name="with")


class SecondWriterStep(_Strict, frozen=True):
    """While the running process holds the state path (healthy, or halted by a failed
    append), open it a second time: it must be refused (C5.9, `W5-single-writer`)."""


class RawHex(_Strict, frozen=True):
    raw_hex: str


class CorruptStep(_Strict, frozen=True):
    line: PosInt
    with_: CorruptionKind | RawHex = msgspec.field(name="with")


class ReplayStep(_Strict, frozen=True):
    at: NonNegInt | None = None


class Step(_Strict, frozen=True):
    """One step: exactly one of the keys is given (checked by the loader)."""

    run: RunStep | UnsetType = UNSET
    append: AppendStep | UnsetType = UNSET
    fault: FaultStep | UnsetType = UNSET
    crash: CrashStep | UnsetType = UNSET
    restart: RestartStep | UnsetType | None = UNSET
    corrupt: CorruptStep | UnsetType = UNSET
    replay: ReplayStep | UnsetType = UNSET
    compact: CompactStep | UnsetType = UNSET
    second_writer: SecondWriterStep | UnsetType = UNSET
    damage: DamageStep | UnsetType = UNSET


STEP_KINDS: tuple[str, ...] = (
    "run",
    "append",
    "fault",
    "crash",
    "restart",
    "corrupt",
    "replay",
    "compact",
    "second_writer",
    "damage",
)


# -- expectations ----------------------------------------------------------------------------


#: The exit codes a scenario can observe (README "Exit codes"): the last process's start
#: exits 0, 3 when it refused, 1 when it crashed with a traceback instead of refusing;
#: a whole run adds 4 (halted) and 5 (a symbol hard-failed).
StartupExit = Literal[0, 1, 3]
RunExit = Literal[0, 1, 3, 4, 5]


class StartupExpect(_Strict, frozen=True):
    outcome: Outcome | UnsetType = UNSET
    exit_code: StartupExit | UnsetType = UNSET


class EventExpect(_Strict, frozen=True):
    event_type: str
    symbol: str | UnsetType | None = UNSET
    engine_timestamp_ms: int | UnsetType | None = UNSET
    payload: dict[str, Any] | UnsetType = UNSET


class EventsExpect(_Strict, frozen=True):
    """`by_type` counts or the `exact` list (at most one), plus `contains`: events that
    must appear in this order, others allowed in between."""

    by_type: dict[str, NonNegInt] | UnsetType = UNSET
    exact: list[EventExpect] | UnsetType = UNSET
    contains: list[EventExpect] | UnsetType = UNSET


class FinalStateExpect(_Strict, frozen=True):
    anchor_regime: Regime | UnsetType = UNSET
    candidate_regime: Regime | UnsetType | None = UNSET
    progress_current: int | UnsetType = UNSET
    engine_timestamp_ms: int | UnsetType = UNSET


class InvalidLineExpect(_Strict, frozen=True):
    line: PosInt
    reason_prefix: str = ""


class RestoreReportExpect(_Strict, frozen=True):
    """`crashkit inspect` of the final disk. `outcome` and `winners` (each symbol's winning
    record) are about records, judged on every line-format backend; the other keys pin the
    file's layout (line numbers and counts), which a backend that rewrites its file
    (compaction) may change: judged only on the backend the file was written for."""

    outcome: Outcome | UnsetType = UNSET
    winners: dict[str, FinalStateExpect] | UnsetType = UNSET
    lines: int | UnsetType = UNSET
    valid: int | UnsetType = UNSET
    blank: int | UnsetType = UNSET
    torn_tail_bytes: int | UnsetType = UNSET
    ties: int | UnsetType = UNSET
    invalid: list[InvalidLineExpect] | UnsetType = UNSET


class Expect(_Strict, frozen=True):
    """What must be observed. `reference` holds expectations that describe only the
    reference backend (the tick at which its Nth write fails, its exact event counts,
    its line report): judged for it, not for other backends."""

    startup: StartupExpect | UnsetType = UNSET
    halted_tick: int | UnsetType | None = UNSET
    exit_code: RunExit | UnsetType | None = UNSET
    events: EventsExpect | UnsetType = UNSET
    final_states: dict[str, FinalStateExpect] | UnsetType = UNSET
    restore_report: RestoreReportExpect | UnsetType = UNSET
    invariants: list[str] | UnsetType = UNSET
    reference: Expect | UnsetType = UNSET


#: What a scenario may need of the backend under test (`requires:`; also inferred).
Requirement = Literal["line_format", "single_writer", "reference"]
REQUIREMENTS: tuple[str, ...] = ("line_format", "single_writer", "reference")

EXPECT_KEYS: tuple[str, ...] = (
    "startup",
    "halted_tick",
    "exit_code",
    "events",
    "final_states",
    "restore_report",
    "invariants",
    "reference",
)
REPORT_KEYS: tuple[str, ...] = (
    "outcome",
    "winners",
    "lines",
    "valid",
    "blank",
    "torn_tail_bytes",
    "ties",
    "invalid",
)
#: The report keys that pin the file's layout, not its records (see RestoreReportExpect).
LAYOUT_KEYS: tuple[str, ...] = ("lines", "valid", "blank", "torn_tail_bytes", "ties", "invalid")
FINAL_STATE_KEYS: tuple[str, ...] = (
    "anchor_regime",
    "candidate_regime",
    "progress_current",
    "engine_timestamp_ms",
)


class Scenario(_Strict, frozen=True):
    name: str
    description: str
    input: InputSpec
    steps: list[Step]
    backend: str | None = None
    runtime: str | None = None
    #: `real`: each process is a real `crashkit run` (`crashkit.harness.scenarios.real_runner`)
    mode: Mode = "in-process"
    requires: list[Requirement] | None = None
    fsync_model: FsyncModelName = "keep-dirty"
    #: the file-system profile of its crash steps (`crashkit.faults.PROFILES`, or NAME:BLOCK)
    profile: str = "prefix"
    config: ConfigSpec = msgspec.field(default_factory=ConfigSpec)
    initial_state: InitialState | None = None
    expect: Expect = msgspec.field(default_factory=Expect)
