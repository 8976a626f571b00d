//! Fuzz target `sse`: see `executus_fuzz::sse` for what it feeds and what it asserts.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| executus_fuzz::sse::check(data));
