//! Configuration from TOML: the documented format parses, bad values name their key.

use std::time::Duration;

use executus_budget::{BudgetConfig, BudgetConfigError, Money, UnknownModel};

const EXAMPLE: &str = r#"
window = "3d"
reservation_ttl = "5m"
unknown_model = { input = 1.0, output = 4.0 }

[caps]
default_user = 5.0
default_tenant = 100
users = { alice = 20.0, ops = "unlimited" }
tenants = { acme = 500.0 }

[prices]
"openai/gpt-4o" = { input = 2.5, output = 10.0, cache_read = 1.25, cache_in_input = true }
"openai/*" = { input = 5.0, output = 20.0, cache_in_input = true }
"anthropic/claude-sonnet-4*" = { input = 3.0, output = 15.0, cache_read = 0.3, cache_write = 3.75 }
"ollama/*" = { input = 0.0, output = 0.0 }
"#;

fn parse(text: &str) -> Result<executus_budget::BudgetSettings, BudgetConfigError> {
    let raw: BudgetConfig = toml::from_str(text).unwrap();
    raw.validate()
}

#[test]
fn the_documented_example_parses() {
    let s = parse(EXAMPLE).unwrap();
    assert_eq!(s.window, Duration::from_secs(3 * 24 * 3600));
    assert_eq!(s.reservation_ttl, Duration::from_secs(300));
    assert!(matches!(s.unknown_model, UnknownModel::Price(p) if p.output == 4.0));
    assert_eq!(s.caps.user_cap("alice"), Some(Money::usd(20.0)));
    assert_eq!(s.caps.user_cap("ops"), None);
    assert_eq!(s.caps.user_cap("someone"), Some(Money::usd(5.0)));
    assert_eq!(s.caps.tenant_cap("acme"), Some(Money::usd(500.0)));
    assert_eq!(s.caps.tenant_cap("beta"), Some(Money::usd(100.0)));
    assert_eq!(s.prices.lookup("openai/gpt-4o").unwrap().input, 2.5);
    assert_eq!(s.prices.lookup("openai/o3").unwrap().input, 5.0);
    assert_eq!(s.prices.lookup("anthropic/claude-sonnet-4-5").unwrap().cache_write, Some(3.75));
    assert_eq!(s.prices.lookup("ollama/qwen3:30b").unwrap().output, 0.0);
    assert_eq!(s.prices.lookup("gemini/flash"), None);
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        ("[caps]\nusers = { bob = -1.0 }", "caps.users.bob"),
        ("[caps]\ndefault_tenant = \"lots\"", "caps.default_tenant"),
        ("unknown_model = \"allow\"", "unknown_model"),
        ("window = 0", "window"),
        ("[prices]\n\"gpt-4o\" = { input = 1.0, output = 1.0 }", "gpt-4o"),
        ("[prices]\n\"openai/x\" = { input = 1.0, output = -2.0 }", "output"),
    ];
    for (text, key) in cases {
        let err = parse(text).unwrap_err();
        assert!(err.to_string().contains(key), "{text:?}: {err}");
    }
}

#[test]
fn unknown_keys_are_rejected_by_the_parser() {
    assert!(toml::from_str::<BudgetConfig>("windw = \"1d\"").is_err());
    assert!(
        toml::from_str::<BudgetConfig>("[prices]\n\"a/b\" = { input = 1, output = 1, cached = 1 }").is_err()
    );
}

#[test]
fn an_empty_config_is_the_safe_default() {
    let s = parse("").unwrap();
    assert_eq!(s.unknown_model, UnknownModel::Deny);
    assert_eq!(s.window, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(s.reservation_ttl, Duration::from_secs(600));
}
