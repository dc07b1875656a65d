"""Validation of folder-relative paths that come from the server.

The server, its storage and the network are untrusted (DESIGN.md §5), so every name
in a tree downloaded from it is hostile until proven otherwise. Before the sync
engine touches the disk, each path it will create, overwrite, rename or delete passes
:func:`validate_relpath`, which guarantees:

* the path is relative, non-empty, ``/``-separated, with no empty, ``.`` or ``..``
  component, so it can never leave the synced folder;
* it contains no backslash (a separator on Windows), NUL or other control character;
* no component is the per-folder state directory name ``.chunksync`` (in any letter
  case, since macOS and Windows ignore case), at any depth: a nested one may be the
  state of another folder synced inside this one, and must never be written from the
  server (its key, config and index would be the server's choice);
* every component fits the 255-byte name limit of common filesystems once encoded
  as UTF-8, and is valid UTF-8 at all (no lone surrogates);
* with ``strict_portable=True``, no component is a name Windows refuses (``CON``,
  ``com1.txt``, a trailing dot or space, ``<>:"|?*``).

The functions are pure: they never look at the disk, and return their input
unchanged when it is safe, raising :class:`~chunksync.errors.UnsafePathError` with a
one-line reason otherwise.
"""

from __future__ import annotations

import re

from .errors import UnsafePathError

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_SYMLINK_TARGET",
    "STATE_DIR",
    "portability_problem",
    "validate_relpath",
    "validate_symlink_target",
    "validate_tree_entry_name",
]

STATE_DIR = ".chunksync"
MAX_NAME_BYTES = 255
MAX_SYMLINK_TARGET = 4096  # PATH_MAX on Linux; longer targets cannot be created anyway

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*]')
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{i}" for i in "123456789¹²³"]
    + [f"LPT{i}" for i in "123456789¹²³"]
)


def _refuse(path: str, reason: str) -> UnsafePathError:
    return UnsafePathError(f"unsafe path from server {path!r:.120}: {reason}")


def _check_component(name: str, shown: str, *, strict_portable: bool) -> None:
    if not name:
        raise _refuse(shown, "empty path component")
    if name in (".", ".."):
        raise _refuse(shown, f"{name!r} component")
    if "/" in name:
        raise _refuse(shown, "slash inside a name")
    if "\\" in name:
        raise _refuse(shown, "backslash")
    if _CONTROL.search(name):
        raise _refuse(shown, "NUL or control character")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise _refuse(shown, "not valid UTF-8") from None
    if size > MAX_NAME_BYTES:
        raise _refuse(shown, f"name longer than {MAX_NAME_BYTES} bytes")
    if strict_portable:
        _check_portable(name, shown)


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
    _check_component(name, name, strict_portable=strict_portable)
    _check_not_state(name, name)
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
    if "\\" in path:
        raise _refuse(path, "backslash")
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
