//! The write path of `append`: compress, then a constant number of statements per group
//! commit — one multi-row upsert of the run headers (returning each run's id and next
//! expected sequence number) and one multi-row insert of the new entries, chunked to stay
//! far below SQLite's parameter limit. A batch of 250 runs is a handful of statements, not
//! hundreds, which is what lets group commit scale with the number of concurrent runs.

use std::collections::HashMap;

use executus::ports::{Entry, RunAppend, RunMeta, StoredStatus};
use sqlx::sqlite::{Sqlite, SqliteConnection};
use sqlx::{QueryBuilder, Row};

use super::i64_of;
use crate::codec::AppendStats;
use crate::codec::Encoding;
use crate::error::StoreError;
use crate::sqlite::SqliteStore;

const OP: &str = "checkpoint append";

/// Run headers per upsert statement (7 parameters each).
const RUN_CHUNK: usize = 100;

/// Entries per insert statement (4 parameters each).
const ENTRY_CHUNK: usize = 128;

/// One run of the batch (appends of the same run merged, in order).
struct RunRows<'a> {
    meta: &'a RunMeta,
    run_id: String,
    status: StoredStatus,
    entries: Vec<(&'a Entry, Option<&'a [u8]>)>,
}

/// Writes the batch inside the caller's transaction.
pub(super) async fn write(
    store: &SqliteStore,
    tx: &mut SqliteConnection,
    batch: &[RunAppend],
    deflated: &[Vec<Option<Vec<u8>>>],
    now: i64,
    stats: &mut AppendStats,
) -> Result<(), StoreError> {
    // Merge appends of one run (the core sends one per run per batch; the port allows more):
    // first header, last status, entries in order.
    let mut runs: Vec<RunRows<'_>> = Vec::with_capacity(batch.len());
    let mut index: HashMap<_, usize> = HashMap::with_capacity(batch.len());
    for (append, deflated) in batch.iter().zip(deflated) {
        let i = *index.entry(append.meta.run_id).or_insert_with(|| {
            runs.push(RunRows {
                meta: &append.meta,
                run_id: append.meta.run_id.to_string(),
                status: append.status,
                entries: Vec::new(),
            });
            runs.len() - 1
        });
        runs[i].status = append.status;
        runs[i].entries.extend(append.entries.iter().zip(deflated.iter().map(Option::as_deref)));
    }

    let mut next: HashMap<String, (i64, u64)> = HashMap::with_capacity(runs.len());
    for chunk in runs.chunks(RUN_CHUNK) {
        upsert_headers(store, tx, chunk, now, &mut next).await?;
    }

    let mut rows: Vec<(i64, i64, Encoding, &[u8])> = Vec::new();
    for run in &runs {
        let Some(&(id, mut expected)) = next.get(&run.run_id) else {
            return Err(store.undecodable(format!("run {} has no header after its upsert", run.run_id)));
        };
        for (entry, deflated) in &run.entries {
            if entry.seq < expected {
                continue; // already stored: appends are idempotent
            }
            if entry.seq > expected {
                return Err(store.rejected(
                    format!("entry for run {}", run.run_id),
                    format!("sequence gap: expected {expected}, got {}", entry.seq),
                ));
            }
            let (encoding, stored) = match deflated {
                Some(d) => (Encoding::Deflate, *d),
                None => (Encoding::Verbatim, entry.payload.as_slice()),
            };
            rows.push((id, i64_of(store, "seq", entry.seq)?, encoding, stored));
            stats.inserted += 1;
            stats.payload_bytes += entry.payload.len();
            stats.stored_bytes += stored.len();
            expected += 1;
        }
    }
    for chunk in rows.chunks(ENTRY_CHUNK) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO checkpoint_entries (run, seq, encoding, payload) ");
        insert.push_values(chunk, |mut row, (id, seq, encoding, stored)| {
            row.push_bind(*id).push_bind(*seq).push_bind(encoding.code()).push_bind(*stored);
        });
        insert.build().execute(&mut *tx).await.map_err(|e| store.db(OP, e))?;
    }
    Ok(())
}

/// Inserts or updates the headers of `runs`, recording each run's row id and the sequence
/// number its next entry must have.
///
/// A finished run that is appended to again is a new run under a reused id: its header is
/// replaced (its old entries were deleted by `finish`, so its log restarts at 0).
async fn upsert_headers(
    store: &SqliteStore,
    tx: &mut SqliteConnection,
    runs: &[RunRows<'_>],
    now: i64,
    next: &mut HashMap<String, (i64, u64)>,
) -> Result<(), StoreError> {
    let mut values = Vec::with_capacity(runs.len());
    for run in runs {
        let identity = serde_json::to_string(&run.meta.identity)
            .map_err(|e| store.rejected(format!("identity of run {}", run.run_id), e.to_string()))?;
        let created = i64_of(store, "created_ms", run.meta.created_ms)?;
        values.push((run, identity, created));
    }
    let mut upsert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO checkpoint_runs (run_id, agent, identity, parent, status, created_ms, updated_ms) ",
    );
    upsert.push_values(&values, |mut row, (run, identity, created)| {
        row.push_bind(run.run_id.as_str())
            .push_bind(run.meta.agent.as_str())
            .push_bind(identity.as_str())
            .push_bind(run.meta.parent.map(|p| p.to_string()))
            .push_bind(run.status.as_str())
            .push_bind(*created)
            .push_bind(now);
    });
    upsert.push(
        " ON CONFLICT (run_id) DO UPDATE SET \
             agent      = iif(status IN ('completed', 'failed'), excluded.agent, agent), \
             identity   = iif(status IN ('completed', 'failed'), excluded.identity, identity), \
             parent     = iif(status IN ('completed', 'failed'), excluded.parent, parent), \
             created_ms = iif(status IN ('completed', 'failed'), excluded.created_ms, created_ms), \
             status     = excluded.status, \
             updated_ms = excluded.updated_ms \
         RETURNING run_id, id, \
             (SELECT coalesce(max(seq) + 1, 0) FROM checkpoint_entries WHERE run = checkpoint_runs.id)",
    );
    let returned = upsert.build().fetch_all(&mut *tx).await.map_err(|e| store.db(OP, e))?;
    for row in returned {
        let run_id: String = row.try_get(0).map_err(|e| store.db(OP, e))?;
        let id: i64 = row.try_get(1).map_err(|e| store.db(OP, e))?;
        let expected: i64 = row.try_get(2).map_err(|e| store.db(OP, e))?;
        next.insert(run_id, (id, expected.max(0) as u64));
    }
    Ok(())
}
