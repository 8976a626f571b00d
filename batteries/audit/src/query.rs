//! Queries over stored audit records: [`AuditQuery`], [`AuditPage`], [`AuditCursor`].
//!
//! Every filter maps to an indexed column of a SQL store (`run_id`, `user`, `tenant`,
//! `at_ms`, `kind`) and pagination is keyset pagination on the store-assigned id, so a page
//! costs the same however deep it is.
//!
//! Guarantees:
//! - Records come back in ascending id order. Ids are assigned by the store in append
//!   order, so id order is arrival order at the store. `at_ms` is the emitter's time stamp;
//!   it rises with the id within one run, but records of concurrent runs may interleave a
//!   few milliseconds out of `at_ms` order.
//! - Paging with [`AuditPage::next`] visits every matching record that existed when paging
//!   began exactly once, even while new records are appended (they get larger ids and
//!   appear on later pages).
//! - `next` is `Some` exactly when more matching records exist after the page (stores
//!   fetch `limit + 1` rows to know).
//!
//! Not guaranteed: a stable total count (there is none; page until `next` is `None`).

use executus::RunId;
use executus::ports::{AuditRecord, PortError};
use serde::{Deserialize, Serialize};

/// The largest page a store returns; larger limits are clamped to it.
pub const MAX_PAGE: usize = 1000;

/// The page size of [`AuditQuery::default`].
pub const DEFAULT_PAGE: usize = 100;

/// One stored record with the id the store assigned to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAuditRecord {
    /// Store-assigned, strictly increasing id (never reused, also not after pruning).
    pub id: u64,
    /// The record as emitted.
    pub record: AuditRecord,
}

impl StoredAuditRecord {
    /// The event kind (`run_started`, `tool_call`, ...), as indexed and queried.
    pub fn kind(&self) -> &'static str {
        self.record.event.kind()
    }
}

/// Where the next page starts: after the record with this id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuditCursor {
    /// The id of the last record of the previous page; the next page holds ids above it.
    pub after_id: u64,
}

impl AuditCursor {
    /// A cursor resuming after record `id`.
    pub fn after(id: u64) -> Self {
        Self { after_id: id }
    }
}

/// What to fetch. All filters are conjunctive; an empty filter matches everything.
///
/// Time bounds are on the record's `at_ms`: `from_ms` inclusive, `to_ms` exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Only this run's records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// Only records of this user (`identity.user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only records of this tenant (`identity.tenant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Only records at or after this Unix time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<u64>,
    /// Only records before this Unix time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ms: Option<u64>,
    /// Only these event kinds (see `AuditEvent::kind`); empty means every kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Page size, 1 to [`MAX_PAGE`] (larger values are clamped).
    pub limit: usize,
    /// Resume after this cursor (from the previous page's `next`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<AuditCursor>,
}

impl Default for AuditQuery {
    /// Every record, [`DEFAULT_PAGE`] at a time.
    fn default() -> Self {
        Self {
            run_id: None,
            user: None,
            tenant: None,
            from_ms: None,
            to_ms: None,
            kinds: Vec::new(),
            limit: DEFAULT_PAGE,
            cursor: None,
        }
    }
}

impl AuditQuery {
    /// Every record, [`DEFAULT_PAGE`] at a time (same as `default()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Only this run's records.
    #[must_use]
    pub fn run(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }

    /// Only this user's records.
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Only this tenant's records.
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Only records with `from_ms <= at_ms < to_ms` (either bound optional).
    #[must_use]
    pub fn between(mut self, from_ms: Option<u64>, to_ms: Option<u64>) -> Self {
        self.from_ms = from_ms;
        self.to_ms = to_ms;
        self
    }

    /// Adds an event kind to the kind filter.
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kinds.push(kind.into());
        self
    }

    /// Sets the page size.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Resumes after `cursor` (`None` starts from the beginning).
    #[must_use]
    pub fn after(mut self, cursor: Option<AuditCursor>) -> Self {
        self.cursor = cursor;
        self
    }

    /// Checks the query and returns the effective page size (the limit clamped to
    /// [`MAX_PAGE`]). Stores call this first, so every store rejects the same queries.
    ///
    /// # Errors
    /// [`PortError::Invalid`] for a zero limit or a time range whose start is after its end.
    pub fn validate(&self) -> Result<usize, PortError> {
        if self.limit == 0 {
            return Err(PortError::Invalid {
                port: "audit",
                what: "query limit".into(),
                reason: "must be at least 1".into(),
            });
        }
        if let (Some(from), Some(to)) = (self.from_ms, self.to_ms)
            && from > to
        {
            return Err(PortError::Invalid {
                port: "audit",
                what: "query time range".into(),
                reason: format!("from_ms {from} is after to_ms {to}"),
            });
        }
        Ok(self.limit.min(MAX_PAGE))
    }

    /// True if `record` passes every filter (the cursor included). The reference semantics
    /// a SQL store's `WHERE` clause must reproduce.
    pub fn matches(&self, record: &StoredAuditRecord) -> bool {
        let r = &record.record;
        self.cursor.is_none_or(|c| record.id > c.after_id)
            && self.run_id.is_none_or(|id| r.run_id == Some(id))
            && self.user.as_deref().is_none_or(|u| r.identity.user == u)
            && self.tenant.as_deref().is_none_or(|t| r.identity.tenant == t)
            && self.from_ms.is_none_or(|from| r.at_ms >= from)
            && self.to_ms.is_none_or(|to| r.at_ms < to)
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == r.event.kind()))
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Matching records, ascending by id, at most the query's limit.
    pub records: Vec<StoredAuditRecord>,
    /// Where the next page starts; `None` when there are no more matching records.
    pub next: Option<AuditCursor>,
}

impl AuditPage {
    /// Builds a page from up to `limit + 1` matching records in ascending id order: the
    /// extra record, if present, only proves that a next page exists. For store
    /// implementations.
    pub fn from_overfetch(mut records: Vec<StoredAuditRecord>, limit: usize) -> Self {
        let more = records.len() > limit;
        records.truncate(limit);
        let next = if more { records.last().map(|r| AuditCursor::after(r.id)) } else { None };
        Self { records, next }
    }
}

#[cfg(test)]
mod tests {
    use executus::Identity;
    use executus::ports::AuditEvent;

    use super::*;

    fn stored(id: u64, at_ms: u64, user: &str, event: AuditEvent) -> StoredAuditRecord {
        StoredAuditRecord {
            id,
            record: AuditRecord {
                at_ms,
                run_id: None,
                identity: Identity::new(user, "t"),
                agent: None,
                event,
            },
        }
    }

    fn failover() -> AuditEvent {
        AuditEvent::Failover { from: "a/x".into(), to: "b/y".into(), error: "down".into() }
    }

    #[test]
    fn validate_rejects_zero_limit_and_inverted_range_and_clamps() {
        assert!(matches!(AuditQuery::new().limit(0).validate(), Err(PortError::Invalid { .. })));
        let inverted = AuditQuery::new().between(Some(10), Some(5)).validate();
        assert!(matches!(inverted, Err(PortError::Invalid { ref reason, .. }) if reason.contains("10")));
        assert_eq!(AuditQuery::new().limit(MAX_PAGE * 5).validate().unwrap(), MAX_PAGE);
        assert_eq!(AuditQuery::new().between(Some(5), Some(5)).validate().unwrap(), DEFAULT_PAGE);
    }

    #[test]
    fn time_bounds_are_inclusive_then_exclusive() {
        let q = AuditQuery::new().between(Some(10), Some(20));
        assert!(!q.matches(&stored(1, 9, "u", failover())));
        assert!(q.matches(&stored(1, 10, "u", failover())));
        assert!(q.matches(&stored(1, 19, "u", failover())));
        assert!(!q.matches(&stored(1, 20, "u", failover())));
    }

    #[test]
    fn filters_are_conjunctive_and_the_cursor_excludes_seen_ids() {
        let q = AuditQuery::new()
            .user("ann")
            .kind("failover")
            .kind("run_started")
            .after(Some(AuditCursor::after(3)));
        assert!(q.matches(&stored(4, 0, "ann", failover())));
        assert!(!q.matches(&stored(3, 0, "ann", failover())), "cursor is exclusive");
        assert!(!q.matches(&stored(4, 0, "bob", failover())));
        let ended = AuditEvent::RunEnded {
            status: executus::RunStatus::Completed,
            reason: None,
            steps: 1,
            usage: executus::llm::Usage::default(),
        };
        assert!(!q.matches(&stored(4, 0, "ann", ended)));
    }

    #[test]
    fn overfetch_sets_next_only_when_more_exist() {
        let rows: Vec<_> = (1..=3).map(|i| stored(i, 0, "u", failover())).collect();
        let page = AuditPage::from_overfetch(rows.clone(), 2);
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.next, Some(AuditCursor::after(2)));
        let last = AuditPage::from_overfetch(rows, 3);
        assert_eq!(last.records.len(), 3);
        assert_eq!(last.next, None);
    }
}
