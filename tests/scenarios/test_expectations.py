"""Every expectation is really checked: one wrong value makes its scenario fail on that check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from msgspec import UNSET
from msgspec.structs import replace

from crashkit.faults.real import fuse_unavailable
from crashkit.harness.scenarios import load_scenario, run_loaded
from crashkit.harness.scenarios import schema as s
from crashkit.harness.scenarios.expect import compare, updated_expect
from crashkit.harness.scenarios.loader import parse_yaml
from tests.scenarios.conftest import library_files

FILES = library_files()


def mutations(expect: s.Expect) -> Iterator[tuple[str, s.Expect]]:
    """(the check that must fail, the expectation with exactly one value wrong)."""
    st = expect.startup
    if isinstance(st, s.StartupExpect):
        if st.outcome is not UNSET:
            wrong = "fatal" if st.outcome != "fatal" else "ok"
            yield "startup.outcome", replace(expect, startup=replace(st, outcome=wrong))
        if isinstance(st.exit_code, int):
            yield (
                "startup.exit_code",
                replace(expect, startup=replace(st, exit_code=st.exit_code + 1)),
            )
    if expect.halted_tick is not UNSET:
        yield "halted_tick", replace(expect, halted_tick=0 if expect.halted_tick is None else None)
    if expect.exit_code is not UNSET:
        code = expect.exit_code
        yield "exit_code", replace(expect, exit_code=0 if code is None else code + 1)
    ev = expect.events
    if isinstance(ev, s.EventsExpect):
        if isinstance(ev.by_type, dict):
            counts = dict(ev.by_type)
            first = next(iter(counts), "scheduling_halted")
            counts[first] = counts.get(first, 0) + 1
            yield "events.by_type", replace(expect, events=replace(ev, by_type=counts))
        if isinstance(ev.exact, list) and ev.exact:
            yield "events.exact", replace(expect, events=replace(ev, exact=ev.exact[:-1]))
        if isinstance(ev.contains, list):
            extra = s.EventExpect(event_type="hysteresis_decision_published", symbol="NOPE")
            yield (
                "events.contains",
                replace(expect, events=replace(ev, contains=[*ev.contains, extra])),
            )
    if isinstance(expect.final_states, dict):
        states = dict(expect.final_states)
        if states:
            symbol, want = next(iter(states.items()))
            progress = want.progress_current if isinstance(want.progress_current, int) else 0
            states[symbol] = replace(want, progress_current=progress + 7)
        else:
            states["NOPE"] = s.FinalStateExpect()
        yield "final_states", replace(expect, final_states=states)
    report = expect.restore_report
    if isinstance(report, s.RestoreReportExpect):
        for key in ("lines", "valid", "blank", "torn_tail_bytes", "ties"):
            value = getattr(report, key)
            if isinstance(value, int):
                wrong_report = replace(report, **{key: value + 1})
                yield f"restore_report.{key}", replace(expect, restore_report=wrong_report)
        if report.outcome is not UNSET:
            wrong = "fatal" if report.outcome != "fatal" else "ok"
            yield (
                "restore_report.outcome",
                replace(expect, restore_report=replace(report, outcome=wrong)),
            )
        if isinstance(report.winners, dict) and report.winners:
            winners = dict(report.winners)
            symbol, want = next(iter(winners.items()))
            progress = want.progress_current if isinstance(want.progress_current, int) else 0
            winners[symbol] = replace(want, progress_current=progress + 7)
            yield (
                "restore_report.winners",
                replace(expect, restore_report=replace(report, winners=winners)),
            )
        if isinstance(report.invalid, list):
            more = [*report.invalid, s.InvalidLineExpect(line=99, reason_prefix="not_json")]
            yield (
                "restore_report.invalid",
                replace(expect, restore_report=replace(report, invalid=more)),
            )
    if isinstance(expect.reference, s.Expect):
        for name, wrong in mutations(expect.reference):
            yield f"reference.{name}", replace(expect, reference=wrong)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_wrong_expectation_fails_its_check(path: Path) -> None:
    loaded = load_scenario(path)
    result = run_loaded(loaded)
    if loaded.spec.mode == "real" and fuse_unavailable() is not None:
        pytest.skip(f"real mode: {result.not_applicable}")
    assert result.passed and result.observed is not None
    tried = 0
    for name, wrong in mutations(loaded.spec.expect):
        checks = compare(wrong, result.observed)
        failed = [c for c in checks if not c.ok]
        assert [c.name for c in failed] == [name], (name, failed)
        assert failed[0].message  # says what was wanted and what was seen
        tried += 1
    assert tried >= 3, "the scenario pins too little to be worth keeping"
    raw, _ = parse_yaml(loaded.text, str(path))
    assert isinstance(raw, dict)
    assert updated_expect(raw.get("expect"), result.observed) == raw["expect"], (
        "a passing scenario's expect block must be a fixed point of --update"
    )


def test_a_wrong_value_in_the_file_fails_the_run(tmp_path: Path) -> None:
    """End to end: edit one number of a library file and run it again."""
    source = next(p for p in FILES if p.stem == "write-enospc")
    text = source.read_text().replace("exit_code: 4", "exit_code: 5")
    copy = tmp_path / source.name
    copy.write_text(text)
    result = run_loaded(load_scenario(copy))
    assert not result.passed
    assert [c.name for c in result.failures] == ["reference.exit_code"]
    assert result.failures[0].message == "want 5, got 4"
