//! Checkpoint benchmark (not a timed test): step-saves per second with 1, 16 and 256
//! concurrent runs — through the core's `CheckpointHandle` (group commit) and as raw store
//! appends (one transaction per save) — and bytes stored per transcript byte for a 500-turn
//! conversation.
//!
//! ```text
//! cargo run --release -p executus-store --example checkpoint_bench
//! ```
//!
//! Every measurement uses a fresh database file in a temp dir, with the store's defaults
//! (WAL, synchronous = NORMAL, payload compression on). A "step save" is what the run actor
//! writes per tool-using step: the model's answer and the tool result (two facts, about
//! 1.3 KB of JSON), saved durably (the caller waits until it is committed).
//!
//! Text is generated, not real: Zipf-distributed pseudo-words from a 4,000-word syllable
//! vocabulary with a fixed seed; deflate shrinks these payloads about 2.15x, likely a bit
//! more than real prose in 1 KB pieces. Content that does not compress (base64, random ids)
//! is stored verbatim, never larger, so the "compression off" line is the worst case for
//! the same message sizes.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use executus::checkpoint::{CheckpointHandle, encode};
use executus::llm::{FinishReason, Message, Part, Role, ToolCall, ToolResult, Usage};
use executus::ports::{CheckpointStore, Entry, PortError, RunAppend, RunMeta, StoredRun, StoredStatus};
use executus::run::machine::{Fact, RunState};
use executus::{Identity, RunId, RunnableAgent};
use executus_store::{Store, StoreOptions};

type BoxError = Box<dyn Error + Send + Sync>;

/// Deterministic pseudo-English.
struct Text {
    rng: fastrand::Rng,
    words: Vec<String>,
    weights: Vec<f64>,
}

impl Text {
    fn new(seed: u64) -> Self {
        const SYLLABLES: [&str; 40] = [
            "an", "be", "con", "de", "en", "ex", "for", "ge", "in", "is", "ka", "la", "men", "mo", "na",
            "ne", "or", "pe", "pro", "qua", "re", "ri", "sa", "se", "sion", "ta", "te", "ter", "ti", "tion",
            "to", "tu", "un", "ver", "vi", "wa", "al", "ing", "ed", "ly",
        ];
        let mut rng = fastrand::Rng::with_seed(seed);
        let words: Vec<String> = (0..4000)
            .map(|_| (0..rng.usize(1..=4)).map(|_| SYLLABLES[rng.usize(..SYLLABLES.len())]).collect())
            .collect();
        // Zipf: the word of rank r has weight 1/r (cumulative, for sampling).
        let mut total = 0.0;
        let weights = (1..=words.len())
            .map(|r| {
                total += 1.0 / r as f64;
                total
            })
            .collect();
        Self { rng, words, weights }
    }

    fn sentence_bytes(&mut self, len: usize) -> String {
        let total = *self.weights.last().unwrap_or(&1.0);
        let mut out = String::with_capacity(len + 16);
        let mut since_stop = 0;
        while out.len() < len {
            let x = self.rng.f64() * total;
            let i = self.weights.partition_point(|&w| w < x).min(self.words.len() - 1);
            out.push_str(&self.words[i]);
            since_stop += 1;
            if since_stop > 6 && self.rng.u8(..8) == 0 {
                out.push_str(". ");
                since_stop = 0;
            } else if self.rng.u8(..12) == 0 {
                out.push_str(", ");
            } else {
                out.push(' ');
            }
        }
        out
    }

    fn range(&mut self, lo: usize, hi: usize) -> String {
        let len = self.rng.usize(lo..=hi);
        self.sentence_bytes(len)
    }
}

fn agent() -> RunnableAgent {
    let mut agent =
        RunnableAgent::new("bench", "You are a helpful assistant.", "mock/bench").with_tools(["search"]);
    agent.limits.max_steps = 100_000;
    agent
}

fn model_fact(text: &mut Text, turn: usize) -> Fact {
    let message = Message {
        role: Role::Assistant,
        parts: vec![
            Part::Text { text: text.range(200, 1200) },
            Part::ToolCall(ToolCall {
                id: format!("call_{turn}"),
                name: "search".into(),
                args: serde_json::json!({ "query": text.range(20, 80), "page": turn }),
                signature: None,
            }),
        ],
    };
    Fact::Model {
        message,
        usage: Usage { input_tokens: 1_000 + turn as u64 * 600, output_tokens: 180, ..Usage::default() },
        finish: FinishReason::ToolCalls,
        provider: "mock".into(),
        model: "bench".into(),
        steered: 0,
    }
}

fn tool_fact(text: &mut Text, turn: usize) -> Fact {
    Fact::ToolResult {
        result: ToolResult {
            id: format!("call_{turn}"),
            name: "search".into(),
            content: format!("result {turn}: {}", text.range(300, 2000)),
            is_error: false,
        },
        blocked: false,
    }
}

/// A valid 500-turn conversation: the user's question, then per turn the assistant answers
/// with text and a tool call and the tool answers. Driven through the core's state machine,
/// so the transcript is exactly what the run holds (and replaying the stored log must
/// rebuild it).
fn chat(turns: usize) -> Result<(Vec<Fact>, Vec<Message>), BoxError> {
    let mut text = Text::new(7);
    let start = Fact::Started {
        run_id: RunId::new(),
        agent: Box::new(agent()),
        identity: Identity::new("ada", "acme"),
        parent: None,
        input: vec![Message::user(text.range(100, 400))],
        created_ms: 1,
    };
    let mut state = RunState::start(&start)?;
    let mut facts = vec![start];
    for turn in 0..turns {
        state.next_action();
        let model = model_fact(&mut text, turn);
        state.apply(&model)?;
        facts.push(model);
        state.next_action();
        let tool = tool_fact(&mut text, turn);
        state.apply(&tool)?;
        facts.push(tool);
    }
    if state.is_ended() {
        return Err(format!("the conversation ended early: {:?}", state.end).into());
    }
    Ok((facts, state.messages))
}

async fn storage(compress: bool) -> Result<(), BoxError> {
    let (facts, transcript) = chat(500)?;
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
    let store =
        Store::open_path(dir.path().join("chat.db"), StoreOptions::default().compress(compress)).await?;
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
    let mut seq = 0u64;
    let mut chunks = vec![&facts[..1]];
    chunks.extend(facts[1..].chunks(2));
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
    let file = std::fs::metadata(dir.path().join("chat.db"))?.len();
    let grown = after.used_bytes() - before.used_bytes();
    let loaded = cp.load(meta.run_id).await?.ok_or("run vanished")?;
    let replayed: Vec<Fact> =
        loaded.entries.iter().map(|e| executus::checkpoint::decode(&e.payload)).collect::<Result<_, _>>()?;
    let state = RunState::replay(replayed.iter())?;
    if state.messages != transcript {
        return Err("the stored log does not replay to the transcript".into());
    }
    println!(
        "500-turn chat, compression {}: {} facts, transcript {} B as JSON ({} B of text); \
         payloads {} B, stored payloads {} B; database grew by {} B (used pages x page size; file {} B after WAL checkpoint)",
        if compress { "on " } else { "off" },
        facts.len(),
        transcript_json,
        transcript_text,
        payload,
        stored,
        grown,
        file,
    );
    println!(
        "  => {:.3} bytes stored per transcript byte (JSON); {:.3} per byte of text; payload JSON alone is {:.3}x the transcript",
        grown as f64 / transcript_json as f64,
        grown as f64 / transcript_text as f64,
        payload as f64 / transcript_json as f64,
    );
    store.close().await;
    Ok(())
}

/// Per-step facts for the throughput runs (encoded once; the payload bytes are realistic).
fn step_facts() -> Vec<(Fact, Fact)> {
    let mut text = Text::new(11);
    (0..64).map(|turn| (model_fact(&mut text, turn), tool_fact(&mut text, turn))).collect()
}

fn run_meta(i: usize) -> RunMeta {
    RunMeta {
        run_id: RunId::new(),
        agent: "bench".into(),
        identity: Identity::new(format!("user{i}"), "acme"),
        parent: None,
        created_ms: i as u64,
    }
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

/// One measurement: step-saves per second and transactions used.
async fn throughput(runs: usize, steps: usize, via_handle: bool) -> Result<(f64, u64), BoxError> {
    let dir = tempfile::tempdir()?;
    let store = Store::open_path(dir.path().join("tp.db"), StoreOptions::default()).await?;
    let counting = Arc::new(Counting { inner: Arc::new(store.checkpoints()), appends: AtomicU64::new(0) });
    let cp: Arc<dyn CheckpointStore> = counting.clone();
    // The core's default checkpoint interval; durable saves do not wait for it.
    let handle = CheckpointHandle::spawn(cp.clone(), Duration::from_millis(100)).await?;
    let facts = Arc::new(step_facts());
    let started = Instant::now();
    let tasks: Vec<_> = (0..runs)
        .map(|i| {
            let (cp, handle, facts) = (cp.clone(), handle.clone(), facts.clone());
            tokio::spawn(async move {
                let meta = run_meta(i);
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
                Ok::<(), BoxError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    handle.stop().await;
    store.close().await;
    let saves = (runs * steps) as f64;
    Ok((saves / elapsed.as_secs_f64(), counting.appends.load(Ordering::Relaxed)))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    const REPEATS: usize = 3;
    println!(
        "executus-store checkpoint benchmark: WAL, synchronous=NORMAL, compression on, a fresh file per measurement"
    );
    println!(
        "step save = model answer + tool result (2 facts, ~1.3 KB JSON), durable: the caller waits for the commit"
    );
    println!("median of {REPEATS} measurements [min..max]; 4096 step saves per measurement");
    println!();
    for runs in [1usize, 16, 256] {
        let steps = 4096 / runs;
        for via_handle in [true, false] {
            let mut rates = Vec::with_capacity(REPEATS);
            let mut txns = 0;
            for _ in 0..REPEATS {
                let (rate, appends) = throughput(runs, steps, via_handle).await?;
                rates.push(rate);
                txns = appends;
            }
            rates.sort_by(f64::total_cmp);
            println!(
                "{:>4} concurrent runs, {:<35} {:>7.0} step-saves/s [{:.0}..{:.0}], {:.1} saves per transaction",
                runs,
                if via_handle {
                    "CheckpointHandle (group commit):"
                } else {
                    "raw store append (1 txn/save):"
                },
                rates[REPEATS / 2],
                rates[0],
                rates[REPEATS - 1],
                (runs * steps) as f64 / txns.max(1) as f64,
            );
        }
    }
    println!();
    storage(true).await?;
    storage(false).await?;
    Ok(())
}
