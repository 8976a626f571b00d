//! # executus-persona — named agent definitions for executus
//!
//! A persona is a named, stored agent definition: description, system prompt, model (a tier
//! or a chain), tool allowlist, skills, limits, temperature, token cap, lane and policy
//! profile. This battery stores personas, loads them from a folder of Markdown files, and
//! implements the core's [`PersonaSource`](executus::ports::PersonaSource) port, so
//! `runtime.agent("reviewer")` finds them.
//!
//! - [`Persona`]: the record; [`Persona::to_agent`] makes the core's `RunnableAgent`.
//! - [`PersonaStore`]: the storage trait (atomic methods, shaped for SQL);
//!   [`MemoryPersonaStore`] is the default. `executus-store` implements it on SQLite.
//! - [`loader`]: the built-in loader for persona files (Markdown with TOML front matter
//!   between `+++` lines; `---` accepted), reporting every bad file by path and line.
//! - [`PersonaLibrary`]: the `PersonaSource` over any store, with
//!   [`load_dir`](PersonaLibrary::load_dir) to fill it from a folder all-or-nothing.
//!
//! ```no_run
//! use std::sync::Arc;
//! use executus::ports::Ports;
//! use executus_persona::PersonaLibrary;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let personas = PersonaLibrary::in_memory();
//! personas.load_dir("personas").await?; // every error, by path and line, if any file is bad
//! let ports = Ports { personas: Arc::new(personas), ..Ports::default() };
//! let runtime = executus::Runtime::builder().ports(ports).build();
//! let reviewer = runtime.agent("reviewer").await?;
//! let outcome = runtime.run(reviewer, "Review this diff: ...").await?;
//! # let _ = outcome;
//! # Ok(())
//! # }
//! ```
//!
//! Example persona files ship in this crate's `personas/` folder.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `conformance` | no | `conformance::check_persona_store`: the contract check for `PersonaStore` implementations |

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod library;
pub mod loader;
mod persona;
mod store;

pub use library::{LoadDirError, PersonaLibrary, load_dir_into};
pub use loader::{LoadError, LoadErrors, LoadedPersona, MAX_FILE_BYTES, load_dir, parse_file};
pub use persona::{InvalidPersona, MAX_NAME_CHARS, Persona, PersonaLimits};
pub use store::{MemoryPersonaStore, PORT, PersonaStore, invalid, validate_batch};
