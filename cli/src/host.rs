//! Builds the runtime the commands share from the validated configuration.

use executus::Runtime;
use executus::tool::ToolRegistry;
use executus::tool::builtin::standard_tools;
use executus::tool::dispatch_agent::DispatchAgent;

use crate::config::CliConfig;

/// The runtime for `config`: its providers and tiers, the built-in tools.
///
/// # Errors
/// A registry error naming a bad tier.
pub fn runtime(config: &CliConfig) -> anyhow::Result<Runtime> {
    let mut tools = ToolRegistry::new().with(DispatchAgent::arc());
    for tool in standard_tools(&config.runtime) {
        tools.register(tool);
    }
    let rt = Runtime::builder()
        .registry(config.registry.clone())
        .config(config.runtime.clone())
        .tools(tools)
        .try_build()
        .map_err(|e| crate::UsageError(e.to_string()))?;
    Ok(rt)
}
