-- executus-store schema, version 3: skills (executus_skill::SkillStore).
--
-- `skills`: one row per skill (lifecycle state, active pointer, newest version).
-- `skill_versions`: one immutable row per version, the record as JSON. Every method of the
-- store is one transaction that reads, checks and writes (see src/skill.rs); the CHECKs and
-- triggers below are a second line of defence for the invariants.
CREATE TABLE IF NOT EXISTS skills (
    name           TEXT    PRIMARY KEY NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('draft', 'active', 'disabled')),
    active_version INTEGER NOT NULL CHECK (active_version >= 1),
    latest_version INTEGER NOT NULL CHECK (latest_version >= active_version),
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS skill_versions (
    skill      TEXT    NOT NULL REFERENCES skills (name),
    version    INTEGER NOT NULL CHECK (version >= 1),
    created_ms INTEGER NOT NULL,
    record     TEXT    NOT NULL,   -- JSON of executus_skill::SkillVersion
    PRIMARY KEY (skill, version)
) STRICT;

-- Versions are immutable: never changed, never deleted.
CREATE TRIGGER IF NOT EXISTS skill_versions_no_update BEFORE UPDATE ON skill_versions
BEGIN
    SELECT RAISE(ABORT, 'skill versions are immutable');
END;

CREATE TRIGGER IF NOT EXISTS skill_versions_no_delete BEFORE DELETE ON skill_versions
BEGIN
    SELECT RAISE(ABORT, 'skill versions are immutable');
END;
