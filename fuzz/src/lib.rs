//! The checks behind executus's fuzz targets, one module per target.
//!
//! Each module's `check(data)` decodes the fuzzer's bytes into an input for the REAL parsing
//! code (the provider crate's stream parsers through `executus_llm::fuzzing`, its DSN and
//! chain grammar, the core's tools and config loading), runs it, and panics when a property
//! fails, which libFuzzer reports as a crash. A panic inside the code under test is a crash
//! too. `cargo test` in this folder replays the committed corpus through the same checks on a
//! stable toolchain (see `tests/corpus.rs`).
//!
//! Inputs are decoded by hand (a few header bytes, then the payload) rather than with
//! `arbitrary`, so that seeds are readable files: a fixed header followed by a real body.

use std::future::Future;

pub mod chain;
pub mod config;
pub mod dsn;
pub mod ndjson;
pub mod sse;
pub mod tool_args;

/// A distinctive fake API key. Targets configure it as the client's secret (or put it in a
/// DSN) and assert that no error message ever shows it. It is in the dictionaries so the
/// fuzzer splices it into bodies.
pub const SECRET: &str = "sk-fuzz-5ecret-KEY";

/// Reads a fuzz input front to back; past the end every read yields zeros.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Cuts `body` into chunks: one chunk when `seed` is 0, else pseudo-random chunks of 1 to
/// `1 + (seed & 0xff)` bytes (deterministic in `seed`), so the fuzzer explores every place a
/// chunk boundary can fall (inside a CRLF, a UTF-8 sequence, a field name...).
pub fn cut(body: &[u8], seed: u16) -> Vec<Vec<u8>> {
    if seed == 0 {
        return vec![body.to_vec()];
    }
    let max = 1 + usize::from(seed & 0xff);
    let mut state = u32::from(seed) | 0x1_0000;
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        // xorshift32
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = (1 + state as usize % max).min(rest.len());
        let (head, tail) = rest.split_at(len);
        out.push(head.to_vec());
        rest = tail;
    }
    out
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread tokio runtime builds");
}

/// Runs `future` to completion on this thread's current-thread runtime (with timers, which the
/// HTTP layer's idle timeout needs).
pub fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(future))
}

/// Panics if `text` shows [`SECRET`].
pub fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the API key: {text}");
}
