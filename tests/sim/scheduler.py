"""A seed becomes a schedule of steps; running it drives the real engine and checks
every invariant after every step, then lets the faults stop and checks quiescence.

A :class:`Step` carries its own sub-seed, so a schedule with steps removed (shrinking)
still runs, each remaining step making the same kind of choice it made before.
"""

from __future__ import annotations

import contextlib
import os
import random
import traceback
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from chunksync.errors import ChunksyncError
from tests.helpers.devices import tree_of

from .edits import Editor
from .faults import DeviceCrash, scan_writer
from .history import Flat, History, disk_tree
from .hostile import MODES, HostileView, foreign_commit
from .invariants import (
    SyncObservation,
    Violation,
    check_acks,
    check_converged,
    check_honest,
    check_resurrection,
    check_sync,
    must_refuse,
)
from .trace import Trace, tree_digest
from .world import YEAR_NS, SimDevice, World, scratch_root, virtual_time

KINDS = (
    "edit",
    "sync",
    "faulty",
    "device_crash",
    "server_crash",
    "writer",
    "partition",
    "hostile",
    "skew",
)
WEIGHTS = (40, 20, 12, 5, 4, 4, 3, 10, 2)
SKEWS = (0, 0, -10 * YEAR_NS, YEAR_NS, -3600 * 10**9, 90 * 10**9)
QUIET_PASSES = 6
TARGETS = ("cas_head", "cas_head", "get_head", "put_many", "get_many")  # faults by method
HONEST_FAULTS = ("drop_request", "drop_answer", "duplicate", "stale_head")


@dataclass(frozen=True, slots=True)
class Step:
    kind: str
    device: int
    seed: int

    def __str__(self) -> str:
        return f"{self.kind}:d{self.device}:{self.seed}"


def make_schedule(seed: int, steps: int, devices: int) -> list[Step]:
    rng = random.Random(seed)
    return [
        Step(rng.choices(KINDS, WEIGHTS)[0], rng.randrange(devices), rng.getrandbits(32))
        for _ in range(steps)
    ]


@dataclass
class RunResult:
    trace: Trace
    violation: Violation | None
    failed_at: int | None  # step index, or len(schedule) for quiescence
    steps: int


class Simulation:
    def __init__(self, seed: int, devices: int) -> None:
        rng = random.Random(seed ^ 0x5EED)
        self.world = World(scratch_root(), devices, [rng.choice(SKEWS) for _ in range(devices)])
        self.history = History(self.world.store, self.world.keys)
        self.editor = Editor(self.world)
        self.trace = Trace()
        self.seen: dict[str, Flat] = {}
        self.acks: set[str] = set()
        self.lies: list[str] = []
        foreign_id, foreign_blob = foreign_commit(self.world.other_keys)
        self.foreign = (foreign_id, foreign_blob)
        self.foreign_hex = foreign_id.hex()

    def disk(self, device: SimDevice) -> Flat:
        """The device's folder now (and remembered: only edits and syncs change it)."""
        self.seen[device.name] = view = disk_tree(str(device.root))
        return view

    def known_disk(self, device: SimDevice) -> Flat:
        return self.seen[device.name] if device.name in self.seen else self.disk(device)

    # --- one sync, observed ------------------------------------------------------------
    async def sync(
        self,
        device: SimDevice,
        rng: random.Random,
        *,
        faults: dict[int | str, str] | None = None,
        hostile: str | None = None,
        accept: bool = False,
        mass_ok: bool = True,
    ) -> SyncObservation:
        obs = SyncObservation(device, self.known_disk(device), device.base(), accept, hostile)
        view = None
        if hostile is not None:
            seq = int(device.index.get_meta("base_server_seq") or b"0")
            view = HostileView(
                self.world.store,
                hostile,
                rng,
                accepted_server_seq=seq,
                lies=self.lies,
                foreign=self.foreign,
            )
        device.link.arm(faults, view)
        if faults and "writer" in faults.values():
            device.link.on_writer = lambda: self._slow_write(device, rng, obs)
        hook: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if faults and faults.get("scan") == "writer":

            def grow(path: Path) -> None:
                rel = unicodedata.normalize("NFC", path.relative_to(device.root).as_posix())
                self._append(device, rel, path, rng, obs)

            hook = scan_writer(device.root, grow)
        try:
            with hook:
                obs.result = await device.engine().sync(
                    allow_mass_delete=mass_ok, accept_server_history=accept
                )
        except DeviceCrash:
            obs.error = "DeviceCrash"
            device.reopen()
        except ChunksyncError as exc:
            obs.error = type(exc).__name__
            obs.message = str(exc).split(";")[0][:90]
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            detail = (
                f"{''.join(traceback.format_exception_only(exc)).strip()} "
                f"at {Path(where.filename).name}:{where.lineno}"
            )
            raise Violation("internal-error", f"{device.name}: {detail}") from exc
        finally:
            shown = device.link.heads_shown
            device.link.disarm()
        obs.shown, obs.asked = (shown[0] if shown else None), bool(shown)
        obs.after = self.disk(device)
        obs.base_after = device.base()
        self.history.update()
        check_sync(obs, self.history, self.world.written, self.foreign_hex)
        self._bookkeep(obs, hostile)
        return obs

    def _slow_write(self, device: SimDevice, rng: random.Random, obs: SyncObservation) -> None:
        target = self._writer_target(device, rng)
        if target is not None:
            self._append(device, *target, rng, obs)

    def _writer_target(self, device: SimDevice, rng: random.Random) -> tuple[str, Path] | None:
        files = sorted(p for p, d in self.disk(device).items() if d[0] == "file")
        if not files:
            return None
        rel = rng.choice(files)
        path = next((device.root / p for p in _raw_paths(device, rel)), None)
        return None if path is None else (rel, path)

    def _append(
        self, device: SimDevice, rel: str, path: Path, rng: random.Random, obs: SyncObservation
    ) -> None:
        """The slow writer's write: the file grows (and gets a new mtime)."""
        old = path.read_bytes()
        new = old + self.editor.content(device, rng)[:50]
        self.world.written.add(new)
        with open(path, "ab") as out:
            out.write(new[len(old) :])
        stamp = self.world.next_mtime()
        os.utime(path, ns=(stamp, stamp))
        obs.overwritten.add(old)
        obs.added.add(new)
        obs.writer_paths.add(rel)
        device.touched.add(rel)

    def _bookkeep(self, obs: SyncObservation, hostile: str | None) -> None:
        result, device = obs.result, obs.device
        if result is None:
            return
        if hostile is None and obs.shown != self.foreign_hex:
            check_resurrection(obs, self.history)
            if result.head is not None and bytes.fromhex(result.head) in self.history.reachable:
                if result.pushed:
                    self.acks.add(result.head)
                device.forked = False
        if hostile == "lie_cas" and result.pushed and result.head:
            self.lies.append(result.head)
            device.forked = True
        if hostile == "fork" and obs.base_after in self.lies:
            device.forked = True
        device.touched.clear()

    def outcome(self, obs: SyncObservation) -> str:
        if obs.error:
            return f"{obs.error} ({obs.message})" if obs.message else obs.error
        r = obs.result
        assert r is not None
        return (
            f"ok pushed={int(r.pushed)} applied={r.applied} deleted={r.deleted} "
            f"conflicts={len(r.conflicts)} rounds={r.rounds}"
        )

    # --- steps ---------------------------------------------------------------------------
    async def step(self, i: int, step: Step) -> None:
        rng = random.Random(step.seed)
        device = self.world.devices[step.device]
        what = ""
        if step.kind == "edit":
            before = self.known_disk(device)
            what = self.editor.edit(device, rng)
            after = self.disk(device)
            device.touched.update(
                p for p in set(before) | set(after) if before.get(p) != after.get(p)
            )
        elif step.kind == "partition":
            device.link.partitioned = not device.link.partitioned
            what = "partitioned" if device.link.partitioned else "reconnected"
        elif step.kind == "skew":
            device.clock.now += rng.choice((-10 * YEAR_NS, YEAR_NS, -86400 * 10**9))
            what = "clock set"
        else:
            faults: dict[int | str, str] = {}
            hostile = None
            accept = False
            if step.kind == "faulty":
                for _ in range(rng.randint(1, 2)):
                    at = rng.choice((*range(8), *TARGETS))
                    faults[at] = rng.choice(HONEST_FAULTS)
            elif step.kind in ("device_crash", "server_crash"):
                faults[rng.choice((*range(6), *TARGETS))] = step.kind
            elif step.kind == "writer":
                # the file grows during the scan's read of it, or later in the sync
                faults["scan" if rng.random() < 0.5 else rng.randrange(1, 6)] = "writer"
            elif step.kind == "hostile":
                hostile = rng.choice(MODES)
            elif device.forked and rng.random() < 0.4:
                accept = True  # the user, told of the fork, merges with the server's history
            partitioned = device.link.partitioned
            obs = await self.sync(
                device,
                rng,
                faults=faults,
                hostile=hostile,
                accept=accept,
                mass_ok=rng.random() < 0.9,
            )
            if step.kind == "sync":
                check_honest(obs, partitioned, must_refuse(obs, self.history, self.foreign_hex))
            what = f"{hostile or ''}{' accept' if accept else ''} -> {self.outcome(obs)}"
        check_acks(self.acks, self.history)
        head = self.world.store._head
        self.trace.add(
            f"{i:04d} {step} {what} seq={head.seq} head={(head.head or '-')[:12]} "
            f"disk={tree_digest(self.known_disk(device))}"
        )

    async def quiesce(self, rng: random.Random) -> None:
        """Faults stop; the user fixes twins and answers refusals; everyone syncs."""
        store = self.world.store
        for device in self.world.devices:
            device.link.partitioned = False
            self.editor.fix_twins(device)
        moved_at = -1  # the last pass in which the head moved
        for pass_no in range(QUIET_PASSES):
            changed = False
            seq = store._head.seq
            traffic: dict[str, dict[str, int]] = {}
            for device in self.world.devices:
                before = dict(device.link.total)
                head, base = store._head.head, device.base()
                if base is not None and (head is None or not self.history.descends(head, base)):
                    # its base is not in the server's history (a lie): the device
                    # refuses, and the user merges with the server's history
                    obs = await self.sync(device, rng, accept=True)
                    self.trace.add(f"quiesce {pass_no} {device.name} accept -> {self.outcome(obs)}")
                obs = await self.sync(device, rng)
                self.trace.add(f"quiesce {pass_no} {device.name} -> {self.outcome(obs)}")
                if obs.error:
                    raise Violation(
                        "termination", f"{device.name} failed at quiescence: {obs.error}"
                    )
                changed |= obs.result is not None and obs.result.changed
                traffic[device.name] = {
                    m: n - before.get(m, 0)
                    for m, n in device.link.total.items()
                    if n != before.get(m, 0) and m != "get_head"
                }
            if store._head.seq != seq:
                moved_at = pass_no
            # steady: nothing changed, and the head stood still since the pass before,
            # so nobody had a new head to fetch
            if not changed and moved_at < pass_no - 1:
                break
        else:
            raise Violation("termination", f"still changing after {QUIET_PASSES} passes")
        head = self.history.head_flat()
        check_converged(self.world.devices, [self.known_disk(d) for d in self.world.devices], head)
        # the pass that changed nothing is the steady state: it may only ask for the head
        noisy = {name: calls for name, calls in traffic.items() if calls}
        if noisy:
            raise Violation("traffic", f"calls besides get_head at steady state: {noisy}")
        self.trace.add(f"quiet head seq={store._head.seq} tree={tree_digest(head)}")


def _raw_paths(device: SimDevice, nfc_path: str) -> list[str]:
    """On-disk spellings of an NFC path (the disk may hold NFD names)."""
    return sorted(
        p for p in tree_of(device.root, mtimes=False) if unicodedata.normalize("NFC", p) == nfc_path
    )


async def run_schedule(seed: int, schedule: list[Step], devices: int) -> RunResult:
    sim = Simulation(seed, devices)
    with virtual_time():
        return await _run(sim, seed, schedule)


async def _run(sim: Simulation, seed: int, schedule: list[Step]) -> RunResult:
    i = 0
    try:
        for i, step in enumerate(schedule):
            await sim.step(i, step)
        i = len(schedule)
        await sim.quiesce(random.Random(seed))
    except Violation as violation:
        sim.trace.add(f"{i:04d} VIOLATION {violation}")
        return RunResult(sim.trace, violation, i, len(schedule))
    finally:
        sim.world.close()
    return RunResult(sim.trace, None, None, len(schedule))
