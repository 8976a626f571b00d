//! Jobs: [`JobDef`] (plain, serialisable — what a host writes and a store keeps) and
//! [`Job`] (validated: the cron expression parsed, the time zone resolved).
//!
//! Cron expressions follow the `cron` crate, with one convenience:
//! - 6 fields `sec min hour day-of-month month day-of-week`, or 7 with a year last, as the
//!   `cron` crate reads them. **Numeric days of week count 1 = Sunday … 7 = Saturday**
//!   (not crontab's 0 = Sunday); names (`MON-FRI`) are unambiguous and preferred.
//! - 5 fields (classic crontab, `min hour day-of-month month day-of-week`) get `0` seconds
//!   prepended. Their day-of-week field must not use numbers, because the two conventions
//!   disagree on them; use `*` or names.
//! - `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`.
//!
//! Fire times are computed in the job's IANA time zone (chrono-tz) and handled in UTC. At
//! a daylight-saving change a local time that does not exist is skipped and one that
//! happens twice fires twice, as the `cron` crate iterates them.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use executus::Identity;
use serde::{Deserialize, Serialize};

use crate::error::ScheduleError;

#[cfg(test)]
mod tests;

/// What happens to a fire while the job's previous run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Drop the fire (the watermark still moves past it). The default.
    #[default]
    Skip,
    /// Hold the fire and submit it when the running run ends. At most one fire waits: a
    /// newer fire replaces a waiting one (the replaced one is reported skipped).
    Queue,
    /// Submit it anyway; runs overlap.
    Allow,
}

/// What happens to fires missed while the runner was not running (or fell behind by more
/// than its late tolerance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Run once, now, for all the missed fires together. The default.
    #[default]
    RunOnce,
    /// Run none of them; wait for the next future fire.
    Skip,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// A job as written by a host and kept by a store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDef {
    /// Unique id (the store key).
    pub id: String,
    /// Cron expression (see the module docs).
    pub cron: String,
    /// IANA time zone the expression is read in. Default `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Agent name, resolved through `Runtime::agent` at each fire.
    pub agent: String,
    /// The run's input (one user message).
    pub input: String,
    /// Lane override (default: the agent's lane, else `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// Who the runs act for.
    #[serde(default)]
    pub identity: Identity,
    /// Overlap policy.
    #[serde(default)]
    pub overlap: Overlap,
    /// Largest random delay added to each fire (deterministic per job and fire time).
    #[serde(default, with = "executus::duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
    /// Catch-up policy.
    #[serde(default)]
    pub catch_up: CatchUp,
}

impl JobDef {
    /// A job `id` running `agent` on `input` at `cron` (UTC, skip overlaps, catch up once).
    pub fn new(
        id: impl Into<String>,
        cron: impl Into<String>,
        agent: impl Into<String>,
        input: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            cron: cron.into(),
            timezone: utc(),
            agent: agent.into(),
            input: input.into(),
            lane: None,
            identity: Identity::default(),
            overlap: Overlap::default(),
            jitter: None,
            catch_up: CatchUp::default(),
        }
    }

    /// Sets the time zone (IANA name).
    #[must_use]
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = tz.into();
        self
    }

    /// Sets the lane.
    #[must_use]
    pub fn lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = Some(lane.into());
        self
    }

    /// Sets the identity.
    #[must_use]
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// Sets the overlap policy.
    #[must_use]
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// Sets the jitter.
    #[must_use]
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// Sets the catch-up policy.
    #[must_use]
    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }
}

/// Longest accepted job id.
const MAX_ID_LEN: usize = 200;
/// Fires sampled to find the shortest interval (for the jitter check).
const INTERVAL_SAMPLES: usize = 256;

/// A validated job.
#[derive(Debug, Clone)]
pub struct Job {
    def: JobDef,
    schedule: cron::Schedule,
    tz: Tz,
}

impl Job {
    /// Validates `def`.
    ///
    /// # Errors
    /// [`ScheduleError::InvalidJob`] for an empty or malformed id or an empty agent,
    /// [`ScheduleError::InvalidTimeZone`], [`ScheduleError::InvalidCron`] — each naming the
    /// job and the bad value.
    pub fn new(def: JobDef) -> Result<Self, ScheduleError> {
        let invalid = |field, reason: &str| ScheduleError::InvalidJob {
            job: def.id.clone(),
            field,
            reason: reason.to_owned(),
        };
        if def.id.trim().is_empty() {
            return Err(invalid("id", "must not be empty"));
        }
        if def.id.len() > MAX_ID_LEN || def.id.trim() != def.id || def.id.chars().any(char::is_control) {
            return Err(invalid(
                "id",
                "must be at most 200 bytes, without surrounding spaces or control characters",
            ));
        }
        if def.agent.trim().is_empty() {
            return Err(invalid("agent", "must not be empty"));
        }
        let tz = Tz::from_str(def.timezone.trim()).map_err(|_| ScheduleError::InvalidTimeZone {
            job: def.id.clone(),
            timezone: def.timezone.clone(),
        })?;
        let bad_cron = |reason: String| ScheduleError::InvalidCron {
            job: def.id.clone(),
            expression: def.cron.clone(),
            reason,
        };
        let normalised = normalise(&def.cron).map_err(bad_cron)?;
        let schedule = cron::Schedule::from_str(&normalised).map_err(|e| bad_cron(e.to_string()))?;
        Ok(Self { def, schedule, tz })
    }

    /// Checks the job against the calendar from `now`: it must fire at least once more,
    /// and its jitter must be shorter than its shortest upcoming interval.
    ///
    /// # Errors
    /// [`ScheduleError::NeverFires`] or [`ScheduleError::JitterTooLarge`].
    pub fn check_fires(&self, now: DateTime<Utc>) -> Result<(), ScheduleError> {
        if self.next_after(now).is_none() {
            return Err(ScheduleError::NeverFires {
                job: self.def.id.clone(),
                expression: self.def.cron.clone(),
                timezone: self.tz.name().to_owned(),
                after: now.to_rfc3339(),
            });
        }
        if let Some(jitter) = self.def.jitter.filter(|j| !j.is_zero())
            && let Some(shortest) = self.shortest_interval(now)
            && jitter >= shortest
        {
            return Err(ScheduleError::JitterTooLarge {
                job: self.def.id.clone(),
                jitter,
                shortest_interval: shortest,
            });
        }
        Ok(())
    }

    /// The definition.
    pub fn def(&self) -> &JobDef {
        &self.def
    }

    /// The job id.
    pub fn id(&self) -> &str {
        &self.def.id
    }

    /// The resolved time zone.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&t.with_timezone(&self.tz)).next().map(|d| d.with_timezone(&Utc))
    }

    /// The last fire at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // The cron crate searches strictly before its start; one nanosecond later makes `t`
        // itself a candidate (fires are whole seconds).
        let probe = t.checked_add_signed(TimeDelta::nanoseconds(1))?;
        self.schedule.after(&probe.with_timezone(&self.tz)).next_back().map(|d| d.with_timezone(&Utc))
    }

    /// The next `n` fires strictly after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        self.schedule.after(&t.with_timezone(&self.tz)).take(n).map(|d| d.with_timezone(&Utc)).collect()
    }

    /// The shortest gap between consecutive fires among the next few hundred after `t`.
    pub fn shortest_interval(&self, t: DateTime<Utc>) -> Option<Duration> {
        let fires = self.upcoming(t, INTERVAL_SAMPLES);
        fires.windows(2).filter_map(|w| (w[1] - w[0]).to_std().ok()).min()
    }

    /// The delay added to `fire`: uniform in `0..=jitter` (millisecond steps), the same for
    /// the same `seed`, job id and fire time. Zero without jitter.
    pub fn jitter_for(&self, fire: DateTime<Utc>, seed: u64) -> Duration {
        let Some(max) = self.def.jitter else { return Duration::ZERO };
        let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if max_ms == 0 {
            return Duration::ZERO;
        }
        // Casting the (possibly negative) timestamp only mixes its bits into the seed.
        let mixed = seed ^ fnv1a(self.def.id.as_bytes()) ^ (fire.timestamp() as u64).rotate_left(29);
        Duration::from_millis(fastrand::Rng::with_seed(mixed).u64(0..=max_ms))
    }
}

/// FNV-1a: a stable (across builds and platforms) hash of the job id for the jitter seed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Turns the accepted expression forms into what the `cron` crate parses.
fn normalise(expression: &str) -> Result<String, String> {
    let trimmed = expression.trim();
    if trimmed.starts_with('@') {
        return Ok(trimmed.to_owned());
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    match fields.len() {
        5 => {
            if fields[4].chars().any(|c| c.is_ascii_digit()) {
                return Err(format!(
                    "day-of-week {:?} is numeric in a 5-field expression; crontab counts 0 = Sunday \
                     but this scheduler counts 1 = Sunday, so use names (e.g. MON-FRI) or a \
                     6-field expression",
                    fields[4]
                ));
            }
            Ok(format!("0 {}", fields.join(" ")))
        }
        6 | 7 => Ok(fields.join(" ")),
        n => Err(format!(
            "expected 5 fields (min hour day month weekday), 6 (seconds first) or 7 (year last), \
             found {n}"
        )),
    }
}
