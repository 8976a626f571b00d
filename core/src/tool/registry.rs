//! [`ToolRegistry`]: the tools a runtime knows, each enabled or disabled.

use std::collections::BTreeMap;
use std::sync::Arc;

use executus_llm::ToolSpec;

use super::Tool;

/// Tools by name, with an enabled flag (permission stage 1: the tool exists and is enabled).
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, (Arc<dyn Tool>, bool)>,
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a tool, enabled.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> &mut Self {
        self.tools.insert(tool.name().to_owned(), (tool, true));
        self
    }

    /// Registers a tool, builder style.
    #[must_use]
    pub fn with(mut self, tool: Arc<dyn Tool>) -> Self {
        self.register(tool);
        self
    }

    /// Enables or disables a tool; returns false if it is not registered.
    pub fn set_enabled(&mut self, name: &str, enabled: bool) -> bool {
        match self.tools.get_mut(name) {
            Some(entry) => {
                entry.1 = enabled;
                true
            }
            None => false,
        }
    }

    /// The tool called `name`, if registered (enabled or not).
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name).map(|(t, _)| t)
    }

    /// The tool called `name` if it is registered and enabled.
    pub fn enabled(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name).filter(|(_, on)| *on).map(|(t, _)| t)
    }

    /// Names of all registered tools.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// Specs of the enabled tools among `allowed`, in `allowed` order (unknown names are
    /// skipped: the model is not offered what cannot run).
    pub fn specs(&self, allowed: &[String]) -> Vec<ToolSpec> {
        allowed
            .iter()
            .filter_map(|name| self.enabled(name))
            .map(|t| ToolSpec {
                name: t.name().to_owned(),
                description: t.description().to_owned(),
                parameters: t.parameters(),
            })
            .collect()
    }
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.iter().map(|(n, (_, on))| (n, on))).finish()
    }
}
