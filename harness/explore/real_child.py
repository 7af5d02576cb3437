"""`crashkit run` with another runtime class, as a real process: the real-process mode's
self-test drives the deliberately broken runtimes (`crashkit.harness.kit.variants`)
through the same command users run, to prove its oracles catch them.

    python -m crashkit.harness.explore.real_child MODULE:CLASS run --config ... --input ...

Everything after the spec is the orchestrator's own command line (`run`, `replay`); only
the runtime differs (`crashkit.orchestrator.cli.RUNTIME`).
"""

from __future__ import annotations

import importlib
import sys
from typing import cast

from crashkit.orchestrator import cli
from crashkit.orchestrator.runtime import RuntimeClass


def _runtime(spec: str) -> RuntimeClass:
    module, _, name = spec.partition(":")
    found = getattr(importlib.import_module(module), name, None)
    if not callable(found):
        sys.exit(f"error: {spec!r} names no runtime class (module:Class)")
    return cast(RuntimeClass, found)


if __name__ == "__main__":
    cli.RUNTIME = _runtime(sys.argv.pop(1))
    cli.main()
