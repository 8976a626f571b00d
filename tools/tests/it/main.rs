//! executus-tools integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used)]

mod generate_image;
mod hostile;
mod ssrf;
mod tools;
