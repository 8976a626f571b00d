//! Integration tests of the light host: the bundled offline run, failing models, the
//! renderers, environment parsing, the binary, and the dependency invariant.

#![allow(clippy::unwrap_used)]

mod bundled;
mod cli;
mod common;
mod deps;
mod env;
mod failures;
mod git;
#[path = "../support/gitrepo.rs"]
mod gitrepo;
mod post;
mod render;
mod sarif;
mod split;
mod workflows;
