"""`--update`: rewrite only a scenario file's `expect` block, leaving every other byte alone.

The block is found as text (the top-level `expect:` key up to the next top-level
key), so comments, key order and quoting in the rest of the file survive; only
the block itself is re-emitted by PyYAML.
"""

from __future__ import annotations

import re

import yaml

_TOP_KEY = re.compile(r"[^\s#]")
_EXPECT = re.compile(r"expect\s*:")


def dump_expect(expect: dict[str, object]) -> str:
    """The block as YAML: one block-style key per line, flow style for mappings and lists
    of scalars (a state or a count table reads on one line)."""
    out = ["expect:\n"]
    for key, value in expect.items():
        text = yaml.safe_dump(
            {key: value},
            sort_keys=False,
            default_flow_style=None if isinstance(value, dict | list) else False,
            allow_unicode=True,
            width=100,
        )
        out.extend(f"  {line}\n" for line in text.splitlines())
    return "".join(out)


def rewrite_expect(text: str, expect: dict[str, object]) -> str:
    """`text` with its top-level `expect` block replaced (or appended if it has none)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _EXPECT.match(line)), None)
    block = dump_expect(expect)
    if start is None:
        head = text if not text or text.endswith("\n") else text + "\n"
        return head + block
    end = start + 1
    while end < len(lines) and not _TOP_KEY.match(lines[end]):
        end += 1
    # blank lines and column-0 comments just before the next key belong to that key
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    return "".join(lines[:start]) + block + "".join(lines[end:])
