//! executus-store (being written).
