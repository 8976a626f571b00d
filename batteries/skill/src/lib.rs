//! # executus-skill — skills for executus agents
//!
//! A skill is instructions plus tool names that an agent can carry. This battery gives skills
//! a lifecycle, immutable versions with an active pointer, storage, and composition onto
//! agents, and implements the core's [`SkillSource`](executus::ports::SkillSource) port.
//!
//! - [`SkillLibrary`]: the front door (create, new version, activate, enable/disable, serve,
//!   compose) and the `SkillSource` to hand to `Ports::skills`. It serves a skill only while
//!   it is [`SkillState::Active`], at the version its active pointer names.
//! - [`SkillStore`]: the storage trait (one atomic operation per method, shaped for SQL);
//!   [`MemorySkillStore`] is the default. `executus-store` implements it on SQLite.
//! - [`compose`]: instructions appended in order under `## Skill: <name>` headings, tool sets
//!   merged, a tool provided by two skills is [`SkillError::DuplicateTool`].
//! - Lifecycle: `draft -> active`, `active -> disabled`, `disabled -> active`; anything else
//!   is [`SkillError::BadTransition`] naming the skill and both states.
//!
//! ```
//! use std::sync::Arc;
//! use executus_skill::{SkillContent, SkillLibrary};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), executus_skill::SkillError> {
//! let skills = SkillLibrary::in_memory();
//! skills.create("grep", SkillContent::new("Search before you answer.").with_tools(["grep"])).await?;
//! skills.enable("grep").await?;
//! let def = skills.served("grep").await?;
//! assert_eq!(def.tools, ["grep"]);
//! // Hand it to a runtime: `Ports { skills: Arc::new(skills), ..Ports::default() }`.
//! # let _ = Arc::new(skills);
//! # Ok(())
//! # }
//! ```
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `conformance` | no | `conformance::check_skill_store`: the contract check for `SkillStore` implementations |

mod compose;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod error;
mod library;
mod memory;
mod model;
mod store;

pub use compose::compose;
pub use error::SkillError;
pub use library::{NEW_VERSION_ATTEMPTS, SkillLibrary};
pub use memory::MemorySkillStore;
pub use model::{ActiveSkill, Skill, SkillContent, SkillState, SkillVersion, UnknownState, validate_name};
pub use store::SkillStore;
