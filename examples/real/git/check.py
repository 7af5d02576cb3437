"""Check a crash state of the git workload: the repository opens, `git fsck` finds no
corrupt object, ref or index, and every acknowledged commit is HEAD or an ancestor of it.

Git may write as it reads (the index's stat data, a reflog), so the check runs on a copy
of `repo/`, with GIT_DIR named outright (a broken `.git` must not send git looking in
the folders above) and the machine's configuration ignored. Exit 0: fine; exit 1 with a
one-line reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # acklog.py
from acklog import acked


def git(copy: str, home: str, *words: str) -> subprocess.CompletedProcess[str]:
    """Run git on the copied repository only."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "XDG_CONFIG_HOME": home,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_DIR": os.path.join(copy, ".git"),
        "GIT_WORK_TREE": copy,
        "LC_ALL": "C",
    }
    return subprocess.run(["git", *words], cwd=copy, env=env, capture_output=True, text=True)


def first_line(done: subprocess.CompletedProcess[str]) -> str:
    """The first line git printed (stderr first: where it says what is wrong)."""
    text = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()
    return text[0][:200]


def verdict(copy: str, home: str, done: list[str]) -> str | None:
    """What is wrong with the repository copied to `copy`, or None."""
    head = git(copy, home, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if head.returncode != 0:
        return f"HEAD names no commit: {first_line(head)}"
    for item in done:
        number, commit = item.split()[1:3]
        found = git(copy, home, "merge-base", "--is-ancestor", commit, "HEAD")
        if found.returncode != 0:
            return f"acknowledged commit {number} ({commit[:12]}) is not in HEAD's history"
    fsck = git(copy, home, "fsck", "--full", "--strict", "--no-dangling", "--no-progress")
    if fsck.returncode != 0 or fsck.stderr.strip():
        return f"git fsck: {first_line(fsck)}"
    return None


def main() -> int:
    root = os.environ.get("CRASHKIT_DIR", ".")
    done = acked(root)
    if not done:
        return 0  # nothing acknowledged: a crash during `git init` or the first commit
    source = os.path.join(root, "repo")
    if not os.path.isdir(os.path.join(source, ".git")):
        print(f"repo/.git is missing, but {len(done)} commits were acknowledged")
        return 1
    with tempfile.TemporaryDirectory(prefix="check-git-") as scratch:
        copy = os.path.join(scratch, "repo")
        shutil.copytree(source, copy, symlinks=True)
        home = os.path.join(scratch, "home")
        os.mkdir(home)
        reason = verdict(copy, home, done)
    if reason:
        print(reason)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
