//! Virtual keys: who is calling, and what they may do.
//!
//! A client presents its key as `Authorization: Bearer KEY` or `x-api-key: KEY` (the official
//! Anthropic SDK sends either, depending on its version). The key is hashed (SHA-256) and the
//! hash compared in constant time against every configured key's hash, all of them, so the
//! time taken says nothing about which key came close. Keys are never logged or stored: only
//! their configured *names* appear in logs, metrics and audit rows.
//!
//! With no keys configured the gateway is open, as one key named `local` with no limits; the
//! server refuses to bind a non-loopback address in that case (see [`crate::check_bind`]).

use std::sync::Arc;

use executus_llm::server::{ApiError, ErrorClass};
use http::HeaderMap;

use crate::config::{KeyConfig, sha256};

/// The name of the key requests run under when no keys are configured.
pub const OPEN_KEY: &str = "local";

/// The configured keys.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<Arc<KeyConfig>>,
    open: Arc<KeyConfig>,
}

impl KeyRing {
    /// A ring of `keys`; empty means open (see the module docs).
    pub fn new(keys: Vec<KeyConfig>) -> Self {
        let open = KeyConfig { hash: [0; 32], ..KeyConfig::new(OPEN_KEY, "") };
        Self { keys: keys.into_iter().map(Arc::new).collect(), open: Arc::new(open) }
    }

    /// True when no keys are configured.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The configured keys.
    pub fn keys(&self) -> impl Iterator<Item = &Arc<KeyConfig>> {
        self.keys.iter()
    }

    /// The key a request presents.
    ///
    /// # Errors
    /// 401 ([`ErrorClass::Authentication`]) when no key is presented or none matches.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<KeyConfig>, ApiError> {
        if self.keys.is_empty() {
            return Ok(Arc::clone(&self.open));
        }
        let Some(presented) = presented(headers) else {
            return Err(ApiError::new(
                ErrorClass::Authentication,
                "no API key: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`",
            ));
        };
        self.find(presented).ok_or_else(|| ApiError::new(ErrorClass::Authentication, "invalid API key"))
    }

    /// The configured key whose secret is `presented` (hashed, then compared in constant
    /// time against every key); `None` when none matches. For routes mounted next to the
    /// gateway's (the fleet's views) that read the key from elsewhere, e.g. a cookie.
    pub fn find(&self, presented: &str) -> Option<Arc<KeyConfig>> {
        let hash = sha256(presented.as_bytes());
        let mut found: Option<&Arc<KeyConfig>> = None;
        for key in &self.keys {
            // Every key is compared, match or not.
            if constant_time_eq(&key.hash, &hash) {
                found = Some(key);
            }
        }
        found.cloned()
    }
}

/// The key in `Authorization: Bearer` or `x-api-key`, if any.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(auth) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let auth = auth.trim();
        if let Some(prefix) = auth.get(..7)
            && prefix.eq_ignore_ascii_case("bearer ")
        {
            let key = auth[7..].trim();
            if !key.is_empty() {
                return Some(key);
            }
        }
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty())
}

/// Equality of two hashes in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_and_x_api_key_both_authenticate() {
        let ring = KeyRing::new(vec![KeyConfig::new("alice", "sk-alice"), KeyConfig::new("bob", "sk-bob")]);
        assert_eq!(ring.authenticate(&headers(&[("authorization", "Bearer sk-bob")])).unwrap().name, "bob");
        assert_eq!(
            ring.authenticate(&headers(&[("authorization", "bearer  sk-alice ")])).unwrap().name,
            "alice"
        );
        assert_eq!(ring.authenticate(&headers(&[("x-api-key", "sk-alice")])).unwrap().name, "alice");
        let no_key = ring.authenticate(&headers(&[])).unwrap_err();
        assert_eq!(no_key.status(), 401);
        let wrong = ring.authenticate(&headers(&[("authorization", "Bearer sk-eve")])).unwrap_err();
        assert_eq!(wrong.status(), 401);
        assert!(!wrong.message.contains("sk-eve"), "the presented key is never echoed");
        let basic = ring.authenticate(&headers(&[("authorization", "Basic sk-alice")])).unwrap_err();
        assert_eq!(basic.status(), 401);
    }

    #[test]
    fn an_empty_ring_is_open() {
        let ring = KeyRing::new(Vec::new());
        assert!(ring.is_open());
        assert_eq!(ring.authenticate(&HeaderMap::new()).unwrap().name, OPEN_KEY);
    }

    #[test]
    fn equality_is_exact() {
        let a = sha256(b"a");
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
    }
}
