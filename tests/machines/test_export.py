"""Regression export: file names, the schema, line entries, the corrupt vocabulary, and
explorer findings written as scenarios (always into tmp dirs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crashkit.faults import FaultPlan, FaultRule
from crashkit.harness.explore import Explorer, Finding, Workload
from crashkit.harness.judge.invariants import Invariant, Violation
from crashkit.harness.kit.selftest import TARGETS
from crashkit.harness.kit.variants import BY_NAME
from crashkit.harness.scenarios import export, load_scenario, run_loaded
from crashkit.harness.scenarios.corrupt import CORRUPTIONS, corrupt_file, corrupt_line, line_count
from crashkit.regime_engine.codec import RecordError, decode_record, encode_state
from crashkit.regime_engine.contracts import Regime
from tests.conftest import make_state

STATE = make_state("BTC", 5, Regime.CHOP_BALANCED, Regime.SQUEEZE_UP, 1, 7)
RECORD = encode_state(STATE)


def body(**overrides: object) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "description": "d",
        "fsync_model": "keep-dirty",
        "window_updates": 3,
        "input_": {"snapshots": []},
        "steps": [{"restart": {}}],
    }
    kwargs.update(overrides)
    return export.build_scenario(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", CORRUPTIONS)
@pytest.mark.parametrize("line", [RECORD[:-1], b"garbage", b"[1,2]", b""])
def test_every_corruption_yields_an_invalid_line(kind: str, line: bytes) -> None:
    damaged = corrupt_line(line, kind)
    assert b"\n" not in damaged
    with pytest.raises(RecordError):
        decode_record(damaged)


def test_corrupt_file_replaces_one_complete_line_and_keeps_the_torn_tail() -> None:
    data = RECORD + b"\n" + RECORD + b'{"torn'
    assert line_count(data) == 3
    out = corrupt_file(data, 3, "garbage")
    assert out == RECORD + b"\n" + corrupt_line(RECORD[:-1], "garbage") + b'\n{"torn'
    with pytest.raises(ValueError):
        corrupt_file(data, 4, "garbage")
    with pytest.raises(ValueError):
        corrupt_line(RECORD, "bit_rot")


def test_line_entries_round_trip_and_stay_readable() -> None:
    data = (
        RECORD  # canonical: a {record: ...} entry
        + b'{"schema": "hysteresis_store_record"}\n'  # text
        + b"\n"  # blank
        + b"\xff\xfe\n"  # not UTF-8
        + b"\0\0\n"  # not printable
        + b'{"tor'  # torn tail: exact bytes, no newline
    )
    entries = export.line_entries(data)
    assert entries[0] == {"record": export.record_fields(STATE)}
    assert encode_state(export.state_of_fields(entries[0]["record"])) == RECORD
    assert entries[1] == '{"schema": "hysteresis_store_record"}'
    assert entries[2] == ""
    assert entries[3] == {"raw_hex": "fffe0a"}
    assert entries[4] == {"raw_hex": "00000a"}
    assert entries[5] == {"raw_hex": b'{"tor'.hex()}
    assert export.initial_bytes(entries) == data
    # through YAML too
    assert export.initial_bytes(yaml.safe_load(export.dump({"lines": entries}))["lines"]) == data


def test_name_is_invariant_and_content_hash_and_the_file_stem(tmp_path: Path) -> None:
    a, b = body(), body(description="other")
    assert export.scenario_name("1-durability", a) == export.scenario_name("1-durability", a)
    assert export.scenario_name("1-durability", a) != export.scenario_name("1-durability", b)
    name = export.scenario_name("R4-restore-table", a)
    assert name.startswith("R4-restore-table-") and len(name.rsplit("-", 1)[1]) == 12
    path = export.write_scenario("R4-restore-table", a, tmp_path)
    assert path.name == f"{name}.yaml"
    assert export.write_scenario("R4-restore-table", a, tmp_path) == path  # idempotent
    data = yaml.safe_load(path.read_text())
    assert data["name"] == path.stem
    assert list(data) == [
        "name",
        "description",
        "fsync_model",
        "config",
        "input",
        "steps",
        "expect",
    ]
    with pytest.raises(ValueError):
        export.scenario_name("x", {"name": "n"})


def test_optional_keys_come_in_schema_order() -> None:
    full = body(backend="m:f", runtime="m:C", initial_state=RECORD)
    assert list(full) == [
        "description",
        "backend",
        "runtime",
        "fsync_model",
        "config",
        "input",
        "initial_state",
        "steps",
        "expect",
    ]
    assert full["expect"] == {"invariants": ["all"]}


def test_merge_runs_joins_consecutive_counted_runs_only() -> None:
    steps: list[export.Step] = [
        {"run": {"ticks": 1}},
        {"run": {"ticks": 2}},
        {"fault": {"op": "write"}},
        {"run": {"ticks": 1}},
        {"run": {"ticks": "all"}},
    ]
    assert export.merge_runs(steps) == [
        {"run": {"ticks": 3}},
        {"fault": {"op": "write"}},
        {"run": {"ticks": 1}},
        {"run": {"ticks": "all"}},
    ]


def test_a_finding_with_a_fault_plan_and_a_crash_becomes_fault_run_crash_restart_run() -> None:
    rule = FaultRule("fsync", "*/hysteresis.jsonl", nth=4, errno="EIO")
    workload = Workload(symbols=2, ticks=8, seed=5, plan=FaultPlan((rule,)), name="w")
    finding = Finding(Violation(Invariant.DURABILITY, "lost"), workload, 17, "cut text", "fsync")
    scenario = export.scenario_from_finding(finding, backend="m:f")
    assert scenario["input"] == {"synthetic": {"symbols": 2, "ticks": 8, "seed": 5}}
    assert scenario["steps"] == [
        {"fault": rule.to_dict()},
        {"run": {"ticks": "all"}},
        {"crash": {"point": 17, "cut": "cut text", "unreachable": "last"}},
        {"restart": {}},
        {"run": {"ticks": "all"}},
    ]
    assert scenario["backend"] == "m:f" and "runtime" not in scenario
    assert scenario["initial_state"] == {"missing_dir": True}  # the explorer's empty disk


@pytest.mark.parametrize("name", ["restore-by-file-order", "no-fsync", "torn-tail-not-cut"])
def test_explorer_findings_of_a_variant_are_exported(name: str, tmp_path: Path) -> None:
    target = next(t for t in TARGETS if t.variant.name == name)
    variant = BY_NAME[name]
    explorer = Explorer(variant.backend)
    summary = explorer.run(variant.workload)
    assert summary.findings
    paths = export.export_findings(
        summary.findings, tmp_path, backend=target.backend_spec, explorer=explorer
    )
    assert {p.name.rsplit("-", 1)[0] for p in paths} >= {variant.invariant}
    for path in paths:
        data = yaml.safe_load(path.read_text())
        assert data["name"] == path.stem
        assert data["backend"] == target.backend_spec
        assert data["fsync_model"] == variant.workload.model.value
        if variant.workload.initial_state is not None:
            lines = data["initial_state"]["lines"]
            assert export.initial_bytes(lines) == variant.workload.initial_state
        else:  # the explorer boots an empty disk: the folder is created by the backend
            assert data["initial_state"] == {"missing_dir": True}
        kinds = [next(iter(step)) for step in data["steps"]]
        assert kinds in (
            ["run"],
            ["run", "crash", "restart", "run"],
            ["run", "crash", "restart", "run", "restart", "run"],  # + the re-restore
            ["run", "restart", "run"],  # the seeded start, restored after its first append
        )
        # The scenario runner reproduces the finding on the variant.
        result = run_loaded(load_scenario(path))
        invariant = path.name.rsplit("-", 1)[0]
        assert any(invariant in c.name or invariant in c.message for c in result.failures), (
            path.read_text(),
            [(c.name, c.message) for c in result.failures],
        )
