//! Memory returns to baseline after load: waves of tool-using runs from 3 tenants through 4
//! lanes, and the live heap (every byte allocated and not yet freed, counted by a wrapping
//! global allocator) measured after a warm-up wave and after each further wave. A per-run leak
//! — a run left in a table, an actor or task that never ends, a channel or event buffer kept,
//! a checkpoint not deleted — grows the heap by a multiple of the wave's size at every wave;
//! tables that keep their high-water capacity step up now and then by a bounded amount. So
//! the heap must stay within 256 KiB of the baseline, and at least one wave must leave it
//! where it found it (to within half a byte per run). `memory_leak.rs` proves the check fails
//! on a one-byte leak per tool call.
//!
//! A binary of its own: the counting allocator sees the whole process, so no other test may
//! run beside it. `EXECUTUS_LOAD_RUNS` sets the wave size (default 2,000; the reliability
//! suite runs 10,000), `EXECUTUS_MEMORY_WAVES` the waves after the warm-up (default 4).

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
async fn the_heap_returns_to_its_baseline_after_each_wave_of_runs() {
    memory_waves::heap_returns_to_baseline(&|| HEAP.allocated(), false).await;
}
