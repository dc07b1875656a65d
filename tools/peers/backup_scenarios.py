"""The one-shot scenarios: initial, incremental, no-change, restore, join, peak RSS.

Each repetition starts from fresh state: a new chunksync folder (new key) on the suite's
server and a new restic repository, each holding its own copy of the corpus, warm in the
page cache. Within a repetition chunksync and its peers run back to back on the same
data, and the order flips every repetition (chunksync first on even ones, the peers first
on odd ones), so a drift in the machine's load does not always favour the same side.

Set-up is never timed: ``chunksync init`` runs on an empty directory and the corpus is
then moved in (a rename), so the timed first ``sync`` is the upload alone, as restic's
``backup`` into a freshly initialised repository is.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.corpus import make_small_tree

from . import rsync
from .chunksync_runner import ChunksyncWorld
from .corpus import apply_edits, copy_tree, tree_digest
from .measure import Run
from .report import Row, Target
from .restic import Restic

__all__ = ["Series", "backup_rows", "many_files_row", "run_backup_scenarios"]

MiB = 1 << 20


@dataclass
class Series:
    """Paired figures, filled in one repetition at a time."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        self.values.setdefault(key, []).append(value)

    def get(self, key: str) -> tuple[float, ...]:
        return tuple(self.values.get(key, ()))


def _alternate(rep: int, ours: Callable[[], None], *peers: Callable[[], None]) -> None:
    steps = [ours, *peers] if rep % 2 == 0 else [*peers, ours]
    for step in steps:
        step()


def _move_into(src: Path, dst: Path) -> None:
    for child in src.iterdir():
        child.rename(dst / child.name)
    src.rmdir()


def _one_rep(
    world: ChunksyncWorld, corpus: Path, work: Path, rep: int, s: Series, log: Callable[[str], None]
) -> None:
    dev, folder = f"dev{rep}", f"bench{rep}"
    ours = world.init(dev, folder)
    staging, theirs, mirror = work / "staging", work / "restic-tree", work / "rsync-mirror"
    for path in (staging, theirs, mirror):
        shutil.rmtree(path, ignore_errors=True)
    copy_tree(corpus, staging)
    _move_into(staging, ours)
    copy_tree(corpus, theirs)
    restic = Restic(work / "restic")
    restic.init()

    heads: list[str] = []

    def cs_sync(key: str, changed: bool) -> None:
        r = world.sync(dev)
        if r.changed != changed:
            raise RuntimeError(f"chunksync {key}: expected changed={changed}, got {r.doc}")
        s.add(f"cs.{key}", r.seconds)
        s.add(f"cs.{key}.rss", r.proc.max_rss / MiB)
        s.add(f"cs.{key}.bytes", r.uploaded_bytes / 1e6)
        heads.append(r.head)

    def rs_backup(key: str) -> None:
        proc, summary = restic.backup(theirs)
        s.add(f"restic.{key}", proc.seconds)
        s.add(f"restic.{key}.rss", proc.max_rss / MiB)
        s.add(f"restic.{key}.bytes", summary.get("data_added", 0) / 1e6)

    def rsync_run(key: str) -> None:
        proc = rsync.mirror(theirs, mirror)
        s.add(f"rsync.{key}", proc.seconds)
        s.add(f"rsync.{key}.bytes", rsync.bytes_sent(proc) / 1e6)

    _alternate(rep, lambda: cs_sync("initial", True), lambda: rs_backup("initial"))
    rsync.mirror(theirs, mirror)  # the delta peer's starting point, untimed
    log(
        f"  rep {rep}: initial chunksync {s.get('cs.initial')[-1]:.2f} s, "
        f"restic {s.get('restic.initial')[-1]:.2f} s"
    )

    apply_edits(ours, rep)
    apply_edits(theirs, rep)
    _alternate(
        rep,
        lambda: cs_sync("incremental", True),
        lambda: rs_backup("incremental"),
        lambda: rsync_run("incremental"),
    )
    _alternate(
        rep,
        lambda: cs_sync("nochange", False),
        lambda: rs_backup("nochange"),
        lambda: rsync_run("nochange"),
    )

    out_cs, out_rs = work / "restore-chunksync", work / "restore-restic"

    def record(key: str, proc: Run) -> None:
        s.add(key, proc.seconds)
        s.add(f"{key}.rss", proc.max_rss / MiB)

    _alternate(
        rep,
        lambda: record("cs.restore", world.restore(dev, out_cs, heads[-1])),
        lambda: record("restic.restore", restic.restore(out_rs)),
    )
    want = tree_digest(ours)
    if tree_digest(out_cs) != want:
        raise RuntimeError(f"chunksync restore of rep {rep} differs from the folder")
    shutil.rmtree(out_cs)
    joiner = f"join{rep}"
    _alternate(
        rep,
        lambda: record("cs.join", world.join(joiner, folder)),
        lambda: record("restic.restore2", restic.restore(out_rs)),
    )
    if tree_digest(world.folder(joiner)) != want:
        raise RuntimeError(f"chunksync join of rep {rep} differs from the folder")
    log(
        f"  rep {rep}: restore chunksync {s.get('cs.restore')[-1]:.2f} s, join "
        f"{s.get('cs.join')[-1]:.2f} s, restic restore {s.get('restic.restore')[-1]:.2f} s"
    )
    for path in (theirs, mirror, out_rs, work / "restic", ours, world.folder(joiner)):
        shutil.rmtree(path, ignore_errors=True)


def run_backup_scenarios(
    corpus: Path, work: Path, reps: int, log: Callable[[str], None] = print
) -> Series:
    """``reps`` repetitions of the whole one-shot sequence; the raw paired figures."""
    series = Series()
    with ChunksyncWorld(work / "chunksync") as world:
        for rep in range(reps):
            _one_rep(world, corpus, work, rep, series, log)
    shutil.rmtree(work, ignore_errors=True)  # the server's data and the devices' homes
    return series


def backup_rows(s: Series) -> list[Row]:
    """The table rows of the one-shot scenarios, with issue 12's targets beside them."""

    def row(scenario: str, unit: str, ours: str, peer: str, theirs: str, *targets: Target) -> Row:
        return Row(scenario, unit, s.get(ours), peer, s.get(theirs), targets)  # type: ignore[arg-type]

    ratio = lambda bound: Target("ratio", bound)
    return [
        row(
            "initial sync vs backup to a local repo",
            "s",
            "cs.initial",
            "restic",
            "restic.initial",
            ratio(0.8),
        ),
        row(
            "client peak RSS, initial",
            "MiB",
            "cs.initial.rss",
            "restic",
            "restic.initial.rss",
            ratio(1.0),
        ),
        row(
            "incremental after small edits",
            "s",
            "cs.incremental",
            "restic",
            "restic.incremental",
            ratio(0.5),
        ),
        row(
            "incremental after small edits",
            "s",
            "cs.incremental",
            "rsync delta",
            "rsync.incremental",
        ),
        row(
            "incremental, bytes sent",
            "MB",
            "cs.incremental.bytes",
            "rsync delta",
            "rsync.incremental.bytes",
            ratio(1.0),
        ),
        row(
            "incremental, bytes added",
            "MB",
            "cs.incremental.bytes",
            "restic",
            "restic.incremental.bytes",
        ),
        row(
            "no-change sync (whole process)",
            "s",
            "cs.nochange",
            "restic",
            "restic.nochange",
            ratio(0.25),
        ),
        row("no-change sync (whole process)", "s", "cs.nochange", "rsync", "rsync.nochange"),
        row(
            "restore (whole tree, new directory)",
            "s",
            "cs.restore",
            "restic restore",
            "restic.restore",
            ratio(1.0),
        ),
        row("second device join", "s", "cs.join", "restic restore", "restic.restore2", ratio(1.0)),
        row("client peak RSS, join", "MiB", "cs.join.rss", "restic restore", "restic.restore2.rss"),
    ]


def many_files_row(work: Path, files: int, reps: int, log: Callable[[str], None] = print) -> Row:
    """A no-change ``chunksync sync`` of ``files`` tiny files (absolute target: < 1 s)."""
    with ChunksyncWorld(work / "many") as world:
        root = world.init("many", "many")
        make_small_tree(root / "tree", files, per_dir=50, seed=7)
        world.sync("many")
        times = []
        for _ in range(reps):
            r = world.sync("many")
            if r.changed:
                raise RuntimeError(f"no-change sync of {files} files changed something: {r.doc}")
            times.append(r.seconds)
        log(f"  {files}-file no-change: {', '.join(f'{t:.2f}' for t in times)} s")
    shutil.rmtree(work / "many", ignore_errors=True)
    return Row(
        f"{files:,}-file no-change sync",
        "s",
        tuple(times),
        targets=(Target("median", 1.0, strict=True),),
    )
