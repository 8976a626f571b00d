//! [`copy`]: moves everything a store holds into another, empty one — typically a SQLite
//! file into PostgreSQL when one machine is no longer enough (`executus-run store copy --from
//! sqlite://A --to postgres://B`), but any direction works.
//!
//! What is copied, through the stores' own traits (so the target checks and indexes
//! everything as if it had been written there):
//! - interrupted runs (running and awaiting approval): header, status and every log entry,
//!   byte for byte — on PostgreSQL they land in the run queue, so workers resume them;
//! - personas; skills with every version, their state and active pointer;
//! - the audit trail, in id order (ids are renumbered by the target; the order is kept);
//! - budget spend (so caps keep counting what was spent in their windows);
//! - schedule job definitions and watermarks (so no fire runs twice or is lost);
//! - conversations (chat history), every message in order;
//! - the gateway's sessions: each session's loop-guard state (recent calls, finalize count
//!   towards the hard cap) and when it was last saved, so `serve` on the target keeps every
//!   session's protection;
//! - the swarm's review cache: every answer with its key and its made / last-used times (so
//!   its pruning by age carries on);
//! - the fleet's history: activity rows, raw perf samples and 5-minute buckets, every model
//!   state change, bench runs and the action audit (in their order).
//!
//! What is not: finished runs (their logs were deleted when they finished; only their status
//! rows remain, which retention deletes), live budget reservations (they expire within
//! minutes; the calls holding them belong to processes that must be stopped before a copy),
//! the fleet's host leases (a lease is a live claim of a running process, for seconds; the
//! processes are stopped for a copy), and tables other programs keep in the same database.
//!
//! Guarantees: the target must be empty (a copy never merges into, or overwrites, data);
//! stop every process using the source first, or the copy may miss what they write meanwhile.
//! A copy that fails half-way leaves a partial target: delete it and copy again.

use std::collections::BTreeMap;

use executus::ports::RunAppend;
use executus_audit::{AuditQuery, AuditStore, MAX_PAGE};
use executus_budget::{BudgetStore, Money, SettleRequest};
use executus_chat::ChatHistory as _;
use executus_fleet::store::FleetStore;
use executus_persona::PersonaStore;
use executus_schedule::ScheduleStore;
use executus_skill::{SkillState, SkillStore};

use crate::{Store, StoreError};

/// What a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Interrupted runs (and how many log entries they had).
    pub runs: u64,
    /// Log entries of those runs.
    pub entries: u64,
    /// Personas.
    pub personas: u64,
    /// Skills (and their versions).
    pub skills: u64,
    /// Skill versions.
    pub skill_versions: u64,
    /// Audit records.
    pub audit_records: u64,
    /// Budget spend rows.
    pub spend_rows: u64,
    /// Schedule job definitions.
    pub jobs: u64,
    /// Schedule watermarks.
    pub watermarks: u64,
    /// Conversations (chat history).
    pub conversations: u64,
    /// Their messages.
    pub chat_messages: u64,
    /// The gateway's sessions (loop-guard state).
    pub sessions: u64,
    /// The swarm's review cache answers.
    pub review_cells: u64,
    /// The fleet's activity rows.
    pub fleet_activity: u64,
    /// The fleet's raw perf samples.
    pub fleet_samples: u64,
    /// The fleet's 5-minute perf buckets.
    pub fleet_buckets: u64,
    /// The fleet's model state changes.
    pub fleet_model_states: u64,
    /// The fleet's bench runs.
    pub fleet_bench_runs: u64,
    /// The fleet's action audit records.
    pub fleet_actions: u64,
}

/// Rows moved per page or batch.
const PAGE: u32 = 500;

fn port_err(to: &Store, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Rejected { location: to.location().to_owned(), what: what.to_owned(), reason: e.to_string() }
}

/// Copies everything `from` holds into the empty store `to` (see the module docs).
///
/// # Errors
/// [`StoreError::Rejected`] when the target is not empty (naming what it holds) or refuses a
/// record; the stores' own errors otherwise.
pub async fn copy(from: &Store, to: &Store) -> Result<CopyReport, StoreError> {
    ensure_empty(to).await?;
    let mut report = CopyReport::default();
    let src = from.checkpoints();
    let dst = to.checkpoints();
    let source_err = |what: &str, e: executus::ports::PortError| port_err(from, what, e);

    // Runs: one group commit per run (a run's whole log in one transaction).
    for (meta, status) in src.interrupted().await? {
        let Some(stored) = src.load_run(meta.run_id).await? else { continue };
        report.runs += 1;
        report.entries += stored.entries.len() as u64;
        dst.append_batch(&[RunAppend { meta: stored.meta, status, entries: stored.entries }]).await?;
    }

    let personas = from.personas();
    let mut all = Vec::new();
    for name in personas.list().await.map_err(|e| source_err("persona list", e))? {
        if let Some(p) = personas.get(&name).await.map_err(|e| source_err("persona", e))? {
            all.push(p);
        }
    }
    report.personas = all.len() as u64;
    if !all.is_empty() {
        to.personas().put_all(all).await.map_err(|e| port_err(to, "personas", e))?;
    }

    let (skills, target) = (from.skills(), to.skills());
    for skill in skills.list().await.map_err(|e| port_err(from, "skill list", e))? {
        let versions =
            skills.list_versions(&skill.name).await.map_err(|e| port_err(from, "skill versions", e))?;
        let mut versions = versions.into_iter();
        let Some(first) = versions.next() else { continue };
        report.skills += 1;
        report.skill_versions += 1;
        target.create(first).await.map_err(|e| port_err(to, &format!("skill {:?}", skill.name), e))?;
        for v in versions {
            report.skill_versions += 1;
            target.put_version(v).await.map_err(|e| port_err(to, &format!("skill {:?}", skill.name), e))?;
        }
        if skill.active_version != 1 {
            target
                .set_active_version(&skill.name, skill.active_version, skill.updated_ms)
                .await
                .map_err(|e| port_err(to, &format!("skill {:?}", skill.name), e))?;
        }
        if skill.state != SkillState::Draft {
            target
                .set_state(&skill.name, skill.state, skill.updated_ms)
                .await
                .map_err(|e| port_err(to, &format!("skill {:?}", skill.name), e))?;
        }
    }

    let (audit, audit_to) = (from.audit(), to.audit());
    let mut cursor = None;
    loop {
        let page = audit
            .query(&AuditQuery::new().limit(MAX_PAGE).after(cursor))
            .await
            .map_err(|e| source_err("audit", e))?;
        let records: Vec<_> = page.records.into_iter().map(|r| r.record).collect();
        report.audit_records += records.len() as u64;
        audit_to.append_records(&records).await?;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }

    // Spend: rows of one settled call share their time and amount; settling them again in
    // the target (against no reservation) writes the same rows and hour sums.
    let mut calls: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
    for (scope, at, amount) in from.export_spend().await? {
        report.spend_rows += 1;
        calls.entry((at, amount)).or_default().push(scope);
    }
    let budget = to.budget();
    for ((at, amount), scopes) in calls {
        let request = SettleRequest {
            reservation_id: u64::MAX,
            scopes,
            actual: Money::from_nanos(amount.max(0) as u64),
            now_ms: at.max(0) as u64,
        };
        budget.settle(&request).await.map_err(|e| port_err(to, "budget spend", e))?;
    }

    let (schedule, schedule_to) = (from.schedule(), to.schedule());
    for job in schedule.jobs().await.map_err(|e| source_err("schedule jobs", e))? {
        report.jobs += 1;
        schedule_to.put_job(&job).await.map_err(|e| port_err(to, "schedule job", e))?;
    }
    for (job, fire_ms) in from.export_watermarks().await? {
        let Some(fire) = chrono::DateTime::from_timestamp_millis(fire_ms) else { continue };
        report.watermarks += 1;
        schedule_to.advance(&job, fire).await.map_err(|e| port_err(to, "schedule watermark", e))?;
    }

    let (chats, chats_to) = (from.chats(), to.chats());
    for key in chats.conversations().await? {
        let messages = chats.load(&key).await.map_err(|e| source_err("conversation", e))?;
        report.conversations += 1;
        report.chat_messages += messages.len() as u64;
        chats_to
            .append(&key, &messages)
            .await
            .map_err(|e| port_err(to, &format!("conversation {key}"), e))?;
    }

    let (sessions, sessions_to) = (from.gateway_sessions()?, to.gateway_sessions()?);
    let mut after: Option<String> = None;
    loop {
        let page =
            sessions.list(after.as_deref(), PAGE).await.map_err(|e| source_err("gateway sessions", e))?;
        for session in &page {
            sessions_to
                .save(&session.key, &session.state, session.saved_ms)
                .await
                .map_err(|e| port_err(to, "gateway session", e))?;
        }
        report.sessions += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = Some(last.key.clone()),
            _ => break,
        }
    }

    let (cache, cache_to) = (from.review_cache(), to.review_cache());
    let mut after = None;
    loop {
        let page = cache.entries(after.as_ref(), PAGE).await?;
        for entry in &page {
            cache_to.put_entry(entry).await?;
        }
        report.review_cells += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = Some(last.key.clone()),
            _ => break,
        }
    }

    copy_fleet(from, to, &mut report).await?;
    Ok(report)
}

/// The fleet's history, bench runs and action audit (see the module docs).
async fn copy_fleet(from: &Store, to: &Store, report: &mut CopyReport) -> Result<(), StoreError> {
    let (fleet, fleet_to): (std::sync::Arc<dyn FleetStore>, _) = (from.fleet()?, to.fleet()?);
    let read = |what: &str, e: executus_fleet::store::FleetStoreError| port_err(from, what, e);
    let write = |what: &str, e: executus_fleet::store::FleetStoreError| port_err(to, what, e);
    // Every timestamp the fleet keeps falls in here (the backends store microseconds).
    let (start, end) = (
        chrono::DateTime::from_timestamp(0, 0).unwrap_or_default(),
        chrono::DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default(),
    );
    for host in fleet.history_hosts().await.map_err(|e| read("fleet hosts", e))? {
        // Newest first from the source; written oldest first.
        let mut rows =
            fleet.recent_activity(Some(&host), u32::MAX).await.map_err(|e| read("fleet activity", e))?;
        rows.reverse();
        for chunk in rows.chunks(PAGE as usize) {
            report.fleet_activity +=
                fleet_to.insert_activity(chunk).await.map_err(|e| write("fleet activity", e))?;
        }
        // Raw samples a day at a time, oldest first.
        if let (Some(oldest), Some(newest)) = (
            fleet.oldest_raw_perf(&host).await.map_err(|e| read("fleet perf", e))?,
            fleet.perf_watermark(&host).await.map_err(|e| read("fleet perf", e))?,
        ) {
            let mut from_ts = oldest;
            while from_ts <= newest {
                let to_ts = from_ts + chrono::Duration::days(1);
                let samples =
                    fleet.raw_perf(&host, from_ts, to_ts).await.map_err(|e| read("fleet perf", e))?;
                for chunk in samples.chunks(PAGE as usize) {
                    report.fleet_samples +=
                        fleet_to.insert_perf(chunk).await.map_err(|e| write("fleet perf", e))?;
                }
                from_ts = to_ts;
            }
        }
        let buckets = fleet.buckets(&host, start, end).await.map_err(|e| read("fleet perf buckets", e))?;
        for chunk in buckets.chunks(PAGE as usize) {
            fleet_to.upsert_buckets(chunk).await.map_err(|e| write("fleet perf buckets", e))?;
        }
        report.fleet_buckets += buckets.len() as u64;
        let states = fleet.model_state_history(&host).await.map_err(|e| read("fleet model states", e))?;
        for chunk in states.chunks(PAGE as usize) {
            fleet_to.record_model_states(chunk).await.map_err(|e| write("fleet model states", e))?;
        }
        report.fleet_model_states += states.len() as u64;
    }
    let mut runs = fleet.runs(None, None, u32::MAX).await.map_err(|e| read("fleet bench runs", e))?;
    runs.reverse();
    for run in &runs {
        fleet_to.save_run(run).await.map_err(|e| write("fleet bench run", e))?;
    }
    report.fleet_bench_runs = runs.len() as u64;
    let mut actions = fleet.actions(None, u32::MAX).await.map_err(|e| read("fleet actions", e))?;
    actions.reverse();
    for action in &actions {
        fleet_to.record_action(action).await.map_err(|e| write("fleet action", e))?;
    }
    report.fleet_actions = actions.len() as u64;
    Ok(())
}

/// Refuses a target that holds anything.
async fn ensure_empty(to: &Store) -> Result<(), StoreError> {
    let mut held = Vec::new();
    if !to.checkpoints().interrupted().await?.is_empty() {
        held.push("runs");
    }
    if to.personas().count().await? > 0 {
        held.push("personas");
    }
    if !to.skills().list().await.map_err(|e| port_err(to, "skills", e))?.is_empty() {
        held.push("skills");
    }
    if !to.audit().query_page(&AuditQuery::new().limit(1)).await?.records.is_empty() {
        held.push("audit records");
    }
    if to.budget().spend_row_count().await? > 0 {
        held.push("budget spend");
    }
    if !to.schedule().jobs().await.map_err(|e| port_err(to, "schedule", e))?.is_empty()
        || !to.export_watermarks().await?.is_empty()
    {
        held.push("schedule");
    }
    if !to.chats().conversations().await?.is_empty() {
        held.push("conversations");
    }
    let not_empty = |what: &str, e: &dyn std::fmt::Display| port_err(to, what, e);
    if !to.gateway_sessions()?.list(None, 1).await.map_err(|e| not_empty("gateway sessions", &e))?.is_empty()
    {
        held.push("gateway sessions");
    }
    if to.review_cache().count().await? > 0 {
        held.push("review cache");
    }
    let fleet = to.fleet()?;
    if !fleet.history_hosts().await.map_err(|e| not_empty("fleet history", &e))?.is_empty()
        || !fleet.runs(None, None, 1).await.map_err(|e| not_empty("fleet bench runs", &e))?.is_empty()
        || !fleet.actions(None, 1).await.map_err(|e| not_empty("fleet actions", &e))?.is_empty()
    {
        held.push("fleet history");
    }
    if held.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Rejected {
            location: to.location().to_owned(),
            what: "copy target".into(),
            reason: format!("it is not empty (it holds {}); copy only into a new store", held.join(", ")),
        })
    }
}
