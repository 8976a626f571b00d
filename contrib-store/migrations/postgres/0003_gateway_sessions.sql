-- executus-store PostgreSQL schema, version 3: the gateway's per-session guard state
-- (executus_gateway::store::SessionStore), as SQLite's version 9.
--
-- `gateway_sessions`: one row per session, keyed by the gateway's scoped session key (the key's
-- name and the session id); `state` is the JSON of executus_gateway::guard::SessionState.
CREATE TABLE IF NOT EXISTS gateway_sessions (
    key        TEXT   PRIMARY KEY,
    state      TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS gateway_sessions_by_age ON gateway_sessions (updated_ms);
