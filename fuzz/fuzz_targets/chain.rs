//! Fuzz target `chain`: see `executus_fuzz::chain` for what it feeds and what it asserts.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| executus_fuzz::chain::check(data));
