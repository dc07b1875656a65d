"""Local edits of every kind, chosen by a seeded generator from the device's disk.

Every content written is unique (a world-wide counter) and recorded in
``world.written``; every mtime the simulation sets comes from a counter too, so a run
does not depend on the wall clock. Kinds: create, modify, append, delete (file, link,
whole directory), rename, move across directories (files and directories), case-only
rename, type changes file↔dir↔symlink, NFC/NFD twins, deep trees, exec-bit flips.
"""

from __future__ import annotations

import os
import random
import shutil
import unicodedata
from pathlib import Path

from .world import SimDevice, World

NAMES = (
    "a.txt",
    "b.txt",
    "notes/c.md",
    "notes/d.md",
    "deep/x/y.bin",
    "e",
    "caf\u00e9.txt",
    "Mixed.TXT",
)
DIRS = ("notes", "deep/x", "moved", "dir0", "dir1/sub")
KINDS = (
    "write",
    "write",
    "write",
    "append",
    "delete",
    "rmtree",
    "rename",
    "move",
    "move_dir",
    "case",
    "file_to_dir",
    "dir_to_file",
    "to_symlink",
    "symlink_to_file",
    "nfd",
    "deep",
    "chmod",
)


def listing(root: Path) -> tuple[list[str], list[str], list[str]]:
    """(files, dirs, symlinks) below root, sorted, without .chunksync."""
    files: list[str] = []
    dirs: list[str] = []
    links: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel
        if rel == "":
            dirnames[:] = [d for d in dirnames if d != ".chunksync"]
        for name in dirnames + filenames:
            path = f"{rel}/{name}" if rel else name
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                links.append(path)
            elif os.path.isdir(full):
                dirs.append(path)
            else:
                files.append(path)
    return sorted(files), sorted(dirs), sorted(links)


class Editor:
    #: half of the appends insert at the start instead, so that two devices' edits of
    #: one file often do not overlap and merge automatically (off by default, so the
    #: recorded seeds keep their schedules; tests/scenario/test_simulator.py turns it on)
    mergeable = False

    def __init__(self, world: World) -> None:
        self.world = world
        self.counter = 0

    def content(self, device: SimDevice, rng: random.Random) -> bytes:
        self.counter += 1
        data = f"{device.name} version {self.counter}\n".encode() * rng.randint(1, 40)
        self.world.written.add(data)
        return data

    def _stamp(self, path: Path) -> None:
        ns = self.world.next_mtime()
        os.utime(path, ns=(ns, ns), follow_symlinks=False)

    def _write(self, root: Path, rel: str, data: bytes) -> str:
        path = root / rel
        for parent in reversed(path.relative_to(root).parents[:-1]):
            if (root / parent).is_symlink() or (root / parent).is_file():
                return "skip (parent not a dir)"
        if path.is_symlink() or path.is_dir():
            return "skip (not a file)"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._stamp(path)
        return f"write {rel}"

    def _free(self, root: Path, rel: str) -> bool:
        return not os.path.lexists(root / rel)

    def edit(self, device: SimDevice, rng: random.Random) -> str:
        """Apply one seeded edit to the device's folder; returns what was done. An edit
        the folder's shape does not allow (a parent that is a file) is skipped, as a
        user's command would fail."""
        try:
            return self._edit(device, rng)
        except OSError as exc:
            return f"skip ({type(exc).__name__})"

    def _edit(self, device: SimDevice, rng: random.Random) -> str:
        root = device.root
        files, dirs, links = listing(root)
        kind = rng.choice(KINDS)
        if kind == "write" or (
            not files
            and kind
            in (
                "append",
                "delete",
                "rename",
                "move",
                "case",
                "file_to_dir",
                "to_symlink",
                "chmod",
                "nfd",
            )
        ):
            return self._write(root, rng.choice(list(NAMES) + files), self.content(device, rng))
        if kind == "append":
            rel = rng.choice(files)
            extra = self.content(device, rng)[:64]
            if self.mergeable and self.counter % 2:  # an edit at the start: mergeable
                data = extra.rstrip(b"\n") + b"\n" + (root / rel).read_bytes()
                self.world.written.add(data)
                (root / rel).write_bytes(data)
                self._stamp(root / rel)
                return f"prepend {rel}"
            self.world.written.add((root / rel).read_bytes() + extra)
            with open(root / rel, "ab") as out:
                out.write(extra)
            self._stamp(root / rel)
            return f"append {rel}"
        if kind == "delete":
            rel = rng.choice(files + links)
            os.unlink(root / rel)
            return f"delete {rel}"
        if kind == "rmtree":
            if not dirs:
                return "skip"
            rel = rng.choice(dirs)
            shutil.rmtree(root / rel)
            return f"rmtree {rel}"
        if kind == "rename":
            src = rng.choice(files)
            dst = f"{src.rpartition('/')[0]}/r{self.counter}-{src.rpartition('/')[2]}".lstrip("/")
            os.rename(root / src, root / dst)
            return f"rename {src} -> {dst}"
        if kind in ("move", "move_dir"):
            pool = files if kind == "move" else dirs
            if not pool:
                return "skip"
            src = rng.choice(pool)
            target = rng.choice(DIRS)
            if kind == "move_dir" and (target + "/").startswith(src + "/"):
                return "skip (into itself)"
            dst = f"{target}/{src.replace('/', '_')}"
            if (
                (root / target).is_symlink()
                or (root / target).is_file()
                or not self._free(root, dst)
            ):
                return "skip"
            (root / target).mkdir(parents=True, exist_ok=True)
            os.rename(root / src, root / dst)
            return f"move {src} -> {dst}"
        if kind == "case":
            src = rng.choice(files + dirs)
            head, _, name = src.rpartition("/")
            dst = f"{head}/{name.swapcase()}".lstrip("/")
            if dst == src or not self._free(root, dst):
                return "skip"
            os.rename(root / src, root / dst)
            return f"case {src} -> {dst}"
        if kind == "file_to_dir":
            rel = rng.choice(files)
            os.unlink(root / rel)
            return (
                self._write(root, f"{rel}/inner.txt", self.content(device, rng)) + " (was a file)"
            )
        if kind == "dir_to_file":
            if not dirs:
                return "skip"
            rel = rng.choice(dirs)
            shutil.rmtree(root / rel)
            return self._write(root, rel, self.content(device, rng)) + " (was a dir)"
        if kind == "to_symlink":
            rel = rng.choice(files)
            os.unlink(root / rel)
            os.symlink(rng.choice(("a.txt", "../e", "notes", "nowhere")), root / rel)
            self._stamp(root / rel)
            return f"symlink {rel}"
        if kind == "symlink_to_file":
            if not links:
                return "skip"
            rel = rng.choice(links)
            os.unlink(root / rel)
            return self._write(root, rel, self.content(device, rng)) + " (was a link)"
        if kind == "nfd":
            rel = rng.choice(files)
            head, _, name = rel.rpartition("/")
            nfd = unicodedata.normalize("NFD", "\u00e9" + name)
            return (
                self._write(root, f"{head}/{nfd}".lstrip("/"), self.content(device, rng)) + " (NFD)"
            )
        if kind == "deep":
            depth = rng.randint(8, 40)
            rel = "/".join(f"l{i}" for i in range(depth)) + "/leaf.txt"
            return self._write(root, rel, self.content(device, rng))
        rel = rng.choice(files)
        mode = (root / rel).stat().st_mode
        os.chmod(root / rel, mode ^ 0o100)
        return f"chmod {rel}"

    def fix_twins(self, device: SimDevice) -> list[str]:
        """What a user does about names that exist twice once NFC-normalized: rename
        the NFD one (the scanner syncs only one of such twins, warning about the other)."""
        fixed = []
        for dirpath, dirnames, filenames in os.walk(device.root):
            if ".chunksync" in Path(dirpath).relative_to(device.root).parts[:1]:
                continue
            names = dirnames + filenames
            nfc = {
                unicodedata.normalize("NFC", n)
                for n in names
                if unicodedata.normalize("NFC", n) == n
            }
            for name in sorted(names):
                if (
                    unicodedata.normalize("NFC", name) != name
                    and unicodedata.normalize("NFC", name) in nfc
                ):
                    os.rename(
                        os.path.join(dirpath, name),
                        os.path.join(dirpath, f"twin-{self.counter}-{len(fixed)}"),
                    )
                    fixed.append(name)
        return fixed
