"""Conflict rules of the three-way merge: pure functions, no I/O, no clock.

This module decides, for one directory entry seen in three versions (``base``: the
last snapshot this device synced, ``mine``: this device's scan, ``theirs``: the
server head), what the merge does with it, and how a conflicted copy is named:

* :func:`classify` is the whole merge table as one small function (Syncthing keeps
  its winner rule the same way), tested row by row;
* :func:`conflict_name` builds ``NAME (conflicted copy YYYY-MM-DD HHMMSS from
  DEVICE).EXT``, never a copy of a copy, never a name already taken;
* :class:`ConflictPolicies` maps gitignore-style path patterns to a policy;
* :class:`Conflict` is what the user is told, in plain words.

Guarantees: "changed" means changed *content* (kind, content id, symlink target,
executable bit); an mtime alone never makes a conflict. A conflict never loses a
version: keep-both and manual keep both on disk, last-write-wins keeps the loser in
history and lists it. Time and device names come in as arguments, so equal inputs
give equal outputs on every device.
"""

from __future__ import annotations

import functools
import re
import typing
import unicodedata
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pathspec

from .errors import ConfigError
from .objects import TreeEntry

__all__ = [
    "Change",
    "Conflict",
    "ConflictKind",
    "ConflictPolicies",
    "Outcome",
    "Policy",
    "Verdict",
    "change_of",
    "classify",
    "conflict_name",
    "explain",
    "is_conflict_copy",
    "name_clash",
    "name_keeper",
    "newer_side",
    "same_content",
    "strip_conflict_tag",
]

Change = Literal["unchanged", "added", "modified", "deleted"]
ConflictKind = Literal[
    "both-modified", "both-added", "modify-delete", "type-clash", "case-clash", "nfc-clash"
]
Policy = Literal["merge", "keep-both", "last-write-wins", "manual"]
Side = Literal["local", "remote"]
Outcome = Literal["keep", "same", "take-mine", "take-theirs", "recurse", "keep-both"]
"""What the merge does with one entry:

* ``keep``: neither side changed the content; keep it (newest metadata wins);
* ``same``: both sides made the same change (including both deleting it);
* ``take-mine`` / ``take-theirs``: take that side's version (``None`` = gone);
* ``recurse``: both are directories that changed differently; merge their children;
* ``keep-both``: a real conflict; the policy decides which version keeps the name.
"""

POLICIES: tuple[str, ...] = ("merge", "keep-both", "last-write-wins", "manual")
MAX_EXTENSION = 10  # "x.longer than this" is not an extension worth keeping
MAX_DEVICE = 64
_TAG = re.compile(
    r" \(conflicted copy (?P<day>\d{4}-\d{2}-\d{2}) (?P<time>\d{6}) from (?P<device>[^()/]*?)(?: \d+)?\)"
)
_DEVICE_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")


# ---------------------------------------------------------------------------- naming


def _split_ext(name: str) -> tuple[str, str]:
    """Split before the LAST extension: ``a.tar.gz`` -> ``("a.tar", ".gz")``.

    Dotfiles (``.bashrc``), names ending in a dot and "extensions" that are long or
    contain spaces (``notes.about the trip``) count as having no extension.
    """
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    ext = name[dot:]
    if len(ext) == 1 or len(ext) > MAX_EXTENSION + 1 or " " in ext:
        return name, ""
    return name[:dot], ext


def strip_conflict_tag(name: str) -> str:
    """The name a conflicted copy was made from (``name`` itself if it is not one)."""
    matches = list(_TAG.finditer(name))
    if not matches:
        return name
    last = matches[-1]
    return name[: last.start()] + name[last.end() :]


def is_conflict_copy(name: str) -> bool:
    """True if the last component of ``name`` carries a conflicted-copy tag."""
    return bool(_TAG.search(name.rsplit("/", 1)[-1]))


@dataclass(frozen=True, slots=True)
class ConflictCopy:
    """What a conflicted copy's name says: the path it belongs beside, who made it, when."""

    path: str
    original: str
    device: str
    made: str  # "YYYY-MM-DD HH:MM:SS", the time of the device that made it


def parse_conflict_copy(path: str) -> ConflictCopy | None:
    """Recognise a conflicted copy by its name, so every device can list it, not only
    the one that made it."""
    parent, _, name = path.rpartition("/")
    matches = list(_TAG.finditer(name))
    if not matches:
        return None
    tag = matches[-1]
    original = name[: tag.start()] + name[tag.end() :]
    t = tag["time"]
    return ConflictCopy(
        path,
        f"{parent}/{original}" if parent else original,
        tag["device"],
        f"{tag['day']} {t[:2]}:{t[2:4]}:{t[4:]}",
    )


def _clean_device(device: str) -> str:
    text = _DEVICE_UNSAFE.sub("_", unicodedata.normalize("NFC", device))
    text = text.replace("(", "[").replace(")", "]").strip()
    return text[:MAX_DEVICE] or "unknown device"


def _fit(stem: str, tail: str) -> str:
    """``stem + tail``, shortening the stem so the name fits in 255 UTF-8 bytes."""
    while stem and len((stem + tail).encode("utf-8")) > 255:
        stem = stem[:-1]
    return stem + tail


def conflict_name(path: str, device: str, when: datetime, taken: Container[str]) -> str:
    """A free name for the conflicted copy of ``path`` made by ``device`` at ``when``.

    ``dir/report.docx`` gives ``dir/report (conflicted copy 2026-11-25 140312 from
    laptop).docx``: the tag goes before the last extension so the copy opens in the
    same application (``archive.tar.gz`` gives ``archive.tar (conflicted copy …).gz``).
    If ``path`` already is a conflicted copy, its old tag is replaced, never nested.
    When the name is in ``taken`` (checked both as a full path and as a bare name),
    `` 2``, `` 3``… is appended inside the parenthesis.
    """
    parent, _, name = path.rpartition("/")
    stem, ext = _split_ext(strip_conflict_tag(unicodedata.normalize("NFC", name)))
    label = f"conflicted copy {when.strftime('%Y-%m-%d %H%M%S')} from {_clean_device(device)}"
    counter = 1
    while True:
        suffix = "" if counter == 1 else f" {counter}"
        candidate = unicodedata.normalize("NFC", _fit(stem, f" ({label}{suffix}){ext}"))
        full = f"{parent}/{candidate}" if parent else candidate
        if full not in taken and candidate not in taken:
            return full
        counter += 1


def name_clash(a: str, b: str) -> Literal["case-clash", "nfc-clash"] | None:
    """Whether two different names would collide on some filesystem.

    ``nfc-clash``: equal after Unicode NFC normalization (macOS NFD vs Linux NFC);
    ``case-clash``: equal ignoring letter case (macOS and Windows defaults).
    """
    if a == b:
        return None
    na, nb = unicodedata.normalize("NFC", a), unicodedata.normalize("NFC", b)
    if na == nb:
        return "nfc-clash"
    if na.casefold() == nb.casefold():
        return "case-clash"
    return None


# ----------------------------------------------------------------------- classification


def same_content(a: TreeEntry | None, b: TreeEntry | None) -> bool:
    """Equal as far as syncing cares: kind, content id, target, executable bit.

    Directories compare by tree id only; mtimes and names are ignored.
    """
    if a is None or b is None:
        return a is b
    if a.kind != b.kind:
        return False
    if a.kind == "dir":
        return a.id == b.id
    if a.kind == "symlink":
        return a.target == b.target
    return a.id == b.id and a.executable == b.executable


def change_of(base: TreeEntry | None, entry: TreeEntry | None) -> Change:
    """How one side changed an entry since the base snapshot."""
    if base is None:
        return "unchanged" if entry is None else "added"
    if entry is None:
        return "deleted"
    return "unchanged" if same_content(base, entry) else "modified"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The merge table's answer for one entry (see :data:`Outcome`)."""

    mine: Change
    theirs: Change
    outcome: Outcome
    conflict: ConflictKind | None = None


def classify(base: TreeEntry | None, mine: TreeEntry | None, theirs: TreeEntry | None) -> Verdict:
    """The merge table for one entry: what happens, and whether it is a conflict.

    Only one side changed: take it. Both changed the same way: nothing to do. Edit vs
    delete: the edit survives (a directory edited on one side and deleted on the other
    is merged child by child, so edited files inside survive and unchanged ones go).
    Two directories: merge their children. Otherwise a conflict: ``type-clash`` when
    the kinds differ, ``both-added`` without a base, ``both-modified`` with one.
    """
    cm, ct = change_of(base, mine), change_of(base, theirs)
    if cm == "unchanged" and ct == "unchanged":
        return Verdict(cm, ct, "keep")
    if ct == "unchanged":
        return Verdict(cm, ct, "take-mine")
    if cm == "unchanged":
        return Verdict(cm, ct, "take-theirs")
    if same_content(mine, theirs):
        return Verdict(cm, ct, "same")
    if mine is None or theirs is None:
        survivor = theirs if mine is None else mine
        assert survivor is not None  # nosec B101  # same_content(None, None) returned above
        if survivor.kind == "dir" and base is not None and base.kind == "dir":
            return Verdict(cm, ct, "recurse")
        return Verdict(cm, ct, "take-theirs" if mine is None else "take-mine", "modify-delete")
    if mine.kind == "dir" and theirs.kind == "dir":
        return Verdict(cm, ct, "recurse")
    if mine.kind != theirs.kind:
        return Verdict(cm, ct, "keep-both", "type-clash")
    return Verdict(cm, ct, "keep-both", "both-added" if base is None else "both-modified")


def name_keeper(mine: TreeEntry, theirs: TreeEntry) -> Side:
    """Under keep-both, who keeps the name: a directory always, else the server."""
    if mine.kind == "dir" and theirs.kind != "dir":
        return "local"
    return "remote"


def newer_side(mine: TreeEntry, theirs: TreeEntry) -> Side:
    """Under last-write-wins, the newer mtime wins; a tie goes to the server version."""
    return "local" if mine.mtime_ns > theirs.mtime_ns else "remote"


# ----------------------------------------------------------------------------- policies


@functools.lru_cache(maxsize=256)
def _spec(pattern: str) -> pathspec.PathSpec[typing.Any]:
    try:
        return pathspec.PathSpec.from_lines("gitignore", [pattern])
    except KeyError:  # pathspec < 1.0 names the factory "gitwildmatch"
        return pathspec.PathSpec.from_lines("gitwildmatch", [pattern])


@dataclass(frozen=True)
class ConflictPolicies:
    """Conflict policy per path: gitignore-style patterns, the last match wins."""

    rules: tuple[tuple[str, Policy], ...] = ()
    default: Policy = "keep-both"

    def __post_init__(self) -> None:
        for pattern, policy in (*self.rules, ("(default)", self.default)):
            if policy not in POLICIES:
                raise ConfigError(f"conflict policy for {pattern!r}: unknown policy {policy!r}")
            if not pattern.strip():
                raise ConfigError("conflict policy: empty path pattern")

    def for_path(self, path: str) -> Policy:
        chosen: Policy = self.default
        for pattern, policy in self.rules:
            if _spec(pattern).match_file(path):
                chosen = policy
        return chosen


# ------------------------------------------------------------------------------ reports


@dataclass(frozen=True, slots=True)
class Conflict:
    """One conflict, as the user will see it (``chunksync conflicts``).

    ``kept`` is the side whose version holds ``path``; ``copy_path`` is where the
    other version is (None when it is not on disk: last-write-wins, edit vs delete).
    """

    path: str
    kind: ConflictKind
    kept: Side
    copy_path: str | None
    policy: Policy
    explanation: str


def explain(
    kind: ConflictKind,
    path: str,
    kept: Side,
    copy_path: str | None,
    policy: Policy,
    *,
    device: str,
    remote_device: str | None,
) -> str:
    """Plain words for a non-technical user: what happened, what was kept, what to do."""
    here = f"this device ({device})"
    there = remote_device or "another device"
    winner, loser = (there, here) if kept == "remote" else (here, there)
    if kind in ("case-clash", "nfc-clash"):
        how = "only in upper/lower case" if kind == "case-clash" else "only in Unicode form"
        return (
            f'"{path}" and "{copy_path}" were created on different devices and their names '
            f"differ {how}. Both were kept, but Windows and macOS cannot show both in one "
            "folder: rename one of them."
        )
    if kind == "modify-delete":
        return (
            f'"{path}" was deleted on {loser} but changed on {winner}. The changed version '
            "was kept so no work is lost; delete it again if you no longer need it."
        )
    what = "created separately" if kind == "both-added" else "changed"
    if policy == "last-write-wins" and copy_path is None:
        return (
            f'"{path}" was {what} on {here} and on {there}. By the last-write-wins rule '
            f"for this path, the newer version from {winner} keeps the name; the older one "
            f'from {loser} is not in the folder but can be restored from history ("chunksync log").'
        )
    if kind == "type-clash":
        text = (
            f'"{path}" is one kind of item (file, folder or link) on {here} and another on '
            f"{there}. Both were kept: the version from {winner} keeps the name, the other "
            f'was saved as "{copy_path}". Move or rename them as you like.'
        )
    else:
        text = (
            f'"{path}" was {what} on {here} and on {there} before they synced. The version '
            f"from {winner} keeps the name; the version from {loser} was saved as "
            f'"{copy_path}". Compare the two, keep what you need in one, and delete the other.'
        )
    if policy == "manual":
        text += (
            ' This path needs a manual decision: run "chunksync resolve" with --keep '
            "mine, theirs or both when you are done."
        )
    return text
