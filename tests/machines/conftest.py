"""Helpers for the machine items: a pinned seed per item when the profile is derandomised."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def item_seed(request: pytest.FixtureRequest) -> int | None:
    """A seed of its own for each item under a derandomised profile (ci): without it every
    machine item would replay the same stream (the inner test function is the same);
    None elsewhere (dev and nightly explore at random)."""
    if not settings().derandomize:
        return None
    return zlib.crc32(request.node.nodeid.split("::", 1)[-1].encode())
