"""The peers come from Debian packages: install the missing ones, or say how.

``apt-get install -y restic rsync syncthing`` when running as root (the suite's machine);
otherwise a one-line error naming the command to run. Versions are printed with the
results, since a peer's speed changes between releases.
"""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["PEERS", "ensure_peers", "versions"]

PEERS = {"restic": "restic", "rsync": "rsync", "syncthing": "syncthing", "git": "git"}
_VERSION_ARGS = {
    "restic": ["version"],
    "rsync": ["--version"],
    "syncthing": ["--version"],
    "git": ["--version"],
}


def ensure_peers(names: list[str], log: object = print) -> None:
    """Make every tool in ``names`` available on PATH, installing Debian packages if root."""
    missing = [PEERS[n] for n in names if shutil.which(n) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(
            f"bench_peers: missing {' '.join(missing)}; run as root: "
            f"apt-get install -y {' '.join(missing)}"
        )
    log(f"installing {' '.join(missing)} from Debian packages ...")  # type: ignore[operator]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(cmd, env=env, check=True)


def versions(names: list[str]) -> dict[str, str]:
    """First line of each tool's version output."""
    out = {}
    for name in names:
        proc = subprocess.run(
            [name, *_VERSION_ARGS[name]], capture_output=True, text=True, check=False
        )
        out[name] = (
            (proc.stdout or proc.stderr).strip().splitlines()[0]
            if proc.stdout or proc.stderr
            else "?"
        )
    return out
