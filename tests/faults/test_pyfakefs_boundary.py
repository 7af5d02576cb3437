"""pyfakefs is reached through `crashkit.faults._pyfakefs` only, so an upgrade breaks there."""

from __future__ import annotations

import ast
from pathlib import Path

import crashkit.faults
from crashkit.faults import _pyfakefs

FAULTS = Path(crashkit.faults.__file__).resolve().parent


def _imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_boundary_module_imports_pyfakefs() -> None:
    offenders = {
        path.name: sorted(
            m
            for m in _imported_modules(path.read_text())
            if m == "pyfakefs" or m.startswith("pyfakefs.")
        )
        for path in sorted(FAULTS.glob("*.py"))
        if path.name != "_pyfakefs.py"
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_every_documented_touch_exists() -> None:
    doc = _pyfakefs.__doc__ or ""
    for name in _pyfakefs.__all__:
        assert hasattr(_pyfakefs, name), name
    assert _pyfakefs.CHECKED_VERSION in doc
