"""Schema of the scale-out feature (issue 20), migration 5 of chunksync_server.db.MIGRATIONS.

Kept apart so db.py stays small; written in the SQLite dialect like every migration
(chunksync_server/sqldialect.py translates it for PostgreSQL).

* ``s3_objects`` / ``s3_quarantine``: the S3 object store's index and its quarantined
  ids (chunksync_server/storage/s3.py), keyed by the store's name so several buckets
  (data residency) share them;
* ``folder_stores``: the named store a folder is pinned to (storage/routing.py);
* ``cluster_state``: values every server process shares (the storage epoch).
"""

__all__ = ["SCALE_OUT_SCHEMA"]

SCALE_OUT_SCHEMA = """
    CREATE TABLE s3_objects (
        store TEXT NOT NULL,
        ns TEXT NOT NULL,
        oid BLOB NOT NULL,
        length INTEGER NOT NULL,
        digest BLOB NOT NULL,
        PRIMARY KEY (store, ns, oid)
    );
    CREATE TABLE s3_quarantine (
        store TEXT NOT NULL,
        ns TEXT NOT NULL,
        oid BLOB NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (store, ns, oid)
    );
    CREATE TABLE folder_stores (
        folder_id TEXT PRIMARY KEY REFERENCES folders(id),
        store TEXT NOT NULL
    );
    CREATE TABLE cluster_state (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """
