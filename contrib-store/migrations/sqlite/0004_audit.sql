-- executus-store schema, version 4: the audit trail (executus_audit::AuditStore).
--
-- One row per record; the record as JSON plus the columns queries filter on. `id` is
-- AUTOINCREMENT so an id is never reused, also not after retention deleted the newest rows.
-- Every query walks an index in id order (keyset pagination), see src/audit/query.rs:
--   run / user / tenant / kind: `(column, id)` indexes (the rowid is every index's suffix);
--   time range: `high_ms` turns it into an id range. `high_ms` is the running maximum of
--   `at_ms` in id order (written by the appender inside its write transaction, so it never
--   decreases with the id), which makes `high_ms >= from` an id suffix and
--   `high_ms < to + 60 s` an id prefix. A record with `high_ms - 60 s <= at_ms <= high_ms`
--   ("in step", nearly all of them) lies inside that id range whenever its `at_ms` is in
--   [from, to). The rest (`off_step = 1`: more than 60 s behind the newest record, or
--   stamped in the future) are few and found through their own partial index.
CREATE TABLE IF NOT EXISTS audit_records (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    high_ms  INTEGER NOT NULL,
    off_step INTEGER NOT NULL CHECK (off_step IN (0, 1)),
    run_id   TEXT,
    user     TEXT    NOT NULL,
    tenant   TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    record   TEXT    NOT NULL   -- JSON of executus::ports::AuditRecord
) STRICT;

CREATE INDEX IF NOT EXISTS audit_records_run ON audit_records (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_records_user ON audit_records (user);
CREATE INDEX IF NOT EXISTS audit_records_tenant ON audit_records (tenant);
CREATE INDEX IF NOT EXISTS audit_records_kind ON audit_records (kind);
CREATE INDEX IF NOT EXISTS audit_records_high ON audit_records (high_ms);
CREATE INDEX IF NOT EXISTS audit_records_off_step ON audit_records (at_ms) WHERE off_step = 1;
