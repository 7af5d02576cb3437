"""Fault plans are validated plain data that round-trip through JSON and YAML."""

from __future__ import annotations

import json

import pytest
import yaml

from crashkit.faults import FaultPlan, FaultRule, FsyncModel
from crashkit.faults.plan import FaultInjector


def test_rule_and_plan_round_trip_through_json_and_yaml() -> None:
    plan = FaultPlan(
        (
            FaultRule("fsync", "/data/*.jsonl", nth=2, errno="ENOSPC", persistent=True),
            FaultRule("write", short_write=3),
            FaultRule("dirfsync", "/data", errno="EDQUOT"),
        )
    )
    as_json = json.loads(json.dumps(plan.to_dict()))
    as_yaml = yaml.safe_load(yaml.safe_dump(plan.to_dict()))
    assert FaultPlan.from_dict(as_json) == plan
    assert FaultPlan.from_dict(as_yaml) == plan
    assert FaultPlan.from_dict({"rules": []}) == FaultPlan()


def test_rule_from_dict_fills_defaults() -> None:
    assert FaultRule.from_dict({"op": "write"}) == FaultRule(
        op="write", path="*", nth=1, errno="EIO", persistent=False, short_write=None
    )


@pytest.mark.parametrize(
    ("kwargs", "bad", "allowed"),
    [
        ({"op": "fsnyc"}, "'fsnyc'", "fsync"),
        ({"op": "write", "errno": "EBOGUS"}, "'EBOGUS'", "EDQUOT"),
    ],
)
def test_unknown_op_or_errno_names_the_value_and_the_allowed_ones(
    kwargs: dict[str, str], bad: str, allowed: str
) -> None:
    with pytest.raises(ValueError) as info:
        FaultRule(**kwargs)  # type: ignore[arg-type]
    assert bad in str(info.value)
    assert allowed in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"op": "write", "nth": 0},
        {"op": "write", "nth": True},
        {"op": "fsync", "short_write": 1},
        {"op": "write", "short_write": -1},
        {"op": "write", "persistent": "yes"},
    ],
)
def test_invalid_rule_fields_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FaultRule(**kwargs)  # type: ignore[arg-type]


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown fault rule keys"):
        FaultRule.from_dict({"op": "write", "errrno": "EIO"})
    with pytest.raises(ValueError, match="unknown fault plan keys"):
        FaultPlan.from_dict({"rule": []})


def test_injector_fires_on_exactly_the_nth_matching_call_once() -> None:
    injector = FaultInjector(FaultPlan((FaultRule("write", "/a/*", nth=2),)))
    fired = [injector.check("write", path) is not None for path in ("/a/x", "/b/y", "/a/x", "/a/x")]
    assert fired == [False, False, True, False]


def test_persistent_rule_fires_on_the_nth_and_every_later_call() -> None:
    injector = FaultInjector(FaultPlan((FaultRule("fsync", nth=2, persistent=True),)))
    assert [injector.check("fsync", "/f") is not None for _ in range(4)] == [
        False,
        True,
        True,
        True,
    ]


def test_rename_rules_match_source_or_destination() -> None:
    injector = FaultInjector(FaultPlan((FaultRule("replace", "/data/state"),)))
    assert injector.check("replace", "/data/state.tmp", "/data/state") is not None


def test_fsync_model_values_are_the_documented_names() -> None:
    assert [m.value for m in FsyncModel] == ["keep-dirty", "mark-clean", "drop"]
    assert FsyncModel("mark-clean") is FsyncModel.MARK_CLEAN
