"""Which native code made each recorded call: the program run under `strace -f -k`.

Why: the FUSE recorder sees the calls, not who made them, and the Python hook
(`crashkit.faults.callsites`) names lines of Python only. For a program in C, C++, Rust
or Go (or a Python program's C extension, such as LevelDB under plyvel), `strace -k`
unwinds the stack of every traced system call; the innermost frame outside the C
runtime (libc, the dynamic loader, libstdc++, crashkit's sync shim) is the program's
call site. `traced` wraps a command in strace, `read_stacks` reads strace's log into
the same `Callsite` records the Python hook writes (the call in the hook's vocabulary,
the path under the mount, the frame), and `callsites.attribute` matches them to the
recorder's trace by order, call and path.

A frame reads `OBJECT(FUNCTION+0xOFFSET)`, followed by `FILE:LINE` when `addr2line`
(binutils) finds the line (the object built with `-g`). Relative paths are resolved
against each process's current folder (followed through `chdir`, `fchdir` and the
processes it starts); the `*at` calls name their folder themselves (`strace -y`).
Calls that failed are left out (the recorder saw none, or saw it fail). Threads making
calls at once are ordered as strace saw them enter: a call the recorder saw in another
order stays without a frame, never with a wrong one.

`stacks_unavailable()` says why there are no stacks here: no strace, a build without
`-k`, or ptrace not permitted (a container without `CAP_SYS_PTRACE` or with a seccomp
profile that refuses it, `kernel.yama.ptrace_scope` 3).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from crashkit.faults.callsites import Callsite

STRACE = "strace"
ADDR2LINE = "addr2line"

#: System calls traced: those that create, write, truncate, rename, remove or sync a file
#: (by path or by descriptor), and those that move a process's current folder or start a
#: process (which inherits it).
TRACED = (
    "open",
    "openat",
    "openat2",
    "creat",
    "write",
    "pwrite64",
    "writev",
    "pwritev",
    "pwritev2",
    "fsync",
    "fdatasync",
    "sync",
    "syncfs",
    "truncate",
    "ftruncate",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "mkdir",
    "mkdirat",
    "rmdir",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "chdir",
    "fchdir",
    "clone",
    "clone3",
    "fork",
    "vfork",
)

#: Objects of the C runtime (and crashkit's shim): never the program's call site.
_RUNTIME = (
    "libc.so",
    "libc-",
    "libc.musl",
    "ld-linux",
    "ld-musl",
    "ld64.so",
    "libpthread",
    "libdl.",
    "libdl-",
    "librt.",
    "libstdc++",
    "libgcc_s",
    "crashkit_sync-",
)


@functools.cache
def stacks_unavailable() -> str | None:
    """Why `strace -f -k` cannot give stacks here, or None when it can (tried once: a
    traced `true` must show a stack)."""
    strace = shutil.which(STRACE)
    if strace is None:
        return "strace is not installed (Debian: apt-get install strace)"
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory(prefix="crashkit-strace-") as folder:
        log = os.path.join(folder, "log")
        argv = [strace, "-f", "-k", "-qq", "-o", log, "-e", "trace=openat,open", "--", true]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"strace does not run: {exc}"
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        if done.returncode != 0:
            if "not supported" in said or "-k" in said:
                return f"this strace cannot unwind stacks (-k): {said}"
            if "ptrace" in said.lower() or "not permitted" in said:
                return f"ptrace is not permitted here: {said}"
            return f"strace fails (exit {done.returncode}): {said}"
        try:
            with open(log, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as exc:
            return f"strace wrote no log: {exc}"
    if not re.search(r"^ > ", text, re.MULTILINE):
        return "strace -k printed no stack (a build without unwinding?)"
    return None


def traced(command: str | Sequence[str], log: str) -> list[str]:
    """`command` (a shell line, or an argv) under `strace -f -k`, its log to `log`: an
    argv. Strings and descriptors' paths are hex-escaped (`-xx`, unambiguous to read),
    written bytes left out (`-s 0`), signals and exits not logged."""
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    strace = shutil.which(STRACE) or STRACE
    return [
        strace,
        "-f",
        "-k",
        "-y",
        "-xx",
        "-s",
        "0",
        "-qq",
        "-e",
        "signal=none",
        "-e",
        f"trace={','.join(TRACED)}",
        "-o",
        log,
        "--",
        *argv,
    ]


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of a stack as strace prints it: ` > OBJECT(FUNCTION+0xOFFSET) [0xADDR]`
    (no function: an object without symbols; ADDR is the offset in the object)."""

    obj: str
    function: str
    offset: int
    address: int

    def query(self) -> str:
        """What addr2line is asked: the call instruction (a return address, minus one)."""
        if self.function:
            return f"{self.function}+{max(0, self.offset - 1):#x}"
        return f"{max(0, self.address - 1):#x}"

    def __str__(self) -> str:
        if self.function:
            return f"{self.obj}({self.function}+{self.offset:#x})"
        return f"{self.obj}({self.address:#x})"


@dataclass(slots=True)
class _Syscall:
    order: int  # when strace saw it enter
    pid: int
    name: str
    args: str
    ret: str = ""
    frames: list[Frame] | None = None


_LINE = re.compile(r"^(?:(\d+) +)?(.*)$")
_DONE = re.compile(r"^(\w+)\((.*)\) += (.*)$")
_UNFINISHED = re.compile(r"^(\w+)\((.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)\) += (.*)$")
_FRAME = re.compile(r"^ > (.*?)\((?:(.*)\+0x([0-9a-f]+))?\) \[0x([0-9a-f]+)\]$")
_QUOTED = re.compile(r'^"((?:\\x[0-9a-f]{2})*)"')
_ANNOTATED = re.compile(r"^[\w-]+<((?:\\x[0-9a-f]{2})*)>")


def _syscalls(lines: Iterator[str]) -> list[_Syscall]:
    """strace's log as its system calls, completed, in the order they entered, each with
    the stack printed after it."""
    done: list[_Syscall] = []
    waiting: dict[int, _Syscall] = {}
    last: _Syscall | None = None
    order = 0
    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith(" > "):
            match = _FRAME.match(line)
            if last is not None and last.frames is not None and match is not None:
                obj, function, offset, address = match.groups()
                last.frames.append(
                    Frame(obj, function or "", int(offset or "0", 16), int(address, 16))
                )
            continue
        head = _LINE.match(line)
        if head is None:
            continue
        pid, text = int(head.group(1) or 0), head.group(2)
        last = None
        if (match := _DONE.match(text)) is not None:
            call = _Syscall(order, pid, match.group(1), match.group(2), match.group(3), [])
        elif (match := _UNFINISHED.match(text)) is not None:
            waiting[pid] = _Syscall(order, pid, match.group(1), match.group(2))
            order += 1
            continue
        elif (match := _RESUMED.match(text)) is not None:
            started = waiting.pop(pid, None)
            if started is None or started.name != match.group(1):
                continue
            call = started
            call.args += match.group(2)
            call.ret, call.frames = match.group(3), []
        else:
            continue
        if call.order == order:
            order += 1
        done.append(call)
        last = call
    done.sort(key=lambda c: c.order)
    return done


def _split(args: str) -> list[str]:
    """A call's arguments, split at the commas outside brackets."""
    out: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(args):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            out.append(args[start:i].strip())
            start = i + 1
    tail = args[start:].strip()
    if tail:
        out.append(tail)
    return out


def _decode(hexed: str) -> str:
    return os.fsdecode(bytes.fromhex(hexed.replace("\\x", "")))


def _path(arg: str) -> str | None:
    """A quoted path argument (`"\\x2f..."`)."""
    match = _QUOTED.match(arg)
    return None if match is None else _decode(match.group(1))


def _fd_path(arg: str) -> str | None:
    """The path `strace -y` gives a descriptor (`3<\\x2f...>`, `AT_FDCWD<...>`)."""
    match = _ANNOTATED.match(arg)
    return None if match is None else _decode(match.group(1))


#: call -> (the hook's name for it, where its path is: ("path", i) an argument relative
#: to the current folder; ("at", i, j) argument j relative to the folder descriptor i;
#: ("fd", i) a descriptor)
_CALLS: dict[str, tuple[str, tuple[object, ...]]] = {
    "open": ("open", ("path", 0)),
    "creat": ("open", ("path", 0)),
    "openat": ("open", ("at", 0, 1)),
    "openat2": ("open", ("at", 0, 1)),
    "write": ("write", ("fd", 0)),
    "pwrite64": ("write", ("fd", 0)),
    "writev": ("write", ("fd", 0)),
    "pwritev": ("write", ("fd", 0)),
    "pwritev2": ("write", ("fd", 0)),
    "fsync": ("fsync", ("fd", 0)),
    "fdatasync": ("fdatasync", ("fd", 0)),
    "truncate": ("ftruncate", ("path", 0)),
    "ftruncate": ("ftruncate", ("fd", 0)),
    "rename": ("rename", ("path", 0)),
    "renameat": ("rename", ("at", 0, 1)),
    "renameat2": ("rename", ("at", 0, 1)),
    "unlink": ("unlink", ("path", 0)),
    "unlinkat": ("unlink", ("at", 0, 1)),
    "mkdir": ("mkdir", ("path", 0)),
    "mkdirat": ("mkdir", ("at", 0, 1)),
    "rmdir": ("rmdir", ("path", 0)),
    # a link is recorded as the open that creates its new name
    "link": ("open", ("path", 1)),
    "linkat": ("open", ("at", 2, 3)),
    "symlink": ("open", ("path", 1)),
    "symlinkat": ("open", ("at", 1, 2)),
}
_STARTS = frozenset({"clone", "clone3", "fork", "vfork"})


def read_stacks(log: str, mount: str, cwd: str, *, lines: bool = True) -> list[Callsite]:
    """The calls strace logged on paths under `mount`, in order, each with the innermost
    frame outside the C runtime (and its `file:line`, with `lines`, where addr2line
    finds it). `cwd`: the folder the command started in. Empty when there is no log."""
    try:
        with open(log, encoding="ascii", errors="replace") as f:
            calls = _syscalls(f)
    except FileNotFoundError:
        return []
    mount = os.path.realpath(mount)
    folders: dict[int, str] = {}  # pid -> its current folder
    starting: list[int] = []  # pids whose last call started a process

    def folder(pid: int) -> str:
        if pid not in folders:
            folders[pid] = folders[starting[-1]] if starting else cwd
        return folders[pid]

    found: list[tuple[str, str, Frame | None]] = []
    for call in calls:
        args = _split(call.args)
        failed = call.ret.startswith(("-1", "?"))
        here = folder(call.pid)
        if call.name in _STARTS:
            if not failed and call.ret.split("<")[0].strip().isdigit():
                child = int(call.ret.split("<")[0].strip())
                folders[child] = here
                starting.append(call.pid)
            continue
        if failed:
            continue
        if call.name == "chdir" and args and (target := _path(args[0])) is not None:
            folders[call.pid] = posixpath.normpath(posixpath.join(here, target))
            continue
        if call.name == "fchdir" and args and (target := _fd_path(args[0])) is not None:
            folders[call.pid] = target
            continue
        where = _under(_resolve(call, args, here), mount)
        if call.name in ("sync", "syncfs"):
            if call.name == "sync" or where is not None:
                found.append(("sync", "/", _innermost(call.frames or [])))
            continue
        if where is None or call.name not in _CALLS:
            continue
        name = _CALLS[call.name][0]
        if call.name == "unlinkat" and len(args) > 2 and "AT_REMOVEDIR" in args[2]:
            name = "rmdir"
        found.append((name, where, _innermost(call.frames or [])))
    known = _source_lines({frame for _, _, frame in found if frame is not None}) if lines else {}
    out = []
    for name, where, frame in found:
        text = "" if frame is None else str(frame)
        if frame is not None and known.get(frame):
            text = f"{text} {known[frame]}"
        out.append(Callsite(name, where, text))
    return out


def _resolve(call: _Syscall, args: list[str], here: str) -> str | None:
    """The absolute path a call names, or None."""
    spec = _CALLS.get(call.name, ("", ("fd", 0)))[1]
    kind = spec[0]
    if kind == "fd":
        index = int(str(spec[1]))
        return _fd_path(args[index]) if index < len(args) else None
    if kind == "path":
        index = int(str(spec[1]))
        path = _path(args[index]) if index < len(args) else None
        return None if path is None else posixpath.normpath(posixpath.join(here, path))
    at, index = int(str(spec[1])), int(str(spec[2]))
    if index >= len(args):
        return None
    path = _path(args[index])
    base = _fd_path(args[at]) or here
    return None if path is None else posixpath.normpath(posixpath.join(base, path))


def _under(path: str | None, mount: str) -> str | None:
    """`path` as a path under the mount (`/` its root), or None outside it."""
    if path is None:
        return None
    if path == mount:
        return "/"
    if path.startswith(mount + "/"):
        return path[len(mount) :]
    return None


def _innermost(frames: Sequence[Frame]) -> Frame | None:
    """The innermost frame outside the C runtime (the program's call site)."""
    for frame in frames:
        if not posixpath.basename(frame.obj).startswith(_RUNTIME):
            return frame
    return None


def _source_lines(frames: set[Frame]) -> dict[Frame, str]:
    """`file:line` of each frame addr2line finds one for (one addr2line per object)."""
    tool = shutil.which(ADDR2LINE)
    if tool is None:
        return {}
    by_object: dict[str, list[Frame]] = {}
    for frame in sorted(frames, key=lambda f: (f.obj, f.function, f.offset, f.address)):
        if os.path.isfile(frame.obj):
            by_object.setdefault(frame.obj, []).append(frame)
    out: dict[Frame, str] = {}
    for obj, wanted in by_object.items():
        try:
            done = subprocess.run(
                [tool, "-e", obj, *(f.query() for f in wanted)],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        answers = done.stdout.splitlines()
        if done.returncode != 0 or len(answers) != len(wanted):
            continue
        for frame, answer in zip(wanted, answers, strict=True):
            where = answer.split(" (discriminator", 1)[0].strip()
            if where and not where.startswith("??") and not where.endswith((":0", ":?")):
                out[frame] = where
    return out
