use executus::llm::Usage;

use super::*;

fn usage(input: u64, output: u64, read: u64, write: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: read,
        cache_write_tokens: write,
        reasoning_tokens: 0,
    }
}

#[test]
fn exact_entries_beat_wildcards_and_longer_prefixes_beat_shorter() {
    let table = PriceTable::new()
        .with("openai/*", Price::per_million(1.0, 2.0))
        .unwrap()
        .with("openai/gpt-4o*", Price::per_million(3.0, 4.0))
        .unwrap()
        .with("openai/gpt-4o-mini", Price::per_million(5.0, 6.0))
        .unwrap()
        .with("openrouter/meta-llama/*", Price::per_million(7.0, 8.0))
        .unwrap();
    assert_eq!(table.lookup("openai/gpt-4o-mini").unwrap().input, 5.0);
    assert_eq!(table.lookup("openai/gpt-4o-2024-08-06").unwrap().input, 3.0);
    assert_eq!(table.lookup("openai/gpt-4o").unwrap().input, 3.0);
    assert_eq!(table.lookup("openai/o3").unwrap().input, 1.0);
    assert_eq!(table.lookup("openrouter/meta-llama/llama-3-70b").unwrap().input, 7.0);
    assert_eq!(table.lookup("openrouter/openai/gpt-4o"), None);
    assert_eq!(table.lookup("anthropic/claude"), None);
    assert_eq!(table.lookup("OpenAI/gpt-4o"), None, "case-sensitive");
    assert_eq!(table.lookup("no-slash"), None);
}

#[test]
fn reinserting_a_pattern_replaces_it() {
    let mut table = PriceTable::new();
    table.insert("a/*", Price::per_million(1.0, 1.0)).unwrap();
    table.insert("a/*", Price::per_million(2.0, 2.0)).unwrap();
    assert_eq!(table.lookup("a/x").unwrap().input, 2.0);
    table.insert("a/x", Price::per_million(3.0, 3.0)).unwrap();
    table.insert("a/x", Price::per_million(4.0, 4.0)).unwrap();
    assert_eq!(table.lookup("a/x").unwrap().input, 4.0);
}

#[test]
fn malformed_patterns_and_prices_are_rejected_naming_them() {
    for bad in ["gpt-4o", "/gpt", "openai/", "*/gpt", "openai/gpt*mini", "openai/**"] {
        let err = PriceTable::new().insert(bad, Price::per_million(1.0, 1.0)).unwrap_err();
        assert!(
            matches!(err, BudgetConfigError::InvalidPattern { ref pattern, .. } if pattern == bad),
            "{bad}"
        );
        assert!(err.to_string().contains(bad));
    }
    let err = PriceTable::new().insert("a/b", Price::per_million(-1.0, 1.0)).unwrap_err();
    assert!(
        matches!(err, BudgetConfigError::InvalidAmount { ref key, .. } if key.ends_with(".input")),
        "{err}"
    );
    let err =
        PriceTable::new().insert("a/b", Price::per_million(1.0, 1.0).with_cache(f64::NAN, 1.0)).unwrap_err();
    assert!(err.to_string().contains("cache_read"), "{err}");
}

#[test]
fn costs_follow_the_cache_convention_of_the_price() {
    // $1/M input, $10/M output, $0.10/M cache read, $1.25/M cache write.
    let anthropic = Price::per_million(1.0, 10.0).with_cache(0.1, 1.25);
    let u = usage(1_000, 100, 10_000, 2_000);
    // 1000*1 + 100*10 + 10000*0.1 + 2000*1.25 = 1000 + 1000 + 1000 + 2500 = 5500 per-million units.
    assert_eq!(anthropic.cost(&u), Money::from_nanos(5_500_000));
    let openai = Price::per_million(1.0, 10.0).with_cache(0.1, 1.25).cache_in_input(true);
    let u = usage(13_000, 100, 10_000, 2_000);
    // Input 13000 includes the 12000 cached tokens: 1000*1 + 1000 + 1000 + 2500.
    assert_eq!(openai.cost(&u), Money::from_nanos(5_500_000));
    // Unset cache prices fall back to the input price.
    let plain = Price::per_million(2.0, 0.0);
    assert_eq!(plain.cost(&usage(0, 0, 500, 500)), Money::from_nanos(2_000_000));
    // Inconsistent usage (more cached than input) does not underflow.
    assert_eq!(openai.cost(&usage(5, 0, 10, 0)), Money::from_nanos(1_000));
    assert_eq!(plain.cost(&Usage::default()), Money::ZERO);
}

#[test]
fn estimates_price_the_whole_output_cap() {
    let p = Price::per_million(3.0, 15.0);
    assert_eq!(p.estimate(1_000, 4_096), Money::from_nanos(3_000_000 + 61_440_000));
    assert_eq!(p.estimate(0, 0), Money::ZERO);
    // A single token at a tiny price still costs something.
    assert_eq!(Price::per_million(0.0001, 0.0).estimate(1, 0), Money::from_nanos(1));
}
