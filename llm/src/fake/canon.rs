//! Canonical request keys and structural diffs, for matching live requests against recorded
//! ones.

use serde_json::{Map, Value};

use crate::secret::Secret;
use crate::types::Request;

/// How a request is reduced before matching: top-level fields to ignore and secrets to scrub.
#[derive(Debug, Clone, Default)]
pub(crate) struct Canon {
    pub ignore: Vec<String>,
    pub secrets: Vec<Secret>,
}

impl Canon {
    /// The request as the JSON value compared for matching.
    pub fn value(&self, request: &Request) -> Value {
        let mut value = serde_json::to_value(request).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            for field in &self.ignore {
                map.remove(field);
            }
        }
        scrub(&mut value, &self.secrets);
        value
    }
}

/// Replaces every secret in every string and object key of `value` with `[redacted]`.
pub(crate) fn scrub(value: &mut Value, secrets: &[Secret]) {
    if secrets.is_empty() {
        return;
    }
    let scrub_str = |s: &str| secrets.iter().fold(s.to_owned(), |acc, secret| secret.scrub(&acc));
    match value {
        Value::String(s) => *s = scrub_str(s),
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, secrets)),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (key, mut v) in old {
                scrub(&mut v, secrets);
                map.insert(scrub_str(&key), v);
            }
        }
        _ => {}
    }
}

/// A string that is equal for equal JSON values: object keys sorted, no whitespace.
pub(crate) fn key(value: &Value) -> String {
    crate::types::canonical_json(value)
}

/// The first place two values differ, in sorted-key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Difference {
    /// Path such as `messages[1].parts[0].text`; empty for the root.
    pub path: String,
    /// The recorded value there (`None`: absent), abbreviated.
    pub recorded: Option<String>,
    /// The live value there (`None`: absent), abbreviated.
    pub got: Option<String>,
}

impl Difference {
    /// A human-readable description.
    pub fn describe(&self) -> String {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".to_owned());
        let path = if self.path.is_empty() { "(the whole request)" } else { &self.path };
        format!("{path}: recorded {}, got {}", show(&self.recorded), show(&self.got))
    }
}

const SHOWN: usize = 80;

fn abbreviate(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

fn push_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Value::String(key.to_owned())),
    }
}

/// The first difference between `recorded` and `got`, or `None` when equal.
pub(crate) fn first_difference(recorded: &Value, got: &Value) -> Option<Difference> {
    diff_at(String::new(), recorded, got)
}

fn diff_at(path: String, recorded: &Value, got: &Value) -> Option<Difference> {
    match (recorded, got) {
        (Value::Object(a), Value::Object(b)) => {
            for k in sorted_union(a, b) {
                let here = push_key(&path, k);
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => {
                        if let Some(d) = diff_at(here, x, y) {
                            return Some(d);
                        }
                    }
                    (x, y) => {
                        return Some(Difference {
                            path: here,
                            recorded: x.map(abbreviate),
                            got: y.map(abbreviate),
                        });
                    }
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let here = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => {
                        if let Some(d) = diff_at(here, x, y) {
                            return Some(d);
                        }
                    }
                    (x, y) => {
                        return Some(Difference {
                            path: here,
                            recorded: x.map(abbreviate),
                            got: y.map(abbreviate),
                        });
                    }
                }
            }
            None
        }
        (a, b) if a == b => None,
        (a, b) => Some(Difference { path, recorded: Some(abbreviate(a)), got: Some(abbreviate(b)) }),
    }
}

fn sorted_union<'a>(a: &'a Map<String, Value>, b: &'a Map<String, Value>) -> Vec<&'a String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// How many leaves differ between two values (a rough distance for "closest recorded").
pub(crate) fn distance(a: &Value, b: &Value) -> usize {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => sorted_union(x, y)
            .into_iter()
            .map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => distance(p, q),
                (Some(v), None) | (None, Some(v)) => leaves(v),
                (None, None) => 0,
            })
            .sum(),
        (Value::Array(x), Value::Array(y)) => (0..x.len().max(y.len()))
            .map(|i| match (x.get(i), y.get(i)) {
                (Some(p), Some(q)) => distance(p, q),
                (Some(v), None) | (None, Some(v)) => leaves(v),
                (None, None) => 0,
            })
            .sum(),
        (x, y) if x == y => 0,
        (x, y) => leaves(x).max(leaves(y)),
    }
}

fn leaves(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.values().map(leaves).sum::<usize>().max(1),
        Value::Array(a) => a.iter().map(leaves).sum::<usize>().max(1),
        _ => 1,
    }
}
