//! The strict-mode schema transform: schemars output -> a JSON schema OpenAI's strict
//! structured output accepts (and that the narrower subsets of other providers accept too).

use std::borrow::Cow;

use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use crate::types::ResponseSchema;

/// `format` values OpenAI strict mode accepts; every other `format` (schemars' `uint32`,
/// `int64`, `double`, `uri`, ...) is dropped.
const SUPPORTED_FORMATS: &[&str] =
    &["date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"];

/// Keywords kept. Everything else (`$schema`, `title`, `default`, `examples`, `deprecated`,
/// `readOnly`, numeric and length bounds, `uniqueItems`, `prefixItems`, ...) is removed:
/// strict providers reject unknown keywords, and numeric/length bounds are outside the subset
/// every strict provider accepts (Anthropic rejects them).
const KEPT_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "anyOf",
    "allOf",
    "enum",
    "$ref",
    "$defs",
    "definitions",
    "description",
    "pattern",
    "format",
];

/// The longest schema name OpenAI accepts.
const MAX_NAME_LEN: usize = 64;

/// The strict [`ResponseSchema`] for `T`: schemars' schema passed through [`strict_schema`],
/// named after `T` (sanitised to `^[a-zA-Z0-9_-]+$`, at most 64 characters), with
/// `strict: true`.
///
/// ```
/// # use schemars::JsonSchema;
/// #[derive(JsonSchema, serde::Deserialize)]
/// struct Verdict {
///     ok: bool,
///     reason: Option<String>,
/// }
/// let schema = executus_llm::schema_for::<Verdict>();
/// assert_eq!(schema.name, "Verdict");
/// assert!(schema.strict);
/// assert_eq!(schema.schema["required"], serde_json::json!(["ok", "reason"]));
/// assert_eq!(schema.schema["additionalProperties"], false);
/// ```
pub fn schema_for<T: JsonSchema + ?Sized>() -> ResponseSchema {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    ResponseSchema {
        name: sanitize_name(&T::schema_name()),
        schema: strict_schema(schema.to_value()),
        strict: true,
    }
}

/// Sanitises a schema name to `^[a-zA-Z0-9_-]+$` (other characters become `_`), at most 64
/// characters; an empty name becomes `response`.
pub fn sanitize_name(name: &str) -> String {
    let out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .take(MAX_NAME_LEN)
        .collect();
    if out.is_empty() { "response".to_owned() } else { out }
}

/// Transforms a JSON schema (typically schemars output) for OpenAI strict mode.
///
/// Applied to the root and recursively to `$defs`/`definitions`, `properties`, `items`,
/// `anyOf` and `allOf`:
/// - every object gets `additionalProperties: false` and lists *all* its properties in
///   `required`; a property that was not required is made nullable (`"type": [T, "null"]`,
///   `null` added to an `enum`, or `{"anyOf": [T, {"type": "null"}]}`), so "absent" is
///   expressed as `null`;
/// - `oneOf` becomes `anyOf`; a one-element `allOf` is merged into its parent; `const: x`
///   becomes `enum: [x]`;
/// - a `$ref` with sibling keywords (schemars puts a field's doc comment next to the `$ref`),
///   which strict mode rejects, is replaced by the referenced definition merged under the
///   siblings;
/// - `format` is kept only for date-time, time, date, duration, email, hostname, ipv4, ipv6
///   and uuid;
/// - every other keyword is removed: `$schema`, `title`, `default`, `examples`, numeric and
///   length bounds, `uniqueItems`, `prefixItems`, `patternProperties`, ...
///
/// What strict mode cannot express is not invented: a map type (`HashMap<String, T>`) becomes
/// an object with no allowed properties, a tuple loses its per-position item schemas, and a
/// non-object root (an enum) stays as it is — OpenAI requires an object root, so wrap such a
/// type in a struct.
pub fn strict_schema(mut schema: Value) -> Value {
    let defs = definitions(&schema);
    transform(&mut schema, &defs, &mut Vec::new(), 0);
    schema
}

/// A copy of the root's definitions, for resolving `$ref`s that have siblings.
fn definitions(root: &Value) -> Map<String, Value> {
    let mut defs = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(map)) = root.get(key) {
            for (name, def) in map {
                defs.insert(format!("#/{key}/{name}"), def.clone());
            }
        }
    }
    defs
}

/// Deep enough for any real schema; stops a pathological (self-inlining) one from recursing
/// without bound.
const MAX_DEPTH: usize = 128;

/// `inlined`: the references inlined on the path from the root to `node`; a recursive type is
/// inlined once, and its inner self-reference stays a plain `$ref`.
fn transform(node: &mut Value, defs: &Map<String, Value>, inlined: &mut Vec<String>, depth: usize) {
    let Value::Object(map) = node else { return };
    if depth > MAX_DEPTH {
        return;
    }
    let pushed = inline_ref_with_siblings(map, defs, inlined);
    if let Some(one_of) = map.remove("oneOf") {
        match map.get_mut("anyOf") {
            // Both present means "one of these and any of those": keep both as an allOf.
            Some(_) => push_all_of(map, json!({ "anyOf": one_of })),
            None => {
                map.insert("anyOf".to_owned(), one_of);
            }
        }
    }
    merge_single_all_of(map);
    if let Some(value) = map.remove("const") {
        map.insert("enum".to_owned(), Value::Array(vec![value]));
    }
    if let Some(Value::String(format)) = map.get("format")
        && !SUPPORTED_FORMATS.contains(&format.as_str())
    {
        map.remove("format");
    }
    map.retain(|key, _| KEPT_KEYWORDS.contains(&key.as_str()));

    for key in ["$defs", "definitions", "properties"] {
        if let Some(Value::Object(children)) = map.get_mut(key) {
            for child in children.values_mut() {
                transform(child, defs, inlined, depth + 1);
            }
        }
    }
    match map.get_mut("items") {
        Some(Value::Array(items)) => {
            for item in items.iter_mut() {
                transform(item, defs, inlined, depth + 1);
            }
        }
        Some(items) => transform(items, defs, inlined, depth + 1),
        None => {}
    }
    for key in ["anyOf", "allOf"] {
        if let Some(Value::Array(branches)) = map.get_mut(key) {
            for branch in branches.iter_mut() {
                transform(branch, defs, inlined, depth + 1);
            }
        }
    }

    if is_object(map) {
        close_object(map);
    }
    if pushed {
        inlined.pop();
    }
}

/// Replaces a `$ref` that has sibling keywords by the referenced definition merged under the
/// siblings; true if it inlined (and pushed the reference on `inlined`).
fn inline_ref_with_siblings(
    map: &mut Map<String, Value>,
    defs: &Map<String, Value>,
    inlined: &mut Vec<String>,
) -> bool {
    let Some(Value::String(reference)) = map.get("$ref") else {
        return false;
    };
    if map.len() == 1 {
        return false;
    }
    let reference = reference.clone();
    match defs.get(&reference) {
        Some(Value::Object(def)) if !inlined.contains(&reference) => {
            let def = def.clone();
            map.remove("$ref");
            for (key, value) in def {
                map.entry(key).or_insert(value);
            }
            inlined.push(reference);
            true
        }
        // An external or unresolvable reference, or one already being inlined on this path
        // (a recursive type): keep the reference, drop its siblings.
        _ => {
            map.retain(|key, _| key == "$ref");
            false
        }
    }
}

fn push_all_of(map: &mut Map<String, Value>, schema: Value) {
    match map.get_mut("allOf") {
        Some(Value::Array(all)) => all.push(schema),
        _ => {
            map.insert("allOf".to_owned(), Value::Array(vec![schema]));
        }
    }
}

fn merge_single_all_of(map: &mut Map<String, Value>) {
    // Merge only when no constraint would be lost: the parent may keep its own annotations.
    let mergeable = match map.get("allOf") {
        Some(Value::Array(all)) if all.len() == 1 => match all.first() {
            Some(Value::Object(inner)) => {
                inner.keys().all(|k| !map.contains_key(k) || k == "description" || k == "title")
            }
            _ => false,
        },
        _ => false,
    };
    if !mergeable {
        return;
    }
    if let Some(Value::Array(mut all)) = map.remove("allOf")
        && let Some(Value::Object(inner)) = all.pop()
    {
        for (key, value) in inner {
            map.entry(key).or_insert(value);
        }
    }
}

fn is_object(map: &Map<String, Value>) -> bool {
    match map.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(types)) => types.iter().any(|t| t == "object"),
        _ => map.contains_key("properties"),
    }
}

fn close_object(map: &mut Map<String, Value>) {
    if !map.contains_key("type") {
        map.insert("type".to_owned(), json!("object"));
    }
    map.insert("additionalProperties".to_owned(), Value::Bool(false));
    if !matches!(map.get("properties"), Some(Value::Object(_))) {
        map.remove("required");
        return;
    }
    let was_required: Vec<String> = match map.get("required") {
        Some(Value::Array(required)) => {
            required.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect()
        }
        _ => Vec::new(),
    };
    let Some(Value::Object(properties)) = map.get_mut("properties") else {
        return;
    };
    let mut all = Vec::with_capacity(properties.len());
    for (name, schema) in properties.iter_mut() {
        if !was_required.contains(name) {
            make_nullable(schema);
        }
        all.push(Value::String(name.clone()));
    }
    map.insert("required".to_owned(), Value::Array(all));
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").is_some_and(|t| t == "null")
}

fn is_nullable(map: &Map<String, Value>) -> bool {
    match map.get("type") {
        Some(Value::String(t)) if t == "null" => return true,
        Some(Value::Array(types)) if types.iter().any(|t| t == "null") => return true,
        _ => {}
    }
    matches!(map.get("anyOf"), Some(Value::Array(branches)) if branches.iter().any(is_null_schema))
}

fn make_nullable(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if is_nullable(map) {
        return;
    }
    let has_enum = map.contains_key("enum");
    match map.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            map.insert("type".to_owned(), json!([t, "null"]));
        }
        Some(Value::Array(types)) => types.push(json!("null")),
        _ => {
            if let Some(Value::Array(branches)) = map.get_mut("anyOf") {
                branches.push(json!({ "type": "null" }));
                return;
            }
            if !has_enum {
                let description = map.remove("description");
                let inner = Value::Object(std::mem::take(map));
                map.insert("anyOf".to_owned(), json!([inner, { "type": "null" }]));
                if let Some(description) = description {
                    map.insert("description".to_owned(), description);
                }
                return;
            }
        }
    }
    if let Some(Value::Array(values)) = map.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
}

/// A name for diagnostics: the type's schema name.
pub(crate) fn type_name<T: JsonSchema + ?Sized>() -> Cow<'static, str> {
    T::schema_name()
}
