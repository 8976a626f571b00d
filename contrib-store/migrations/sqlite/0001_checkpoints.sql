-- executus-store schema, version 1: the ownership marker and run checkpoints.
--
-- Rules for later migrations (phase 2 adds personas, skills, audit, budget, schedule):
-- one new file per change (`NNNN_name.sql`), never edit a released file (sqlx checks
-- checksums), create with IF NOT EXISTS so two processes migrating one file at once
-- cannot fail each other.

-- Who wrote this database. `Store::open` also checks `PRAGMA application_id`; this table
-- is the second marker and a place for operators to read what the file is.
CREATE TABLE IF NOT EXISTS executus_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

INSERT OR IGNORE INTO executus_meta (key, value) VALUES ('owner', 'executus-store');

-- One row per run: the header the core gave (`RunMeta`) and where the run stands.
-- `id` is a compact integer key for the entries; `run_id` is the core's UUID, as text.
CREATE TABLE IF NOT EXISTS checkpoint_runs (
    id         INTEGER PRIMARY KEY,
    run_id     TEXT    NOT NULL UNIQUE,
    agent      TEXT    NOT NULL,
    identity   TEXT    NOT NULL,   -- JSON of executus::Identity
    parent     TEXT,               -- run_id of the dispatching run
    status     TEXT    NOT NULL CHECK (status IN ('running', 'awaiting_approval', 'completed', 'failed')),
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;

-- `list_interrupted` (oldest first) reads only this partial index.
CREATE INDEX IF NOT EXISTS checkpoint_runs_interrupted
    ON checkpoint_runs (created_ms, run_id)
    WHERE status IN ('running', 'awaiting_approval');

-- Retention finds finished runs by age through this partial index.
CREATE INDEX IF NOT EXISTS checkpoint_runs_finished
    ON checkpoint_runs (updated_ms)
    WHERE status IN ('completed', 'failed');

-- The append-only log: one row per fact the core wrote, gapless from seq 0 (the next
-- expected seq is max(seq) + 1, one lookup in the primary key). `encoding` says how
-- `payload` holds the core's bytes (0 = verbatim, 1 = raw deflate); the core never sees it.
CREATE TABLE IF NOT EXISTS checkpoint_entries (
    run      INTEGER NOT NULL REFERENCES checkpoint_runs (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    encoding INTEGER NOT NULL,
    payload  BLOB    NOT NULL,
    PRIMARY KEY (run, seq)
) STRICT;
