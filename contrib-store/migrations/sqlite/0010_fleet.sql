-- executus-store schema, version 10: executus-fleet's history, bench runs, action audit and
-- host leases (executus_fleet::store::{HistoryStore, BenchStore, ActionLog, LeaseStore}).
-- Times are Unix microseconds.

-- Activity rows of the hosts, keyed as the hosts number them (a row fetched twice is stored
-- once; a host whose ids restarted gives rows with the same id at other times).
CREATE TABLE IF NOT EXISTS fleet_activity (
    host          TEXT    NOT NULL,
    remote_id     INTEGER NOT NULL,
    ts_us         INTEGER NOT NULL,
    model         TEXT    NOT NULL,
    req_path      TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_tokens  INTEGER NOT NULL,
    prompt_tps    REAL    NOT NULL,
    gen_tps       REAL    NOT NULL,
    error         TEXT,
    PRIMARY KEY (host, remote_id, ts_us)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fleet_activity_host_ts ON fleet_activity (host, ts_us);
CREATE INDEX IF NOT EXISTS fleet_activity_ts ON fleet_activity (ts_us);

-- Raw perf samples; the key is the (host, time) index.
CREATE TABLE IF NOT EXISTS fleet_perf (
    host         TEXT    NOT NULL,
    ts_us        INTEGER NOT NULL,
    cpu_pct      REAL,
    mem_used_mb  REAL,
    gpu_util_pct REAL,
    vram_used_mb REAL,
    gpu_temp_c   REAL,
    power_w      REAL,
    PRIMARY KEY (host, ts_us)
) STRICT, WITHOUT ROWID;

-- 5-minute buckets of the raw samples (upserted by the rollup, then raw rows deleted).
CREATE TABLE IF NOT EXISTS fleet_perf_5m (
    host         TEXT    NOT NULL,
    start_us     INTEGER NOT NULL,
    samples      INTEGER NOT NULL,
    cpu_avg      REAL,
    cpu_max      REAL,
    mem_avg      REAL,
    gpu_util_avg REAL,
    gpu_util_max REAL,
    vram_max     REAL,
    temp_max     REAL,
    power_avg    REAL,
    PRIMARY KEY (host, start_us)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fleet_perf_5m_start ON fleet_perf_5m (start_us);

-- Model state changes per host.
CREATE TABLE IF NOT EXISTS fleet_model_states (
    id    INTEGER PRIMARY KEY,
    host  TEXT    NOT NULL,
    model TEXT    NOT NULL,
    state TEXT    NOT NULL,
    at_us INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS fleet_model_states_host ON fleet_model_states (host, model, at_us);

-- Bench runs (JSON of executus_fleet::bench::BenchRun); seq orders runs started together.
CREATE TABLE IF NOT EXISTS fleet_bench_runs (
    id         TEXT    PRIMARY KEY NOT NULL,
    seq        INTEGER NOT NULL,
    host       TEXT    NOT NULL,
    model      TEXT    NOT NULL,
    started_us INTEGER NOT NULL,
    run        TEXT    NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS fleet_bench_runs_host_model ON fleet_bench_runs (host, model, started_us);

-- The action audit, in insertion order.
CREATE TABLE IF NOT EXISTS fleet_actions (
    seq     INTEGER PRIMARY KEY,
    id      TEXT    NOT NULL,
    at_us   INTEGER NOT NULL,
    host    TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    model   TEXT,
    actor   TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    detail  TEXT    NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS fleet_actions_host ON fleet_actions (host, seq);

-- Host leases: at most one row per host.
CREATE TABLE IF NOT EXISTS fleet_leases (
    host        TEXT    PRIMARY KEY NOT NULL,
    holder      TEXT    NOT NULL,
    purpose     TEXT    NOT NULL,
    acquired_us INTEGER NOT NULL,
    expires_us  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
