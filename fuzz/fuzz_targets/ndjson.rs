//! Fuzz target `ndjson`: see `executus_fuzz::ndjson` for what it feeds and what it asserts.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| executus_fuzz::ndjson::check(data));
