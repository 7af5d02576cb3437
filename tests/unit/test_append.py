"""The write side (contract §5) of the JSONL backend, on real files."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from crashkit.orchestrator.errors import PersistenceError, WriterLocked
from crashkit.orchestrator.store.jsonl import open_jsonl_store
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import HysteresisConfig, Regime
from tests.conftest import make_state

S1 = make_state("A", 100)
S2 = make_state("B", 100, Regime.SQUEEZE_UP)
S3 = make_state("A", 200, Regime.CHOP_BALANCED, Regime.TREND_BUILD_UP, 1)


class Calls:
    """Counts (and optionally fails) os-level calls made by the backend."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[str] = []
        self.fail: dict[str, Callable[[], object]] = {}
        for name in ("write", "fsync", "ftruncate", "open"):
            real = getattr(os, name)
            monkeypatch.setattr(os, name, self._wrap(name, real))

    def _wrap(self, name: str, real: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            self.log.append(name)
            if name in self.fail:
                return self.fail[name]()
            return real(*args, **kwargs)

        return call


def raise_errno(code: int) -> Callable[[], object]:
    def fail() -> object:
        raise OSError(code, os.strerror(code))

    return fail


def test_append_writes_canonical_lines_once_and_fsyncs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(encode_state(S1))
    opened = open_jsonl_store(str(path), HysteresisConfig())
    calls = Calls(monkeypatch)
    opened.backend.append([S2, S3])
    opened.backend.close()
    assert calls.log == ["write", "fsync"]
    assert path.read_bytes() == encode_state(S1) + encode_state(S2) + encode_state(S3)


def test_created_file_and_folders_are_made_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    path = tmp_path / "new" / "deeper" / "s.jsonl"
    opened = open_jsonl_store(str(path), HysteresisConfig())
    # two folders created (each fsynced in its parent), then the file (parent fsynced)
    assert calls.log.count("fsync") == 3
    opened.backend.append([S1])
    opened.backend.close()
    assert path.read_bytes() == encode_state(S1)


def test_torn_tail_is_cut_durably_before_the_first_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(encode_state(S1) + encode_state(S2)[:17])
    opened = open_jsonl_store(str(path), HysteresisConfig())
    calls = Calls(monkeypatch)
    opened.backend.append([S3])
    opened.backend.append([S2])
    opened.backend.close()
    assert calls.log == ["ftruncate", "fsync", "write", "fsync", "write", "fsync"]
    assert path.read_bytes() == encode_state(S1) + encode_state(S3) + encode_state(S2)


@pytest.mark.parametrize(
    ("op", "code"),
    [("write", errno.EIO), ("write", errno.ENOSPC), ("write", errno.EDQUOT), ("fsync", errno.EIO)],
)
def test_failure_raises_and_poisons_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, op: str, code: int
) -> None:
    opened = open_jsonl_store(str(tmp_path / "s.jsonl"), HysteresisConfig())
    calls = Calls(monkeypatch)
    calls.fail[op] = raise_errno(code)
    with pytest.raises(PersistenceError) as info:
        opened.backend.append([S1])
    assert info.value.errno_code == code
    assert opened.backend.poisoned
    del calls.fail[op]
    calls.log.clear()
    with pytest.raises(PersistenceError, match="poisoned"):
        opened.backend.append([S2])
    assert calls.log == []  # never retried, nothing touched
    opened.backend.close()


def test_short_write_is_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = open_jsonl_store(str(tmp_path / "s.jsonl"), HysteresisConfig())
    calls = Calls(monkeypatch)
    calls.fail["write"] = lambda: 5
    with pytest.raises(PersistenceError, match="short write"):
        opened.backend.append([S1])
    assert opened.backend.poisoned and "fsync" not in calls.log
    opened.backend.close()


def test_failed_torn_tail_cut_poisons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(encode_state(S1) + b"{")
    opened = open_jsonl_store(str(path), HysteresisConfig())
    calls = Calls(monkeypatch)
    calls.fail["fsync"] = raise_errno(errno.EIO)
    with pytest.raises(PersistenceError, match="torn-tail"):
        opened.backend.append([S2])
    assert opened.backend.poisoned
    opened.backend.close()


def test_second_writer_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "s.jsonl")
    first = open_jsonl_store(path, HysteresisConfig())
    with pytest.raises(WriterLocked, match="another process holds the writer lock"):
        open_jsonl_store(path, HysteresisConfig())
    first.backend.close()
    second = open_jsonl_store(path, HysteresisConfig())  # released on close
    second.backend.close()


def test_empty_append_touches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = open_jsonl_store(str(tmp_path / "s.jsonl"), HysteresisConfig())
    calls = Calls(monkeypatch)
    opened.backend.append([])
    assert calls.log == []
    opened.backend.close()
