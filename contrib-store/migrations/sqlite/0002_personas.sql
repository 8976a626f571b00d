-- executus-store schema, version 2: personas (executus_persona::PersonaStore).
--
-- One row per persona, keyed by its exact (case-sensitive, BINARY-collated) name; the whole
-- record as JSON. `model` repeats the record's model spec for operators reading the table.
-- Lookups are by name only (the UNIQUE index); `list` reads the names in index order.
CREATE TABLE IF NOT EXISTS personas (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    model      TEXT    NOT NULL,
    record     TEXT    NOT NULL,   -- JSON of executus_persona::Persona
    updated_ms INTEGER NOT NULL
) STRICT;
