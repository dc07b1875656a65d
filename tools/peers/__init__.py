"""The side-by-side benchmark suite behind ``tools/bench_peers.py`` (see docs/performance.md).

One module per peer (``restic``, ``rsync``, ``syncthing``, ``chunksync_runner``), per
scenario family (``backup_scenarios``, ``propagation``, ``history``), and the shared parts:
``corpus`` (seeded data and edits), ``measure`` (a child's wall time and peak RSS),
``stats`` (paired ratios, median and spread) and ``report`` (targets and the table).
"""
