"""Issue 11: the daemon yields to the person at the keyboard and keeps its index bounded.

A real daemon subprocess against a real server: every one of its threads runs at the
lowered CPU priority and the lowest best-effort I/O level (read from /proc and psutil
in the daemon's own process), ``--normal-priority`` keeps it, and ``status`` shows the
priority and the bandwidth limits in force.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from chunksync.priority import DAEMON_IO_LEVEL, DAEMON_NICE
from chunksync.storage.upkeep import compact_if_bloated
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.daemons import DaemonProcess, read_or_none, wait_until

pytestmark = pytest.mark.integration


def thread_nices(pid: int) -> list[int]:
    """The nice value of every thread of ``pid`` (field 19 of /proc/PID/task/TID/stat)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        fields = raw.rsplit(")", 1)[1].split()  # the command name may hold spaces
        out.append(int(fields[16]))
    return out


def test_the_daemon_runs_at_low_priority_and_shows_its_limits(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    w.run("laptop", "limit", str(a), "--download", "512")
    base_nice = os.getpriority(os.PRIO_PROCESS, 0)
    with DaemonProcess(
        w, "laptop", "--quiet-ms", "100", "--poll-interval", "2", "--limit-upload", "256"
    ) as d:
        status = d.wait_ready()
        assert d.proc is not None
        nices = thread_nices(d.proc.pid)
        assert len(nices) > 1 and all(n >= max(DAEMON_NICE, base_nice) for n in nices), nices
        io = psutil.Process(d.proc.pid).ionice()
        assert io.ioclass in (psutil.IOPRIO_CLASS_BE, psutil.IOPRIO_CLASS_IDLE)
        if io.ioclass == psutil.IOPRIO_CLASS_BE:
            assert io.value >= DAEMON_IO_LEVEL
        assert status["priority"] == "low"
        assert (status["limit_upload_kib"], status["limit_download_kib"]) == (256, 512)
        (a / "still.txt").write_text("syncs while limited")
        wait_until(lambda: d.status()["head"] != status["head"], what="a synced edit")


def test_normal_priority_keeps_the_priority(cli_world: CliWorld) -> None:
    w = cli_world
    w.init("laptop")
    base_nice = os.getpriority(os.PRIO_PROCESS, 0)
    with DaemonProcess(w, "laptop", "--quiet-ms", "100", "--normal-priority") as d:
        status = d.wait_ready()
        assert d.proc is not None
        assert set(thread_nices(d.proc.pid)) == {base_nice}
        assert status["priority"] == "normal"


def test_a_bloated_index_is_compacted_when_the_daemon_starts(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "keep.txt").write_text("kept through the compaction")
    w.sync("laptop")
    data = a / ".chunksync" / "index" / "data.mdb"
    import lmdb

    env = lmdb.open(str(data.parent), max_dbs=16, map_size=1 << 30)
    junk = env.open_db(b"junk")
    with env.begin(write=True) as txn:  # 100 MiB of pages, then freed: a file mostly empty
        for i in range(100):
            txn.put(i.to_bytes(4, "big"), os.urandom(1 << 20), db=junk)
    with env.begin(write=True) as txn:
        txn.drop(junk, delete=True)
    env.close()
    bloated = data.stat().st_size
    assert bloated > 100 << 20
    with DaemonProcess(w, "laptop", "--quiet-ms", "100") as d:
        ready = d.wait_ready()
        assert data.stat().st_size < bloated // 4
        (a / "after.txt").write_text("an edit after the compaction")
        wait_until(lambda: d.status()["head"] != ready["head"], what="sync after compaction")
    b = w.join("desktop")
    assert read_or_none(b / "keep.txt") == b"kept through the compaction"
    assert read_or_none(b / "after.txt") == b"an edit after the compaction"
    assert not compact_if_bloated(data.parent)  # nothing left to gain
