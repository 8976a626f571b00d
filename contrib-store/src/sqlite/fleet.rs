//! [`SqliteFleetStore`]: executus-fleet's stores (`HistoryStore`, `BenchStore`,
//! `ActionLog`, `LeaseStore`) on SQLite.
//!
//! Layout (migration `0010_fleet.sql`; times in Unix microseconds):
//! - `fleet_activity`: one row per host activity row, keyed (host, remote id, time) — a row
//!   fetched twice is stored once; indexed on (host, time) and on time for retention;
//! - `fleet_perf`: raw samples keyed (host, time) (the key is the (host, time) index);
//!   `fleet_perf_5m`: 5-minute buckets keyed (host, start);
//! - `fleet_model_states`: model state changes, indexed (host, model, time);
//! - `fleet_bench_runs`: runs as JSON with host, model and start as columns;
//! - `fleet_actions`: the action audit, in insertion order;
//! - `fleet_leases`: one row per leased host.
//!
//! Guarantees beyond the traits' (checked by the fleet's conformance suite, run in
//! `tests/it/fleet.rs` on a file and in memory):
//! - a lease is granted inside one `BEGIN IMMEDIATE` transaction, so two processes sharing
//!   the file never both hold a host (the cross-process test kills a holder with SIGKILL);
//! - bucket upserts of one call are one transaction; deletes and prunes take a row cap.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use executus_fleet::bench::BenchRun;
use executus_fleet::store::{
    ActionLog, ActionRecord, ActivityRecord, BenchStore, FleetStoreError, HistoryStore, LeaseRecord,
    LeaseStore, ModelStateRecord, PerfBucket, PerfSample, StoreResult,
};
use executus_fleet::wire::ModelState;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::error::StoreError;
use crate::sqlite::SqliteStore;

/// The fleet's stores over a [`SqliteStore`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteFleetStore {
    store: SqliteStore,
}

impl SqliteStore {
    /// The fleet's stores (`executus_fleet::store::FleetStore`) over this database.
    pub fn fleet(&self) -> SqliteFleetStore {
        SqliteFleetStore { store: self.clone() }
    }
}

impl SqliteFleetStore {
    /// The fleet's stores over `store` (also [`SqliteStore::fleet`]).
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }
}

fn fail(op: &'static str, e: StoreError) -> FleetStoreError {
    FleetStoreError::Backend { backend: "sqlite", op, message: e.to_string() }
}

fn corrupt(what: &'static str, message: impl Into<String>) -> FleetStoreError {
    FleetStoreError::Corrupt { backend: "sqlite", what, message: message.into() }
}

fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(what: &'static str, v: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| corrupt(what, format!("time {v} µs is out of range")))
}

fn int(what: &'static str, v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| corrupt(what, format!("{v} does not fit a SQLite integer")))
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    row: &'r SqliteRow,
    i: usize,
    what: &'static str,
) -> StoreResult<T> {
    row.try_get(i).map_err(|e| corrupt(what, e.to_string()))
}

fn activity_of(row: &SqliteRow) -> StoreResult<ActivityRecord> {
    const W: &str = "activity row";
    let remote: i64 = get(row, 1, W)?;
    let status: i64 = get(row, 5, W)?;
    Ok(ActivityRecord {
        host: get(row, 0, W)?,
        remote_id: u64::try_from(remote).map_err(|_| corrupt(W, format!("negative id {remote}")))?,
        ts: time(W, get(row, 2, W)?)?,
        model: get(row, 3, W)?,
        req_path: get(row, 4, W)?,
        status: u16::try_from(status).map_err(|_| corrupt(W, format!("status {status}")))?,
        duration_ms: get(row, 6, W)?,
        input_tokens: get(row, 7, W)?,
        output_tokens: get(row, 8, W)?,
        cache_tokens: get(row, 9, W)?,
        prompt_tps: get(row, 10, W)?,
        gen_tps: get(row, 11, W)?,
        error: get(row, 12, W)?,
    })
}

fn perf_of(row: &SqliteRow) -> StoreResult<PerfSample> {
    const W: &str = "perf sample";
    Ok(PerfSample {
        host: get(row, 0, W)?,
        ts: time(W, get(row, 1, W)?)?,
        cpu_pct: get(row, 2, W)?,
        mem_used_mb: get(row, 3, W)?,
        gpu_util_pct: get(row, 4, W)?,
        vram_used_mb: get(row, 5, W)?,
        gpu_temp_c: get(row, 6, W)?,
        power_w: get(row, 7, W)?,
    })
}

fn bucket_of(row: &SqliteRow) -> StoreResult<PerfBucket> {
    const W: &str = "perf bucket";
    let samples: i64 = get(row, 2, W)?;
    Ok(PerfBucket {
        host: get(row, 0, W)?,
        start: time(W, get(row, 1, W)?)?,
        samples: u32::try_from(samples).map_err(|_| corrupt(W, format!("samples {samples}")))?,
        cpu_avg: get(row, 3, W)?,
        cpu_max: get(row, 4, W)?,
        mem_avg: get(row, 5, W)?,
        gpu_util_avg: get(row, 6, W)?,
        gpu_util_max: get(row, 7, W)?,
        vram_max: get(row, 8, W)?,
        temp_max: get(row, 9, W)?,
        power_avg: get(row, 10, W)?,
    })
}

fn lease_of(row: &SqliteRow) -> StoreResult<LeaseRecord> {
    const W: &str = "lease";
    Ok(LeaseRecord {
        host: get(row, 0, W)?,
        holder: get(row, 1, W)?,
        purpose: get(row, 2, W)?,
        acquired: time(W, get(row, 3, W)?)?,
        expires: time(W, get(row, 4, W)?)?,
    })
}

impl SqliteFleetStore {
    async fn fetch(
        &self,
        op: &'static str,
        sql: &'static str,
        binds: Vec<Bind>,
    ) -> StoreResult<Vec<SqliteRow>> {
        let store = &self.store;
        store
            .read(op, || {
                let binds = binds.clone();
                async move {
                    let mut q = sqlx::query(sql);
                    for b in binds {
                        q = b.bind(q);
                    }
                    q.fetch_all(store.reader_pool()).await.map_err(|e| store.db(op, e))
                }
            })
            .await
            .map_err(|e| fail(op, e))
    }

    /// Runs `sql` once per bind set, all in one write transaction; returns the rows changed.
    async fn exec(&self, op: &'static str, sql: &'static str, sets: Vec<Vec<Bind>>) -> StoreResult<u64> {
        let store = &self.store;
        store
            .write(op, || {
                let sets = sets.clone();
                async move {
                    let mut tx = store.begin_write(op).await?;
                    let mut changed = 0;
                    for binds in sets {
                        let mut q = sqlx::query(sql);
                        for b in binds {
                            q = b.bind(q);
                        }
                        changed += q.execute(&mut *tx).await.map_err(|e| store.db(op, e))?.rows_affected();
                    }
                    tx.commit().await.map_err(|e| store.db(op, e))?;
                    Ok(changed)
                }
            })
            .await
            .map_err(|e| fail(op, e))
    }
}

/// A value to bind.
#[derive(Debug, Clone)]
enum Bind {
    I(i64),
    F(Option<f64>),
    S(String),
    O(Option<String>),
}

impl Bind {
    fn bind<'q>(
        self,
        q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
        match self {
            Self::I(v) => q.bind(v),
            Self::F(v) => q.bind(v),
            Self::S(v) => q.bind(v),
            Self::O(v) => q.bind(v),
        }
    }
}

fn s(v: &str) -> Bind {
    Bind::S(v.to_owned())
}

#[async_trait]
impl HistoryStore for SqliteFleetStore {
    async fn insert_activity(&self, rows: &[ActivityRecord]) -> StoreResult<u64> {
        let mut sets = Vec::with_capacity(rows.len());
        for r in rows {
            sets.push(vec![
                s(&r.host),
                Bind::I(int("activity id", r.remote_id)?),
                Bind::I(us(r.ts)),
                s(&r.model),
                s(&r.req_path),
                Bind::I(i64::from(r.status)),
                Bind::I(r.duration_ms),
                Bind::I(r.input_tokens),
                Bind::I(r.output_tokens),
                Bind::I(r.cache_tokens),
                Bind::F(Some(r.prompt_tps)),
                Bind::F(Some(r.gen_tps)),
                Bind::O(r.error.clone()),
            ]);
        }
        self.exec(
            "fleet insert activity",
            "INSERT INTO fleet_activity (host, remote_id, ts_us, model, req_path, status, duration_ms, input_tokens, \
             output_tokens, cache_tokens, prompt_tps, gen_tps, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (host, remote_id, ts_us) DO NOTHING",
            sets,
        )
        .await
    }

    async fn activity_watermark(&self, host: &str) -> StoreResult<Option<u64>> {
        let rows = self
            .fetch(
                "fleet activity watermark",
                "SELECT MAX(remote_id) FROM fleet_activity WHERE host = ?1",
                vec![s(host)],
            )
            .await?;
        let max: Option<i64> = match rows.first() {
            Some(r) => get(r, 0, "activity watermark")?,
            None => None,
        };
        max.map(|m| u64::try_from(m).map_err(|_| corrupt("activity watermark", format!("{m}")))).transpose()
    }

    async fn recent_activity(&self, host: Option<&str>, limit: u32) -> StoreResult<Vec<ActivityRecord>> {
        let rows = match host {
            Some(h) => {
                self.fetch(
                    "fleet recent activity",
                    "SELECT host, remote_id, ts_us, model, req_path, status, duration_ms, input_tokens, output_tokens, \
                     cache_tokens, prompt_tps, gen_tps, error FROM fleet_activity WHERE host = ?1 \
                     ORDER BY ts_us DESC, remote_id DESC LIMIT ?2",
                    vec![s(h), Bind::I(i64::from(limit))],
                )
                .await?
            }
            None => {
                self.fetch(
                    "fleet recent activity",
                    "SELECT host, remote_id, ts_us, model, req_path, status, duration_ms, input_tokens, output_tokens, \
                     cache_tokens, prompt_tps, gen_tps, error FROM fleet_activity \
                     ORDER BY ts_us DESC, remote_id DESC, host DESC LIMIT ?1",
                    vec![Bind::I(i64::from(limit))],
                )
                .await?
            }
        };
        rows.iter().map(activity_of).collect()
    }

    async fn prune_activity(&self, before: DateTime<Utc>, max_rows: u32) -> StoreResult<u64> {
        self.exec(
            "fleet prune activity",
            "DELETE FROM fleet_activity WHERE (host, remote_id, ts_us) IN \
             (SELECT host, remote_id, ts_us FROM fleet_activity WHERE ts_us < ?1 ORDER BY ts_us LIMIT ?2)",
            vec![vec![Bind::I(us(before)), Bind::I(i64::from(max_rows))]],
        )
        .await
    }

    async fn insert_perf(&self, samples: &[PerfSample]) -> StoreResult<u64> {
        let sets = samples
            .iter()
            .map(|p| {
                vec![
                    s(&p.host),
                    Bind::I(us(p.ts)),
                    Bind::F(p.cpu_pct),
                    Bind::F(p.mem_used_mb),
                    Bind::F(p.gpu_util_pct),
                    Bind::F(p.vram_used_mb),
                    Bind::F(p.gpu_temp_c),
                    Bind::F(p.power_w),
                ]
            })
            .collect();
        self.exec(
            "fleet insert perf",
            "INSERT INTO fleet_perf (host, ts_us, cpu_pct, mem_used_mb, gpu_util_pct, vram_used_mb, gpu_temp_c, power_w) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (host, ts_us) DO NOTHING",
            sets,
        )
        .await
    }

    async fn perf_watermark(&self, host: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let rows = self
            .fetch("fleet perf watermark", "SELECT MAX(ts_us) FROM fleet_perf WHERE host = ?1", vec![s(host)])
            .await?;
        let max: Option<i64> = match rows.first() {
            Some(r) => get(r, 0, "perf watermark")?,
            None => None,
        };
        max.map(|v| time("perf watermark", v)).transpose()
    }

    async fn oldest_raw_perf(&self, host: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let rows = self
            .fetch("fleet oldest perf", "SELECT MIN(ts_us) FROM fleet_perf WHERE host = ?1", vec![s(host)])
            .await?;
        let min: Option<i64> = match rows.first() {
            Some(r) => get(r, 0, "oldest perf")?,
            None => None,
        };
        min.map(|v| time("oldest perf", v)).transpose()
    }

    async fn raw_perf(
        &self,
        host: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PerfSample>> {
        let rows = self
            .fetch(
                "fleet raw perf",
                "SELECT host, ts_us, cpu_pct, mem_used_mb, gpu_util_pct, vram_used_mb, gpu_temp_c, power_w \
                 FROM fleet_perf WHERE host = ?1 AND ts_us >= ?2 AND ts_us < ?3 ORDER BY ts_us",
                vec![s(host), Bind::I(us(from)), Bind::I(us(to))],
            )
            .await?;
        rows.iter().map(perf_of).collect()
    }

    async fn delete_raw_perf(&self, host: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<u64> {
        self.exec(
            "fleet delete raw perf",
            "DELETE FROM fleet_perf WHERE host = ?1 AND ts_us >= ?2 AND ts_us < ?3",
            vec![vec![s(host), Bind::I(us(from)), Bind::I(us(to))]],
        )
        .await
    }

    async fn perf_hosts(&self) -> StoreResult<Vec<String>> {
        let rows = self
            .fetch("fleet perf hosts", "SELECT DISTINCT host FROM fleet_perf ORDER BY host", vec![])
            .await?;
        rows.iter().map(|r| get(r, 0, "perf host")).collect()
    }

    async fn upsert_buckets(&self, buckets: &[PerfBucket]) -> StoreResult<()> {
        let sets = buckets
            .iter()
            .map(|b| {
                vec![
                    s(&b.host),
                    Bind::I(us(b.start)),
                    Bind::I(i64::from(b.samples)),
                    Bind::F(b.cpu_avg),
                    Bind::F(b.cpu_max),
                    Bind::F(b.mem_avg),
                    Bind::F(b.gpu_util_avg),
                    Bind::F(b.gpu_util_max),
                    Bind::F(b.vram_max),
                    Bind::F(b.temp_max),
                    Bind::F(b.power_avg),
                ]
            })
            .collect();
        self.exec(
            "fleet upsert buckets",
            "INSERT INTO fleet_perf_5m (host, start_us, samples, cpu_avg, cpu_max, mem_avg, gpu_util_avg, gpu_util_max, \
             vram_max, temp_max, power_avg) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (host, start_us) DO UPDATE SET samples = excluded.samples, cpu_avg = excluded.cpu_avg, \
             cpu_max = excluded.cpu_max, mem_avg = excluded.mem_avg, gpu_util_avg = excluded.gpu_util_avg, \
             gpu_util_max = excluded.gpu_util_max, vram_max = excluded.vram_max, temp_max = excluded.temp_max, \
             power_avg = excluded.power_avg",
            sets,
        )
        .await
        .map(|_| ())
    }

    async fn buckets(
        &self,
        host: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PerfBucket>> {
        let rows = self
            .fetch(
                "fleet buckets",
                "SELECT host, start_us, samples, cpu_avg, cpu_max, mem_avg, gpu_util_avg, gpu_util_max, vram_max, \
                 temp_max, power_avg FROM fleet_perf_5m WHERE host = ?1 AND start_us >= ?2 AND start_us < ?3 ORDER BY start_us",
                vec![s(host), Bind::I(us(from)), Bind::I(us(to))],
            )
            .await?;
        rows.iter().map(bucket_of).collect()
    }

    async fn prune_buckets(&self, before: DateTime<Utc>, max_rows: u32) -> StoreResult<u64> {
        self.exec(
            "fleet prune buckets",
            "DELETE FROM fleet_perf_5m WHERE (host, start_us) IN \
             (SELECT host, start_us FROM fleet_perf_5m WHERE start_us < ?1 ORDER BY start_us LIMIT ?2)",
            vec![vec![Bind::I(us(before)), Bind::I(i64::from(max_rows))]],
        )
        .await
    }

    async fn record_model_states(&self, records: &[ModelStateRecord]) -> StoreResult<()> {
        let sets = records
            .iter()
            .map(|r| vec![s(&r.host), s(&r.model), s(r.state.as_str()), Bind::I(us(r.at))])
            .collect();
        self.exec(
            "fleet record model states",
            "INSERT INTO fleet_model_states (host, model, state, at_us) VALUES (?1, ?2, ?3, ?4)",
            sets,
        )
        .await
        .map(|_| ())
    }

    async fn latest_model_states(&self, host: &str) -> StoreResult<Vec<ModelStateRecord>> {
        let rows = self
            .fetch(
                "fleet latest model states",
                "SELECT s.host, s.model, s.state, s.at_us FROM fleet_model_states AS s WHERE s.host = ?1 AND s.id = \
                 (SELECT t.id FROM fleet_model_states AS t WHERE t.host = s.host AND t.model = s.model \
                  ORDER BY t.at_us DESC, t.id DESC LIMIT 1) ORDER BY s.model",
                vec![s(host)],
            )
            .await?;
        model_states(&rows)
    }

    async fn model_state_history(&self, host: &str) -> StoreResult<Vec<ModelStateRecord>> {
        let rows = self
            .fetch(
                "fleet model state history",
                "SELECT host, model, state, at_us FROM fleet_model_states WHERE host = ?1 ORDER BY id",
                vec![s(host)],
            )
            .await?;
        model_states(&rows)
    }

    async fn history_hosts(&self) -> StoreResult<Vec<String>> {
        let rows = self
            .fetch(
                "fleet history hosts",
                "SELECT host FROM fleet_activity UNION SELECT host FROM fleet_perf \
                 UNION SELECT host FROM fleet_perf_5m UNION SELECT host FROM fleet_model_states",
                vec![],
            )
            .await?;
        let mut hosts =
            rows.iter().map(|r| get::<String>(r, 0, "history host")).collect::<StoreResult<Vec<_>>>()?;
        hosts.sort();
        Ok(hosts)
    }
}

#[async_trait]
impl BenchStore for SqliteFleetStore {
    async fn save_run(&self, run: &BenchRun) -> StoreResult<()> {
        let json = serde_json::to_string(run).map_err(|e| corrupt("bench run", e.to_string()))?;
        self.exec(
            "fleet save bench run",
            "INSERT INTO fleet_bench_runs (id, seq, host, model, started_us, run) VALUES \
             (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM fleet_bench_runs), ?2, ?3, ?4, ?5) \
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, model = excluded.model, \
             started_us = excluded.started_us, run = excluded.run",
            vec![vec![s(&run.id), s(&run.host), s(&run.model), Bind::I(us(run.started)), Bind::S(json)]],
        )
        .await
        .map(|_| ())
    }

    async fn runs(&self, host: Option<&str>, model: Option<&str>, limit: u32) -> StoreResult<Vec<BenchRun>> {
        let rows = self
            .fetch(
                "fleet bench runs",
                "SELECT run FROM fleet_bench_runs WHERE (?1 IS NULL OR host = ?1) AND (?2 IS NULL OR model = ?2) \
                 ORDER BY started_us DESC, seq DESC LIMIT ?3",
                vec![Bind::O(host.map(str::to_owned)), Bind::O(model.map(str::to_owned)), Bind::I(i64::from(limit))],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let json: String = get(r, 0, "bench run")?;
                serde_json::from_str(&json).map_err(|e| corrupt("bench run", e.to_string()))
            })
            .collect()
    }
}

#[async_trait]
impl ActionLog for SqliteFleetStore {
    async fn record_action(&self, r: &ActionRecord) -> StoreResult<()> {
        self.exec(
            "fleet record action",
            "INSERT INTO fleet_actions (id, at_us, host, action, model, actor, outcome, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            vec![vec![
                s(&r.id),
                Bind::I(us(r.at)),
                s(&r.host),
                s(&r.action),
                Bind::O(r.model.clone()),
                s(&r.actor),
                s(&r.outcome),
                s(&r.detail),
            ]],
        )
        .await
        .map(|_| ())
    }

    async fn actions(&self, host: Option<&str>, limit: u32) -> StoreResult<Vec<ActionRecord>> {
        const W: &str = "action";
        let rows = self
            .fetch(
                "fleet actions",
                "SELECT id, at_us, host, action, model, actor, outcome, detail FROM fleet_actions \
                 WHERE (?1 IS NULL OR host = ?1) ORDER BY seq DESC LIMIT ?2",
                vec![Bind::O(host.map(str::to_owned)), Bind::I(i64::from(limit))],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ActionRecord {
                    id: get(r, 0, W)?,
                    at: time(W, get(r, 1, W)?)?,
                    host: get(r, 2, W)?,
                    action: get(r, 3, W)?,
                    model: get(r, 4, W)?,
                    actor: get(r, 5, W)?,
                    outcome: get(r, 6, W)?,
                    detail: get(r, 7, W)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl LeaseStore for SqliteFleetStore {
    async fn acquire(
        &self,
        host: &str,
        holder: &str,
        purpose: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Result<LeaseRecord, LeaseRecord>> {
        const OP: &str = "fleet acquire lease";
        let store = &self.store;
        let row = store
            .write(OP, || async move {
                let mut tx = store.begin_write(OP).await?;
                let current = sqlx::query(
                    "SELECT host, holder, purpose, acquired_us, expires_us FROM fleet_leases WHERE host = ?1",
                )
                .bind(host)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                if let Some(row) = current {
                    let held_by: String = row.try_get(1).map_err(|e| store.db(OP, e))?;
                    let expires: i64 = row.try_get(4).map_err(|e| store.db(OP, e))?;
                    if held_by != holder && expires > us(now) {
                        tx.commit().await.map_err(|e| store.db(OP, e))?;
                        return Ok(Err(row));
                    }
                }
                sqlx::query(
                    "INSERT INTO fleet_leases (host, holder, purpose, acquired_us, expires_us) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (host) DO UPDATE SET holder = excluded.holder, purpose = excluded.purpose, \
                     acquired_us = excluded.acquired_us, expires_us = excluded.expires_us",
                )
                .bind(host)
                .bind(holder)
                .bind(purpose)
                .bind(us(now))
                .bind(us(until))
                .execute(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                let row = sqlx::query(
                    "SELECT host, holder, purpose, acquired_us, expires_us FROM fleet_leases WHERE host = ?1",
                )
                .bind(host)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(Ok(row))
            })
            .await
            .map_err(|e| fail(OP, e))?;
        Ok(match row {
            Ok(granted) => Ok(lease_of(&granted)?),
            Err(held) => Err(lease_of(&held)?),
        })
    }

    async fn renew(&self, host: &str, holder: &str, until: DateTime<Utc>) -> StoreResult<bool> {
        let n = self
            .exec(
                "fleet renew lease",
                "UPDATE fleet_leases SET expires_us = ?3 WHERE host = ?1 AND holder = ?2",
                vec![vec![s(host), s(holder), Bind::I(us(until))]],
            )
            .await?;
        Ok(n > 0)
    }

    async fn release(&self, host: &str, holder: &str) -> StoreResult<bool> {
        let n = self
            .exec(
                "fleet release lease",
                "DELETE FROM fleet_leases WHERE host = ?1 AND holder = ?2",
                vec![vec![s(host), s(holder)]],
            )
            .await?;
        Ok(n > 0)
    }

    async fn revoke(&self, host: &str) -> StoreResult<Option<LeaseRecord>> {
        const OP: &str = "fleet revoke lease";
        let store = &self.store;
        let row = store
            .write(OP, || async move {
                let mut tx = store.begin_write(OP).await?;
                let row = sqlx::query(
                    "DELETE FROM fleet_leases WHERE host = ?1 RETURNING host, holder, purpose, acquired_us, expires_us",
                )
                .bind(host)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| store.db(OP, e))?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                Ok(row)
            })
            .await
            .map_err(|e| fail(OP, e))?;
        row.as_ref().map(lease_of).transpose()
    }

    async fn current(&self, host: &str, now: DateTime<Utc>) -> StoreResult<Option<LeaseRecord>> {
        let rows = self
            .fetch(
                "fleet current lease",
                "SELECT host, holder, purpose, acquired_us, expires_us FROM fleet_leases WHERE host = ?1 AND expires_us > ?2",
                vec![s(host), Bind::I(us(now))],
            )
            .await?;
        rows.first().map(lease_of).transpose()
    }
}

/// Rows of `host, model, state, at_us` as model-state records.
fn model_states(rows: &[SqliteRow]) -> StoreResult<Vec<ModelStateRecord>> {
    const W: &str = "model state";
    rows.iter()
        .map(|r| {
            Ok(ModelStateRecord::new(
                &get::<String>(r, 0, W)?,
                &get::<String>(r, 1, W)?,
                ModelState::parse(&get::<String>(r, 2, W)?),
                time(W, get(r, 3, W)?)?,
            ))
        })
        .collect()
}
