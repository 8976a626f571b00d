//! OpenTelemetry export of the spans the core and the provider crate emit, over OTLP/HTTP
//! (protobuf or JSON), configured by the standard `OTEL_*` variables and `[telemetry]`.
//!
//! | setting | variable (wins) | `[telemetry]` key | default |
//! | --- | --- | --- | --- |
//! | endpoint | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (full URL), `OTEL_EXPORTER_OTLP_ENDPOINT` (base) | `endpoint` (base) | none: export off |
//! | protocol | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL` | `protocol` | `http/protobuf` |
//! | service name | `OTEL_SERVICE_NAME` | `service_name` | `executus-run` |
//! | headers | `OTEL_EXPORTER_OTLP_HEADERS` (read by the exporter) | `headers_env` (header -> variable) | none |
//! | message content | `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` | `capture_content` | off |
//! | off switch | `OTEL_SDK_DISABLED=true` | `enabled = false` | on when an endpoint is set |
//!
//! Also `[telemetry] filter` (which spans, `EnvFilter` syntax; default executus's own crates
//! at info), `timeout` (one export, default 5s) and `max_queue` (spans held while the
//! collector is slow, default 2048).
//!
//! Guarantees: with no endpoint configured nothing is installed (no layer, no thread, no
//! cost). Spans go to a bounded queue drained by the SDK's own thread, so a slow or dead
//! collector never blocks a run: past the queue, spans are dropped; the first failed export
//! logs one warning and later ones are silent. [`Telemetry::shutdown`] flushes, bounded, at
//! exit (also after SIGTERM: the command returns, then main flushes; a second signal flushes
//! before exiting). Header values are secrets (read from variables, never printed); message
//! content is recorded only when opted in.
//!
//! What it does not do: gRPC export (not built in: use `http/protobuf`, which every collector
//! accepts on port 4318), metrics or logs export, sampling other than "everything".

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use executus::config::{ConfigError, source_of};
use executus_llm::Secret;
use figment::Figment;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use serde::Deserialize;

/// Default service name.
pub const DEFAULT_SERVICE_NAME: &str = "executus-run";
/// Default bound on one export.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default span queue.
pub const DEFAULT_MAX_QUEUE: usize = 2048;
/// Bound on the flush at exit.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);
/// Default span filter: executus's own crates.
pub const DEFAULT_FILTER: &str = "executus=info,executus_llm=info,executus_mcp=info,executus_run=info";

/// `[telemetry]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// Off switch (`false` turns export off even with an endpoint).
    pub enabled: Option<bool>,
    /// Collector base URL, e.g. `http://127.0.0.1:4318`.
    pub endpoint: Option<String>,
    /// `http/protobuf` or `http/json`.
    pub protocol: Option<String>,
    /// `service.name` of the exported resource.
    pub service_name: Option<String>,
    /// Headers: header name -> name of the variable holding the value.
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    /// Record message content on model-call spans.
    pub capture_content: Option<bool>,
    /// Which spans to export (`EnvFilter` syntax).
    pub filter: Option<String>,
    /// Bound on one export, e.g. `"5s"`.
    pub timeout: Option<String>,
    /// Spans held while the collector is slow.
    pub max_queue: Option<usize>,
}

/// Export settings, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Full traces URL (`.../v1/traces`).
    pub endpoint: String,
    /// Wire encoding.
    pub protocol: Protocol,
    /// `service.name`.
    pub service_name: String,
    /// Extra headers.
    pub headers: Vec<(String, Secret)>,
    /// Record message content.
    pub capture_content: bool,
    /// Which spans.
    pub filter: String,
    /// Bound on one export.
    pub timeout: Duration,
    /// Span queue.
    pub max_queue: usize,
}

/// The variables read, injectable for tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Settings {
    /// Reads `[telemetry]` from `figment` and the `OTEL_*` variables through `env`; `None`
    /// when export is off (no endpoint, `OTEL_SDK_DISABLED=true`, `enabled = false`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key or variable: an unknown protocol, gRPC, a bad
    /// duration, an unset header variable, a zero queue.
    pub fn load(figment: &Figment, env: Env<'_>) -> Result<Option<Self>, ConfigError> {
        let raw: RawTelemetry = match figment.find_value("telemetry") {
            Ok(_) => figment.extract_inner("telemetry").map_err(|e| ConfigError::Load(e.to_string()))?,
            Err(_) => RawTelemetry::default(),
        };
        Self::from_raw(&raw, figment, env)
    }

    /// [`Settings::load`] from an extracted `[telemetry]` (`figment` names sources).
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn from_raw(
        raw: &RawTelemetry,
        figment: &Figment,
        env: Env<'_>,
    ) -> Result<Option<Self>, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_owned(),
            origin: if key.starts_with("OTEL_") {
                format!("environment variable {key}")
            } else {
                source_of(figment, key)
            },
            reason,
        };
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            || raw.enabled == Some(false)
        {
            return Ok(None);
        }
        let traces = |base: &str| format!("{}/v1/traces", base.trim_end_matches('/'));
        let endpoint = if let Some(full) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            full
        } else if let Some(base) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            traces(&base)
        } else if let Some(base) = raw.endpoint.as_deref().filter(|e| !e.trim().is_empty()) {
            traces(base)
        } else {
            return Ok(None);
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            let key = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
                .into_iter()
                .find(|k| var(k).is_some())
                .unwrap_or("telemetry.endpoint");
            return Err(invalid(key, format!("must be an http:// or https:// URL, got {endpoint:?}")));
        }
        let (protocol_key, protocol) = ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]
            .into_iter()
            .find_map(|k| var(k).map(|v| (k, v)))
            .or_else(|| raw.protocol.clone().map(|v| ("telemetry.protocol", v)))
            .unwrap_or(("telemetry.protocol", "http/protobuf".into()));
        let protocol = match protocol.trim() {
            "http/protobuf" => Protocol::HttpBinary,
            "http/json" => Protocol::HttpJson,
            "grpc" => {
                return Err(invalid(
                    protocol_key,
                    "gRPC export is not built into executus-run; use http/protobuf (collectors take it on port 4318)"
                        .into(),
                ));
            }
            other => {
                return Err(invalid(
                    protocol_key,
                    format!("unknown protocol {other:?} (http/protobuf or http/json)"),
                ));
            }
        };
        let service_name = var("OTEL_SERVICE_NAME")
            .or(raw.service_name.clone())
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        let mut headers = Vec::new();
        for (header, variable) in &raw.headers_env {
            let key = format!("telemetry.headers_env.{header}");
            let value =
                var(variable).ok_or_else(|| invalid(&key, format!("variable {variable} is not set")))?;
            headers.push((header.clone(), Secret::new(value)));
        }
        let capture_content = var("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
            .map(|v| v.trim().eq_ignore_ascii_case("true"))
            .or(raw.capture_content)
            .unwrap_or(false);
        let timeout = match &raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(text) => match humantime::parse_duration(text.trim()) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => return Err(invalid("telemetry.timeout", "must be more than zero".into())),
                Err(e) => {
                    return Err(invalid("telemetry.timeout", format!("not a duration ({e}), e.g. \"5s\"")));
                }
            },
        };
        let max_queue = match raw.max_queue {
            Some(0) => return Err(invalid("telemetry.max_queue", "must be at least 1".into())),
            Some(n) => n,
            None => DEFAULT_MAX_QUEUE,
        };
        let filter = raw.filter.clone().unwrap_or_else(|| DEFAULT_FILTER.to_owned());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&filter) {
            return Err(invalid("telemetry.filter", format!("not a filter: {e}")));
        }
        Ok(Some(Self {
            endpoint,
            protocol,
            service_name,
            headers,
            capture_content,
            filter,
            timeout,
            max_queue,
        }))
    }
}

/// The installed exporter; flush it with [`Telemetry::shutdown`] before the process ends.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

static INSTALLED: OnceLock<SdkTracerProvider> = OnceLock::new();

impl Telemetry {
    /// Builds the exporter and the tracing layer that feeds it.
    ///
    /// # Errors
    /// The exporter could not be built (a message for the one warning the host prints).
    pub fn start<S>(
        settings: &Settings,
    ) -> Result<(Self, Box<dyn tracing_subscriber::Layer<S> + Send + Sync>), String>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        use tracing_subscriber::Layer as _;
        let headers: HashMap<String, String> =
            settings.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_owned())).collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(settings.endpoint.clone())
            .with_protocol(settings.protocol)
            .with_timeout(settings.timeout)
            .with_headers(headers)
            // One attempt per batch: a collector that is down is not waited for (the batch
            // is dropped), so the queue keeps moving.
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
            .build()
            .map_err(|e| format!("OpenTelemetry exporter for {}: {e}", settings.endpoint))?;
        let exporter =
            WarnOnce { inner: exporter, endpoint: settings.endpoint.clone(), warned: Arc::default() };
        let batch = BatchConfigBuilder::default().with_max_queue_size(settings.max_queue).build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attributes([opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))])
            .build();
        let provider =
            SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build();
        let tracer = provider.tracer("executus");
        let filter = tracing_subscriber::EnvFilter::try_new(&settings.filter).map_err(|e| e.to_string())?;
        let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(filter).boxed();
        executus::semconv::set_capture_content(settings.capture_content);
        let _ = INSTALLED.set(provider.clone());
        Ok((Self { provider }, layer))
    }

    /// Flushes what is queued and stops the exporter, within [`SHUTDOWN_TIMEOUT`].
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::debug!(error = %e, "OpenTelemetry shutdown");
        }
    }
}

/// Flushes the installed exporter, if any (the second-signal exit path).
pub fn flush_installed() {
    if let Some(provider) = INSTALLED.get() {
        let _ = provider.shutdown_with_timeout(Duration::from_secs(2));
    }
}

/// Logs the first failed export once; the rest are dropped quietly.
#[derive(Debug)]
struct WarnOnce<E> {
    inner: E,
    endpoint: String,
    warned: Arc<AtomicBool>,
}

impl<E: SpanExporter> SpanExporter for WarnOnce<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        if let Err(e) = &result
            && !self.warned.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(
                target: "executus_telemetry",
                endpoint = %self.endpoint,
                error = %e,
                "OpenTelemetry export failed; spans are dropped while the collector is unreachable (said once)"
            );
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests;
