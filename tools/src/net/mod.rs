//! Network access for tools, behind an SSRF guard.
//!
//! - [`ssrf`]: [`SsrfGuard`] decides whether a URL may be fetched and to which addresses,
//!   with typed refusals ([`SsrfError`] naming the host, the address and the [`Rule`]).
//! - [`fetch`]: [`GuardedHttp`] GETs through the guard, pinned to the vetted addresses (no
//!   DNS rebinding between check and connect), re-checking every redirect hop, within one
//!   deadline and a body cap.
//!
//! Every tool that touches the network goes through [`GuardedHttp`] (or at least
//! [`SsrfGuard`] plus the same pinning); the configured allow list of `host:port` pairs is
//! the only way past the address checks.

pub mod fetch;
pub mod ssrf;

pub use fetch::{CappedBody, FetchError, FetchOptions, GuardedHttp, GuardedResponse};
pub use ssrf::{
    AllowList, CheckedTarget, Resolver, Rule, SsrfError, SsrfGuard, StaticResolver, SystemResolver,
};
