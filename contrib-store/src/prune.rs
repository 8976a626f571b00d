//! [`PruneReport`]: what a retention pass deleted (both backends).

/// What a prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Finished runs deleted (their header rows, and any entry rows left).
    pub finished_runs: u64,
    /// Audit records deleted.
    pub audit_records: u64,
    /// Transactions used.
    pub batches: u32,
}
