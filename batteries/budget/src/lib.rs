//! executus-budget (being written).
