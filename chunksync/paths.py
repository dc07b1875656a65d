"""Validation of folder-relative paths that come from the server.

The server, its storage and the network are untrusted (DESIGN.md §5), so every name
in a tree downloaded from it is hostile until proven otherwise. Before the sync
engine touches the disk, each path it will create, overwrite, rename or delete passes
:func:`validate_relpath`, which guarantees:

* the path is relative, non-empty, ``/``-separated, with no empty, ``.`` or ``..``
  component, so it can never leave the synced folder;
* it contains no NUL; backslashes and other control characters are refused only
  where they cannot be written (Windows): on Linux and macOS they are legal names and
  sync like any other (:func:`unwritable_here`);
* no component is the per-folder state directory name ``.chunksync`` (in any letter
  case, since macOS and Windows ignore case), at any depth: a nested one may be the
  state of another folder synced inside this one, and must never be written from the
  server (its key, config and index would be the server's choice);
* every component fits the 255-byte name limit of common filesystems once encoded
  as UTF-8, and is valid UTF-8 at all (no lone surrogates);
* with ``strict_portable=True``, no component is a name Windows refuses (``CON``,
  ``com1.txt``, a trailing dot or space, ``<>:"|?*``).

Names are judged per entry and per platform. A tree entry that is structurally
impossible (empty, ``.``, ``..``, a slash or NUL) or the state directory is hostile: the
object is refused. A name that is merely impossible *here* (too long for this file
system, a character this platform refuses) is not: the engine skips that entry on this
device alone, reports it, and syncs the rest (:func:`unwritable_here`).

The functions are pure: they never look at the disk, and return their input
unchanged when it is safe, raising :class:`~chunksync.errors.UnsafePathError` with a
one-line reason otherwise. :func:`display` escapes a name for output, so a name with
control characters can never forge a line of a terminal or a log: every line shown to
a person goes through it as a whole (:mod:`chunksync.output`), so messages embed names
raw and each is escaped exactly once.
"""

from __future__ import annotations

import os
import re

from .errors import UnsafePathError

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_SYMLINK_TARGET",
    "STATE_DIR",
    "display",
    "portability_problem",
    "unwritable_here",
    "validate_relpath",
    "validate_symlink_target",
    "validate_tree_entry_name",
]

STATE_DIR = ".chunksync"
MAX_NAME_BYTES = 255
MAX_SYMLINK_TARGET = 4096  # PATH_MAX on Linux; longer targets cannot be created anyway

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WINDOWS = os.name == "nt"
_WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*]')
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{i}" for i in "123456789¹²³"]
    + [f"LPT{i}" for i in "123456789¹²³"]
)


def _refuse(path: str, reason: str) -> UnsafePathError:
    return UnsafePathError(f"unsafe path from server '{path:.120}': {reason}")


def _check_structure(name: str, shown: str) -> None:
    """What no platform can hold in one name: the tree itself is malformed."""
    if not name:
        raise _refuse(shown, "empty path component")
    if name in (".", ".."):
        raise _refuse(shown, f"{name!r} component")
    if "/" in name:
        raise _refuse(shown, "slash inside a name")
    if "\0" in name:
        raise _refuse(shown, "NUL character")


def unwritable_here(name: str) -> str | None:
    """Why this device cannot create a file of that name, or None when it can."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if size > MAX_NAME_BYTES:
        return f"name longer than {MAX_NAME_BYTES} bytes"
    if _WINDOWS:
        if "\\" in name:
            return "backslash (a path separator on Windows)"
        return portability_problem(name)
    return None


def _check_component(name: str, shown: str, *, strict_portable: bool) -> None:
    _check_structure(name, shown)
    problem = unwritable_here(name)
    if problem:
        raise _refuse(shown, problem)
    if strict_portable:
        _check_portable(name, shown)


def display(path: str) -> str:
    """``path`` for output: control characters, lone surrogates and backslashes escaped,
    so an odd name shows as what it is and never as raw terminal control codes."""
    out = []
    for ch in path:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return "".join(out)


def portability_problem(name: str) -> str | None:
    """Why a name cannot exist on Windows or macOS, or None when it is portable.

    The scanner flags such local names (they still sync); ``strict_portable`` refuses
    them in paths from the server.
    """
    if _WINDOWS_FORBIDDEN.search(name) or "\\" in name or _CONTROL.search(name):
        return 'character not allowed on Windows (<>:"\\|?* or a control character)'
    if name[-1:] in (".", " "):
        return "name ends with a dot or space (not allowed on Windows)"
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    if stem in _WINDOWS_RESERVED:
        return f"{stem} is a reserved device name on Windows"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"name longer than {MAX_NAME_BYTES} bytes"
    return None


def _check_portable(name: str, shown: str) -> None:
    problem = portability_problem(name)
    if problem:
        raise _refuse(shown, problem)


def validate_tree_entry_name(
    name: str, *, at_root: bool = False, strict_portable: bool = False
) -> str:
    """Check one directory entry name (a single path component) and return it.

    The state directory name is refused at every depth; ``at_root`` is accepted for
    compatibility and no longer changes anything.
    """
    del at_root
    if not isinstance(name, str):
        raise UnsafePathError(f"unsafe name from server: not a string ({type(name).__name__})")
    _check_structure(name, name)
    _check_not_state(name, name)
    if strict_portable:
        _check_portable(name, name)
    return name


def _check_not_state(name: str, shown: str) -> None:
    if name.casefold() == STATE_DIR:
        raise _refuse(shown, f"the {STATE_DIR} state directory is never synced")


def validate_relpath(path: str, *, strict_portable: bool = False) -> str:
    """Check a ``/``-separated path relative to the synced folder and return it."""
    if not isinstance(path, str):
        raise UnsafePathError(f"unsafe path from server: not a string ({type(path).__name__})")
    if not path:
        raise _refuse(path, "empty path")
    if path.startswith("/"):
        raise _refuse(path, "absolute path")
    components = path.split("/")
    for component in components:
        _check_component(component, path, strict_portable=strict_portable)
        _check_not_state(component, path)
    return path


def validate_symlink_target(target: str, shown: str) -> str:
    """A symlink target must be a non-empty string without NUL or control characters.

    Targets may legitimately be absolute or point outside the folder (as in git and
    Syncthing); the engine never follows symlinks when it writes, so only bytes that
    cannot be stored at all are refused here.
    """
    if not isinstance(target, str) or not target:
        raise _refuse(shown, "symlink without a target")
    if _CONTROL.search(target):
        raise _refuse(shown, "NUL or control character in symlink target")
    if len(target) > MAX_SYMLINK_TARGET:
        raise _refuse(shown, f"symlink target longer than {MAX_SYMLINK_TARGET} characters")
    return target
