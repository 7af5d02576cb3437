"""Fixtures for the faults layer: one CrashFS per test, always stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crashkit.faults import CrashFS, CrashState

DIR = "/data"
PATH = "/data/log.jsonl"


@pytest.fixture
def crash() -> Iterator[CrashFS]:
    fs = CrashFS()
    try:
        yield fs
    finally:
        fs.stop()


@pytest.fixture(scope="session", autouse=True)
def _release_patcher() -> Iterator[None]:
    """Hand pyfakefs's Patcher back at the end, for any later pyfakefs user."""
    yield
    CrashFS().close()


def contents(states: list[CrashState], path: str = PATH) -> list[bytes | None]:
    """The content of `path` in each crash state (None where the file is absent)."""
    return [state.image.files.get(path) for state in states]
