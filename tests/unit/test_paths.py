"""Path validation: everything a hostile server could send is refused with a reason."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunksync.errors import UnsafePathError
from chunksync.paths import (
    display,
    unwritable_here,
    validate_relpath,
    validate_symlink_target,
    validate_tree_entry_name,
)

pytestmark = pytest.mark.unit

SAFE = [
    "a",
    "a/b/c.txt",
    ".bashrc",
    "dir/.chunksync-notes",
    ".chunksyncignore",
    "résumé/日本語.txt",
    "name with spaces",
    "a:b",  # fine on POSIX; refused only in strict portable mode
    "x" * 255,
    "é" * 127,  # 254 bytes
]

UNSAFE = [
    ("", "empty path"),
    ("/etc/passwd", "absolute"),
    ("../x", "'..'"),
    ("a/../../x", "'..'"),
    ("./a", "'.'"),
    ("a/./b", "'.'"),
    ("a//b", "empty path component"),
    ("a/", "empty path component"),
    ("a\0b", "NUL"),
    (".chunksync", "state directory"),
    (".chunksync/keys", "state directory"),
    (".ChunkSync/x", "state directory"),
    ("dir/.chunksync", "state directory"),
    ("sub/.chunksync/key", "state directory"),
    ("a/b/.CHUNKSYNC/index/data.mdb", "state directory"),
    ("x" * 256, "255 bytes"),
    ("é" * 128, "255 bytes"),
    ("bad\udcffname", "UTF-8"),
]


@pytest.mark.parametrize("path", SAFE)
def test_safe_paths_pass_unchanged(path: str) -> None:
    assert validate_relpath(path) is path


@pytest.mark.parametrize(("path", "reason"), UNSAFE)
def test_unsafe_paths_are_refused_with_a_reason(path: str, reason: str) -> None:
    with pytest.raises(UnsafePathError, match=reason) as info:
        validate_relpath(path)
    assert "\n" not in str(info.value)  # one line, even for a name holding a newline


def test_non_string_is_refused() -> None:
    with pytest.raises(UnsafePathError, match="not a string"):
        validate_relpath(b"a")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("CON", "reserved"),
        ("dir/com1.txt", "reserved"),
        ("LPT9.tar.gz", "reserved"),
        ("nul ", "dot or space"),
        ("a.", "dot or space"),
        ("c:evil", "not allowed on Windows"),
        ('what?"', "not allowed on Windows"),
    ],
)
def test_strict_portable_refuses_windows_names(path: str, reason: str) -> None:
    validate_relpath(path)  # fine on POSIX by default
    with pytest.raises(UnsafePathError, match=reason):
        validate_relpath(path, strict_portable=True)


def test_strict_portable_allows_names_that_only_start_like_devices() -> None:
    for path in ("CONSOLE.txt", "com10", "auxiliary/x", "lpt.txt"):
        assert validate_relpath(path, strict_portable=True) == path


def test_nested_chunksync_from_the_server_is_refused_at_every_depth() -> None:
    """Failure 6: ``sub/.chunksync/key`` in a remote tree used to be written to disk."""
    for name in (".chunksync", ".ChunkSync", ".CHUNKSYNC"):
        for at_root in (True, False):
            with pytest.raises(UnsafePathError, match="state directory"):
                validate_tree_entry_name(name, at_root=at_root)
    for path in ("sub/.chunksync/key", "a/b/.Chunksync", "x/.chunksync/index/data.mdb"):
        with pytest.raises(UnsafePathError, match="state directory"):
            validate_relpath(path)


def test_tree_entry_name() -> None:
    assert validate_tree_entry_name(".chunksyncignore") == ".chunksyncignore"
    for bad in ("", ".", "..", "a/b", "a\0"):
        with pytest.raises(UnsafePathError):
            validate_tree_entry_name(bad)


def test_symlink_target() -> None:
    assert validate_symlink_target("/usr/bin/python3", "l") == "/usr/bin/python3"
    assert validate_symlink_target("../sibling", "l") == "../sibling"
    for bad in ("", "a\0b", "a\nb", "x" * 4097):
        with pytest.raises(UnsafePathError, match="symlink"):
            validate_symlink_target(bad, "l")
    assert validate_symlink_target("x" * 4096, "l")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=4).map("/".join))
def test_anything_accepted_stays_inside_the_folder(path: str) -> None:
    """Property: an accepted path never escapes, never hides a separator or control char."""
    try:
        validate_relpath(path)
    except UnsafePathError:
        return
    parts = path.split("/")
    assert all(p not in ("", ".", "..") for p in parts)
    assert not path.startswith("/") and "\0" not in path
    assert all(p.casefold() != ".chunksync" for p in parts)


@pytest.mark.parametrize("name", ["a\\b", "..\\..\\x", "a\x01b", "a\nb", "a\x7fb", "a\x85b"])
def test_backslash_and_control_names_are_legal_on_posix(name: str) -> None:
    """Failure 8: such names are legal on Linux and macOS, so they sync there (Windows
    devices skip them per entry); outputs show them escaped."""
    assert validate_relpath(name) == name and validate_tree_entry_name(name) == name
    shown = display(name)
    assert shown.isprintable() and "\n" not in shown


def test_names_this_device_cannot_create_are_judged_per_entry() -> None:
    assert unwritable_here("x" * 256) and unwritable_here("\ud800")
    assert unwritable_here("ok.txt") is None
    assert validate_tree_entry_name("x" * 300) == "x" * 300  # not hostile: skipped here
