"""Warm processes: `python -m MODULE ARGS...` as a fork of a process that has imported
MODULE's code once, instead of a new interpreter per run.

Why: `crashkit explore --real` restarts `crashkit run` on every crash state, and a new
interpreter with crashkit's imports costs most of each restart (about 100 ms of 110). A
fork server (this file run as a program, `WarmRunner` starts it) imports the command's
modules once; for each run (a connection on its Unix socket) it forks a worker, sends
its pid, and its wait status once it has ended. The worker is, for everything a judge
reads, what `subprocess.run(command, env=..., capture_output=True, text=True)` would
have started:

- its stdin is the caller's, its stdout and stderr are the caller's files (passed over
  the socket), its argv the command's, its folder and environment the caller's (a
  server serves only the interpreter, folder and environment it was started with);
- it runs MODULE as its `__main__` module, as `python -m` does, and ends as an
  interpreter ends (the exit code of `SystemExit`, a traceback and 1 for an uncaught
  exception, atexit's handlers, flushed files, the teardown's finalizers); it skips
  the teardown itself only when nothing is left for it to act on (`_exit_worker`);
- the server never holds a file of the worker's: what the worker opens and locks is its
  own and is released when it exits (it closes the server's socket and pipes first).

The server refuses to serve (and `WarmRunner.run` is then `subprocess.run`, as it is
whenever a command is not one the server was started for) where a fork would differ
from a new process: no `os.fork` or `socket.send_fds`, a preloaded module that fails,
writes output or starts a thread while it is imported, or a main module imported
already (`runpy` would warn).
"""

from __future__ import annotations

import builtins
import contextlib
import gc
import importlib
import importlib.util
import io
import json
import locale
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import types
import weakref
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import IO, NoReturn

#: How the server starts: `-c` (not `-m`, which would import this package's
#: `__init__`, and not the file as a script, whose folder would lead `sys.path`), with
#: the current folder first on `sys.path` as `python -m` puts it.
_BOOT = (
    "import os, sys\n"
    "if sys.path[:1] == ['']: sys.path[0] = os.getcwd()\n"
    "__file__ = sys.argv.pop(1)\n"
    "with open(__file__, 'rb') as f: source = f.read()\n"
    "exec(compile(source, __file__, 'exec'))\n"
)
_READY = b"ready"
#: How long a server may take to import its modules.
_START_TIMEOUT = 120.0
_MAX_REQUEST = 1 << 20


def fork_unavailable() -> str | None:
    """Why this platform cannot run a fork server (None: it can)."""
    if not hasattr(os, "fork"):
        return "no os.fork on this platform"
    if not hasattr(socket, "AF_UNIX") or not hasattr(socket, "send_fds"):
        return "no Unix sockets that pass file descriptors"
    if not os.path.isfile(__file__):
        return f"{__file__} is not a file the server can run"
    return None


class WarmRunner:
    """Runs `python -m MODULE ...` commands in warm workers when it can, else as
    `subprocess.run` does; thread-safe (each run its own connection and worker).

    `preload` names the modules the command imports (the server imports them once); a
    name after `?` is one it may import later on (warmed when it exists: a module the
    command would import lazily, such as rich's emoji table)."""

    def __init__(
        self,
        module: str,
        preload: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        enabled: bool = True,
    ) -> None:
        self.module = module
        self.preload = tuple(preload)
        self.env = dict(os.environ if env is None else env)
        self.cwd = os.getcwd()
        self.executable = sys.executable
        #: runs served warm, and by `subprocess.run`
        self.warm_runs = 0
        self.cold_runs = 0
        self._lock = threading.Lock()
        self._server: subprocess.Popen[bytes] | None = None
        self._folder: str | None = None
        self._ready = False
        self._why_cold: str | None = None if enabled else "warm processes are turned off"

    @property
    def why_cold(self) -> str | None:
        """Why commands run as new processes (None: warm, or not started yet)."""
        return self._why_cold

    def __enter__(self) -> WarmRunner:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the server without waiting for it (its imports overlap the caller's
        work); the first `run` waits."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._server is not None or self._why_cold is not None:
            return
        reason = fork_unavailable()
        if reason is not None:
            self._why_cold = reason
            return
        self._folder = tempfile.mkdtemp(prefix="crashkit-warm-")
        with open(os.path.join(self._folder, "log"), "wb") as log:  # the server's stderr
            self._server = subprocess.Popen(
                [
                    self.executable,
                    "-c",
                    _BOOT,
                    __file__,
                    self._socket(),
                    self.module,
                    *self.preload,
                ],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )

    def _socket(self) -> str:
        assert self._folder is not None
        return os.path.join(self._folder, "s")

    def close(self) -> None:
        """Stop the server (workers running finish on their own)."""
        with self._lock:
            server, self._server = self._server, None
            self._ready = False
            if self._why_cold is None:
                self._why_cold = "closed"
            if server is not None:
                _end(server)
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
                self._folder = None

    def run(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`subprocess.run(command, env=env, capture_output=True, text=True,
        timeout=timeout)`, in a warm worker when the server serves this command."""
        path = self._serving(command, os.environ if env is None else env)
        if path is not None:
            done = self._warm(path, command, timeout)
            if done is not None:
                with self._lock:
                    self.warm_runs += 1
                return done
        with self._lock:
            self.cold_runs += 1
        return subprocess.run(
            list(command),
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # -- the caller's side ------------------------------------------------------------

    def _serving(self, command: Sequence[str], env: Mapping[str, str]) -> str | None:
        """The server's socket, when it serves `command` in `env` here (else None)."""
        if (
            len(command) < 3
            or command[0] != self.executable
            or command[1] != "-m"
            or command[2] != self.module
            or env != self.env
            or os.getcwd() != self.cwd
        ):
            return None
        with self._lock:
            self._start()
            if self._why_cold is not None or self._server is None:
                return None
            if not self._ready:
                answer = _handshake(self._server)
                if answer is not None:
                    _end(self._server)
                    self._server = None
                    self._why_cold = answer + self._log()
                    return None
                self._ready = True
            return self._socket()

    def _log(self) -> str:
        """The last line the server wrote on stderr (`: line`), if any."""
        assert self._folder is not None
        try:
            with open(os.path.join(self._folder, "log"), "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f": {lines[-1]}" if lines else ""

    def _warm(
        self, path: str, command: Sequence[str], timeout: float | None
    ) -> subprocess.CompletedProcess[str] | None:
        """`command` in a worker; None when the server could not fork one (nothing ran)."""
        with (
            _capture("stdout") as out,
            _capture("stderr") as err,
            _stdin() as stdin,
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
        ):
            try:
                sock.connect(path)
                request = json.dumps({"args": list(command[3:])}).encode()
                header = len(request).to_bytes(4, "big")
                socket.send_fds(sock, [header + request], [stdin, out.fileno(), err.fileno()])
            except OSError as exc:
                self._lost(f"the server did not answer: {exc}")
                return None
            with sock.makefile("rb") as reply:
                first = reply.readline()  # the worker's pid, once it is forked
                if not first:
                    self._lost("the server closed the connection before forking")
                    return None
                pid = int(first)
                sock.settimeout(timeout)
                try:
                    status = reply.readline()
                except TimeoutError:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(
                        list(command), timeout or 0.0, _read(out), _read(err)
                    ) from None
            if not status:
                raise RuntimeError(f"warm worker {pid} of {command!r}: the server ended first")
            returncode = os.waitstatus_to_exitcode(int(status))
            return subprocess.CompletedProcess(list(command), returncode, _text(out), _text(err))

    def _lost(self, reason: str) -> None:
        with self._lock:
            if self._why_cold is None:
                self._why_cold = reason


def _handshake(server: subprocess.Popen[bytes]) -> str | None:
    """Wait for the server's first line: None when it is ready, else why not."""
    assert server.stdout is not None
    ready, _, _ = select.select([server.stdout], [], [], _START_TIMEOUT)
    line = server.stdout.readline().strip() if ready else b""
    if line == _READY:
        return None
    if not line:
        return "the server did not start"
    return line.decode(errors="replace")


def _end(server: subprocess.Popen[bytes]) -> None:
    """Close the server's stdin (it exits on EOF) and reap it."""
    for stream in (server.stdin, server.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@contextlib.contextmanager
def _stdin() -> Iterator[int]:
    """The caller's stdin descriptor, as a child started by `subprocess.run` inherits
    it (/dev/null when it has none)."""
    try:
        os.fstat(0)
    except OSError:
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            yield fd
        finally:
            os.close(fd)
        return
    yield 0


def _capture(name: str) -> IO[bytes]:
    """A file a worker's output goes to: in memory where the platform has them."""
    if hasattr(os, "memfd_create"):
        return open(os.memfd_create(f"crashkit-warm-{name}"), "w+b")
    return tempfile.TemporaryFile()


def _read(stream: IO[bytes]) -> bytes:
    stream.seek(0)
    return stream.read()


def _text(stream: IO[bytes]) -> str:
    """A captured stream as `subprocess.run(text=True)` decodes it."""
    data = _read(stream).decode(locale.getpreferredencoding(False))
    return data.replace("\r\n", "\n").replace("\r", "\n")


# -- the server's side ----------------------------------------------------------------


def _warm_up(main: str, preload: Sequence[str]) -> str | None:
    """Import what the command imports (`preload`, MAIN's packages) once: None when
    forks of this process can run MAIN as a new process would, else why not."""
    with tempfile.TemporaryFile() as caught:
        saved = os.dup(1), os.dup(2)
        os.dup2(caught.fileno(), 1)
        os.dup2(caught.fileno(), 2)
        try:
            reason = _import_all(main, preload)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        if reason is not None:
            return reason
        if os.fstat(caught.fileno()).st_size:
            return "a module wrote output while it was imported (a new process shows it)"
    if threading.active_count() > 1 or _threads() > 1:
        return "a module started a thread while it was imported (a fork would not have it)"
    return None


def _import_all(main: str, preload: Sequence[str]) -> str | None:
    try:
        for name in preload:
            optional = name.startswith("?")
            try:
                importlib.import_module(name.removeprefix("?"))
            except ModuleNotFoundError as exc:
                if not optional or exc.name != name.removeprefix("?"):
                    raise
        spec = importlib.util.find_spec(main)  # imports MAIN's packages, as runpy does
        if spec is None:
            return f"no module named {main}"
        target = main if spec.submodule_search_locations is None else f"{main}.__main__"
    except BaseException as exc:  # a new process reports it, not the server
        return f"preloading failed: {type(exc).__name__}: {exc}"
    if target in sys.modules:
        return f"{target} is imported already (runpy would warn)"
    return None


def _threads() -> int:
    """The threads of this process as the kernel counts them (1 where it cannot tell)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


class _Job:
    """What a worker runs: `python -m module *args`; `quick`: it may end without the
    teardown (`_exit_worker`) when nothing is left for the teardown to act on."""

    def __init__(self, module: str, args: Sequence[str], quick: bool) -> None:
        self.module = module
        self.args = list(args)
        self.quick = quick


def _serve(path: str, main: str, preload: Sequence[str]) -> _Job | None:
    """The server: warm up, then fork a worker per connection and send its pid, then its
    wait status, until stdin closes. Returns in a worker only (with its job); None in the
    server when it is done."""
    reason = _warm_up(main, preload)
    if reason is not None:
        os.write(1, reason.encode() + b"\n")
        return None
    # What the imports made is the same in every worker; when some of it could act in a
    # teardown (a file, a finalizer), every worker tears down in full.
    quick = not _other_files() and not _left_to_finalize(gc.get_objects())
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake, woken = os.pipe()
    os.set_blocking(woken, False)
    signal.set_wakeup_fd(woken)  # an ended worker wakes the loop
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    gc.freeze()  # the warm objects stay shared with the forks (no collection copies them)
    os.write(1, _READY + b"\n")
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.close(quiet)
    waiting: dict[int, socket.socket] = {}
    while True:
        readable, _, _ = select.select([listener.fileno(), wake, 0], [], [])
        if wake in readable:
            os.read(wake, 4096)
            _reap(waiting)
        if 0 in readable and not os.read(0, 1):  # the caller is gone
            listener.close()
            return None
        if listener.fileno() not in readable:
            continue
        conn, _ = listener.accept()
        try:
            request, fds = _request(conn)
        except (OSError, ValueError):
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:  # the worker: nothing of the server's stays open in it
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for other in (listener, conn, *waiting.values()):
                other.close()
            os.close(wake)
            os.close(woken)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in fds:
                os.close(fd)
            return _Job(main, request, quick)
        for fd in fds:
            os.close(fd)
        waiting[pid] = conn  # reaped even when its caller is gone
        with contextlib.suppress(OSError):
            conn.sendall(b"%d\n" % pid)


def _request(conn: socket.socket) -> tuple[list[str], list[int]]:
    """A run's arguments and its three standard descriptors, from a new connection."""
    conn.settimeout(10)
    data, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 3)
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ValueError("a request passes stdin, stdout and stderr")
    size = int.from_bytes(data[:4], "big")
    while len(data) < 4 + size:
        more = conn.recv(_MAX_REQUEST)
        if not more:
            for fd in fds:
                os.close(fd)
            raise ValueError("request cut short")
        data += more
    args = json.loads(data[4 : 4 + size])["args"]
    return [str(a) for a in args], fds


def _reap(waiting: dict[int, socket.socket]) -> None:
    """Send each ended worker's wait status to its caller."""
    while waiting:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        conn = waiting.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sendall(b"%d\n" % status)
            conn.close()


def _run(job: _Job) -> None:
    """The worker: MODULE as `python -m MODULE` runs it, as the `__main__` module (its
    globals live to the teardown, after atexit's handlers; `SystemExit`, an uncaught
    exception and the interpreter's exit as in a new process; `_exit_worker`)."""
    spec = importlib.util.find_spec(job.module)  # found when the server warmed up
    if spec is not None and spec.submodule_search_locations is not None:
        spec = importlib.util.find_spec(f"{job.module}.__main__")
    assert spec is not None
    code = spec.loader.get_code(spec.name)  # type: ignore[union-attr]
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=spec.origin,
        __cached__=spec.cached,
        __loader__=spec.loader,
        __package__=spec.parent,
        __spec__=spec,
        __annotations__={},
        __builtins__=builtins,  # the module, as in `__main__` (exec would put its dict)
    )
    sys.modules["__main__"] = main
    sys.argv = [spec.origin or "", *job.args]
    try:
        exec(code, main.__dict__)
    except SystemExit as exc:
        status = 0 if exc.code is None else exc.code
        if not job.quick or not isinstance(status, int) or not 0 <= status <= 255:
            raise  # the interpreter prints it, exits 1 (a message) or with the code
        _exit_worker(int(status))
    if job.quick:
        _exit_worker(0)


def _exit_worker(code: int) -> NoReturn:
    """End a worker as an interpreter ends (other threads joined, atexit's handlers,
    stdout and stderr flushed), but without its teardown when nothing is left that the
    teardown could act on: no file open but stdin, stdout and stderr, no other thread,
    nothing of the worker's with a finalizer to run (an open file object, a suspended
    generator, a `__del__`, a weakref callback or `weakref.finalize` in Python). The
    teardown frees every object, so its writes copy the pages the worker shares with the
    server one by one: half of a worker's time, for nothing a judge could see."""
    import atexit

    if _threads() > 1 or ("threading" in sys.modules and threading.active_count() > 1):
        raise SystemExit(code)  # the interpreter joins them first
    if not hasattr(atexit, "_run_exitfuncs") or not hasattr(atexit, "_clear"):
        raise SystemExit(code)  # another Python: its interpreter ends it
    atexit._run_exitfuncs()
    atexit._clear()  # run once: a teardown after this runs none
    if _other_files() or _left_to_finalize(gc.get_objects()):  # the worker's own objects
        raise SystemExit(code)
    try:
        for stream in {
            id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        }.values():
            if stream is not None:
                stream.flush()
    except BaseException:  # the interpreter reports it (and exits 120)
        raise SystemExit(code) from None
    os._exit(code)


def _other_files() -> bool:
    """A file descriptor is open besides 0, 1 and 2 (True where it cannot tell)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        # the listing's own descriptor is closed again by now
        return any(int(n) > 2 and _is_open(int(n)) for n in names)
    return True


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


#: Weakref callbacks of the standard library that only forget an entry (besides those
#: of `weakref` and `_weakrefset`, the weak collections').
_INERT_CALLBACKS = frozenset({("logging", "_removeHandlerRef")})


def _left_to_finalize(objects: Sequence[object]) -> bool:
    """One of `objects` would run code or close a file when the teardown frees it (the
    standard streams aside: the interpreter flushes them before)."""
    streams: set[int] = set()
    for stream in (
        sys.stdin,
        sys.stdout,
        sys.stderr,
        sys.__stdin__,
        sys.__stdout__,
        sys.__stderr__,
    ):
        buffer = getattr(stream, "buffer", None)
        streams.update((id(stream), id(buffer), id(getattr(buffer, "raw", None))))
    return any(_finalizes(obj, streams) for obj in objects)


def _finalizes(obj: object, streams: set[int]) -> bool:
    if isinstance(obj, types.GeneratorType):
        return obj.gi_frame is not None
    if isinstance(obj, types.CoroutineType):
        return obj.cr_frame is not None
    if isinstance(obj, types.AsyncGeneratorType):
        return obj.ag_frame is not None
    if isinstance(obj, weakref.finalize):
        return obj.alive
    if isinstance(obj, weakref.ref):
        callback = obj.__callback__
        return (
            callback is not None
            and not isinstance(callback, types.BuiltinFunctionType)  # the C caches' own
            and (getattr(callback, "__module__", None), getattr(callback, "__qualname__", None))
            not in _INERT_CALLBACKS
            and getattr(callback, "__module__", None) not in ("weakref", "_weakrefset")
        )
    if isinstance(obj, io.IOBase):
        return not obj.closed and id(obj) not in streams
    if isinstance(obj, socket.socket):
        return obj.fileno() != -1
    return getattr(type(obj), "__del__", None) is not None


if __name__ == "__main__":
    _job = _serve(sys.argv[1], sys.argv[2], sys.argv[3:])
    if _job is not None:
        _run(_job)
