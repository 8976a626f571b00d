//! Target `chain`: the chain-spec grammar (`Registry::resolve` and `Registry::parse`) over
//! arbitrary alias tables, cycles included.
//!
//! Input (lossy UTF-8): lines `name=spec` define aliases (in order, later ones replace
//! earlier ones; names the registry refuses are skipped); the last line is the spec to
//! resolve. Providers `p`, `q` and `fake` are registered.
//!
//! Properties: no panic, no stack overflow, no hang (a resolve takes well under a second,
//! whatever the aliases: no exponential expansion); the result is the same as a plain
//! recursive reference expansion of the documented grammar (when that finishes within a
//! work budget): the same targets in the same order, or an error of the same kind; a
//! resolved chain is non-empty with unique targets whose providers are registered; `parse`
//! succeeds exactly when `resolve` does.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use executus_llm::fake::FakeProvider;
use executus_llm::{ConfigError, Registry};

const PROVIDERS: [&str; 3] = ["fake", "p", "q"];

/// The reference: the grammar exactly as documented, expanded naively; `None` when it needs
/// more than `budget` element visits.
fn reference(
    aliases: &BTreeMap<String, String>,
    spec: &str,
    budget: &mut u32,
) -> Option<Result<Vec<(String, String)>, String>> {
    fn expand(
        aliases: &BTreeMap<String, String>,
        spec: &str,
        stack: &mut Vec<String>,
        seen: &mut HashSet<(String, String)>,
        out: &mut Vec<(String, String)>,
        budget: &mut u32,
    ) -> Option<Result<(), String>> {
        for element in spec.split(',').map(str::trim) {
            *budget = budget.checked_sub(1)?;
            if element.is_empty() {
                return Some(Err("EmptyElement".into()));
            }
            if let Some((provider, model)) = element.split_once('/') {
                if provider.is_empty() || model.is_empty() {
                    return Some(Err("BadElement".into()));
                }
                if !PROVIDERS.contains(&provider) {
                    return Some(Err("UnknownProvider".into()));
                }
                let target = (provider.to_owned(), model.to_owned());
                if seen.insert(target.clone()) {
                    out.push(target);
                }
            } else if let Some(alias_spec) = aliases.get(element) {
                if let Some(start) = stack.iter().position(|a| a == element) {
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(element.to_owned());
                    return Some(Err(format!("AliasCycle {cycle:?}")));
                }
                stack.push(element.to_owned());
                if let Err(e) = expand(aliases, alias_spec, stack, seen, out, budget)? {
                    return Some(Err(e));
                }
                stack.pop();
            } else {
                return Some(Err("BadElement".into()));
            }
        }
        Some(Ok(()))
    }
    if spec.trim().is_empty() {
        return Some(Err("EmptyChain".into()));
    }
    let mut out = Vec::new();
    let result = expand(aliases, spec, &mut Vec::new(), &mut HashSet::new(), &mut out, budget)?;
    Some(result.map(|()| out))
}

fn kind(e: &ConfigError) -> String {
    match e {
        ConfigError::AliasCycle { cycle } => format!("AliasCycle {cycle:?}"),
        other => format!("{other:?}").split([' ', '{']).next().unwrap_or_default().to_owned(),
    }
}

/// The fuzz target.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines: Vec<&str> = text.split('\n').collect();
    let spec = lines.pop().unwrap_or_default();
    let registry = Registry::new();
    for name in PROVIDERS {
        registry.add_provider(Arc::new(FakeProvider::new(name))).expect("valid provider names");
    }
    let mut aliases = BTreeMap::new();
    for line in lines {
        let Some((name, alias_spec)) = line.split_once('=') else { continue };
        if registry.set_alias(name, alias_spec).is_ok() {
            aliases.insert(name.to_owned(), alias_spec.to_owned());
        }
    }
    let started = Instant::now();
    let resolved = registry.resolve(spec);
    let parsed = registry.parse(spec);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "resolving took {took:?}");

    assert_eq!(resolved.is_ok(), parsed.is_ok(), "resolve and parse disagree");
    match &resolved {
        Ok(targets) => {
            assert!(!targets.is_empty(), "an empty chain resolved");
            let unique: HashSet<_> = targets.iter().collect();
            assert_eq!(unique.len(), targets.len(), "duplicate targets: {targets:?}");
            for target in targets {
                let provider = &target.provider;
                assert!(PROVIDERS.contains(&provider.as_str()), "unregistered provider {provider:?}");
                assert!(!target.model.is_empty(), "empty model id");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let mut budget = 20_000;
    if let Some(want) = reference(&aliases, spec, &mut budget) {
        let got = resolved
            .map(|targets| targets.into_iter().map(|t| (t.provider, t.model)).collect::<Vec<_>>())
            .map_err(|e| kind(&e));
        assert_eq!(got, want, "resolve differs from the reference expansion");
    }
}
