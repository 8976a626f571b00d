use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};

use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).expect("header value"));
    }
    h
}

#[test]
fn retry_after_seconds_date_and_ms() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(parse_retry_after(&headers(&[("retry-after", "7")]), now), Some(Duration::from_secs(7)));
    assert_eq!(
        parse_retry_after(&headers(&[("retry-after", "1.5")]), now),
        Some(Duration::from_millis(1500))
    );
    let date = httpdate::fmt_http_date(now + Duration::from_secs(42));
    assert_eq!(parse_retry_after(&headers(&[("retry-after", &date)]), now), Some(Duration::from_secs(42)));
    let past = httpdate::fmt_http_date(now - Duration::from_secs(42));
    assert_eq!(parse_retry_after(&headers(&[("retry-after", &past)]), now), Some(Duration::ZERO));
    // retry-after-ms wins over retry-after.
    assert_eq!(
        parse_retry_after(&headers(&[("retry-after-ms", "250"), ("retry-after", "9")]), now),
        Some(Duration::from_millis(250))
    );
    assert_eq!(parse_retry_after(&headers(&[("retry-after", "soon")]), now), None);
    assert_eq!(parse_retry_after(&headers(&[("retry-after", "-3")]), now), None);
    assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn status_classification_table() {
    let table = [
        (400, "bad", ErrorKind::Permanent),
        (401, "no", ErrorKind::Permanent),
        (403, "no", ErrorKind::Permanent),
        (404, "", ErrorKind::NotFound),
        (408, "", ErrorKind::Transient),
        (422, "bad", ErrorKind::Permanent),
        (429, "", ErrorKind::Transient),
        (500, "", ErrorKind::Transient),
        (502, "", ErrorKind::Transient),
        (503, "", ErrorKind::Transient),
        (529, "", ErrorKind::Transient),
        (400, "model 'qwen' not found, try pulling it first", ErrorKind::NotFound),
        (400, "The model `gpt-9` does not exist", ErrorKind::NotFound),
    ];
    for (status, msg, kind) in table {
        assert_eq!(classify_status(status, msg), kind, "status {status} {msg:?}");
    }
}

#[test]
fn error_message_shapes() {
    assert_eq!(
        error_message(br#"{"error":{"message":"Rate limit","type":"requests","code":429}}"#),
        "requests: Rate limit"
    );
    assert_eq!(
        error_message(br#"{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}"#),
        "INVALID_ARGUMENT: bad"
    );
    assert_eq!(error_message(br#"{"error":"model not found"}"#), "model not found");
    assert_eq!(
        error_message(br#"{"error":"server_error","message":"out of memory"}"#),
        "server_error: out of memory"
    );
    assert_eq!(
        error_message(br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
        "overloaded_error: Overloaded"
    );
    assert_eq!(error_message(br#"[{"error":{"message":"x"}}]"#), "x");
    assert_eq!(error_message(b"plain text"), "plain text");
    let long = vec![b'a'; 5000];
    assert!(error_message(&long).chars().count() <= 301);
}

#[tokio::test]
async fn a_request_that_cannot_be_built_is_permanent() {
    let http = Http::new("p", HttpOptions::default(), None);
    for url in ["not a url/chat/completions", "ftp://127.0.0.1/v1/chat/completions"] {
        let err = http.send("m", http.client.post(url)).await.expect_err(url);
        assert_eq!(err.kind, ErrorKind::Permanent, "{url}: {err}");
        assert!(err.message.starts_with("the request cannot be built: "), "{url}: {err}");
    }
}

#[tokio::test]
async fn a_provider_with_a_relative_base_url_fails_permanently_at_once() {
    use crate::model::Provider as _;
    let provider = crate::providers::openai::OpenAi::new(crate::providers::ProviderConfig {
        name: "broken".into(),
        base_url: "not a url".into(),
        api_key: None,
        http: HttpOptions::default(),
        media: None,
    });
    let err = provider.model("m").generate(crate::types::Request::user("hi")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(err.message.contains("relative URL without a base"), "{err}");
}

#[test]
fn join_paths() {
    assert_eq!(join("http://h/v1/", "/chat/completions"), "http://h/v1/chat/completions");
    assert_eq!(join("http://h/v1", "chat"), "http://h/v1/chat");
}

#[test]
fn line_splitter_hands_out_whole_lines_only() {
    use lines::{LineError, LineSplitter};
    let mut s = LineSplitter::new(b"\n", 8);
    assert_eq!(s.push(b"ab"), Ok(None));
    assert_eq!(s.push(b"c\nde"), Ok(Some("abc\n".to_owned())));
    assert_eq!(s.push(b"f\ngh\ni"), Ok(Some("def\ngh\n".to_owned())));
    assert_eq!(s.finish(), Ok(Some("i".to_owned())));
    assert_eq!(s.finish(), Ok(None));

    // SSE: a bare CR ends a line too, and CRLF split across chunks stays intact.
    let mut s = LineSplitter::new(b"\r\n", 8);
    assert_eq!(s.push(b"data: a\r"), Ok(Some("data: a\r".to_owned())));
    assert_eq!(s.push(b"\n\r\n"), Ok(Some("\n\r\n".to_owned())));

    // A multi-byte character split across chunks is fine; an invalid byte fails its line.
    let mut s = LineSplitter::new(b"\n", 8);
    assert_eq!(s.push(&[0xc3]), Ok(None));
    assert_eq!(s.push(&[0xa9, b'\n']), Ok(Some("é\n".to_owned())));
    assert!(matches!(s.push(&[b'a', 0xff, b'\n']), Err(LineError::Utf8(_))));
}

#[test]
fn line_splitter_bounds_every_line() {
    use lines::{LineError, LineSplitter};
    // The unfinished line grows past the limit across chunks.
    let mut s = LineSplitter::new(b"\n", 4);
    assert_eq!(s.push(b"abc"), Ok(None));
    assert_eq!(s.push(b"de"), Err(LineError::TooLong));
    // A line completed inside a chunk, and a line wholly inside one chunk.
    let mut s = LineSplitter::new(b"\n", 4);
    assert_eq!(s.push(b"abc"), Ok(None));
    assert_eq!(s.push(b"de\n"), Err(LineError::TooLong));
    // Regression (found by the `ndjson` fuzz target): the whole lines before a long one in
    // the same chunk are handed out first, as they would be had they come in their own chunk;
    // the error follows and stays.
    let mut s = LineSplitter::new(b"\n", 4);
    assert_eq!(s.push(b"ab\nabcde\nx\n"), Ok(Some("ab\n".to_owned())));
    assert_eq!(s.check(), Err(LineError::TooLong));
    assert_eq!(s.push(b"y\n"), Err(LineError::TooLong));
    assert_eq!(s.finish(), Err(LineError::TooLong));
    let mut s = LineSplitter::new(b"\n", 4);
    assert_eq!(s.push(b"ab\ncd\nabcde"), Ok(Some("ab\ncd\n".to_owned())));
    assert_eq!(s.check(), Err(LineError::TooLong));
    // Invalid UTF-8 before the long line is reported first.
    let mut s = LineSplitter::new(b"\n", 4);
    assert_eq!(s.push(b"ok\n\xff\nabcde\n"), Ok(Some("ok\n".to_owned())));
    assert!(matches!(s.check(), Err(LineError::Utf8(_))));
    // Exactly at the limit is fine.
    let mut s = LineSplitter::new(b"\n", 4);
    assert_eq!(s.push(b"abcd\nabcd"), Ok(Some("abcd\n".to_owned())));
}

#[test]
fn line_splitter_hands_out_valid_lines_before_reporting_invalid_utf8() {
    use lines::{LineError, LineSplitter};
    let mut s = LineSplitter::new(b"\n", 64);
    assert_eq!(s.push(b"good\nba\xffd\nmore\n"), Ok(Some("good\n".to_owned())));
    assert!(matches!(s.check(), Err(LineError::Utf8(_))));
    assert!(matches!(s.push(b"x\n"), Err(LineError::Utf8(_))), "stays failed");
    assert!(matches!(s.finish(), Err(LineError::Utf8(_))));
    // In an unterminated last line.
    let mut s = LineSplitter::new(b"\n", 64);
    assert_eq!(s.push(b"ok\nb\xff"), Ok(Some("ok\n".to_owned())));
    assert_eq!(s.check(), Ok(()));
    assert!(matches!(s.finish(), Err(LineError::Utf8(_))));
}

#[test]
fn the_bare_client_stays_out_of_proxies_and_http2() {
    let options = HttpOptions::default();
    assert!(direct::client_with(&options, |_| None).is_some());
    for var in ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"] {
        let set = |name: &str| (name == var).then(|| "http://127.0.0.1:3128".to_owned());
        assert!(direct::client_with(&options, set).is_none(), "{var} set: reqwest must send");
    }
    let h2 = HttpOptions { http2_prior_knowledge: true, ..HttpOptions::default() };
    assert!(direct::client_with(&h2, |_| None).is_none());
    let switch = |value: &'static str| move |name: &str| (name == direct::SWITCH).then(|| value.to_owned());
    assert!(direct::client_with(&options, switch("0")).is_none(), "switched off");
    assert!(direct::client_with(&options, switch("1")).is_some());
}

#[test]
fn a_direct_target_only_for_plain_http_and_its_key_never_prints() {
    let key = Secret::new("sk-direct-7c1e9a");
    let parse = |u: &str| reqwest::Url::parse(u).expect("url");
    for refused in
        ["https://api.example.test/v1/chat/completions", "http://user:pw@127.0.0.1:8080/v1/chat/completions"]
    {
        assert!(direct::DirectTarget::new(&parse(refused), Some(&key)).is_none(), "{refused}");
    }
    let target = direct::DirectTarget::new(&parse("http://127.0.0.1:8080/v1/chat/completions"), Some(&key))
        .expect("plain http");
    assert!(!format!("{target:?}").contains("sk-direct"), "{target:?}");
    let request = target.post(Bytes::from_static(b"{}"), "text/event-stream");
    assert_eq!(request.uri(), "http://127.0.0.1:8080/v1/chat/completions");
    assert_eq!(request.method(), ::http::Method::POST);
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(header("authorization"), "Bearer sk-direct-7c1e9a");
    assert_eq!(header("accept"), "text/event-stream");
    assert_eq!(header("content-type"), "application/json");
    assert!(request.headers().get("authorization").is_some_and(::http::HeaderValue::is_sensitive));
}
