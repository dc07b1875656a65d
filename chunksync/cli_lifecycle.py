"""``chunksync forget``, ``prune`` and ``purge``: the storage lifecycle commands.

Kept apart from cli.py (over its size); cli.py registers them with
:func:`lifecycle_commands`, handing in its shared pieces, so this module never imports
cli.py. Every deleting step first re-authenticates the owner (password from
``--password-file``, ``CHUNKSYNC_PASSWORD`` or a prompt; ``--totp CODE`` when enrolled)
for a short-lived maintenance token: the device token on disk cannot delete history.
``forget --dry-run`` needs none: it only lists what would go and why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from .objects import short_id
from .output import say
from .retention import Policy

__all__ = ["lifecycle_commands"]

Decorator = Callable[[Any], Any]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _secret_options(fn: Any) -> Any:
    fn = click.option("--totp", help="one-time code, if the account has TOTP enabled")(fn)
    return click.option(
        "--password-file",
        type=click.Path(dir_okay=False),
        help="the account password, re-checked by the server (else CHUNKSYNC_PASSWORD or a prompt)",
    )(fn)


def lifecycle_commands(
    folder_dir: Decorator,
    command_errors: Decorator,
    emit: Callable[[Any, bool, Callable[[], None]], None],
    read_secret: Callable[[str | None, str, str], str],
    run: Callable[[Any], Any],
) -> list[click.Command]:
    """The ``forget``, ``prune`` and ``purge`` commands."""

    async def maintenance(folder: Any, password_file: str | None, totp: str | None) -> Any:
        from .lifecycle import maintenance_client, reauth

        password = read_secret(password_file, "CHUNKSYNC_PASSWORD", "Password")
        return maintenance_client(folder, await reauth(folder.client, password, totp))

    @click.command("forget")
    @folder_dir
    @click.option("--keep-last", type=click.IntRange(0), default=0, metavar="N")
    @click.option("--keep-hourly", type=click.IntRange(0), default=0, metavar="N")
    @click.option("--keep-daily", type=click.IntRange(0), default=0, metavar="N")
    @click.option("--keep-weekly", type=click.IntRange(0), default=0, metavar="N")
    @click.option("--keep-monthly", type=click.IntRange(0), default=0, metavar="N")
    @click.option("--keep-yearly", type=click.IntRange(0), default=0, metavar="N")
    @click.option("--keep-within", metavar="DURATION", help="e.g. 7d, 36h, 1y6m")
    @click.option("--dry-run", is_flag=True, help="only list what would go and why")
    @click.option("--prune", "then_prune", is_flag=True, help="prune right after")
    @click.option(
        "--save-policy", is_flag=True, help="store these --keep options as the folder's policy"
    )
    @click.option(
        "--apply-policy",
        is_flag=True,
        help="apply the folder's stored policy (what the owner's daemon runs; no password)",
    )
    @click.option("--json", "as_json", is_flag=True)
    @_secret_options
    @command_errors
    def forget(
        directory: Path,
        keep_last: int,
        keep_hourly: int,
        keep_daily: int,
        keep_weekly: int,
        keep_monthly: int,
        keep_yearly: int,
        keep_within: str | None,
        dry_run: bool,
        then_prune: bool,
        save_policy: bool,
        apply_policy: bool,
        as_json: bool,
        password_file: str | None,
        totp: str | None,
    ) -> None:
        """Forget snapshots by a retention policy (restic's --keep-* vocabulary).

        The current head and every snapshot a device still bases on are always kept.
        Forgotten snapshots stay in the verified history as entries without data; their
        files' space comes back at the next 'chunksync prune'."""
        from . import wire
        from .folder import SyncFolder
        from .history import list_snapshots
        from .lifecycle import forget as do_forget
        from .lifecycle import lifecycle_state, plan_forget
        from .lifecycle import prune as do_prune
        from .storage.meta import BASE
        from .sync.objects_io import ObjectReader

        policy = Policy(
            keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within
        )

        async def go() -> dict[str, Any]:
            async with SyncFolder.open(directory) as f:
                if apply_policy:
                    path = wire.FORGET_POLICY.format(folder=f.config.folder)
                    return dict(await f.client.request_json("POST", path, json={}))
                reader = ObjectReader(f.keys, f.index, f.store)
                snaps = await list_snapshots(reader)
                state = await lifecycle_state(f.client, f)
                base = f.index.get_meta(BASE)
                chosen = policy if not policy.empty or state.policy is None else state.policy
                decision = plan_forget(snaps, state, chosen, base.decode() if base else None)
                rows = [
                    {
                        "id": s.id,
                        "time": s.time,
                        "device": s.commit.device,
                        "action": "keep" if s.id in decision.keep else "forget",
                        "reasons": decision.keep.get(s.id, ["matches no --keep option"]),
                    }
                    for s in snaps
                    if s.id not in state.forgotten
                ]
                doc: dict[str, Any] = {"policy": chosen.to_json(), "snapshots": rows}
                if dry_run:
                    return doc
                api = await maintenance(f, password_file, totp)
                try:
                    if save_policy:
                        path = wire.RETENTION.format(folder=f.config.folder)
                        await api.request_json("PUT", path, json={"policy": chosen.to_json()})
                    doc["forgotten"] = await do_forget(api, f, decision.forget)
                    if then_prune:
                        doc["prune"] = await do_prune(api, f)
                finally:
                    await api.aclose()
                return doc

        doc = run(go())

        def text() -> None:
            if apply_policy:
                say(f"forgot {doc.get('forgotten', 0)} snapshot(s) by the folder's stored policy")
                return
            for row in reversed(doc["snapshots"]):
                say(
                    f"{row['action']:<6} {short_id(row['id'])}  {_when(row['time'])}  "
                    f"{row['device']}  ({', '.join(row['reasons'])})"
                )
            going = sum(1 for r in doc["snapshots"] if r["action"] == "forget")
            if dry_run:
                say(f"dry run: {going} snapshot(s) would be forgotten; nothing changed")
            else:
                say(f"forgot {doc.get('forgotten', 0)} snapshot(s)")
            if "prune" in doc:
                say(_prune_line(doc["prune"]))

        emit(doc, as_json, text)

    @click.command("prune")
    @folder_dir
    @click.option("--json", "as_json", is_flag=True)
    @_secret_options
    @command_errors
    def prune(directory: Path, as_json: bool, password_file: str | None, totp: str | None) -> None:
        """Delete what no kept snapshot needs and give the space back (owner re-auth).

        This device marks what the kept snapshots reach; the server deletes the rest of
        what it held when the prune began and rewrites packs that are mostly dead.
        Syncs may run meanwhile: nothing they upload or rely on is deleted."""
        from .folder import SyncFolder
        from .lifecycle import prune as do_prune

        async def go() -> dict[str, Any]:
            async with SyncFolder.open(directory) as f:
                api = await maintenance(f, password_file, totp)
                try:
                    return await do_prune(api, f)
                finally:
                    await api.aclose()

        doc = run(go())
        emit(doc, as_json, lambda: say(_prune_line(doc)))

    @click.command("purge")
    @folder_dir
    @click.argument("paths", nargs=-1, required=True)
    @click.option("--json", "as_json", is_flag=True)
    @_secret_options
    @command_errors
    def purge(
        directory: Path,
        paths: tuple[str, ...],
        as_json: bool,
        password_file: str | None,
        totp: str | None,
    ) -> None:
        """Remove PATHs from the whole history (restic 'rewrite' plus 'prune').

        The head moves to a snapshot without them (devices delete their copies at
        their next sync, as for any deletion), every other snapshot holding them is
        forgotten, and a prune rewrites every pack that held their bytes. Audited."""
        from .folder import SyncFolder
        from .lifecycle import purge as do_purge

        async def go() -> dict[str, Any]:
            async with SyncFolder.open(directory) as f:
                api = await maintenance(f, password_file, totp)
                try:
                    return await do_purge(api, f, paths)
                finally:
                    await api.aclose()

        doc = run(go())

        def text() -> None:
            say(
                f"purged {', '.join(doc['paths'])}: {doc['purged_snapshots']} snapshot(s) "
                f"forgotten{'; ' + doc['note'] if doc['note'] else ''}"
            )
            say(_prune_line(doc))

        emit(doc, as_json, text)

    return [forget, prune, purge]


def _prune_line(doc: dict[str, Any]) -> str:
    mib = 1024 * 1024
    return (
        f"pruned: {doc.get('deleted', 0)} object(s) deleted "
        f"({doc.get('bytes_deleted', 0) / mib:.1f} MiB), {doc.get('packs_rewritten', 0)} "
        f"pack(s) rewritten, {doc.get('bytes_freed', 0) / mib:.1f} MiB given back"
    )
