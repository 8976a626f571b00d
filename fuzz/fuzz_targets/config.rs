//! Fuzz target `config`: see `executus_fuzz::config` for what it feeds and what it asserts.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| executus_fuzz::config::check(data));
