-- executus-store PostgreSQL schema, version 1: every store of the SQLite backend, plus the run
-- queue and run leases that workers on several machines share. Everything lives in the schema
-- `executus` (the store sets search_path; `Store::open` creates the schema).
--
-- Rules for later migrations: one new file per change (`NNNN_name.sql`), never edit a released
-- file (sqlx checks checksums). sqlx holds an advisory lock while it migrates, so workers
-- starting at once apply each migration once.
--
-- Names are compared byte-wise (COLLATE "C") wherever the store lists them in order, which is
-- how Rust orders `String`s and how the SQLite backend's BINARY collation orders them.

CREATE TABLE executus_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

INSERT INTO executus_meta (key, value) VALUES ('owner', 'executus-store');

-- The server's clock in Unix milliseconds. Leases are stamped and compared with it only, so
-- workers whose clocks disagree still agree on when a lease expires.
CREATE FUNCTION executus_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS
$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- Checkpoints: one row per run (header, status, the next expected seq) and one row per fact.
CREATE TABLE checkpoint_runs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     uuid   NOT NULL UNIQUE,
    agent      text   NOT NULL,
    identity   text   NOT NULL,   -- JSON of executus::Identity
    tenant     text   NOT NULL,   -- the identity's tenant (queue fairness)
    parent     uuid,
    status     text   NOT NULL CHECK (status IN ('running', 'awaiting_approval', 'completed', 'failed')),
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    next_seq   bigint NOT NULL DEFAULT 0 CHECK (next_seq >= 0)
);

CREATE INDEX checkpoint_runs_interrupted ON checkpoint_runs (created_ms, run_id)
    WHERE status IN ('running', 'awaiting_approval');
CREATE INDEX checkpoint_runs_finished ON checkpoint_runs (updated_ms)
    WHERE status IN ('completed', 'failed');

-- `encoding` says how `payload` holds the core's bytes (0 verbatim, 1 raw deflate: the store
-- compresses itself, so TOAST is told not to compress again).
CREATE TABLE checkpoint_entries (
    run      bigint   NOT NULL REFERENCES checkpoint_runs (id) ON DELETE CASCADE,
    seq      bigint   NOT NULL CHECK (seq >= 0),
    encoding smallint NOT NULL,
    payload  bytea    NOT NULL,
    PRIMARY KEY (run, seq)
);
ALTER TABLE checkpoint_entries ALTER COLUMN payload SET STORAGE EXTERNAL;

-- Personas: the whole record as JSON.
CREATE TABLE personas (
    name       text COLLATE "C" PRIMARY KEY,
    model      text   NOT NULL,
    record     text   NOT NULL,
    updated_ms bigint NOT NULL
);

-- Skills: lifecycle, pointer and immutable versions.
CREATE TABLE skills (
    name           text COLLATE "C" PRIMARY KEY,
    state          text    NOT NULL CHECK (state IN ('draft', 'active', 'disabled')),
    active_version bigint  NOT NULL CHECK (active_version >= 1),
    latest_version bigint  NOT NULL CHECK (latest_version >= active_version),
    created_ms     bigint  NOT NULL,
    updated_ms     bigint  NOT NULL
);

CREATE TABLE skill_versions (
    skill      text COLLATE "C" NOT NULL REFERENCES skills (name),
    version    bigint  NOT NULL CHECK (version >= 1),
    created_ms bigint  NOT NULL,
    record     text    NOT NULL,
    PRIMARY KEY (skill, version)
);

CREATE FUNCTION executus_skill_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'skill versions are immutable'; END $$;

CREATE TRIGGER skill_versions_immutable BEFORE UPDATE OR DELETE ON skill_versions
    FOR EACH ROW EXECUTE FUNCTION executus_skill_versions_immutable();

-- Audit: ids are assigned under one advisory lock per append, so id order is commit order
-- and keyset pagination never skips a record committed late.
CREATE TABLE audit_records (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms    bigint NOT NULL,
    run_id   uuid,
    "user"   text   NOT NULL,
    tenant   text   NOT NULL,
    kind     text   NOT NULL,
    record   text   NOT NULL
);

CREATE INDEX audit_records_run ON audit_records (run_id, id) WHERE run_id IS NOT NULL;
CREATE INDEX audit_records_user ON audit_records ("user", id);
CREATE INDEX audit_records_tenant ON audit_records (tenant, id);
CREATE INDEX audit_records_kind ON audit_records (kind, id);
CREATE INDEX audit_records_at ON audit_records (at_ms, id);

-- Budget: reservations and their holds per scope, spend rows and their per-hour sums (as in
-- the SQLite schema). A reservation locks its scopes (advisory, per scope) before it sums
-- them, so reservations from any number of workers never hold more than a cap.
CREATE TABLE budget_reservations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    amount     bigint NOT NULL CHECK (amount >= 0),
    created_ms bigint NOT NULL,
    expires_ms bigint NOT NULL
);
CREATE INDEX budget_reservations_expiry ON budget_reservations (expires_ms);

CREATE TABLE budget_holds (
    reservation bigint NOT NULL REFERENCES budget_reservations (id) ON DELETE CASCADE,
    scope       text   NOT NULL,
    amount      bigint NOT NULL CHECK (amount >= 0),
    expires_ms  bigint NOT NULL,
    PRIMARY KEY (reservation, scope)
);
CREATE INDEX budget_holds_live ON budget_holds (scope, expires_ms) INCLUDE (amount);

CREATE TABLE budget_spend (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope  text   NOT NULL,
    at_ms  bigint NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0)
);
CREATE INDEX budget_spend_window ON budget_spend (scope, at_ms) INCLUDE (amount);
CREATE INDEX budget_spend_age ON budget_spend (at_ms);

CREATE TABLE budget_spend_hours (
    scope   text   NOT NULL,
    hour_ms bigint NOT NULL,
    amount  bigint NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (scope, hour_ms)
);

-- Schedule: watermarks (only ever moved forward) and job definitions.
CREATE TABLE schedule_watermarks (
    job        text COLLATE "C" PRIMARY KEY,
    fire_ms    bigint NOT NULL,
    updated_ms bigint NOT NULL
);

CREATE TABLE schedule_jobs (
    job        text COLLATE "C" PRIMARY KEY,
    definition text   NOT NULL,
    updated_ms bigint NOT NULL
);

-- The run queue: one row per run the workers know of. `queued`: waiting for a worker (its
-- request below); `active`: a worker drives it, or did until it died (then its lease in
-- run_leases is missing or expired and another worker picks it up); `finished`: its
-- checkpoint says it ended (set in the same transaction); `done`: the worker that drove it
-- also stored its outcome. Runs started outside the queue get an `active` row with their
-- first checkpoint, so workers resume those too.
CREATE TABLE run_queue (
    run_id      uuid    PRIMARY KEY,
    tenant      text    NOT NULL,
    agent       text    NOT NULL,
    state       text    NOT NULL CHECK (state IN ('queued', 'active', 'finished', 'done')),
    request     text,              -- JSON of the queued request (NULL: started outside the queue)
    status      text,              -- the end status once finished
    outcome     text,              -- JSON summary of the outcome, once done
    enqueued_ms bigint  NOT NULL,
    picked_ms   bigint,
    picked_by   text,
    picks       integer NOT NULL DEFAULT 0,
    finished_ms bigint
);
CREATE INDEX run_queue_ready ON run_queue (enqueued_ms, run_id) WHERE state IN ('queued', 'active');
CREATE INDEX run_queue_tenant_active ON run_queue (tenant) WHERE state = 'active';

-- Leases: who drives a run. A lease is valid while `expires_ms` (server clock) is in the
-- future; the holder also holds a session advisory lock keyed by the run on a dedicated
-- connection (`backend_pid`), which the server frees the moment that connection dies.
CREATE TABLE run_leases (
    run_id       uuid   PRIMARY KEY,
    owner        text   NOT NULL,
    backend_pid  integer NOT NULL,
    acquired_ms  bigint NOT NULL,
    heartbeat_ms bigint NOT NULL,
    expires_ms   bigint NOT NULL
);
CREATE INDEX run_leases_owner ON run_leases (owner);

-- A tenant's runs that count against its cap in the queue: driven (or orphaned, about to be
-- driven again), not paused for a human.
CREATE FUNCTION executus_tenant_active(t text) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT count(*) FROM run_queue q WHERE q.tenant = t AND q.state = 'active'
   AND NOT EXISTS (SELECT 1 FROM checkpoint_runs c WHERE c.run_id = q.run_id AND c.status = 'awaiting_approval') $$;

-- Conversations (executus_chat::ChatHistory): one row per message, gapless per conversation.
CREATE TABLE chat_messages (
    tenant     text   NOT NULL,
    "user"     text   NOT NULL,
    persona    text   NOT NULL,
    seq        bigint NOT NULL,
    message    text   NOT NULL,   -- JSON of executus_llm::Message
    created_ms bigint NOT NULL,
    PRIMARY KEY (tenant, "user", persona, seq)
);

-- The review cache of `executus-run swarm`: one row per answered cell.
CREATE TABLE review_cache (
    model          text   NOT NULL,
    lens           text   NOT NULL,
    prompt_version text   NOT NULL,
    content_hash   text   NOT NULL,
    cell           text   NOT NULL,
    created_ms     bigint NOT NULL,
    used_ms        bigint NOT NULL,
    PRIMARY KEY (model, lens, prompt_version, content_hash)
);
CREATE INDEX review_cache_used ON review_cache (used_ms);
