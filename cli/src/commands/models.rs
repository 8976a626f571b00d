//! `models [--check]`: providers, tiers and their chains, with health; `--check` makes one
//! tiny call per provider and reports its latency or the classified error.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Args;
use executus_llm::{Request, TargetHealth};

use crate::Exit;
use crate::config::CliConfig;

/// Arguments of `models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Make one tiny call per provider (to a model some tier uses).
    #[arg(long)]
    pub check: bool,
}

/// Prints providers, tiers and health; optionally checks each provider.
///
/// # Errors
/// None in practice: problems are printed per provider.
pub async fn models(config: &CliConfig, args: ModelsArgs) -> anyhow::Result<Exit> {
    let runtime = crate::host::bare_runtime(config)?;
    let registry = runtime.registry();
    let providers = registry.provider_names();
    outln!("providers:");
    if providers.is_empty() {
        outln!("  (none: add [providers.NAME] to the configuration or set EXECUTUS_LLM_<NAME>=<dsn>)");
    }
    for p in &providers {
        outln!("  {p}");
    }
    // A model per provider to check: the first one any tier uses.
    let mut probe: BTreeMap<String, String> = BTreeMap::new();
    outln!("tiers:");
    for (tier, spec) in registry.aliases() {
        match registry.resolve(&tier) {
            Ok(targets) => {
                let chain: Vec<String> = targets.iter().map(ToString::to_string).collect();
                outln!("  {tier} = {spec}\n    chain: {}", chain.join(" -> "));
                for t in targets {
                    probe.entry(t.provider).or_insert(t.model);
                }
            }
            Err(e) => outln!("  {tier} = {spec}\n    error: {e}"),
        }
    }
    let health: Vec<TargetHealth> = registry.health().snapshot();
    outln!("health:");
    if health.is_empty() {
        outln!("  (no calls made yet in this process)");
    }
    for h in health {
        outln!("  {h:?}");
    }
    if !args.check {
        return Ok(Exit::Ok);
    }
    outln!("check:");
    let mut failures = 0;
    for p in &providers {
        let Some(model) = probe.get(p) else {
            outln!("  {p}: skipped (no tier uses this provider, so no model to call)");
            continue;
        };
        let spec = executus::llm::Target::new(p, model).to_string();
        let started = Instant::now();
        let outcome = match registry.provider(p) {
            Some(provider) => {
                let request = Request { max_tokens: Some(1), ..Request::user("ping") };
                provider.model(model).generate(request).await
            }
            None => continue,
        };
        match outcome {
            Ok(r) => {
                outln!("  {spec}: ok in {} ms (answered by {})", started.elapsed().as_millis(), r.model)
            }
            Err(e) => {
                failures += 1;
                outln!("  {spec}: {} after {} ms: {e}", e.kind, started.elapsed().as_millis());
            }
        }
    }
    Ok(if failures == 0 { Exit::Ok } else { Exit::Failed })
}
