//! `models [--check]`: providers, tiers and the chains they resolve to; `--check` makes one
//! tiny call per provider against the mock server and reports latency or the classified error.

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn models_lists_tiers_and_checks_each_provider() {
    let good = openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer("pong"))).await;
    let bad = openai_server(|_| {
        ResponseTemplate::new(401).set_body_json(
            json!({"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}),
        )
    })
    .await;
    let config = format!(
        r#"
[providers.good]
kind = "openai"
base_url = "{}/v1"

[providers.bad]
kind = "openai"
base_url = "{}/v1"

[tiers]
fast = "good/small, bad/large"
"#,
        good.uri(),
        bad.uri()
    );
    let ws = Workspace::new(&config);
    let out = ws.run(&["models"], None).await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("fast = good/small, bad/large"), "{stdout}");
    assert!(stdout.contains("chain: good/small -> bad/large"), "{stdout}");
    assert!(calls(&good).await.is_empty(), "listing makes no call");

    let out = ws.run(&["models", "--check"], None).await;
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("good/small: ok in"), "{stdout}");
    assert!(stdout.contains("bad/large: permanent"), "the error is classified: {stdout}");
    assert_eq!(calls(&good).await.len(), 1);
    assert_eq!(calls(&bad).await.len(), 1);
}
