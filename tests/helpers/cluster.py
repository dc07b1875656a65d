"""Several ``chunksync-server serve`` processes on one database and one bucket, behind nginx.

:class:`Cluster` starts N server processes (each with its own, disposable data
directory: the state is in PostgreSQL and the bucket), all with ``--db`` and
``--store`` from the environment as an operator would pass them, and an nginx in
front (:func:`nginx_conf`: round robin, WebSocket upgrade passed through, a failed
upstream retried on the next one). ``Cluster.url`` is the load balancer's address,
``Cluster.servers[i].base_url`` a server's own. Used by tests/cluster and by
tools/bench_cluster.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from chunksync_server.config import DB_ENV, STORE_ENV
from tests.helpers.seaweed import dummy_credentials, free_port

__all__ = ["NGINX", "Cluster", "ClusterServer", "nginx_conf"]

REPO = Path(__file__).resolve().parents[2]
NGINX = Path(os.environ.get("CHUNKSYNC_NGINX", "/usr/sbin/nginx"))


def _wait_http(url: str, timeout: float, alive: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {alive.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # nosec B310  # loopback
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


class ClusterServer:
    """One server process; ``kill()`` is a SIGKILL (a crashed machine)."""

    def __init__(self, root: Path, db_url: str, store_url: str) -> None:
        self.data_dir = root
        self.db_url = db_url
        self.store_url = store_url
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ClusterServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **dummy_credentials(),
            "PYTHONPATH": str(REPO),
            DB_ENV: self.db_url,
            STORE_ENV: self.store_url,
        }
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115  # the child keeps it
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chunksync_server",
                "serve",
                "--data",
                str(self.data_dir),
                "--port",
                str(self.port),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _wait_http(self.base_url + "/healthz", 60, self.proc)
        return self

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def nginx_conf(root: Path, listen: int, upstreams: list[int]) -> str:
    """The load balancer of docs/deploy.md, on loopback, with paths under ``root``."""
    servers = "\n".join(
        f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in upstreams
    )
    temp = "\n".join(
        f"    {kind}_temp_path {root}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
user root;
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    client_max_body_size 0;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream chunksync {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://chunksync;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout http_502 non_idempotent;
            proxy_next_upstream_tries 2;
        }}
    }}
}}
"""


class Cluster:
    def __init__(self, count: int, db_url: str, store_url: str) -> None:
        if not NGINX.exists():
            raise RuntimeError(f"nginx not found at {NGINX} (apt-get install nginx)")
        self.root = Path(tempfile.mkdtemp(prefix="chunksync-cluster-"))
        self.servers = [
            ClusterServer(self.root / f"server{i}", db_url, store_url) for i in range(count)
        ]
        self.port = free_port()
        self.nginx: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Cluster:
        try:
            for server in self.servers:
                server.start()
            lb = self.root / "nginx"
            lb.mkdir()
            conf = lb / "nginx.conf"
            conf.write_text(nginx_conf(lb, self.port, [s.port for s in self.servers]))
            with open(lb / "stderr.log", "wb") as err:
                self.nginx = subprocess.Popen(
                    [str(NGINX), "-c", str(conf), "-p", str(lb)],
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            _wait_http(self.url + "/healthz", 30, self.nginx)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.terminate()
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait()
            self.nginx = None
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
