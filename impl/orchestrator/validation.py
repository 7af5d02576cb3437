"""msgspec validation errors in a reader's terms: the key path and what was expected there.

msgspec says `Invalid enum value 'x' - at `$.engine.engine_mode``; a person editing a
file wants `engine.engine_mode: expected 'hysteresis' or 'truth'` and the line. The
config loader and the scenario loader both explain their errors through `explain`;
each finds the line in its own format.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

import msgspec

PathPart = str | int


def key_path(parts: Sequence[PathPart]) -> str:
    """`["steps", 2, "crash", "point"]` -> `steps[2].crash.point` (the form errors use)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\.\.\.\]")


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[Any]:
    tp = _strip(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [_strip(a) for a in typing.get_args(tp)]
    return [tp]


def _bound(tp: Any) -> str:
    """` >= 0` for `Annotated[int, Meta(ge=0)]`, else nothing."""
    if typing.get_origin(tp) is not typing.Annotated:
        return ""
    for meta in typing.get_args(tp)[1:]:
        if isinstance(meta, msgspec.Meta) and meta.ge is not None:
            return f" >= {meta.ge}"
    return ""


def _raw_members(tp: Any) -> list[Any]:
    """Union members with their annotations kept (for `_bound`)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return list(typing.get_args(tp))
    return [tp]


def _struct_fields(tp: Any) -> dict[str, Any]:
    """encode name -> type of the Struct among the members of `tp` (first found)."""
    for member in _members(tp):
        if isinstance(member, type) and issubclass(member, msgspec.Struct):
            return {f.encode_name: f.type for f in msgspec.structs.fields(member)}
    return {}


def _child_type(tp: Any, part: PathPart | None) -> Any:
    """The type one step down a key path (`None` part: a dict value)."""
    if isinstance(part, str):
        return _struct_fields(tp).get(part)
    for member in _members(tp):
        origin = typing.get_origin(member)
        args = typing.get_args(member)
        if part is None and origin is dict:
            return args[1]
        if isinstance(part, int) and origin in (list, tuple):
            return args[0]
    return None


def describe(tp: Any) -> str:
    """A reader's description of a type: `'last' or int >= 0`, `mapping`, ..."""
    words: list[str] = []
    for raw in _raw_members(_strip(tp) if _bound(tp) == "" else tp):
        member = _strip(raw)
        if member is msgspec.UnsetType:
            continue
        if typing.get_origin(member) is typing.Literal:
            words.extend(repr(v) for v in typing.get_args(member))
        elif isinstance(member, type) and issubclass(member, enum.Enum):
            words.append("one of " + ", ".join(str(v.value) for v in member))
        elif isinstance(member, type) and issubclass(member, msgspec.Struct):
            words.append("a mapping with keys " + ", ".join(_struct_fields(member)))
        elif member is type(None):
            words.append("null")
        elif typing.get_origin(member) in (list, tuple):
            words.append("a list")
        elif typing.get_origin(member) is dict:
            words.append("a mapping")
        else:
            words.append(getattr(member, "__name__", str(member)) + _bound(raw))
    return " or ".join(words)


def _resolve_path(text: str, data: object, root: Any) -> tuple[list[PathPart], Any]:
    """msgspec's `$.a[0].b[...]` as parts and the type there; `[...]` (a dict key msgspec
    does not name) is found by converting each value of the dict until one fails."""
    parts: list[PathPart] = []
    tp: Any = root
    value: object = data
    for match in _PATH_TOKEN.finditer(text):
        name, index = match.group(1), match.group(2)
        if name is not None:
            part: PathPart | None = name
        elif index is not None:
            part = int(index)
        else:
            part = None
        if part is None:
            value_type = _child_type(tp, None)
            culprit: str | None = None
            if isinstance(value, dict):
                for key, item in value.items():
                    try:
                        msgspec.convert(item, value_type, strict=True)
                    except msgspec.ValidationError:
                        culprit = str(key)
                        break
            parts.append(culprit if culprit is not None else "<key>")
            tp = value_type
            value = value.get(culprit) if isinstance(value, dict) and culprit else None
            continue
        tp = _child_type(tp, part)
        parts.append(part)
        if isinstance(part, str) and isinstance(value, dict):
            value = value.get(part)
        elif isinstance(part, int) and isinstance(value, list) and part < len(value):
            value = value[part]
        else:
            value = None
    return parts, tp


def explain(exc: msgspec.ValidationError, data: object, root: Any) -> tuple[list[PathPart], str]:
    """The key path msgspec's error points at and what was expected there, in a reader's
    words: `unknown key `x`; allowed keys: a, b`, `expected one of calm, trend, got 'x'`."""
    message = str(exc)
    where = ""
    if " - at `" in message:
        message, _, where = message.rpartition(" - at `")
        where = where.rstrip("`")
    parts, tp = _resolve_path(where, data, root)
    unknown = re.match(r"Object contains unknown field `(.+)`", message)
    missing = re.match(r"Object missing required field `(.+)`", message)
    got = re.match(r"Expected `.+`(?: [<>]=? ?-?\d+)?, got `(.+)`", message)
    bound = re.match(r"Expected `(\w+)` ([<>]=? ?-?\d+)$", message)
    if unknown:
        allowed = ", ".join(_struct_fields(tp))
        parts.append(unknown.group(1))
        text = f"unknown key `{unknown.group(1)}`; allowed keys: {allowed}"
    elif missing:
        text = f"missing required key `{missing.group(1)}`"
    elif message.startswith("Invalid enum value"):
        text = f"{message[0].lower()}{message[1:]}; expected {describe(tp)}"
    elif got and tp is not None:
        text = f"expected {describe(tp)}, got {got.group(1)}"
    elif bound:
        text = f"expected {bound.group(1)} {bound.group(2)}"
    else:
        text = message[0].lower() + message[1:]
    return parts, text
