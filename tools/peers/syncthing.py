"""Syncthing, the live-sync peer: two instances on loopback sharing one folder.

Each instance gets its own home (``syncthing generate``), then its ``config.xml`` is
rewritten before the first start: GUI/REST on a free loopback port with a known API key,
one TCP listen address on loopback, the other device at its static address, and nothing
that reaches the internet (global and local discovery, relays, NAT-PMP/UPnP, STUN, usage
reporting, crash reporting, upgrades: all off). The shared folder watches with
``fsWatcherDelayS=1`` (issue 12 compares at 1 s delay; Syncthing's default is 10 s) and
rescans hourly as a safety net, as chunksync's daemon does. ``setLowPriority`` is off so
that both tools run at the same CPU priority. The REST API tells when B has caught up.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

__all__ = ["OPTIONS", "Endpoint", "SyncthingPair", "free_port", "rewrite_config"]

FOLDER_ID = "bench"
OPTIONS = {
    "globalAnnounceEnabled": "false",
    "localAnnounceEnabled": "false",
    "relaysEnabled": "false",
    "natEnabled": "false",
    "urAccepted": "-1",
    "urSeen": "3",
    "startBrowser": "false",
    "crashReportingEnabled": "false",
    "autoUpgradeIntervalH": "0",
    "setLowPriority": "false",
    "stunKeepaliveStartS": "0",
    "stunKeepaliveMinS": "0",
    "announceLANAddresses": "false",
    "reconnectionIntervalS": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What one instance's config says about it (and its peer's about it)."""

    device_id: str
    name: str
    gui: int
    listen: int
    apikey: str


def rewrite_config(text: str, me: Endpoint, peer: Endpoint, folder: Path) -> str:
    """``config.xml`` for ``me``: loopback only, offline, one folder shared with ``peer``."""
    root = ET.fromstring(text)
    for old in root.findall("folder") + root.findall("device"):
        root.remove(old)
    opts = root.find("options")
    if opts is None:
        raise ValueError("config.xml without <options>")
    for listen in opts.findall("listenAddress"):
        opts.remove(listen)
    ET.SubElement(opts, "listenAddress").text = f"tcp://127.0.0.1:{me.listen}"
    for name, value in OPTIONS.items():
        node = opts.find(name)
        (node if node is not None else ET.SubElement(opts, name)).text = value
    gui = root.find("gui")
    if gui is None:
        gui = ET.SubElement(root, "gui", enabled="true", tls="false")
    for name, value in (("address", f"127.0.0.1:{me.gui}"), ("apikey", me.apikey)):
        node = gui.find(name)
        (node if node is not None else ET.SubElement(gui, name)).text = value
    shared = ET.Element(
        "folder",
        id=FOLDER_ID,
        label=FOLDER_ID,
        path=str(folder),
        type="sendreceive",
        rescanIntervalS="3600",
        fsWatcherEnabled="true",
        fsWatcherDelayS="1",
        ignorePerms="false",
        autoNormalize="true",
    )
    for dev in (me, peer):
        ET.SubElement(shared, "device", id=dev.device_id, introducedBy="")
    root.insert(0, shared)
    for dev, address in ((me, "dynamic"), (peer, f"tcp://127.0.0.1:{peer.listen}")):
        node = ET.SubElement(
            root,
            "device",
            id=dev.device_id,
            name=dev.name,
            compression="metadata",
            introducer="false",
        )
        ET.SubElement(node, "address").text = address
        ET.SubElement(node, "autoAcceptFolders").text = "false"
    return ET.tostring(root, encoding="unicode")


class Instance:
    """One Syncthing process: home, ports, API key, device id."""

    def __init__(self, home: Path, folder: Path, binary: str) -> None:
        self.home, self.folder, self.binary = home, folder, binary
        self.gui, self.listen = free_port(), free_port()
        self.apikey = f"bench-{self.gui}-{self.listen}"
        self.proc: subprocess.Popen[bytes] | None = None
        shutil.rmtree(home, ignore_errors=True)
        out = subprocess.run(
            [binary, "generate", f"--home={home}", "--no-default-folder"],
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"Device ID:\s*([A-Z0-9-]{50,})", out.stdout + out.stderr)
        if found is None:
            raise RuntimeError(f"no device id from 'syncthing generate': {out.stdout}{out.stderr}")
        self.device_id = found.group(1)

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.device_id, self.home.name, self.gui, self.listen, self.apikey)

    def configure(self, peer: Instance) -> None:
        path = self.home / "config.xml"
        text = rewrite_config(path.read_text(), self.endpoint, peer.endpoint, self.folder)
        path.write_text(text)

    def start(self, log: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "STNOUPGRADE": "1", "STNORESTART": "1", "STNODEFAULTFOLDER": "1"}
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "serve",
                    f"--home={self.home}",
                    "--no-browser",
                    "--no-restart",
                    "--no-upgrade",
                    "--skip-port-probing",
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def rest(self, route: str, method: str = "GET", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.gui}{route}",
            data=data,
            method=method,
            headers={"X-API-Key": self.apikey},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.strip() else None

    def rest_ok(self) -> bool:
        try:
            self.rest("/rest/system/ping")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class SyncthingPair:
    """Devices A and B syncing ``base/a`` and ``base/b`` (context manager)."""

    def __init__(self, base: Path, binary: str = "syncthing") -> None:
        self.base = base
        self.a = Instance(base / "home-a", base / "a", binary)
        self.b = Instance(base / "home-b", base / "b", binary)
        self.a.configure(self.b)
        self.b.configure(self.a)

    def __enter__(self) -> Self:
        self.a.start(self.base / "syncthing-a.log")
        self.b.start(self.base / "syncthing-b.log")
        self._wait(lambda: self.a.rest_ok() and self.b.rest_ok(), 60, "REST API up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.a.stop()
        self.b.stop()

    def wait_in_sync(self, files: int, timeout: float = 600.0) -> None:
        """Until B holds ``files`` files, needs nothing, and both folders are idle."""

        def done() -> bool:
            sa = self.a.rest(f"/rest/db/status?folder={FOLDER_ID}")
            sb = self.b.rest(f"/rest/db/status?folder={FOLDER_ID}")
            return (
                sa["state"] == sb["state"] == "idle"
                and sb["localFiles"] >= files
                and sb["needFiles"] == 0
                and sa["needFiles"] == 0
            )

        self._wait(done, timeout, f"Syncthing B to hold {files} files")

    def _wait(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except (OSError, KeyError, ValueError):
                pass
            for inst in (self.a, self.b):
                if inst.proc is not None and inst.proc.poll() is not None:
                    raise RuntimeError(f"syncthing {inst.home.name} exited: see {self.base}/*.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.2)
