"""A throwaway PostgreSQL 15 cluster for tests and benchmarks (initdb + pg_ctl in /tmp).

:class:`PgCluster` creates a cluster in a fresh temp directory, listening only on a
unix socket inside it (no TCP port to collide with other runs), and removes it on
stop. PostgreSQL refuses to run as root, so as root the binaries run as the
``postgres`` system user (the Debian package creates it; ``CHUNKSYNC_PG_USER``
overrides), which then owns the temp directory. :meth:`PgCluster.new_database`
returns the ``postgresql://`` URL of a new empty schema: one per test keeps tests
independent while the cluster starts once per session.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PG_BIN", "PgCluster"]

PG_BIN = Path(os.environ.get("CHUNKSYNC_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "chunksync"


class PgCluster:
    def __init__(self, *, durable: bool = False) -> None:
        """``durable=False`` turns fsync off: tests need isolation, not crash safety."""
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL not found at {PG_BIN} (apt-get install postgresql)")
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="chunksync-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self._names = itertools.count(1)
        self._shared = False
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = os.environ.get("CHUNKSYNC_PG_USER", "postgres")
            entry = pwd.getpwnam(user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", user, "--"]
        self.root.chmod(0o755)

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-800:]}")

    def start(self) -> PgCluster:
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = f"-c listen_addresses='' -k {self.socket_dir} -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SUPERUSER}@/postgres?host={self.socket_dir}"

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def new_database(self) -> str:
        """A URL whose tables live in a new empty schema of the shared ``tests`` database.

        A schema costs nothing to create, where each new database copies a template
        (and removing dozens of them at the end took longer than the tests).
        """
        import psycopg

        if not self._shared:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute('CREATE DATABASE "tests"')
            self._shared = True
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url("tests"), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url('tests')}&options=-c%20search_path%3D{name}"

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
