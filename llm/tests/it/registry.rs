//! The chain-spec grammar table and the registry's wiring: aliases inside chains, capability
//! overrides, providers from environment pairs.

use std::sync::Arc;

use executus_llm::{
    Capabilities, ChainOptions, ConfigError, HealthConfig, HealthTracker, HttpOptions, ManualClock, Part,
    Registry, Request, Target,
};

use crate::scripted::{Outcome, Recorder, ScriptedProvider, transient};

fn grammar_registry() -> Registry {
    let registry = Registry::new();
    for name in ["openai", "ollama", "or"] {
        registry.add_provider(ScriptedProvider::new(name)).expect("valid name");
    }
    let aliases = [
        ("fast", "openai/gpt-4o-mini, ollama/qwen3:30b"),
        ("thinking", "or/meta-llama/llama-3.1:free , fast"),
        ("nested", "thinking, openai/o3"),
        ("cyc_a", "openai/x, cyc_b"),
        ("cyc_b", "cyc_c"),
        ("cyc_c", "cyc_a"),
        ("me", "me"),
        ("holey", "openai/x,,openai/y"),
    ];
    for (name, spec) in aliases {
        registry.set_alias(name, spec).expect("valid alias");
    }
    registry
}

#[test]
fn grammar_table() {
    let registry = grammar_registry();
    let ok: &[(&str, &[&str])] = &[
        ("ollama/qwen3:30b", &["ollama/qwen3:30b"]),
        ("or/meta-llama/llama-3.1:free", &["or/meta-llama/llama-3.1:free"]),
        (
            "fast, thinking, ollama/qwen3:30b",
            &["openai/gpt-4o-mini", "ollama/qwen3:30b", "or/meta-llama/llama-3.1:free"],
        ),
        ("  fast ,openai/o3\t", &["openai/gpt-4o-mini", "ollama/qwen3:30b", "openai/o3"]),
        ("nested", &["or/meta-llama/llama-3.1:free", "openai/gpt-4o-mini", "ollama/qwen3:30b", "openai/o3"]),
        ("openai/o3, openai/o3, fast, openai/o3", &["openai/o3", "openai/gpt-4o-mini", "ollama/qwen3:30b"]),
        ("openai/o3,openai/O3", &["openai/o3", "openai/O3"]),
        ("ollama/a:b/c:d", &["ollama/a:b/c:d"]),
    ];
    for (spec, expected) in ok {
        let resolved = registry.resolve(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let joined: Vec<String> = resolved.iter().map(|t| t.to_string()).collect();
        assert_eq!(joined, *expected, "{spec}");
    }
    // The model id is everything after the first '/', verbatim.
    assert_eq!(
        registry.resolve("or/meta-llama/llama-3.1:free").expect("valid"),
        [Target::new("or", "meta-llama/llama-3.1:free")]
    );

    let bad: &[(&str, &str)] = &[
        ("cyc_a", "alias cycle: cyc_a -> cyc_b -> cyc_c -> cyc_a"),
        ("openai/o3, cyc_b", "alias cycle: cyc_b -> cyc_c -> cyc_a -> cyc_b"),
        ("me", "alias cycle: me -> me"),
        ("", "chain spec \"\" is empty"),
        ("  ", "is empty"),
        ("fast,,openai/o3", "has an empty element"),
        ("fast,", "has an empty element"),
        (", fast", "has an empty element"),
        ("holey", "\"openai/x,,openai/y\" has an empty element"),
        (
            "nope/model",
            "unknown provider \"nope\" in chain element \"nope/model\" (registered: ollama, openai, or)",
        ),
        ("fast, Openai/x", "unknown provider \"Openai\""),
        ("slow", "chain element \"slow\" is neither a known alias nor provider/model"),
        ("openai/", "chain element \"openai/\""),
        ("/gpt", "chain element \"/gpt\""),
    ];
    for (spec, expected) in bad {
        let error = registry.resolve(spec).expect_err(spec);
        assert!(error.to_string().contains(expected), "{spec}: {error}");
        let parse_error = registry.parse(spec).expect_err(spec);
        assert_eq!(parse_error, error, "parse and resolve agree on {spec}");
    }
}

#[test]
fn names_and_alias_specs_are_validated() {
    let registry = grammar_registry();
    assert!(matches!(registry.set_alias("a/b", "openai/x"), Err(ConfigError::BadName { .. })));
    assert!(matches!(registry.set_alias("a,b", "openai/x"), Err(ConfigError::BadName { .. })));
    assert!(matches!(registry.set_alias("ok", " "), Err(ConfigError::EmptyChain { .. })));
    assert!(matches!(
        registry.set_capabilities("no-slash", Capabilities::UNKNOWN),
        Err(ConfigError::BadElement { .. })
    ));
    assert!(matches!(
        registry.add_provider(ScriptedProvider::new("bad name")),
        Err(ConfigError::BadName { .. })
    ));
}

#[test]
fn parse_returns_a_chain_even_for_one_target() {
    let registry = grammar_registry();
    let model = registry.parse(" ollama/qwen3:30b ").expect("valid");
    assert_eq!((model.provider(), model.model_id()), ("chain", "ollama/qwen3:30b"));
    let chain = registry.chain("fast, fast").expect("valid");
    assert_eq!(chain.targets().collect::<Vec<_>>(), ["openai/gpt-4o-mini", "ollama/qwen3:30b"]);
}

struct Rig {
    registry: Registry,
    a: Arc<ScriptedProvider>,
    b: Arc<ScriptedProvider>,
    clock: ManualClock,
    events: Arc<Recorder>,
}

fn rig() -> Rig {
    let clock = ManualClock::new();
    let health = HealthTracker::with_clock(HealthConfig::default(), Arc::new(clock.clone()));
    let registry = Registry::with_health(health);
    let (a, b) = (ScriptedProvider::new("a"), ScriptedProvider::new("b"));
    registry.add_provider(a.clone()).expect("valid");
    registry.add_provider(b.clone()).expect("valid");
    registry.set_options(ChainOptions::default().with_sleeper(Arc::new(clock.clone())));
    let events = Arc::new(Recorder::default());
    registry.set_observer(events.clone());
    Rig { registry, a, b, clock, events }
}

#[tokio::test]
async fn an_alias_inside_a_chain_fails_over_in_order() {
    let rig = rig();
    rig.registry.set_alias("fast", "a/m1, b/m2").expect("valid");
    let m1 = rig.a.get("m1");
    m1.always(Outcome::Fail(transient(&m1)));
    rig.b.get("m2").always(Outcome::Fail(executus_llm::Error::not_found("b", "m2", "gone")));
    let model = rig.registry.parse("fast, b/org/m3:latest").expect("valid");
    assert_eq!(model.model_id(), "fast, b/org/m3:latest");
    let response = model.generate(Request::user("hi")).await.expect("m3 answers");
    assert_eq!((response.provider.as_str(), response.model.as_str()), ("b", "org/m3:latest"));
    assert_eq!((m1.calls(), rig.b.get("m2").calls(), rig.b.get("org/m3:latest").calls()), (3, 1, 1));
    assert!(rig.clock.elapsed() > std::time::Duration::ZERO, "backoff waited on the manual clock");
    let failovers: Vec<String> =
        rig.events.take().into_iter().filter(|e| e.starts_with("failover")).collect();
    assert_eq!(failovers, ["failover a/m1 -> b/m2 transient", "failover b/m2 -> b/org/m3:latest not_found"]);
}

#[tokio::test]
async fn chains_of_one_registry_share_health() {
    let rig = rig();
    let m1 = rig.a.get("m1");
    m1.always(Outcome::Fail(transient(&m1)));
    let first = rig.registry.parse("a/m1, b/m2").expect("valid");
    for _ in 0..3 {
        first.generate(Request::user("hi")).await.expect("b answers");
    }
    assert!(rig.registry.health().is_benched("a/m1").is_some());
    let second = rig.registry.parse("a/m1, b/m3").expect("valid");
    second.generate(Request::user("hi")).await.expect("b answers");
    assert_eq!(m1.calls(), 9, "the second chain sees the bench and skips a/m1");
}

#[tokio::test]
async fn capability_overrides_apply_to_chain_targets() {
    let rig = rig();
    rig.registry
        .set_capabilities("a/text", Capabilities { vision: Some(false), ..Capabilities::UNKNOWN })
        .expect("valid");
    let model = rig.registry.parse("a/text, b/eyes").expect("valid");
    let mut request = Request::user("what is in the picture?");
    request.messages[0].parts.push(Part::Image { mime: "image/jpeg".into(), data: vec![1] });
    let response = model.generate(request).await.expect("b answers");
    assert_eq!(response.model, "eyes");
    assert_eq!(rig.a.get("text").calls(), 0, "skipped, not called");
    assert!(rig.registry.health().snapshot().iter().all(|h| h.target != "a/text"), "no health entry");
    // A plain request still goes to the overridden target: only vision was overridden.
    let response = model.generate(Request::user("hi")).await.expect("a answers");
    assert_eq!(response.model, "text");
}

#[test]
fn a_registry_from_environment_pairs() {
    let vars = [
        ("EXECUTUS_LLM_LOCAL", "ollama://gpu:11434"),
        ("EXECUTUS_LLM_SWAP", "llama-swap://"),
        ("HOME", "/root"),
    ];
    let registry = Registry::from_vars(vars, &HttpOptions::default()).expect("valid");
    assert_eq!(registry.provider_names(), ["local", "swap"]);
    let clone = registry.clone();
    clone.set_alias("tier", "local/qwen3:30b, swap/qwen/qwen3-coder:30b").expect("valid");
    assert_eq!(
        registry.resolve("tier").expect("clones share aliases"),
        [Target::new("local", "qwen3:30b"), Target::new("swap", "qwen/qwen3-coder:30b")]
    );
    assert_eq!(
        registry.aliases(),
        [("tier".to_owned(), "local/qwen3:30b, swap/qwen/qwen3-coder:30b".to_owned())]
    );
    let error = Registry::from_vars([("EXECUTUS_LLM_X", "bogus://")], &HttpOptions::default())
        .expect_err("unknown scheme");
    assert!(matches!(error, ConfigError::UnknownScheme { .. }), "{error}");
}

/// Regression (found while writing the `chain` fuzz target): aliases that each name the next one twice used to be
/// expanded once per path, 2^n times; an alias already expanded in full is now skipped.
#[test]
fn aliases_sharing_sub_aliases_resolve_in_linear_time() {
    let registry = grammar_registry();
    let n = 64;
    for i in 0..n {
        registry.set_alias(&format!("d{i}"), format!("d{0}, d{0}, fast", i + 1)).unwrap();
    }
    registry.set_alias(&format!("d{n}"), "openai/leaf").unwrap();
    let started = std::time::Instant::now();
    let got = registry.resolve("d0").unwrap();
    // A hang guard: the exponential expansion took 2^64 steps, the linear one microseconds.
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
    let got: Vec<String> = got.into_iter().map(|t| t.to_string()).collect();
    assert_eq!(got, ["openai/leaf", "openai/gpt-4o-mini", "ollama/qwen3:30b"]);
    // A cycle behind a shared alias is still found.
    registry.set_alias(&format!("d{n}"), "d0").unwrap();
    let err = registry.resolve("d3").unwrap_err().to_string();
    assert!(err.starts_with("alias cycle: d3 -> d4 -> "), "{err}");
    assert!(err.ends_with(&format!("d{n} -> d0 -> d1 -> d2 -> d3")), "{err}");
}

/// Regression (found while writing the `chain` fuzz target): a long alias chain is expanded without recursion, so it
/// cannot overflow the stack.
#[test]
fn a_long_alias_chain_does_not_overflow_the_stack() {
    let registry = grammar_registry();
    let n = 200_000;
    for i in 0..n {
        registry.set_alias(&format!("l{i}"), format!("l{}", i + 1)).unwrap();
    }
    registry.set_alias(&format!("l{n}"), "ollama/end").unwrap();
    let got = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || registry.resolve("l0"))
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert_eq!(got.unwrap(), [Target::new("ollama", "end")]);
}

#[tokio::test]
async fn a_virtual_model_is_one_target_wherever_a_spec_is_accepted() {
    let rig = rig();
    // A virtual model names itself; here a scripted one stands in for `auto:code`.
    let auto = executus_llm_virtual("fleet", "auto:code");
    rig.registry.add_virtual("auto:code", auto.clone()).expect("valid name");
    assert_eq!(rig.registry.virtual_names(), ["auto:code"]);
    rig.registry.set_alias("tier", "auto:code, b/m2").expect("valid");
    let pairs = |spec: &str| -> Vec<String> {
        rig.registry.resolve(spec).expect(spec).iter().map(ToString::to_string).collect()
    };
    assert_eq!(pairs("auto:code"), ["fleet/auto:code"]);
    assert_eq!(pairs("tier, auto:code, a/m1"), ["fleet/auto:code", "b/m2", "a/m1"], "deduplicated");

    // It answers as itself when it can...
    let model = rig.registry.parse("tier").expect("valid");
    let response = model.generate(Request::user("hi")).await.expect("the virtual model answers");
    assert_eq!((response.provider.as_str(), response.model.as_str()), ("fleet", "auto:code"));
    // ...and the chain around it fails over like around any target (an exhausted inner
    // routing is no reason to bench it).
    auto.always(Outcome::Fail(executus_llm::Error::new(
        executus_llm::ErrorKind::Exhausted,
        "fleet",
        "auto:code",
        "no candidate host answered",
    )));
    let response = model.generate(Request::user("hi")).await.expect("b answers");
    assert_eq!(response.model, "m2");
    assert!(rig.registry.health().is_benched("fleet/auto:code").is_none());

    // Unknown virtual names are ordinary bad elements; names are validated.
    let error = rig.registry.resolve("auto:nope").expect_err("unknown");
    assert!(
        error.to_string().contains("\"auto:nope\" is neither a known alias nor provider/model"),
        "{error}"
    );
    for bad in ["", "auto:", ":x", "a/b", "a,b", "a b"] {
        assert!(
            matches!(rig.registry.add_virtual(bad, auto.clone()), Err(ConfigError::BadName { .. })),
            "{bad:?}"
        );
    }
    // An alias of the same name wins; removing the virtual makes its name unknown again.
    rig.registry.add_virtual("tier", executus_llm_virtual("fleet", "shadowed")).expect("valid");
    assert_eq!(pairs("tier"), ["fleet/auto:code", "b/m2"]);
    assert!(rig.registry.remove_virtual("auto:code").is_some());
    assert!(rig.registry.resolve("auto:code").is_err());
}

fn executus_llm_virtual(provider: &str, id: &str) -> Arc<crate::scripted::Scripted> {
    crate::scripted::Scripted::new(provider, id)
}

/// A provider that counts how many model handles it made.
#[derive(Debug)]
struct CountingProvider {
    made: std::sync::atomic::AtomicUsize,
}

impl executus_llm::Provider for CountingProvider {
    fn name(&self) -> &str {
        "counted"
    }

    fn model(&self, id: &str) -> Arc<dyn executus_llm::Model> {
        self.made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ScriptedProvider::new("counted").model(id)
    }
}

#[test]
fn a_specs_targets_are_resolved_once_until_the_registry_changes() {
    let registry = Registry::new();
    let provider = Arc::new(CountingProvider { made: Default::default() });
    registry.add_provider(provider.clone()).unwrap();
    registry.set_alias("pair", "counted/a, counted/b").unwrap();
    let made = || provider.made.load(std::sync::atomic::Ordering::SeqCst);

    let first = registry.chain("pair").unwrap();
    assert_eq!(made(), 2, "one handle per target");
    let second = registry.chain("pair").unwrap();
    assert_eq!(made(), 2, "the same spec again reuses them");
    assert!(first.targets().eq(second.targets()));

    // Any change forgets what was resolved: the alias now names other targets.
    registry.set_alias("pair", "counted/c").unwrap();
    let third = registry.chain("pair").unwrap();
    assert_eq!(made(), 3);
    assert_eq!(third.targets().collect::<Vec<_>>(), ["counted/c"]);

    // Bounded: many distinct specs never keep more than RESOLVED_CACHE of them.
    for i in 0..(executus_llm::registry::RESOLVED_CACHE + 10) {
        registry.chain(&format!("counted/m{i}")).unwrap();
    }
    let before = made();
    registry.chain("pair").unwrap();
    registry.chain("pair").unwrap();
    assert!(made() <= before + 1, "resolved again at most once after the cache started over");
    // An unknown spec is an error every time, never cached.
    assert!(registry.chain("nobody/x").is_err());
    assert!(registry.chain("nobody/x").is_err());
}
