-- executus-store PostgreSQL schema, version 2: executus-fleet's history, bench runs, action audit and
-- host leases (executus_fleet::store::{HistoryStore, BenchStore, ActionLog, LeaseStore}).
-- Times are Unix microseconds.

-- Activity rows of the hosts, keyed as the hosts number them (a row fetched twice is stored
-- once; a host whose ids restarted gives rows with the same id at other times).
CREATE TABLE IF NOT EXISTS fleet_activity (
    host          TEXT    NOT NULL,
    remote_id     BIGINT NOT NULL,
    ts_us         BIGINT NOT NULL,
    model         TEXT    NOT NULL,
    req_path      TEXT    NOT NULL,
    status        BIGINT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_tokens  BIGINT NOT NULL,
    prompt_tps    DOUBLE PRECISION    NOT NULL,
    gen_tps       DOUBLE PRECISION    NOT NULL,
    error         TEXT,
    PRIMARY KEY (host, remote_id, ts_us)
);
CREATE INDEX IF NOT EXISTS fleet_activity_host_ts ON fleet_activity (host, ts_us);
CREATE INDEX IF NOT EXISTS fleet_activity_ts ON fleet_activity (ts_us);

-- Raw perf samples; the key is the (host, time) index.
CREATE TABLE IF NOT EXISTS fleet_perf (
    host         TEXT    NOT NULL,
    ts_us        BIGINT NOT NULL,
    cpu_pct      DOUBLE PRECISION,
    mem_used_mb  DOUBLE PRECISION,
    gpu_util_pct DOUBLE PRECISION,
    vram_used_mb DOUBLE PRECISION,
    gpu_temp_c   DOUBLE PRECISION,
    power_w      DOUBLE PRECISION,
    PRIMARY KEY (host, ts_us)
);

-- 5-minute buckets of the raw samples (upserted by the rollup, then raw rows deleted).
CREATE TABLE IF NOT EXISTS fleet_perf_5m (
    host         TEXT    NOT NULL,
    start_us     BIGINT NOT NULL,
    samples      BIGINT NOT NULL,
    cpu_avg      DOUBLE PRECISION,
    cpu_max      DOUBLE PRECISION,
    mem_avg      DOUBLE PRECISION,
    gpu_util_avg DOUBLE PRECISION,
    gpu_util_max DOUBLE PRECISION,
    vram_max     DOUBLE PRECISION,
    temp_max     DOUBLE PRECISION,
    power_avg    DOUBLE PRECISION,
    PRIMARY KEY (host, start_us)
);
CREATE INDEX IF NOT EXISTS fleet_perf_5m_start ON fleet_perf_5m (start_us);

-- Model state changes per host.
CREATE TABLE IF NOT EXISTS fleet_model_states (
    id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host  TEXT    NOT NULL,
    model TEXT    NOT NULL,
    state TEXT    NOT NULL,
    at_us BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS fleet_model_states_host ON fleet_model_states (host, model, at_us);

-- Bench runs (JSON of executus_fleet::bench::BenchRun); seq orders runs started together.
CREATE TABLE IF NOT EXISTS fleet_bench_runs (
    id         TEXT    PRIMARY KEY,
    seq        BIGINT NOT NULL,
    host       TEXT    NOT NULL,
    model      TEXT    NOT NULL,
    started_us BIGINT NOT NULL,
    run        TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS fleet_bench_runs_host_model ON fleet_bench_runs (host, model, started_us);

-- The action audit, in insertion order.
CREATE TABLE IF NOT EXISTS fleet_actions (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id      TEXT    NOT NULL,
    at_us   BIGINT NOT NULL,
    host    TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    model   TEXT,
    actor   TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    detail  TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS fleet_actions_host ON fleet_actions (host, seq);

-- Host leases: at most one row per host.
CREATE TABLE IF NOT EXISTS fleet_leases (
    host        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    purpose     TEXT    NOT NULL,
    acquired_us BIGINT NOT NULL,
    expires_us  BIGINT NOT NULL
);
