"""Warm processes (`crashkit.harness.explore.warm`): a command run in a fork of the warm
server is, for everything the real mode's judges read, the new process `subprocess.run`
would have started: its exit code, its stdout and stderr, the files it writes, its own
locks; and where the server cannot be that, the runner is `subprocess.run`."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crashkit.harness.explore import warm
from crashkit.harness.explore.warm import WarmRunner

pytestmark = pytest.mark.skipif(
    warm.fork_unavailable() is not None, reason=f"no fork server: {warm.fork_unavailable()}"
)

#: A command line program in the current folder, as a user's backend module would be.
PROGRAM = """
import fcntl, os, sys
what = sys.argv[1]
if what == "write":
    with open(sys.argv[2], "a") as f:
        f.write("written\\n")
    print("out", sys.argv[2:])
    print("err", file=sys.stderr)
    sys.exit(int(sys.argv[3]))
if what == "message":
    sys.exit("error: refusing to start: the state is locked")
if what == "raise":
    raise ValueError("a crash")
if what == "lock":
    fd = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(1, b"locked")
if what == "unflushed":
    LEFT = open(sys.argv[2], "w")
    LEFT.write("flushed at exit")
if what == "stdin":
    print(sys.stdin is not None and os.isatty(0))
if what == "main":
    main = sys.modules["__main__"]
    print(__name__, __spec__.name, __package__, type(__builtins__).__name__)
    print(sys.argv[0] == __file__, main.__dict__ is globals(), sys.path[0] == os.getcwd())
if what == "enum":
    import enum
    class Code(enum.IntEnum):
        FIVE = 5
    print("no newline", end="")
    sys.exit(Code.FIVE)
if what == "teardown":  # each thing a teardown runs, one at a time
    import atexit, threading, time, weakref
    def note(what, open=open):  # the teardown may have taken the builtins away
        with open("notes.txt", "a") as f:
            f.write(what + "\\n")
    class Marker:
        def __del__(self, note=note):
            note("deleted")
    def generator(note=note):
        try:
            yield 1
        finally:
            note("finally")
    class Target:
        pass
    kind = sys.argv[2]
    note("ran")
    if kind == "del":
        KEEP = Marker()
    if kind == "generator":
        KEEP = generator()
        next(KEEP)
    if kind == "callback":
        KEEP = Target()
        REF = weakref.ref(KEEP, lambda ref, note=note: note("callback"))
    if kind == "finalize":
        KEEP = Target()
        weakref.finalize(KEEP, note, "finalized")
    if kind == "atexit":
        atexit.register(note, "atexit")
    if kind == "thread":
        threading.Thread(target=lambda: (time.sleep(0.2), note("thread")), daemon=False).start()
    sys.exit(int(sys.argv[3]))
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A current folder holding the program (importable with `python -m prog`, the
    folder first on `sys.path`)."""
    (tmp_path / "prog.py").write_text(PROGRAM)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "prog", *args]


def _both(*args: str) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """The command in a warm worker, then as a new process."""
    with WarmRunner("prog", ["fcntl"]) as runner:
        warm_done = runner.run(_command(*args), env=os.environ)
        assert (runner.warm_runs, runner.cold_runs) == (1, 0), runner.why_cold
    cold = subprocess.run(_command(*args), capture_output=True, text=True)
    return warm_done, cold


@pytest.mark.parametrize(
    "args",
    [("write", "out.txt", "0"), ("write", "out.txt", "5"), ("message",), ("stdin",), ("main",)],
    ids=["exit-0", "exit-5", "sys-exit-message", "stdin", "main-module"],
)
def test_a_worker_exits_and_prints_as_a_new_process(here: Path, args: tuple[str, ...]) -> None:
    warm_done, cold = _both(*args)
    assert (warm_done.returncode, warm_done.stdout, warm_done.stderr) == (
        cold.returncode,
        cold.stdout,
        cold.stderr,
    )
    if args[0] == "write":
        assert (here / "out.txt").read_text() == "written\n" * 2
        assert warm_done.stdout == f"out ['out.txt', '{args[2]}']\n"
        assert warm_done.returncode == int(args[2])
    if args[0] == "main":
        assert warm_done.stdout == "__main__ prog  module\nTrue True True\n"
    if args[0] == "message":
        assert (warm_done.returncode, warm_done.stderr) == (
            1,
            "error: refusing to start: the state is locked\n",
        )


def test_an_uncaught_exception_is_a_traceback_and_exit_1(here: Path) -> None:
    warm_done, cold = _both("raise")
    assert warm_done.returncode == cold.returncode == 1
    assert warm_done.stderr.startswith("Traceback (most recent call last):\n")
    assert (
        warm_done.stderr.splitlines()[-1] == cold.stderr.splitlines()[-1] == "ValueError: a crash"
    )


def test_a_file_left_open_is_flushed_when_the_worker_exits(here: Path) -> None:
    """The worker ends as an interpreter does: what a module still holds is closed."""
    with WarmRunner("prog") as runner:
        done = runner.run(_command("unflushed", "left.txt"), env=os.environ)
        assert runner.warm_runs == 1
    assert done.returncode == 0
    assert (here / "left.txt").read_text() == "flushed at exit"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="no /proc to list a process's files")
def test_a_workers_lock_goes_with_it_and_the_server_holds_nothing(here: Path) -> None:
    with WarmRunner("prog", ["fcntl"]) as runner:
        done = runner.run(_command("lock", "state.lock"), env=os.environ)
        assert (done.returncode, done.stdout, runner.warm_runs) == (0, "locked", 1)
        fd = os.open(here / "state.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: no fork kept it
        finally:
            os.close(fd)
        server = runner._server
        assert server is not None
        held = {
            os.readlink(f"/proc/{server.pid}/fd/{n}") for n in os.listdir(f"/proc/{server.pid}/fd")
        }
        assert not {p for p in held if p.startswith(str(here))}, held


def test_a_command_of_another_module_or_environment_runs_as_a_new_process(here: Path) -> None:
    with WarmRunner("prog") as runner:
        other = runner.run([sys.executable, "-c", "print('hi')"], env=os.environ)
        changed = runner.run(_command("stdin"), env={**os.environ, "X_CRASHKIT": "1"})
        assert (other.stdout, changed.returncode) == ("hi\n", 0)
        assert (runner.warm_runs, runner.cold_runs) == (0, 2)


@pytest.mark.parametrize(
    ("module", "why"),
    [
        ("print('imported')", "wrote output"),
        (
            "import threading, time\nthreading.Thread(target=time.sleep, args=(5,), daemon=True).start()",
            "thread",
        ),
        ("raise ImportError('broken')", "preloading failed"),
    ],
    ids=["prints", "starts-a-thread", "fails"],
)
def test_a_module_a_fork_cannot_mirror_leaves_the_runner_cold(
    here: Path, module: str, why: str
) -> None:
    (here / "side.py").write_text(module)
    with WarmRunner("prog", ["side"]) as runner:
        done = runner.run(_command("write", "out.txt", "0"), env=os.environ)
        assert done.returncode == 0
        assert (runner.warm_runs, runner.cold_runs) == (0, 1)
        assert runner.why_cold is not None and why in runner.why_cold


def test_without_fork_the_runner_is_subprocess_run(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "fork")
    with WarmRunner("prog") as runner:
        done = runner.run(_command("write", "out.txt", "3"), env=os.environ)
        assert runner.why_cold == "no os.fork on this platform"
        assert (runner.warm_runs, runner.cold_runs) == (0, 1)
    assert (done.returncode, done.stderr) == (3, "err\n")


def test_a_worker_past_its_timeout_is_killed(here: Path) -> None:
    (here / "slow.py").write_text("import time\ntime.sleep(30)\n")
    with WarmRunner("slow") as runner:
        with pytest.raises(subprocess.TimeoutExpired):
            runner.run([sys.executable, "-m", "slow"], env=os.environ, timeout=0.5)
        assert runner.warm_runs == 0


@pytest.mark.parametrize("kind", ["del", "generator", "callback", "finalize", "atexit", "thread"])
def test_what_a_teardown_runs_runs_in_a_worker_too(here: Path, kind: str) -> None:
    """A worker ends without the interpreter's teardown only when it has nothing left
    to run: each of these is run as a new process runs it, in the same order."""
    with WarmRunner("prog", ["atexit", "threading", "weakref"]) as runner:
        done = runner.run(_command("teardown", kind, "4"), env=os.environ)
        assert (runner.warm_runs, runner.cold_runs) == (1, 0), runner.why_cold
    warm_notes = (here / "notes.txt").read_text()
    (here / "notes.txt").unlink()
    cold = subprocess.run(_command("teardown", kind, "4"), capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (cold.returncode, cold.stdout, "")
    assert cold.stderr == ""
    assert done.returncode == 4
    assert warm_notes == (here / "notes.txt").read_text()
    # a callback: its referent outlives it in a teardown (the globals are cleared in order)
    then = {"del": "deleted", "generator": "finally", "callback": "", "finalize": "finalized"}
    assert warm_notes == "ran\n" + f"{then.get(kind, kind)}\n".lstrip()


def test_an_int_enum_exit_and_an_unflushed_line_as_a_new_process(here: Path) -> None:
    warm_done, cold = _both("enum")
    assert (
        (warm_done.returncode, warm_done.stdout)
        == (cold.returncode, cold.stdout)
        == (5, "no newline")
    )


def test_what_a_teardown_would_act_on_is_found() -> None:
    """The objects that keep a worker from ending before the teardown, and those that
    do not (closed files, finished generators, the weak collections' own callbacks)."""
    import io
    import weakref

    class Target:
        pass

    class Marker:
        def __del__(self) -> None:
            pass

    def generator() -> Iterator[int]:
        yield 1

    target = Target()
    started = generator()
    next(started)
    finished = generator()
    list(finished)
    closed = io.BytesIO()
    closed.close()
    for obj in (started, io.BytesIO(), Marker(), weakref.ref(target, lambda _: None)):
        assert warm._left_to_finalize([obj]), obj
    kept = weakref.WeakValueDictionary({"t": target})
    for obj in (finished, closed, target, weakref.ref(target), *kept.data.values()):
        assert not warm._left_to_finalize([obj]), obj
    assert warm._left_to_finalize([weakref.finalize(target, print)])
