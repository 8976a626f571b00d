//! Fuzz target `dsn`: see `executus_fuzz::dsn` for what it feeds and what it asserts.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| executus_fuzz::dsn::check(data));
