//! Shared helpers: persona folders in temp dirs, a runtime over the fake provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use executus::llm::Registry;
use executus::llm::fake::FakeProvider;
use executus::ports::Ports;
use executus::tool::{ToolError, ToolRegistry, typed};
use executus::{Runtime, RuntimeConfig};
use executus_persona::PersonaLibrary;
use executus_skill::SkillLibrary;
use serde::Deserialize;
use tempfile::TempDir;

/// A temp dir holding these files (name, contents).
pub fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        write(dir.path(), name, text.as_bytes());
    }
    dir
}

/// Writes `bytes` to `dir/name`, creating parent folders.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The example personas shipped with the crate.
pub fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("personas")
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

/// A runtime over `fake` (provider `fake`, tiers `smart` and `fast` both `fake/m`) with
/// `personas` and `skills` as its ports.
pub fn runtime(
    fake: &FakeProvider,
    tools: ToolRegistry,
    personas: PersonaLibrary,
    skills: SkillLibrary,
) -> Runtime {
    let registry = Registry::new();
    registry.add_provider(Arc::new(fake.clone())).unwrap();
    registry.set_alias("smart", "fake/m").unwrap();
    registry.set_alias("fast", "fake/m").unwrap();
    let ports = Ports { personas: Arc::new(personas), skills: Arc::new(skills), ..Ports::default() };
    let config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    Runtime::builder().registry(registry).tools(tools).ports(ports).config(config).build()
}
