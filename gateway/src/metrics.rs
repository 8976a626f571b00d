//! The gateway's counters and histograms, rendered in the Prometheus text format at
//! `GET /metrics`.
//!
//! | metric | labels |
//! | --- | --- |
//! | `executus_gateway_requests_total` | `dialect`, `status` |
//! | `executus_gateway_errors_total` | `class` (`invalid_request`, `rate_limited`, `bad_gateway`, ...) |
//! | `executus_gateway_failovers_total` | — |
//! | `executus_gateway_guard_triggers_total` | `kind`, `action` |
//! | `executus_gateway_policy_decisions_total` | `decision` |
//! | `executus_gateway_tokens_total` | `direction` (`input`, `output`) |
//! | `executus_gateway_upstream_seconds` | `target` (histogram: whole upstream call, or a stream's life) |
//! | `executus_gateway_in_flight` | — (gauge) |
//!
//! Labels are the gateway's own vocabulary and configured names (targets, dialects), never
//! anything a client sent. Updates take one short lock per labelled series; nothing is
//! allocated for a series that already exists.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 14] =
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Every metric of one gateway.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    failovers: AtomicU64,
    triggers: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    decisions: Mutex<BTreeMap<&'static str, u64>>,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    upstream: Mutex<BTreeMap<String, Histogram>>,
    in_flight: AtomicI64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, by: u64) {
    let mut map = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *map.entry(key).or_insert(0) += by;
}

impl Metrics {
    /// Fresh metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// A request answered with `status`.
    pub fn request(&self, dialect: &'static str, status: u16) {
        bump(&self.requests, (dialect, status), 1);
    }

    /// An error of `class` was sent.
    pub fn error(&self, class: &'static str) {
        bump(&self.errors, class, 1);
    }

    /// The chain moved from one target to the next.
    pub fn failover(&self) {
        self.failovers.fetch_add(1, Ordering::Relaxed);
    }

    /// Loop protection fired.
    pub fn trigger(&self, kind: &'static str, action: &'static str) {
        bump(&self.triggers, (kind, action), 1);
    }

    /// A policy decision on a tool call (or a completion gate).
    pub fn decision(&self, decision: &'static str) {
        bump(&self.decisions, decision, 1);
    }

    /// Tokens used.
    pub fn tokens(&self, input: u64, output: u64) {
        self.input_tokens.fetch_add(input, Ordering::Relaxed);
        self.output_tokens.fetch_add(output, Ordering::Relaxed);
    }

    /// One upstream call to `target` took `elapsed`.
    pub fn upstream(&self, target: &str, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.upstream.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let histogram = match map.get_mut(target) {
            Some(h) => h,
            None => map.entry(target.to_owned()).or_default(),
        };
        for (slot, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
            if secs <= bound {
                *slot += 1;
            }
        }
        histogram.sum += secs;
        histogram.count += 1;
    }

    /// A request started (`+1`) or ended (`-1`).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        header(
            &mut out,
            "executus_gateway_requests_total",
            "counter",
            "Requests answered, by dialect and HTTP status.",
        );
        for ((dialect, status), n) in
            self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter()
        {
            let _ = writeln!(
                out,
                "executus_gateway_requests_total{{dialect=\"{dialect}\",status=\"{status}\"}} {n}"
            );
        }
        header(&mut out, "executus_gateway_errors_total", "counter", "Errors sent to clients, by class.");
        for (class, n) in self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            let _ = writeln!(out, "executus_gateway_errors_total{{class=\"{class}\"}} {n}");
        }
        header(
            &mut out,
            "executus_gateway_failovers_total",
            "counter",
            "Moves from a failed target to the next.",
        );
        let _ = writeln!(out, "executus_gateway_failovers_total {}", self.failovers.load(Ordering::Relaxed));
        header(
            &mut out,
            "executus_gateway_guard_triggers_total",
            "counter",
            "Loop-protection triggers, by kind and action.",
        );
        for ((kind, action), n) in
            self.triggers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter()
        {
            let _ = writeln!(
                out,
                "executus_gateway_guard_triggers_total{{kind=\"{kind}\",action=\"{action}\"}} {n}"
            );
        }
        header(
            &mut out,
            "executus_gateway_policy_decisions_total",
            "counter",
            "Policy decisions on tool calls and turn ends.",
        );
        for (decision, n) in self.decisions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            let _ = writeln!(out, "executus_gateway_policy_decisions_total{{decision=\"{decision}\"}} {n}");
        }
        header(&mut out, "executus_gateway_tokens_total", "counter", "Tokens reported by upstreams.");
        let _ = writeln!(
            out,
            "executus_gateway_tokens_total{{direction=\"input\"}} {}",
            self.input_tokens.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "executus_gateway_tokens_total{{direction=\"output\"}} {}",
            self.output_tokens.load(Ordering::Relaxed)
        );
        header(&mut out, "executus_gateway_upstream_seconds", "histogram", "Upstream call time per target.");
        for (target, h) in self.upstream.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            let target = escape(target);
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "executus_gateway_upstream_seconds_bucket{{target=\"{target}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "executus_gateway_upstream_seconds_bucket{{target=\"{target}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "executus_gateway_upstream_seconds_sum{{target=\"{target}\"}} {}", h.sum);
            let _ =
                writeln!(out, "executus_gateway_upstream_seconds_count{{target=\"{target}\"}} {}", h.count);
        }
        header(&mut out, "executus_gateway_in_flight", "gauge", "Requests being served.");
        let _ = writeln!(out, "executus_gateway_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::new();
        m.request("chat", 200);
        m.request("chat", 200);
        m.request("messages", 429);
        m.error("rate_limited");
        m.failover();
        m.trigger("cycle", "finalize");
        m.decision("block");
        m.tokens(10, 5);
        m.upstream("local/tiny", Duration::from_millis(30));
        m.upstream("local/tiny", Duration::from_secs(2));
        let text = m.render();
        assert!(
            text.contains("executus_gateway_requests_total{dialect=\"chat\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("executus_gateway_requests_total{dialect=\"messages\",status=\"429\"} 1"));
        assert!(text.contains("executus_gateway_errors_total{class=\"rate_limited\"} 1"));
        assert!(text.contains("executus_gateway_failovers_total 1"));
        assert!(text.contains("executus_gateway_guard_triggers_total{kind=\"cycle\",action=\"finalize\"} 1"));
        assert!(text.contains("executus_gateway_policy_decisions_total{decision=\"block\"} 1"));
        assert!(text.contains("executus_gateway_tokens_total{direction=\"output\"} 5"));
        assert!(
            text.contains("executus_gateway_upstream_seconds_bucket{target=\"local/tiny\",le=\"0.05\"} 1")
        );
        assert!(
            text.contains("executus_gateway_upstream_seconds_bucket{target=\"local/tiny\",le=\"2.5\"} 2")
        );
        assert!(
            text.contains("executus_gateway_upstream_seconds_bucket{target=\"local/tiny\",le=\"+Inf\"} 2")
        );
        assert!(text.contains("executus_gateway_upstream_seconds_count{target=\"local/tiny\"} 2"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "every sample ends in a number: {line}");
        }
    }
}
