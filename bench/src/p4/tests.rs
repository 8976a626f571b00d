//! P4's workload and measurements at tiny sizes.

use super::*;

#[test]
fn the_chat_is_deterministic_and_well_formed() {
    let (facts, transcript) = chat::chat(3).unwrap_or_else(|e| panic!("{e:#}"));
    let (_, again) = chat::chat(3).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(facts.len(), 7, "the start plus two facts per turn");
    assert_eq!(transcript.len(), 7, "the question plus an answer and a tool result per turn");
    assert_eq!(transcript, again, "the same seed gives the same text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_chat_replays_and_compression_shrinks_it() {
    let on = storage(20, true).await.unwrap_or_else(|e| panic!("{e:#}"));
    let off = storage(20, false).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(on.facts, 41);
    assert_eq!(on.transcript_json, off.transcript_json, "the same transcript");
    assert!(on.stored < on.payload, "compression on shrinks payloads: {on:?}");
    assert_eq!(off.stored, off.payload, "compression off stores payloads verbatim: {off:?}");
    assert!(on.grown > 0 && on.grown < off.grown, "on {on:?} off {off:?}");
    assert!(on.ratio() < off.ratio());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_counts_the_transactions_that_reached_the_store() {
    let (rate, appends) = measure(8, 4, true).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(rate > 0.0);
    assert!((1..=32).contains(&appends), "{appends} transactions for 32 saves");
    let (rate, appends) = measure(4, 2, false).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(rate > 0.0);
    assert_eq!(appends, 8, "raw appends: one transaction per save");
}
