//! The bench: a grid of prompt tokens x generated tokens x concurrency, run against one
//! model on one host while holding the host's lease.
//!
//! Per request it measures, from the OpenAI-compatible stream:
//! - **TTFT**: from sending the request to the first chunk carrying generated text
//!   (client side, so it includes the network and the host's queueing);
//! - **prompt and generation tokens/s**: from llama.cpp's `timings` in the final chunk
//!   (`prompt_per_second`, `predicted_per_second`) when the server sends them; otherwise from
//!   the wall clock (prompt tokens / TTFT, generated tokens / time after the first token)
//!   with token counts from `usage`. Each cell says which source it used.
//!
//! Each cell reports p50 and p90 of each figure over its samples (nearest rank). Requests
//! ask for exactly the cell's generated tokens (`max_tokens` with `ignore_eos`, which
//! llama.cpp and vLLM honour) and disable llama.cpp's prompt cache (`cache_prompt: false`)
//! so every request processes its whole prompt.
//!
//! # Guarantees
//! - The host's lease is held for the whole run; a run whose lease is lost (an action took
//!   the host over) stops before its next request and is stored as aborted with the cells
//!   done so far.
//! - The model is loaded by one unmeasured warm-up request first, so no cell measures a swap.
//! - A failed request is counted in its cell (`errors`), never silently dropped.
//!
//! # What it does not do
//! Prompt lengths are approximate (one common English word per token, plus the chat
//! template): the cells report the prompt tokens the server counted.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::HostClient;
use crate::error::FleetError;
use crate::lease::Lease;
use crate::sse::SseDecoder;

/// The grid of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchGrid {
    /// Prompt lengths, tokens (approximate).
    pub prompt_tokens: Vec<u32>,
    /// Generated tokens.
    pub gen_tokens: Vec<u32>,
    /// Requests at once.
    pub concurrency: Vec<u32>,
    /// Rounds per cell (each round sends `concurrency` requests at once).
    pub repetitions: u32,
}

impl Default for BenchGrid {
    fn default() -> Self {
        Self {
            prompt_tokens: vec![128, 512],
            gen_tokens: vec![32, 128],
            concurrency: vec![1, 2],
            repetitions: 3,
        }
    }
}

impl BenchGrid {
    /// Cells in the grid.
    pub fn cells(&self) -> usize {
        self.prompt_tokens.len() * self.gen_tokens.len() * self.concurrency.len()
    }

    /// Requests the run sends (without the warm-up).
    pub fn requests(&self) -> u64 {
        let per_rep: u64 = self.concurrency.iter().map(|c| u64::from(*c)).sum();
        per_rep * self.prompt_tokens.len() as u64 * self.gen_tokens.len() as u64 * u64::from(self.repetitions)
    }

    /// Checks the grid is not empty and its values are in range.
    ///
    /// # Errors
    /// The reason.
    pub fn validate(&self) -> Result<(), String> {
        if self.cells() == 0 || self.repetitions == 0 {
            return Err("the grid is empty (every axis needs a value, repetitions at least 1)".into());
        }
        if self.prompt_tokens.iter().chain(&self.gen_tokens).chain(&self.concurrency).any(|v| *v == 0) {
            return Err("grid values must be at least 1".into());
        }
        if self.concurrency.iter().any(|c| *c > 64) {
            return Err("concurrency above 64 is refused".into());
        }
        if self.prompt_tokens.iter().chain(&self.gen_tokens).any(|v| *v > 131_072) {
            return Err("token counts above 131072 are refused".into());
        }
        Ok(())
    }
}

/// p50 and p90 of a figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
}

impl Quantiles {
    /// Nearest-rank quantiles of `values` (zeros when empty).
    pub fn of(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        Self { p50: at(0.5), p90: at(0.9) }
    }
}

/// Where a cell's tokens/s came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeedSource {
    /// llama.cpp's `timings`.
    Timings,
    /// The wall clock.
    Wall,
}

/// One measured request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSample {
    /// Time to first token, ms.
    pub ttft_ms: f64,
    /// Prompt tokens/s.
    pub prompt_tps: f64,
    /// Generation tokens/s.
    pub gen_tps: f64,
    /// Prompt tokens the server counted.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub gen_tokens: u64,
    /// Where the speeds came from.
    pub source: SpeedSource,
}

/// One cell's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchCell {
    /// Prompt length asked for.
    pub prompt_tokens: u32,
    /// Generated tokens asked for.
    pub gen_tokens: u32,
    /// Requests at once.
    pub concurrency: u32,
    /// Successful requests.
    pub samples: u32,
    /// Failed requests.
    pub errors: u32,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// Mean prompt tokens the server counted.
    pub prompt_tokens_seen: f64,
    /// Time to first token, ms.
    pub ttft_ms: Quantiles,
    /// Prompt tokens/s.
    pub prompt_tps: Quantiles,
    /// Generation tokens/s.
    pub gen_tps: Quantiles,
    /// `timings` when every sample had them, else `wall`.
    pub source: SpeedSource,
}

impl BenchCell {
    fn of(
        prompt: u32,
        gen_tokens: u32,
        concurrency: u32,
        samples: &[BenchSample],
        errors: Vec<String>,
    ) -> Self {
        let col = |f: fn(&BenchSample) -> f64| Quantiles::of(&samples.iter().map(f).collect::<Vec<_>>());
        let seen = if samples.is_empty() {
            0.0
        } else {
            samples.iter().map(|s| s.prompt_tokens as f64).sum::<f64>() / samples.len() as f64
        };
        Self {
            prompt_tokens: prompt,
            gen_tokens,
            concurrency,
            samples: u32::try_from(samples.len()).unwrap_or(u32::MAX),
            errors: u32::try_from(errors.len()).unwrap_or(u32::MAX),
            first_error: errors.into_iter().next(),
            prompt_tokens_seen: seen,
            ttft_ms: col(|s| s.ttft_ms),
            prompt_tps: col(|s| s.prompt_tps),
            gen_tps: col(|s| s.gen_tps),
            source: if !samples.is_empty() && samples.iter().all(|s| s.source == SpeedSource::Timings) {
                SpeedSource::Timings
            } else {
                SpeedSource::Wall
            },
        }
    }
}

/// A bench run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRun {
    /// Its id.
    pub id: String,
    /// The host.
    pub host: String,
    /// The model.
    pub model: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended.
    pub finished: DateTime<Utc>,
    /// The grid.
    pub grid: BenchGrid,
    /// The cells done, in grid order.
    pub cells: Vec<BenchCell>,
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
}

impl BenchRun {
    /// The run's headline generation speed: the median of its concurrency-1 cells' p50
    /// (all cells when it has none at concurrency 1); `None` without samples.
    pub fn gen_tps(&self) -> Option<f64> {
        self.headline(|c| c.gen_tps.p50)
    }

    /// The run's headline TTFT, chosen like [`BenchRun::gen_tps`].
    pub fn ttft_ms(&self) -> Option<f64> {
        self.headline(|c| c.ttft_ms.p50)
    }

    fn headline(&self, f: fn(&BenchCell) -> f64) -> Option<f64> {
        let useful: Vec<&BenchCell> = self.cells.iter().filter(|c| c.samples > 0).collect();
        let single: Vec<f64> = useful.iter().filter(|c| c.concurrency == 1).map(|c| f(c)).collect();
        let values = if single.is_empty() { useful.iter().map(|c| f(c)).collect() } else { single };
        (!values.is_empty()).then(|| Quantiles::of(&values).p50)
    }
}

/// One leaderboard row: the newest run of a model on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderRow {
    /// The model.
    pub model: String,
    /// The host.
    pub host: String,
    /// Runs stored for this pair.
    pub runs: u32,
    /// Headline generation tokens/s of the newest run.
    pub gen_tps: f64,
    /// Headline TTFT of the newest run, ms.
    pub ttft_ms: f64,
    /// When the newest run started.
    pub last: DateTime<Utc>,
}

/// The leaderboard of `runs` (any order): per model and host, the newest run with samples;
/// sorted by model, then fastest first.
pub fn leaderboard(runs: &[BenchRun]) -> Vec<LeaderRow> {
    let mut by_pair: std::collections::BTreeMap<(&str, &str), (u32, Option<&BenchRun>)> = Default::default();
    for run in runs {
        let entry = by_pair.entry((run.model.as_str(), run.host.as_str())).or_default();
        entry.0 += 1;
        if run.gen_tps().is_some() && entry.1.is_none_or(|r| r.started < run.started) {
            entry.1 = Some(run);
        }
    }
    let mut rows: Vec<LeaderRow> = by_pair
        .into_iter()
        .filter_map(|((model, host), (runs, newest))| {
            let run = newest?;
            Some(LeaderRow {
                model: model.to_owned(),
                host: host.to_owned(),
                runs,
                gen_tps: run.gen_tps()?,
                ttft_ms: run.ttft_ms().unwrap_or_default(),
                last: run.started,
            })
        })
        .collect();
    rows.sort_by(|a, b| a.model.cmp(&b.model).then(b.gen_tps.total_cmp(&a.gen_tps)));
    rows
}

/// Progress of a run: requests done of the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Requests finished.
    pub done: u64,
    /// Requests in the run.
    pub total: u64,
}

/// About one word per token in common tokenizers.
const WORDS: &[&str] = &[
    "the", "time", "water", "house", "light", "river", "stone", "green", "table", "music", "paper", "north",
    "field", "glass", "night", "story", "plant", "money", "world", "small",
];

fn prompt_of(tokens: u32, salt: u64) -> String {
    let mut text = String::with_capacity(tokens as usize * 6);
    // A salt word first, so no two requests share a prompt prefix.
    text.push_str(&format!("{salt} "));
    for i in 0..tokens.saturating_sub(1) {
        text.push_str(WORDS[(i as usize + salt as usize) % WORDS.len()]);
        text.push(' ');
    }
    text
}

/// Sends one measured request.
async fn one(
    client: &HostClient,
    model: &str,
    prompt: u32,
    gen_tokens: u32,
    salt: u64,
) -> Result<BenchSample, String> {
    let body = json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt_of(prompt, salt)}],
        "max_tokens": gen_tokens,
        "ignore_eos": true,
        "cache_prompt": false,
        "temperature": 0.0,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let sent = Instant::now();
    let response = client
        .request(reqwest::Method::POST, "v1/chat/completions")
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .json(&body)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .map_err(|e| crate::client::transport(&e))?;
    let status = response.status().as_u16();
    if status != 200 {
        let body = crate::client::read_bounded(response, 64 << 10).await.unwrap_or_default();
        return Err(format!("status {status}: {}", crate::wire::error_message(&body)));
    }
    let mut decoder = SseDecoder::new(4 << 20);
    let mut frames = Vec::new();
    let mut first: Option<Instant> = None;
    let mut timings: Option<Value> = None;
    let mut usage: Option<Value> = None;
    let mut pieces = 0u64;
    let mut stream = response.bytes_stream();
    'read: while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| crate::client::transport(&e))?;
        decoder.feed(&chunk, &mut frames).map_err(|e| e.to_string())?;
        for frame in frames.drain(..) {
            if frame.data.trim() == "[DONE]" {
                break 'read;
            }
            let Ok(v) = serde_json::from_str::<Value>(&frame.data) else {
                return Err(format!("undecodable stream chunk: {}", crate::wire::preview(&frame.data)));
            };
            if let Some(err) = v.get("error") {
                return Err(format!("stream error: {err}"));
            }
            let delta = &v["choices"][0]["delta"];
            let text = ["content", "reasoning_content"]
                .iter()
                .filter_map(|k| delta.get(*k).and_then(Value::as_str))
                .any(|s| !s.is_empty());
            if text {
                pieces += 1;
                first.get_or_insert_with(Instant::now);
            }
            if let Some(t) = v.get("timings").filter(|t| t.is_object()) {
                timings = Some(t.clone());
            }
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                usage = Some(u.clone());
            }
        }
    }
    let end = Instant::now();
    let first = first.ok_or("the stream produced no text")?;
    let ttft = first.duration_since(sent).as_secs_f64();
    let num = |v: &Option<Value>, k: &str| v.as_ref().and_then(|v| v.get(k)).and_then(Value::as_f64);
    let prompt_tokens = num(&usage, "prompt_tokens").or_else(|| num(&timings, "prompt_n")).unwrap_or(0.0);
    let gen_count =
        num(&usage, "completion_tokens").or_else(|| num(&timings, "predicted_n")).unwrap_or(pieces as f64);
    let (prompt_tps, gen_tps, source) =
        match (num(&timings, "prompt_per_second"), num(&timings, "predicted_per_second")) {
            (Some(p), Some(g)) if p.is_finite() && g.is_finite() => (p, g, SpeedSource::Timings),
            _ => {
                let after = end.duration_since(first).as_secs_f64();
                let gen_tps = if after > 0.0 { (gen_count - 1.0).max(0.0) / after } else { 0.0 };
                let prompt_tps = if ttft > 0.0 { prompt_tokens / ttft } else { 0.0 };
                (prompt_tps, gen_tps, SpeedSource::Wall)
            }
        };
    Ok(BenchSample {
        ttft_ms: ttft * 1000.0,
        prompt_tps,
        gen_tps,
        prompt_tokens: prompt_tokens as u64,
        gen_tokens: gen_count as u64,
        source,
    })
}

/// Runs `grid` against `model` on the host of `client`, holding `lease`.
///
/// # Errors
/// [`FleetError::Bench`] when the warm-up fails (the model cannot be loaded) or the grid is
/// invalid. A lost lease does not fail the call: the run comes back with `aborted` set.
pub async fn run(
    client: &HostClient,
    lease: &Lease,
    model: &str,
    grid: &BenchGrid,
    now: impl Fn() -> DateTime<Utc>,
    mut progress: impl FnMut(Progress),
) -> Result<BenchRun, FleetError> {
    let fail = |reason: String| FleetError::Bench {
        host: client.name().to_owned(),
        model: model.to_owned(),
        reason,
    };
    grid.validate().map_err(fail)?;
    let started = now();
    one(client, model, 8, 4, 0).await.map_err(|e| fail(format!("warm-up request failed: {e}")))?;
    let total = grid.requests();
    let mut done = 0;
    let mut salt = 1u64;
    let mut cells = Vec::with_capacity(grid.cells());
    let mut aborted = None;
    'grid: for &prompt in &grid.prompt_tokens {
        for &gen_tokens in &grid.gen_tokens {
            for &concurrency in &grid.concurrency {
                let mut samples = Vec::new();
                let mut errors = Vec::new();
                for _ in 0..grid.repetitions {
                    if lease.is_lost() {
                        aborted = Some("the host's lease was lost (taken over or expired)".to_owned());
                        if !samples.is_empty() || !errors.is_empty() {
                            cells.push(BenchCell::of(prompt, gen_tokens, concurrency, &samples, errors));
                        }
                        break 'grid;
                    }
                    let base = salt;
                    salt += u64::from(concurrency);
                    let round =
                        (0..concurrency).map(|i| one(client, model, prompt, gen_tokens, base + u64::from(i)));
                    for result in futures::future::join_all(round).await {
                        match result {
                            Ok(s) => samples.push(s),
                            Err(e) => errors.push(e),
                        }
                        done += 1;
                    }
                    progress(Progress { done, total });
                }
                cells.push(BenchCell::of(prompt, gen_tokens, concurrency, &samples, errors));
            }
        }
    }
    Ok(BenchRun {
        id: uuid::Uuid::new_v4().to_string(),
        host: client.name().to_owned(),
        model: model.to_owned(),
        started,
        finished: now(),
        grid: grid.clone(),
        cells,
        aborted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        assert_eq!(Quantiles::of(&[]), Quantiles::default());
        assert_eq!(Quantiles::of(&[5.0]), Quantiles { p50: 5.0, p90: 5.0 });
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(Quantiles::of(&v), Quantiles { p50: 5.0, p90: 9.0 });
        assert_eq!(Quantiles::of(&[3.0, f64::NAN, 1.0, 2.0]), Quantiles { p50: 2.0, p90: 3.0 });
    }

    #[test]
    fn grid_counts_and_validation() {
        let g = BenchGrid::default();
        assert_eq!(g.cells(), 8);
        assert_eq!(g.requests(), (1 + 2) * 2 * 2 * 3);
        assert!(g.validate().is_ok());
        let empty = BenchGrid { concurrency: vec![], ..BenchGrid::default() };
        assert!(empty.validate().is_err());
        let zero = BenchGrid { gen_tokens: vec![0], ..BenchGrid::default() };
        assert!(zero.validate().is_err());
    }

    fn cell(concurrency: u32, speed: f64, ttft: f64) -> BenchCell {
        BenchCell {
            prompt_tokens: 8,
            gen_tokens: 8,
            concurrency,
            samples: 1,
            errors: 0,
            first_error: None,
            prompt_tokens_seen: 8.0,
            ttft_ms: Quantiles { p50: ttft, p90: ttft },
            prompt_tps: Quantiles::default(),
            gen_tps: Quantiles { p50: speed, p90: speed },
            source: SpeedSource::Timings,
        }
    }

    fn run_of(host: &str, model: &str, at: i64, cells: Vec<BenchCell>) -> BenchRun {
        let t = DateTime::from_timestamp(at, 0).unwrap();
        BenchRun {
            id: format!("{host}-{model}-{at}"),
            host: host.into(),
            model: model.into(),
            started: t,
            finished: t,
            grid: BenchGrid::default(),
            cells,
            aborted: None,
        }
    }

    #[test]
    fn leaderboard_takes_the_newest_run_per_pair_fastest_first() {
        let runs = vec![
            run_of("a", "m", 1, vec![cell(1, 10.0, 50.0), cell(2, 100.0, 90.0)]),
            run_of("a", "m", 2, vec![cell(1, 20.0, 40.0)]),
            run_of("b", "m", 1, vec![cell(2, 30.0, 10.0)]),
            run_of("b", "x", 1, vec![]),
        ];
        let board = leaderboard(&runs);
        let rows: Vec<(&str, &str, u32, f64)> =
            board.iter().map(|r| (r.model.as_str(), r.host.as_str(), r.runs, r.gen_tps)).collect();
        assert_eq!(rows, [("m", "b", 1, 30.0), ("m", "a", 2, 20.0)]);
        assert_eq!(board[1].ttft_ms, 40.0);
    }

    #[test]
    fn prompts_differ_per_salt_and_have_the_asked_word_count() {
        assert_ne!(prompt_of(16, 1), prompt_of(16, 2));
        assert_eq!(prompt_of(16, 1).split_whitespace().count(), 16);
    }
}
