//! executus-audit (being written).
