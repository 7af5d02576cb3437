"""The `git` command line: `git init`, then three commits (a file added and committed
each time) in a repository under $CRASHKIT_DIR, each commit logged in an ack log of our
own once `git commit` returned.

    python examples/real/git/workload.py [--fsync COMPONENTS] [--commits N]

--fsync sets `core.fsync` (git >= 2.36): `default` leaves it unset (git's default,
documented as `committed,-loose-object`: loose objects, refs and the index not synced),
`committed` (in git 2.39 the objects), `added` (+ the index) or `all` (+ the refs). Git
runs isolated from the machine: HOME points into a scratch folder, GIT_CONFIG_NOSYSTEM=1,
author and committer from the environment and fixed dates, so every run makes the same
commits (the same hashes). `git init --template=` copies no sample hooks: files no
checker reads, whose unsynced bytes would multiply the crash states of every later call.
--commits N (default 3) makes fewer or more commits: one is enough to show the default.

Layout under $CRASHKIT_DIR: `repo/` (the work tree and its `.git`), `acked` (one line
per commit returned: `commit N <hash>`, appended and fsynced). `repo/` and the ack log
exist and are durable before git starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # acklog.py
from acklog import ack, fsync_folder, open_ack_log

COMMITS = 3
COMPONENTS = ("default", "committed", "added", "all")


def git_env(home: str, number: int) -> dict[str, str]:
    """An environment that makes git ignore the machine's configuration and date."""
    date = f"2024-01-0{number} 12:00:00 +0000"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "XDG_CONFIG_HOME": home,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Crash Kit",
        "GIT_AUTHOR_EMAIL": "crashkit@example.invalid",
        "GIT_COMMITTER_NAME": "Crash Kit",
        "GIT_COMMITTER_EMAIL": "crashkit@example.invalid",
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_DATE": date,
        "LC_ALL": "C",
    }


def main() -> int:
    args = sys.argv[1:]
    fsync = args[args.index("--fsync") + 1] if "--fsync" in args else None
    commits = int(args[args.index("--commits") + 1]) if "--commits" in args else COMMITS
    if fsync is not None and fsync not in COMPONENTS:
        print(f"--fsync: one of {', '.join(COMPONENTS)}", file=sys.stderr)
        return 2
    root = os.environ.get("CRASHKIT_DIR", ".")
    repo = os.path.join(root, "repo")
    os.makedirs(repo, exist_ok=True)
    fsync_folder(root)
    log = open_ack_log(root)
    settings = ["-c", "gc.auto=0", "-c", "maintenance.auto=false"]
    if fsync not in (None, "default"):
        settings += ["-c", f"core.fsync={fsync}"]
    try:
        with tempfile.TemporaryDirectory(prefix="crashkit-git-home-") as home:

            def git(*words: str, number: int = 1) -> str:
                done = subprocess.run(
                    ["git", *settings, *words],
                    cwd=repo,
                    env=git_env(home, number),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                return done.stdout.strip()

            git("init", "--quiet", "--template=", "--initial-branch=main")
            for number in range(1, commits + 1):
                with open(os.path.join(repo, f"file{number}.txt"), "w") as f:
                    f.write(f"content of file {number}\n")
                git("add", f"file{number}.txt", number=number)
                git("commit", "--quiet", "-m", f"commit {number}", number=number)
                ack(log, f"commit {number} {git('rev-parse', 'HEAD', number=number)}")
    except subprocess.CalledProcessError as exc:
        print(
            f"{' '.join(exc.cmd)} failed ({exc.returncode}): {exc.stderr.strip()}", file=sys.stderr
        )
        return 1
    finally:
        os.close(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
