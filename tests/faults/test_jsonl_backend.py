"""The reference JSONL backend runs unchanged on CrashFS, and every crash state restores.

This is the end-to-end check that the interception covers what a real backend calls:
os.open with O_CREAT|O_EXCL|O_APPEND|O_NONBLOCK, os.fstat, fcntl.flock, os.write,
os.fsync, os.ftruncate, mkdir and directory fsyncs.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

import pytest

from crashkit.faults import CrashFS, CrashState, DiskImage, FaultPlan, FaultRule, FsyncModel
from crashkit.orchestrator.errors import PersistenceError, RestoreFatal, WriterLocked
from crashkit.orchestrator.store.jsonl import open_jsonl_store
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime
from tests.conftest import make_state

STATE_DIR = "/var/lib/crashkit"
STATE = f"{STATE_DIR}/state.jsonl"
CONFIG = HysteresisConfig()
A1, B1 = make_state("A", 100), make_state("B", 100, Regime.SQUEEZE_UP)
A2 = make_state("A", 200, Regime.CHOP_BALANCED, Regime.TREND_BUILD_UP, 1)
B2 = make_state("B", 300, Regime.SQUEEZE_UP, Regime.SQUEEZE_DOWN, 1)
BATCHES: tuple[tuple[HysteresisState, ...], ...] = ((A1, B1), (A2,), (B2,))


def restored(crash: CrashFS, image: DiskImage) -> dict[str, int]:
    """Reboot onto `image`, restore, and return symbol -> restored engine timestamp."""
    crash.restart(image)
    opened = open_jsonl_store(STATE, CONFIG)
    opened.backend.close()
    return {s: st.engine_timestamp_ms for s, st in opened.store.states.items()}


def write_batches(crash: CrashFS, batches: Sequence[Sequence[HysteresisState]]) -> list[int]:
    """Open the store and append each batch; return the trace length at each ack."""
    opened = open_jsonl_store(STATE, CONFIG)
    acks = []
    for batch in batches:
        opened.backend.append(batch)
        acks.append(len(crash.trace))
    opened.backend.close()
    return acks


def all_states(crash: CrashFS) -> list[CrashState]:
    return [s for p in crash.crash_points() for s in crash.crash_states(p)]


def test_bootstrap_calls_are_all_intercepted(crash: CrashFS) -> None:
    crash.start()
    write_batches(crash, BATCHES[:1])
    assert [(o.op, o.path, o.detail if o.op == "flock" else "") for o in crash.trace] == [
        ("open", STATE, ""),  # read_state_file: ENOENT -> bootstrap
        ("mkdir", "/var", ""),
        ("open", "/", ""),
        ("dirfsync", "/", ""),
        ("close", "/", ""),
        ("mkdir", "/var/lib", ""),
        ("open", "/var", ""),
        ("dirfsync", "/var", ""),
        ("close", "/var", ""),
        ("mkdir", STATE_DIR, ""),
        ("open", "/var/lib", ""),
        ("dirfsync", "/var/lib", ""),
        ("close", "/var/lib", ""),
        ("open", STATE, ""),
        ("flock", STATE, "LOCK_EX|LOCK_NB"),
        ("open", STATE_DIR, ""),
        ("dirfsync", STATE_DIR, ""),
        ("close", STATE_DIR, ""),
        ("write", STATE, ""),
        ("fsync", STATE, ""),
        ("close", STATE, ""),
    ]
    assert crash.trace[0].error == "ENOENT"
    assert crash.trace[13].detail == "O_WRONLY|O_APPEND|O_CREAT|O_EXCL|O_NONBLOCK|O_CLOEXEC"
    # everything was made durable: the only crash state is the written file
    assert crash.crash_states() == [
        CrashState(
            DiskImage({STATE: encode_state(A1) + encode_state(B1)}),
            "nothing unsynced",
            None,
        )
    ]


def test_every_crash_state_of_a_bootstrap_run_restores_all_acknowledged_appends(
    crash: CrashFS,
) -> None:
    crash.start()
    acks = write_batches(crash, BATCHES)
    points = crash.crash_points()
    states = [(p, s) for p in points for s in crash.crash_states(p)]
    written = {
        s.symbol: {st.engine_timestamp_ms for b in BATCHES for st in b if st.symbol == s.symbol}
        for b in BATCHES
        for s in b
    }
    crash.configure(record=False)
    outcomes: set[tuple[int, ...]] = set()
    for point, state in states:
        got = restored(crash, state.image)
        acked = [b for b, ack in zip(BATCHES, acks, strict=True) if ack - 1 <= point]
        for batch in acked:  # durable on return: survives every crash after the ack
            for st in batch:
                assert got[st.symbol] >= st.engine_timestamp_ms, (point, state.cut)
        for symbol, ts in got.items():  # never invented
            assert ts in written[symbol], (point, state.cut)
        outcomes.add((got.get("A", 0), got.get("B", 0)))
    # the crash states reach every prefix of the appends, torn ones included
    # (100, 0): the first batch torn between its two lines, before it was acknowledged
    assert outcomes == {(0, 0), (100, 0), (100, 100), (200, 100), (200, 300)}
    assert len(points) == 14
    assert len(states) == 37


def test_restart_after_a_torn_append_cuts_the_tail_and_appends_again(crash: CrashFS) -> None:
    crash.start()
    write_batches(crash, BATCHES[:1])
    write_point = crash.crash_points()[-2]
    assert crash.trace[write_point].op == "write"
    torn = [s for s in crash.crash_states(write_point) if "torn mid-line" in s.cut]
    assert len(torn) == 6  # first byte, middle, before "\n" of each of the two lines
    for state in torn:
        crash.restart(state.image)
        before = state.image.files[STATE]
        assert write_batches(crash, [(A2,)])
        ops = [o.op for o in crash.trace if o.path == STATE]
        assert ops[-5:] == ["ftruncate", "fsync", "write", "fsync", "close"]
        committed = before[: before.rfind(b"\n") + 1]
        assert crash.visible_image().files[STATE] == committed + encode_state(A2)
        crash.configure(record=False)
        assert restored(crash, crash.visible_image())["A"] == 200
        crash.configure(record=True)


def test_crash_between_tail_cut_and_its_fsync_leaves_either_file(crash: CrashFS) -> None:
    torn_file = encode_state(A1) + encode_state(B1)[:17]
    crash.start(DiskImage({STATE: torn_file}))
    write_batches(crash, [(A2,)])
    cut = next(o.index for o in crash.trace if o.op == "ftruncate")
    assert [s.image.files[STATE] for s in crash.crash_states(cut)] == [
        torn_file,  # the truncate did not persist
        encode_state(A1),
    ]
    crash.configure(record=False)
    for state in crash.crash_states(cut):
        assert restored(crash, state.image) == {"A": 100}


@pytest.mark.parametrize(
    ("model", "a_after_crash"),
    [
        (FsyncModel.KEEP_DIRTY, {100, 200}),  # the failed bytes may still reach the disk
        (FsyncModel.MARK_CLEAN, {100}),
        (FsyncModel.DROP, {100}),
    ],
)
def test_failed_fsync_poisons_the_writer_and_each_model_decides_what_a_crash_keeps(
    crash: CrashFS, model: FsyncModel, a_after_crash: set[int]
) -> None:
    crash.configure(plan=FaultPlan((FaultRule("fsync", STATE, nth=2),)), model=model)
    crash.start()
    opened = open_jsonl_store(STATE, CONFIG)
    opened.backend.append([A1, B1])
    with pytest.raises(PersistenceError) as info:
        opened.backend.append([A2])
    assert info.value.errno == errno.EIO
    assert opened.backend.poisoned
    with pytest.raises(PersistenceError, match="poisoned"):
        opened.backend.append([B2])
    opened.backend.close()
    states = crash.crash_states()
    crash.configure(plan=FaultPlan(), record=False)
    got = [restored(crash, s.image) for s in states]
    assert {g["A"] for g in got} == a_after_crash
    assert {g["B"] for g in got} == {100}


def test_a_second_writer_is_refused_until_the_first_closes(crash: CrashFS) -> None:
    crash.start()
    first = open_jsonl_store(STATE, CONFIG)
    with pytest.raises(WriterLocked):
        open_jsonl_store(STATE, CONFIG)
    first.backend.close()
    second = open_jsonl_store(STATE, CONFIG)
    second.backend.append([A1])
    second.backend.close()


def test_failed_directory_fsync_at_creation_refuses_to_start(crash: CrashFS) -> None:
    crash.configure(plan=FaultPlan((FaultRule("dirfsync", STATE_DIR, errno="EIO"),)))
    crash.start(DiskImage(dirs=(STATE_DIR,)))
    with pytest.raises(RestoreFatal, match="directory fsync"):
        open_jsonl_store(STATE, CONFIG)
    open_fds = [fd for fd, entry in enumerate(crash.filesystem.open_files) if entry and fd > 2]
    assert open_fds == []  # the backend closed its descriptor (and so its lock)
    # the new file's entry was never made durable: a crash may or may not keep it
    assert sorted(s.image.files.get(STATE, b"-") for s in crash.crash_states()) == [b"", b"-"]
