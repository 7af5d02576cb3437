"""A small, independent replay of exported scenarios, following the step semantics that
harness/scenarios/export.py documents, to check that what the machines export reproduces.

Not the scenario runner (harness/scenarios/ is): it only answers "which invariants
break when these steps run", with the same oracles, so a test can assert that a
variant's exported scenario fails on the variant and passes on the reference.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from crashkit.faults import DiskImage, FaultPlan, FaultRule, FsyncModel
from crashkit.harness.judge import oracles as orc
from crashkit.harness.judge.invariants import Invariant
from crashkit.harness.judge.model import ModelRestore, model_restore
from crashkit.harness.judge.observe import RecordingSink, Timeline, recording_factory
from crashkit.harness.judge.paths import STATE_DIR, STATE_PATH
from crashkit.harness.machines.common import crash_fs, visible_bytes
from crashkit.harness.scenarios import export
from crashkit.harness.scenarios.corrupt import corrupt_file, line_count
from crashkit.harness.scenarios.loader import import_spec
from crashkit.orchestrator.errors import HaltedError, StartupRefused
from crashkit.orchestrator.events import Event, MemorySink
from crashkit.orchestrator.runtime import (
    HysteresisRuntime,
    RuntimeClass,
    engine_commit_clock,
    seeded_factory,
)
from crashkit.orchestrator.sources import ticks
from crashkit.orchestrator.store.memory import memory_store
from crashkit.orchestrator.store.protocol import DEFAULT_BACKEND, OpenedStore, load_backend
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, RegimeInputSnapshot


def _runtime_class(spec: str | None) -> RuntimeClass:
    if spec is None:
        return HysteresisRuntime
    cls = import_spec(spec, "Class")
    assert isinstance(cls, type)
    return cls


def _pick(states: list[Any], cut: Any) -> Any:
    """The named crash state; the first one when the name fits no state of this backend."""
    if cut == "first":
        return states[0]
    if cut == "last":
        return states[-1]
    if isinstance(cut, int):
        return states[cut] if 0 <= cut < len(states) else states[0]
    matches = [s for s in states if s.cut == cut]
    assert len(matches) <= 1, f"cut {cut!r} names {len(matches)} crash states"
    return matches[0] if matches else states[0]


def _point(value: Any, trace_length: int | None = None) -> int | None:
    """An op index, or None for now (also when the index is past this backend's trace)."""
    if value == "last":
        return None
    point = int(value)
    return None if trace_length is not None and point >= trace_length else point


class _Disk:
    """The fake disk of one replay: boot, faults, crash, corrupt."""

    def __init__(self, scenario: Mapping[str, Any]) -> None:
        self.fs = crash_fs()
        self.model = FsyncModel(scenario["fsync_model"])
        initial = scenario.get("initial_state")
        self.initial = None
        if initial is None:  # the state folder, no file
            image = DiskImage(dirs=(STATE_DIR,))
        elif initial.get("missing_dir"):  # an empty disk
            image = DiskImage()
        else:
            self.initial = export.initial_bytes(initial.get("lines", []))
            image = DiskImage(files={STATE_PATH: self.initial}, dirs=(STATE_DIR,))
        self.fs.configure(plan=FaultPlan(), model=self.model, record=True)
        self.fs.start(image)

    def arm(self, rule: Mapping[str, Any]) -> None:
        self.fs.configure(plan=FaultPlan((FaultRule.from_dict(rule),)))

    def disarm(self) -> None:
        self.fs.configure(plan=FaultPlan())

    def crash(self, step: Mapping[str, Any]) -> int | None:
        point = _point(step["point"], len(self.fs.trace))
        state = _pick(self.fs.crash_states(point), step["cut"])
        self.disarm()
        self.fs.restart(state.image)
        return point

    def corrupt(self, line: int, kind: str) -> bytes:
        """Damage line `line` (the last complete one if fewer); returns its old bytes."""
        current = visible_bytes(self.fs, STATE_PATH) or b""
        line = min(line, line_count(current))
        image = self.fs.visible_image()
        files = dict(image.files)
        old = b""
        if line >= 1:
            files[STATE_PATH] = corrupt_file(current, line, kind)
            old = current.split(b"\n")[line - 1]
        self.disarm()
        self.fs.restart(DiskImage(files=files, dirs=image.dirs))
        return old


def replay_store(scenario: Mapping[str, Any]) -> set[str]:
    """The invariants a store-level scenario breaks."""
    factory = load_backend(scenario.get("backend") or DEFAULT_BACKEND)
    config = HysteresisConfig(window_updates=scenario["config"]["window_updates"])
    disk = _Disk(scenario)
    fs = disk.fs
    seed = model_restore(disk.initial, config)
    acked, written = list(seed.records), list(seed.records)
    maybe: list[HysteresisState] = []
    corrupted = False
    broken: set[str] = set()
    opened: OpenedStore | None = None
    timeline = Timeline()
    failed = False
    crashed = False  # a power cut since the last process started

    def settle(position: int | None) -> None:
        nonlocal timeline
        for a in timeline.appends:
            (acked if a.acked and (position is None or a.position <= position) else maybe).extend(
                a.states
            )
        timeline = Timeline()

    def open_() -> None:
        nonlocal opened, timeline, failed, crashed
        data = visible_bytes(fs, STATE_PATH)
        expect = model_restore(data, config)
        timeline = Timeline(position=lambda: len(fs.trace))
        failed = False
        try:
            opened = recording_factory(factory, timeline)(STATE_PATH, config)
        except StartupRefused:
            opened = None
            if expect.outcome != "fatal":
                broken.add(Invariant.CRASH_NOT_FATAL if crashed else Invariant.RESTORE_TABLE)
            return
        crashed = False
        restored = opened.store.states
        if expect.outcome == "fatal" or _differs(restored, expect):
            broken.add(Invariant.RESTORE_TABLE)
        later = written if corrupted else maybe
        for v in (
            orc.check_durability(acked, restored, later)
            + orc.check_no_invalid_restored(restored, written)
            + orc.check_engine(restored.values())
        ):
            broken.add(v.invariant)

    def stop() -> None:
        nonlocal opened
        if opened is not None:
            try:
                opened.backend.close()
            except Exception:  # the protocol's close() returns
                broken.add(Invariant.PROTOCOL)
            opened = None
        settle(None)

    try:
        open_()
        for step in scenario["steps"]:
            ((kind, args),) = step.items()
            if kind == "fault":
                disk.arm(args)
            elif kind == "append":
                assert opened is not None, "append with no process running"
                states = [export.state_of_fields(r, config.window_updates) for r in args["records"]]
                written.extend(states)
                try:
                    opened.backend.append(states)
                    ok = True
                except Exception:
                    ok = False
                if failed and ok:
                    broken.add(Invariant.HALT)
                if not ok:
                    failed = True
                    if not opened.backend.poisoned:
                        broken.add(Invariant.HALT)
            elif kind == "crash":
                point = _point(args["point"], len(fs.trace))
                opened = None
                crashed = True
                settle(None if point is None else point + 1)
                disk.crash(args)
            elif kind == "restart":
                stop()
                disk.disarm()
                open_()
            elif kind == "corrupt":
                stop()
                corrupted = True
                old = model_restore(disk.corrupt(args["line"], args["with"]) + b"\n", config)
                for state in old.records:
                    key = state.persisted_fields()
                    for i in range(len(acked) - 1, -1, -1):
                        if acked[i].persisted_fields() == key:
                            del acked[i]
                            break
            else:
                raise AssertionError(f"step {kind!r} has no meaning at store level")
    finally:
        if opened is not None:
            with contextlib.suppress(Exception):
                opened.backend.close()
        fs.stop()
    return broken


def _differs(restored: Mapping[str, HysteresisState], expect: ModelRestore) -> bool:
    def fields(states: Mapping[str, HysteresisState]) -> dict[str, tuple[object, ...]]:
        return {s: st.persisted_fields() for s, st in states.items()}

    return fields(restored) != fields(expect.states)


def replay_orchestrator(scenario: Mapping[str, Any]) -> set[str]:
    """The invariants an orchestrator-level scenario breaks."""
    factory = load_backend(scenario.get("backend") or DEFAULT_BACKEND)
    runtime_class = _runtime_class(scenario.get("runtime"))
    config = HysteresisConfig(window_updates=scenario["config"]["window_updates"])
    snapshots = [RegimeInputSnapshot(**s) for s in scenario["input"]["snapshots"]]
    groups = list(ticks(snapshots))
    ref_sink = MemorySink()
    reference = HysteresisRuntime(
        config=config,
        state_path="<reference>",
        sink=ref_sink,
        backend_factory=seeded_factory(memory_store()),
        clock=engine_commit_clock,
    )
    reference.start()
    disk = _Disk(scenario)
    fs = disk.fs
    broken: set[str] = set()
    acked: list[HysteresisState] = []
    maybe: list[HysteresisState] = []
    written: list[HysteresisState] = []
    past: list[tuple[list[tuple[int, Event]], list[tuple[int, HysteresisState]]]] = []
    events: list[Event] = []
    proc: dict[str, Any] | None = None
    fed = 0  # ticks of the input the reference has seen (as far as any process read)
    crashed = False  # a power cut since the last process started

    def feed_reference(upto: int) -> None:
        nonlocal fed
        while fed < upto:
            reference.tick(groups[fed])
            fed += 1

    def settle(position: int | None) -> None:
        nonlocal proc
        if proc is None:
            return
        t: Timeline = proc["timeline"]
        pubs = t.published_before(position)
        acks: list[tuple[int, HysteresisState]] = []
        for a in t.appends:
            if a.acked and (position is None or a.position <= position):
                acked.extend(a.states)
                acks.extend((a.seq, s) for s in a.states)
            else:
                maybe.extend(a.states)
        written.extend(t.attempted())
        past.append(([(p.seq, p.event) for p in pubs], acks))
        events.extend(p.event for p in pubs)
        proc = None

    def start() -> None:
        nonlocal proc, crashed
        data = visible_bytes(fs, STATE_PATH)
        expect = model_restore(data, config)
        timeline = Timeline(position=lambda: len(fs.trace))
        sink = RecordingSink(timeline)
        runtime = runtime_class(
            config=config,
            state_path=STATE_PATH,
            sink=sink,
            backend_factory=recording_factory(factory, timeline),
            clock=engine_commit_clock,
        )
        try:
            runtime.start()
        except StartupRefused:
            if expect.outcome != "fatal":
                broken.add(Invariant.CRASH_NOT_FATAL if crashed else Invariant.RESTORE_TABLE)
            return
        crashed = False
        restored = dict(runtime.states)
        found = orc.check_durability(acked, restored, maybe)
        found += orc.check_no_invalid_restored(restored, written)
        for publishes, acks in past:
            found += orc.check_publish_implies_committed(publishes, acks, restored)
        found += orc.check_engine(restored.values())
        broken.update(v.invariant for v in found)
        if _differs(restored, expect):
            broken.add(Invariant.RESTORE_TABLE)
        proc = {"runtime": runtime, "timeline": timeline, "sink": sink, "consumed": 0}

    def run(count: int) -> None:
        """Offer the next `count` ticks one by one; a refused tick ends the step."""
        assert proc is not None
        t: Timeline = proc["timeline"]
        for _ in range(count):
            if proc["consumed"] >= len(groups):
                break
            failed = t.first_failure() is not None
            try:
                proc["runtime"].tick(groups[proc["consumed"]])
                accepted = True
            except HaltedError:
                accepted = False
            if accepted:
                proc["consumed"] += 1
            feed_reference(max(fed, proc["consumed"]))
            publishes = [(p.seq, p.event) for p in t.publishes]
            acks = [(a.seq, s) for a in t.appends if a.acked for s in a.states]
            found = orc.check_publish_implies_committed(publishes, acks, None)
            found += orc.check_halt(
                publishes,
                [(a.seq, a.acked) for a in t.appends],
                (not accepted) if failed else None,
            )
            found += orc.check_engine_events(proc["sink"].events)
            caught_up = proc["consumed"] == fed and t.first_failure() is None
            found += orc.check_continuity(
                [*events, *proc["sink"].events],
                orc.decisions_of(ref_sink.events)[0],
                up_to_ms=None if caught_up else -1,
            )
            broken.update(v.invariant for v in found)
            if not accepted:
                break

    try:
        start()
        for step in scenario["steps"]:
            ((kind, args),) = step.items()
            if kind == "fault":
                disk.arm(args)
            elif kind == "run":
                if proc is not None:
                    count = len(groups) if args["ticks"] == "all" else int(args["ticks"])
                    run(count)
            elif kind == "crash":
                point = _point(args["point"], len(fs.trace))
                crashed = True
                settle(None if point is None else point + 1)
                disk.crash(args)
            elif kind == "restart":
                if proc is not None:
                    try:
                        proc["runtime"].close()
                    except Exception:  # the protocol's close() returns
                        broken.add(Invariant.PROTOCOL)
                    settle(None)
                disk.disarm()
                start()
            else:
                raise AssertionError(f"step {kind!r} has no meaning at orchestrator level")
    finally:
        if proc is not None:
            with contextlib.suppress(Exception):
                proc["runtime"].close()
        fs.stop()
    return broken
