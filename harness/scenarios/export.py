"""Regression export: a violation's minimal case, written as a YAML scenario file.

A failure found by a state machine or by the explorer is only useful if it can be
replayed after the hypothesis version, the seed or the explorer's enumeration
order changed: so it is written as plain data in the scenario format (run by
`harness/scenarios/`), as `<folder>/<invariant>-<sha>.yaml` in a folder the caller
names (the project's own `make crash` uses `scenarios/regressions/`; the CLI and the
kit never write there unless asked), where `<sha>` is the first 12 hex digits of the
SHA-256 of the file's YAML text without its `name` line (the name is the file stem,
so it cannot hash itself).

Schema (top-level keys, in this order)::

    name: str                      # = file stem
    description: str               # the violation, and where it was found
    backend: "module:factory"      # optional; absent = the reference JSONL backend
    runtime: "module:Class"        # optional HysteresisRuntime subclass
    fsync_model: keep-dirty|mark-clean|drop
    config: {window_updates: N}
    input: {synthetic: {symbols, ticks, seed}} | {snapshots: [...]}
    initial_state: {lines: [...]} | {missing_dir: true}
                                   # optional; absent = the state folder exists, no file
    steps: [...]
    expect: {invariants: [all]}

What the steps mean (the machines and the explorer produce exactly these; the
scenario runner's own reference is docs/scenarios.md, and the two agree):

- The disk starts as `initial_state` (every byte durable), the state file at
  `crashkit.harness.explore.explorer.STATE_PATH`. The machines and the explorer start a run without
  a state file from an empty disk (`{missing_dir: true}`: the backend creates the
  folders), which also fixes the op indices that `crash.point` counts. A process starts (restores) before the first
  step, except that `fault` steps *before any other step* are armed before that
  first start, so they also see the restore's calls (how explorer findings with a
  fault plan replay).
- `initial_state.lines`: each entry is one line of the file. A string is the
  line's UTF-8 text, a `{record: {...}}` is the canonical encoding of the six
  persisted fields; a `\\n` is written after both. `{raw_hex: ..}` are exact bytes
  with nothing added (a non-UTF-8 line carries its own `0a`; a torn tail has none).
- `run: {ticks: N|all}`: the running process is offered its next N ticks of the
  input (`crashkit.orchestrator.sources.ticks`) one by one; a refused tick (`HaltedError`,
  as every tick must be once scheduling halted) ends the step. A (re)started
  process reads the input from its first tick (contract C6.7), so a restart is
  followed by a `run` over everything fed before.
- `append: {records: [...]}`: one `append` call of the backend (store level, no
  runtime) with these states (`progress_required` = `config.window_updates`).
  Raising is a legitimate outcome (a failure the machine injected).
- `fault: {op, path, nth, errno, persistent, short_write}`: a `faults.FaultRule`,
  armed from this step (replacing any armed rule; `nth` counts matching calls
  from here) until the next crash, restart or corrupt.
- `crash: {point, cut, unreachable}`: power cut. `point: last` = now; an int = just after op
  `point` of the file-system trace since the last reboot (crash or corrupt) or the
  beginning; a restart without a reboot does not reset it. `cut` picks one state
  of `CrashFS.crash_states(point, torn="default")`: the exact `CrashState.cut`
  text (or `first`, `last`, an int index; the machines use an index only when two
  states of the point share a text). The disk becomes that state and no process is
  running until the next `restart`. Point and cut come from the trace of the
  backend the scenario was exported from: on another one (the reference, or the
  code once fixed) the named state may not exist, so exported steps say
  `unreachable: last`: the runner then takes the last state of the point and notes
  it, instead of failing the step.
- `restart: {}`: stop the running process cleanly if there is one (no reboot:
  the page cache survives) and start a new one on the disk (restore).
- `corrupt: {line: N, with: KIND}`: stop the running process cleanly if there is
  one, replace the 1-based complete line N of the state file as now visible with
  `crashkit.harness.scenarios.corrupt.corrupt_line(line, KIND)` (the last complete line if
  the file has fewer; none if it has no complete line), and reboot onto that disk
  (everything then visible is durable). A `restart` follows to restore from it.
- `expect: {invariants: [all]}`: every oracle of contract §9 must hold; the
  scenario fails on the broken code it was exported from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from crashkit.harness.explore import Explorer, Finding, Workload, minimal_findings
from crashkit.harness.explore.explorer import SEEDED_START
from crashkit.harness.judge.invariants import Invariant
from crashkit.harness.judge.paths import STATE_DIR
from crashkit.orchestrator.events import state_payload
from crashkit.orchestrator.sources import snapshot_to_dict
from crashkit.orchestrator.store import jsonl
from crashkit.orchestrator.store.protocol import DEFAULT_BACKEND, Backend
from crashkit.regime_engine.codec import RecordError, decode_record, encode_state, record_to_state
from crashkit.regime_engine.contracts import (
    PERSISTED_FIELDS,
    HysteresisConfig,
    HysteresisState,
    Regime,
)

ALL_INVARIANTS: list[str] = ["all"]
Step = dict[str, Any]


def backend_spec(backend: Backend) -> str | None:
    """How a scenario names a backend: nothing for the reference (the default), else its
    `module:attribute` (a backend built in code without one is named by its name)."""
    if backend is jsonl.BACKEND or backend.spec == DEFAULT_BACKEND:
        return None
    return backend.spec or backend.name


def record_fields(state: HysteresisState) -> dict[str, Any]:
    """The six persisted fields as plain YAML data (the `record:` mapping)."""
    payload = state_payload(state)
    return {key: payload[key] for key in PERSISTED_FIELDS}


def state_of_fields(fields: Mapping[str, Any], window_updates: int = 3) -> HysteresisState:
    """Inverse of `record_fields` (what a runner needs for `append` and `record:` entries)."""
    candidate = fields["candidate_regime"]
    return HysteresisState(
        symbol=fields["symbol"],
        engine_timestamp_ms=fields["engine_timestamp_ms"],
        anchor_regime=Regime(fields["anchor_regime"]),
        candidate_regime=None if candidate is None else Regime(candidate),
        progress_current=fields["progress_current"],
        progress_required=window_updates,
        last_commit_timestamp_ms=fields["last_commit_timestamp_ms"],
    )


def _printable(text: str) -> bool:
    return all(c.isprintable() for c in text)


def line_entries(data: bytes) -> list[Any]:
    """A state file's bytes as `initial_state.lines` entries (readable where possible)."""
    pieces = data.split(b"\n")
    entries: list[Any] = []
    for line in pieces[:-1]:
        entries.append(_line_entry(line))
    if pieces[-1]:  # a torn tail: exact bytes, no newline
        entries.append({"raw_hex": pieces[-1].hex()})
    return entries


def _line_entry(line: bytes) -> Any:
    try:
        state = record_to_state(decode_record(line), HysteresisConfig())
    except RecordError:
        state = None
    if state is not None and encode_state(state) == line + b"\n":
        return {"record": record_fields(state)}
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and _printable(text):
        return text
    return {"raw_hex": (line + b"\n").hex()}


def initial_bytes(entries: Iterable[Any]) -> bytes:
    """The file an `initial_state.lines` list describes (inverse of `line_entries`)."""
    out = bytearray()
    for entry in entries:
        if isinstance(entry, str):
            out += entry.encode("utf-8") + b"\n"
        elif isinstance(entry, Mapping) and set(entry) == {"record"}:
            out += encode_state(state_of_fields(entry["record"]))
        elif isinstance(entry, Mapping) and set(entry) == {"raw_hex"}:
            out += bytes.fromhex(entry["raw_hex"])
        else:
            raise ValueError(f"not a line entry: {entry!r}")
    return bytes(out)


def merge_runs(steps: Sequence[Step]) -> list[Step]:
    """Consecutive `run: {ticks: n}` steps as one (same meaning, shorter file)."""
    out: list[Step] = []
    for step in steps:
        prev = out[-1] if out else None
        if (
            prev is not None
            and set(step) == {"run"}
            and set(prev) == {"run"}
            and isinstance(step["run"]["ticks"], int)
            and isinstance(prev["run"]["ticks"], int)
        ):
            out[-1] = {"run": {"ticks": prev["run"]["ticks"] + step["run"]["ticks"]}}
        else:
            out.append(step)
    return out


def build_scenario(
    *,
    description: str,
    fsync_model: str,
    window_updates: int,
    input_: Mapping[str, Any],
    steps: Sequence[Step],
    backend: str | None = None,
    runtime: str | None = None,
    initial_state: bytes | None = None,
    missing_dir: bool = False,
    directory_at_state_path: bool = False,
    profile: str = "prefix",
) -> dict[str, Any]:
    """A scenario body (everything but `name`), keys in schema order.

    `initial_state` None with `missing_dir` = an empty disk; without it = the state
    folder exists but holds no file; `directory_at_state_path`: a directory there."""
    body: dict[str, Any] = {"description": description}
    if backend is not None:
        body["backend"] = backend
    if runtime is not None:
        body["runtime"] = runtime
    body["fsync_model"] = fsync_model
    if profile != "prefix":
        body["profile"] = profile
    body["config"] = {"window_updates": window_updates}
    body["input"] = dict(input_)
    if directory_at_state_path:
        body["initial_state"] = {"kind": "directory"}
    elif initial_state is not None:
        body["initial_state"] = {"lines": line_entries(initial_state)}
    elif missing_dir:
        body["initial_state"] = {"missing_dir": True}
    body["steps"] = [dict(s) for s in steps]
    body["expect"] = {"invariants": list(ALL_INVARIANTS)}
    return body


def dump(data: Mapping[str, Any]) -> str:
    """Stable, human-editable YAML (schema key order kept, no aliases)."""

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump(dict(data), Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=100)


def scenario_name(invariant: str, body: Mapping[str, Any]) -> str:
    """`<invariant>-<first 12 hex of sha256(YAML of the body)>`: same case, same name."""
    if "name" in body:
        raise ValueError("the body must not carry its name (the name hashes the body)")
    digest = hashlib.sha256(dump(body).encode("utf-8")).hexdigest()[:12]
    return f"{invariant}-{digest}"


def named(invariant: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The full scenario: `name` first, then the body."""
    return {"name": scenario_name(invariant, body), **body}


def write_scenario(invariant: str, body: Mapping[str, Any], directory: Path | str) -> Path:
    """Write the scenario as `<directory>/<name>.yaml` (idempotent) and return the path."""
    scenario = named(invariant, body)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{scenario['name']}.yaml"
    path.write_text(dump(scenario), encoding="utf-8")
    return path


# -- explorer findings ---------------------------------------------------------------------


def scenario_from_finding(
    finding: Finding,
    *,
    backend: str | None = None,
    runtime: str | None = None,
    first_ack_ticks: int | None = None,
) -> dict[str, Any]:
    """An explorer finding as a scenario body: its fault plan, the recorded run, and (if
    it came from a crash state) the crash, the restart and the resumed run.

    The explorer arms its plan before the first start (leading `fault` steps) and
    crashes at an op of the whole recorded run, which `crash.point` indexes. Its cut
    is an exact `CrashState.cut` of the default torn mode. After a crash the explorer
    also restores once more right after the restarted process's first acknowledged
    append (later appends could supersede what that one lost): `first_ack_ticks`, the
    ticks the restarted process read up to that append (`first_ack_ticks_of`), adds
    that restart to the scenario.
    """
    w = finding.workload
    steps: list[Step] = [{"fault": rule.to_dict()} for rule in w.plan.rules]
    if finding.violation.invariant == Invariant.SINGLE_WRITER:
        steps += second_writer_steps()
    else:
        if w.compact_after is not None:  # stop, compact offline, a second process reads again
            steps += [{"run": {"ticks": w.compact_after}}, {"compact": {}}]
        steps.append({"run": {"ticks": "all"}})
    where = "the recorded run"
    seeded = finding.crash_point is None and finding.cut == SEEDED_START
    if seeded and first_ack_ticks and w.compact_after is None:
        # the seeded start judged as a restart: restored again after its first append
        steps[-1] = {"run": {"ticks": first_ack_ticks}}
        steps += [{"restart": {}}, {"run": {"ticks": "all"}}]
        where = "the start on the seeded disk, restored again after its first append"
    if finding.crash_point is not None:
        restart: dict[str, Any] = {}
        if w.window_changed:  # every restarted process runs with the other window
            restart = {"config": {"window_updates": w.restart_window_updates}}
        steps += [
            {"crash": {"point": finding.crash_point, "cut": finding.cut, "unreachable": "last"}},
            {"restart": restart},
        ]
        if first_ack_ticks is not None:
            steps += [{"run": {"ticks": first_ack_ticks}}, {"restart": {}}]
        steps.append({"run": {"ticks": "all"}})
        where = f"crash after op {finding.crash_point} ({finding.op}): {finding.cut}"
    v = finding.violation
    return build_scenario(
        description=f"{v.invariant}: {v.message} [explorer, workload {w.name or '-'}, {where}]",
        fsync_model=w.model.value,
        window_updates=w.window_updates,
        input_=workload_input(w),
        steps=steps,
        backend=backend,
        runtime=runtime,
        initial_state=w.initial_state,
        missing_dir=w.initial_state is None,  # the explorer boots an empty disk then
        directory_at_state_path=w.directory_at_state_path,
        profile=w.profile,
    )


def workload_input(w: Workload) -> dict[str, object]:
    """The scenario `input` of a workload: its synthetic market, or every snapshot when
    the market was edited (ticks delivered twice, late snapshots)."""
    if w.edited:
        return {"snapshots": [snapshot_to_dict(s) for s in w.snapshots()]}
    return {"synthetic": {"symbols": w.symbols, "ticks": w.ticks, "seed": w.seed}}


def first_ack_ticks_of(explorer: Explorer, finding: Finding) -> int | None:
    """How many ticks the process restarted on the finding's crash state reads up to its
    first acknowledged append (None: no crash, a refusal, or no append at all)."""
    if finding.cut is None or (finding.crash_point is None and finding.cut != SEEDED_START):
        return None
    return explorer.ticks_to_first_ack(finding.workload, finding.crash_point, finding.cut)


def export_finding(
    finding: Finding,
    directory: Path | str,
    *,
    backend: str | None = None,
    runtime: str | None = None,
    explorer: Explorer | None = None,
) -> Path:
    """Write one explorer finding as a regression scenario; with the `explorer` that found
    it, including the restore after the restarted process's first append."""
    ticks_ = None if explorer is None else first_ack_ticks_of(explorer, finding)
    body = scenario_from_finding(finding, backend=backend, runtime=runtime, first_ack_ticks=ticks_)
    return write_scenario(finding.violation.invariant, body, directory)


def export_findings(
    findings: Sequence[Finding],
    directory: Path | str,
    *,
    backend: str | None = None,
    runtime: str | None = None,
    explorer: Explorer | None = None,
) -> list[Path]:
    """Per invariant, the smallest finding (earliest crash point, fewest faults), exported.
    A second writer's finding (`W5-single-writer`) is not: a scenario drives one process
    (see `exportable`)."""
    return [
        export_finding(f, directory, backend=backend, runtime=runtime, explorer=explorer)
        for f, _ in minimal_findings(findings)
        if exportable(f)
    ]


def exportable(finding: Finding) -> bool:
    """Whether a scenario can replay the finding: a second writer's (`W5-single-writer`)
    only from the explorer's own check of a workload (`second_writer_steps`), not one a
    crash state led to."""
    return finding.violation.invariant != Invariant.SINGLE_WRITER or finding.crash_point is None


def second_writer_steps() -> list[Step]:
    """The explorer's second-writer check as steps: a second writer tried beside a
    healthy first one, beside one halted by a failed fsync of the state folder's files
    (it still holds the path), and beside one started on the whole run's history (where
    a compacting backend rewrites its file)."""
    fsync_fails = {"op": "fsync", "path": f"{STATE_DIR}/*", "errno": "EIO", "persistent": True}
    return [
        {"run": {"ticks": 1}},
        {"second_writer": {}},
        {"fault": fsync_fails},
        {"run": {"ticks": 1}},
        {"second_writer": {}},
        {"restart": {}},
        {"run": {"ticks": "all"}},
        {"restart": {}},
        {"second_writer": {}},
    ]
