"""Reading scenario files: YAML to checked, ready-to-run data, or an error that says where.

Every error names the file, the line when known, the key path (for example
`steps[2].crash.point`) and what was expected, so a hand-edited or exported
scenario is fixed in one look. All real-disk I/O of a scenario (the YAML, an
input file, importing a backend or runtime) happens here, before the runner
switches to the fake file system.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml

from crashkit.faults import FaultRule, FsyncModel, profile_named
from crashkit.harness.judge.invariants import INVARIANTS
from crashkit.harness.judge.paths import MOUNT_EVENTS, MOUNT_INPUT
from crashkit.harness.scenarios import schema as s
from crashkit.orchestrator.errors import ConfigError
from crashkit.orchestrator.runtime import HysteresisRuntime
from crashkit.orchestrator.sources import read_snapshots
from crashkit.orchestrator.store.protocol import DEFAULT_BACKEND, Backend, load_backend
from crashkit.orchestrator.validation import PathPart, explain, key_path
from crashkit.regime_engine.codec import RECORD_SCHEMA, RECORD_SCHEMA_VERSION
from crashkit.regime_engine.contracts import (
    ContractError,
    HysteresisConfig,
    HysteresisState,
    RegimeInputSnapshot,
)
from crashkit.regime_engine.synthetic import generate

Locator = Callable[[Sequence[PathPart]], int | None]


class ScenarioError(Exception):
    """A scenario file that cannot be run as written (CLI exit 2)."""

    def __init__(self, file: str, key: str | None, message: str, line: int | None = None) -> None:
        self.file = file
        self.key = key
        self.message = message
        self.line = line
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


# -- YAML with line numbers and no silent duplicate keys --------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice (PyYAML would keep the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, typing.Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, file: str) -> tuple[object, yaml.Node | None]:
    """The document and its node tree (for line numbers); YAML errors name file and line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        raise ScenarioError(
            file, None, f"YAML: {problem}", None if mark is None else mark.line + 1
        ) from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(file, None, f"YAML: {exc}") from exc
    finally:
        loader.dispose()
    return data, node


def node_line(node: yaml.Node | None, parts: Sequence[PathPart]) -> int | None:
    """1-based line of the deepest node found along `parts` (None without a tree)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in parts:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    child = value_node
                    line = key_node.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _validation_error(
    exc: msgspec.ValidationError, data: object, root: Any, file: str, locate: Locator
) -> ScenarioError:
    parts, text = explain(exc, data, root)
    return ScenarioError(file, key_path(parts), text, locate(parts))


# -- the loaded scenario -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seed:
    """The disk a scenario starts from."""

    data: bytes | None  # state-file bytes; None: no state file
    missing_dir: bool
    kind: str  # file | directory | fifo


@dataclass(frozen=True, slots=True)
class LoadedScenario:
    """A checked scenario plus everything the runner needs, resolved from the real disk."""

    path: Path
    spec: s.Scenario
    snapshots: tuple[RegimeInputSnapshot, ...]
    config: HysteresisConfig
    seed: Seed
    backend: Backend
    runtime_class: Callable[..., HysteresisRuntime]  # a HysteresisRuntime (sub)class
    model: FsyncModel
    profile: str  # the file-system profile of its crash steps
    restart_configs: dict[int, HysteresisConfig]  # step index -> the new config
    append_states: dict[int, tuple[HysteresisState, ...]]
    fault_rules: dict[int, FaultRule]
    text: str
    locate: Locator
    #: What the backend under test must be for this scenario to apply (`requires:` plus
    #: what the file itself implies), with the reason for each.
    requires: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def error(self, parts: Sequence[PathPart], message: str) -> ScenarioError:
        """An error found while running (a crash cut that does not exist, ...)."""
        return ScenarioError(str(self.path), key_path(parts), message, self.locate(parts))


def canonical_record(spec: s.RecordSpec) -> bytes:
    """A record line with the schema keys added, in the contract's canonical encoding."""
    obj = {
        "schema": RECORD_SCHEMA,
        "schema_version": RECORD_SCHEMA_VERSION,
        "symbol": spec.symbol,
        "engine_timestamp_ms": spec.engine_timestamp_ms,
        "anchor_regime": spec.anchor_regime.value,
        "candidate_regime": None if spec.candidate_regime is None else spec.candidate_regime.value,
        "progress_current": spec.progress_current,
        "last_commit_timestamp_ms": spec.last_commit_timestamp_ms,
    }
    return (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode()


def hex_bytes(text: str) -> bytes:
    """`raw_hex` text: hex digits, spaces allowed between bytes."""
    return bytes.fromhex(text)


def _config(spec: s.ConfigSpec) -> HysteresisConfig:
    return HysteresisConfig(
        window_updates=spec.window_updates,
        enter_threshold=spec.enter_threshold,
        commit_threshold=spec.commit_threshold,
        min_lead_over_anchor=spec.min_lead_over_anchor,
        decay_step=spec.decay_step,
        allowed_regimes=None if spec.allowed_regimes is None else tuple(spec.allowed_regimes),
    )


def _state(spec: s.RecordSpec, config: HysteresisConfig) -> HysteresisState:
    return HysteresisState(
        symbol=spec.symbol,
        engine_timestamp_ms=spec.engine_timestamp_ms,
        anchor_regime=spec.anchor_regime,
        candidate_regime=spec.candidate_regime,
        progress_current=spec.progress_current,
        progress_required=config.window_updates,
        last_commit_timestamp_ms=spec.last_commit_timestamp_ms,
    )


def import_spec(spec: str, what: str) -> object:
    """Resolve `module:attr` (a backend factory, a runtime class), with errors that say why."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{spec!r} is not of the form 'module:{what}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"cannot import module {module_name!r} ({exc}); is it installed or on PYTHONPATH?"
        ) from exc
    found = getattr(module, attr, None)
    if found is None:
        raise ValueError(f"module {module_name!r} has no {attr!r}")
    return found


def load_scenario(path: str | Path) -> LoadedScenario:
    """Read and check one scenario file; raises ScenarioError naming file, line and key."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(file, None, f"cannot read scenario: {exc}") from exc
    data, node = parse_yaml(text, file)

    def locate(parts: Sequence[PathPart]) -> int | None:
        return node_line(node, parts)

    def fail(parts: Sequence[PathPart], message: str) -> ScenarioError:
        return ScenarioError(file, key_path(parts), message, locate(parts))

    if not isinstance(data, dict):
        raise ScenarioError(file, None, "a scenario must be a YAML mapping", locate([]))
    try:
        spec = msgspec.convert(data, s.Scenario, strict=True)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, data, s.Scenario, file, locate) from exc

    if spec.name != path.stem:
        raise fail(["name"], f"must equal the file name without extension: {path.stem!r}")
    if not spec.description.strip() or "\n" in spec.description.strip():
        raise fail(["description"], "must be one non-empty line saying why the scenario exists")

    try:
        config = _config(spec.config)
    except ContractError as exc:
        raise fail(["config"], str(exc)) from exc
    try:
        profile = profile_named(spec.profile).name
    except ValueError as exc:
        raise fail(["profile"], str(exc)) from exc
    snapshots = _snapshots(spec, path, fail)
    seed = _seed(spec, fail)
    backend = _backend(spec, fail)
    runtime_class = _runtime(spec, fail)

    restart_configs: dict[int, HysteresisConfig] = {}
    append_states: dict[int, tuple[HysteresisState, ...]] = {}
    fault_rules: dict[int, FaultRule] = {}
    active = config
    for i, step in enumerate(spec.steps):
        given = [k for k in s.STEP_KINDS if getattr(step, k) is not msgspec.UNSET]
        if len(given) != 1:
            raise fail(
                ["steps", i],
                f"a step has exactly one of {', '.join(s.STEP_KINDS)}; got "
                + (", ".join(given) if given else "none"),
            )
        if isinstance(step.restart, s.RestartStep) and step.restart.config is not None:
            try:
                active = restart_configs[i] = _config(step.restart.config)
            except ContractError as exc:
                raise fail(["steps", i, "restart", "config"], str(exc)) from exc
        if isinstance(step.append, s.AppendStep):
            try:
                append_states[i] = tuple(_state(r, active) for r in step.append.records)
            except ContractError as exc:
                raise fail(["steps", i, "append", "records"], str(exc)) from exc
        if isinstance(step.fault, s.FaultStep):
            f = step.fault
            try:
                fault_rules[i] = FaultRule(
                    op=f.op,
                    path=f.path,
                    nth=f.nth,
                    errno=f.errno,
                    persistent=f.persistent,
                    short_write=f.short_write,
                )
            except ValueError as exc:
                message = str(exc)
                if message.startswith("unknown errno"):
                    message = message.split(";")[0] + " (an errno name such as EIO or ENOSPC)"
                raise fail(["steps", i, "fault"], message) from exc
        if isinstance(step.corrupt, s.CorruptStep) and isinstance(step.corrupt.with_, s.RawHex):
            try:
                hex_bytes(step.corrupt.with_.raw_hex)
            except ValueError as exc:
                raise fail(["steps", i, "corrupt", "with", "raw_hex"], f"not hex: {exc}") from exc
    _check_expect(spec.expect, fail)
    if isinstance(spec.expect.reference, s.Expect):
        if spec.expect.reference.reference is not msgspec.UNSET:
            raise fail(["expect", "reference", "reference"], "a reference block does not nest")
        _check_expect(spec.expect.reference, fail)
    if spec.mode == "real":
        check_real(spec, fault_rules, fail)
    return LoadedScenario(
        path=path,
        spec=spec,
        snapshots=snapshots,
        config=config,
        seed=seed,
        backend=backend,
        runtime_class=runtime_class,
        model=FsyncModel(spec.fsync_model),
        profile=profile,
        restart_configs=restart_configs,
        append_states=append_states,
        fault_rules=fault_rules,
        text=text,
        locate=locate,
        requires=requirements(spec),
    )


Fail = Callable[[Sequence[PathPart], str], ScenarioError]


# -- real mode ---------------------------------------------------------------------------

#: Where a real-mode process writes its events and reads its input: on the mount beside
#: the state, as `crashkit explore --real` does (the order of the calls tells what was
#: published before a crash point, and where the start returned).
REAL_NOT_STATE = (MOUNT_EVENTS, MOUNT_INPUT)

#: The invariants a real process cannot show, with why: listing one in a real-mode
#: file is an error, and `[all]` leaves them out.
REAL_UNOBSERVABLE: dict[str, str] = {
    "1-durability": "a real process's acknowledgements are not observable (a lost "
    "acknowledged tick shows as a lost published one, 3-publish-implies-committed)",
    "2-no-invalid-restored": "what a real process wrote whole is not observable, only "
    "what it published",
    "W5-single-writer": "a second_writer step runs in-process only",
}

#: Why a step kind does not run in real mode.
_REAL_STEPS: dict[str, str] = {
    "replay": "a replay step replays the input inside the harness and compares it with the "
    "live runtime's decisions, which only the in-process runner holds",
    "damage": "the damage is written inside the harness, between two processes",
    "second_writer": "the second writer is opened inside the harness, beside the "
    "process it holds the state path against",
    "compact": "the backend's offline compaction (Backend.compact) runs inside the harness; "
    "`crashkit compact` compacts the reference line file only",
}


def check_real(spec: s.Scenario, rules: dict[int, FaultRule], fail: Fail) -> None:
    """What `mode: real` cannot run as the in-process runner would: each process is one
    real `crashkit run` whose fault plan is fixed when it starts and whose events and
    input are on the mount, so the file is refused where that would change its meaning."""
    init = spec.initial_state
    if init is not None and init.kind == "fifo":
        raise fail(
            ["initial_state", "kind"],
            "not in real mode: the disk a real process starts on is written as plain files "
            "and folders (no FIFO)",
        )
    blocks = ((spec.expect, ["expect"]), (spec.expect.reference, ["expect", "reference"]))
    for block, parts in blocks:
        if isinstance(block, s.Expect) and isinstance(block.invariants, list):
            for j, name in enumerate(block.invariants):
                if name in REAL_UNOBSERVABLE:
                    raise fail(
                        [*parts, "invariants", j],
                        f"{name} is not observable in real mode: {REAL_UNOBSERVABLE[name]}",
                    )
    running: int | None = None  # the step the running process started at
    started = False  # a process was started (the first one starts at the first non-fault step)
    corrupted = False  # the last process ended at a corrupt step (only a restart starts one)
    armed: int | None = None  # a fault step no process has started with yet
    for i, step in enumerate(spec.steps):
        kind = next(k for k in s.STEP_KINDS if getattr(step, k) is not msgspec.UNSET)
        if kind in _REAL_STEPS:
            raise fail(["steps", i, kind], f"not run in real mode: {_REAL_STEPS[kind]}")
        if kind == "fault":
            rule = rules[i]
            matched = [
                p
                for path in REAL_NOT_STATE
                for p in (path, path.rsplit("/", 1)[0])
                if fnmatch.fnmatchcase(p, rule.path)
            ]
            if matched:
                raise fail(
                    ["steps", i, "fault", "path"],
                    f"{rule.path!r} also matches {matched[0]}, which a real process has on the "
                    "mount beside the state (its events and its input), where the in-process "
                    "runner has none: name the state's files (e.g. '*/hysteresis.jsonl', or "
                    "'/crashkit/state*')",
                )
            if running is not None:
                raise fail(
                    ["steps", i, "fault"],
                    f"in real mode a fault is armed for a whole process from its start, and the "
                    f"process started at steps[{running}] is running: in-process its nth would "
                    "count from this step. Give it before the process starts (before the "
                    "first step that is not a fault, or after a crash before the next run)",
                )
            armed = i
            continue
        if not started:
            started, running, armed = True, i, None
        if kind in ("run", "append"):
            if corrupted:
                raise fail(
                    ["steps", i, kind],
                    "the process exited at the corrupt step before: a restart starts the next",
                )
            if running is None:
                running, armed = i, None
        elif kind == "restart":
            running, corrupted = i, False
        else:  # crash, corrupt: no process runs after them
            running, corrupted = None, corrupted or kind == "corrupt"
        if armed is not None:
            raise fail(
                ["steps", armed, "fault"],
                f"the {kind} at steps[{i}] disarms it before any process starts with it "
                "(as in-process): it never fires",
            )
    if armed is not None:
        raise fail(["steps", armed, "fault"], "no process starts after it: it never fires")


def requirements(spec: s.Scenario) -> dict[str, str]:
    """What the scenario needs of the backend, each with why: stated in `requires:`, or
    implied by the file (seeded or damaged lines need a line-format backend; an exact op
    index or cut text describes the reference's own trace)."""
    out: dict[str, str] = {name: "stated in requires:" for name in spec.requires or ()}
    init = spec.initial_state
    if init is not None and init.lines and init.kind == "file":
        # (met by a line file, and by any backend when the lines hold a valid record: it
        # is seeded with them, `scenarios.seeding`; a directory or FIFO is any backend's)
        out.setdefault("records", "initial_state holds state-file lines")
    for i, step in enumerate(spec.steps):
        if isinstance(step.corrupt, s.CorruptStep) and spec.mode == "real":
            # (in-process, another backend gets the line's record damaged in its files)
            out.setdefault("line_format", f"steps[{i}] corrupts a line of the state file")
        if isinstance(step.compact, s.CompactStep):
            out.setdefault("compact", f"steps[{i}] compacts the state offline")
        if isinstance(step.second_writer, s.SecondWriterStep):
            out.setdefault("single_writer", f"steps[{i}] opens a second writer")
        if isinstance(step.replay, s.ReplayStep) and step.replay.at is not None:
            out.setdefault("line_format", f"steps[{i}] replays from the state file's records")
        if isinstance(step.crash, s.CrashStep):
            crash = step.crash
            named = isinstance(crash.cut, str) and crash.cut not in ("first", "last")
            if isinstance(crash.point, int) or isinstance(crash.cut, int) or named:
                out.setdefault(
                    "reference",
                    f"steps[{i}] names a crash point or cut of the reference's own trace",
                )
    return out  # (expect.restore_report: another backend is held to its outcome and winners)


def _snapshots(spec: s.Scenario, path: Path, fail: Fail) -> tuple[RegimeInputSnapshot, ...]:
    given = [k for k in ("synthetic", "snapshots", "file") if getattr(spec.input, k) is not None]
    if len(given) != 1:
        raise fail(
            ["input"],
            "exactly one of synthetic, snapshots, file is required; got "
            + (", ".join(given) if given else "none"),
        )
    inp = spec.input
    if inp.synthetic is not None:
        g = inp.synthetic
        return tuple(generate(g.symbols, g.ticks, g.seed))
    if inp.snapshots is not None:
        out = []
        for i, snap in enumerate(inp.snapshots):
            try:
                out.append(
                    RegimeInputSnapshot(**{f: getattr(snap, f) for f in snap.__struct_fields__})
                )
            except ContractError as exc:
                raise fail(["input", "snapshots", i], str(exc)) from exc
        return tuple(out)
    assert inp.file is not None
    target = path.parent / inp.file
    try:
        return tuple(read_snapshots(str(target)))
    except ConfigError as exc:
        raise fail(["input", "file"], str(exc)) from exc


def _seed(spec: s.Scenario, fail: Fail) -> Seed:
    init = spec.initial_state
    if init is None:
        return Seed(None, False, "file")
    if init.kind != "file" and init.lines:
        raise fail(["initial_state", "lines"], f"must be empty for kind {init.kind!r}")
    if init.missing_dir and (init.kind != "file" or init.lines):
        raise fail(
            ["initial_state", "missing_dir"],
            "a missing folder holds no state file: leave out lines and kind",
        )
    if init.missing_dir or init.kind != "file":
        return Seed(None, init.missing_dir, init.kind)
    chunks: list[bytes] = []
    for i, item in enumerate(init.lines):
        if isinstance(item, str):
            chunks.append(item.encode("utf-8") + b"\n")
            continue
        given = [k for k in ("record", "raw_hex") if getattr(item, k) is not None]
        if len(given) != 1:
            raise fail(
                ["initial_state", "lines", i],
                "a line is a string, {record: {...}} or {raw_hex: ...}; got "
                + (", ".join(given) if given else "an empty mapping"),
            )
        if item.record is not None:
            chunks.append(canonical_record(item.record))
        else:
            assert item.raw_hex is not None
            try:
                chunks.append(hex_bytes(item.raw_hex))
            except ValueError as exc:
                raise fail(["initial_state", "lines", i, "raw_hex"], f"not hex: {exc}") from exc
    return Seed(b"".join(chunks), False, "file")


def _backend(spec: s.Scenario, fail: Fail) -> Backend:
    try:
        return load_backend(spec.backend or DEFAULT_BACKEND)
    except ConfigError as exc:
        raise fail(["backend"], str(exc)) from exc


def _runtime(spec: s.Scenario, fail: Fail) -> type[HysteresisRuntime]:
    if spec.runtime is None:
        return HysteresisRuntime
    try:
        found = import_spec(spec.runtime, "Class")
    except ValueError as exc:
        raise fail(["runtime"], str(exc)) from exc
    if not (isinstance(found, type) and issubclass(found, HysteresisRuntime)):
        raise fail(["runtime"], f"{spec.runtime!r} is not a HysteresisRuntime subclass")
    return found


def _check_expect(expect: s.Expect, fail: Fail) -> None:
    if isinstance(expect.invariants, list):
        allowed = ("all", *INVARIANTS)
        for i, name in enumerate(expect.invariants):
            if name not in allowed:
                raise fail(
                    ["expect", "invariants", i],
                    f"unknown invariant {name!r}; expected one of: {', '.join(allowed)}",
                )
        if "all" in expect.invariants and len(expect.invariants) > 1:
            raise fail(["expect", "invariants"], "'all' stands alone")
    if isinstance(expect.events, s.EventsExpect):
        given = [
            k
            for k in ("by_type", "exact", "contains")
            if getattr(expect.events, k) is not msgspec.UNSET
        ]
        if not given or ("by_type" in given and "exact" in given):
            raise fail(
                ["expect", "events"],
                "give by_type or exact (not both), and/or contains; got "
                + (", ".join(given) if given else "none"),
            )
