"""The conformance kit as pytest items: everything crashkit checks, against one backend.

The plugin (`crashkit.harness.kit.plugin`, installed with crashkit) collects this module
when a backend is named (`--crashkit-backend=module:BACKEND`, or the `crashkit_backend`
ini option). It is also importable: a test file holding

    from crashkit.harness.kit.suite import *

runs the same items, with the `crashkit_backend` fixture overridden in that file or a
conftest (SQLAlchemy's dialect-suite pattern). Items never name a backend; a check that
does not apply to it is skipped with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crashkit.faults.real import fuse_unavailable
from crashkit.harness.kit import checks, runs
from crashkit.harness.kit.plugin import KitConfig, kit_config
from crashkit.harness.kit.runs import KitResult
from crashkit.harness.kit.suites import MachineItem
from crashkit.harness.kit.variants import ALL_VARIANTS, Variant
from crashkit.harness.scenarios.library import library_files
from crashkit.orchestrator.store.protocol import Backend

__all__ = [
    "pytest_generate_tests",
    "test_crash_exploration",
    "test_fsync_failure_models",
    "test_io_error_sweep",
    "test_real_process",
    "test_restore_row",
    "test_restore_table",
    "test_scenario",
    "test_selftest",
    "test_single_writer",
    "test_state_machine",
]

pytestmark = pytest.mark.crashkit


def _mine(kit: KitConfig, items: list[Any]) -> list[Any]:
    """This shard's share of `items` (round robin: `--crashkit-shard i/n`)."""
    index, count = kit.shard
    return [item for n, item in enumerate(items) if n % count == index]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    kit = kit_config(metafunc.config)
    name = metafunc.function.__name__
    if name in ("test_crash_exploration", "test_io_error_sweep", "test_fsync_failure_models"):
        index, count = kit.shard
        total = kit.suite.parts * count  # explorer parts are state-level shards of the work
        parts = [p for p in range(total) if p % count == index]
        metafunc.parametrize(
            "part", [(p, total) for p in parts], ids=[f"part{p}of{total}" for p in parts]
        )
    elif name == "test_state_machine":
        items = _mine(kit, list(kit.suite.machines))
        metafunc.parametrize("item", items, ids=[i.id for i in items])
    elif name == "test_restore_row":
        rows = _mine(kit, list(checks.NEUTRAL_ROWS))
        metafunc.parametrize("row", rows, ids=rows)
    elif name == "test_restore_table":
        rows = _mine(kit, list(checks.TABLE_ROWS))
        metafunc.parametrize("row", rows, ids=rows)
    elif name == "test_scenario":
        files = _mine(kit, library_files())
        metafunc.parametrize("path", files, ids=[p.stem for p in files])
    elif name == "test_selftest":
        pairs = [(v, d) for v in ALL_VARIANTS for d in sorted(v.caught_by)] if kit.selftest else []
        if kit.selftest and kit.real:  # the real-process mode too (`--crashkit-real`)
            pairs += [(v, "real") for v in ALL_VARIANTS if v.real_invariant is not None]
        pairs = _mine(kit, pairs)
        metafunc.parametrize("variant,driver", pairs, ids=[f"{v.name}-{d}" for v, d in pairs])


def _finish(request: pytest.FixtureRequest, result: KitResult) -> None:
    """Record the item's result for the final table, then pass, skip or fail it."""
    request.node.user_properties.append(("crashkit", json.dumps(result.to_json())))
    if result.not_applicable is not None:
        pytest.skip(f"not applicable: {result.not_applicable}")
    if result.failed:
        pytest.fail(result.message(), pytrace=False)


def _explore(
    request: pytest.FixtureRequest,
    backend: Backend,
    kit: KitConfig,
    kind: str,
    part: tuple[int, int],
) -> None:
    result = runs.explore(
        backend,
        kit.suite,
        kind,
        *part,
        findings_dir=kit.findings_dir,
        max_findings=kit.max_findings,
        profile=kit.profile,
    )
    _finish(request, result)


def test_crash_exploration(
    request: pytest.FixtureRequest,
    crashkit_target: Backend,
    crashkit: KitConfig,
    part: tuple[int, int],
) -> None:
    """Crash every recorded run at every point, restart on every disk it may leave."""
    _explore(request, crashkit_target, crashkit, "crash", part)


def test_io_error_sweep(
    request: pytest.FixtureRequest,
    crashkit_target: Backend,
    crashkit: KitConfig,
    part: tuple[int, int],
) -> None:
    """Fail every I/O call of a clean run in turn (EIO, ENOSPC, EDQUOT, EACCES, EROFS)."""
    _explore(request, crashkit_target, crashkit, "sweep", part)


def test_fsync_failure_models(
    request: pytest.FixtureRequest,
    crashkit_target: Backend,
    crashkit: KitConfig,
    part: tuple[int, int],
) -> None:
    """Fail each fsync under keep-dirty, mark-clean and drop, and crash after every op."""
    _explore(request, crashkit_target, crashkit, "models", part)


def test_state_machine(
    request: pytest.FixtureRequest, crashkit_target: Backend, crashkit: KitConfig, item: MachineItem
) -> None:
    """The store-level or orchestrator-level hypothesis state machine on the backend."""
    _finish(
        request,
        runs.machine(
            crashkit_target,
            crashkit.suite,
            item,
            findings_dir=crashkit.findings_dir,
            profile=crashkit.profile,
        ),
    )


def test_restore_row(request: pytest.FixtureRequest, crashkit_target: Backend, row: str) -> None:
    """A restore rule that holds for any backend (missing, special, unreadable, damaged)."""
    _finish(request, runs.row(crashkit_target, row))


def test_restore_table(request: pytest.FixtureRequest, crashkit_target: Backend, row: str) -> None:
    """One row of the contract's restore table on a seeded file (line-format backends)."""
    _finish(request, runs.table_row(crashkit_target, row))


def test_real_process(
    request: pytest.FixtureRequest, crashkit_target: Backend, crashkit: KitConfig
) -> None:
    """`crashkit run` as a real process on a FUSE mount, restarted on every crash state
    (`--crashkit-real`; `crashkit explore --real`)."""
    _finish(request, runs.real(crashkit_target, crashkit.profile))


def test_single_writer(request: pytest.FixtureRequest, crashkit_target: Backend) -> None:
    """A second writer on the same path is refused (backends that declare single_writer)."""
    _finish(request, runs.single_writer(crashkit_target))


def test_scenario(request: pytest.FixtureRequest, crashkit_target: Backend, path: Path) -> None:
    """One file of the scenario library, judged on its contract-level expectations."""
    _finish(request, runs.scenario(crashkit_target, path))


def test_selftest(
    request: pytest.FixtureRequest, crashkit: KitConfig, variant: Variant, driver: str
) -> None:
    """A shipped broken variant, through one driver: it must be caught under its invariant."""
    if driver == "real" and (reason := fuse_unavailable()) is not None:
        pytest.skip(f"not applicable: no FUSE mount here: {reason}")
    caught = runs.selftest(variant, driver, crashkit.suite, library_files())
    want = variant.real_invariant if driver == "real" else variant.invariant
    assert want is not None
    if not caught.caught:
        pytest.fail(
            f"the {driver} did not catch {variant.name} under {want.value} "
            f"(it found: {', '.join(caught.found) or 'nothing'}): the kit would miss this bug",
            pytrace=False,
        )
