//! Cross-checks made at load, once every section is valid on its own: a name that refers to
//! nothing is a configuration error (exit 2, naming the key and its source) for every
//! command, instead of an agent that silently runs without a tool, a run that fails later,
//! or a `models` listing that prints the problem and exits 0.
//!
//! - Every model spec ([`model_specs`]: tiers, agents, `[compaction] summary_model`,
//!   `[critic] model`, `[swarm] models`, persona files) resolves against the registered
//!   providers, alias cycles included. A section that adds a model spec adds it there.
//!   `[image] model` resolves as an image chain (each target's provider makes images).
//! - Every tool named (agents, skills, `[policy]`, persona files) is one that a tool source
//!   contributes to [`KnownTools`]: exact names (the built-in tools and `dispatch_agent`,
//!   taken from the registry the host builds) or `*` patterns for sources whose tools are
//!   only listed at run time. [`known_tools`] is where a source adds its names.
//! - Every skill named (agents, persona files) is configured as `[skills.NAME]`.
//! - `[schedule.jobs.ID] agent` and `[chat] persona` name an agent or a persona.
//! - `[store] url` does not point at a folder or at a file that is not a SQLite database.
//!
//! What it does not do: contact a provider or any server, open, create or write the store,
//! or check what exists only at run time (a tool matched by a pattern is checked again when
//! its source starts). The store's own ownership check (`executus_store::Store::open`) stays
//! the authority on a file it opens; the header check here lets `config --check` and every
//! command refuse a wrong file without touching it.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::Path;

use executus::RuntimeConfig;
use executus::config::{ConfigError, source_of};
use executus_llm::Registry;
use figment::Figment;

use super::HostConfig;

/// Tool names the configuration may use: exact names and `*` patterns, contributed by each
/// tool source (see [`known_tools`]).
#[derive(Debug, Clone, Default)]
pub struct KnownTools {
    names: BTreeSet<String>,
    patterns: Vec<String>,
}

impl KnownTools {
    /// Adds exact tool names.
    pub fn add_names<I, S>(&mut self, names: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names.extend(names.into_iter().map(Into::into));
    }

    /// Adds a pattern for a source whose tools are listed only at run time: `*` stands for
    /// any run of characters (e.g. `mcp:files/*`). A selection written with the same `*`
    /// matches it too.
    pub fn add_pattern(&mut self, pattern: impl Into<String>) {
        self.patterns.push(pattern.into());
    }

    /// True when `name` is a known name or matches a pattern.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name) || self.patterns.iter().any(|p| glob_match(p, name))
    }

    /// Checks every name in `names`; the error says which one is unknown, the closest known
    /// name when one is close, and every known name and pattern.
    ///
    /// # Errors
    /// The reason, for a [`ConfigError::Invalid`].
    pub fn check(&self, names: &[String]) -> Result<(), String> {
        for name in names {
            if !self.contains(name) {
                return Err(unknown("tool", name, self.names.iter().chain(&self.patterns)));
            }
        }
        Ok(())
    }
}

/// The tools this host registers: the built-in tools and `dispatch_agent` (exactly the
/// registry [`crate::host::builtin_tools`] builds), `generate_image` when `[image]` has a
/// model and an output folder, and the MCP servers' selections. A tool source added to the
/// host adds its names or patterns here too.
pub fn known_tools(runtime: &RuntimeConfig, host: &HostConfig) -> KnownTools {
    let mut known = KnownTools::default();
    known.add_names(crate::host::builtin_tools(runtime).names());
    if host.image.model.is_some() && host.image.output_dir.is_some() {
        known.add_names([executus_tools::generate_image::NAME]);
    }
    // MCP servers list their tools only when they start: a selection (`mcp:NAME/TOOL`) or a
    // full name (`mcp__NAME__TOOL`, persona files) of a configured server passes here and is
    // checked against the server's list at start.
    for server in &host.mcp {
        known.add_pattern(format!("{}{}/*", executus_mcp::SELECTOR_PREFIX, server.name));
        known.add_pattern(format!("mcp__{}__*", server.name));
    }
    known
}

/// Every model spec of the configuration with its dotted key, in the order they are
/// checked (tiers first: an agent's error is then never a tier's problem in disguise).
pub fn model_specs(runtime: &RuntimeConfig, host: &HostConfig) -> Vec<(String, String)> {
    let mut specs = Vec::new();
    // A tier is checked by resolving its name, so a cycle or a bad element names the tier.
    for name in runtime.tiers.keys() {
        specs.push((format!("tiers.{name}"), name.clone()));
    }
    for (name, agent) in &runtime.agents {
        specs.push((format!("agents.{name}.model"), agent.model.clone()));
    }
    if let Some(model) = &runtime.compaction.summary_model {
        specs.push(("compaction.summary_model".into(), model.clone()));
    }
    if let Some(critic) = &host.critic {
        specs.push(("critic.model".into(), critic.model.clone()));
    }
    for model in &host.swarm.models {
        specs.push(("swarm.models".into(), model.clone()));
    }
    specs
}

/// Runs every check of the module docs.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the first key that refers to nothing, and its source.
pub fn check(
    figment: &Figment,
    runtime: &RuntimeConfig,
    host: &HostConfig,
    registry: &Registry,
    store_url: &str,
) -> Result<(), ConfigError> {
    let invalid =
        |key: String, reason: String| ConfigError::Invalid { origin: source_of(figment, &key), key, reason };
    // Tiers are aliases of the registry: defined before anything is resolved, in any order.
    for (name, spec) in &runtime.tiers {
        registry
            .set_alias(name, spec.clone())
            .map_err(|e| invalid(format!("tiers.{name}"), e.to_string()))?;
    }
    let resolve = |key: String, spec: &str| {
        registry
            .resolve(spec)
            .map(drop)
            .map_err(|e| invalid(key, format!("model spec {spec:?} does not resolve: {e}")))
    };
    for (key, spec) in model_specs(runtime, host) {
        resolve(key, &spec)?;
    }
    // The image chain: the same grammar, and every target's provider must make images.
    if let Some(spec) = &host.image.model {
        registry
            .image_chain(spec)
            .map_err(|e| invalid("image.model".into(), format!("image model spec {spec:?}: {e}")))?;
    }

    let tools = known_tools(runtime, host);
    let skills: BTreeSet<&str> = host.skills.keys().map(String::as_str).collect();
    let check_skills = |names: &[String]| -> Result<(), String> {
        match names.iter().find(|n| !skills.contains(n.as_str())) {
            Some(name) => Err(unknown("skill", name, skills.iter())),
            None => Ok(()),
        }
    };
    for (name, agent) in &runtime.agents {
        tools.check(&agent.tools).map_err(|r| invalid(format!("agents.{name}.tools"), r))?;
        check_skills(&agent.skills).map_err(|r| invalid(format!("agents.{name}.skills"), r))?;
    }
    for (name, skill) in &host.skills {
        tools.check(&skill.tools).map_err(|r| invalid(format!("skills.{name}.tools"), r))?;
    }
    tools.check(&host.require_approval).map_err(|r| invalid("policy.require_approval".into(), r))?;
    tools.check(&host.block).map_err(|r| invalid("policy.block".into(), r))?;

    // Persona files: the same checks, each error naming the file.
    let mut agents: BTreeSet<String> = runtime.agents.keys().cloned().collect();
    if let Some(dir) = &host.personas_dir {
        let key = || "personas.dir".to_owned();
        let loaded = executus_persona::load_dir(dir).map_err(|e| invalid(key(), e.to_string()))?;
        for persona in loaded {
            let file = persona.path.display();
            let p = &persona.persona;
            let in_file = |what: &str, reason: String| {
                invalid(key(), format!("{file}: persona {:?}: {what}: {reason}", p.name))
            };
            registry
                .resolve(&p.model)
                .map_err(|e| in_file("model", format!("model spec {:?} does not resolve: {e}", p.model)))?;
            tools.check(&p.tools).map_err(|r| in_file("tools", r))?;
            check_skills(&p.skills).map_err(|r| in_file("skills", r))?;
            agents.insert(p.name.clone());
        }
    }
    let agent_exists = |key: String, name: &str| {
        if agents.contains(name) {
            Ok(())
        } else {
            Err(invalid(key, unknown("agent or persona", name, agents.iter())))
        }
    };
    for job in &host.jobs {
        agent_exists(format!("schedule.jobs.{}.agent", job.id), &job.agent)?;
    }
    if let Some(persona) = &host.chat_persona {
        agent_exists("chat.persona".into(), persona)?;
    }

    check_store_file(store_url).map_err(|r| invalid("store.url".into(), r))
}

/// Refuses a store URL whose file exists and is a folder or not a SQLite database (a
/// missing or empty file is one the store creates). Reads at most 16 bytes; writes nothing.
fn check_store_file(url: &str) -> Result<(), String> {
    const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";
    let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        return Ok(());
    };
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let path = Path::new(path);
    let cannot_read = |e: std::io::Error| format!("{}: cannot read: {e}", path.display());
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(cannot_read(e)),
    };
    if metadata.is_dir() {
        return Err(format!("{} is a folder, not a SQLite database file", path.display()));
    }
    let mut header = Vec::with_capacity(16);
    std::fs::File::open(path).and_then(|f| f.take(16).read_to_end(&mut header)).map_err(cannot_read)?;
    if header.is_empty() || header.as_slice() == SQLITE_HEADER {
        return Ok(());
    }
    Err(format!(
        "{} is not a SQLite database (it does not start with the SQLite header); point [store] url at \
         a new file or an executus store",
        path.display()
    ))
}

/// "unknown WHAT "NAME" (did you mean "X"? ) (known: a, b)".
fn unknown<'a, I, S>(what: &str, name: &str, known: I) -> String
where
    I: IntoIterator<Item = &'a S>,
    S: AsRef<str> + ?Sized + 'a,
{
    let known: Vec<&str> = known.into_iter().map(AsRef::as_ref).collect();
    let close = known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default();
    let listing = if known.is_empty() { "none configured".to_owned() } else { known.join(", ") };
    format!("unknown {what} {name:?}{close} (known: {listing})")
}

/// Levenshtein distance over characters (names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `*` matches any run of characters (possibly empty); everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen and the text position it was tried at: backtrack there on a mismatch.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests;
