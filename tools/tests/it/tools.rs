//! Builtin tools: `calc` and `clock` tables, `web_fetch` against wiremock on an allow-listed
//! 127.0.0.1 port, and `standard_tools`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use executus::tool::{Tool, ToolContext, ToolError};
use executus::{Identity, RunId, RuntimeConfig};
use executus_tools::calc::{CalcError, MAX_LEN, evaluate, format_number};
use executus_tools::net::AllowList;
use executus_tools::{Calc, Clock, WebFetch, WebFetchLimits, standard_tools};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ctx() -> ToolContext {
    ToolContext::new(RunId::new(), Identity::default(), "tester", "call-1")
}

// ---------------------------------------------------------------- calc

#[test]
fn calc_values_table() {
    let flat_chain = format!("{}1", "1+".repeat(499));
    let table: &[(&str, &str)] = &[
        ("1 + 2", "3"),
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("10 - 4 - 3", "3"),
        ("100 / 10 / 5", "2"),
        ("2 * 3 % 4", "2"),
        ("2 ^ 3 ^ 2", "512"),
        ("(2 ^ 3) ^ 2", "64"),
        ("-2 ^ 2", "-4"),
        ("(-2) ^ 2", "4"),
        ("2 ^ -1", "0.5"),
        ("2 ^ -2 ^ 2", "0.0625"),
        ("--3", "3"),
        ("+-+3", "-3"),
        ("3 - -3", "6"),
        ("-(3 + 4) * 2", "-14"),
        ("7 % 3", "1"),
        ("-7 % 3", "-1"),
        ("7.5 % 2", "1.5"),
        ("1e3 + 1", "1001"),
        ("2.5E-2 * 4", "0.1"),
        ("1E+2", "100"),
        (".5 + .25", "0.75"),
        ("0.1 + 0.2", "0.3"),
        ("1 / 3", "0.333333333333333"),
        ("10 / 4", "2.5"),
        ("2 ** 10", "1024"),
        ("2 ^ 0.5", "1.4142135623731"),
        ("  \t 42  \n", "42"),
        ("123456789 * 1000", "123456789000"),
        ("1e15", "1e15"),
        ("1e-7 * 2", "2e-7"),
        ("-0", "0"),
        ("5 - 5", "0"),
        ("2 * (3 + (4 - 1)) ^ 2", "72"),
        ("((((((1))))))", "1"),
        (&flat_chain, "500"),
    ];
    assert!(table.len() >= 30);
    for (expr, want) in table {
        let got = evaluate(expr).map(format_number);
        assert_eq!(got.as_deref(), Ok(*want), "{expr:?}");
    }
}

#[test]
fn calc_errors_table() {
    let deep_parens = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    let deep_unary = format!("{}1", "-".repeat(150));
    let deep_power = format!("{}2", "2^".repeat(120));
    let too_long = "1".repeat(MAX_LEN + 1);
    let overflow = |op: &str, pos| CalcError::NonFinite { op: op.into(), pos, what: "too large (overflow)" };
    let table: Vec<(&str, CalcError, &str)> = vec![
        ("1 / 0", CalcError::DivisionByZero { pos: 2 }, "division by zero at 2"),
        ("0 / 0", CalcError::DivisionByZero { pos: 2 }, "division by zero at 2"),
        ("1 / (2 - 2)", CalcError::DivisionByZero { pos: 2 }, "division by zero at 2"),
        ("5 % 0", CalcError::ModuloByZero { pos: 2 }, "remainder (modulo) by zero at 2"),
        ("1e308 * 10", overflow("*", 6), "the result of \"*\" at 6 is too large (overflow)"),
        ("0 ^ -1", overflow("^", 2), "the result of \"^\" at 2 is too large (overflow)"),
        ("10 ^ 400", overflow("^", 3), "the result of \"^\" at 3 is too large (overflow)"),
        (
            "(-8) ^ (1/3)",
            CalcError::NonFinite { op: "^".into(), pos: 5, what: "not a real number" },
            "the result of \"^\" at 5 is not a real number",
        ),
        ("1e999", overflow("number", 0), "the result of \"number\" at 0 is too large (overflow)"),
        ("(1 + 2))", CalcError::UnexpectedToken { token: "')'".into(), pos: 7 }, "unexpected ')' at 7"),
        ("()", CalcError::UnexpectedToken { token: "')'".into(), pos: 1 }, "unexpected ')' at 1"),
        ("* 3", CalcError::UnexpectedToken { token: "'*'".into(), pos: 0 }, "unexpected '*' at 0"),
        ("2 3", CalcError::UnexpectedToken { token: "number 3".into(), pos: 2 }, "unexpected number 3 at 2"),
        ("(1 + 2", CalcError::UnclosedParen { open: 0 }, "missing ')' for the '(' at 0"),
        (
            "1 +",
            CalcError::UnexpectedEnd { pos: 3 },
            "unexpected end of expression at 3: expected a number or '('",
        ),
        ("", CalcError::Empty, "empty expression"),
        ("   ", CalcError::Empty, "empty expression"),
        ("1.2.3", CalcError::BadNumber { text: "1.2.3".into(), pos: 0 }, "malformed number \"1.2.3\" at 0"),
        ("2e + 1", CalcError::BadNumber { text: "2e".into(), pos: 0 }, "malformed number \"2e\" at 0"),
        ("1 + 3E+", CalcError::BadNumber { text: "3E+".into(), pos: 4 }, "malformed number \"3E+\" at 4"),
        ("1 + .", CalcError::BadNumber { text: ".".into(), pos: 4 }, "malformed number \".\" at 4"),
        (
            "1 + x",
            CalcError::UnknownName { name: "x".into(), pos: 4 },
            "unknown name \"x\" at 4: only numbers, + - * / % ^ and parentheses are supported",
        ),
        (
            "sqrt(4)",
            CalcError::UnknownName { name: "sqrt".into(), pos: 0 },
            "unknown name \"sqrt\" at 0: only numbers, + - * / % ^ and parentheses are supported",
        ),
        ("3 $ 4", CalcError::UnexpectedChar { ch: '$', pos: 2 }, "unexpected character '$' at 2"),
        ("2 × 3", CalcError::UnexpectedChar { ch: '×', pos: 2 }, "unexpected character '×' at 2"),
        (
            &too_long,
            CalcError::TooLong { len: MAX_LEN + 1, max: MAX_LEN },
            "expression is 1001 characters long; the limit is 1000",
        ),
        (
            &deep_parens,
            CalcError::TooDeep { max: 100, pos: 101 },
            "expression is nested more than 100 levels deep at 101",
        ),
        (
            &deep_unary,
            CalcError::TooDeep { max: 100, pos: 101 },
            "expression is nested more than 100 levels deep at 101",
        ),
        (
            &deep_power,
            CalcError::TooDeep { max: 100, pos: 202 },
            "expression is nested more than 100 levels deep at 202",
        ),
    ];
    for (expr, want, message) in table {
        let got = evaluate(expr);
        assert_eq!(got, Err(want), "{expr:?}");
        assert_eq!(got.unwrap_err().to_string(), message, "{expr:?}");
    }
}

#[tokio::test]
async fn calc_tool_reports_syntax_as_invalid_args_and_math_as_failure() {
    let calc = Calc::new();
    assert!(calc.idempotent() && calc.read_only());
    assert_eq!(calc.parameters()["properties"]["expression"]["type"], "string");
    let out = calc.call(ctx(), json!({ "expression": "(1 + 2) * 3 ^ 2" })).await.unwrap();
    assert_eq!(out.text, "27");
    match calc.call(ctx(), json!({ "expression": "(1 + 2))" })).await {
        Err(ToolError::InvalidArgs { tool, message }) => {
            assert_eq!(tool, "calc");
            assert_eq!(message, "unexpected ')' at 7");
        }
        other => panic!("{other:?}"),
    }
    match calc.call(ctx(), json!({ "expression": "1 / 0" })).await {
        Err(ToolError::Failed { message, .. }) => assert_eq!(message, "division by zero at 2"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(calc.call(ctx(), json!({ "expr": "1" })).await, Err(ToolError::InvalidArgs { .. })));
}

// ---------------------------------------------------------------- clock

fn fixed_clock() -> Clock {
    // Sunday 2024-03-10 12:34:56 UTC: the day US daylight saving time starts (07:00 UTC).
    Clock::fixed(Utc.with_ymd_and_hms(2024, 3, 10, 12, 34, 56).unwrap())
}

async fn clock(args: Value) -> Result<Value, ToolError> {
    let out = fixed_clock().call(ctx(), args).await?;
    Ok(serde_json::from_str(&out.text).unwrap())
}

#[tokio::test]
async fn clock_now_table() {
    let table: &[(Value, &str, &str, &str, &str)] = &[
        (json!({}), "2024-03-10T12:34:56+00:00", "UTC", "UTC", "+00:00"),
        (json!({ "operation": "now" }), "2024-03-10T12:34:56+00:00", "UTC", "UTC", "+00:00"),
        (json!({ "timezone": "Europe/Paris" }), "2024-03-10T13:34:56+01:00", "Europe/Paris", "CET", "+01:00"),
        (json!({ "timezone": "europe/paris" }), "2024-03-10T13:34:56+01:00", "Europe/Paris", "CET", "+01:00"),
        (
            json!({ "timezone": "America/New_York" }),
            "2024-03-10T08:34:56-04:00",
            "America/New_York",
            "EDT",
            "-04:00",
        ),
        (json!({ "timezone": "Asia/Kolkata" }), "2024-03-10T18:04:56+05:30", "Asia/Kolkata", "IST", "+05:30"),
        (
            json!({ "timezone": "Pacific/Auckland" }),
            "2024-03-11T01:34:56+13:00",
            "Pacific/Auckland",
            "NZDT",
            "+13:00",
        ),
    ];
    for (args, time, zone, abbr, offset) in table {
        let v = clock(args.clone()).await.unwrap();
        assert_eq!(v["time"], *time, "{args}");
        assert_eq!(v["timezone"], *zone, "{args}");
        assert_eq!(v["abbreviation"], *abbr, "{args}");
        assert_eq!(v["utc_offset"], *offset, "{args}");
        assert_eq!(v["unix"], 1_710_074_096, "{args}");
    }
    let v = clock(json!({ "timezone": "Pacific/Auckland" })).await.unwrap();
    assert_eq!(v["weekday"], "Monday");
}

#[tokio::test]
async fn clock_now_reads_the_injected_source() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let clock = Clock::with_source(Arc::new(move || {
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Utc.timestamp_opt(1_700_000_000 + i64::try_from(n).unwrap() * 3600, 0).unwrap()
    }));
    let first: Value = serde_json::from_str(&clock.call(ctx(), json!({})).await.unwrap().text).unwrap();
    let second: Value = serde_json::from_str(&clock.call(ctx(), json!({})).await.unwrap().text).unwrap();
    assert_eq!(first["time"], "2023-11-14T22:13:20+00:00");
    assert_eq!(second["time"], "2023-11-14T23:13:20+00:00");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn clock_convert_table() {
    let table: &[(Value, &str, &str, &str)] = &[
        (
            json!({ "operation": "convert", "time": "2024-06-01T09:00:00", "from": "America/New_York", "to": "Asia/Tokyo" }),
            "2024-06-01T22:00:00+09:00",
            "Asia/Tokyo",
            "JST",
        ),
        (
            json!({ "operation": "convert", "time": "2024-01-15T12:00:00Z", "to": "Europe/London" }),
            "2024-01-15T12:00:00+00:00",
            "Europe/London",
            "GMT",
        ),
        (
            json!({ "operation": "convert", "time": "2024-07-15T12:00:00Z", "to": "Europe/London" }),
            "2024-07-15T13:00:00+01:00",
            "Europe/London",
            "BST",
        ),
        (
            json!({ "operation": "convert", "time": "2024-03-10T12:00:00+05:30", "to": "UTC" }),
            "2024-03-10T06:30:00+00:00",
            "UTC",
            "UTC",
        ),
        (
            json!({ "operation": "convert", "time": "2024-03-10T12:00:00.250Z", "to": "America/Los_Angeles" }),
            "2024-03-10T05:00:00.250-07:00",
            "America/Los_Angeles",
            "PDT",
        ),
        (
            json!({ "operation": "convert", "time": "2024-12-31", "from": "Pacific/Auckland", "to": "UTC" }),
            "2024-12-30T11:00:00+00:00",
            "UTC",
            "UTC",
        ),
        (
            json!({ "operation": "convert", "time": "2024-02-29 23:30", "from": "Australia/Sydney", "to": "Etc/UTC" }),
            "2024-02-29T12:30:00+00:00",
            "Etc/UTC",
            "UTC",
        ),
        (
            json!({ "operation": "convert", "time": "2024-06-01T09:00:00", "to": "asia/KOLKATA" }),
            "2024-06-01T14:30:00+05:30",
            "Asia/Kolkata",
            "IST",
        ),
    ];
    for (args, time, zone, abbr) in table {
        let v = clock(args.clone()).await.unwrap();
        assert_eq!(v["to"]["time"], *time, "{args}");
        assert_eq!(v["to"]["timezone"], *zone, "{args}");
        assert_eq!(v["to"]["abbreviation"], *abbr, "{args}");
        assert!(v.get("note").is_none(), "{args}");
    }
    let v = clock(json!({ "operation": "convert", "time": "2024-03-10T12:00:00+05:30", "to": "UTC" }))
        .await
        .unwrap();
    assert_eq!(v["from"]["timezone"], "UTC+05:30");
    assert_eq!(v["from"]["unix"], v["to"]["unix"]);
}

#[tokio::test]
async fn clock_convert_handles_dst_edges() {
    // 01:30 happens twice in New York on 2024-11-03: the earlier one (EDT) is used, with a note.
    let v = clock(json!({ "operation": "convert", "time": "2024-11-03T01:30:00", "from": "America/New_York", "to": "UTC" }))
        .await
        .unwrap();
    assert_eq!(v["to"]["time"], "2024-11-03T05:30:00+00:00");
    assert!(v["note"].as_str().unwrap().contains("happens twice"), "{v}");
    // 02:30 never happens in New York on 2024-03-10.
    match clock(json!({ "operation": "convert", "time": "2024-03-10T02:30:00", "from": "America/New_York", "to": "UTC" }))
        .await
    {
        Err(ToolError::InvalidArgs { message, .. }) => {
            assert!(message.contains("does not exist in America/New_York"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn clock_errors_name_the_problem() {
    let table: &[(Value, &str)] = &[
        (json!({ "timezone": "Mars/Olympus_Mons" }), "unknown time zone \"Mars/Olympus_Mons\""),
        (
            json!({ "operation": "convert", "time": "2024-01-01T00:00:00Z", "to": "Nowhere" }),
            "unknown time zone \"Nowhere\"",
        ),
        (
            json!({ "operation": "convert", "time": "2024-01-01T00:00:00", "from": "Bogus/Zone", "to": "UTC" }),
            "unknown time zone \"Bogus/Zone\"",
        ),
        (json!({ "operation": "convert", "to": "UTC" }), "convert needs `time`"),
        (json!({ "operation": "convert", "time": "2024-01-01T00:00:00Z" }), "convert needs `to`"),
        (
            json!({ "operation": "convert", "time": "yesterday", "to": "UTC" }),
            "cannot read time \"yesterday\"",
        ),
        (json!({ "operation": "convert", "time": "2024-02-30T00:00:00", "to": "UTC" }), "cannot read time"),
        (json!({ "operation": "explode" }), "unknown variant `explode`"),
    ];
    for (args, needle) in table {
        match clock(args.clone()).await {
            Err(ToolError::InvalidArgs { tool, message }) => {
                assert_eq!(tool, "clock");
                assert!(message.contains(needle), "{args}: {message}");
            }
            other => panic!("{args}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- web_fetch

/// A wiremock server and a `web_fetch` allowed to reach exactly its port.
async fn fetch_setup(limits: WebFetchLimits) -> (MockServer, WebFetch) {
    let server = MockServer::start().await;
    let allow = AllowList::parse([format!("127.0.0.1:{}", server.address().port())]).unwrap();
    (server, WebFetch::new(allow, limits))
}

async fn mount(server: &MockServer, at: &str, response: ResponseTemplate) {
    Mock::given(method("GET")).and(path(at)).respond_with(response).mount(server).await;
}

#[tokio::test]
async fn web_fetch_returns_text_json_and_html_as_text() {
    let (server, tool) = fetch_setup(WebFetchLimits::default()).await;
    assert_eq!(tool.name(), "web_fetch");
    assert!(tool.idempotent() && tool.read_only());
    mount(
        &server,
        "/plain",
        ResponseTemplate::new(200).set_body_raw("hello, plain world", "text/plain; charset=utf-8"),
    )
    .await;
    mount(
        &server,
        "/data.json",
        ResponseTemplate::new(200).set_body_json(json!({ "answer": 42, "ok": true })),
    )
    .await;
    mount(
        &server,
        "/page",
        ResponseTemplate::new(200).set_body_raw(
            "<html><head><title>Doc</title><script>alert('x')</script><style>p{}</style></head>\
             <body><h2>Section</h2><p>Fish &amp; chips</p><ul><li>one</li><li>two</li></ul>\
             <a href=\"/next\">next page</a></body></html>",
            "text/html; charset=utf-8",
        ),
    )
    .await;
    mount(
        &server,
        "/latin1",
        ResponseTemplate::new(200)
            .set_body_raw(vec![b'c', b'a', b'f', 0xE9], "text/plain; charset=ISO-8859-1"),
    )
    .await;

    let base = server.uri();
    let out = tool.call(ctx(), json!({ "url": format!("{base}/plain") })).await.unwrap().text;
    assert_eq!(
        out,
        format!(
            "URL: {base}/plain\nStatus: 200 OK\nContent-Type: text/plain; charset=utf-8\n\nhello, plain world"
        )
    );

    let out = tool.call(ctx(), json!({ "url": format!("{base}/data.json") })).await.unwrap().text;
    assert!(out.contains("Content-Type: application/json"), "{out}");
    let body = out.split_once("\n\n").unwrap().1;
    assert_eq!(serde_json::from_str::<Value>(body).unwrap(), json!({ "answer": 42, "ok": true }));

    let out = tool.call(ctx(), json!({ "url": format!("{base}/page") })).await.unwrap().text;
    let body = out.split_once("\n\n").unwrap().1;
    assert_eq!(body, format!("Doc\n\n## Section\n\nFish & chips\n\n- one\n- two\n\nnext page ({base}/next)"));
    assert!(!out.contains("alert") && !out.contains("p{}"), "{out}");

    let out = tool.fetch(&format!("{base}/latin1")).await.unwrap();
    assert!(out.ends_with("\n\ncafé"), "{out}");
}

#[tokio::test]
async fn web_fetch_truncates_with_a_note() {
    let (server, tool) = fetch_setup(WebFetchLimits { max_bytes: 64, ..WebFetchLimits::default() }).await;
    let body: String = (0..1000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    mount(&server, "/big", ResponseTemplate::new(200).set_body_raw(body.clone(), "text/plain")).await;
    // A multi-byte character cut at the cap is dropped, not shown as U+FFFD.
    mount(
        &server,
        "/utf8",
        ResponseTemplate::new(200).set_body_raw(format!("{}é tail", "x".repeat(63)), "text/plain"),
    )
    .await;

    let out = tool.fetch(&format!("{}/big", server.uri())).await.unwrap();
    let text = out.split_once("\n\n").unwrap().1;
    let (kept, note) = text.split_once("\n\n").unwrap();
    assert_eq!(kept, &body[..64]);
    assert_eq!(note, "[truncated: the body is larger than 64 bytes; only the first 64 bytes were read]");

    let out = tool.fetch(&format!("{}/utf8", server.uri())).await.unwrap();
    let kept = out.split_once("\n\n").unwrap().1.split_once("\n\n").unwrap().0;
    assert_eq!(kept, "x".repeat(63));
}

#[tokio::test]
async fn web_fetch_refuses_binary_and_reports_http_errors() {
    let (server, tool) = fetch_setup(WebFetchLimits::default()).await;
    mount(
        &server,
        "/img",
        ResponseTemplate::new(200).set_body_raw(vec![0x89, b'P', b'N', b'G', 0, 0], "image/png"),
    )
    .await;
    mount(&server, "/bin", ResponseTemplate::new(200).set_body_bytes(vec![0u8, 1, 2, 3, 0xff])).await;
    mount(&server, "/untyped", ResponseTemplate::new(200).set_body_bytes(b"just text".to_vec())).await;
    mount(&server, "/missing", ResponseTemplate::new(404).set_body_raw("no such page", "text/plain")).await;
    mount(&server, "/boom", ResponseTemplate::new(503)).await;
    mount(
        &server,
        "/gone",
        ResponseTemplate::new(410)
            .set_body_raw("<html><body><h1>Gone</h1><p>Moved   away.</p></body></html>", "text/html"),
    )
    .await;
    let base = server.uri();

    match tool.fetch(&format!("{base}/img")).await {
        Err(ToolError::Refused { tool, reason }) => {
            assert_eq!(tool, "web_fetch");
            assert!(reason.contains("content type image/png, which is binary"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match tool.fetch(&format!("{base}/bin")).await {
        Err(ToolError::Refused { reason, .. }) => assert!(reason.contains("no Content-Type"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let out = tool.fetch(&format!("{base}/untyped")).await.unwrap();
    assert!(out.contains("Content-Type: (none)") && out.ends_with("\n\njust text"), "{out}");
    match tool.fetch(&format!("{base}/missing")).await {
        Err(ToolError::Failed { message, .. }) => {
            assert_eq!(message, format!("GET {base}/missing returned HTTP 404 Not Found: no such page"));
        }
        other => panic!("{other:?}"),
    }
    match tool.fetch(&format!("{base}/gone")).await {
        Err(ToolError::Failed { message, .. }) => {
            assert_eq!(message, format!("GET {base}/gone returned HTTP 410 Gone: # Gone Moved away."));
        }
        other => panic!("{other:?}"),
    }
    match tool.fetch(&format!("{base}/boom")).await {
        Err(ToolError::Failed { message, .. }) => {
            assert_eq!(message, format!("GET {base}/boom returned HTTP 503 Service Unavailable"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn web_fetch_rejects_bad_urls_and_refused_targets_clearly() {
    let (server, tool) = fetch_setup(WebFetchLimits::default()).await;
    let table: &[(&str, &str)] = &[
        ("example.com/page", "missing scheme (write it as http://... or https://...)"),
        ("not a url", "missing scheme"),
        ("http://", "empty host"),
        ("http://exa mple.com/", "invalid"),
        ("http://[::1/", "invalid IPv6 address"),
    ];
    for (url, needle) in table {
        match tool.call(ctx(), json!({ "url": url })).await {
            Err(ToolError::InvalidArgs { tool, message }) => {
                assert_eq!(tool, "web_fetch");
                assert!(message.contains(needle), "{url}: {message}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    assert!(matches!(tool.call(ctx(), json!({})).await, Err(ToolError::InvalidArgs { .. })));

    let other_port = server.address().port().wrapping_add(1).max(1);
    let refusals: &[(String, &str)] = &[
        (format!("http://127.0.0.1:{other_port}/"), "is a loopback address"),
        (format!("http://localhost:{}/", server.address().port()), "is a loopback address"),
        ("http://169.254.169.254/latest/meta-data".into(), "is a cloud metadata endpoint"),
        ("file:///etc/passwd".into(), "scheme \"file\" is not allowed"),
    ];
    for (url, needle) in refusals {
        match tool.call(ctx(), json!({ "url": url })).await {
            Err(ToolError::Refused { reason, .. }) => assert!(reason.contains(needle), "{url}: {reason}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    assert!(server.received_requests().await.unwrap().is_empty(), "nothing refused may reach the server");
}

#[tokio::test]
async fn web_fetch_follows_allowed_redirects_and_reports_the_final_url() {
    let (server, tool) = fetch_setup(WebFetchLimits::default()).await;
    mount(&server, "/old", ResponseTemplate::new(301).insert_header("Location", "/new")).await;
    mount(&server, "/new", ResponseTemplate::new(200).set_body_raw("moved here", "text/plain")).await;
    let base = server.uri();
    let out = tool.fetch(&format!("{base}/old")).await.unwrap();
    assert!(out.starts_with(&format!("URL: {base}/new\nStatus: 200 OK\n")), "{out}");
    assert!(out.contains(&format!("Redirected from: {base}/old\n")), "{out}");
    assert!(out.ends_with("\n\nmoved here"), "{out}");
}

#[tokio::test]
async fn web_fetch_times_out_and_honours_cancellation() {
    let limits = WebFetchLimits { timeout: Duration::from_millis(200), ..WebFetchLimits::default() };
    let (server, tool) = fetch_setup(limits).await;
    mount(
        &server,
        "/slow",
        ResponseTemplate::new(200).set_body_string("late").set_delay(Duration::from_secs(10)),
    )
    .await;
    let url = format!("{}/slow", server.uri());
    // The 200 ms timer ended it (the server would answer after 10 s): the error says which.
    match tool.fetch(&url).await {
        Err(ToolError::Timeout { tool, after }) => {
            assert_eq!(tool, "web_fetch");
            assert_eq!(after, Duration::from_millis(200));
        }
        other => panic!("{other:?}"),
    }

    let cancelled = ctx();
    cancelled.cancel.cancel();
    assert_eq!(
        tool.call(cancelled, json!({ "url": url })).await,
        Err(ToolError::Cancelled { tool: "web_fetch".into() })
    );
}

#[tokio::test]
async fn standard_tools_are_built_from_config() {
    let server = MockServer::start().await;
    mount(&server, "/cfg", ResponseTemplate::new(200).set_body_raw("0123456789abcdef", "text/plain")).await;
    let config = RuntimeConfig {
        network_allow: vec![format!("127.0.0.1:{}", server.address().port()), "not-an-entry".into()],
        web_fetch_max_bytes: 10,
        ..RuntimeConfig::default()
    };
    let tools = standard_tools(&config);
    let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["clock", "calc", "web_fetch"]);
    for tool in &tools {
        assert!(tool.idempotent() && tool.read_only(), "{}", tool.name());
        assert_eq!(tool.parameters()["type"], "object", "{}", tool.name());
        assert!(!tool.description().is_empty());
    }
    let out = tools[2].call(ctx(), json!({ "url": format!("{}/cfg", server.uri()) })).await.unwrap().text;
    assert!(out.contains("\n\n0123456789\n\n[truncated: the body is larger than 10 bytes"), "{out}");
}

// ---------------------------------------------------------------- argument shapes

/// Regression (found by the `tool_args` fuzz target): serde reads a struct from a JSON array
/// by position, so `calc` accepted `["1"]` and a `typed` tool `[1, 2]`, past a schema that
/// says "object" (and past any policy rule keyed on an argument's name). Every tool now
/// refuses arguments that are not an object; `null` counts as `{}`, as the run loop's policy
/// check already treated it.
#[tokio::test]
async fn tool_arguments_must_be_an_object_and_null_means_empty() {
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Pair {
        a: f64,
        b: f64,
    }
    let add = executus::tool::typed("add", "adds", |_ctx, p: Pair| async move {
        Ok::<_, ToolError>((p.a + p.b).to_string())
    });
    let clock = Clock::fixed(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap());
    let tools: [(&dyn Tool, Value); 5] = [
        (&Calc::new(), json!(["1"])),
        (&add, json!([1, 2])),
        (&clock, json!([])),
        (&Calc::new(), json!("1+1")),
        (&add, json!(3)),
    ];
    for (tool, args) in tools {
        match tool.call(ctx(), args.clone()).await {
            Err(ToolError::InvalidArgs { tool: name, message }) => {
                assert_eq!(name, tool.name());
                assert!(message.contains("must be a JSON object"), "{args}: {message}");
            }
            other => panic!("{} accepted {args}: {other:?}", tool.name()),
        }
    }
    assert_eq!(add.call(ctx(), json!({"a": 1, "b": 2})).await.unwrap().text, "3");
    let now = clock.call(ctx(), Value::Null).await.unwrap().text;
    assert!(now.contains("2024-01-02T03:04:05"), "{now}");
    let missing = Calc::new().call(ctx(), Value::Null).await.unwrap_err();
    assert!(
        matches!(&missing, ToolError::InvalidArgs { message, .. } if message.contains("expression")),
        "{missing:?}"
    );
}

/// Regression (found by the `tool_args` fuzz target): a local time with a six-digit year
/// (`+262142-12-31T11:59:59`) parsed, and converting it to a zone ahead of UTC overflowed
/// chrono's range, which panics ("Local time out of range"). Years past 9999 are now an
/// error naming the time.
#[test]
fn clock_refuses_years_chrono_cannot_convert() {
    let clock = Clock::fixed(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap());
    for (time, from, to) in [
        ("+262142-12-31T11:59:59", "Etc/GMT-14", "Etc/GMT+1"),
        ("+100000-06-01T00:00:00", "UTC", "Etc/GMT-14"),
        ("-5000-01-01 00:00", "Etc/GMT+12", "UTC"),
        ("+10000-01-01", "UTC", "UTC"),
    ] {
        let args = json!({"operation": "convert", "time": time, "from": from, "to": to});
        let args: executus_tools::clock::ClockArgs = serde_json::from_value(args).unwrap();
        match clock.run(&args) {
            Err(ToolError::InvalidArgs { message, .. }) => {
                assert!(message.contains("out of range") && message.contains(time), "{message}")
            }
            other => panic!("{time}: {other:?}"),
        }
    }
    // The edges of the range still convert, across the date line both ways.
    for (time, from, to) in [
        ("9999-12-31T23:59:59", "Etc/GMT+12", "Etc/GMT-14"),
        ("0000-01-01 00:00", "Etc/GMT-14", "Etc/GMT+12"),
    ] {
        let args = json!({"operation": "convert", "time": time, "from": from, "to": to});
        let args: executus_tools::clock::ClockArgs = serde_json::from_value(args).unwrap();
        assert!(clock.run(&args).is_ok(), "{time}");
    }
}
