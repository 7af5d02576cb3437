"""A short id per vulnerability, the same on every run of the same program: what
`crashkit explore --exec ... --only ID` reruns.

Why: "V3" is a place in one report's order, which another run (another budget, another
profile, a fix elsewhere) changes; a user who reruns one vulnerability, or a CI job
that tracks one, needs a name that stays. The id is a digest of the vulnerability's
key: its class and the source lines (or native frames) of its calls when every call
has one (ALICE's static vulnerability: the same bug met on other files is one), else
its class and its normalised operations (`write /db/MANIFEST-* not durable`). Source
paths count relative to the current folder (the checkout, wherever it is), or by their
file name when outside it, so two machines agree.

The key is that of the vulnerability's smallest example grouped alone
(`failure_id`): a crash state, before it is checked, has an id too (the one it would
show if refused), which is how `--only` picks the states to check.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence

from crashkit.faults.trace import Op
from crashkit.harness.judge.vulnerabilities import Failure, Vulnerability, group_failures

#: an absolute path inside a source line or a native frame
_ABSOLUTE = re.compile(r"/[^\s:()]+")


def portable(source: str, cwd: str | None = None) -> str:
    """`source` with each absolute path relative to `cwd` (default: the current folder)
    when inside it, else its file name."""
    here = os.path.realpath(cwd or os.getcwd())

    def shorten(match: re.Match[str]) -> str:
        path = match.group(0)
        if path.startswith(here + os.sep):
            return os.path.relpath(path, here)
        return os.path.basename(path)

    return _ABSOLUTE.sub(shorten, source)


def key_id(vuln: Vulnerability, cwd: str | None = None) -> str:
    """8 hex digits of a digest of the vulnerability's key (see the module docstring)."""
    if vuln.static_key is not None:
        parts = [vuln.kind.value, "lines", *(portable(s, cwd) for s in vuln.sources)]
    else:
        parts = [vuln.kind.value, "ops", *vuln.ops]
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=4).hexdigest()


def failure_id(
    failure: Failure,
    trace: Sequence[Op],
    sources: Mapping[int, str] | None = None,
    acks: Callable[[str], bool] | None = None,
    cwd: str | None = None,
) -> str:
    """The id of the vulnerability `failure` shows when it is the only refused state."""
    (alone,) = group_failures([failure], trace, sources, acks=acks)
    return key_id(alone, cwd)
