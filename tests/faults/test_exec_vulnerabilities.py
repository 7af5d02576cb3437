"""`crashkit explore --exec` reports vulnerabilities, not states: the refused crash states of
a real program grouped by cause, each naming the source lines of its calls (a Python
program), the profiles under which it can happen, and its fix."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from crashkit.faults.real import fuse_unavailable
from crashkit.harness.cli import main
from crashkit.harness.explore.exec_mode import (
    UnknownVulnerability,
    explore_exec,
    vulnerability_notes,
)
from crashkit.harness.judge.vulnerabilities import VulnClass

UNAVAILABLE = fuse_unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no FUSE here: {UNAVAILABLE}")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UNSAFE = f"{sys.executable} {EXAMPLES / 'atomic_write.py'} --no-fsync"
CHECKER = f"{sys.executable} {EXAMPLES / 'check_config.py'}"

TWO_DEFECTS = """\
import os
root = os.environ["CRASHKIT_DIR"]


def acknowledge(what):
    with open(os.path.join(root, "acked"), "a") as ack:
        ack.write(what + "\\n")
        ack.flush()
        os.fsync(ack.fileno())


os.makedirs(os.path.join(root, "db"))
dfd = os.open(root, os.O_RDONLY)
os.fsync(dfd)  # the folder db and the file acked are durable from the start
os.close(dfd)
acknowledge("start")
fd = os.open(os.path.join(root, "db", "data"), os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"row\\n")
os.fsync(fd)  # DEFECT 1: the file, never the folder db that holds its name
os.close(fd)
acknowledge("data")
fd = os.open(os.path.join(root, "db", "index"), os.O_WRONLY | os.O_CREAT, 0o644)
os.fsync(fd)
os.close(fd)
dfd = os.open(os.path.join(root, "db"), os.O_RDONLY)
os.fsync(dfd)
os.close(dfd)
fd = os.open(os.path.join(root, "db", "index"), os.O_WRONLY)
os.write(fd, b"index\\n")  # DEFECT 2: written, never synced
os.close(fd)
acknowledge("index")
"""

CHECK_TWO = """\
import os, sys
root = os.environ["CRASHKIT_DIR"]
acked = open(os.path.join(root, "acked")).read().split() if os.path.exists(os.path.join(root, "acked")) else []
def has(name, data):
    path = os.path.join(root, "db", name)
    return os.path.exists(path) and open(path, "rb").read() == data
if "data" in acked and not has("data", b"row\\n"):
    sys.exit("acknowledged row lost")
if "index" in acked and not has("index", b"index\\n"):
    sys.exit("acknowledged index lost")
"""


def test_the_worked_example_is_one_ordering_vulnerability_at_its_two_lines() -> None:
    summary = explore_exec(UNSAFE, CHECKER)
    (vuln,) = summary.vulnerabilities
    assert vuln.kind is VulnClass.ORDERING and vuln.states == summary.failed
    assert vuln.hint == "fsync `/config.tmp` before renaming it over `/config`"
    writer = str(EXAMPLES / "atomic_write.py")
    lines = (EXAMPLES / "atomic_write.py").read_text().splitlines()
    write_line = next(i for i, text in enumerate(lines, 1) if "os.write(fd" in text)
    rename_line = next(i for i, text in enumerate(lines, 1) if "os.rename(temp" in text)
    assert vuln.sources == (f"{writer}:{write_line}", f"{writer}:{rename_line}")
    # every profile can leave it: no file system keeps unsynced data for a rename
    assert vuln.profiles == ("prefix", "ext4-ordered", "ext4-writeback", "xfs", "btrfs", "posix")


def test_two_missing_syncs_at_two_lines_are_two_vulnerabilities(tmp_path: Path) -> None:
    program, check = tmp_path / "two.py", tmp_path / "check.py"
    program.write_text(TWO_DEFECTS)
    check.write_text(CHECK_TWO)
    summary = explore_exec(f"{sys.executable} {program}", f"{sys.executable} {check}")
    assert summary.failed > 0
    text = program.read_text().splitlines()

    def line(probe: str) -> str:
        return f"{program}:{next(i for i, t in enumerate(text, 1) if probe in t)}"

    ack = line('with open(os.path.join(root, "acked")')  # a buffered write: its open
    got = sorted((v.kind, v.hint, v.sources) for v in summary.vulnerabilities)
    assert got == [
        (
            VulnClass.ORDERING,
            "fsync `/db/index` before write /acked",
            (line("DEFECT 2"), ack),
        ),
        (
            VulnClass.ORDERING,
            "fsync the folder `/db` after create /db/data",
            (line('"db", "data")'), ack),
        ),
    ]
    assert sum(v.states for v in summary.vulnerabilities) == summary.failed


def test_the_json_carries_the_vulnerabilities() -> None:
    result = CliRunner().invoke(main, ["explore", "--exec", UNSAFE, "--check", CHECKER, "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    (vuln,) = data["vulnerabilities"]
    assert {"class", "ops", "states", "profiles", "message", "hint", "example", "id"} <= set(vuln)
    assert (vuln["number"], vuln["class"], vuln["states"]) == (1, "ordering", data["failed"])
    assert re.fullmatch(r"[0-9a-f]{8}", vuln["id"])
    assert vuln["rerun"].endswith(f" --only {vuln['id']}")
    assert vuln["example"]["deviations"][0]["kind"] == "data-lost"


@pytest.mark.parametrize("pattern", ["/acked", "acked", "/ack*"])
def test_with_ack_a_loss_behind_an_acknowledgement_is_durability(
    tmp_path: Path, pattern: str
) -> None:
    """--ack names the file where the program says "done" (its path under the mount, or
    from the mount's root as the READMEs write `--ack acked`): the same two defects are
    then each a call not durable when acknowledged, with the fix before the
    acknowledgement."""
    program, check = tmp_path / "two.py", tmp_path / "check.py"
    program.write_text(TWO_DEFECTS)
    check.write_text(CHECK_TWO)
    summary = explore_exec(
        f"{sys.executable} {program}", f"{sys.executable} {check}", ack=[pattern]
    )
    got = sorted((v.kind, v.ops, v.hint) for v in summary.vulnerabilities)
    assert got == [
        (
            VulnClass.DURABILITY,
            ("create /db/data not durable",),
            "fsync the folder `/db` after create /db/data",
        ),
        (
            VulnClass.DURABILITY,
            ("write /db/index not durable",),
            "fsync `/db/index` before acknowledging it",
        ),
    ]


SQLITE_PRINTS = """\
import os, sqlite3, sys
db = sqlite3.connect(os.path.join(os.environ["CRASHKIT_DIR"], "t.db"), isolation_level=None)
db.execute("PRAGMA journal_mode = DELETE")
db.execute("PRAGMA synchronous = " + sys.argv[1])
db.execute("CREATE TABLE t (n)")
for n in range(1, 4):
    db.execute("BEGIN")
    db.execute("INSERT INTO t VALUES (?)", (n,))
    db.execute("COMMIT")
    print("committed", n, flush=True)
"""

SQLITE_CHECK = """\
import os, shutil, sqlite3, sys, tempfile
said = open(os.environ["CRASHKIT_STDOUT"]).read().split()
committed = [int(n) for word, n in zip(said[::2], said[1::2]) if word == "committed"]
src = os.path.join(os.environ["CRASHKIT_DIR"], "t.db")
if not committed:
    sys.exit(0)
copy = tempfile.mkdtemp()
for name in os.listdir(os.environ["CRASHKIT_DIR"]):
    shutil.copy(os.path.join(os.environ["CRASHKIT_DIR"], name), copy)
try:
    rows = [n for (n,) in sqlite3.connect(os.path.join(copy, "t.db")).execute("SELECT n FROM t")]
except sqlite3.Error as exc:
    sys.exit(f"the database does not open: {exc}")
missing = sorted(set(committed) - set(rows))
if missing:
    sys.exit(f"committed rows lost: {missing}")
"""


@pytest.mark.parametrize(("synchronous", "expected"), [("FULL", 1), ("EXTRA", 0)])
def test_sqlite_delete_mode_needs_extra_for_the_journals_unlink(
    tmp_path: Path, synchronous: str, expected: int
) -> None:
    """SQLite's documentation: in DELETE mode, FULL does not sync the folder after the
    journal's unlink, so a committed transaction may roll back after a power cut; EXTRA
    does. The checker demands every transaction the program printed as committed
    ($CRASHKIT_STDOUT: what it had said at the crash)."""
    program, check = tmp_path / "db.py", tmp_path / "check.py"
    program.write_text(SQLITE_PRINTS)
    check.write_text(SQLITE_CHECK)
    summary = explore_exec(f"{sys.executable} {program} {synchronous}", f"{sys.executable} {check}")
    assert summary.recording.returncode == 0, summary.recording.stderr
    assert len(summary.vulnerabilities) == expected, [v.line() for v in summary.vulnerabilities]
    if expected:
        (vuln,) = summary.vulnerabilities
        assert (vuln.kind, vuln.ops) == (
            VulnClass.DURABILITY,
            ("unlink /t.db-journal not durable",),
        )
        assert vuln.hint == "fsync the folder `/` after unlink /t.db-journal"
        assert vuln.states == summary.failed


def test_only_reruns_one_vulnerability_alone_by_an_id_that_stays(tmp_path: Path) -> None:
    """Each vulnerability's id is the same on every run; `--only ID` checks only the
    crash states that can show it (and those that decide how they group), smallest
    first, and reports that vulnerability alone: the same one, not the other."""
    program, check = tmp_path / "two.py", tmp_path / "check.py"
    program.write_text(TWO_DEFECTS)
    check.write_text(CHECK_TWO)
    command, checker = f"{sys.executable} {program}", f"{sys.executable} {check}"
    first = explore_exec(command, checker)
    again = explore_exec(command, checker)
    assert len(first.ids) == 2 and len(set(first.ids)) == 2
    assert again.ids == first.ids
    whole = {
        i: (v.kind, v.hint, v.sources, v.states)
        for i, v in zip(first.ids, first.vulnerabilities, strict=True)
    }
    for wanted in first.ids:
        alone = explore_exec(command, checker, only=wanted)
        (vuln,) = alone.vulnerabilities
        assert alone.ids == [wanted]
        assert (vuln.kind, vuln.hint, vuln.sources, vuln.states) == whole[wanted]
        assert alone.failed == vuln.states and alone.others_refused == 0
        assert alone.states < first.states  # not the whole run again
        # its findings are its own states, the smallest first
        assert len(alone.findings) == vuln.states
        assert alone.findings[0].point == vuln.example.point
        assert alone.findings[0].deviations == vuln.example.deviations
        assert int(alone.exit_code) == 1


def test_only_an_unknown_id_is_a_usage_error_listing_the_ids(tmp_path: Path) -> None:
    program, check = tmp_path / "two.py", tmp_path / "check.py"
    program.write_text(TWO_DEFECTS)
    check.write_text(CHECK_TWO)
    command, checker = f"{sys.executable} {program}", f"{sys.executable} {check}"
    ids = explore_exec(command, checker).ids
    with pytest.raises(UnknownVulnerability) as raised:
        explore_exec(command, checker, only="00000000")
    assert set(ids) <= set(raised.value.known)
    result = CliRunner().invoke(
        main, ["explore", "--exec", command, "--check", checker, "--only", "00000000"]
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --only: no crash state of this run can show a vulnerability")
    assert all(i in line for i in ids)


def test_the_printed_rerun_command_reruns_that_vulnerability(tmp_path: Path) -> None:
    program, check = tmp_path / "two.py", tmp_path / "check.py"
    program.write_text(TWO_DEFECTS)
    check.write_text(CHECK_TWO)
    command, checker = f"{sys.executable} {program}", f"{sys.executable} {check}"
    whole = CliRunner().invoke(main, ["explore", "--exec", command, "--check", checker, "--json"])
    vulns = json.loads(whole.stdout)["vulnerabilities"]
    target = vulns[1]
    words = shlex.split(target["rerun"])
    assert words[:2] == ["crashkit", "explore"]
    rerun = CliRunner().invoke(main, words[1:])
    assert rerun.exit_code == 1
    lines = rerun.stderr.splitlines()
    head = f"vulnerability {target['id']} alone (--only): {target['states']} refused crash states"
    assert any(line.startswith(head) for line in lines)
    shown = [line for line in lines if re.match(r"V\d+ \[", line)]
    assert len(shown) == 1 and shown[0].startswith(f"V1 [{target['id']}] {target['class']}: ")
    assert target["hint"] in shown[0] and vulns[0]["hint"] not in shown[0]


def test_only_says_so_when_the_vulnerability_is_fixed(tmp_path: Path) -> None:
    """After the fix the id still names crash states (the same lines, the same paths),
    and they all pass: exit 0, said."""
    program, check = tmp_path / "two.py", tmp_path / "check.py"
    program.write_text(TWO_DEFECTS)
    check.write_text(CHECK_TWO)
    command, checker = f"{sys.executable} {program}", f"{sys.executable} {check}"
    summary = explore_exec(command, checker)
    index_id = next(
        i for i, v in zip(summary.ids, summary.vulnerabilities, strict=True) if "index" in v.hint
    )
    # the fix: the acknowledgement of the index accepts its loss (the checker no longer
    # demands it), the lines stay where they were
    check.write_text(CHECK_TWO.replace('"index" in acked and ', "False and "))
    fixed = explore_exec(command, checker, only=index_id)
    assert (fixed.vulnerabilities, fixed.failed, int(fixed.exit_code)) == ([], 0, 0)
    assert fixed.only_states > 0
    (note,) = vulnerability_notes(fixed, 20)
    assert note.startswith(f"vulnerability {index_id} did not show (--only): the ")


FOLDED = """\
import os
root = os.environ["CRASHKIT_DIR"]
db = os.path.join(root, "db")


def acknowledge(what):
    with open(os.path.join(root, "acked"), "a") as ack:
        ack.write(what + "\\n")
        ack.flush()
        os.fsync(ack.fileno())


os.makedirs(db)
dfd = os.open(root, os.O_RDONLY)
os.fsync(dfd)  # the folder db and the file acked are durable from the start
os.close(dfd)
acknowledge("start")
fd = os.open(os.path.join(db, "a"), os.O_WRONLY | os.O_CREAT, 0o644)  # CREATE A
os.write(fd, b"a")
os.fsync(fd)  # the file, never the folder db that holds its name
os.close(fd)
acknowledge("a")
fd = os.open(os.path.join(db, "b"), os.O_WRONLY | os.O_CREAT, 0o644)  # CREATE B
os.write(fd, b"b")
os.fsync(fd)  # again
os.close(fd)
acknowledge("b")
"""

CHECK_FOLDED = """\
import os, sys
root = os.environ["CRASHKIT_DIR"]
path = os.path.join(root, "acked")
acked = open(path).read().split() if os.path.exists(path) else []
for name in ("a", "b"):
    file = os.path.join(root, "db", name)
    if name in acked and not (os.path.exists(file) and open(file, "rb").read() == name.encode()):
        sys.exit(f"acknowledged {name} lost")
"""


def test_only_reruns_a_folded_vulnerability_whole(tmp_path: Path) -> None:
    """Two creates at two lines that lack the same folder sync are one vulnerability of
    two pairs in the whole run; its id reruns both pairs, every state, not only those of
    its example's pair."""
    program, check = tmp_path / "fold.py", tmp_path / "check.py"
    program.write_text(FOLDED)
    check.write_text(CHECK_FOLDED)
    command, checker = f"{sys.executable} {program}", f"{sys.executable} {check}"
    whole = explore_exec(command, checker)
    (vuln,) = whole.vulnerabilities
    assert vuln.ops == (
        "create /db/a not durable",
        "write /acked persisted before it",
        "create /db/b not durable",
        "write /acked persisted before it",
    )
    alone = explore_exec(command, checker, only=whole.ids[0])
    (again,) = alone.vulnerabilities
    assert (again.ops, again.states, again.sources) == (vuln.ops, vuln.states, vuln.sources)
    assert alone.states < whole.states
