"""SIGTERM/SIGINT end a daemon even when a step is stuck (issue 11): a scan blocked in a
read (a hung disk, a huge file) does not keep the process; it exits within the grace,
status 0, one ``stopped`` line and no traceback, and a second signal exits at once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.daemons import FAST, wait_until
from tests.helpers.fault_hooks import FaultyDaemon


def _stuck_daemon(w: CliWorld, marker: Path, *args: str) -> FaultyDaemon:
    marker.unlink(missing_ok=True)
    faults = {"hang": ["stuck.bin"], "hang_marker": str(marker)}
    return FaultyDaemon(w, "laptop", faults, *FAST, *args)


def test_a_daemon_stuck_in_a_read_still_stops_on_sigterm_and_at_once_on_a_second_sigint(
    cli_world: CliWorld,
) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "stuck.bin").write_bytes(b"x" * 1000)
    os.utime(a / "stuck.bin", (1_000_000, 1_000_000))  # an old file: read at once
    marker = w.base / "hanging"

    with _stuck_daemon(w, marker) as daemon:
        wait_until(marker.exists, 30, what="the daemon's scan to block on stuck.bin")
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)  # the first: the step never ends by itself
        assert daemon.proc.wait(timeout=20) == 0
        assert "Traceback" not in daemon.log_tail(100_000)
        last = daemon.events()[-1]
        assert (
            last["event"] == "stopped"
            and last["forced"] is True
            and "still running" in last["message"]
        )
        assert not (a / ".chunksync" / "control.sock").exists()
        before = len(daemon.events("stopping"))

    with _stuck_daemon(w, marker, "--stop-grace", "600") as daemon:  # only a second ^C ends it
        wait_until(marker.exists, 30, what="the daemon's scan to block on stuck.bin")
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGINT)
        wait_until(lambda: len(daemon.events("stopping")) > before, what="the first ^C to be taken")
        daemon.proc.send_signal(signal.SIGINT)
        assert daemon.proc.wait(timeout=20) == 130
        assert "Traceback" not in daemon.log_tail(100_000)
        assert daemon.events()[-1]["forced"] is True
