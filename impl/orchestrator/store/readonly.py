"""What a start would restore from any backend's state, read without touching it.

`crashkit inspect --backend SPEC` asks the backend through the protocol, in this order:
its declared read-only report (`Backend.report`: the reference and SQLite give their
line-level `RestoreReport`), its read-only restore (`Backend.restore_only`: the states,
or a refusal), and otherwise its factory, opened on a copy of the files it declares
(`Capabilities.files`) in a temporary folder that is removed before returning. The copy
is the price of "read-only" for a backend that only knows how to open a writer: the
factory may create, lock, recover or compact, and none of that may reach the real files.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from crashkit.orchestrator.errors import StartupRefused
from crashkit.orchestrator.store.protocol import Backend, Outcome, RestoreSummary
from crashkit.orchestrator.store.report import RestoreReport, store_from_report
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState

#: Which protocol call read the state: the declared report, the read-only restore, or the
#: factory on a copy of the files (the caller says so: it is not what the others are).
How = Literal["report", "restore_only", "copy"]


@dataclass(frozen=True, slots=True)
class BackendReport:
    """A backend's restore of a path: the summary, and the states a start would restore
    (None when the backend gives a summary only)."""

    summary: RestoreSummary
    states: Mapping[str, HysteresisState] | None = field(default_factory=dict)
    how: How = "report"


def _crashed(path: str, what: str, exc: Exception) -> RestoreSummary:
    """A backend that raised instead of refusing: a start would not start either."""
    detail = " ".join(str(exc).split())
    return RestoreSummary(
        path, "fatal", f"the backend's {what} raised {type(exc).__name__}: {detail}"
    )


def inspect_backend(
    backend: Backend, path: str, config: HysteresisConfig | None = None
) -> BackendReport:
    """The backend's own reading of `path`, as a start would restore it; writes nothing
    at `path` or beside it. Never raises for what the backend finds or does: a refusal
    (or a crash of the backend) is the outcome `fatal`, with the reason."""
    config = config or HysteresisConfig()
    if backend.report is not None:
        try:
            summary = backend.report(path)
        except Exception as exc:
            return BackendReport(_crashed(path, "report", exc), None)
        if isinstance(summary, RestoreReport):
            states = store_from_report(summary, config).states
            return BackendReport(summary, states if summary.outcome != "fatal" else {})
        if summary.outcome == "fatal":
            return BackendReport(summary, {})
        return BackendReport(summary, _restored(backend, path, config))
    if backend.restore_only is not None:
        try:
            store = backend.restore_only(path, config)
        except StartupRefused as exc:
            return BackendReport(RestoreSummary(path, "fatal", exc.reason), {}, "restore_only")
        except Exception as exc:
            return BackendReport(_crashed(path, "restore_only", exc), {}, "restore_only")
        outcome: Outcome = "ok" if store.states else "bootstrap"
        return BackendReport(RestoreSummary(path, outcome), store.states, "restore_only")
    return _open_on_a_copy(backend, path, config)


def _restored(
    backend: Backend, path: str, config: HysteresisConfig
) -> Mapping[str, HysteresisState] | None:
    """The states beside a report that gives none (a plain `RestoreSummary`): from the
    read-only restore when there is one, else unknown (None)."""
    if backend.restore_only is None:
        return None
    try:
        return backend.restore_only(path, config).states
    except Exception:  # (the report said it would start: a refusal here is the backend's)
        return None


def _open_on_a_copy(backend: Backend, path: str, config: HysteresisConfig) -> BackendReport:
    how: How = "copy"
    with _scratch() as scratch:
        try:
            copy = _copy_files(backend, path, scratch)
        except StartupRefused as exc:
            return BackendReport(RestoreSummary(path, "fatal", exc.reason), {}, how)
        try:
            opened = backend.open(copy, config)
        except StartupRefused as exc:
            reason = exc.reason.replace(copy, path)
            return BackendReport(RestoreSummary(path, "fatal", reason), {}, how)
        except Exception as exc:
            return BackendReport(_moved(_crashed(path, "factory", exc), copy, path), {}, how)
        try:
            summary, states = opened.report, dict(opened.store.states)
        finally:
            with contextlib.suppress(Exception):  # (close must not raise; a copy's is moot)
                opened.backend.close()
        return BackendReport(_moved(summary, copy, path), states, how)


@contextlib.contextmanager
def _scratch() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="crashkit-inspect-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _moved(summary: RestoreSummary, copy: str, path: str) -> RestoreSummary:
    """The summary of the copy, naming the real path (also in its reason)."""
    reason = None if summary.reason is None else summary.reason.replace(copy, path)
    try:
        return replace(summary, path=path, reason=reason)
    except TypeError:  # a summary class of the backend's own that `replace` cannot build
        return summary


def _copy_files(backend: Backend, path: str, scratch: str) -> str:
    """Copy what the backend keeps for `path` (its declared files; the state path itself
    whatever it declares) into `scratch`, in the same layout; return the copy's path.
    A state path that cannot be read is refused, as a start would refuse it."""
    folder = os.path.dirname(os.path.abspath(path))
    copy_folder = os.path.join(scratch, "state")
    os.mkdir(copy_folder)
    copy = os.path.join(copy_folder, os.path.basename(path))
    found = {os.path.abspath(path)}
    for pattern in _patterns(backend, path):
        found.update(os.path.abspath(p) for p in glob.glob(pattern))
    for source in sorted(found):
        relative = os.path.relpath(source, folder)
        if relative.startswith(os.pardir):
            continue  # declared outside the state's folder: not copied, not touched
        _copy_one(source, os.path.join(copy_folder, relative), path)
    return copy


def _patterns(backend: Backend, path: str) -> list[str]:
    """The declared file patterns as globs: the path's own characters taken literally
    (`x[1].db` is that name), the pattern's wildcards (`{dir}/*`) as wildcards."""
    directory = path.rsplit("/", 1)[0] if "/" in path else "."
    return [
        p.format(path=glob.escape(path), dir=glob.escape(directory))
        for p in backend.capabilities.files
    ]


def _copy_one(source: str, target: str, path: str) -> None:
    try:
        info = os.lstat(source)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StartupRefused(path, f"cannot read {source}: {exc.strerror}") from exc
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if stat.S_ISDIR(info.st_mode):
            shutil.copytree(source, target)
        elif stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
            shutil.copy2(source, target)  # a link's content: the copy must not lead back
        else:
            raise StartupRefused(
                path, f"{source} is not a regular file or folder; inspect cannot copy it"
            )
    except OSError as exc:
        raise StartupRefused(path, f"cannot read {source}: {exc.strerror or exc}") from exc
