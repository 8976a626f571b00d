//! `[policy]` in a configuration file, raw (serde) then validated into a [`Policy`], for every
//! host: the CLI's agents pick a profile with `policy_profile`, the gateway's keys with
//! `profile`.
//!
//! ```toml
//! [policy]
//! require_approval = ["shell"]          # tool names, every run (global rules)
//! block = ["web_fetch"]
//!
//! [[policy.profiles.build.rules]]       # ordered; the first allow / block / approval decides
//! id = "no-push"
//! tool = "Bash"                         # a glob, or a list of globs; absent = every tool
//! args = { "/command" = "git push*" }   # JSON pointer -> glob, or { regex = "..." }
//! action = "block"                      # allow | rewrite | block | require_approval
//! hint = "Do not push; commit on the branch."
//!
//! [[policy.profiles.build.rules]]
//! id = "worktree"
//! tool = ["Edit", "Write"]
//! action = "rewrite"
//! replace = { "/file_path" = { prefix = "/repo/", with = "/repo/.worktrees/feat/" } }
//! set = { "/backup" = false }           # pointer -> any JSON value
//!
//! [[policy.profiles.build.gates]]       # the end of a turn waits until a call like this ran
//! id = "tests-ran"
//! tool = "Bash"
//! args = { "/command" = "cargo test*" }
//! hint = "Run the tests (cargo test) before you finish."
//! ```
//!
//! Errors name the key (`policy.profiles.build.rules[1].args./command`) and its source.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::matcher::{ArgPattern, CallMatcher, ConfigRule, Replace, RuleAction};
use super::{CompletionGate, Decision, FnRule, Policy, RequireApprovalFor};
use crate::config::ConfigError;

/// Raw `[policy]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Tools whose calls wait for a human's approval, in every run.
    #[serde(default)]
    pub require_approval: Vec<String>,
    /// Tools whose calls are refused, in every run.
    #[serde(default)]
    pub block: Vec<String>,
    /// Named profiles.
    #[serde(default)]
    pub profiles: BTreeMap<String, RawProfile>,
}

/// Raw `[policy.profiles.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    /// Ordered rules.
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Completion gates.
    #[serde(default)]
    pub gates: Vec<RawGate>,
}

/// One tool-name glob or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawTools {
    /// `tool = "Bash"`.
    One(String),
    /// `tool = ["Edit", "Write"]`.
    Many(Vec<String>),
}

/// An argument pattern: a glob string, or a table naming the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawPattern {
    /// `"git push*"`.
    Glob(String),
    /// `{ glob = "..." }` or `{ regex = "..." }`.
    Table {
        /// A glob.
        #[serde(default)]
        glob: Option<String>,
        /// A regular expression.
        #[serde(default)]
        regex: Option<String>,
    },
}

/// A replacement in a string argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplace {
    /// Replace this leading text...
    #[serde(default)]
    pub prefix: Option<String>,
    /// ...or every match of this expression...
    #[serde(default)]
    pub regex: Option<String>,
    /// ...with this.
    pub with: String,
}

/// Raw `[[policy.profiles.NAME.rules]]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Stable id (audit rows name it).
    pub id: Option<String>,
    /// Tool-name globs.
    pub tool: Option<RawTools>,
    /// Argument conditions.
    #[serde(default)]
    pub args: BTreeMap<String, RawPattern>,
    /// `allow`, `rewrite`, `block`, `require_approval`.
    pub action: Option<String>,
    /// What a block tells the model.
    pub hint: Option<String>,
    /// Why a call needs approval.
    pub reason: Option<String>,
    /// Rewrite: pointer -> value.
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// Rewrite: pointer -> replacement.
    #[serde(default)]
    pub replace: BTreeMap<String, RawReplace>,
}

/// Raw `[[policy.profiles.NAME.gates]]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    /// Stable id.
    pub id: Option<String>,
    /// Tool-name globs of the call that opens the gate.
    pub tool: Option<RawTools>,
    /// Argument conditions of that call.
    #[serde(default)]
    pub args: BTreeMap<String, RawPattern>,
    /// What the model is told when it tries to end its turn too early.
    pub hint: Option<String>,
}

type Invalid<'a> = &'a dyn Fn(String, String) -> ConfigError;

impl PolicyConfig {
    /// Every tool name the legacy lists mention (a host checks them against its tools).
    pub fn listed_tools(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let approval = self.require_approval.iter().map(|t| ("policy.require_approval", t.as_str()));
        approval.chain(self.block.iter().map(|t| ("policy.block", t.as_str())))
    }

    /// Validates into a [`Policy`] (the built-in `read-only` profile included).
    /// `source_of(key)` names where a key's value came from.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(&self, source_of: &dyn Fn(&str) -> String) -> Result<Policy, ConfigError> {
        let invalid =
            |key: String, reason: String| ConfigError::Invalid { origin: source_of(&key), key, reason };
        let mut policy = Policy::new();
        if !self.block.is_empty() {
            let blocked = self.block.clone();
            policy.add_global(FnRule::new("config:policy.block", move |input| {
                blocked
                    .iter()
                    .any(|t| t == input.tool)
                    .then(|| Decision::Block(format!("tool {} is blocked by the configuration", input.tool)))
            }));
        }
        if !self.require_approval.is_empty() {
            policy.add_global(RequireApprovalFor::new(self.require_approval.clone()));
        }
        for (name, profile) in &self.profiles {
            let base = format!("policy.profiles.{name}");
            if name.trim().is_empty() {
                return Err(invalid(base, "a profile needs a name".into()));
            }
            let mut ids = BTreeSet::new();
            for (i, raw) in profile.rules.iter().enumerate() {
                let rule = rule(raw, &format!("{base}.rules[{i}]"), &invalid)?;
                if !ids.insert(rule.id.clone()) {
                    return Err(invalid(
                        format!("{base}.rules[{i}].id"),
                        format!("rule id {:?} is used twice in this profile", rule.id),
                    ));
                }
                policy.add_to_profile(name, rule.shared());
            }
            // A profile with gates only (or nothing) still exists.
            if profile.rules.is_empty() {
                policy.profiles.entry(name.clone()).or_default();
            }
            let mut gate_ids = BTreeSet::new();
            for (i, raw) in profile.gates.iter().enumerate() {
                let key = format!("{base}.gates[{i}]");
                let id = required(raw.id.as_deref(), &format!("{key}.id"), &invalid)?;
                if !gate_ids.insert(id.clone()) {
                    return Err(invalid(
                        format!("{key}.id"),
                        format!("gate id {id:?} is used twice in this profile"),
                    ));
                }
                let hint = required(raw.hint.as_deref(), &format!("{key}.hint"), &invalid)?;
                let matcher = matcher(raw.tool.as_ref(), &raw.args, &key, &invalid)?;
                policy.add_gate(name, CompletionGate { id, hint, requires: Arc::new(matcher) });
            }
        }
        Ok(policy)
    }
}

fn required(value: Option<&str>, key: &str, invalid: Invalid<'_>) -> Result<String, ConfigError> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| invalid(key.to_owned(), "is required and must not be empty".into()))
}

fn regex(pattern: &str, key: &str, invalid: Invalid<'_>) -> Result<Regex, ConfigError> {
    Regex::new(pattern).map_err(|e| invalid(key.to_owned(), format!("not a regular expression: {e}")))
}

fn pointer(pointer: &str, key: &str, invalid: Invalid<'_>) -> Result<(), ConfigError> {
    if pointer.starts_with('/') {
        Ok(())
    } else {
        Err(invalid(
            key.to_owned(),
            format!("{pointer:?} is not a JSON pointer (it starts with '/', e.g. /command)"),
        ))
    }
}

fn matcher(
    tools: Option<&RawTools>,
    args: &BTreeMap<String, RawPattern>,
    key: &str,
    invalid: Invalid<'_>,
) -> Result<CallMatcher, ConfigError> {
    let tools = match tools {
        None => Vec::new(),
        Some(RawTools::One(t)) => vec![t.clone()],
        Some(RawTools::Many(list)) => list.clone(),
    };
    if tools.iter().any(|t| t.trim().is_empty()) {
        return Err(invalid(format!("{key}.tool"), "tool names must not be empty".into()));
    }
    let mut conditions = Vec::with_capacity(args.len());
    for (path, pattern) in args {
        let arg_key = format!("{key}.args.{path}");
        pointer(path, &arg_key, invalid)?;
        let pattern = match pattern {
            RawPattern::Glob(glob) | RawPattern::Table { glob: Some(glob), regex: None } => {
                ArgPattern::Glob(glob.clone())
            }
            RawPattern::Table { glob: None, regex: Some(re) } => {
                ArgPattern::Regex(regex(re, &arg_key, invalid)?)
            }
            RawPattern::Table { .. } => {
                return Err(invalid(
                    arg_key,
                    "give a glob string, { glob = \"...\" } or { regex = \"...\" }".into(),
                ));
            }
        };
        conditions.push((path.clone(), pattern));
    }
    Ok(CallMatcher { tools, args: conditions })
}

fn rule(raw: &RawRule, key: &str, invalid: Invalid<'_>) -> Result<ConfigRule, ConfigError> {
    let id = required(raw.id.as_deref(), &format!("{key}.id"), invalid)?;
    let matcher = matcher(raw.tool.as_ref(), &raw.args, key, invalid)?;
    let action_key = format!("{key}.action");
    let action_name = required(raw.action.as_deref(), &action_key, invalid)?;
    let rewrite_only = |field: &str, present: bool| {
        if present && action_name != "rewrite" {
            Err(invalid(
                format!("{key}.{field}"),
                format!("only a rewrite rule takes `{field}` (action is {action_name})"),
            ))
        } else {
            Ok(())
        }
    };
    rewrite_only("set", !raw.set.is_empty())?;
    rewrite_only("replace", !raw.replace.is_empty())?;
    if raw.hint.is_some() && action_name != "block" {
        return Err(invalid(
            format!("{key}.hint"),
            format!("only a block rule takes `hint` (action is {action_name})"),
        ));
    }
    if raw.reason.is_some() && action_name != "require_approval" {
        return Err(invalid(
            format!("{key}.reason"),
            format!("only a require_approval rule takes `reason` (action is {action_name})"),
        ));
    }
    let action = match action_name.as_str() {
        "allow" => RuleAction::Allow,
        "block" => RuleAction::Block {
            hint: raw
                .hint
                .clone()
                .filter(|h| !h.trim().is_empty())
                .unwrap_or_else(|| format!("blocked by policy rule {id}")),
        },
        "require_approval" => RuleAction::RequireApproval {
            reason: raw
                .reason
                .clone()
                .unwrap_or_else(|| format!("policy rule {id} needs a human's approval")),
        },
        "rewrite" => {
            if raw.set.is_empty() && raw.replace.is_empty() {
                return Err(invalid(key.to_owned(), "a rewrite rule needs `set` or `replace`".into()));
            }
            let mut set = Vec::with_capacity(raw.set.len());
            for (path, value) in &raw.set {
                pointer(path, &format!("{key}.set.{path}"), invalid)?;
                set.push((path.clone(), value.clone()));
            }
            let mut replace = Vec::with_capacity(raw.replace.len());
            for (path, r) in &raw.replace {
                let replace_key = format!("{key}.replace.{path}");
                pointer(path, &replace_key, invalid)?;
                let replacement = match (&r.prefix, &r.regex) {
                    (Some(prefix), None) if !prefix.is_empty() => {
                        Replace::Prefix { prefix: prefix.clone(), with: r.with.clone() }
                    }
                    (None, Some(re)) => {
                        Replace::Regex { re: regex(re, &replace_key, invalid)?, with: r.with.clone() }
                    }
                    _ => {
                        return Err(invalid(
                            replace_key,
                            "give either a non-empty `prefix` or a `regex`, and `with`".into(),
                        ));
                    }
                };
                replace.push((path.clone(), replacement));
            }
            RuleAction::Rewrite { set, replace }
        }
        other => {
            return Err(invalid(
                action_key,
                format!("unknown action {other:?} (allow, rewrite, block, require_approval)"),
            ));
        }
    };
    Ok(ConfigRule { id, matcher, action })
}
