//! executus-schedule (being written).
