"""What a daemon says about the paths it cannot sync (yet).

:class:`PathReport` sits beside a :class:`~chunksync.daemon.FolderDaemon`: after every
scan it records the failed items (:mod:`chunksync.failed`) in the index, logs each new
item once (``failed_item``) and once more when it clears (``failed_item_cleared``), keeps
the files still being written (:mod:`chunksync.settle`) for ``status``, logs a file read
past the settle cap (``still_being_written``), and says which directories to look at
again once the quiet window has passed. A daemon log therefore tells the whole story of
a path that does not sync, without repeating it every round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .failed import FailedItem, load, record
from .paths import display
from .scanner import ScanResult
from .settle import Settle
from .storage.index import Index

__all__ = ["SHOWN", "PathReport"]

#: items listed in ``status`` (the count is always complete)
SHOWN = 100


class PathReport:
    def __init__(self, index: Index, settle: Settle, log: Callable[..., None]) -> None:
        self.index, self.settle, self.log = index, settle, log
        self.items: tuple[FailedItem, ...] = tuple(load(index))
        self.waiting: tuple[str, ...] = ()

    def after_scan(
        self, scan: ScanResult | None, skipped: Iterable[tuple[str, str]] | None
    ) -> set[str]:
        """Record a scan (and a completed round's skipped server entries); returns the
        directories holding files still being written, to rescan after the window."""
        change = record(self.index, scan, skipped)
        self.items = change.items
        for item in change.new:
            self.log(
                "failed_item", path=item.path, kind=item.kind, reason=item.reason, hint=item.hint
            )
        for item in change.cleared:
            self.log("failed_item_cleared", path=item.path, kind=item.kind)
        for path in self.settle.take_capped():
            self.log(
                "still_being_written",
                path=path,
                message=f"{display(path)} kept changing for {self.settle.cap:.0f} s: "
                "synced its latest consistent read",
            )
        if scan is None:
            return set()
        self.waiting = scan.settling
        return {p.rpartition("/")[0] for p in scan.settling}

    def to_json(self) -> dict[str, Any]:
        return {
            "failed_items": sum(1 for i in self.items if i.skipped),
            "failed": [i.to_json() for i in self.items[:SHOWN]],
            "waiting_for_writes": list(self.waiting[:SHOWN]),
        }
