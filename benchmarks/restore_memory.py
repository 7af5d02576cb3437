"""Peak memory of a restore: the resident set of `crashkit inspect --json FILE` at its peak.

A restore that holds the whole file (and a record object per line) in memory needs
RAM proportional to the state file; the goal is a bounded peak whatever the file's
size. The figure is the peak RSS (`ru_maxrss`) of a child process running
`python -m crashkit.harness inspect --json FILE`, next to the file's size (the
baseline) and to the interpreter floor: the peak RSS of a bare
`python -m crashkit.harness --version` child, measured the same way.

Measured correctly: on Linux the `ru_maxrss` of a child includes the high-water mark
of the address space it was forked from (the kernel folds the old memory map in at
`exec`), so a child spawned straight from the benchmark, which has just restored
the file itself, would report the benchmark's peak. Each probe is therefore a fresh,
tiny helper interpreter (`python -S`) that `posix_spawn`s the one child and reads its
own rusage with `os.wait4`: nothing else is counted. Part of `make bench`
(`benchmarks/suite.py --only memory`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

#: Run as `python -S -c HELPER OUT_FILE ARGV...`: spawns ARGV with its stdout in OUT_FILE
#: and prints the child's exit code and peak RSS (KiB on Linux) from `os.wait4`.
HELPER = """\
import json, os, sys
out, argv = sys.argv[1], sys.argv[2:]
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, fd, 1)])
os.close(fd)
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}))
"""


@dataclass(frozen=True, slots=True)
class Probe:
    exit_code: int
    peak_rss_bytes: int
    stdout: bytes


def probe(argv: list[str], out_path: str) -> Probe:
    """Peak RSS of one child running `argv`, spawned by a fresh helper; its stdout is
    written to `out_path` and returned."""
    helper = subprocess.run(
        [sys.executable, "-S", "-c", HELPER, out_path, *argv],
        capture_output=True,
        check=True,
    )
    answer = json.loads(helper.stdout)
    with open(out_path, "rb") as f:
        stdout = f.read()
    os.unlink(out_path)
    if answer["exit"] != 0:
        raise RuntimeError(
            f"{argv} exited {answer['exit']}: {helper.stderr.decode(errors='replace')}"
        )
    return Probe(answer["exit"], int(answer["maxrss_kib"]) * 1024, stdout)


@dataclass(frozen=True, slots=True)
class MemoryResult:
    file_bytes: int
    restore_peak_bytes: int  # `crashkit inspect --json FILE`
    floor_peak_bytes: int  # `crashkit --version`


def measure(path: str, records: int, file_bytes: int, scratch: str) -> MemoryResult:
    """Peak RSS of `inspect --json` on `path` (checked: `ok`, every record valid) and of
    `--version`; `scratch` is a folder for the children's stdout."""
    out = os.path.join(scratch, "probe.out")
    cli = [sys.executable, "-m", "crashkit.harness"]
    floor = probe([*cli, "--version"], out)
    restore = probe([*cli, "inspect", "--json", path], out)
    report = json.loads(restore.stdout)
    assert report["outcome"] == "ok" and report["valid"] == records, report["reason"]
    return MemoryResult(file_bytes, restore.peak_rss_bytes, floor.peak_rss_bytes)
