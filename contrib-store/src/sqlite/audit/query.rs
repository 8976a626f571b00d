//! How an [`AuditQuery`] becomes SQL: a handful of statements, each walking one index in id
//! order and stopping after `limit + 1` rows, merged in Rust.
//!
//! The plan:
//! 1. With a time filter, two lookups in `audit_records_high` turn it into an id range:
//!    `lo` = the first id whose `high_ms >= from`, `hi` = the last id whose
//!    `high_ms < to + STEP_MS`. Because `high_ms` is the running maximum of `at_ms` in id
//!    order, every in-step record (`high_ms - STEP_MS <= at_ms <= high_ms`) with `at_ms` in
//!    `[from, to)` lies in `[lo, hi]` (see `0004_audit.sql`).
//! 2. One "in-step" branch per driving index value, over ids `(max(cursor, lo - 1), hi]`:
//!    the driver is the run index if the query names a run, else the user index, else the
//!    kind index (one branch per kind, up to [`MAX_KIND_BRANCHES`]), else the tenant index,
//!    else the table itself (rowid range). Every other filter is checked on the rows the
//!    walk visits.
//! 3. With a time filter, one "off-step" branch over the partial index of off-step records
//!    (few by construction), by `at_ms` range.
//!
//! Each branch is `ORDER BY id LIMIT limit + 1` on an index whose order is the id order, so
//! SQLite never sorts and never scans the table; the merge keeps the `limit + 1` smallest
//! ids. A page therefore costs about `limit` rows per branch plus, at the edges of a time
//! range, the records of one `STEP_MS` window — however deep the page and however large the
//! table.

use std::fmt::Write as _;

use executus_audit::AuditQuery;

/// Records more than this far behind the newest record's time are off-step.
pub(super) const STEP_MS: i64 = 60_000;

/// Records stamped more than this far ahead of the store's clock are off-step (and do not
/// raise the running maximum, so a single record from a wrong clock cannot push every
/// later record off-step).
pub(super) const AHEAD_MS: i64 = 600_000;

/// Up to this many distinct kinds, a kind filter drives the query with one branch per kind;
/// beyond it the kinds are a filter on another walk.
pub const MAX_KIND_BRANCHES: usize = 16;

/// A bound parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Bind {
    Int(i64),
    Text(String),
}

/// One statement with its parameters and a label saying what it is for.
#[derive(Debug, Clone)]
pub(super) struct Stmt {
    pub(super) label: String,
    pub(super) sql: String,
    pub(super) binds: Vec<Bind>,
}

/// The query's filters in SQL terms. `None` from [`Filters::new`] means nothing can match.
#[derive(Debug, Clone)]
pub(super) struct Filters {
    run_id: Option<String>,
    user: Option<String>,
    tenant: Option<String>,
    kinds: Vec<String>,
    from: Option<i64>,
    to: Option<i64>,
    after: i64,
    fetch: i64,
}

/// The index a branch walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Run,
    User,
    Kinds,
    Tenant,
    Table,
}

impl Filters {
    /// `fetch` is `limit + 1`. Returns `None` when no stored record can match (a cursor or
    /// a time bound past what SQLite integers hold).
    pub(super) fn new(query: &AuditQuery, fetch: usize) -> Option<Self> {
        let after = i64::try_from(query.cursor.map_or(0, |c| c.after_id)).ok()?;
        // Stored records have at_ms < i64::MAX (append refuses larger), so clamping the
        // bounds to i64::MAX keeps `from <= at_ms < to` exact.
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut kinds: Vec<String> = Vec::with_capacity(query.kinds.len());
        for kind in &query.kinds {
            if !kinds.contains(kind) {
                kinds.push(kind.clone());
            }
        }
        Some(Self {
            run_id: query.run_id.map(|r| r.to_string()),
            user: query.user.clone(),
            tenant: query.tenant.clone(),
            kinds,
            from: query.from_ms.map(clamp),
            to: query.to_ms.map(clamp),
            after,
            fetch: i64::try_from(fetch).unwrap_or(i64::MAX),
        })
    }

    pub(super) fn has_time(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    /// The lookup of `lo` (first id with `high_ms >= from`), if the query has a lower bound.
    pub(super) fn lo_lookup(&self) -> Option<Stmt> {
        self.from.map(|from| Stmt {
            label: "time range: first id".into(),
            sql: "SELECT id FROM audit_records INDEXED BY audit_records_high \
                  WHERE high_ms >= ?1 ORDER BY high_ms, id LIMIT 1"
                .into(),
            binds: vec![Bind::Int(from)],
        })
    }

    /// The lookup of `hi` (last id with `high_ms < to + STEP_MS`), if the query has an
    /// upper bound.
    pub(super) fn hi_lookup(&self) -> Option<Stmt> {
        self.to.map(|to| upper_id_lookup(to, "time range: last id"))
    }

    fn driver(&self) -> Driver {
        if self.run_id.is_some() {
            Driver::Run
        } else if self.user.is_some() {
            Driver::User
        } else if !self.kinds.is_empty() && self.kinds.len() <= MAX_KIND_BRANCHES {
            Driver::Kinds
        } else if self.tenant.is_some() {
            Driver::Tenant
        } else {
            Driver::Table
        }
    }

    /// The branches to run, given the looked-up id bounds (`lo`/`hi` are `Some(None)` when
    /// the lookup found no id, which empties the in-step part).
    pub(super) fn branches(&self, lo: Option<Option<i64>>, hi: Option<Option<i64>>) -> Vec<Stmt> {
        let mut out = Vec::new();
        let time = self.has_time();
        let in_step_range = match (lo, hi) {
            (Some(None), _) | (_, Some(None)) => None,
            (lo, hi) => {
                let after = lo.flatten().map_or(self.after, |lo| self.after.max(lo.saturating_sub(1)));
                Some((after, hi.flatten()))
            }
        };
        let driver = self.driver();
        if let Some((after, upto)) = in_step_range {
            let drivers: Vec<(Option<&str>, String, Bind)> = match driver {
                Driver::Run => vec![(Some("audit_records_run"), "run_id = ?".into(), text(&self.run_id))],
                Driver::User => vec![(Some("audit_records_user"), "user = ?".into(), text(&self.user))],
                Driver::Tenant => {
                    vec![(Some("audit_records_tenant"), "tenant = ?".into(), text(&self.tenant))]
                }
                Driver::Kinds => self
                    .kinds
                    .iter()
                    .map(|k| (Some("audit_records_kind"), "kind = ?".to_owned(), Bind::Text(k.clone())))
                    .collect(),
                Driver::Table => vec![(None, String::new(), Bind::Int(0))],
            };
            for (index, eq, eq_bind) in drivers {
                let mut b = Builder::new(index);
                let label = match (&eq_bind, index) {
                    (_, None) => "in-step: id order".to_owned(),
                    (Bind::Text(v), Some(i)) => format!("in-step: {i} = {v:?}"),
                    (Bind::Int(_), Some(i)) => format!("in-step: {i}"),
                };
                if index.is_some() {
                    b.cond(&eq, [eq_bind]);
                }
                b.cond("id > ?", [Bind::Int(after)]);
                if let Some(upto) = upto {
                    b.cond("id <= ?", [Bind::Int(upto)]);
                }
                if time {
                    b.cond("off_step = 0", []);
                }
                self.residuals(&mut b, driver);
                out.push(b.finish(label, self.fetch));
            }
        }
        if time {
            let mut b = Builder::new(Some("audit_records_off_step"));
            b.cond("off_step = 1", []);
            self.residuals(&mut b, Driver::Table);
            b.cond("id > ?", [Bind::Int(self.after)]);
            out.push(b.finish("off-step: audit_records_off_step".into(), self.fetch));
        }
        out
    }

    /// Every filter the driver does not already apply.
    fn residuals(&self, b: &mut Builder, driver: Driver) {
        if driver != Driver::Run
            && let Some(run) = &self.run_id
        {
            b.cond("run_id = ?", [Bind::Text(run.clone())]);
        }
        if driver != Driver::User
            && let Some(user) = &self.user
        {
            b.cond("user = ?", [Bind::Text(user.clone())]);
        }
        if driver != Driver::Tenant
            && let Some(tenant) = &self.tenant
        {
            b.cond("tenant = ?", [Bind::Text(tenant.clone())]);
        }
        if driver != Driver::Kinds && !self.kinds.is_empty() {
            if self.kinds.len() <= MAX_KIND_BRANCHES {
                let marks = vec!["?"; self.kinds.len()].join(", ");
                b.cond(&format!("kind IN ({marks})"), self.kinds.iter().map(|k| Bind::Text(k.clone())));
            } else {
                // One parameter however many kinds (a hostile list cannot exceed SQLite's
                // parameter limit).
                let list = serde_json::Value::from(self.kinds.clone()).to_string();
                b.cond("kind IN (SELECT value FROM json_each(?))", [Bind::Text(list)]);
            }
        }
        if let Some(from) = self.from {
            b.cond("at_ms >= ?", [Bind::Int(from)]);
        }
        if let Some(to) = self.to {
            b.cond("at_ms < ?", [Bind::Int(to)]);
        }
    }
}

/// The lookup of the last id whose `high_ms < bound + STEP_MS` (every in-step record with
/// `at_ms < bound` has an id at or below it).
pub(super) fn upper_id_lookup(bound: i64, label: &str) -> Stmt {
    Stmt {
        label: label.into(),
        sql: "SELECT id FROM audit_records INDEXED BY audit_records_high \
              WHERE high_ms < ?1 ORDER BY high_ms DESC, id DESC LIMIT 1"
            .into(),
        binds: vec![Bind::Int(bound.saturating_add(STEP_MS))],
    }
}

fn text(v: &Option<String>) -> Bind {
    Bind::Text(v.clone().unwrap_or_default())
}

/// Builds one branch's `SELECT`.
struct Builder {
    sql: String,
    binds: Vec<Bind>,
    conds: usize,
}

impl Builder {
    fn new(index: Option<&str>) -> Self {
        let mut sql = String::from("SELECT id, record FROM audit_records ");
        match index {
            Some(i) => {
                let _ = write!(sql, "INDEXED BY {i}");
            }
            // The rowid (the id) is still used for the range; no secondary index is.
            None => sql.push_str("NOT INDEXED"),
        }
        Self { sql, binds: Vec::new(), conds: 0 }
    }

    fn cond(&mut self, cond: &str, binds: impl IntoIterator<Item = Bind>) {
        self.sql.push_str(if self.conds == 0 { " WHERE " } else { " AND " });
        self.sql.push_str(cond);
        self.binds.extend(binds);
        self.conds += 1;
    }

    fn finish(mut self, label: String, fetch: i64) -> Stmt {
        self.sql.push_str(" ORDER BY id LIMIT ?");
        self.binds.push(Bind::Int(fetch));
        Stmt { label, sql: self.sql, binds: self.binds }
    }
}
