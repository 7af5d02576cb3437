"""A workload: everything that determines one explored run, as plain seeded data.

Same workload, same verdicts, on every machine: the synthetic market's seed, its
edits (ticks delivered twice, late snapshots), the seeded state file, the fault plan
and the fsync-failure model are all in it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import Any

from crashkit.faults import PREFIX, DiskImage, FaultPlan, FsyncModel, TornMode, profile_named
from crashkit.harness.judge.paths import STATE_DIR, STATE_PATH
from crashkit.regime_engine.contracts import HysteresisConfig, RegimeInputSnapshot
from crashkit.regime_engine.synthetic import generate

_TIMESTAMP = attrgetter("engine_timestamp_ms")


@dataclass(frozen=True, slots=True)
class Workload:
    """Everything that determines a run: same workload, same verdicts, on every machine."""

    symbols: int = 3
    ticks: int = 12
    seed: int = 1
    window_updates: int = 3
    model: FsyncModel = FsyncModel.KEEP_DIRTY
    plan: FaultPlan = field(default_factory=FaultPlan)
    initial_state: bytes | None = None  # seeded state-file bytes (line backends only)
    torn: TornMode = TornMode.DEFAULT  # cuts inside un-synced lines: a few, or every byte
    name: str = ""
    #: Ticks (0-based) delivered twice in a row: duplicates (C6.6), across restarts (C6.8).
    duplicates: tuple[int, ...] = ()
    #: Ticks i >= 1 after which one symbol's snapshot of tick i-1 arrives again, late: it
    #: hard-fails that symbol (C6.5); the symbol is i modulo the number of symbols.
    late: tuple[int, ...] = ()
    #: The window of every restarted process, when it differs from the first run's: a
    #: config change between restarts (C1.3: restored states take the active window).
    restart_window_updates: int | None = None
    #: A directory sits at the state path (C4.3: the start must refuse, never take it as
    #: no state).
    directory_at_state_path: bool = False
    #: Also check C5.9 on this workload: while its run holds the state path, a second
    #: writer is refused; after it closed, one starts (backends declaring single_writer).
    second_writer: bool = False
    #: The file-system profile whose crash states are explored (`crashkit.faults.PROFILES`).
    profile: str = PREFIX.name
    #: Mid-history compaction: after this many ticks the run stops, the backend's offline
    #: compaction runs (`Backend.compact`, what `crashkit compact` does), and a second
    #: process starts and reads the input again; every op of the three is a crash point.
    compact_after: int | None = None

    @property
    def config(self) -> HysteresisConfig:
        return HysteresisConfig(window_updates=self.window_updates)

    @property
    def restart_config(self) -> HysteresisConfig:
        """The config of a restarted process (the first run's unless it changes)."""
        if self.restart_window_updates is None:
            return self.config
        return HysteresisConfig(window_updates=self.restart_window_updates)

    @property
    def window_changed(self) -> bool:
        return (
            self.restart_window_updates is not None
            and self.restart_window_updates != self.window_updates
        )

    @property
    def edited(self) -> bool:
        """The input is not the plain synthetic market (exports then list its snapshots)."""
        return bool(self.duplicates or self.late)

    def snapshots(self) -> list[RegimeInputSnapshot]:
        market = list(generate(self.symbols, self.ticks, self.seed))
        if not self.edited:
            return market
        groups = [list(group) for _, group in groupby(market, key=_TIMESTAMP)]
        out: list[RegimeInputSnapshot] = []
        for i, group in enumerate(groups):
            out.extend(group)
            if i in self.duplicates:
                out.extend(group)
            if i in self.late and i >= 1:
                earlier = groups[i - 1]
                out.append(earlier[i % len(earlier)])
        return out

    def image(self) -> DiskImage | None:
        if self.directory_at_state_path:
            return DiskImage(dirs=(STATE_DIR, STATE_PATH))
        if self.initial_state is None:
            return None
        return DiskImage(files={STATE_PATH: self.initial_state}, dirs=(STATE_DIR,))

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "symbols": self.symbols,
            "ticks": self.ticks,
            "seed": self.seed,
            "window_updates": self.window_updates,
            "fsync_model": self.model.value,
            "fault_plan": self.plan.to_dict(),
            "torn": self.torn.value,
            "initial_state": None
            if self.initial_state is None
            else self.initial_state.decode("utf-8", "backslashreplace"),
            "initial_state_hex": None if self.initial_state is None else self.initial_state.hex(),
            "duplicates": list(self.duplicates),
            "late": list(self.late),
            "restart_window_updates": self.restart_window_updates,
            "directory_at_state_path": self.directory_at_state_path,
            "second_writer": self.second_writer,
            "profile": self.profile,
            "compact_after": self.compact_after,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workload:
        """Inverse of `to_dict` (a shard's JSON summary read back by `crashkit merge`)."""
        raw = data.get("initial_state_hex")
        initial = None
        if raw is not None:
            initial = bytes.fromhex(raw)
        elif data.get("initial_state") is not None:
            initial = str(data["initial_state"]).encode("utf-8")
        return cls(
            symbols=int(data["symbols"]),
            ticks=int(data["ticks"]),
            seed=int(data["seed"]),
            window_updates=int(data["window_updates"]),
            model=FsyncModel(data["fsync_model"]),
            plan=FaultPlan.from_dict(data["fault_plan"]),
            initial_state=initial,
            torn=TornMode(data.get("torn", TornMode.DEFAULT.value)),
            name=str(data.get("name", "")),
            duplicates=tuple(int(i) for i in data.get("duplicates", ())),
            late=tuple(int(i) for i in data.get("late", ())),
            restart_window_updates=_optional_int(data.get("restart_window_updates")),
            directory_at_state_path=bool(data.get("directory_at_state_path", False)),
            second_writer=bool(data.get("second_writer", False)),
            profile=profile_named(str(data.get("profile", PREFIX.name))).name,
            compact_after=_optional_int(data.get("compact_after")),
        )


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def default_workloads(count: int = 24, symbols: int = 3, ticks_: int = 12) -> Iterator[Workload]:
    """The CI set: seeds x window sizes (1 commits at once, 3 is the default)."""
    windows = (1, 2, 3)
    for i in range(count):
        yield Workload(
            symbols=symbols,
            ticks=ticks_,
            seed=1000 + i,
            window_updates=windows[i % 3],
            name=f"seed{1000 + i}",
        )
