//! A SARIF 2.1.0 validator for the objects these hosts write: required properties, allowed
//! properties (the schema sets `additionalProperties: false`), enums, minimums and
//! cross-references. No network: the rules are written out here from the OASIS schema
//! (sarif-schema-2.1.0.json). Shared by the pr-review-swarm tests and the executus-run CLI
//! tests (`#[path]` module), so both check SARIF against the same rules.

use serde_json::{Map, Value, json};

const LOG: &str = "$schema version runs inlineExternalProperties properties";
const RUN: &str = "tool invocations conversion language versionControlProvenance originalUriBaseIds artifacts \
     logicalLocations graphs results automationDetails runAggregates baselineGuid \
     redactionTokens defaultEncoding defaultSourceLanguage newlineSequences columnKind \
     externalPropertyFileReferences threadFlowLocations taxonomies addresses translations \
     policies webRequests webResponses specialLocations properties";
const TOOL: &str = "driver extensions properties";
const TOOL_COMPONENT: &str = "guid name organization product productSuite shortDescription fullDescription fullName \
     version semanticVersion dottedQuadFileVersion releaseDateUtc downloadUri informationUri \
     globalMessageStrings notifications rules taxa locations language contents isComprehensive \
     localizedDataSemanticVersion minimumRequiredLocalizedDataSemanticVersion \
     associatedComponent translationMetadata supportedTaxonomies properties";
const REPORTING_DESCRIPTOR: &str = "id deprecatedIds guid deprecatedGuids name deprecatedNames shortDescription \
     fullDescription messageStrings defaultConfiguration helpUri help relationships properties";
const MULTIFORMAT_MESSAGE: &str = "text markdown properties";
const MESSAGE: &str = "text markdown id arguments properties";
const RESULT: &str = "ruleId ruleIndex rule kind level message analysisTarget locations guid correlationGuid \
     occurrenceCount partialFingerprints fingerprints stacks codeFlows graphs graphTraversals \
     relatedLocations suppressions baselineState rank attachments hostedViewerUri workItemUris \
     provenance fixes taxa webRequest webResponse properties";
const LOCATION: &str = "id physicalLocation logicalLocations message annotations relationships properties";
const PHYSICAL_LOCATION: &str = "address artifactLocation region contextRegion properties";
const ARTIFACT_LOCATION: &str = "uri uriBaseId index description properties";
const REGION: &str = "startLine startColumn endLine endColumn charOffset charLength byteOffset byteLength \
     snippet message sourceLanguage properties";
const ARTIFACT_CONTENT: &str = "text binary rendered properties";
const INVOCATION: &str = "commandLine arguments responseFiles startTimeUtc endTimeUtc exitCode \
     ruleConfigurationOverrides notificationConfigurationOverrides toolExecutionNotifications \
     toolConfigurationNotifications exitCodeDescription exitSignalName exitSignalNumber \
     processStartFailureMessage executionSuccessful machine account processId \
     executableLocation workingDirectory environmentVariables stdin stdout stderr stdoutStderr \
     properties";
const NOTIFICATION: &str =
    "locations message level threadId timeUtc exception descriptor associatedRule properties";
const DESCRIPTOR_REFERENCE: &str = "id index guid toolComponent properties";
const LEVELS: &[&str] = &["none", "note", "warning", "error"];

type Check = Result<(), String>;

/// `allowed` lists property names separated by whitespace.
fn object<'a>(
    v: &'a Value,
    at: &str,
    allowed: &str,
    required: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let map = v.as_object().ok_or_else(|| format!("{at}: not an object"))?;
    for key in map.keys() {
        if !allowed.split_whitespace().any(|k| k == key) {
            return Err(format!("{at}: property {key:?} is not allowed"));
        }
    }
    for key in required {
        if !map.contains_key(*key) {
            return Err(format!("{at}: required property {key:?} is missing"));
        }
    }
    if let Some(bag) = map.get("properties") {
        bag.as_object().ok_or_else(|| format!("{at}.properties: not an object"))?;
    }
    Ok(map)
}

fn string<'a>(v: &'a Value, at: &str) -> Result<&'a str, String> {
    v.as_str().ok_or_else(|| format!("{at}: not a string"))
}

fn array<'a>(v: &'a Value, at: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array().ok_or_else(|| format!("{at}: not an array"))
}

fn absolute_uri(v: &Value, at: &str) -> Check {
    let s = string(v, at)?;
    let ok = s.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
    });
    if ok && !s.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(format!("{at}: {s:?} is not an absolute URI"))
    }
}

fn uri_reference(v: &Value, at: &str) -> Check {
    let s = string(v, at)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c);
    if s.is_empty() || !s.chars().all(allowed) {
        return Err(format!("{at}: {s:?} is not a URI reference"));
    }
    Ok(())
}

fn message(v: &Value, at: &str, allowed: &str) -> Check {
    let map = object(v, at, allowed, &[])?;
    match (map.get("text"), map.get("id")) {
        (Some(t), _) => string(t, &format!("{at}.text")).map(|_| ()),
        (None, Some(id)) => string(id, &format!("{at}.id")).map(|_| ()),
        (None, None) => Err(format!("{at}: a message needs `text` or `id`")),
    }
}

fn level(v: Option<&Value>, at: &str) -> Check {
    match v {
        None => Ok(()),
        Some(v) if LEVELS.contains(&string(v, at)?) => Ok(()),
        Some(v) => Err(format!("{at}: level {v} is not one of {LEVELS:?}")),
    }
}

fn line(v: &Value, at: &str) -> Result<u64, String> {
    v.as_u64().filter(|n| *n >= 1).ok_or_else(|| format!("{at}: {v} is not an integer >= 1"))
}

/// Validates a SARIF log against the schema rules for the objects this tool writes.
pub fn validate(log: &Value) -> Check {
    let none = json!([]);
    let root = object(log, "log", LOG, &["version", "runs"])?;
    if root["version"] != json!("2.1.0") {
        return Err(format!("log.version: {} is not \"2.1.0\"", root["version"]));
    }
    if let Some(schema) = root.get("$schema") {
        absolute_uri(schema, "log.$schema")?;
    }
    for (r, run) in array(&root["runs"], "log.runs")?.iter().enumerate() {
        let at = format!("runs[{r}]");
        let run = object(run, &at, RUN, &["tool"])?;
        if let Some(kind) = run.get("columnKind") {
            let kind = string(kind, &format!("{at}.columnKind"))?;
            if !["utf16CodeUnits", "unicodeCodePoints"].contains(&kind) {
                return Err(format!("{at}.columnKind: {kind:?}"));
            }
        }
        let tool = object(&run["tool"], &format!("{at}.tool"), TOOL, &["driver"])?;
        let driver = object(&tool["driver"], &format!("{at}.tool.driver"), TOOL_COMPONENT, &["name"])?;
        string(&driver["name"], &format!("{at}.tool.driver.name"))?;
        if let Some(uri) = driver.get("informationUri") {
            absolute_uri(uri, &format!("{at}.tool.driver.informationUri"))?;
        }
        let mut rule_ids = Vec::new();
        for (i, rule) in array(driver.get("rules").unwrap_or(&none), "rules")?.iter().enumerate() {
            let at = format!("{at}.tool.driver.rules[{i}]");
            let rule = object(rule, &at, REPORTING_DESCRIPTOR, &["id"])?;
            let id = string(&rule["id"], &format!("{at}.id"))?;
            if rule_ids.contains(&id) {
                return Err(format!("{at}: duplicate rule id {id:?}"));
            }
            rule_ids.push(id);
            if let Some(d) = rule.get("shortDescription") {
                let d = object(d, &format!("{at}.shortDescription"), MULTIFORMAT_MESSAGE, &["text"])?;
                string(&d["text"], &format!("{at}.shortDescription.text"))?;
            }
        }
        for (i, result) in array(run.get("results").unwrap_or(&none), "results")?.iter().enumerate() {
            let at = format!("{at}.results[{i}]");
            let result = object(result, &at, RESULT, &["message"])?;
            message(&result["message"], &format!("{at}.message"), MESSAGE)?;
            level(result.get("level"), &format!("{at}.level"))?;
            if let Some(index) = result.get("ruleIndex") {
                let index =
                    index.as_i64().filter(|n| *n >= -1).ok_or_else(|| format!("{at}.ruleIndex: {index}"))?;
                let rule = usize::try_from(index).ok().and_then(|i| rule_ids.get(i));
                let id = result.get("ruleId").and_then(Value::as_str);
                if index >= 0 && rule.copied() != id {
                    return Err(format!("{at}: ruleIndex {index} is rule {rule:?}, ruleId is {id:?}"));
                }
            }
            if let Some(prints) = result.get("partialFingerprints") {
                let prints =
                    prints.as_object().ok_or_else(|| format!("{at}.partialFingerprints: not an object"))?;
                for (k, v) in prints {
                    string(v, &format!("{at}.partialFingerprints.{k}"))?;
                }
            }
            for (l, location) in
                array(result.get("locations").unwrap_or(&none), "locations")?.iter().enumerate()
            {
                let at = format!("{at}.locations[{l}]");
                let location = object(location, &at, LOCATION, &[])?;
                let Some(physical) = location.get("physicalLocation") else { continue };
                let at = format!("{at}.physicalLocation");
                let physical = object(physical, &at, PHYSICAL_LOCATION, &[])?;
                let Some(artifact) = physical.get("artifactLocation") else {
                    if physical.contains_key("address") {
                        continue;
                    }
                    return Err(format!("{at}: needs `address` or `artifactLocation`"));
                };
                let artifact = object(artifact, &format!("{at}.artifactLocation"), ARTIFACT_LOCATION, &[])?;
                if let Some(uri) = artifact.get("uri") {
                    uri_reference(uri, &format!("{at}.artifactLocation.uri"))?;
                }
                if let Some(region) = physical.get("region") {
                    let region = object(region, &format!("{at}.region"), REGION, &[])?;
                    let start = line(&region["startLine"], &format!("{at}.region.startLine"))?;
                    if let Some(end) = region.get("endLine")
                        && line(end, &format!("{at}.region.endLine"))? < start
                    {
                        return Err(format!("{at}.region: endLine before startLine"));
                    }
                    if let Some(snippet) = region.get("snippet") {
                        object(snippet, &format!("{at}.region.snippet"), ARTIFACT_CONTENT, &[])?;
                    }
                }
            }
        }
        for (i, invocation) in
            array(run.get("invocations").unwrap_or(&none), "invocations")?.iter().enumerate()
        {
            let at = format!("{at}.invocations[{i}]");
            let invocation = object(invocation, &at, INVOCATION, &["executionSuccessful"])?;
            if !invocation["executionSuccessful"].is_boolean() {
                return Err(format!("{at}.executionSuccessful: not a boolean"));
            }
            let notes = invocation.get("toolExecutionNotifications").unwrap_or(&none);
            for (n, note) in array(notes, "notifications")?.iter().enumerate() {
                let at = format!("{at}.toolExecutionNotifications[{n}]");
                let note = object(note, &at, NOTIFICATION, &["message"])?;
                message(&note["message"], &format!("{at}.message"), MESSAGE)?;
                level(note.get("level"), &format!("{at}.level"))?;
                if let Some(d) = note.get("descriptor") {
                    object(d, &format!("{at}.descriptor"), DESCRIPTOR_REFERENCE, &[])?;
                }
            }
        }
    }
    Ok(())
}
