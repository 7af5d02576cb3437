"""The kit's pytest plugin, installed with crashkit (a `pytest11` entry point): nothing to
write but `pytest --crashkit-backend=module:BACKEND`.

Options (each also an ini key, `crashkit_backend = ...` in `[tool.pytest.ini_options]`
or `pytest.ini`): `--crashkit-backend`, `--crashkit-suite quick|ci|nightly` (default
ci), `--crashkit-shard i/n`, `--crashkit-selftest`, `--crashkit-findings DIR`,
`--crashkit-max-findings N`, `--crashkit-json FILE`, `--crashkit-profile NAME[:BLOCK]`,
`--crashkit-real` (also `crashkit run` as a real process on a FUSE mount). When a backend is named (or the
self-test asked for), the kit's items (`crashkit.harness.kit.suite`) are collected
beside the project's own tests; the `crashkit_backend` fixture can be overridden in a
conftest instead (it returns a `Backend` or a `module:attribute`). At the end one table
sums every item: per invariant, what was judged, what broke, the smallest reproduction
and the command that replays it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from crashkit.orchestrator.errors import ConfigError
from crashkit.orchestrator.store.protocol import Backend, importable_from, load_backend

if TYPE_CHECKING:  # (the harness is imported once the kit is asked for: a pytest session
    # of a project that merely has crashkit installed pays nothing for it)
    from crashkit.harness.kit.report import KitReport
    from crashkit.harness.kit.suites import KitSuite

SUITE_MODULE = "crashkit.harness.kit.suite"
#: `crashkit.harness.kit.suites.KIT_SUITES`' names (tests/kit/test_plugin.py checks them)
SUITE_NAMES = ("ci", "nightly", "quick")
DEFAULT_MAX_FINDINGS = 10
#: pytest's exit status when the backend cannot be tested here (its I/O is invisible).
EXIT_INVISIBLE_IO = 2


@dataclass(frozen=True, slots=True)
class KitConfig:
    """The kit's settings for this session (the same in every xdist worker)."""

    spec: str | None
    suite_name: str
    shard: tuple[int, int]
    selftest: bool
    findings_dir: Path
    max_findings: int
    json_path: Path | None
    default_findings: bool
    #: the file-system profile of the explorer's crash states (`crashkit.faults.PROFILES`)
    profile: str = "prefix"
    #: also the real-process item (`--crashkit-real`)
    real: bool = False

    @property
    def active(self) -> bool:
        return self.spec is not None or self.selftest

    @property
    def suite(self) -> KitSuite:
        from crashkit.harness.kit.suites import KIT_SUITES

        return KIT_SUITES[self.suite_name]


KIT_KEY = pytest.StashKey[KitConfig]()


def kit_config(config: pytest.Config) -> KitConfig:
    return config.stash[KIT_KEY]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crashkit", "crashkit conformance kit")
    group.addoption(
        "--crashkit-backend",
        metavar="MODULE:ATTR",
        help="run the conformance kit against this backend (a Backend declaration or a factory)",
    )
    group.addoption("--crashkit-suite", choices=SUITE_NAMES, help="how much (default: ci)")
    group.addoption("--crashkit-shard", metavar="I/N", help="run shard i of n (i from 0)")
    group.addoption(
        "--crashkit-selftest",
        action="store_true",
        help="also run the shipped broken variants and fail if any is not caught",
    )
    group.addoption("--crashkit-findings", metavar="DIR", help="where findings are written")
    group.addoption(
        "--crashkit-max-findings",
        type=int,
        metavar="N",
        help=f"findings kept per invariant per item (default {DEFAULT_MAX_FINDINGS})",
    )
    group.addoption("--crashkit-json", metavar="FILE", help="write the summary as JSON")
    group.addoption(
        "--crashkit-real",
        action="store_true",
        help="also run crashkit run as a real process on a FUSE mount, restarted on every "
        "crash state (needs /dev/fuse and fuse3)",
    )
    group.addoption(
        "--crashkit-profile",
        metavar="NAME[:BLOCK]",
        help="file-system profile of the explorer's crash states (default: prefix; "
        "ext4-ordered, ext4-writeback, xfs, btrfs, posix; NAME:BLOCK, e.g. posix:512)",
    )
    parser.addini("crashkit_backend", "the backend the conformance kit runs against")
    parser.addini("crashkit_suite", "quick, ci or nightly", default="ci")
    parser.addini("crashkit_findings", "where the kit writes findings")


def _option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(f"--crashkit-{name.replace('_', '-')}")
    if value in (None, ""):
        value = (
            config.getini(f"crashkit_{name}") if name in ("backend", "suite", "findings") else None
        )
    return value or None


def _shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return (0, 1)
    from crashkit.harness.explore.suite import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--crashkit-shard: {exc}") from exc


def _findings_dir(config: pytest.Config) -> tuple[Path, bool]:
    given = _option(config, "findings")
    if given:
        return Path(given).resolve(), False
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("crashkit-findings")), True
    return Path(tempfile.gettempdir()) / "crashkit-findings", True


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "crashkit: an item of the crashkit conformance kit")
    suite_name = _option(config, "suite") or "ci"
    if suite_name not in SUITE_NAMES:
        raise pytest.UsageError(
            f"crashkit_suite: {suite_name!r} is not one of {', '.join(SUITE_NAMES)}"
        )
    spec = _option(config, "backend")
    findings, default = _findings_dir(config)
    maximum = config.getoption("--crashkit-max-findings")
    if maximum is not None and maximum < 1:
        raise pytest.UsageError("--crashkit-max-findings: must be at least 1")
    json_path = config.getoption("--crashkit-json")
    profile = config.getoption("--crashkit-profile")
    if profile is not None:
        from crashkit.faults import profile_named

        try:
            profile = profile_named(profile).name
        except ValueError as exc:
            raise pytest.UsageError(f"--crashkit-profile: {exc}") from exc
    kit = KitConfig(
        spec=spec,
        suite_name=suite_name,
        shard=_shard(config.getoption("--crashkit-shard")),
        selftest=bool(config.getoption("--crashkit-selftest")),
        findings_dir=findings,
        max_findings=maximum or DEFAULT_MAX_FINDINGS,
        json_path=Path(json_path) if json_path else None,
        default_findings=default,
        profile=profile or "prefix",
        real=bool(config.getoption("--crashkit-real")),
    )
    config.stash[KIT_KEY] = kit
    # a backend module beside the tests is importable, as pytest's `pythonpath` would make it
    importable_from(config.invocation_params.dir, config.rootpath)
    if spec is not None:
        from crashkit.harness.explore.probe import InvisibleIO, require_visible

        try:
            backend = load_backend(spec)
        except ConfigError as exc:
            raise pytest.UsageError(f"--crashkit-backend: {exc}") from exc
        if not hasattr(config, "workerinput"):  # once, in the controlling process
            try:
                require_visible(backend)
            except InvisibleIO as exc:
                pytest.exit(str(exc), returncode=EXIT_INVISIBLE_IO)


def pytest_sessionstart(session: pytest.Session) -> None:
    kit = kit_config(session.config)
    if kit.active and kit.default_findings and not hasattr(session.config, "workerinput"):
        shutil.rmtree(kit.findings_dir, ignore_errors=True)  # (the cache folder is ours)
        kit.findings_dir.mkdir(parents=True, exist_ok=True)


def _suite_path() -> Path:
    spec = importlib.util.find_spec(SUITE_MODULE)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin)


class KitModule(pytest.Module):
    """The kit's items, collected beside the project's own tests (node id `crashkit`).

    The module is imported by its name, not as a file: pytest would otherwise import it
    a second time under a name made up from its path."""

    def _getobj(self) -> Any:
        return importlib.import_module(SUITE_MODULE)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    report = yield
    if isinstance(collector, pytest.Session) and kit_config(collector.config).active:
        report.result.append(
            KitModule.from_parent(collector, path=_suite_path(), nodeid="crashkit")
        )
    return report


def _is_kit(item: pytest.Item) -> bool:
    function = getattr(item, "function", None)
    return getattr(function, "__module__", None) == SUITE_MODULE


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    kit = kit_config(config)
    injected = [i for i in items if isinstance(i.parent, KitModule)]
    imported = [i for i in items if _is_kit(i) and not isinstance(i.parent, KitModule)]
    drop: list[pytest.Item] = []
    if imported:  # a test file star-imports the suite: run its items, not ours twice
        drop += injected
    for item in items:
        if not _is_kit(item) or item in drop:
            continue
        name = getattr(item, "originalname", item.name)
        if name == "test_selftest" and not kit.selftest:
            drop.append(item)
        elif name != "test_selftest" and kit.spec is None and isinstance(item.parent, KitModule):
            drop.append(item)  # the self-test alone was asked for
        elif name in ("test_single_writer", "test_real_process") and kit.shard[0] != 0:
            drop.append(item)  # one item: shard 0's
        elif name == "test_real_process" and not kit.real:
            drop.append(item)  # asked for with --crashkit-real
        elif not hasattr(item, "callspec") and name not in (
            "test_single_writer",
            "test_real_process",
        ):
            drop.append(item)  # a parameter list that came out empty (another shard's)
    if drop:
        dropped = set(map(id, drop))
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if id(i) not in dropped]
    _spread(items)


#: The items that take seconds to minutes (the rest take milliseconds).
HEAVY = frozenset(
    {
        "test_crash_exploration",
        "test_io_error_sweep",
        "test_fsync_failure_models",
        "test_state_machine",
        "test_real_process",
    }
)


def _spread(items: list[pytest.Item]) -> None:
    """Space the kit's heavy items evenly among its light ones, in place.

    pytest-xdist hands each worker a run of consecutive items first; with the heavy ones
    side by side, one worker would get them all and the others would wait for it."""
    slots = [n for n, item in enumerate(items) if _is_kit(item)]
    kit = [items[n] for n in slots]
    heavy = [i for i in kit if getattr(i, "originalname", i.name) in HEAVY]
    light = [i for i in kit if getattr(i, "originalname", i.name) not in HEAVY]
    if not heavy or not light:
        return
    order: list[pytest.Item] = []
    step = len(kit) / len(heavy)
    marks = {int(k * step) for k in range(len(heavy))}
    h, l_ = iter(heavy), iter(light)
    for n in range(len(kit)):
        order.append(next(h) if n in marks else next(l_))
    for n, item in zip(slots, order, strict=True):
        items[n] = item


@pytest.fixture(scope="session")
def crashkit(request: pytest.FixtureRequest) -> KitConfig:
    """The kit's settings for this session."""
    return kit_config(request.config)


@pytest.fixture(scope="session")
def crashkit_backend(crashkit: KitConfig) -> Backend | str:
    """The backend under test: override this fixture to name it in code."""
    if crashkit.spec is None:
        pytest.skip(
            "no backend: pass --crashkit-backend=module:BACKEND or override crashkit_backend"
        )
    return crashkit.spec


@pytest.fixture(scope="session")
def crashkit_target(crashkit_backend: Backend | str) -> Backend:
    """`crashkit_backend` as a `Backend`, once checked to be visible to the fault layer."""
    backend = crashkit_backend
    if isinstance(backend, str):
        try:
            backend = load_backend(backend)
        except ConfigError as exc:
            pytest.exit(f"crashkit_backend: {exc}", returncode=4)
    if not isinstance(backend, Backend):
        pytest.exit(
            f"crashkit_backend returned {type(backend).__name__}; it must return a "
            "crashkit.orchestrator.store.protocol.Backend or a 'module:attribute' string",
            returncode=4,
        )
    from crashkit.harness.explore.probe import InvisibleIO, require_visible

    try:
        require_visible(backend)
    except InvisibleIO as exc:
        pytest.exit(str(exc), returncode=EXIT_INVISIBLE_IO)
    return backend


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":  # (teardown's report carries the same properties again)
        return
    for name, value in report.user_properties:
        if name == "crashkit":
            _the_report().add(json.loads(str(value)))


# The controlling process's report (pytest_runtest_logreport has no config at hand), made
# at the first kit item's
_report: KitReport | None = None


def _the_report() -> KitReport:
    global _report
    if _report is None:
        from crashkit.harness.kit.report import KitReport

        _report = KitReport()
    return _report


#: The kit's options that select nothing without a backend (or the self-test).
KIT_OPTIONS = (
    "--crashkit-suite",
    "--crashkit-shard",
    "--crashkit-findings",
    "--crashkit-max-findings",
    "--crashkit-json",
    "--crashkit-profile",
    "--crashkit-real",
)
NO_BACKEND_HINT = (
    "crashkit: the conformance kit ran nothing: no backend was given; name one with "
    "pytest --crashkit-backend=module:BACKEND (or crashkit_backend in the ini file; "
    "docs/backends.md)"
)


def _no_backend_hint_due(config: pytest.Config, exitstatus: int, terminalreporter: Any) -> bool:
    """Hint only where the kit was plainly wanted: a kit option given on the command line,
    or a session that collected nothing at all (pytest's exit 5). A project's own tests,
    run with the plugin merely installed, get no line."""
    if any(config.getoption(option) not in (None, False) for option in KIT_OPTIONS):
        return True
    nothing = exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
    return nothing and not terminalreporter.stats.get("deselected")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    kit = kit_config(config)
    report = _report
    if not (kit.active or (report and report.items)) and _no_backend_hint_due(
        config, exitstatus, terminalreporter
    ):
        terminalreporter.write_line(NO_BACKEND_HINT)
    if not kit.active or report is None or not report.items:
        return
    from rich.console import Console

    title = (
        f"crashkit conformance kit: {kit.spec or 'self-test'} (suite {kit.suite.name}, "
        f"profile {kit.profile}, shard {kit.shard[0]}/{kit.shard[1]}), {report.items} items"
    )
    console = Console(file=terminalreporter._tw._file, force_terminal=False, width=140)
    console.print(report.table(title))
    if report.coverage:
        console.print(report.coverage_table())
    for line in report.vulnerability_lines():
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    for line in report.limit_lines():
        console.print(line, highlight=False, markup=False)
    for line in report.not_applicable_lines():
        console.print(f"not applicable: {line}", highlight=False, markup=False)
    if report.findings:
        console.print(
            f"findings written under {kit.findings_dir}; an invariant is no longer judged in an "
            f"item once it has {kit.max_findings} findings there (--crashkit-max-findings)",
            highlight=False,
            markup=False,
        )
    if kit.json_path is not None:
        header = {"backend": kit.spec, "suite": kit.suite.name, "shard": list(kit.shard)}
        kit.json_path.write_text(json.dumps(report.to_json(**header), indent=2, sort_keys=True))
