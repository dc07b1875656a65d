"""Files still being written wait (issue 11 acceptance): a program writes a file in 20
pieces over 6 s while daemons run on two devices. At most one snapshot holds that file,
made once it is closed, and the other device never holds a version that is not complete."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.corpus import random_bytes
from tests.helpers.daemons import DaemonProcess, read_or_none, wait_until

ARGS = (
    "--quiet-ms",
    "100",
    "--max-delay-ms",
    "1000",
    "--poll-interval",
    "2",
    "--backoff-max",
    "1",
    "--settle-ms",
    "2000",
)
WRITER = r"""
import sys, time
src, dst, pieces, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
data = open(src, "rb").read()
step = len(data) // pieces
with open(dst, "wb") as out:
    for i in range(pieces):
        out.write(data[i * step:] if i == pieces - 1 else data[i * step:(i + 1) * step])
        out.flush()
        time.sleep(seconds / pieces)
"""


def digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def test_a_file_written_over_seconds_makes_one_snapshot_and_never_arrives_partial(
    cli_world: CliWorld,
) -> None:
    w = cli_world
    a = w.init("laptop")
    b = w.join("desktop")
    final = random_bytes(3 << 20, 11)  # several chunks
    source = w.base / "source.bin"
    source.write_bytes(final)
    with DaemonProcess(w, "laptop", *ARGS) as da, DaemonProcess(w, "desktop", *ARGS) as db:
        da.wait_ready()
        db.wait_ready()
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(source), str(a / "big.bin"), "20", "6"]
        )
        seen_on_b: set[str | None] = set()
        waiting_seen = False
        while writer.poll() is None:
            seen_on_b.add(digest(read_or_none(b / "big.bin")))
            status = da.status()
            waiting_seen = (
                waiting_seen
                or status["state"] == "waiting"
                or "big.bin" in status["waiting_for_writes"]
            )
        assert writer.returncode == 0

        def arrived() -> bool:
            seen = digest(read_or_none(b / "big.bin"))
            seen_on_b.add(seen)
            return seen == digest(final)

        wait_until(arrived, 60, what="the finished file on the other device")
        assert seen_on_b <= {None, digest(final)}, "the other device held a partial version"
        assert waiting_seen, "the writing device never said it waits for the file"
        da.wait_at_head()
    history = json.loads(w.run("laptop", "log", str(a), "big.bin", "--json").stdout)
    assert len(history) == 1, history  # one snapshot for the file, made after it was closed


def test_a_file_that_never_settles_is_synced_at_the_cap_and_said(cli_world: CliWorld) -> None:
    """A log written to all the time waits at most ``--settle-cap``; then its latest
    consistent read (a prefix here) is synced, and the daemon logs it."""
    w = cli_world
    a = w.init("laptop")
    b = w.join("desktop")
    final = b"".join(f"line {i:03d} {'x' * (i % 50)}\n".encode() for i in range(100))
    source = w.base / "source.log"
    source.write_bytes(final)
    capped = (*ARGS, "--settle-ms", "1000", "--settle-cap", "2")
    with DaemonProcess(w, "laptop", *capped) as da, DaemonProcess(w, "desktop", *ARGS) as db:
        da.wait_ready()
        db.wait_ready()
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(source), str(a / "app.log"), "100", "10"]
        )
        seen_during_write: set[bytes] = set()
        while writer.poll() is None:
            data = read_or_none(b / "app.log")
            if data is not None:
                seen_during_write.add(data)
        assert writer.returncode == 0
        wait_until(
            lambda: read_or_none(b / "app.log") == final,
            60,
            what="the final log on the other device",
        )
        assert seen_during_write, "a file that never settles must still sync (the cap)"
        assert all(final.startswith(v) for v in seen_during_write)  # consistent reads only
        assert any(e["path"] == "app.log" for e in da.events("still_being_written"))
