//! SARIF 2.1.0 output checked against the schema's rules for every object this tool writes
//! (the validator lives in `tests/support/sarif_schema.rs`, shared with the CLI's tests).

use serde_json::{Value, json};

use crate::common::bundled_review;
use pr_review_swarm::render::SARIF_SCHEMA;
use pr_review_swarm::render_sarif;

#[path = "../support/sarif_schema.rs"]
mod sarif_schema;

pub use sarif_schema::validate;

type Breakage = (&'static str, fn(&mut Value));

#[tokio::test]
async fn the_bundled_review_is_valid_sarif_2_1_0() {
    let review = bundled_review().await;
    let sarif = render_sarif(&review);
    validate(&sarif).unwrap();
    assert_eq!(sarif["$schema"], json!(SARIF_SCHEMA));
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], json!("pr-review-swarm"));
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), review.findings.len());
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let categories: std::collections::BTreeSet<&str> =
        review.findings.iter().map(|f| f.category.as_str()).collect();
    assert_eq!(rules.len(), categories.len(), "one rule per category");

    let first = &results[0];
    assert_eq!(first["ruleId"], json!("sql-injection"));
    assert_eq!(first["level"], json!("error"));
    let location = &first["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], json!("src/handlers/search.rs"));
    assert_eq!(location["region"]["startLine"], json!(30));
    assert_eq!(location["region"]["endLine"], json!(32));
    assert!(location["region"].get("snippet").is_none(), "a multi-line region carries no one-line snippet");
    let one_line = results
        .iter()
        .find(|r| {
            r["ruleId"] == json!("off-by-one")
                && r["locations"][0]["physicalLocation"]["region"]["startLine"] == json!(10)
        })
        .unwrap();
    assert_eq!(
        one_line["locations"][0]["physicalLocation"]["region"]["snippet"]["text"],
        json!("let start = page * per_page;")
    );
    let text = first["message"]["text"].as_str().unwrap();
    assert!(text.starts_with("SQL injection: the search term is formatted into the query string"));
    assert!(text.contains("2/2 models"), "{text}");
    let levels: Vec<&str> = results.iter().map(|r| r["level"].as_str().unwrap()).collect();
    assert_eq!(levels.iter().filter(|l| **l == "note").count(), 4);

    // Fingerprints are stable between runs and unique within one.
    let prints = |sarif: &Value| -> Vec<String> {
        sarif["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["partialFingerprints"]["prReviewSwarm/v1"].as_str().unwrap().to_owned())
            .collect()
    };
    let again = render_sarif(&bundled_review().await);
    assert_eq!(prints(&sarif), prints(&again));
    let unique: std::collections::BTreeSet<String> = prints(&sarif).into_iter().collect();
    assert_eq!(unique.len(), results.len());
}

#[test]
fn the_validator_rejects_what_the_schema_rejects() {
    let valid = json!({
        "version": "2.1.0",
        "runs": [{ "tool": { "driver": { "name": "t", "rules": [{ "id": "r" }] } },
                   "results": [{ "ruleId": "r", "ruleIndex": 0, "level": "note", "message": { "text": "m" },
                                 "locations": [{ "physicalLocation": { "artifactLocation": { "uri": "a.rs" },
                                                                       "region": { "startLine": 1 } } }] }] }]
    });
    validate(&valid).unwrap();
    let broken: [Breakage; 9] = [
        ("version", |v| v["version"] = json!("2.0.0")),
        ("missing", |v| {
            v.as_object_mut().unwrap().remove("runs");
        }),
        ("driver.name", |v| v["runs"][0]["tool"]["driver"].as_object_mut().unwrap().clear()),
        ("level", |v| v["runs"][0]["results"][0]["level"] = json!("fatal")),
        ("message", |v| v["runs"][0]["results"][0]["message"] = json!({})),
        ("not allowed", |v| v["runs"][0]["results"][0]["severity"] = json!("high")),
        ("startLine", |v| {
            v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = json!(0)
        }),
        ("URI", |v| {
            v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] =
                json!("a b.rs")
        }),
        ("ruleIndex", |v| v["runs"][0]["results"][0]["ruleIndex"] = json!(3)),
    ];
    for (what, breaks) in broken {
        let mut log = valid.clone();
        breaks(&mut log);
        let error = validate(&log).expect_err(what);
        assert!(!error.is_empty(), "{what}");
    }
}
