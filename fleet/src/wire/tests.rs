use serde_json::Value;

use super::*;
use crate::sse::SseDecoder;

const FIXTURE: &str = include_str!("../../tests/fixtures/llama-swap-wire.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("the fixture is JSON")
}

/// Decodes one framed event of the fixture through the SSE decoder and the event decoder.
fn event(section: &str, name: &str) -> HostEvent {
    let fx = fixture();
    let text = fx[section][name].as_str().expect("a framed event");
    let mut frames = Vec::new();
    SseDecoder::new(1 << 20).feed(text.as_bytes(), &mut frames).expect("small");
    assert_eq!(frames.len(), 1, "{name}: one frame");
    assert_eq!(frames[0].event, "message");
    decode_event(&frames[0].data).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_current_event_of_the_fixture_decodes() {
    let HostEvent::ModelStatus(models) = event("events", "modelStatus") else { panic!("models") };
    assert_eq!(models.len(), 3);
    assert_eq!(models[1].id, "qwen3-8b");
    assert_eq!(models[1].state, ModelState::Ready);
    assert_eq!(models[1].aliases, ["qwen"]);
    assert_eq!(models[1].context_length, Some(32768));
    assert!(models[0].unlisted);
    assert_eq!(models[2].peer_id, "gpu2");
    assert_eq!(models[2].state, ModelState::Other(String::new()), "peer models carry no state");

    assert!(matches!(event("events", "logData"), HostEvent::Log { source: LogSource::Proxy, .. }));
    assert!(matches!(event("events", "uiConfig"), HostEvent::UiConfig(_)));
    assert_eq!(event("events", "profileChanged"), HostEvent::ProfileChanged { active: None });
    assert_eq!(event("events", "activity"), HostEvent::Activity { id: 41 });

    let HostEvent::Inflight(InflightUpdate::Snapshot(reqs)) = event("events", "inflight_snapshot") else {
        panic!("snapshot")
    };
    assert_eq!(reqs.len(), 1);
    assert_eq!((reqs[0].id.as_str(), reqs[0].model.as_str()), ("7", "qwen3-8b"));
    assert_eq!(
        event("events", "inflight_empty_snapshot"),
        HostEvent::Inflight(InflightUpdate::Snapshot(vec![]))
    );
    assert!(
        matches!(event("events", "inflight_upsert"), HostEvent::Inflight(InflightUpdate::Upsert(r)) if r.id == "7")
    );
    assert_eq!(event("events", "inflight_remove"), HostEvent::Inflight(InflightUpdate::Remove("7".into())));
}

#[test]
fn legacy_events_decode() {
    let HostEvent::Metrics(rows) = event("legacy_events", "metrics") else { panic!("metrics") };
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, 41);
    assert_eq!(rows[0].tokens.output_tokens, 64);
    assert_eq!(event("legacy_events", "inflight"), HostEvent::Inflight(InflightUpdate::Total(2)));
}

#[test]
fn bodies_of_the_fixture_decode() {
    let fx = fixture();
    let page: ActivityPage =
        decode_body("activity", fx["activity_page"].to_string().as_bytes()).expect("page");
    assert_eq!(page.total_pages, 1);
    assert_eq!(page.data[0].tokens.tokens_per_second, 41.7);
    assert_eq!(page.data[0].timestamp.timestamp_subsec_nanos(), 123_456_789);
    let perf: PerfReport = decode_body("perf", fx["performance"].to_string().as_bytes()).expect("perf");
    assert!(perf.enabled);
    assert_eq!(perf.gpu_stats[0].mem_used_mb, 21504.0);
    assert_eq!(perf.sys_stats[0].cpu_util_per_core, [12.5, 40.0]);
    let off: PerfReport =
        decode_body("perf", fx["performance_disabled"].to_string().as_bytes()).expect("off");
    assert!(!off.enabled);
}

#[test]
fn both_error_shapes_give_their_message() {
    let fx = fixture();
    assert_eq!(error_message(fx["errors"]["current"].to_string().as_bytes()), "model not found");
    assert_eq!(error_message(fx["errors"]["legacy"].to_string().as_bytes()), "model not found");
    assert_eq!(error_message(b"  plain text\n"), "plain text");
}

#[test]
fn malformed_events_are_errors_that_name_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("not json", "event envelope is malformed"),
        (r#"{"data":"{}"}"#, "event envelope is malformed"),
        (r#"{"type":"modelStatus","data":"[{\"id\":1}]"}"#, "`modelStatus` event payload is malformed"),
        (r#"{"type":"activity","data":"{\"id\":-3}"}"#, "`activity` event payload is malformed"),
        (r#"{"type":"inflight","data":"{\"operation\":\"explode\"}"}"#, "unknown operation"),
        (r#"{"type":"inflight","data":"{\"total\":\"many\"}"}"#, "`total` is not a count"),
        (r#"{"type":"inflight","data":"{\"operation\":\"upsert\"}"}"#, "an upsert without `request`"),
        (r#"{"type":"logData","data":"{\"source\":\"elsewhere\"}"}"#, "`logData` event payload is malformed"),
        (r#"{"type":"metrics","data":"not json"}"#, "`metrics` event payload is malformed"),
    ];
    for (data, want) in cases {
        let err = decode_event(data).expect_err(data);
        assert!(err.to_string().contains(want), "{data}: {err}");
    }
    // Unknown types from newer hosts are not errors.
    assert_eq!(
        decode_event(r#"{"type":"somethingNew","data":"{\"x\":1}"}"#),
        Ok(HostEvent::Other { kind: "somethingNew".into() })
    );
}

#[test]
fn previews_are_bounded_and_cut_on_char_boundaries() {
    let long = "é".repeat(500);
    let p = preview(&long);
    assert!(p.len() <= 204, "{}", p.len());
    assert!(p.ends_with('…'));
}
