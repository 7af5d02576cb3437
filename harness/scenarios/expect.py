"""Expectations: compare a scenario's `expect` block with what the run did, and write it back.

`compare` gives one `Check` per expectation, each with a message that shows
the wanted and the observed value. `updated_expect` turns observations into a
new `expect` block (for `--update`), keeping the keys and forms the author
chose so that pinned details stay pinned and nothing new appears uninvited.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from msgspec import UNSET

from crashkit.harness.scenarios import schema as s
from crashkit.harness.scenarios.results import INVARIANT_CHECK, Check, Observed
from crashkit.orchestrator import events as ev
from crashkit.orchestrator.events import Event

_STATE_EVENTS = (ev.STATE_RESTORED, ev.DECISION_PUBLISHED)
_STATE_SUMMARY = ("anchor_regime", "candidate_regime", "progress_current", "progress_required")


def _short(value: object, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def partial_match(want: object, got: object) -> bool:
    """Mappings match when every wanted key matches (extra observed keys are fine)."""
    if isinstance(want, Mapping):
        return isinstance(got, Mapping) and all(
            k in got and partial_match(v, got[k]) for k, v in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(got, list | tuple)
            and len(want) == len(got)
            and all(partial_match(w, g) for w, g in zip(want, got, strict=True))
        )
    return (want == got and type(want) is type(got)) or (want is None and got is None)


def event_matches(want: s.EventExpect, got: Event) -> bool:
    if want.event_type != got.event_type:
        return False
    if want.symbol is not UNSET and want.symbol != got.symbol:
        return False
    if (
        want.engine_timestamp_ms is not UNSET
        and want.engine_timestamp_ms != got.engine_timestamp_ms
    ):
        return False
    return want.payload is UNSET or partial_match(want.payload, dict(got.payload))


def _event_text(event: Event) -> str:
    return f"{event.event_type} {event.symbol}@{event.engine_timestamp_ms}"


def _compare_contains(want: Sequence[s.EventExpect], events: Sequence[Event]) -> Check:
    """Each wanted event must be found after the previous one (a subsequence match)."""
    at = 0
    for n, w in enumerate(want):
        while at < len(events) and not event_matches(w, events[at]):
            at += 1
        if at == len(events):
            return Check(
                "events.contains",
                False,
                f"item {n} ({w.event_type} {w.symbol}@{w.engine_timestamp_ms}"
                + ("" if w.payload is UNSET else f" payload {_short(w.payload)}")
                + ") not found"
                + (" after the previous item" if n else ""),
            )
        at += 1
    return Check("events.contains", True)


def _compare_events(want: s.EventsExpect, events: Sequence[Event]) -> list[Check]:
    out = []
    if isinstance(want.by_type, dict) or isinstance(want.exact, list):
        out.append(_compare_whole(want, events))
    if isinstance(want.contains, list):
        out.append(_compare_contains(want.contains, events))
    return out


def _compare_whole(want: s.EventsExpect, events: Sequence[Event]) -> Check:
    if not isinstance(want.exact, list):
        assert isinstance(want.by_type, dict)
        got = dict(sorted(Counter(e.event_type for e in events).items()))
        wanted = {k: v for k, v in want.by_type.items() if v}
        if got == wanted:
            return Check("events.by_type", True)
        diff = [
            f"{k}: want {wanted.get(k, 0)}, got {got.get(k, 0)}"
            for k in sorted(set(got) | set(wanted))
            if got.get(k, 0) != wanted.get(k, 0)
        ]
        return Check("events.by_type", False, "; ".join(diff))
    exact = want.exact
    for n, (w, g) in enumerate(zip(exact, events, strict=False)):
        if not event_matches(w, g):
            return Check(
                "events.exact",
                False,
                f"event {n}: want {w.event_type} {w.symbol}@{w.engine_timestamp_ms}"
                + ("" if w.payload is UNSET else f" payload {_short(w.payload)}")
                + f", got {_event_text(g)} payload {_short(dict(g.payload))}",
            )
    if len(exact) != len(events):
        extra = (
            f"first unexpected: {_event_text(events[len(exact)])}"
            if len(events) > len(exact)
            else f"first missing: {exact[len(events)].event_type}"
        )
        return Check(
            "events.exact", False, f"want {len(exact)} events, got {len(events)} ({extra})"
        )
    return Check("events.exact", True)


def _compare_value(name: str, want: object, got: object) -> Check:
    if want == got and type(want) is type(got):
        return Check(name, True)
    return Check(name, False, f"want {want!r}, got {got!r}")


def _compare_report(
    want: s.RestoreReportExpect, got: Mapping[str, object], *, layout: bool = True
) -> list[Check]:
    """`layout`: also the keys that pin the file's layout (line numbers and counts), which
    only the backend the file was written for is held to: another may rewrite its file
    (compaction) and keep the same records and winners."""
    out = []
    for key in s.REPORT_KEYS:
        value = getattr(want, key)
        if value is UNSET or (not layout and key in s.LAYOUT_KEYS):
            continue
        name = f"restore_report.{key}"
        if key == "winners":
            symbols = got.get("symbols")
            out.append(
                _compare_final(value, symbols if isinstance(symbols, Mapping) else {}, name=name)
            )
            continue
        if key != "invalid":
            out.append(_compare_value(name, value, got.get(key)))
            continue
        observed = got.get("invalid")
        if not isinstance(observed, list):  # (a backend of its own format has no line report)
            out.append(Check(name, False, "no line report: the backend keeps its own format"))
            continue
        problems = []
        if len(value) != len(observed):
            problems.append(f"want {len(value)} invalid line(s), got {len(observed)}")
        for w, g in zip(value, observed, strict=False):
            if w.line != g["line"] or not str(g["reason"]).startswith(w.reason_prefix):
                problems.append(
                    f"want line {w.line} ({w.reason_prefix!r}...), got line {g['line']} "
                    f"({g['reason']!r})"
                )
        out.append(Check(name, not problems, "; ".join(problems)))
    return out


def _compare_final(
    want: Mapping[str, s.FinalStateExpect], got: Mapping[str, Any], *, name: str = "final_states"
) -> Check:
    problems = []
    if set(want) != set(got):
        problems.append(f"symbols: want {sorted(want)}, got {sorted(got)}")
    for symbol in sorted(set(want) & set(got)):
        for key in s.FINAL_STATE_KEYS:
            value = getattr(want[symbol], key)
            if value is UNSET:
                continue
            observed = got[symbol][key]
            wanted = value.value if hasattr(value, "value") else value
            if wanted != observed:
                problems.append(f"{symbol}.{key}: want {wanted!r}, got {observed!r}")
    return Check(name, not problems, "; ".join(problems))


def invariant_ids(want: list[str] | Any, applicable: Sequence[str]) -> tuple[str, ...]:
    """The invariants a scenario asks to hold: `[all]` (or none given) = every applicable one."""
    if not isinstance(want, list) or want == ["all"]:
        return tuple(applicable)
    return tuple(want)


def compare(expect: s.Expect, observed: Observed, *, reference: bool = True) -> list[Check]:
    """One check per expectation, in the order of the `expect` block's keys; with
    `reference` (the run is on the backend the file was written for) also the
    `expect.reference` block, as checks named `reference.<key>`."""
    out = _compare_block(expect, observed, layout=reference)
    if reference and isinstance(expect.reference, s.Expect):
        for check in _compare_block(expect.reference, observed, every_invariant=False):
            out.append(Check(f"reference.{check.name}", check.ok, check.message))
    return out


def _compare_block(
    expect: s.Expect, observed: Observed, *, every_invariant: bool = True, layout: bool = True
) -> list[Check]:
    """The block's checks; `every_invariant`: an absent `invariants` key means all of them
    (a `reference` block checks invariants only when it lists them); `layout`: the
    report's layout keys too (`_compare_report`)."""
    out: list[Check] = []
    if isinstance(expect.startup, s.StartupExpect):
        if observed.startup is None:
            out.append(Check("startup", False, "no process was started"))
        else:
            for key in ("outcome", "exit_code"):
                value = getattr(expect.startup, key)
                if value is not UNSET:
                    out.append(_compare_value(f"startup.{key}", value, observed.startup[key]))
    if expect.halted_tick is not UNSET:
        out.append(_compare_value("halted_tick", expect.halted_tick, observed.halted_tick))
    if expect.exit_code is not UNSET:
        out.append(_compare_value("exit_code", expect.exit_code, observed.exit_code))
    if isinstance(expect.events, s.EventsExpect):
        out.extend(_compare_events(expect.events, observed.events))
    if isinstance(expect.final_states, dict):
        out.append(_compare_final(expect.final_states, observed.final_states))
    if isinstance(expect.restore_report, s.RestoreReportExpect):
        out.extend(_compare_report(expect.restore_report, observed.restore_report, layout=layout))
    listed = isinstance(expect.invariants, list)
    for invariant in (
        invariant_ids(expect.invariants, observed.applicable) if listed or every_invariant else ()
    ):
        found = observed.violations[invariant]
        message = ""
        if found:
            more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
            message = f"{found[0]}{more}"
        out.append(Check(f"{INVARIANT_CHECK}{invariant}", not found, message))
    return out


# -- --update -------------------------------------------------------------------------------------


def event_dict(event: Event) -> dict[str, object]:
    """An events item: for state events the decision fields, else the payload without
    `error` (an OS error's text differs between platforms; its `errno` name does not)."""
    item: dict[str, object] = {
        "event_type": event.event_type,
        "symbol": event.symbol,
        "engine_timestamp_ms": event.engine_timestamp_ms,
    }
    if event.event_type in _STATE_EVENTS:
        state = event.payload["state"]
        assert isinstance(state, Mapping)
        item["payload"] = {"state": {k: state[k] for k in _STATE_SUMMARY}}
    else:
        payload = {k: v for k, v in event.payload.items() if k != "error"}
        if payload:
            item["payload"] = payload
    return item


def _updated_events(sub: object, events: Sequence[Event]) -> dict[str, object]:
    """`events` in the author's form; `contains` keeps the items that still match (in
    order) or, when it had none, lists every event that is not a state event."""
    block = sub if isinstance(sub, dict) else {}
    out: dict[str, object] = {}
    if "exact" in block:
        out["exact"] = [event_dict(e) for e in events]
    elif "by_type" in block or "contains" not in block:
        out["by_type"] = dict(sorted(Counter(e.event_type for e in events).items()))
    if "contains" in block:
        kept: list[object] = []
        raw = block["contains"] if isinstance(block["contains"], list) else []
        at = 0
        for item in raw:
            try:
                want = msgspec.convert(item, s.EventExpect, strict=True)
            except msgspec.ValidationError:
                continue
            found = next(
                (n for n in range(at, len(events)) if event_matches(want, events[n])), None
            )
            if found is not None:
                kept.append(item)
                at = found + 1
        if not raw:
            kept = [event_dict(e) for e in events if e.event_type not in _STATE_EVENTS]
        out["contains"] = kept
    return out


def _report_dict(keys: Sequence[str], report: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key in keys:
        if key == "winners":
            symbols = report.get("symbols")
            assert isinstance(symbols, Mapping)
            out[key] = {
                symbol: {k: fields[k] for k in s.FINAL_STATE_KEYS}
                for symbol, fields in sorted(symbols.items())
            }
        elif key == "invalid":
            invalid = report["invalid"]
            assert isinstance(invalid, list)
            out[key] = [
                {"line": bad["line"], "reason_prefix": str(bad["reason"]).split(":", 1)[0]}
                for bad in invalid
            ]
        else:
            out[key] = report[key]
    return out


def updated_expect(original: object, observed: Observed) -> dict[str, object]:
    """The `expect` block that `observed` satisfies, in the author's chosen shape.

    Keys (and sub-keys) present in `original` are rewritten; an absent or empty block
    gets every key. `events` keeps its form (`by_type` or `exact`); `invariants` stays
    as the author wrote it (`[all]` in a new block): an observed violation is a bug to
    fix, never an expectation to record.
    """
    block = original if isinstance(original, dict) and original else None
    # (an absent block gets every key but `reference`, which only an author can add)
    keys = [
        k for k in s.EXPECT_KEYS if (block is None and k != "reference") or (block and k in block)
    ]
    if block is not None:  # keep the author's order
        keys = [k for k in block if k in s.EXPECT_KEYS]
    out: dict[str, object] = {}
    for key in keys:
        sub = block.get(key) if block is not None else None
        if key == "startup":
            chosen = [
                k
                for k in ("outcome", "exit_code")
                if not isinstance(sub, dict) or not sub or k in sub
            ]
            out[key] = (
                None if observed.startup is None else {k: observed.startup[k] for k in chosen}
            )
        elif key == "halted_tick":
            out[key] = observed.halted_tick
        elif key == "exit_code":
            out[key] = observed.exit_code
        elif key == "events":
            out[key] = _updated_events(sub, observed.events)
        elif key == "final_states":
            out[key] = observed.final_states
        elif key == "restore_report":
            chosen = [k for k in s.REPORT_KEYS if not isinstance(sub, dict) or not sub or k in sub]
            out[key] = _report_dict(chosen, observed.restore_report)
        elif key == "reference":
            out[key] = updated_expect(sub, observed) if isinstance(sub, dict) and sub else {}
        elif key == "invariants":  # never narrowed to what held: a violation stays one
            out[key] = list(sub) if isinstance(sub, list) else ["all"]
    return out
