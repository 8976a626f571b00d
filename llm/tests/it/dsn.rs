//! The DSN table: every scheme, transport overrides, ports, paths, percent-encoded keys,
//! missing keys and garbage — and no error message ever shows the key.

use executus_llm::{ConfigError, HttpOptions, ProviderKind, ProviderSpec};

const KEY: &str = "s3cr3t-KEY-0000";

#[test]
fn valid_dsns_parse_to_the_expected_spec() {
    use ProviderKind::*;
    let table: &[(&str, ProviderKind, &str, Option<&str>)] = &[
        ("openai://sk-test-123@", OpenAi, "https://api.openai.com/v1", Some("sk-test-123")),
        ("openai://sk-1@api.openai.com/v1", OpenAi, "https://api.openai.com/v1", Some("sk-1")),
        ("openai+http://127.0.0.1:8080/v1", OpenAi, "http://127.0.0.1:8080/v1", None),
        ("openai://k@vllm.internal:8000/v1/", OpenAi, "https://vllm.internal:8000/v1", Some("k")),
        ("openai+https://k@litellm:4000", OpenAi, "https://litellm:4000", Some("k")),
        ("OpenAI://sk-1@", OpenAi, "https://api.openai.com/v1", Some("sk-1")),
        ("anthropic://sk-ant-xyz@", Anthropic, "https://api.anthropic.com", Some("sk-ant-xyz")),
        ("anthropic+http://127.0.0.1:8080", Anthropic, "http://127.0.0.1:8080", None),
        ("gemini://AIza123@", Gemini, "https://generativelanguage.googleapis.com/v1beta", Some("AIza123")),
        (
            "gemini://AIza123@proxy.corp:8443/v1beta",
            Gemini,
            "https://proxy.corp:8443/v1beta",
            Some("AIza123"),
        ),
        ("ollama://", Ollama, "http://127.0.0.1:11434", None),
        ("ollama://gpu-box:11434", Ollama, "http://gpu-box:11434", None),
        ("ollama+https://ok-key@ollama.com", Ollama, "https://ollama.com", Some("ok-key")),
        ("ollama://[::1]:11434", Ollama, "http://[::1]:11434", None),
        ("  ollama://host  ", Ollama, "http://host", None),
        ("llama-swap://", LlamaSwap, "http://127.0.0.1:8080", None),
        ("llama-swap://tok@10.0.0.5:9292", LlamaSwap, "http://10.0.0.5:9292", Some("tok")),
        ("llama-swap+https://tok@swap.example.org", LlamaSwap, "https://swap.example.org", Some("tok")),
        ("openai://sk%2Fab%40c%3Ad%25@", OpenAi, "https://api.openai.com/v1", Some("sk/ab@c:d%")),
        ("openai://us:er@host", OpenAi, "https://host", Some("us:er")),
        ("ollama://@host:1", Ollama, "http://host:1", None),
    ];
    for (dsn, kind, url, key) in table {
        let spec = ProviderSpec::parse("p", dsn).unwrap_or_else(|e| panic!("{dsn}: {e}"));
        assert_eq!(spec.name, "p");
        assert_eq!(spec.kind, *kind, "{dsn}");
        assert_eq!(spec.base_url, *url, "{dsn}");
        assert_eq!(spec.api_key.as_ref().map(|k| k.expose()), *key, "{dsn}");
        if let Some(key) = key.filter(|k| k.len() >= 5) {
            assert!(!format!("{spec:?}").contains(key), "Debug shows the key: {spec:?}");
        }
    }
}

#[test]
fn bad_dsns_are_named_errors_that_never_show_the_key() {
    let k = KEY;
    let table: Vec<(String, &str)> = vec![
        ("openai://".into(), "missing API key"),
        ("openai://@api.openai.com".into(), "missing API key"),
        ("anthropic://".into(), "missing API key"),
        ("gemini://@".into(), "missing API key"),
        (format!("mistral://{k}@"), "unknown DSN scheme \"mistral\""),
        (format!("openai+ftp://{k}@host"), "unknown DSN scheme \"openai+ftp\""),
        (format!("{k}-AND-MORE-TEXT://x"), "(not shown)"),
        (k.to_owned(), "expected `scheme://"),
        (format!("openai:{k}@host"), "expected `scheme://"),
        (format!("openai://{k}@host:99999"), "port must be a number"),
        (format!("openai://{k}@host:abc"), "port must be a number"),
        (format!("openai://{k}@host:0"), "port must be a number"),
        (format!("openai://{k}@host:"), "port must be a number"),
        (format!("openai://{k}@host:+80"), "port must be a number"),
        (format!("openai://host:{k}"), "port must be a number"),
        (format!("openai://{k}/x@host"), "'@' after the host"),
        (format!("openai://{k}%ZZ@host"), "invalid percent-escape"),
        (format!("openai://{k}%C3@host"), "not UTF-8"),
        (format!("openai://{k}%0A@host"), "control characters"),
        (format!("openai://{k}@host/v1?x=1"), "query strings"),
        (format!("openai://{k}@host/v 1"), "whitespace"),
        (format!("openai://{k}@ho st"), "host contains characters"),
        (format!("ollama://{k}@[::1"), "closing ']'"),
        (format!("ollama://{k}@[zz]"), "not a valid address"),
        (format!("ollama://{k}@[::1]x"), "after the IPv6 host"),
        ("ollama://:11434".into(), "needs a host"),
        ("ollama:///v1".into(), "needs a host"),
    ];
    for (dsn, expected) in &table {
        let error = ProviderSpec::parse("work", dsn).expect_err(dsn);
        let text = error.to_string();
        assert!(text.contains(expected), "{dsn}: {text}");
        assert!(text.contains("\"work\""), "names the provider: {text}");
        assert!(!text.contains("s3cr3t") && !format!("{error:?}").contains("s3cr3t"), "key leaked: {text}");
    }
}

#[test]
fn bad_names_are_rejected() {
    for name in ["", "a/b", "a,b", "a b"] {
        let error = ProviderSpec::parse(name, "ollama://").expect_err(name);
        assert!(matches!(error, ConfigError::BadName { .. }), "{name}: {error}");
    }
}

#[test]
fn config_and_build_carry_name_url_and_key() {
    let spec = ProviderSpec::parse("cloud", &format!("anthropic://{KEY}@")).expect("valid");
    let http = HttpOptions { max_line_bytes: 1234, ..HttpOptions::default() };
    let config = spec.config(http.clone());
    assert_eq!(config.name, "cloud");
    assert_eq!(config.base_url, "https://api.anthropic.com");
    assert_eq!(config.api_key.as_ref().map(|k| k.expose()), Some(KEY));
    assert_eq!(config.http.max_line_bytes, 1234);
    for dsn in ["openai+http://h", "anthropic+http://h", "gemini+http://h", "ollama://h", "llama-swap://h"] {
        let spec = ProviderSpec::parse("named", dsn).expect(dsn);
        let provider = spec.build(http.clone());
        assert_eq!(provider.name(), "named", "{dsn}");
        let model = provider.model("org/model:tag");
        assert_eq!((model.provider(), model.model_id()), ("named", "org/model:tag"), "{dsn}");
    }
}

#[test]
fn environment_pairs_register_lower_cased_names() {
    let vars = [
        ("EXECUTUS_LLM_LOCAL", "ollama://gpu:11434"),
        ("PATH", "/usr/bin"),
        ("EXECUTUS_LLM_Cloud", "openai://sk-abc@"),
        ("EXECUTUS_LLMX", "openai://nope@"),
    ];
    let specs = ProviderSpec::from_vars(vars).expect("valid");
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cloud", "local"]);
    assert_eq!(specs[1].base_url, "http://gpu:11434");

    let dup = ProviderSpec::from_vars([("EXECUTUS_LLM_A", "ollama://"), ("EXECUTUS_LLM_a", "ollama://")]);
    assert!(matches!(dup, Err(ConfigError::BadName { ref name, .. }) if name == "a"), "{dup:?}");

    let bad = ProviderSpec::from_vars([("EXECUTUS_LLM_WORK", format!("openai://{KEY}@host:http"))])
        .expect_err("bad port");
    let text = bad.to_string();
    assert!(text.contains("\"work\"") && text.contains("$EXECUTUS_LLM_WORK"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");

    let empty = ProviderSpec::from_vars([("EXECUTUS_LLM_", "ollama://")]).expect_err("empty name");
    assert!(matches!(empty, ConfigError::BadName { .. }), "{empty}");
}
