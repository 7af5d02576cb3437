"""The kit as a pytest plugin: one option runs it against a backend, its table tells the
truth, findings replay, and what it cannot test it says so (exit codes included)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REFERENCE = "crashkit.orchestrator.store.jsonl:BACKEND"
SQLITE_BACKEND = "crashkit.orchestrator.store.sqlite:BACKEND"

LAZY = '''
"""An outside backend that forgets to fsync (written on the reference's public hooks)."""
import os
from dataclasses import replace

from crashkit.orchestrator.store.jsonl import BACKEND as REFERENCE, JsonlStateBackend, open_jsonl_store
from crashkit.regime_engine.codec import encode_state


class Lazy(JsonlStateBackend):
    def append(self, states):
        os.write(self.fd, b"".join(encode_state(s) for s in states))


def open_lazy(path, config):
    return open_jsonl_store(path, config, writer=Lazy)


BACKEND = replace(REFERENCE, name="lazy", open=open_lazy, restore_only=None, spec=None)
'''

SQLITE = """
import os, sqlite3
from crashkit.orchestrator.store.protocol import Backend, OpenedStore, RestoreSummary
from crashkit.regime_engine.contracts import HysteresisStore


def open_store(path, config):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    conn = sqlite3.connect(path)
    return OpenedStore(conn, HysteresisStore(), RestoreSummary(path, "bootstrap"))


BACKEND = Backend("sqlite", open_store)
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", *args, timeout=600)


def test_the_reference_passes_and_the_table_and_json_say_what_was_judged(
    pytester: pytest.Pytester,
) -> None:
    out = pytester.path / "kit.json"
    result = run(
        pytester,
        f"--crashkit-backend={REFERENCE}",
        "--crashkit-suite=quick",
        "-k",
        "restore_row or single_writer or restore_table or scenario",
        f"--crashkit-json={out}",
    )
    assert result.ret == 0
    assert _count(result, "passed") >= 30  # rows, table rows, the single writer, scenarios
    text = result.stdout.str()
    assert "crashkit conformance kit" in text and "W5-single-writer" in text
    data = json.loads(out.read_text())
    assert data["violations"] == 0 and data["backend"] == REFERENCE
    assert data["checked_by_invariant"]["R4-restore-table"] > 0
    # the single-writer item, and the scenario that opens a second writer
    assert data["checked_by_invariant"]["W5-single-writer"] == 2


def test_the_sqlite_backend_passes_what_applies_and_is_told_what_does_not(
    pytester: pytest.Pytester,
) -> None:
    """The second shipped backend (not a line file) through the same kit: the restore rows
    for any backend, the single writer and the scenario library pass; the restore table
    and the files that need a line file are n/a, with the reason. (`make crash` runs the
    whole quick suite on it, explorer and machines included.)"""
    out = pytester.path / "kit.json"
    result = run(
        pytester,
        f"--crashkit-backend={SQLITE_BACKEND}",
        "--crashkit-suite=quick",
        "-k",
        "restore_row or single_writer or restore_table or scenario",
        f"--crashkit-json={out}",
    )
    assert result.ret == 0, result.stdout.str()[-3000:]
    text = result.stdout.str()
    assert "sqlite does not declare line_format" in text
    assert "needs line_format" in text
    data = json.loads(out.read_text())
    assert data["violations"] == 0 and data["backend"] == SQLITE_BACKEND
    assert data["checked_by_invariant"]["R4-restore-table"] > 0  # the rows for any backend
    # the single-writer item, and the scenario that opens a second writer
    assert data["checked_by_invariant"]["W5-single-writer"] == 2
    assert _count(result, "passed") >= 30  # rows, the single writer, scenarios


def _count(result: pytest.RunResult, word: str) -> int:
    found = re.search(rf"(\d+) {word}", result.stdout.lines[-1])
    return int(found.group(1)) if found else 0


def test_a_backend_that_skips_fsync_is_named_under_durability_and_its_finding_replays(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(lazy=LAZY)
    result = run(
        pytester,
        "--crashkit-backend=lazy:BACKEND",
        "--crashkit-suite=quick",
        "-k",
        "crash_exploration",
    )
    assert result.ret == 1
    text = result.stdout.str()
    assert "1-durability: acknowledged" in text
    scenario = re.search(r"scenario: (\S+1-durability-\w+\.yaml)", text)
    assert scenario is not None, text
    path = Path(scenario.group(1))
    assert ".pytest_cache" in str(path)  # pytest's folder, not the project's scenarios/
    replay = subprocess.run(
        [sys.executable, "-m", "crashkit.harness", "scenarios", "run", str(path), "--trace"],
        capture_output=True,
        text=True,
        cwd=pytester.path,
        env={"PYTHONPATH": str(pytester.path), "PATH": ""},
        timeout=120,
    )
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "invariant 1-durability" in replay.stdout


def test_a_backend_whose_io_is_invisible_exits_2_and_says_why(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(sqlbackend=SQLITE)
    result = run(pytester, "--crashkit-backend=sqlbackend:BACKEND", "--crashkit-suite=quick")
    assert result.ret == 2
    text = result.stdout.str() + result.stderr.str()
    assert "sqlite3.connect('/crashkit/state/hysteresis.jsonl')" in text
    assert "cannot see" in text


def test_a_bad_backend_spec_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--crashkit-backend=nomodule")
    assert result.ret == 4
    assert "module:attribute" in result.stderr.str()


def test_without_a_backend_the_kit_adds_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "crashkit conformance kit" not in result.stdout.str()


def test_the_fixture_can_name_the_backend_and_checks_that_do_not_apply_say_so(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        "import pytest\n"
        "from dataclasses import replace\n"
        "from crashkit.orchestrator.store import jsonl\n"
        "from crashkit.orchestrator.store.protocol import Capabilities\n"
        "@pytest.fixture(scope='session')\n"
        "def crashkit_backend():\n"
        "    return replace(jsonl.BACKEND, name='opaque', capabilities=Capabilities(),\n"
        "                   spec=None)\n"
    )
    pytester.makepyfile(test_kit="from crashkit.harness.kit.suite import *\n")
    result = run(pytester, "-k", "single_writer or restore_table", "-rs")
    text = result.stdout.str()
    assert result.ret == 0, text
    assert "not applicable: opaque does not declare single_writer" in text
    assert "does not declare line_format" in text


def test_shards_partition_the_items(pytester: pytest.Pytester) -> None:
    def items(*args: str) -> set[str]:  # (a collection only: in this process, no fork)
        collect = ("-p", "no:randomly", f"--crashkit-backend={REFERENCE}", "--co", "-q")
        result = pytester.runpytest_inprocess(*collect, *args)
        return {line for line in result.stdout.lines if line.startswith("crashkit::")}

    def parts_of(names: set[str]) -> set[str]:  # explorer items are named by their share
        return {n for n in names if re.search(r"\[part\d+of\d+\]", n)}

    whole = items()
    parts = [items("--crashkit-shard=0/2"), items("--crashkit-shard=1/2")]
    assert parts[0] and parts[1] and not parts[0] & parts[1]
    assert whole - parts_of(whole) == (parts[0] | parts[1]) - parts_of(parts[0] | parts[1])
    # the explorer's work is cut twice as fine, each shard taking every other part
    assert len(parts_of(parts[0] | parts[1])) == 2 * len(parts_of(whole))


def test_the_selftest_lists_every_variant_under_each_driver(pytester: pytest.Pytester) -> None:
    from crashkit.harness.kit.variants import ALL_VARIANTS

    result = pytester.runpytest_inprocess("-p", "no:randomly", "--crashkit-selftest", "--co", "-q")
    listed = [line for line in result.stdout.lines if line.startswith("crashkit::test_selftest")]
    assert len(listed) == sum(len(v.caught_by) for v in ALL_VARIANTS)


def test_the_plugin_knows_the_suites_without_importing_them() -> None:
    """The plugin offers the suites' names without importing the harness (a project that
    merely has crashkit installed pays nothing for it at its pytest's start)."""
    from crashkit.harness.kit import plugin
    from crashkit.harness.kit.suites import KIT_SUITES

    assert tuple(sorted(KIT_SUITES)) == plugin.SUITE_NAMES
    heavy = ("crashkit.faults", "crashkit.harness.explore", "crashkit.harness.machines")
    code = (
        "import sys, crashkit.harness.kit.plugin; "
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
