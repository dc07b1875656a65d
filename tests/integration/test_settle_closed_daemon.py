"""An ordinary save (open, write, close) is synced without waiting for the quiet window,
while a file still open with writes keeps waiting (chunksync.settle, chunksync.openfiles).

The window is 60 s here and every wait below is far shorter, so a save that arrives at
all did not wait for it; the order of events (the saved file arrives while the open one
is still listed as waiting) shows the two rules side by side."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
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
    "60000",
    "--settle-cap",
    "600",
)
HOLDER = r"""
import sys
with open(sys.argv[1], "wb") as out:
    out.write(b"first half;")
    out.flush()
    sys.stdout.write("written\n"); sys.stdout.flush()
    sys.stdin.readline()
    out.write(b"second half")
"""


def test_a_closed_save_syncs_at_once_while_an_open_file_waits(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    b = w.join("desktop")
    with DaemonProcess(w, "laptop", *ARGS) as da, DaemonProcess(w, "desktop", *ARGS) as db:
        da.wait_ready()
        db.wait_ready()
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(a / "open.bin")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "written\n"
            wait_until(
                lambda: "open.bin" in da.status()["waiting_for_writes"],
                20,
                what="the open file to be held",
            )
            with open(a / "saved.txt", "wb") as fh:  # an ordinary save
                fh.write(b"saved while another file is open")
            wait_until(
                lambda: read_or_none(b / "saved.txt") == b"saved while another file is open",
                20,
                what="the saved file on the other device (well within the 60 s window)",
            )
            assert read_or_none(b / "open.bin") is None, "a file still being written was synced"
        finally:
            holder.communicate("go\n", timeout=10)
        assert holder.returncode == 0
        wait_until(
            lambda: read_or_none(b / "open.bin") == b"first half;second half",
            20,
            what="the file once closed (well within the 60 s window)",
        )
        da.wait_at_head()
        assert da.status()["waiting_for_writes"] == []
    synced = [e for e in da.events("synced") if e.get("pushed")]
    assert synced, "the laptop never logged a pushed round"
