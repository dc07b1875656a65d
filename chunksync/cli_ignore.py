"""``chunksync ignore``: list, add and remove ignore patterns.

Patterns go to ``.chunksyncignore`` at the folder root (gitignore syntax, a synced
file, so every device shares them) or, with ``--local``, to ``.chunksync/ignore``
(this device only). The file is rewritten atomically: the new text is written and
fsynced in ``.chunksync/tmp`` (never a temp file in the synced tree for the daemon to
pick up) and renamed over the old one, after re-reading the file to be sure nobody
changed it meanwhile; comments, blank lines and order of the other lines are kept.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import click

from .cli_base import command_errors, emit, find_folder
from .config import FolderPaths
from .errors import UserError
from .ignore import DEFAULT_IGNORES, IGNORE_FILE, LOCAL_IGNORE_FILE
from .output import say

__all__ = ["ignore"]

DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="the synced folder (default: the one containing the current directory)",
)
LOCAL = click.option(
    "--local", is_flag=True, help=f"this device only ({LOCAL_IGNORE_FILE}, not synced)"
)


def _target(directory: Path | None, local: bool) -> tuple[FolderPaths, Path]:
    root = (directory or find_folder()).resolve()
    paths = FolderPaths(root)
    if not paths.config.exists():
        raise UserError(f"{root} is not a chunksync folder")
    return paths, root / (LOCAL_IGNORE_FILE if local else IGNORE_FILE)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text: edit it by hand") from exc


def _rewrite(paths: FolderPaths, path: Path, before: str, after: str) -> None:
    paths.tmp.mkdir(parents=True, exist_ok=True)
    tmp = paths.tmp / f"ignore.{uuid.uuid4().hex[:8]}.tmp"
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.write(fd, after.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if _read(path) != before:
            raise UserError(f"{path} changed while being edited: run the command again")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _patterns(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


@click.group()
def ignore() -> None:
    """List, add or remove the patterns of paths not synced (gitignore syntax)."""


@ignore.command("list")
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.option("--defaults", is_flag=True, help="also the built-in patterns applied first")
@click.option("--json", "as_json", is_flag=True)
@command_errors
def ignore_list(directory: Path | None, defaults: bool, as_json: bool) -> None:
    """Show the patterns: built-in (with --defaults), shared, and this device's."""
    paths, shared = _target(directory, False)
    local = paths.root / LOCAL_IGNORE_FILE
    doc = {
        "defaults": list(DEFAULT_IGNORES) if defaults else [],
        "shared": _patterns(_read(shared)),
        "local": _patterns(_read(local)),
    }

    def text() -> None:
        for source, label in (
            ("defaults", "built-in"),
            ("shared", IGNORE_FILE),
            ("local", LOCAL_IGNORE_FILE),
        ):
            for pattern in doc[source]:
                say(f"{pattern}  ({label})")
        if not any(doc.values()):
            say("no ignore patterns (built-in ones apply: see --defaults)")

    emit(doc, as_json, text)


@ignore.command("add")
@click.argument("patterns", nargs=-1, required=True)
@DIR_OPTION
@LOCAL
@command_errors
def ignore_add(patterns: tuple[str, ...], directory: Path | None, local: bool) -> None:
    """Add patterns (a pattern already there is left as it is)."""
    paths, path = _target(directory, local)
    before = _read(path)
    have = set(before.splitlines())
    new = [p for p in dict.fromkeys(patterns) if p not in have]
    for p in new:
        if "\n" in p or "\r" in p or not p.strip():
            raise UserError(f"{p!r} is not a single-line pattern")
    if not new:
        say(f"already in {path.name}: nothing to add")
        return
    prefix = before if not before or before.endswith("\n") else before + "\n"
    _rewrite(paths, path, before, prefix + "".join(f"{p}\n" for p in new))
    say(f"added {len(new)} pattern{'s' if len(new) != 1 else ''} to {path}")


@ignore.command("remove")
@click.argument("patterns", nargs=-1, required=True)
@DIR_OPTION
@LOCAL
@command_errors
def ignore_remove(patterns: tuple[str, ...], directory: Path | None, local: bool) -> None:
    """Remove patterns (exactly as listed by 'chunksync ignore list')."""
    paths, path = _target(directory, local)
    before = _read(path)
    lines = before.splitlines(keepends=True)
    kept = [ln for ln in lines if ln.rstrip("\r\n") not in patterns]
    missing = [p for p in patterns if p not in {ln.rstrip("\r\n") for ln in lines}]
    if missing:
        raise UserError(
            f"not in {path.name}: {', '.join(missing)} ('chunksync ignore list' shows them)"
        )
    _rewrite(paths, path, before, "".join(kept))
    say(f"removed {len(patterns)} pattern{'s' if len(patterns) != 1 else ''} from {path}")
