"""The console script ends the process itself once the command returned (no interpreter
teardown after the work is done): same exit status, nothing buffered lost, and a thread
still running is waited for, as interpreter shutdown would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chunksync.entry import GC_THRESHOLD, exit_status, return_big_blocks

RUN = "import sys; sys.argv[0] = 'chunksync'; from chunksync.entry import main; main()"


def _entry(*args: str, code: str = RUN) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


def test_exit_status_is_computed_as_the_interpreter_does(capsys):
    assert exit_status(None) == 0
    assert exit_status(3) == 3
    assert exit_status(256 + 2) == 2
    assert exit_status("bad thing") == 1
    assert capsys.readouterr().err == "bad thing\n"


def test_output_and_status_of_a_command_survive_the_fast_exit(tmp_path: Path):
    ok = _entry("--help")
    assert ok.returncode == 0
    assert "Usage:" in ok.stdout and ok.stdout.endswith("\n")
    failed = _entry("status", str(tmp_path))  # a directory that is not a synced folder
    assert failed.returncode not in (0, None)
    assert failed.stderr.startswith("chunksync: "), failed.stderr
    usage = _entry("no-such-command")
    assert usage.returncode == 2  # click's usage error status, unchanged


def test_a_thread_still_running_is_joined_before_the_exit(tmp_path: Path):
    marker = tmp_path / "done"
    code = (
        "import threading, time, pathlib, gc\n"
        f"import chunksync.entry as e\n"
        "def late():\n"
        "    time.sleep(0.2)\n"
        f"    pathlib.Path({str(marker)!r}).write_text(str(gc.get_threshold()[0]))\n"
        "threading.Thread(target=late).start()\n"
        "import sys; sys.argv = ['chunksync', '--help']\n"
        "e.main()\n"
    )
    assert _entry(code=code).returncode == 0
    assert marker.read_text() == str(GC_THRESHOLD)


def test_big_blocks_get_their_own_mapping_on_glibc():
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert return_big_blocks()


def test_an_executor_nobody_shut_down_does_not_keep_the_process_alive():
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "import chunksync.entry as e, sys\n"
        "pool = ThreadPoolExecutor(2)\n"
        "pool.submit(print, 'worked')\n"
        "sys.argv = ['chunksync', '--help']\n"
        "e.main()\n"
    )
    done = _entry(code=code)  # its idle workers would wait forever if not told to stop
    assert done.returncode == 0
    assert done.stdout.startswith("worked")
