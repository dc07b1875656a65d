"""Which paths of a folder are not synced.

Sources, in order (later lines win, exactly as in one concatenated ``.gitignore``):

0. :data:`DEFAULT_IGNORES`: files that operating systems, office suites, editors and
   browsers leave behind and that no other device wants (the list Dropbox and
   Syncthing users converge on; backup files such as ``*~`` are *not* in it, because
   users keep them on purpose). A ``!pattern`` in either file below re-includes one;
1. ``.chunksyncignore`` at the folder root: gitignore syntax, and itself an ordinary
   synced file, so every device shares the rules;
2. ``.chunksync/ignore``: the same syntax, per device, never synced.

Independently of any rule, a path with a component named ``.chunksync`` in any letter
case (the folder's own state: keys, index, temp files; or a nested synced folder's) is
always ignored, and cannot be re-included: other devices refuse that name from the
server (:mod:`chunksync.paths`), so syncing it would stop them.

Paths are relative, POSIX-style (``a/b/c.txt``). As in git, a directory that is ignored
is not descended into, so a later ``!pattern`` cannot re-include a file below it; the
scanner enforces that by not walking it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec

__all__ = ["DEFAULT_IGNORES", "IGNORE_FILE", "LOCAL_IGNORE_FILE", "STATE_DIR", "IgnoreRules"]

STATE_DIR = ".chunksync"
IGNORE_FILE = ".chunksyncignore"
LOCAL_IGNORE_FILE = f"{STATE_DIR}/ignore"

#: gitignore patterns applied before the user's (documented in docs/design.md)
DEFAULT_IGNORES: tuple[str, ...] = (
    # operating system metadata
    ".DS_Store",
    "[Tt]humbs.db",
    "[Ee]hthumbs.db",
    "[Dd]esktop.ini",
    # lock files of open documents: LibreOffice, Microsoft Office, Emacs
    ".~lock.*#",
    "~$*",
    ".#*",
    # editor swap files (vim)
    "*.swp",
    "*.swo",
    # partial downloads (Firefox, Chrome, Safari)
    "*.part",
    "*.crdownload",
    "*.download",
    # trash and leftovers of network and FUSE file systems
    ".Trash-*",
    ".fuse_hidden*",
    ".nfs*",
)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []


@dataclass(frozen=True, slots=True)
class IgnoreRules:
    """Compiled ignore rules of one folder. ``digest`` changes whenever the rules do."""

    lines: tuple[str, ...] = ()
    _spec: GitIgnoreSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_spec", GitIgnoreSpec.from_lines(self.lines))

    @classmethod
    def load(cls, root: Path, *, defaults: bool = True) -> IgnoreRules:
        """:data:`DEFAULT_IGNORES`, then ``root/.chunksyncignore``, then ``root/.chunksync/ignore``."""
        user = _read_lines(root / IGNORE_FILE) + _read_lines(root / LOCAL_IGNORE_FILE)
        return cls((DEFAULT_IGNORES if defaults else ()) + tuple(user))

    @property
    def digest(self) -> bytes:
        return hashlib.sha256("\n".join(self.lines).encode()).digest()

    def is_ignored(self, rel_path: str, is_dir: bool) -> bool:
        """Whether this path (relative, POSIX) is excluded from sync."""
        if not rel_path or rel_path == ".":
            return False
        if any(part.casefold() == STATE_DIR for part in rel_path.split("/")):
            return True
        if not self.lines:
            return False
        return bool(self._spec.match_file(rel_path + "/" if is_dir else rel_path))
