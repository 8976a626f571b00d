//! `clock`: the current time in any IANA time zone, and conversion of a given time between
//! zones.
//!
//! `now` reads an injected [`TimeSource`] ([`Clock::system`] in production, a fixed instant in
//! tests). `convert` takes an RFC 3339 time (`2024-03-10T12:00:00Z`, `...+05:30`), which
//! fixes the instant, or a local ISO time without offset (`2024-03-10T12:00:00`,
//! `2024-03-10 12:00`, `2024-03-10`) read in the `from` zone (UTC if absent). A local time
//! that a DST change skips is an error; one that occurs twice resolves to the earlier
//! instant, with a note saying so. Years are 0000 to 9999, as in RFC 3339. Zone names are
//! IANA names (`Europe/Berlin`, `UTC`),
//! matched case-insensitively; an unknown name is an error naming it.
//!
//! Output is a JSON object: RFC 3339 time, zone, abbreviation, UTC offset, weekday, Unix
//! seconds. It never reads the host's local zone.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{parse_args, schema_of};
use executus::tool::{Tool, ToolContext, ToolError, ToolOutput};

/// Where `now` comes from.
pub type TimeSource = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockOperation {
    /// The current time.
    #[default]
    Now,
    /// Convert `time` to the `to` zone.
    Convert,
}

/// Arguments of `clock`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ClockArgs {
    /// `now` (default) or `convert`.
    #[serde(default)]
    pub operation: ClockOperation,
    /// For `now`: the IANA time zone to show the time in (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// For `convert`: the time, RFC 3339 (`2024-03-10T12:00:00Z`, `2024-03-10T12:00:00+05:30`)
    /// or local without offset (`2024-03-10T12:00:00`, read in `from`).
    #[serde(default)]
    pub time: Option<String>,
    /// For `convert`: the IANA zone of a `time` without offset (default `UTC`; ignored when
    /// `time` has an offset).
    #[serde(default)]
    pub from: Option<String>,
    /// For `convert`: the IANA zone to convert to.
    #[serde(default)]
    pub to: Option<String>,
}

/// The `clock` tool.
#[derive(Clone)]
pub struct Clock {
    now: TimeSource,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock").finish_non_exhaustive()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// Reads the system clock.
    pub fn system() -> Self {
        Self { now: Arc::new(Utc::now) }
    }

    /// Reads `now` from `source`.
    pub fn with_source(source: TimeSource) -> Self {
        Self { now: source }
    }

    /// Always answers `at` (for tests and replays).
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self { now: Arc::new(move || at) }
    }

    /// Runs an operation; the tool's `call` without the JSON envelope.
    ///
    /// # Errors
    /// [`ToolError::InvalidArgs`] for an unknown zone, a missing or unparseable `time`, or a
    /// local time a DST change skips.
    pub fn run(&self, args: &ClockArgs) -> Result<Value, ToolError> {
        match args.operation {
            ClockOperation::Now => {
                let tz = zone(args.timezone.as_deref().unwrap_or("UTC"))?;
                Ok(describe(&(self.now)().with_timezone(&tz), tz.name()))
            }
            ClockOperation::Convert => {
                let time = args.time.as_deref().ok_or_else(|| invalid("convert needs `time`".into()))?;
                let to = zone(args.to.as_deref().ok_or_else(|| invalid("convert needs `to`".into()))?)?;
                let (instant, from_desc, note) = parse_time(time, args.from.as_deref())?;
                let mut out = json!({
                    "input": time,
                    "from": from_desc,
                    "to": describe(&instant.with_timezone(&to), to.name()),
                });
                if let (Some(note), Value::Object(map)) = (note, &mut out) {
                    map.insert("note".into(), Value::String(note));
                }
                Ok(out)
            }
        }
    }
}

fn invalid(message: String) -> ToolError {
    ToolError::InvalidArgs { tool: "clock".into(), message }
}

/// An IANA zone by name: exact first, then case-insensitive.
fn zone(name: &str) -> Result<Tz, ToolError> {
    let name = name.trim();
    name.parse::<Tz>()
        .ok()
        .or_else(|| chrono_tz::TZ_VARIANTS.iter().copied().find(|tz| tz.name().eq_ignore_ascii_case(name)))
        .ok_or_else(|| {
            invalid(format!(
                "unknown time zone {name:?}: use an IANA name such as \"Europe/Berlin\", \
                 \"America/New_York\" or \"UTC\""
            ))
        })
}

/// Local formats accepted for a time without offset.
const LOCAL_FORMATS: &[&str] =
    &["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"];

/// The instant `time` denotes, a description of it in its source zone, and a note.
fn parse_time(time: &str, from: Option<&str>) -> Result<(DateTime<Utc>, Value, Option<String>), ToolError> {
    let text = time.trim();
    if let Ok(fixed) = DateTime::parse_from_rfc3339(text) {
        let desc = describe(&fixed, &format!("UTC{}", fixed.format("%:z")));
        return Ok((fixed.with_timezone(&Utc), desc, None));
    }
    let naive = LOCAL_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
        .ok_or_else(|| {
            invalid(format!(
                "cannot read time {text:?}: use RFC 3339 (2024-03-10T12:00:00Z, \
                 2024-03-10T12:00:00+05:30) or a local 2024-03-10T12:00:00 with `from`"
            ))
        })?;
    // The local formats take years past 9999 (`+262142-12-31`); near chrono's limits a zone
    // offset would overflow while converting, so keep to RFC 3339's years.
    if !(0..=9999).contains(&naive.year()) {
        return Err(invalid(format!("time {text:?} is out of range: years 0000 to 9999 are supported")));
    }
    let tz = zone(from.unwrap_or("UTC"))?;
    let (local, note) = match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => (t, None),
        LocalResult::Ambiguous(earlier, later) => (
            earlier,
            Some(format!(
                "{naive} happens twice in {} (DST ends); using the earlier ({}), the later is {}",
                tz.name(),
                earlier.format("%:z"),
                later.format("%:z")
            )),
        ),
        LocalResult::None => {
            return Err(invalid(format!(
                "{naive} does not exist in {} (skipped by a daylight saving change)",
                tz.name()
            )));
        }
    };
    Ok((local.with_timezone(&Utc), describe(&local, tz.name()), note))
}

/// The JSON description of a time in the zone called `zone`.
fn describe<Z: TimeZone>(t: &DateTime<Z>, zone: &str) -> Value
where
    Z::Offset: std::fmt::Display,
{
    json!({
        "time": t.to_rfc3339_opts(SecondsFormat::AutoSi, false),
        "timezone": zone,
        "abbreviation": t.format("%Z").to_string(),
        "utc_offset": t.format("%:z").to_string(),
        "weekday": t.format("%A").to_string(),
        "unix": t.timestamp(),
    })
}

#[async_trait]
impl Tool for Clock {
    fn name(&self) -> &str {
        "clock"
    }

    fn description(&self) -> &str {
        "Tells the current time (operation \"now\", optional IANA `timezone`) or converts a \
         time between zones (operation \"convert\" with `time` in RFC 3339 or local ISO form, \
         optional `from` zone for local times, and `to`). Returns JSON with the RFC 3339 time, \
         zone, abbreviation, UTC offset, weekday and Unix seconds."
    }

    fn parameters(&self) -> Value {
        schema_of::<ClockArgs>()
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn read_only(&self) -> bool {
        true
    }

    async fn call(&self, _ctx: ToolContext, args: Value) -> Result<ToolOutput, ToolError> {
        let args: ClockArgs = parse_args(self.name(), args)?;
        Ok(ToolOutput::from(self.run(&args)?))
    }
}
