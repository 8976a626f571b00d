//! P4: a long chat checkpointed to the SQLite store (`executus-store`, its defaults: WAL,
//! `synchronous = NORMAL`, payload compression on, a fresh file per measurement).
//!
//! Two figures:
//! - storage: a 500-turn tool-using conversation (see [`chat`]) saved as the run actor saves
//!   it (the start, then each turn's two facts as one durable append); the bytes the database
//!   grows by (used pages x page size, from `Store::stats`) per byte of the transcript as
//!   JSON, with compression on and off. The stored log must replay, through the core's state
//!   machine, to the very transcript — otherwise the benchmark fails.
//! - throughput: step-saves per second with 1, 16 and 256 concurrent runs through the core's
//!   `CheckpointHandle` (group commit), beside raw store appends (one transaction per save)
//!   measured in the same run, and how many saves each transaction carried. A "step save"
//!   is what the run actor writes per tool-using step: the model's answer and the tool result
//!   (two facts, about 1.3 KB of JSON), durable (the caller waits for the commit).
//!
//! What it does not measure: reads (resume loads one log), or a disk other than the temp
//! dir's.

pub mod chat;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use executus::checkpoint::{CheckpointHandle, decode, encode};
use executus::llm::Part;
use executus::ports::{CheckpointStore, Entry, PortError, RunAppend, RunMeta, StoredRun, StoredStatus};
use executus::run::machine::{Fact, RunState};
use executus::{Identity, RunId};
use executus_store::{Store, StoreOptions};

use crate::Opts;
use crate::report::{Row, Section, Verdict};

/// The target: stored bytes per transcript byte.
const TARGET_RATIO: f64 = 1.2;
/// The core's default checkpoint interval (durable saves do not wait for it).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// Sizes of one run of P4.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    turns: usize,
    saves: usize,
    repeats: usize,
}

impl Sizes {
    fn of(opts: &Opts) -> Self {
        if opts.smoke {
            Self { turns: 50, saves: 256, repeats: 1 }
        } else {
            Self { turns: 500, saves: 4096, repeats: 3 }
        }
    }
}

/// What one storage measurement found.
#[derive(Debug, Clone)]
pub struct Storage {
    /// Facts saved (the start plus two per turn).
    pub facts: usize,
    /// The transcript as JSON, in bytes (the reference).
    pub transcript_json: u64,
    /// The transcript's text alone (text parts, tool names and arguments, tool results).
    pub transcript_text: u64,
    /// The encoded fact payloads, before compression.
    pub payload: u64,
    /// The payloads as stored (after compression, when on).
    pub stored: u64,
    /// How much the database grew (used pages x page size).
    pub grown: u64,
    /// The file's size after a WAL checkpoint.
    pub file: u64,
}

impl Storage {
    /// Stored bytes per transcript byte (JSON).
    pub fn ratio(&self) -> f64 {
        self.grown as f64 / self.transcript_json.max(1) as f64
    }
}

/// One throughput measurement summary.
struct Throughput {
    /// Step-saves per second: median, min, max over the repeats.
    median: f64,
    min: f64,
    max: f64,
    /// Saves per store transaction (last repeat).
    per_txn: f64,
}

/// Runs P4.
///
/// # Errors
/// If the store cannot be opened or written, or the stored log does not replay to the
/// transcript.
pub async fn run(opts: &Opts) -> anyhow::Result<Section> {
    let sizes = Sizes::of(opts);
    let mut section = Section::new(
        "P4",
        format!(
            "a {}-turn chat checkpointed to the SQLite store; step-saves/s at 1, 16, 256 concurrent runs",
            sizes.turns
        ),
    );
    let on = storage(sizes.turns, true).await.context("storage, compression on")?;
    let off = storage(sizes.turns, false).await.context("storage, compression off")?;
    section.rows.push(Row::new(
        format!("stored bytes per transcript byte ({}-turn chat, compression on)", sizes.turns),
        format!("{:.3}x ({} B stored)", on.ratio(), on.grown),
        format!("transcript {} B as JSON", on.transcript_json),
        format!("<= {TARGET_RATIO}x"),
        Verdict::of(on.ratio() <= TARGET_RATIO),
    ));
    section.rows.push(Row::new(
        "  same, compression off (incompressible content's worst case)",
        format!("{:.3}x ({} B stored)", off.ratio(), off.grown),
        format!(
            "transcript {} B as JSON; payloads alone {:.3}x it, the database {:.3}x the payloads",
            off.transcript_json,
            off.payload as f64 / off.transcript_json.max(1) as f64,
            off.grown as f64 / off.payload.max(1) as f64,
        ),
        "- (not the default: the target is met with compression on, above)",
        Verdict::Info,
    ));
    section.rows.push(Row::info(
        "  payloads before / after compression",
        format!(
            "{} B / {} B ({:.2}x smaller)",
            on.payload,
            on.stored,
            on.payload as f64 / on.stored.max(1) as f64
        ),
        format!("{} facts; file after a WAL checkpoint {} B", on.facts, on.file),
    ));
    for runs in [1usize, 16, 256] {
        let steps = (sizes.saves / runs).max(1);
        let handle = throughput(runs, steps, true, sizes.repeats).await?;
        let raw = throughput(runs, steps, false, sizes.repeats).await?;
        section.rows.push(Row::info(
            format!("step-saves/s, {runs} concurrent run{}, group commit", if runs == 1 { "" } else { "s" }),
            format!(
                "{:.0}/s [{:.0}..{:.0}], {:.1} saves/txn",
                handle.median, handle.min, handle.max, handle.per_txn
            ),
            format!("raw appends (1 txn/save): {:.0}/s [{:.0}..{:.0}]", raw.median, raw.min, raw.max),
        ));
    }
    section.notes.push(format!(
        "**Method.** `executus-store` with its defaults (WAL, `synchronous = NORMAL`, payload \
         compression on), a fresh database file in a temp dir per measurement. Storage: a \
         {turns}-turn tool-using conversation (the user's question, then per turn the assistant's \
         text and tool call and the tool's result; {facts} facts) is driven through the core's \
         state machine, so the transcript is exactly what a run holds; its facts are appended as \
         the run actor saves them (the start, then each turn's two facts as one durable append). \
         Stored bytes = what the database grew by (used pages x page size, `Store::stats`); the \
         reference is the transcript serialised as JSON ({json} B; {text} B of it is text). The \
         stored log is read back and replayed through the state machine: it must rebuild the \
         transcript exactly, or the benchmark fails. Text is generated (Zipf-distributed \
         pseudo-words, fixed seed); deflate shrinks it about as much as prose, likely a little \
         more, so the compression-off row is the bound for content that does not compress \
         (base64, ids): it is stored verbatim, never larger. Without compression the figure is \
         the facts' own JSON (larger than the transcript's: each fact carries its usage, finish \
         reason, provider and model) times what SQLite adds over the payloads (the `(run, seq)` \
         key per row, and B-tree pages only partly filled by rows of about 1 KB).",
        turns = sizes.turns,
        facts = on.facts,
        json = on.transcript_json,
        text = on.transcript_text,
    ));
    section.notes.push(format!(
        "Throughput: a step save is what the run driver writes per tool-using step — the model's \
         answer and the tool result (two facts, about 1.3 KB of JSON) — durable (the caller waits \
         for the commit). {saves} saves per measurement split across 1, 16 or 256 concurrent runs, \
         through the core's `CheckpointHandle` (the saver that finds no write in flight writes; \
         every save arriving meanwhile goes out in the next transaction: group commit), beside raw `CheckpointStore::append` calls (one transaction \
         per save) in the same run; median of {repeats} [min..max]. Saves per transaction counts \
         the appends that reached the store.",
        saves = sizes.saves,
        repeats = sizes.repeats,
    ));
    Ok(section)
}

/// Saves a `turns`-turn chat to a fresh store and measures what it costs.
///
/// # Errors
/// Store errors; the stored log not replaying to the transcript.
pub async fn storage(turns: usize, compress: bool) -> anyhow::Result<Storage> {
    let (facts, transcript) = chat::chat(turns)?;
    let transcript_json = serde_json::to_vec(&transcript)?.len() as u64;
    let transcript_text: u64 = transcript
        .iter()
        .flat_map(|m| &m.parts)
        .map(|p| match p {
            Part::Text { text } => text.len(),
            Part::ToolCall(c) => c.name.len() + c.args.to_string().len(),
            Part::ToolResult(r) => r.content.len(),
            _ => 0,
        } as u64)
        .sum();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("chat.db");
    let store = Store::open_path(&path, StoreOptions::default().compress(compress)).await?;
    let before = store.stats().await?;
    let meta = RunMeta {
        run_id: RunId::new(),
        agent: "bench".into(),
        identity: Identity::new("ada", "acme"),
        parent: None,
        created_ms: 1,
    };
    let cp = store.checkpoints();
    let (mut payload, mut stored) = (0u64, 0u64);
    // As the run actor saves them: the start, then each turn's facts as one durable save.
    let mut chunks = vec![&facts[..1]];
    chunks.extend(facts[1..].chunks(2));
    let mut seq = 0u64;
    for chunk in chunks {
        let entries: Vec<Entry> = chunk
            .iter()
            .map(|f| {
                seq += 1;
                Entry { seq: seq - 1, payload: encode(f) }
            })
            .collect();
        let stats = cp
            .append_batch(&[RunAppend { meta: meta.clone(), status: StoredStatus::Running, entries }])
            .await?;
        payload += stats.payload_bytes as u64;
        stored += stats.stored_bytes as u64;
    }
    let after = store.stats().await?;
    store.checkpoint_wal().await?;
    let file = std::fs::metadata(&path)?.len();
    let grown = after.used_bytes().saturating_sub(before.used_bytes());
    let loaded = cp.load(meta.run_id).await?.context("the saved run is not in the store")?;
    let replayed: Vec<Fact> = loaded.entries.iter().map(|e| decode(&e.payload)).collect::<Result<_, _>>()?;
    let state = RunState::replay(replayed.iter())?;
    store.close().await;
    if state.messages != transcript {
        bail!("the stored log does not replay to the transcript");
    }
    Ok(Storage { facts: facts.len(), transcript_json, transcript_text, payload, stored, grown, file })
}

/// Counts `append` calls, to show how many saves each group commit carried.
struct Counting {
    inner: Arc<dyn CheckpointStore>,
    appends: AtomicU64,
}

#[async_trait::async_trait]
impl CheckpointStore for Counting {
    async fn append(&self, batch: &[RunAppend]) -> Result<(), PortError> {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.inner.append(batch).await
    }

    async fn load(&self, run: RunId) -> Result<Option<StoredRun>, PortError> {
        self.inner.load(run).await
    }

    async fn finish(&self, run: RunId, status: StoredStatus) -> Result<(), PortError> {
        self.inner.finish(run, status).await
    }

    async fn list_interrupted(&self) -> Result<Vec<(RunMeta, StoredStatus)>, PortError> {
        self.inner.list_interrupted().await
    }
}

/// `repeats` measurements of `runs` concurrent runs saving `steps` steps each.
async fn throughput(
    runs: usize,
    steps: usize,
    via_handle: bool,
    repeats: usize,
) -> anyhow::Result<Throughput> {
    let mut rates = Vec::with_capacity(repeats);
    let mut per_txn = 0.0;
    for _ in 0..repeats.max(1) {
        let (rate, appends) = measure(runs, steps, via_handle).await.with_context(|| {
            format!("{runs} concurrent runs, {}", if via_handle { "group commit" } else { "raw" })
        })?;
        rates.push(rate);
        per_txn = (runs * steps) as f64 / appends.max(1) as f64;
    }
    rates.sort_by(f64::total_cmp);
    Ok(Throughput { median: rates[rates.len() / 2], min: rates[0], max: rates[rates.len() - 1], per_txn })
}

/// One measurement: step-saves per second and the transactions (store appends) used.
async fn measure(runs: usize, steps: usize, via_handle: bool) -> anyhow::Result<(f64, u64)> {
    let dir = tempfile::tempdir()?;
    let store = Store::open_path(dir.path().join("tp.db"), StoreOptions::default()).await?;
    measure_on(store, runs, steps, via_handle).await
}

/// [`measure`] on a given (fresh) store; the store is closed afterwards. S2 (`workers`) runs it on
/// PostgreSQL beside SQLite.
pub async fn measure_on(
    store: Store,
    runs: usize,
    steps: usize,
    via_handle: bool,
) -> anyhow::Result<(f64, u64)> {
    let counting = Arc::new(Counting { inner: Arc::new(store.checkpoints()), appends: AtomicU64::new(0) });
    let cp: Arc<dyn CheckpointStore> = counting.clone();
    let handle = CheckpointHandle::new(cp.clone(), CHECKPOINT_INTERVAL);
    let facts = Arc::new(chat::step_facts());
    let started = Instant::now();
    let tasks: Vec<_> = (0..runs)
        .map(|i| {
            let (cp, handle, facts) = (cp.clone(), handle.clone(), facts.clone());
            tokio::spawn(async move {
                let meta = chat::run_meta(i);
                for step in 0..steps {
                    let (model, tool) = &facts[(i + step) % facts.len()];
                    let seq = step as u64 * 2;
                    if via_handle {
                        handle.save(&meta, StoredStatus::Running, seq, &[model, tool], true).await?;
                    } else {
                        let entries = vec![
                            Entry { seq, payload: encode(model) },
                            Entry { seq: seq + 1, payload: encode(tool) },
                        ];
                        cp.append(&[RunAppend {
                            meta: meta.clone(),
                            status: StoredStatus::Running,
                            entries,
                        }])
                        .await?;
                    }
                }
                Ok::<(), PortError>(())
            })
        })
        .collect();
    let mut failed = None;
    for t in tasks {
        if let Err(e) = t.await? {
            failed.get_or_insert(e);
        }
    }
    let elapsed = started.elapsed();
    handle.stop().await;
    store.close().await;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let saves = (runs * steps) as f64;
    Ok((saves / elapsed.as_secs_f64(), counting.appends.load(Ordering::Relaxed)))
}
