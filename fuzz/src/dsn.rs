//! Target `dsn`: provider DSNs through `ProviderSpec::parse` and `ProviderSpec::from_vars`.
//!
//! Input: `[mode]` then NUL-separated fields (lossy UTF-8).
//! - mode 0: `name \0 dsn` parsed as is;
//! - mode 1: `name \0 scheme \0 key-prefix \0 key-suffix \0 rest`, parsed as
//!   `scheme://{prefix}{MARK}{suffix}@{rest}`: the key always holds [`MARK`];
//! - mode 2: `var \0 value \0 var \0 value ...` through `from_vars`, plus one
//!   `EXECUTUS_LLM_...` variable built as in mode 1 from the first fields.
//!
//! Properties: no panic; every error names something (non-empty message); when the DSN has a
//! key (`scheme://KEY@...`), no error message and no `Debug` output contains it, and the
//! base URL of a parsed spec never does either; `from_vars` returns specs sorted by unique
//! name, every one of them valid on its own.

use executus_llm::{ConfigError, ProviderSpec};

use crate::Reader;

/// Always part of the key in modes 1 and 2; never legitimately in a message.
pub const MARK: &str = "Zx9SECRETq";

fn fields(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0).map(|f| String::from_utf8_lossy(f).into_owned()).collect()
}

fn field(fields: &[String], i: usize) -> &str {
    fields.get(i).map_or("", String::as_str)
}

/// `scheme://{prefix}{MARK}{suffix}@{rest}` from four fields, or `None` when the fuzzer
/// already put the mark outside the key (then a message may rightly quote it).
fn keyed_dsn(scheme: &str, prefix: &str, suffix: &str, rest: &str) -> Option<String> {
    if [scheme, rest].iter().any(|f| f.contains(MARK) || f.contains("SECRETq")) {
        return None;
    }
    Some(format!("{scheme}://{prefix}{MARK}{suffix}@{rest}"))
}

fn assert_hidden(error: &ConfigError, dsn: &str) {
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.is_empty(), "empty error for {dsn:?}");
        // The mark's tail: also catches a quoted key whose first characters were escapes.
        assert!(!text.contains("SECRETq"), "error shows the key of {dsn:?}: {text}");
    }
}

fn assert_spec_hidden(spec: &ProviderSpec, dsn: &str) {
    let debug = format!("{spec:?}");
    assert!(!debug.contains("SECRETq"), "Debug shows the key of {dsn:?}: {debug}");
    assert!(!spec.base_url.contains("SECRETq"), "base URL holds the key of {dsn:?}: {}", spec.base_url);
    assert!(!spec.name.contains("SECRETq"), "name holds the key of {dsn:?}");
}

fn check_spec(spec: &ProviderSpec) {
    assert!(!spec.base_url.ends_with('/'), "base URL with a trailing '/': {spec:?}");
    assert!(
        spec.base_url.starts_with("http://") || spec.base_url.starts_with("https://"),
        "base URL without http(s): {spec:?}"
    );
}

/// The fuzz target.
pub fn check(data: &[u8]) {
    let mut r = Reader::new(data);
    let mode = r.u8() % 3;
    let f = fields(r.rest());
    match mode {
        0 => {
            let (name, dsn) = (field(&f, 0), field(&f, 1));
            match ProviderSpec::parse(name, dsn) {
                Ok(spec) => check_spec(&spec),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        1 => {
            let name = field(&f, 0);
            let Some(dsn) = keyed_dsn(field(&f, 1), field(&f, 2), field(&f, 3), field(&f, 4)) else {
                return;
            };
            if name.contains("SECRETq") {
                return;
            }
            match ProviderSpec::parse(name, &dsn) {
                Ok(spec) => {
                    check_spec(&spec);
                    assert_spec_hidden(&spec, &dsn);
                    let key = spec.api_key.as_ref().map(|k| k.expose().to_owned()).unwrap_or_default();
                    assert!(key.contains(MARK) || key.contains("SECRETq") || !dsn.contains(MARK), "key lost");
                }
                Err(e) => assert_hidden(&e, &dsn),
            }
        }
        _ => {
            let mut vars: Vec<(String, String)> =
                f.chunks(2).map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or_default())).collect();
            let keyed = keyed_dsn(field(&f, 1), field(&f, 2), field(&f, 3), field(&f, 4));
            let marked = vars.iter().any(|(k, v)| k.contains("SECRETq") || v.contains("SECRETq"));
            if let Some(dsn) = keyed.as_ref().filter(|_| !marked) {
                vars.push((format!("EXECUTUS_LLM_{}", field(&f, 0)), dsn.clone()));
            }
            match ProviderSpec::from_vars(vars.clone()) {
                Ok(specs) => {
                    for pair in specs.windows(2) {
                        assert!(pair[0].name < pair[1].name, "specs not sorted by unique name: {specs:?}");
                    }
                    for spec in &specs {
                        check_spec(spec);
                        if !marked {
                            assert_spec_hidden(spec, "from_vars");
                        }
                        let again = ProviderSpec::parse(&spec.name, "x");
                        assert!(again.is_err(), "`x` parsed as a DSN");
                    }
                }
                Err(e) => {
                    if marked {
                        assert!(!e.to_string().is_empty());
                    } else {
                        assert_hidden(&e, "from_vars");
                    }
                }
            }
        }
    }
}
