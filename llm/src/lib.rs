//! # executus-llm
//!
//! One canonical vocabulary for large-language-model calls, many wire protocols, and errors
//! classified so that a caller can retry or fail over correctly.
//!
//! - [`types`]: [`Message`], [`Request`], [`Response`], [`Usage`], [`Capabilities`].
//! - [`Model`]: `generate` and `stream`; `Arc<dyn Model>` is the currency.
//! - [`stream`]: [`StreamEvent`] and helpers to collect or drive a stream.
//! - [`Registry`]: providers from DSNs ([`dsn`]), aliases, and `registry.parse("fast, local/qwen3")`
//!   returning a failover [`Chain`] that consults a shared [`HealthTracker`].
//! - [`generate_typed`] / [`ModelExt`]: structured output decoded into a Rust type.
//! - [`fake`]: scripted, recorded and replayed models for tests and offline runs.
//! - [`media`]: images in — each request's images shaped, per target, into what it accepts
//!   (format, size, bytes), once per run; refused with the image named when they cannot be.
//! - [`imagegen`]: images out — [`ImageModel`], [`ImageChain`] on the same failover rules,
//!   OpenAI-compatible `/images/generations` and Gemini image output.
//! - [`Error`]: classified ([`ErrorKind`]), naming provider and model, carrying HTTP status and
//!   `Retry-After`; never an API key.
//!
//! This crate is usable on its own: it depends on no other executus crate.
//!
//! ## Features
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `media` | image conversion in [`media`] (decode, orient, scale, re-encode) with the `image` crate, PNG, JPEG, GIF and WebP codecs only. Without it images are inspected from their headers: sent unchanged within a target's limits, refused otherwise. |
//! | `fuzzing` | entry points for the fuzz targets (not a stable API). |

pub mod chain;
pub mod clock;
pub mod dsn;
pub mod error;
pub mod fake;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod http;
pub mod imagegen;
pub mod media;
pub mod model;
pub mod providers;
pub mod registry;
pub mod secret;
pub mod stream;
pub mod structured;
pub mod target;
pub mod types;

pub use chain::{Chain, ChainEvent, ChainObserver, ChainOptions, NoopObserver, SkipReason, Sleeper};
pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use dsn::{ProviderKind, ProviderSpec};
pub use error::{Attempt, ConfigError, Error, ErrorKind, Result};
pub use health::{HealthConfig, HealthTracker, TargetHealth};
pub use http::HttpOptions;
pub use imagegen::{GeneratedImage, ImageChain, ImageModel, ImageRequest, ImageResponse, ImageSize};
pub use media::{ImageFormat, MediaKind, MediaLimits};
pub use model::{Model, Provider};
pub use registry::Registry;
pub use secret::Secret;
pub use stream::{Collector, DriveError, EventStream, Partial, StreamEvent, StreamFailure};
pub use structured::{ModelExt, Typed, generate_typed, schema_for, strict_schema, strip_code_fences};
pub use target::{Target, TargetParseError};
pub use types::{
    Capabilities, FinishReason, Message, Part, ReasoningEffort, Request, Response, ResponseSchema, Role,
    ToolCall, ToolChoice, ToolResult, ToolSpec, Usage,
};
