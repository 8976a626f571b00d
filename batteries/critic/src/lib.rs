//! executus-critic (being written).
