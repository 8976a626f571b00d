//! The memory measurement of `memory.rs` can fail: the same waves with a tool that leaks one
//! byte per call must be caught (every wave grows the heap by a byte per run). A binary of its
//! own for the same reason as `memory.rs`.

#![allow(clippy::unwrap_used)]

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "support/memory_waves.rs"]
mod memory_waves;

use std::alloc::System;

use cap::Cap;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

#[tokio::test(start_paused = true)]
#[should_panic(expected = "every wave")]
async fn a_one_byte_leak_per_tool_call_is_caught() {
    memory_waves::heap_returns_to_baseline(&|| HEAP.allocated(), true).await;
}
