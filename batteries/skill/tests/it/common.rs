//! Shared helpers: a library on a manual clock, a runtime over the fake provider.

use std::sync::Arc;

use executus::llm::ManualClock;
use executus::llm::Registry;
use executus::llm::fake::FakeProvider;
use executus::ports::Ports;
use executus::tool::{ToolError, ToolRegistry, typed};
use executus::{Runtime, RuntimeConfig};
use executus_skill::SkillLibrary;
use serde::Deserialize;

/// A library over a fresh memory store whose clock stands at 1000 ms.
pub fn library() -> (SkillLibrary, ManualClock) {
    let clock = ManualClock::at(1_000);
    (SkillLibrary::in_memory().with_clock(Arc::new(clock.clone())), clock)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Args {
    #[allow(dead_code)]
    pub text: String,
}

/// A registry of typed tools with these names (each answers `"<name> ok"`).
pub fn tools(names: &[&str]) -> ToolRegistry {
    let mut registry = ToolRegistry::new();
    for name in names {
        let answer = format!("{name} ok");
        registry.register(
            typed(*name, format!("The {name} tool"), move |_ctx, _a: Args| {
                let answer = answer.clone();
                async move { Ok::<_, ToolError>(answer) }
            })
            .arc(),
        );
    }
    registry
}

/// A runtime over `fake` (provider `fake`) with `tools` and `skills` as its skill source.
pub fn runtime(fake: &FakeProvider, tools: ToolRegistry, skills: SkillLibrary) -> Runtime {
    let registry = Registry::new();
    registry.add_provider(Arc::new(fake.clone())).unwrap();
    let ports = Ports { skills: Arc::new(skills), ..Ports::default() };
    let config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    Runtime::builder().registry(registry).tools(tools).ports(ports).config(config).build()
}
