//! The records the fleet stores (plain data: every backend builds them), and the rollup of raw perf samples into 5-minute buckets
//! (one function, used by every backend, so their buckets are identical).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::wire::{ActivityRow, GpuStat, ModelState, SysStat};

/// One activity row of a host, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityRecord {
    /// The host (its configured name).
    pub host: String,
    /// The host's row id.
    pub remote_id: u64,
    /// When the request was made.
    pub ts: DateTime<Utc>,
    /// The model.
    pub model: String,
    /// The request path.
    pub req_path: String,
    /// The response status.
    pub status: u16,
    /// Duration in milliseconds.
    pub duration_ms: i64,
    /// Prompt tokens.
    pub input_tokens: i64,
    /// Generated tokens.
    pub output_tokens: i64,
    /// Prompt tokens from the cache.
    pub cache_tokens: i64,
    /// Prompt tokens per second (0 when unknown).
    pub prompt_tps: f64,
    /// Generated tokens per second (0 when unknown).
    pub gen_tps: f64,
    /// The error of a failed request.
    pub error: Option<String>,
}

/// `ts` truncated to the microsecond: the precision every backend keeps.
pub fn to_micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(ts.timestamp_micros()).unwrap_or(ts)
}

fn finite(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

impl ActivityRecord {
    /// The stored form of a host's row.
    pub fn from_row(host: &str, row: &ActivityRow) -> Self {
        Self {
            host: host.to_owned(),
            remote_id: row.id,
            ts: to_micros(row.timestamp),
            model: row.model.clone(),
            req_path: row.req_path.clone(),
            status: row.resp_status_code,
            duration_ms: row.duration_ms.max(0),
            input_tokens: row.tokens.input_tokens.max(0),
            output_tokens: row.tokens.output_tokens.max(0),
            cache_tokens: row.tokens.cache_tokens.max(0),
            prompt_tps: finite(row.tokens.prompt_per_second),
            gen_tps: finite(row.tokens.tokens_per_second),
            error: row.error_msg.clone().filter(|e| !e.is_empty()),
        }
    }

    /// A record with the given identity and zeros elsewhere (tests).
    pub fn new(host: &str, remote_id: u64, ts: DateTime<Utc>, model: &str) -> Self {
        Self {
            host: host.to_owned(),
            remote_id,
            ts,
            model: model.to_owned(),
            req_path: "/v1/chat/completions".to_owned(),
            status: 200,
            duration_ms: 0,
            input_tokens: 0,
            output_tokens: 0,
            cache_tokens: 0,
            prompt_tps: 0.0,
            gen_tps: 0.0,
            error: None,
        }
    }
}

/// One perf sample of a host: the system reading and the GPUs' readings of one instant,
/// reduced to the figures the fleet shows and aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfSample {
    /// The host.
    pub host: String,
    /// When sampled.
    pub ts: DateTime<Utc>,
    /// Mean CPU utilisation over the cores, percent.
    pub cpu_pct: Option<f64>,
    /// Memory used, MB.
    pub mem_used_mb: Option<f64>,
    /// Mean GPU utilisation over the GPUs, percent.
    pub gpu_util_pct: Option<f64>,
    /// VRAM used over all GPUs, MB.
    pub vram_used_mb: Option<f64>,
    /// Hottest GPU, °C.
    pub gpu_temp_c: Option<f64>,
    /// Power over all GPUs, W.
    pub power_w: Option<f64>,
}

impl PerfSample {
    /// A sample with only host and time.
    pub fn empty(host: &str, ts: DateTime<Utc>) -> Self {
        Self {
            host: host.to_owned(),
            ts,
            cpu_pct: None,
            mem_used_mb: None,
            gpu_util_pct: None,
            vram_used_mb: None,
            gpu_temp_c: None,
            power_w: None,
        }
    }

    /// Joins a `/api/performance` report's system and GPU readings by timestamp.
    pub fn from_report(host: &str, sys: &[SysStat], gpus: &[GpuStat]) -> Vec<Self> {
        let mut by_ts: BTreeMap<DateTime<Utc>, Self> = BTreeMap::new();
        for s in sys {
            let ts = to_micros(s.timestamp);
            let e = by_ts.entry(ts).or_insert_with(|| Self::empty(host, ts));
            let cores: Vec<f64> = s.cpu_util_per_core.iter().copied().filter(|c| c.is_finite()).collect();
            if !cores.is_empty() {
                e.cpu_pct = Some(cores.iter().sum::<f64>() / cores.len() as f64);
            }
            if s.mem_used_mb > 0 {
                e.mem_used_mb = Some(s.mem_used_mb as f64);
            }
        }
        let mut gpu_groups: BTreeMap<DateTime<Utc>, Vec<&GpuStat>> = BTreeMap::new();
        for g in gpus {
            gpu_groups.entry(to_micros(g.timestamp)).or_default().push(g);
        }
        for (ts, group) in gpu_groups {
            let e = by_ts.entry(ts).or_insert_with(|| Self::empty(host, ts));
            let n = group.len() as f64;
            e.gpu_util_pct = Some(group.iter().map(|g| finite(g.gpu_util_pct)).sum::<f64>() / n);
            e.vram_used_mb = Some(group.iter().map(|g| finite(g.mem_used_mb)).sum());
            e.gpu_temp_c = group.iter().map(|g| finite(g.temp_c)).reduce(f64::max);
            e.power_w = Some(group.iter().map(|g| finite(g.power_draw_w)).sum());
        }
        by_ts.into_values().collect()
    }
}

/// Length of a perf bucket, seconds.
pub const BUCKET_SECS: i64 = 300;

/// The start of the 5-minute bucket holding `ts`.
pub fn bucket_start(ts: DateTime<Utc>) -> DateTime<Utc> {
    let secs = ts.timestamp().div_euclid(BUCKET_SECS) * BUCKET_SECS;
    Utc.timestamp_opt(secs, 0).single().unwrap_or(ts)
}

/// The aggregate of a host's raw samples over five minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfBucket {
    /// The host.
    pub host: String,
    /// The bucket's start (a multiple of five minutes).
    pub start: DateTime<Utc>,
    /// Samples aggregated.
    pub samples: u32,
    /// Mean CPU percent.
    pub cpu_avg: Option<f64>,
    /// Highest CPU percent.
    pub cpu_max: Option<f64>,
    /// Mean memory used, MB.
    pub mem_avg: Option<f64>,
    /// Mean GPU percent.
    pub gpu_util_avg: Option<f64>,
    /// Highest GPU percent.
    pub gpu_util_max: Option<f64>,
    /// Highest VRAM used, MB.
    pub vram_max: Option<f64>,
    /// Hottest GPU, °C.
    pub temp_max: Option<f64>,
    /// Mean power, W.
    pub power_avg: Option<f64>,
}

fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (sum, n) = values.flatten().fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

fn max(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.flatten().reduce(f64::max)
}

/// Groups samples (of any hosts) into 5-minute buckets, ordered by host and start.
pub fn rollup(samples: &[PerfSample]) -> Vec<PerfBucket> {
    let mut groups: BTreeMap<(&str, DateTime<Utc>), Vec<&PerfSample>> = BTreeMap::new();
    for s in samples {
        groups.entry((s.host.as_str(), bucket_start(s.ts))).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|((host, start), group)| PerfBucket {
            host: host.to_owned(),
            start,
            samples: u32::try_from(group.len()).unwrap_or(u32::MAX),
            cpu_avg: mean(group.iter().map(|s| s.cpu_pct)),
            cpu_max: max(group.iter().map(|s| s.cpu_pct)),
            mem_avg: mean(group.iter().map(|s| s.mem_used_mb)),
            gpu_util_avg: mean(group.iter().map(|s| s.gpu_util_pct)),
            gpu_util_max: max(group.iter().map(|s| s.gpu_util_pct)),
            vram_max: max(group.iter().map(|s| s.vram_used_mb)),
            temp_max: max(group.iter().map(|s| s.gpu_temp_c)),
            power_avg: mean(group.iter().map(|s| s.power_w)),
        })
        .collect()
}

/// A model's state on a host from a given time on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelStateRecord {
    /// The host.
    pub host: String,
    /// The model.
    pub model: String,
    /// Its state.
    pub state: ModelState,
    /// Since when.
    pub at: DateTime<Utc>,
}

impl ModelStateRecord {
    /// A record.
    pub fn new(host: &str, model: &str, state: ModelState, at: DateTime<Utc>) -> Self {
        Self { host: host.to_owned(), model: model.to_owned(), state, at }
    }
}

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The action's id.
    pub id: String,
    /// When the record was written.
    pub at: DateTime<Utc>,
    /// The host.
    pub host: String,
    /// `load`, `unload`, `unload-all`, `takeover`.
    pub action: String,
    /// The model, when the action concerns one.
    pub model: Option<String>,
    /// Who asked (a gateway key's name, `cli`, ...).
    pub actor: String,
    /// `queued`, `done`, `failed`, `refused`, `conflict`, `skipped`.
    pub outcome: String,
    /// Details (the error, what was refused and why).
    pub detail: String,
}

/// A lease on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The host.
    pub host: String,
    /// Who holds it (unique per holder).
    pub holder: String,
    /// What for (`bench`, ...).
    pub purpose: String,
    /// Since when.
    pub acquired: DateTime<Utc>,
    /// Until when, unless renewed.
    pub expires: DateTime<Utc>,
}
