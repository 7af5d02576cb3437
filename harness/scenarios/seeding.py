"""A store holding given records, for any backend: what the kit's seeded restore rows and
a scenario's `initial_state` start from.

A line-format backend gets the contract-v1 lines themselves. Any other backend gets
the store it leaves after committing the records one at a time, in order: through its
`Backend.seed` hook when it declares one, else through the backend itself (open, one
append per record, close), on a fake disk of its own. Either way the disk is durable.
"""

from __future__ import annotations

from collections.abc import Sequence

from crashkit.faults import CrashFS, DiskImage
from crashkit.harness.explore.explorer import NotApplicable
from crashkit.harness.judge.observe import close_quietly
from crashkit.harness.judge.paths import STATE_DIR, STATE_PATH
from crashkit.harness.judge.verdicts import crash_reason
from crashkit.orchestrator.errors import StartupRefused
from crashkit.orchestrator.store.protocol import Backend
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState


class _Disk:
    fs: CrashFS | None = None


def _fs() -> CrashFS:
    if _Disk.fs is None:
        _Disk.fs = CrashFS(record=False)
    return _Disk.fs


def seeded_image(
    backend: Backend,
    records: Sequence[HysteresisState],
    config: HysteresisConfig | None = None,
    fs: CrashFS | None = None,
) -> DiskImage:
    """The durable disk holding a store of `records`, committed one at a time in this
    order. Raises `NotApplicable` when the backend cannot write it (its seed hook or its
    factory refused or raised, an append failed): nothing seeded, nothing to check."""
    if backend.capabilities.line_format:
        return DiskImage(files={STATE_PATH: b"".join(encode_state(r) for r in records)})
    fs = fs or _fs()
    fs.start(DiskImage(dirs=(STATE_DIR,)))
    try:
        if backend.seed is not None:
            try:
                backend.seed(STATE_PATH, list(records))
            except Exception as exc:
                raise NotApplicable(f"the backend's seed hook failed: {crash_reason(exc)}") from exc
            return fs.visible_image()
        try:
            opened = backend.open(STATE_PATH, config or HysteresisConfig())
        except StartupRefused as exc:
            raise NotApplicable(f"the backend refused to start on an empty disk: {exc}") from exc
        except Exception as exc:
            raise NotApplicable(
                f"the backend failed to start on an empty disk: {crash_reason(exc)}"
            ) from exc
        try:
            for record in records:
                opened.backend.append([record])
        except Exception as exc:
            raise NotApplicable(f"an append failed with no fault injected: {exc}") from exc
        finally:
            close_quietly(opened.backend.close, [])
        return fs.visible_image()
    finally:
        fs.stop()
