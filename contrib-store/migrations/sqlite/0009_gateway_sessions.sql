-- executus-store schema, version 9: the gateway's per-session guard state
-- (executus_gateway::store::SessionStore).
--
-- `gateway_sessions`: one row per session, keyed by the gateway's scoped session key (the key's
-- name and the session id); `state` is the JSON of executus_gateway::guard::SessionState.
CREATE TABLE IF NOT EXISTS gateway_sessions (
    key        TEXT    PRIMARY KEY NOT NULL,
    state      TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS gateway_sessions_by_age ON gateway_sessions (updated_ms);
