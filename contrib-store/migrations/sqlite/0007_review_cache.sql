-- executus-store schema, version 7: the review cache of `executus-run swarm`
-- (executus_store::SqliteReviewCache).
--
-- One row per answered cell: the key (model spec, lens, the lens prompt's version, the
-- chunk's content hash), the cached answer as JSON, when it was made and last used (Unix
-- milliseconds). `prune` deletes by `used_ms`.
CREATE TABLE IF NOT EXISTS review_cache (
    model          TEXT    NOT NULL,
    lens           TEXT    NOT NULL,
    prompt_version TEXT    NOT NULL,
    content_hash   TEXT    NOT NULL,
    cell           TEXT    NOT NULL,   -- JSON of pr_review_swarm::CachedCell
    created_ms     INTEGER NOT NULL,
    used_ms        INTEGER NOT NULL,
    PRIMARY KEY (model, lens, prompt_version, content_hash)
) STRICT, WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS review_cache_used ON review_cache (used_ms);
