"""Shared helpers for the scenario tests: the library's files, and small files written on the fly."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from crashkit.faults import CrashFS
from crashkit.harness.scenarios import load_scenario

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "scenarios"


def library_files() -> list[Path]:
    """Every scenario of the library, sorted (the regressions folder included)."""
    return sorted(LIBRARY.rglob("*.yaml"))


@functools.cache
def in_process_library_files() -> list[Path]:
    """The library's in-process files: a real-mode file is four times the rest of the
    library's time per variant (its broken variants are tests/scenarios/
    test_real_scenarios.py's)."""
    return [p for p in library_files() if load_scenario(p).spec.mode != "real"]


def write(folder: Path, name: str, text: str) -> Path:
    """A scenario file `<folder>/<name>.yaml` holding `text` (its `name:` must be `name`)."""
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session", autouse=True)
def _release_patcher() -> Iterator[None]:
    """Hand pyfakefs's Patcher back at the end, for any later pyfakefs user."""
    yield
    CrashFS().close()
