"""Refused crash states grouped into vulnerabilities (`crashkit.harness.judge.vulnerabilities`):
programs with planted defects on the in-process layer, each defect one vulnerability of
the class it is, with its fix; every refused state counted once."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from crashkit.faults import CrashFS, DiskImage
from crashkit.faults.crash import crash_states
from crashkit.harness.judge.vulnerabilities import (
    Failure,
    VulnClass,
    Vulnerability,
    group_failures,
    merge_vulnerabilities,
    normalise,
)

Check = Callable[[DiskImage], str]


def explore(
    program: Callable[[], None], check: Check, image: DiskImage, exploration: str = "bounded"
) -> tuple[list[Vulnerability], int]:
    """Run `program` on the layer, refuse what `check` refuses at every crash point:
    (the vulnerabilities, how many states were refused)."""
    fs = CrashFS(record=True)
    fs.start(image)
    try:
        program()
        trace = list(fs.trace)
        failures = []
        for point in fs.crash_points():
            states = crash_states(fs.snapshot(point), point=point, exploration=exploration)
            for state in states.states:
                message = check(state.image)
                if message:
                    failures.append(Failure(point, state.deviations, message))
    finally:
        fs.stop()
    return group_failures(failures, trace), len(failures)


def sync_folder(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_config(*, fsync: bool) -> Callable[[], None]:
    def program() -> None:
        for version in (1, 2, 3):
            temp = f"/d/cfg.tmp{version}"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"version=%d\n" % version)
            if fsync:
                os.fsync(fd)
            os.close(fd)
            os.replace(temp, "/d/cfg")
            sync_folder("/d")

    return program


def whole_config(image: DiskImage) -> str:
    data = image.files.get("/d/cfg")
    if data is None or (data.startswith(b"version=") and data.endswith(b"\n")):
        return ""
    return f"cfg holds {data!r}"


def test_a_rename_of_unsynced_data_is_one_ordering_vulnerability() -> None:
    vulns, refused = explore(replace_config(fsync=False), whole_config, DiskImage(dirs=("/d",)))
    assert refused > 3
    assert [(v.kind, v.ops, v.states) for v in vulns] == [
        (
            VulnClass.ORDERING,
            ("write /d/cfg.tmp* not durable", "rename /d/cfg.tmp* -> /d/cfg persisted before it"),
            refused,
        )
    ]
    assert vulns[0].hint == "fsync `/d/cfg.tmp*` before renaming it over `/d/cfg`"
    assert [op.op for op in vulns[0].calls] == ["write", "replace"]


def test_the_safe_writer_has_none() -> None:
    vulns, refused = explore(replace_config(fsync=True), whole_config, DiskImage(dirs=("/d",)))
    assert (vulns, refused) == ([], 0)


def two_missing_syncs() -> None:
    """Two defects: `data` is created and synced but its folder never is, then `ack`
    records it; `index` is rewritten in place, never synced, before `ack` again."""
    fd = os.open("/db/data", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"row\n")
    os.fsync(fd)
    os.close(fd)
    with open("/ack", "ab") as ack:
        ack.write(b"data\n")
        ack.flush()
        os.fsync(ack.fileno())
    fd = os.open("/db/index", os.O_WRONLY)
    os.write(fd, b"new-index\n")
    os.close(fd)
    with open("/ack", "ab") as ack:
        ack.write(b"index\n")
        ack.flush()
        os.fsync(ack.fileno())


def acknowledged(image: DiskImage) -> str:
    acked = image.files.get("/ack", b"").split()
    if b"data" in acked and image.files.get("/db/data") != b"row\n":
        return "acknowledged row missing"
    if b"index" in acked and image.files.get("/db/index") != b"new-index\n":
        return "acknowledged index missing"
    return ""


def test_two_defects_are_two_vulnerabilities_each_with_its_fix() -> None:
    start = DiskImage({"/ack": b"", "/db/index": b"old-index\n"})
    vulns, refused = explore(two_missing_syncs, acknowledged, start)
    assert sum(v.states for v in vulns) == refused
    assert sorted((v.kind, v.ops, v.hint) for v in vulns) == [
        (
            VulnClass.ORDERING,
            ("create /db/data not durable", "write /ack persisted before it"),
            "fsync the folder `/db` after create /db/data",
        ),
        (
            VulnClass.ORDERING,
            ("write /db/index not durable", "write /ack persisted before it"),
            "fsync `/db/index` before write /ack",
        ),
    ]


def test_a_torn_append_the_reader_accepts_is_atomicity() -> None:
    def append() -> None:
        with open("/log", "ab") as log:
            log.write(b"second record\n")

    def whole_lines(image: DiskImage) -> str:
        data = image.files["/log"]
        return "" if data.endswith(b"\n") else f"torn record {data!r}"

    vulns, refused = explore(append, whole_lines, DiskImage({"/log": b"first record\n"}))
    assert refused > 0
    assert [(v.kind, v.ops, v.states) for v in vulns] == [
        (VulnClass.ATOMICITY, ("write /log half done",), refused)
    ]
    assert "checksum per record" in vulns[0].hint


def test_a_refused_in_order_state_with_nothing_after_it_is_behaviour() -> None:
    """The checker wants what the program never wrote: nothing a sync can fix."""

    def program() -> None:
        with open("/f", "wb") as f:
            f.write(b"x")

    def wants_y(image: DiskImage) -> str:
        return "wants y" if image.files.get("/f") == b"x" else ""

    vulns, refused = explore(program, wants_y, DiskImage())
    assert [(v.kind, v.ops, v.states, v.example.deviations) for v in vulns] == [
        (VulnClass.BEHAVIOUR, ("refused with nothing lost",), refused, ())
    ]


def test_states_with_several_deviations_go_to_the_single_one_they_contain() -> None:
    """Exhaustive exploration combines deviations; each combined state is counted under
    a vulnerability a single deviation explains, none is dropped."""
    bounded, _ = explore(replace_config(fsync=False), whole_config, DiskImage(dirs=("/d",)))
    vulns, refused = explore(
        replace_config(fsync=False), whole_config, DiskImage(dirs=("/d",)), "exhaustive"
    )
    assert sum(v.states for v in vulns) == refused
    assert [v.key for v in vulns] == [v.key for v in bounded]


def test_counters_hashes_and_temp_suffixes_are_one_name() -> None:
    assert normalise("/db/MANIFEST-000002") == "/db/MANIFEST-*"
    # git's fan-out folders are one name whichever digits they hold
    for fan in ("4b", "d0", "0c", "6e"):
        path = f"/repo/.git/objects/{fan}/825dc642cb6eb9a060e54bf8d69288fbee4904"
        assert normalise(path) == "/repo/.git/objects/*/*"
    assert normalise("/d/tmpa8f3k2x1") == "/d/tmp*"
    assert normalise("/d/cfg") == "/d/cfg"
    assert normalise("/db/LOG") == "/db/LOG"  # a name of hex letters alone stays


def test_an_acknowledgement_before_the_write_is_durability_of_that_write() -> None:
    """The program records "done" (synced) and only then writes and syncs the data: the
    in-order state between the two is refused, and names the write it came before."""

    def program() -> None:
        for name, data in (("/ack", b"1\n"), ("/data", b"row\n")):
            with open(name, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

    def demanded(image: DiskImage) -> str:
        done = image.files["/ack"] == b"1\n"
        return "acknowledged row missing" if done and image.files["/data"] != b"row\n" else ""

    vulns, refused = explore(program, demanded, DiskImage({"/ack": b"", "/data": b""}))
    assert [(v.kind, v.ops, v.hint, v.states) for v in vulns] == [
        (
            VulnClass.DURABILITY,
            ("write /data not durable",),
            "fsync `/data` before acknowledging it",
            refused,
        )
    ]


def journal_then_page() -> None:
    """A journal written, then the page it protects, neither synced (SQLite without its
    syncs; the folder synced once, so the program is not one that never syncs): only a
    page half written with its journal not whole is refused."""
    sync_folder("/")
    for name, data in (("/j", b"undo\n"), ("/db", b"new-page\n")):
        fd = os.open(name, os.O_WRONLY)
        os.write(fd, data)
        os.close(fd)


def page_with_its_journal(image: DiskImage) -> str:
    page, journal = image.files.get("/db", b""), image.files.get("/j", b"")
    if page in (b"", b"new-page\n") or journal == b"undo\n":
        return ""
    return f"torn page {page!r} and no journal to roll it back"


def test_a_state_only_several_losses_refuse_is_the_first_ones_ordering_pair() -> None:
    """No single deviation refuses: the torn page with its journal lost (or torn) is.
    The first operation undone (the journal's write) with the page's write persisted
    after it is the pair, never `unexplained`."""
    start = DiskImage({"/db": b"", "/j": b""})
    vulns, refused = explore(journal_then_page, page_with_its_journal, start, "exhaustive")
    assert refused > 1
    assert all(len(v.example.deviations) > 1 for v in vulns)
    assert [(v.kind, v.ops, v.states) for v in vulns] == [
        (
            VulnClass.ORDERING,
            ("write /j not durable", "write /db persisted before it"),
            refused,
        )
    ]
    assert vulns[0].hint == "fsync `/j` before write /db"


def two_files_in_a_folder_never_synced() -> None:
    """Each file synced and then acknowledged; the folder holding their names never is."""
    for name in ("x", "y"):
        fd = os.open(f"/d/{name}", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, name.encode())
        os.fsync(fd)
        os.close(fd)
        with open(f"/ack-{name}", "ab") as ack:
            ack.write(b"done\n")
            ack.flush()
            os.fsync(ack.fileno())


def acknowledged_files(image: DiskImage) -> str:
    for name in ("x", "y"):
        if image.files.get(f"/ack-{name}") == b"done\n" and f"/d/{name}" not in image.files:
            return f"acknowledged /d/{name} missing"
    return ""


def test_pairs_that_lack_the_same_sync_are_one_vulnerability_listing_them() -> None:
    """The folder `/d` never synced shows as two ordering pairs (each entry lost behind
    its acknowledgement): one defect, one vulnerability with both pairs and one fix."""
    start = DiskImage({"/ack-x": b"", "/ack-y": b""}, dirs=("/d",))
    vulns, refused = explore(two_files_in_a_folder_never_synced, acknowledged_files, start)
    (vuln,) = vulns
    assert (vuln.kind, vuln.states, vuln.pairs) == (VulnClass.ORDERING, refused, 2)
    assert vuln.ops == (
        "create /d/x not durable",
        "write /ack-x persisted before it",
        "create /d/y not durable",
        "write /ack-y persisted before it",
    )
    assert vuln.hint == "fsync the folder `/d` after create /d/x, create /d/y"
    assert vuln.line().startswith(
        "ordering (one missing sync, 2 pairs): create /d/x not durable / write /ack-x "
        "persisted before it; create /d/y not durable / write /ack-y persisted before it"
    )
    # the same two pairs met in two runs, one each: merged, they fold again
    halves = [replace(vuln, ops=vuln.ops[:2], states=1), replace(vuln, ops=vuln.ops[2:], states=1)]
    (merged,) = merge_vulnerabilities(halves)
    assert (merged.ops, merged.states, merged.hint) == (vuln.ops, 2, vuln.hint)


def acknowledge_then_write(batches: tuple[tuple[str, tuple[str, ...]], ...]) -> Callable[[], None]:
    """For each (acknowledgement, files): "done" recorded (synced) first, then each file
    written and synced: every crash point in between loses what was acknowledged."""

    def program() -> None:
        for said, names in batches:
            with open("/ack", "ab") as ack:
                ack.write(said.encode() + b"\n")
                ack.flush()
                os.fsync(ack.fileno())
            for name in names:
                with open(name, "ab") as f:
                    f.write(name.encode())
                    f.flush()
                    os.fsync(f.fileno())

    return program


def acknowledged_batches(batches: tuple[tuple[str, tuple[str, ...]], ...]) -> Check:
    def check(image: DiskImage) -> str:
        said = image.files.get("/ack", b"").split()
        for word, names in batches:
            if word.encode() in said and any(image.files.get(n) != n.encode() for n in names):
                return f"acknowledged {word} lost"
        return ""

    return check


def test_an_acknowledgement_before_several_writes_is_one_vulnerability_listing_them() -> None:
    """Refused in-order states at each crash point between "done" and the last write
    name the next write after their own point: one acknowledgement made too early, one
    vulnerability with every write not yet durable and one fix. Two acknowledgements,
    each before its own files, stay two."""
    one = (("1", ("/a", "/b")),)
    start = DiskImage({"/ack": b"", "/a": b"", "/b": b"", "/c": b"", "/d": b""})
    vulns, refused = explore(acknowledge_then_write(one), acknowledged_batches(one), start)
    assert [(v.kind, v.ops, v.hint, v.states) for v in vulns] == [
        (
            VulnClass.DURABILITY,
            ("write /a not durable", "write /b not durable"),
            "sync them before acknowledging: fsync `/a`, fsync `/b`",
            refused,
        )
    ]
    assert [op.path for op in vulns[0].calls] == ["/a", "/b"]
    two = (("1", ("/a", "/b")), ("2", ("/c", "/d")))
    vulns, refused = explore(acknowledge_then_write(two), acknowledged_batches(two), start)
    assert sorted(v.ops for v in vulns) == [
        ("write /a not durable", "write /b not durable"),
        ("write /c not durable", "write /d not durable"),
    ]
    assert sum(v.states for v in vulns) == refused


def test_a_lost_rename_pairs_with_the_name_removed_after_it_not_a_log_between() -> None:
    """LevelDB's open: `CURRENT` renamed to name a new manifest, a log written, the old
    manifest unlinked, the folder never synced. Where the unlink persisted and the rename
    did not, `CURRENT` names a file that is gone: the pair is the rename and the unlink
    (the log written between them changes nothing a reader resolves)."""

    def program() -> None:
        log = os.open("/db/LOG", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sync_folder("/db")  # (the log's entry durable: its bytes are the later write)
        fd = os.open("/db/MANIFEST-2", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"m2\n")
        os.fsync(fd)
        os.close(fd)
        fd = os.open("/db/CURRENT.tmp", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"MANIFEST-2\n")
        os.fsync(fd)
        os.close(fd)
        os.rename("/db/CURRENT.tmp", "/db/CURRENT")
        os.write(log, b"switched manifests\n")
        os.unlink("/db/MANIFEST-1")
        os.close(log)

    def opens(image: DiskImage) -> str:
        current = image.files.get("/db/CURRENT", b"").decode().strip()
        return "" if f"/db/{current}" in image.files else f"CURRENT names {current!r}: gone"

    start = DiskImage({"/db/MANIFEST-1": b"m1\n", "/db/CURRENT": b"MANIFEST-1\n"})
    vulns, refused = explore(program, opens, start)
    assert refused >= 1
    (vuln,) = vulns  # one missing sync: the folder's, after the create and the rename
    assert vuln.kind is VulnClass.ORDERING
    assert vuln.ops == (
        "create /db/MANIFEST-* not durable",
        "rename /db/CURRENT.tmp -> /db/CURRENT persisted before it",
        "rename /db/CURRENT.tmp -> /db/CURRENT not durable",
        "unlink /db/MANIFEST-* persisted before it",
    )
    assert vuln.hint == (
        "fsync the folder `/db` after create /db/MANIFEST-*, rename /db/CURRENT.tmp -> /db/CURRENT"
    )
