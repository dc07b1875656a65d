"""Run the real ``chunksync`` CLI in a subprocess with file faults at the scanner's open.

Tests run as root, which reads any file whatever its mode, and a file that vanishes
between the scanner's listing and its read, or a disk that hangs, cannot be arranged
from outside on time. ``CHUNKSYNC_TEST_FAULTS`` (JSON) names files by base name:
``deny`` (open fails with EACCES), ``vanish`` (deleted just before the open), ``grow``
(written to while being read, every time), ``hang`` (the open blocks, after creating the
file named by ``hang_marker``). Everything else is
the real program: :class:`FaultyDaemon` is a :class:`~tests.helpers.daemons.DaemonProcess`
started through :func:`main`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers.daemons import REPO, DaemonProcess

ENV = "CHUNKSYNC_TEST_FAULTS"


def install(faults: dict[str, Any]) -> None:
    from chunksync import scanner

    real_open, real_chunks = os.open, scanner._Reader._chunks
    deny, vanish, hang, grow = (set(faults.get(k, ())) for k in ("deny", "vanish", "hang", "grow"))

    def growing(self, fd, size):  # type: ignore[no-untyped-def]
        yield from real_chunks(self, fd, size)
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.basename(path) in grow:
            with open(path, "ab") as out:
                out.write(b"+")

    def fault_open(path, flags, *args, **kw):  # type: ignore[no-untyped-def]
        name = os.path.basename(os.fsdecode(path))
        if not kw and name in deny:
            raise PermissionError(13, "Permission denied", path)
        if not kw and name in vanish and os.path.exists(path):
            os.unlink(path)
        if not kw and name in hang:
            Path(faults["hang_marker"]).write_text("hanging\n")
            time.sleep(3600)
        return real_open(path, flags, *args, **kw)

    scanner.os.open = fault_open  # type: ignore[assignment]  # the os module: global
    scanner._Reader._chunks = growing  # type: ignore[method-assign]


def main() -> None:
    install(json.loads(os.environ.get(ENV, "{}")))
    from chunksync.cli import main as cli

    cli(prog_name="chunksync")


class FaultyDaemon(DaemonProcess):
    def __init__(self, world: Any, device: str, faults: dict[str, Any], *args: str) -> None:
        super().__init__(world, device, *args)
        self.faults = faults

    def start(self) -> FaultyDaemon:
        env = {**self.env(), ENV: json.dumps(self.faults)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from tests.helpers.fault_hooks import main; main()",
                    "daemon",
                    str(self.root),
                    *self.args,
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        return self
