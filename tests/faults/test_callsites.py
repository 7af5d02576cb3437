"""The source line of each recorded call of a Python program (`crashkit.faults.callsites`):
the hook logs the calls on the mount with their lines, and the recorder's trace is
matched to them by order and path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crashkit.faults.callsites import LOG_VARIABLE, attribute, environment, read_log
from crashkit.faults.real import fuse_unavailable, record

UNAVAILABLE = fuse_unavailable()
needs_fuse = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no FUSE here: {UNAVAILABLE}")

PROGRAM = """\
import os
root = os.environ["CRASHKIT_DIR"]
fd = os.open(os.path.join(root, "data"), os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"row\\n")
os.fsync(fd)
os.close(fd)
with open(os.path.join(root, "log"), "ab") as f:
    f.write(b"entry\\n")
os.rename(os.path.join(root, "log"), os.path.join(root, "log.1"))
"""


def lines_of(script: Path) -> dict[str, int]:
    """The line of each statement the test names, as the program reads."""
    text = script.read_text().splitlines()
    wanted = {"os.open": "os.open(", "os.write": "os.write(", "os.fsync": "os.fsync("}
    wanted.update({"open": "with open(", "os.rename": "os.rename("})
    return {
        key: next(i for i, line in enumerate(text, 1) if probe in line)
        for key, probe in wanted.items()
    }


def test_the_hook_logs_calls_under_the_mount_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    script = tmp_path / "program.py"
    script.write_text(PROGRAM + 'open("/dev/null").close()\n')
    env = environment(str(tmp_path / "hook"), {**os.environ, "CRASHKIT_DIR": str(root)})
    subprocess.run([sys.executable, str(script)], env=env, check=True)
    line = lines_of(script)
    logged = [(c.call, c.path, c.where) for c in read_log(env[LOG_VARIABLE])]
    assert logged == [
        ("open", "/data", f"{script}:{line['os.open']}"),
        ("write", "/data", f"{script}:{line['os.write']}"),
        ("fsync", "/data", f"{script}:{line['os.fsync']}"),
        ("open", "/log", f"{script}:{line['open']}"),
        ("rename", "/log", f"{script}:{line['os.rename']}"),
    ]


@needs_fuse
def test_each_recorded_call_gets_the_line_that_made_it(tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    env = environment(str(tmp_path / "hook"))
    recording, _ = record([sys.executable, str(script)], env=env)
    assert recording.returncode == 0, recording.stderr
    sources = attribute(recording.trace, read_log(env[LOG_VARIABLE]))
    line = lines_of(script)
    by_call = {(op.op, op.path): sources.get(op.index) for op in recording.trace if op.mutating}
    assert by_call[("open", "/data")] == f"{script}:{line['os.open']}"
    assert by_call[("write", "/data")] == f"{script}:{line['os.write']}"
    assert by_call[("fsync", "/data")] == f"{script}:{line['os.fsync']}"
    # the buffered file object's write goes to the line that opened it
    assert by_call[("write", "/log")] == f"{script}:{line['open']}"
    assert by_call[("rename", "/log")] == f"{script}:{line['os.rename']}"


@needs_fuse
def test_a_program_in_another_language_has_no_lines(tmp_path: Path) -> None:
    env = environment(str(tmp_path / "hook"))
    recording, _ = record("sh -c 'echo x > \"$CRASHKIT_DIR/f\"'", env=env)
    assert recording.returncode == 0
    assert attribute(recording.trace, read_log(env[LOG_VARIABLE])) == {}
