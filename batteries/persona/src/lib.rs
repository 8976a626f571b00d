//! executus-persona (being written).
