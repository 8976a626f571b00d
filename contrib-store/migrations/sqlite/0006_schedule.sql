-- executus-store schema, version 6: schedule watermarks and job definitions
-- (executus_schedule::ScheduleStore).
--
-- `schedule_watermarks`: the last fire handled per job, in Unix milliseconds; only ever
-- moved forward by a conditional upsert. `schedule_jobs`: job definitions as JSON.
CREATE TABLE IF NOT EXISTS schedule_watermarks (
    job        TEXT    PRIMARY KEY NOT NULL,
    fire_ms    INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS schedule_jobs (
    id         INTEGER PRIMARY KEY,
    job        TEXT    NOT NULL UNIQUE,
    definition TEXT    NOT NULL,   -- JSON of executus_schedule::JobDef
    updated_ms INTEGER NOT NULL
) STRICT;
