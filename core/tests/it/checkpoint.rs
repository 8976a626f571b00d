//! Checkpoint writes: append-only (bytes grow linearly with the transcript) and grouped
//! across concurrent runs.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use executus::config::LaneSettings;
use executus::llm::Usage;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::{MemoryCheckpointStore, Ports};
use executus::{Limits, LoopLimits, RunEnd, RunnableAgent};

use crate::common::{answered, build, call, config, tools};
use crate::doubles::SlowStore;

/// A model that calls `echo` with distinct, 80-character text until `steps` answers were
/// given, then answers; each answer reports a growing prompt, as a real model would.
fn long_loop(steps: usize) -> Outcome {
    Outcome::dynamic(move |req| {
        let n = answered(req);
        let usage = Usage { input_tokens: 200 + 60 * n as u64, output_tokens: 25, ..Usage::default() };
        if n < steps {
            let text = format!("{n:0>80}");
            Outcome::tool_calls([call(&format!("call_{n}"), "echo", &text)]).with_usage(usage)
        } else {
            Outcome::text("done").with_usage(usage)
        }
    })
}

fn long_agent() -> RunnableAgent {
    let limits = Limits {
        max_steps: 1_000,
        loops: LoopLimits { cycle: 1_000, stagnation: 1_000, unproductive: 1_000, finalize_turns: 2 },
        ..Limits::default()
    };
    RunnableAgent::new("long", "You go on.", "fake/m").with_tools(["echo"]).with_limits(limits)
}

/// Bytes written for a run of `steps` tool steps, and the run's serialised transcript size.
async fn bytes_for(steps: usize) -> (u64, usize) {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", long_loop(steps));
    let store = Arc::new(MemoryCheckpointStore::new());
    let ports = Ports { checkpoints: store.clone(), ..Ports::default() };
    let rt = build(&fake, tools(Arc::default()), ports, config(), None);
    let out = rt.run(long_agent(), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{:?}", out.end);
    assert_eq!(out.steps as usize, steps + 1);
    assert_eq!(out.messages.len(), 2 * steps + 2);
    let transcript = serde_json::to_vec(&out.messages).unwrap().len();
    (store.bytes_written(), transcript)
}

#[tokio::test]
async fn checkpoint_bytes_grow_linearly_with_the_transcript() {
    let (b100, _) = bytes_for(100).await;
    let (b200, transcript200) = bytes_for(200).await;
    assert!(b100 > 0);
    assert!((b200 as f64) < 2.5 * b100 as f64, "200 steps wrote {b200} bytes, 100 steps {b100}: not linear");
    assert!(
        (b200 as f64) <= 1.5 * transcript200 as f64,
        "wrote {b200} bytes for a transcript of {transcript200} bytes: saves repeat data"
    );
}

#[tokio::test(start_paused = true)]
async fn saves_of_concurrent_runs_are_grouped_into_few_appends() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", long_loop(3));
    // Each append takes 5 ms, like a fsync.
    let store = SlowStore::new(Duration::from_millis(5));
    let ports = Ports { checkpoints: store.clone(), ..Ports::default() };
    let mut cfg = config();
    cfg.lanes
        .insert("default".into(), LaneSettings { capacity: NonZeroUsize::new(40).unwrap(), max_queue: 0 });
    let rt = build(&fake, tools(Arc::default()), ports, cfg, None);
    let mut handles = Vec::new();
    for _ in 0..40 {
        handles.push(rt.spawn(long_agent(), "go").await.unwrap());
    }
    for h in &handles {
        assert_eq!(h.outcome().await.end, RunEnd::Completed);
    }
    let appends = store.inner.append_calls();
    let entries = store.entries.load(Ordering::SeqCst);
    // Each run saves its start, three (answer, result) pairs and ends: 7 entries
    // written before the end deletes the log.
    assert!(entries >= 40 * 7, "{entries} entries");
    assert!(appends * 5 <= entries, "{appends} appends for {entries} entries: saves are not grouped");
}
