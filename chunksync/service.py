"""Running the daemon as a per-user service: systemd user unit (Linux), launchd agent (macOS).

:func:`systemd_unit` and :func:`launchd_plist` are pure: they render the text for given
folders and executable, so they are tested without touching the system.
:func:`install_service` writes the file for the current user, atomically and 0644
(a unit holds no secret: the folder key stays in ``DIR/.chunksync/key``, 0600), and
says how to start it; it never starts or enables anything itself.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from xml.sax.saxutils import escape  # nosec B406  # escape() writes XML, parses none

from .errors import UserError
from .fsops import atomic_write_bytes

__all__ = [
    "LAUNCHD_LABEL",
    "UNIT_NAME",
    "install_service",
    "launchd_plist",
    "service_path",
    "systemd_unit",
]

UNIT_NAME = "chunksync.service"
LAUNCHD_LABEL = "org.chunksync.daemon"


def daemon_command(executable: str, directories: list[Path]) -> list[str]:
    return [executable, "daemon", *(str(d.resolve()) for d in directories)]


def systemd_unit(command: list[str], home: str | None = None) -> str:
    """A systemd user unit running ``command`` (restarted on failure, stopped with SIGTERM)."""
    env = f"Environment=CHUNKSYNC_HOME={shlex.quote(home)}\n" if home else ""
    return (
        "[Unit]\n"
        "Description=chunksync folder sync daemon\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={shlex.join(command)}\n"
        f"{env}"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "KillSignal=SIGTERM\n"
        "TimeoutStopSec=30\n"
        "Nice=10\n"
        "IOSchedulingClass=idle\n\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def launchd_plist(command: list[str], log_dir: Path, home: str | None = None) -> str:
    """A launchd agent running ``command`` at login, kept alive, logging to ``log_dir``."""
    args = "".join(f"    <string>{escape(a)}</string>\n" for a in command)
    env = (
        "  <key>EnvironmentVariables</key>\n  <dict>\n"
        f"    <key>CHUNKSYNC_HOME</key><string>{escape(home)}</string>\n  </dict>\n"
        if home
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
        '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
        '<plist version="1.0">\n<dict>\n'
        f"  <key>Label</key><string>{LAUNCHD_LABEL}</string>\n"
        f"  <key>ProgramArguments</key>\n  <array>\n{args}  </array>\n"
        f"{env}"
        "  <key>RunAtLoad</key><true/>\n"
        "  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>\n"
        "  <key>ProcessType</key><string>Background</string>\n"
        f"  <key>StandardErrorPath</key><string>{escape(str(log_dir / 'chunksync.log'))}</string>\n"
        "</dict>\n</plist>\n"
    )


def service_path(platform: str = sys.platform, home: Path | None = None) -> Path:
    home = home or Path.home()
    if platform == "darwin":
        return home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    if platform.startswith("linux"):
        config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        return config / "systemd" / "user" / UNIT_NAME
    raise UserError(
        f"--install-service supports Linux (systemd) and macOS (launchd), not {platform}"
    )


def install_service(
    directories: list[Path], *, platform: str = sys.platform, home: Path | None = None
) -> str:
    """Write the service file for the current user; returns what to run next."""
    executable = shutil.which("chunksync") or sys.argv[0]
    command = daemon_command(os.path.abspath(executable), directories)
    chunksync_home = os.environ.get("CHUNKSYNC_HOME")
    path = service_path(platform, home)
    if platform == "darwin":
        text = launchd_plist(command, path.parents[1] / "Logs", chunksync_home)
        hint = f"launchctl load -w {shlex.quote(str(path))}"
    else:
        text = systemd_unit(command, chunksync_home)
        hint = f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode(), mode=0o644)
    return f"wrote {path}; start it with: {hint}"
