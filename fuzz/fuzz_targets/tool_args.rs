//! Fuzz target `tool_args`: see `executus_fuzz::tool_args` for what it feeds and what it asserts.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| executus_fuzz::tool_args::check(data));
