"""A deterministic simulator that drives the real sync engine (docs/reliability.md).

Modules, one concern each:

* :mod:`world`      the devices (folder, LMDB index, skewed clock) and the one server;
* :mod:`edits`      every kind of local edit, chosen by a seeded generator;
* :mod:`faults`     a ChunkStore wrapper: lost requests and answers, duplicates, stale
  answers, partitions, device and server crashes, a slow writer mid-sync;
* :mod:`hostile`    a ChunkStore view of a lying server: rollback, replay, fork, a head
  of another folder, corrupted and swapped blobs;
* :mod:`history`    what the honest server's history holds, decrypted incrementally;
* :mod:`invariants` the properties checked after every step and at quiescence;
* :mod:`scheduler`  a seed -> a list of steps -> run them -> a trace or a violation;
* :mod:`trace`      the byte-exact record of a run (its hash proves determinism);
* :mod:`shrink`     drop steps from a failing schedule while it still fails.
"""
