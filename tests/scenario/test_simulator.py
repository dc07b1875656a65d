"""The deterministic simulator (tests/sim, docs/reliability.md) in CI.

* 500 seeded schedules of 50 steps, three devices each, every invariant holding;
* a seed replays byte for byte (the trace hash of two runs is equal);
* the simulator is not toothless: deliberately broken merge rules (an edit lost to
  the server's version, a deletion undone) and a disabled ancestry check are each
  caught within a few seeds, and a failure shrinks to a
  shorter schedule that still fails and prints a one-line replay command.
"""

from __future__ import annotations

import pytest

from chunksync.conflict import Verdict, classify
from tests.sim.runner import replay_command, run_seeds
from tests.sim.scheduler import make_schedule, run_schedule

CHUNKS = 10
PER_CHUNK = 50  # 10 x 50 = 500 schedules
STEPS = 50
DEVICES = 3


@pytest.mark.parametrize("chunk", range(CHUNKS))
async def test_schedules_hold_every_invariant(chunk: int) -> None:
    seeds = range(chunk * PER_CHUNK, (chunk + 1) * PER_CHUNK)
    report = await run_seeds(seeds, STEPS, DEVICES, do_shrink=False)
    assert report.seed is None, (
        f"{report.summary()}\nreplay: {replay_command(report.seed, STEPS, DEVICES)}\n"
        f"{report.result.trace.text() if report.result else ''}"
    )
    assert report.schedules == PER_CHUNK and report.steps == PER_CHUNK * STEPS


async def test_a_seed_replays_byte_for_byte() -> None:
    for seed in (3, 41):
        first = await run_schedule(seed, make_schedule(seed, STEPS, DEVICES), DEVICES)
        second = await run_schedule(seed, make_schedule(seed, STEPS, DEVICES), DEVICES)
        assert first.trace.lines == second.trace.lines
        assert first.trace.digest() == second.trace.digest()
    other = await run_schedule(4, make_schedule(4, STEPS, DEVICES), DEVICES)
    assert other.trace.digest() != first.trace.digest()


def _theirs_wins(base, mine, theirs) -> Verdict:  # type: ignore[no-untyped-def]
    """A broken rule: both sides edited a file, the server's version silently wins."""
    verdict = classify(base, mine, theirs)
    if verdict.conflict == "both-modified":
        return Verdict(verdict.mine, verdict.theirs, "take-theirs")
    return verdict


async def _first_failure(seeds: range):  # type: ignore[no-untyped-def]
    report = await run_seeds(seeds, STEPS, DEVICES, do_shrink=True)
    assert report.seed is not None, "the simulator did not notice the planted bug"
    assert report.result is not None and report.result.violation is not None
    assert report.shrunk is not None and report.shrunk.result.violation is not None
    assert len(report.shrunk.indices) <= report.result.failed_at + 1  # type: ignore[operator]
    assert "tools/simulate.py --seeds" in replay_command(
        report.seed, STEPS, DEVICES, report.shrunk.indices
    )
    return report


async def test_a_broken_merge_rule_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chunksync.sync.plan.classify", _theirs_wins)
    report = await _first_failure(range(60))
    assert report.result.violation.invariant in ("lost", "conflict-version")
    assert report.shrunk.result.violation.invariant == report.result.violation.invariant


def _deletions_ignored(base, mine, theirs) -> Verdict:  # type: ignore[no-untyped-def]
    """A broken rule: a file the server deleted, unchanged here, is kept (and pushed back)."""
    verdict = classify(base, mine, theirs)
    if verdict.mine == "unchanged" and verdict.theirs == "deleted" and mine and mine.kind == "file":
        return Verdict(verdict.mine, verdict.theirs, "take-mine")
    return verdict


async def test_a_merge_rule_that_resurrects_deletions_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("chunksync.sync.plan.classify", _deletions_ignored)
    report = await _first_failure(range(60))
    assert report.result.violation.invariant == "resurrected"


async def test_a_disabled_ancestry_check_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    async def trust_anything(*_args: object, **_kw: object) -> None:
        return None

    monkeypatch.setattr("chunksync.sync.engine.verify_descent", trust_anything)
    report = await _first_failure(range(60))
    assert report.result.violation.invariant == "hostile-change"


async def test_regression_seed_1703_a_lost_push_answer_then_a_refused_push_keeps_its_base() -> None:
    """Seed 1703 (before the fix): a push whose answer was lost, then a second push the
    compare-and-swap refused, overwrote the first intent; the next merge used the old
    base and pushed back a file another device had deleted (sync/intent.py keeps every
    unresolved intent)."""
    report = await run_seeds(range(1703, 1704), STEPS, DEVICES, do_shrink=False)
    assert report.seed is None, report.summary()


async def test_schedules_with_mergeable_edits_hold_every_invariant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Edits at both ends of one file merge automatically; every merge is recomputed
    by the ``merge`` invariant, and all the others still hold."""
    from chunksync.sync import engine
    from tests.sim.edits import Editor

    monkeypatch.setattr(Editor, "mergeable", True)
    merges = 0
    original = engine.SyncEngine.sync

    async def counting(self, **kw):  # type: ignore[no-untyped-def]
        nonlocal merges
        result = await original(self, **kw)
        merges += len(result.merges)
        return result

    monkeypatch.setattr(engine.SyncEngine, "sync", counting)
    report = await run_seeds(range(40), STEPS, DEVICES, do_shrink=False)
    assert report.seed is None, (
        f"{report.summary()}\n{report.result.trace.text() if report.result else ''}"
    )
    assert merges > 0, "no schedule merged a file: the edits never met"
