"""``chunksync-server stats``, per folder: live against dead bytes, and the last prune.

*Live* bytes are those of the objects the index holds (what the last prune kept, plus
everything stored since); *dead* bytes are pack bytes no index row points at any more —
deleted by a prune and not yet given back by a compaction. Forgotten snapshots and the
stored retention policy come from the metadata database. Read-only: works while the
server runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import db, lifecycle_db
from .admin import _conn, _store

__all__ = ["folder_lines", "folder_space"]


def folder_space(data_dir: Path, store_url: str | None = None) -> list[dict[str, Any]]:
    with _conn(data_dir) as conn:
        folders = [
            (
                f,
                lifecycle_db.last_prune(conn, f.id),
                len(lifecycle_db.forgotten(conn, f.id)),
                lifecycle_db.policy(conn, f.id),
            )
            for f in db.all_folders(conn)
        ]
    out = []
    with _store(data_dir, store_url) as store:
        from .storage.compact import space_use

        for f, last, forgotten, policy in folders:
            stats = store.stats(f.id)
            packed = space_use(store, f.id).packed if hasattr(store, "root") else stats.bytes
            out.append(
                {
                    "name": f.name,
                    "objects": stats.objects,
                    "live_bytes": stats.bytes,
                    "dead_bytes": max(0, packed - stats.bytes),
                    "forgotten_snapshots": forgotten,
                    "policy": policy,
                    "last_prune": last,
                }
            )
    return out


def folder_lines(rows: list[dict[str, Any]], when: Any) -> list[str]:
    """One text line per folder for the ``stats`` command."""
    lines = []
    for row in rows:
        last = row["last_prune"]
        pruned = (
            f"last prune {when(last['time'])} ({last['deleted']} objects, "
            f"{last['bytes_freed']} bytes given back)"
            if last
            else "never pruned"
        )
        lines.append(
            f"folder {row['name']}\tlive {row['live_bytes']} bytes\tdead {row['dead_bytes']} "
            f"bytes\t{row['forgotten_snapshots']} forgotten\t{pruned}"
        )
    return lines
