"""The op vocabulary: one enum, derived sets checked at import, old names kept."""

from __future__ import annotations

import json

import pytest
import yaml

import crashkit.faults as faults
from crashkit.faults import FaultRule, OpKind
from crashkit.faults.ops import (
    FAULTABLE,
    IO_ERROR_SWEEP,
    MAY_MUTATE,
    MUTATING,
    NON_MUTATING,
    SYNC,
    VocabularyError,
    check_vocabulary,
)
from tests.faults.test_trace_pinned import EXPECTED

ALL = frozenset(OpKind)
GOOD = {"A": frozenset({"write", "fsync"}), "B": frozenset({"read"}), "S": frozenset({"fsync"})}
UNIVERSE = frozenset({"write", "fsync", "read"})


def check(sets: dict[str, frozenset[str]]) -> None:
    check_vocabulary(UNIVERSE, sets, partition=("A", "B"), subsets=(("S", "A"),))


def test_the_op_names_are_the_documented_ones() -> None:
    assert [op.value for op in OpKind] == [
        "open",
        "write",
        "flush",
        "fsync",
        "fdatasync",
        "read",
        "replace",
        "rename",
        "ftruncate",
        "dirfsync",
        "unlink",
        "mkdir",
        "rmdir",
        "close",
        "flock",
        "sync",
    ]
    # members are their strings: they hash and compare as such
    assert OpKind("write") is OpKind.WRITE and hash(OpKind.WRITE) == hash("write")
    assert "write" in MUTATING and str(OpKind.WRITE) == "write"


def test_derived_sets() -> None:
    assert MUTATING | MAY_MUTATE | NON_MUTATING == ALL
    assert {"open", "flush", "close"} == MAY_MUTATE
    assert {"read", "flock"} == NON_MUTATING
    assert {"fsync", "fdatasync", "dirfsync"} == SYNC and SYNC <= MUTATING
    assert {"sync"} == ALL - FAULTABLE
    assert {
        "open",
        "write",
        "fsync",
        "fdatasync",
        "ftruncate",
        "dirfsync",
        "read",
        "replace",
        "rename",
        "mkdir",
        "flock",
        "close",
    } == IO_ERROR_SWEEP
    assert faults.IO_ERROR_SWEEP is IO_ERROR_SWEEP


def test_old_names_keep_their_values_and_types() -> None:
    assert faults.OPS == (
        "open",
        "write",
        "flush",
        "fsync",
        "fdatasync",
        "read",
        "replace",
        "rename",
        "ftruncate",
        "dirfsync",
        "unlink",
        "mkdir",
        "rmdir",
        "close",
        "flock",
    )
    assert all(type(op) is str for op in faults.OPS)
    assert {
        "write",
        "ftruncate",
        "fsync",
        "fdatasync",
        "dirfsync",
        "replace",
        "rename",
        "unlink",
        "mkdir",
        "rmdir",
        "sync",
    } == faults.MUTATING_OPS
    assert isinstance(faults.MUTATING_OPS, frozenset)
    assert all(type(op) is str for op in faults.MUTATING_OPS)


def test_the_check_accepts_consistent_sets() -> None:
    check(GOOD)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({**GOOD, "S": frozenset({"fsnyc"})}, "S names op 'fsnyc', which is not an OpKind"),
        ({**GOOD, "B": frozenset({"read", "write"})}, "op 'write' is in both A and B"),
        ({**GOOD, "B": frozenset()}, "op 'read' is in none of A, B"),
        ({**GOOD, "S": frozenset({"read"})}, "op 'read' is in S but not in A"),
    ],
)
def test_the_check_names_the_offending_op(sets: dict[str, frozenset[str]], message: str) -> None:
    with pytest.raises(VocabularyError) as info:
        check(sets)
    assert str(info.value) == message


def test_every_recorded_op_is_an_opkind_and_follows_the_partition() -> None:
    ops = [row for case in EXPECTED.values() for row in case["trace"]]  # type: ignore[attr-defined]
    seen = {op for _, op, *_ in ops}
    assert seen <= ALL
    assert seen == ALL  # the pinned scripts cover every op
    for _, op, _path, _detail, error, mutating, _injected in ops:
        if op in NON_MUTATING:
            assert not mutating, op
        if op in MUTATING and error is None:
            assert mutating, op


def test_a_rule_may_name_its_op_by_enum_and_stays_plain_data() -> None:
    rule = FaultRule(OpKind.FSYNC, "/data/*", errno="EIO")
    assert rule == FaultRule("fsync", "/data/*", errno="EIO")
    assert type(rule.op) is str
    data = rule.to_dict()
    assert yaml.safe_load(yaml.safe_dump(data)) == data == json.loads(json.dumps(data))
    with pytest.raises(ValueError, match="unknown op 'sync'"):
        FaultRule(OpKind.SYNC)
