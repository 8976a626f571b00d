//! Runtime policy: the third permission stage, after registry enablement and the agent's
//! allowlist.
//!
//! A [`PolicyRule`] sees the tool, its arguments, the identity, the run and the profile, and
//! returns [`Decision::Allow`], [`Decision::Rewrite`], [`Decision::Block`] or
//! [`Decision::RequireApproval`] — or no opinion. Rules are grouped into named profiles;
//! global rules apply to every run, then the agent's profile's rules. Evaluation stops at
//! the first Allow, Block or RequireApproval; a Rewrite replaces the arguments and
//! evaluation continues with them. No opinion from anyone means allow (rule `default`).
//! Every decision is audited with the id of the rule that made it.
//!
//! A profile may also hold [`CompletionGate`]s: conditions a session must meet before its
//! model may end a turn (e.g. "a test command ran"). The core's run loop does not consult
//! them; the gateway does (it holds a client's turn open with a reminder, bounded by its
//! session hard cap).
//!
//! With the `config` feature, [`PolicyConfig`] (`[policy]` in a configuration file) builds a
//! policy from ordered rules matching tool names and argument values ([`CallMatcher`]), with
//! allow / rewrite / block / require-approval actions and completion gates, for every host.

#[cfg(feature = "config")]
mod config;
#[cfg(feature = "config")]
mod matcher;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

#[cfg(feature = "config")]
pub use self::config::{PolicyConfig, RawGate, RawPattern, RawProfile, RawReplace, RawRule, RawTools};
#[cfg(feature = "config")]
pub use self::matcher::{ArgPattern, CallMatcher, ConfigRule, Replace, RuleAction};

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::identity::Identity;
use crate::ids::RunId;

/// What a rule decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Run the call as is.
    Allow,
    /// Run the call with these arguments instead.
    Rewrite(Value),
    /// Do not run it; the model is told why.
    Block(String),
    /// Pause the run until a human approves or denies the call.
    RequireApproval(String),
}

impl Decision {
    /// Snake-case name, for audit rows.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Rewrite(_) => "rewrite",
            Self::Block(_) => "block",
            Self::RequireApproval(_) => "require_approval",
        }
    }
}

/// What a rule sees.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// Tool name.
    pub tool: &'a str,
    /// Arguments (as rewritten by earlier rules).
    pub args: &'a Value,
    /// Who the run acts for.
    pub identity: &'a Identity,
    /// The run.
    pub run_id: RunId,
    /// Agent name.
    pub agent: &'a str,
    /// The agent's policy profile.
    pub profile: Option<&'a str>,
    /// Whether the tool declares itself read-only.
    pub read_only: bool,
}

/// One policy rule.
pub trait PolicyRule: Send + Sync {
    /// Stable id, recorded in audit rows.
    fn id(&self) -> &str;

    /// The decision, or `None` for no opinion.
    fn decide(&self, input: &PolicyInput<'_>) -> Option<Decision>;
}

/// The result of evaluating a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The final decision (`Rewrite` carries the final arguments).
    pub decision: Decision,
    /// The rule that made the final decision (`default` when none had an opinion).
    pub rule: String,
    /// Rules that rewrote the arguments on the way, in order.
    pub rewrites: Vec<String>,
}

impl Verdict {
    /// A human-readable reason, for the model and the audit row.
    pub fn reason(&self) -> Option<String> {
        match &self.decision {
            Decision::Block(r) | Decision::RequireApproval(r) => Some(r.clone()),
            Decision::Rewrite(_) => Some(format!("arguments rewritten by {}", self.rewrites.join(", "))),
            Decision::Allow => None,
        }
    }
}

/// A condition on tool calls, for completion gates.
pub trait CallMatch: Send + Sync + std::fmt::Debug {
    /// True if a call of `tool` with `args` meets the condition.
    fn matches(&self, tool: &str, args: &Value) -> bool;
}

/// A completion gate: the end of a turn is held until some tool call of the session meets
/// `requires`; the model is told `hint`.
#[derive(Debug, Clone)]
pub struct CompletionGate {
    /// Stable id, recorded in audit rows.
    pub id: String,
    /// What the model is told when it tries to end its turn too early.
    pub hint: String,
    /// The call that opens the gate.
    pub requires: Arc<dyn CallMatch>,
}

impl CompletionGate {
    /// True if any of `calls` (tool name, arguments) opens the gate.
    pub fn met_by<'a>(&self, mut calls: impl Iterator<Item = (&'a str, &'a Value)>) -> bool {
        calls.any(|(tool, args)| self.requires.matches(tool, args))
    }
}

/// `*` matches any run of characters (including none); every other character matches
/// itself. The one glob dialect of policies and model allow-lists.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Global rules plus named profiles. The default has the built-in `read-only` profile.
#[derive(Clone)]
pub struct Policy {
    global: Vec<Arc<dyn PolicyRule>>,
    profiles: BTreeMap<String, Vec<Arc<dyn PolicyRule>>>,
    gates: BTreeMap<String, Vec<CompletionGate>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("global", &self.global.iter().map(|r| r.id().to_owned()).collect::<Vec<_>>())
            .field("profiles", &self.profiles.keys().collect::<Vec<_>>())
            .field("gates", &self.gates.iter().map(|(p, g)| (p, g.len())).collect::<Vec<_>>())
            .finish()
    }
}

impl Default for Policy {
    fn default() -> Self {
        let mut p = Self { global: Vec::new(), profiles: BTreeMap::new(), gates: BTreeMap::new() };
        p.add_to_profile("read-only", Arc::new(ReadOnly));
        p
    }
}

impl Policy {
    /// A policy with the built-in `read-only` profile and no global rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule that applies to every run.
    pub fn add_global(&mut self, rule: Arc<dyn PolicyRule>) -> &mut Self {
        self.global.push(rule);
        self
    }

    /// Adds a rule to a profile (created if new).
    pub fn add_to_profile(&mut self, profile: &str, rule: Arc<dyn PolicyRule>) -> &mut Self {
        self.profiles.entry(profile.to_owned()).or_default().push(rule);
        self
    }

    /// Adds a completion gate to a profile (created if new).
    pub fn add_gate(&mut self, profile: &str, gate: CompletionGate) -> &mut Self {
        self.profiles.entry(profile.to_owned()).or_default();
        self.gates.entry(profile.to_owned()).or_default().push(gate);
        self
    }

    /// True if the profile exists.
    pub fn has_profile(&self, profile: &str) -> bool {
        self.profiles.contains_key(profile)
    }

    /// The profiles' names.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// The completion gates of `profile` (none for no profile or an unknown one).
    pub fn gates(&self, profile: Option<&str>) -> &[CompletionGate] {
        profile.and_then(|p| self.gates.get(p)).map(Vec::as_slice).unwrap_or_default()
    }

    /// Evaluates a call. An unknown profile blocks (fail closed), naming it.
    pub fn evaluate(&self, input: &PolicyInput<'_>) -> Verdict {
        let profile_rules: &[Arc<dyn PolicyRule>] = match input.profile {
            None => &[],
            Some(name) => match self.profiles.get(name) {
                Some(rules) => rules,
                None => {
                    return Verdict {
                        decision: Decision::Block(format!("unknown policy profile {name:?}")),
                        rule: "unknown-profile".into(),
                        rewrites: Vec::new(),
                    };
                }
            },
        };
        // Borrowed until a rule rewrites them: most calls meet no rewrite.
        let mut args = std::borrow::Cow::Borrowed(input.args);
        let mut rewrites = Vec::new();
        for rule in self.global.iter().chain(profile_rules) {
            let current = PolicyInput { args: &args, ..*input };
            match rule.decide(&current) {
                None => {}
                Some(Decision::Rewrite(new_args)) => {
                    rewrites.push(rule.id().to_owned());
                    args = std::borrow::Cow::Owned(new_args);
                }
                Some(decision) => {
                    let decision = match decision {
                        Decision::Allow if !rewrites.is_empty() => Decision::Rewrite(args.into_owned()),
                        other => other,
                    };
                    return Verdict { decision, rule: rule.id().to_owned(), rewrites };
                }
            }
        }
        if rewrites.is_empty() {
            Verdict { decision: Decision::Allow, rule: "default".into(), rewrites }
        } else {
            let rule = rewrites.last().cloned().unwrap_or_default();
            Verdict { decision: Decision::Rewrite(args.into_owned()), rule, rewrites }
        }
    }
}

/// Blocks every tool that does not declare itself read-only (the `read-only` profile).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOnly;

impl PolicyRule for ReadOnly {
    fn id(&self) -> &str {
        "read-only"
    }

    fn decide(&self, input: &PolicyInput<'_>) -> Option<Decision> {
        if input.read_only {
            Some(Decision::Allow)
        } else {
            Some(Decision::Block(format!(
                "tool {} is not read-only and this agent runs read-only",
                input.tool
            )))
        }
    }
}

/// A rule from a closure.
pub struct FnRule<F> {
    id: String,
    f: F,
}

impl<F> FnRule<F>
where
    F: Fn(&PolicyInput<'_>) -> Option<Decision> + Send + Sync + 'static,
{
    /// A rule with this id and decision function.
    pub fn new(id: impl Into<String>, f: F) -> Arc<Self> {
        Arc::new(Self { id: id.into(), f })
    }
}

impl<F> PolicyRule for FnRule<F>
where
    F: Fn(&PolicyInput<'_>) -> Option<Decision> + Send + Sync + 'static,
{
    fn id(&self) -> &str {
        &self.id
    }

    fn decide(&self, input: &PolicyInput<'_>) -> Option<Decision> {
        (self.f)(input)
    }
}

/// Requires approval for the named tools.
#[derive(Debug, Clone)]
pub struct RequireApprovalFor {
    id: String,
    tools: Vec<String>,
}

impl RequireApprovalFor {
    /// A rule requiring approval for these tools.
    pub fn new<I, S>(tools: I) -> Arc<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tools: Vec<String> = tools.into_iter().map(Into::into).collect();
        Arc::new(Self { id: format!("approval:{}", tools.join(",")), tools })
    }
}

impl PolicyRule for RequireApprovalFor {
    fn id(&self) -> &str {
        &self.id
    }

    fn decide(&self, input: &PolicyInput<'_>) -> Option<Decision> {
        self.tools
            .iter()
            .any(|t| t == input.tool)
            .then(|| Decision::RequireApproval(format!("tool {} needs a human's approval", input.tool)))
    }
}
