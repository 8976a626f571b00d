//! executus-skill (being written).
