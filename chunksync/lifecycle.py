"""Client side of the storage lifecycle: forget, prune (the mark) and purge.

* **forget** picks snapshots with a :mod:`.retention` policy and asks the server to
  forget them. A forgotten snapshot keeps its head-log row and its commit object, so
  the history every device verifies (:mod:`.sync.lineage`) is still one unbroken chain:
  nothing looks rolled back or hidden. Only what it alone reached (trees, manifests,
  chunks) goes, at the next prune.
* **prune** is the mark: this device (a key holder) walks every kept snapshot through
  :func:`.reachability.closure` and sends the live ids; the server deletes the rest of
  what it held when the prune began and compacts (chunksync_server/lifecycle.py). If
  the head moved meanwhile the new snapshots are marked too and the sweep asked again.
* **purge** removes paths from history: a new head without them, every other snapshot
  that holds them forgotten (even one a device bases on), then a prune that also
  rewrites every pack with dead bytes, so their ciphertext leaves the server's disk.

All three need a maintenance token (:func:`reauth`): the owner's password, and a TOTP
code when enrolled.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import wire
from .errors import AuthError, ProtocolError, RefConflict, UserError
from .folder import SyncFolder
from .history import Snapshot, list_snapshots
from .objects import Commit, ObjectId, ObjectKind, Tree, id_from_hex, short_id
from .paths import validate_relpath
from .reachability import closure
from .retention import Decision, Policy, Stamped, decide
from .sync.objects_io import ObjectReader
from .sync.push import Uploader
from .transport.http import HttpClient

__all__ = [
    "LifecycleState",
    "apply_stored_policy",
    "forget",
    "lifecycle_state",
    "plan_forget",
    "prune",
    "purge",
    "reauth",
]

LIVE_PAGE = 50_000  # ids per "live" request (well under the 8 MiB JSON cap)
SWEEP_TRIES = 5  # head moves tolerated during one prune before giving up


@dataclass(frozen=True, slots=True)
class LifecycleState:
    policy: Policy | None
    protected: dict[str, str]  # snapshot -> why forget keeps it
    forgotten: frozenset[str]
    last_prune: dict[str, Any] | None

    @classmethod
    def from_wire(cls, doc: Any) -> LifecycleState:
        try:
            policy = Policy.from_json(doc["policy"]) if doc.get("policy") else None
            protected = {str(k): str(v) for k, v in dict(doc["protected"]).items()}
            forgotten = frozenset(str(h) for h in doc["forgotten"])
        except (KeyError, TypeError, ValueError, UserError) as exc:
            raise ProtocolError("lifecycle: malformed answer from the server") from exc
        if not all(wire.HEX_ID.match(h) for h in [*protected, *forgotten]):
            raise ProtocolError("lifecycle: malformed snapshot id from the server")
        last = doc.get("last_prune")
        return cls(policy, protected, forgotten, last if isinstance(last, dict) else None)


def _path(route: str, folder: SyncFolder, **kw: str) -> str:
    return route.format(folder=folder.config.folder, **kw)


async def reauth(client: HttpClient, password: str, totp: str | None) -> str:
    """A short-lived maintenance token for this device (POST /v1/reauth)."""
    body: dict[str, str] = {"password": password}
    if totp:
        body["totp"] = totp
    doc = await client.request_json("POST", wire.REAUTH, json=body)
    token = doc.get("token") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token or len(token) > 512 or not token.isascii():
        raise ProtocolError("reauth: malformed token")
    return token


def maintenance_client(folder: SyncFolder, token: str) -> HttpClient:
    return HttpClient(folder.client.base_url, token, ca_file=folder.client._ca_file)


async def lifecycle_state(client: HttpClient, folder: SyncFolder) -> LifecycleState:
    return LifecycleState.from_wire(await client.request_json("GET", _path(wire.LIFECYCLE, folder)))


def plan_forget(
    snapshots: Sequence[Snapshot], state: LifecycleState, policy: Policy, own_base: str | None
) -> Decision:
    protected = dict(state.protected)
    if own_base:
        protected.setdefault(own_base, "this device's base")
    live = [Stamped(s.id, s.time) for s in snapshots if s.id not in state.forgotten]
    return decide(policy, live, protected)


async def apply_stored_policy(client: HttpClient, folder: str) -> int | None:
    """Forget what the folder's stored policy says (the owner's daemon, device token);
    None when the folder has no policy or this user is not its owner."""
    try:
        doc = await client.request_json("POST", wire.FORGET_POLICY.format(folder=folder), json={})
    except (RefConflict, AuthError):
        return None
    count = doc.get("forgotten") if isinstance(doc, dict) else None
    return count if isinstance(count, int) else 0


async def forget(
    api: HttpClient, folder: SyncFolder, heads: Sequence[str], reason: str = "forget"
) -> int:
    if not heads:
        return 0
    doc = await api.request_json(
        "POST", _path(wire.FORGET, folder), json={"snapshots": list(heads), "reason": reason}
    )
    return int(doc.get("forgotten", 0)) if isinstance(doc, dict) else 0


async def _live_ids(
    reader: ObjectReader, snapshots: Sequence[Snapshot], forgotten: frozenset[str]
) -> set[ObjectId]:
    """Every commit (the verified history stays whole) plus what kept snapshots reach:
    their trees, and the trees of side commits they name (last-write-wins losers)."""
    on_timeline = {id_from_hex(s.id) for s in snapshots}
    roots: list[tuple[ObjectKind, ObjectId]] = []
    commits: set[ObjectId] = set(on_timeline)
    side: list[ObjectId] = []
    for snap in snapshots:
        extra = [p for p in snap.commit.parents[1:] if p not in on_timeline]
        commits.update(extra)
        if snap.id not in forgotten:
            roots.append((ObjectKind.TREE, snap.commit.tree))
            side.extend(extra)
    await reader.ensure(ObjectKind.COMMIT, side)
    roots.extend((ObjectKind.TREE, reader.load_commit(c).tree) for c in side)
    return commits | await closure(reader, roots)


async def prune(api: HttpClient, folder: SyncFolder, *, purge: bool = False) -> dict[str, Any]:
    """Mark what the kept snapshots need, then let the server sweep the rest."""
    start = await api.request_json("POST", _path(wire.PRUNE, folder), json={})
    prune_id = start.get("prune") if isinstance(start, dict) else None
    if not isinstance(prune_id, str) or not wire.PRUNE_ID.match(prune_id):
        raise ProtocolError("prune: malformed answer from the server")
    reader = ObjectReader(folder.keys, folder.index, folder.store)
    sent: set[ObjectId] = set()
    for _ in range(SWEEP_TRIES):
        state = await lifecycle_state(api, folder)
        snapshots = await list_snapshots(reader)
        live = await _live_ids(reader, snapshots, state.forgotten)
        fresh = sorted(live - sent)
        for i in range(0, len(fresh), LIVE_PAGE):
            page = [oid.hex() for oid in fresh[i : i + LIVE_PAGE]]
            await api.request_json(
                "POST", _path(wire.PRUNE_LIVE, folder, prune=prune_id), json={"ids": page}
            )
        sent.update(fresh)
        head = snapshots[-1].id if snapshots else None
        try:
            done = await api.request_json(
                "POST",
                _path(wire.PRUNE_SWEEP, folder, prune=prune_id),
                json={"head": head, "purge": purge},
            )
        except RefConflict:
            continue  # the head moved since this mark: mark the new snapshots too
        if not isinstance(done, dict):
            raise ProtocolError("prune: malformed answer from the server")
        return {**done, "live": len(sent), "snapshots": len(snapshots)}
    raise UserError("the folder's head kept moving during the prune; try again later")


def _without(reader: ObjectReader, root: ObjectId, path: str) -> ObjectId:
    """The id of tree ``root`` with ``path`` removed (new trees kept in the reader)."""
    name, _, rest = path.partition("/")
    tree = reader.load_tree(root)
    entry = tree.get(name)
    if entry is None:
        return root
    if not rest:
        return reader.store_tree(Tree.of([e for e in tree.entries if e.name != name]))
    if entry.kind != "dir" or entry.id is None:
        return root
    child = _without(reader, entry.id, rest)
    if child == entry.id:
        return root
    entries = [replace(e, id=child) if e.name == name else e for e in tree.entries]
    return reader.store_tree(Tree.of(entries))


def _holds(reader: ObjectReader, root: ObjectId, paths: Sequence[str]) -> bool:
    return any(_without(reader, root, p) != root for p in paths)


async def _new_head_without(
    folder: SyncFolder, reader: ObjectReader, paths: Sequence[str]
) -> str | None:
    """Move the head to a commit without ``paths``; returns it (None if none held them)."""
    state = await folder.store.get_head()
    if state.head is None:
        return None
    head_id = id_from_hex(state.head)
    commit = await reader.commit(head_id)
    await reader.ensure_tree_closure(commit.tree)
    tree = commit.tree
    for path in paths:
        tree = _without(reader, tree, path)
    if tree == commit.tree:
        return None
    new_trees = [oid for oid, (kind, _) in reader.pending.items() if kind == ObjectKind.TREE]
    uploader = Uploader(folder.paths.root, folder.keys, folder.index, reader, folder.store)
    uploader.trust_known = False
    missing = await folder.store.missing(new_trees)
    await uploader.put_metadata(ObjectKind.TREE, sorted(missing))
    purged = Commit(
        tree=tree,
        parents=(head_id,),
        seq=commit.seq + 1,
        device=folder.config.device_name,
        author=folder.config.user,
        time_ns=time.time_ns(),
        summary={"removed": len(paths)},
        message="purge",
    )
    encoded = purged.encode()
    purged_id = folder.keys.meta_id(encoded)
    await uploader.put_object(ObjectKind.COMMIT, purged_id, encoded)
    await folder.store.cas_head(state.head, purged_id.hex())
    return purged_id.hex()


async def purge(api: HttpClient, folder: SyncFolder, paths: Sequence[str]) -> dict[str, Any]:
    """Take ``paths`` out of every snapshot's reach, then prune them off the disk."""
    wanted = [validate_relpath(p.strip("/")) for p in paths]
    if not wanted:
        raise UserError("name at least one PATH to purge")
    reader = ObjectReader(folder.keys, folder.index, folder.store)
    new_head = await _new_head_without(folder, reader, wanted)
    state = await lifecycle_state(api, folder)
    doomed: list[str] = []
    for snap in await list_snapshots(reader):
        if snap.id in state.forgotten or snap.id == new_head:
            continue
        await reader.ensure_tree_closure(snap.commit.tree)
        if _holds(reader, snap.commit.tree, wanted):
            doomed.append(snap.id)
    forgotten = await forget(api, folder, doomed, reason="purge")
    result = await prune(api, folder, purge=True)
    return {
        **result,
        "head": new_head,
        "purged_snapshots": forgotten,
        "paths": list(wanted),
        "note": f"new head {short_id(new_head)}" if new_head else "",
    }
