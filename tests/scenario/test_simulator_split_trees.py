"""The simulator's schedules with every listing over 200 bytes split into parts.

The simulator's directories are small, so at the real thresholds (8 KiB) nothing is
split. With tiny ones about one listing in ten is stored in parts, and every merge,
conflict, deletion, heal and hostile-server step of the schedules still holds every
invariant: the split form is exercised by the whole engine, not only by unit tests.
"""

from __future__ import annotations

import pytest

import chunksync.treeparts
from tests.sim.runner import replay_command, run_seeds

SEEDS = range(1000, 1020)
STEPS = 50
DEVICES = 3

pytestmark = pytest.mark.scenario


async def test_schedules_hold_every_invariant_with_split_listings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chunksync.treeparts, "SPLIT_BYTES", 200)
    monkeypatch.setattr(chunksync.treeparts, "PART_MIN_BYTES", 60)
    monkeypatch.setattr(chunksync.treeparts, "PART_MAX_BYTES", 200)
    monkeypatch.setattr(chunksync.treeparts, "_CUT_EVERY", 2)
    split = []
    encode = chunksync.treeparts.encode_tree

    def counting(tree, meta_id):  # type: ignore[no-untyped-def]
        stored = encode(tree, meta_id)
        split.append(len(stored.objects) > 1)
        return stored

    for module in ("chunksync.scanner", "chunksync.sync.objects_io", "chunksync.sync.engine"):
        monkeypatch.setattr(f"{module}.encode_tree", counting)
    report = await run_seeds(SEEDS, STEPS, DEVICES, do_shrink=False)
    assert report.seed is None, (
        f"{report.summary()}\nreplay: {replay_command(report.seed, STEPS, DEVICES)}\n"
        f"{report.result.trace.text() if report.result else ''}"
    )
    assert sum(split) > 50, "the tiny thresholds split listings"
