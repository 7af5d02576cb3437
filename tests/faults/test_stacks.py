"""Native stacks of a program's calls (`crashkit.faults.stacks`): strace's log read into
call sites (the parser, on a log as strace 6 writes it), and `explore --exec --stacks`
naming a C program's functions and lines in its vulnerabilities (skipped, with the
reason, without FUSE, a C compiler or an strace that unwinds stacks here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crashkit.faults.callsites import Callsite
from crashkit.faults.real import fuse_unavailable
from crashkit.faults.stacks import read_stacks, stacks_unavailable
from crashkit.harness.explore.exec_mode import explore_exec
from crashkit.harness.judge.vulnerabilities import VulnClass

MOUNT = "/tmp/crashkit-real-x/mnt"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"


def q(path: str) -> str:
    """A string argument as `strace -xx` prints it."""
    return '"' + "".join(f"\\x{b:02x}" for b in path.encode()) + '"'


def fd(number: int | str, path: str) -> str:
    """A descriptor as `strace -y -xx` prints it."""
    return f"{number}<{q(path)[1:-1]}>"


def frames(*names: str) -> list[str]:
    """A stack: libc's frame first (the system call's wrapper), then the program's."""
    out = [f" > {LIBC}(__write+0x10) [0xf8350]"]
    out += [f" > /opt/app/prog({name}) [0x1{n}00]" for n, name in enumerate(names)]
    return out


LOG = [
    # a process starts another (which inherits its folder), both write at once
    f"100 openat({fd('AT_FDCWD', '/home/u')}, {q(MOUNT + '/a')}, O_WRONLY|O_CREAT, 0644)"
    f" = {fd(3, MOUNT + '/a')}",
    *frames("write_a+0x1c", "main+0x10"),
    "100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD <unfinished ...>",
    f'101 write({fd(3, MOUNT + "/a")}, ""..., 5 <unfinished ...>',
    "100 <... clone resumed>, child_tidptr=0x7f) = 101",
    *frames("main+0x20"),
    f"100 fsync({fd(4, MOUNT)} <unfinished ...>",
    "101 <... write resumed>) = 5",
    *frames("child_write+0x8"),
    "100 <... fsync resumed>) = 0",
    *frames("sync_root+0x4"),
    # the parent moves into the mount: its relative paths are there, the child's not
    f"100 chdir({q(MOUNT + '/db')}) = 0",
    *frames("main+0x30"),
    f"100 rename({q('tmp')}, {q('data')}) = 0",
    *frames("commit+0x44", "main+0x40"),
    f"101 unlink({q('elsewhere')}) = 0",
    *frames("child_clean+0x2"),
    # a failed call and one outside the mount are no call sites
    f"100 mkdir({q('sub')}, 0755) = -1 EEXIST (File exists)",
    *frames("main+0x50"),
    f"100 openat({fd('AT_FDCWD', '/etc')}, {q('/etc/hosts')}, O_RDONLY) = 5</etc/hosts>",
    *frames("main+0x58"),
    # the *at calls name their folder; AT_REMOVEDIR makes an unlinkat an rmdir
    f"100 unlinkat({fd(6, MOUNT + '/db')}, {q('old')}, AT_REMOVEDIR) = 0",
    *frames("cleanup+0x9"),
    f"100 renameat2({fd(6, MOUNT + '/db')}, {q('x')}, {fd(7, MOUNT)}, {q('y')}, 0) = 0",
    f" > {LIBC}(renameat2+0x10) [0x1000]",  # only libc: no frame of the program
    "100 sync() = 0",
    f" > {LIBC}(sync+0x7) [0x1000]",
    " > /home/u/.cache/crashkit/crashkit_sync-0123456789abcdef.so(sync+0x1a) [0x11ba]",
    *frames("flush_all+0x3"),
]


def test_the_log_is_read_into_call_sites_in_the_order_the_calls_entered(tmp_path: Path) -> None:
    log = tmp_path / "strace.log"
    log.write_text("\n".join(LOG) + "\n")
    got = read_stacks(str(log), MOUNT, "/home/u", lines=False)
    at = "/opt/app/prog"
    assert got == [
        Callsite("open", "/a", f"{at}(write_a+0x1c)"),
        Callsite("write", "/a", f"{at}(child_write+0x8)"),  # entered before the fsync
        Callsite("fsync", "/", f"{at}(sync_root+0x4)"),
        Callsite("rename", "/db/tmp", f"{at}(commit+0x44)"),
        Callsite("rmdir", "/db/old", f"{at}(cleanup+0x9)"),
        Callsite("rename", "/db/x", ""),
        Callsite("sync", "/", f"{at}(flush_all+0x3)"),  # past libc and the sync shim
    ]


def test_no_log_is_no_call_site(tmp_path: Path) -> None:
    assert read_stacks(str(tmp_path / "none.log"), MOUNT, "/") == []


# -- a C program, for real -------------------------------------------------------------

UNAVAILABLE = (
    fuse_unavailable()
    or (None if shutil.which("cc") else "no C compiler (cc) to build the program")
    or stacks_unavailable()
)
needs_stacks = pytest.mark.skipif(
    UNAVAILABLE is not None, reason=f"no native stacks here: {UNAVAILABLE}"
)

#: replaces each named file the usual way but without the fsync before the rename (the
#: folder is synced after it, so the new name is durable over bytes that never were);
#: FIXED: with the fsync
SAVE_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int save_config(const char *dir, const char *name) {
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "value=2\n", 8) != 8) /* WRITE */
        return 1;
#ifdef FIXED
    fsync(fd);
#endif
    close(fd);
    if (rename(tmp, path) != 0) /* RENAME */
        return 1;
    int dfd = open(dir, O_RDONLY);
    fsync(dfd);
    return close(dfd);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (save_config(getenv("CRASHKIT_DIR"), argv[i]) != 0)
            return 1;
    return 0;
}
"""

CHECK = """\
import os, sys
root = os.environ["CRASHKIT_DIR"]
for name in sys.argv[1:]:
    path = os.path.join(root, name)
    if os.path.exists(path) and open(path, "rb").read() != b"value=2\\n":
        sys.exit(f"{name} holds {open(path, 'rb').read()!r}")
"""


def build(tmp_path: Path, *flags: str) -> tuple[Path, Path]:
    source, program = tmp_path / "save.c", tmp_path / "save"
    source.write_text(SAVE_C)
    subprocess.run(["cc", "-g", "-O0", *flags, "-o", str(program), str(source)], check=True)
    check = tmp_path / "check.py"
    check.write_text(CHECK)
    return source, program


def line_of(source: Path, marker: str) -> int:
    return next(i for i, t in enumerate(source.read_text().splitlines(), 1) if marker in t)


@needs_stacks
def test_a_c_programs_vulnerability_names_its_function_and_lines(tmp_path: Path) -> None:
    source, program = build(tmp_path)
    check = f"{sys.executable} {tmp_path / 'check.py'} config"
    summary = explore_exec(f"{program} config", check, stacks=True)
    assert summary.recording.notes == []
    (vuln,) = summary.vulnerabilities
    assert vuln.kind is VulnClass.ORDERING
    assert vuln.hint == "fsync `/config.tmp` before renaming it over `/config`"
    write, rename = vuln.sources
    assert write.startswith(f"{program}(save_config+0x")
    assert rename.startswith(f"{program}(save_config+0x")
    assert write != rename  # two call sites of one function
    if shutil.which("addr2line"):
        assert write.endswith(f" {source}:{line_of(source, 'WRITE')}")
        assert rename.endswith(f" {source}:{line_of(source, 'RENAME')}")
    # without --stacks: the same vulnerability, no line (not a Python program)
    plain = explore_exec(f"{program} config", check)
    assert [(v.kind, v.hint, v.sources) for v in plain.vulnerabilities] == [
        (VulnClass.ORDERING, vuln.hint, ())
    ]


@needs_stacks
def test_the_same_frames_on_two_files_are_one_vulnerability(tmp_path: Path) -> None:
    """ALICE's static vulnerabilities: one missing fsync met on two files is one bug
    when the stacks say one place made both; without the stacks, one because the
    program never syncs a file, listing both files' fixes."""
    _, program = build(tmp_path)
    command = f"{program} alpha beta"
    check = f"{sys.executable} {tmp_path / 'check.py'} alpha beta"
    plain = explore_exec(command, check)
    (folded,) = plain.vulnerabilities
    assert folded.ops[0] == "no file is ever synced"
    assert sorted(folded.ops[1:]) == ["write /alpha.tmp not durable", "write /beta.tmp not durable"]
    assert "fsync `/alpha.tmp` before renaming it over `/alpha`" in folded.hint
    assert "fsync `/beta.tmp` before renaming it over `/beta`" in folded.hint
    stacked = explore_exec(command, check, stacks=True)
    (vuln,) = stacked.vulnerabilities
    assert vuln.states == stacked.failed == plain.failed
    assert all("(save_config+0x" in source for source in vuln.sources)


@needs_stacks
def test_the_fixed_program_passes_under_strace(tmp_path: Path) -> None:
    _, program = build(tmp_path, "-DFIXED")
    check = f"{sys.executable} {tmp_path / 'check.py'} config"
    summary = explore_exec(f"{program} config", check, stacks=True)
    assert (summary.failed, summary.vulnerabilities, int(summary.exit_code)) == (0, [], 0)
    assert summary.states > 0 and summary.recording.returncode == 0


@pytest.mark.skipif(
    fuse_unavailable() is not None or shutil.which("cc") is None,
    reason=f"no FUSE or no cc here: {fuse_unavailable() or 'cc missing'}",
)
def test_without_strace_stacks_the_run_goes_on_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crashkit.harness.explore import exec_mode

    monkeypatch.setattr(exec_mode, "stacks_unavailable", lambda: "ptrace is not permitted here")
    _, program = build(tmp_path)
    check = f"{sys.executable} {tmp_path / 'check.py'} config"
    summary = explore_exec(f"{program} config", check, stacks=True)
    assert summary.recording.notes == ["no native stacks (--stacks): ptrace is not permitted here"]
    (vuln,) = summary.vulnerabilities
    assert (vuln.kind, vuln.sources) == (VulnClass.ORDERING, ())
