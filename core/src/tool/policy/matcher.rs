//! Rules written in configuration: which calls a rule applies to ([`CallMatcher`]) and what it
//! does to them ([`RuleAction`]), together a [`ConfigRule`].
//!
//! A matcher holds tool-name globs (any one may match; none means every tool) and argument
//! conditions, each a JSON pointer (`/command`, `/edits/0/path`) and a pattern (a glob or a
//! regular expression) that the value there must match; all conditions must hold. A string
//! value is matched as is; a number or boolean by its JSON text; a missing value, an object or
//! an array never matches.
//!
//! A rewrite sets arguments (`set`: pointer -> JSON value; the parent must exist) or replaces
//! text in string arguments (`replace`: a prefix, or a regular expression with `$1`-style
//! groups). A rewrite that changes nothing has no opinion, so evaluation moves on.

use std::sync::Arc;

use regex::Regex;
use serde_json::Value;

use super::{CallMatch, Decision, PolicyInput, PolicyRule, glob_match};

/// How an argument value must look.
#[derive(Debug, Clone)]
pub enum ArgPattern {
    /// `*` globs (see [`glob_match`]).
    Glob(String),
    /// A regular expression, matched anywhere in the value unless anchored.
    Regex(Regex),
}

impl ArgPattern {
    fn matches(&self, text: &str) -> bool {
        match self {
            Self::Glob(pattern) => glob_match(pattern, text),
            Self::Regex(re) => re.is_match(text),
        }
    }
}

/// Which calls a rule or gate applies to.
#[derive(Debug, Clone, Default)]
pub struct CallMatcher {
    /// Tool-name globs; empty means every tool.
    pub tools: Vec<String>,
    /// `(JSON pointer, pattern)` conditions, all of which must hold.
    pub args: Vec<(String, ArgPattern)>,
}

/// The text of a scalar argument, for matching.
fn scalar_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Number(_) | Value::Bool(_) => Some(std::borrow::Cow::Owned(value.to_string())),
        _ => None,
    }
}

impl CallMatch for CallMatcher {
    fn matches(&self, tool: &str, args: &Value) -> bool {
        if !self.tools.is_empty() && !self.tools.iter().any(|t| glob_match(t, tool)) {
            return false;
        }
        self.args.iter().all(|(pointer, pattern)| {
            args.pointer(pointer).and_then(scalar_text).is_some_and(|text| pattern.matches(&text))
        })
    }
}

/// A text replacement in a string argument.
#[derive(Debug, Clone)]
pub enum Replace {
    /// A leading `prefix` becomes `with`.
    Prefix {
        /// What the value must start with.
        prefix: String,
        /// Its replacement.
        with: String,
    },
    /// Every match of the expression becomes `with` (`$1`, `${name}` refer to groups).
    Regex {
        /// The expression.
        re: Regex,
        /// The replacement.
        with: String,
    },
}

impl Replace {
    fn apply(&self, text: &str) -> Option<String> {
        match self {
            Self::Prefix { prefix, with } => {
                text.strip_prefix(prefix.as_str()).map(|rest| format!("{with}{rest}"))
            }
            Self::Regex { re, with } => {
                let out = re.replace_all(text, with.as_str());
                (out != text).then(|| out.into_owned())
            }
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone)]
pub enum RuleAction {
    /// Run the call (stops evaluation).
    Allow,
    /// Change arguments, then let later rules see the new ones.
    Rewrite {
        /// `(pointer, value)`: set the argument to the value.
        set: Vec<(String, Value)>,
        /// `(pointer, replacement)`: replace text in a string argument.
        replace: Vec<(String, Replace)>,
    },
    /// Refuse the call; the model is told `hint`.
    Block {
        /// What the model is told.
        hint: String,
    },
    /// Hold the call for a human (hosts without one treat it as a block).
    RequireApproval {
        /// Why.
        reason: String,
    },
}

/// A rule from configuration: a matcher and an action.
#[derive(Debug, Clone)]
pub struct ConfigRule {
    /// Stable id (audit rows name it).
    pub id: String,
    /// Which calls it applies to.
    pub matcher: CallMatcher,
    /// What it does.
    pub action: RuleAction,
}

impl ConfigRule {
    /// The rule as a shared [`PolicyRule`].
    pub fn shared(self) -> Arc<dyn PolicyRule> {
        Arc::new(self)
    }
}

/// Sets `pointer` in `root` to `value`; the parent must be an object (or an array with the
/// index in range). Returns false when it cannot.
fn set_pointer(root: &mut Value, pointer: &str, value: Value) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    let target = if parent.is_empty() { Some(root) } else { root.pointer_mut(parent) };
    match target {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            true
        }
        Some(Value::Array(items)) => match last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        },
        _ => false,
    }
}

impl PolicyRule for ConfigRule {
    fn id(&self) -> &str {
        &self.id
    }

    fn decide(&self, input: &PolicyInput<'_>) -> Option<Decision> {
        if !self.matcher.matches(input.tool, input.args) {
            return None;
        }
        match &self.action {
            RuleAction::Allow => Some(Decision::Allow),
            RuleAction::Block { hint } => Some(Decision::Block(hint.clone())),
            RuleAction::RequireApproval { reason } => Some(Decision::RequireApproval(reason.clone())),
            RuleAction::Rewrite { set, replace } => {
                let mut args = input.args.clone();
                for (pointer, value) in set {
                    set_pointer(&mut args, pointer, value.clone());
                }
                for (pointer, replacement) in replace {
                    let new = args
                        .pointer(pointer)
                        .and_then(Value::as_str)
                        .and_then(|text| replacement.apply(text));
                    if let Some(new) = new {
                        set_pointer(&mut args, pointer, Value::String(new));
                    }
                }
                (args != *input.args).then_some(Decision::Rewrite(args))
            }
        }
    }
}
