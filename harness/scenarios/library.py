"""Where the scenario library is: shipped inside the package as `crashkit.scenarios`.

In this repository that package is the `scenarios/` folder itself (pyproject.toml's
package-dir); an installed crashkit carries a copy of it, so `crashkit scenarios run`
and the kit find the library wherever they run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

LIBRARY_PACKAGE = "crashkit.scenarios"


def library_path() -> Path:
    """The folder holding the shipped scenario library."""
    spec = importlib.util.find_spec(LIBRARY_PACKAGE)
    locations = None if spec is None else spec.submodule_search_locations
    if not locations:
        raise RuntimeError(
            f"the scenario library ({LIBRARY_PACKAGE}) is not installed: reinstall crashkit"
        )
    return Path(next(iter(locations)))


def library_files() -> list[Path]:
    """Every scenario file of the library, sorted."""
    return sorted(library_path().rglob("*.yaml"))
