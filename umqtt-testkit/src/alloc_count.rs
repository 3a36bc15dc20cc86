//! A global allocator that counts allocations per thread, for the "nothing allocated per
//! message" tests. Install it in a test binary:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: umqtt_testkit::alloc_count::CountingAllocator =
//!     umqtt_testkit::alloc_count::CountingAllocator;
//! ```
//!
//! and read [`allocations`] before and after the measured part. Counting per thread keeps
//! the test harness, tests running in parallel and helper threads out of the measurement.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Wraps `System`, counting every `alloc`, `alloc_zeroed` and `realloc` of the calling
/// thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

thread_local! {
    // `const` and `Cell<u64>`: no lazy initialisation and no destructor, so the allocator can
    // use it at any time without allocating or recursing.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

/// Allocations made by the current thread so far (0 unless [`CountingAllocator`] is the
/// global allocator).
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches only a thread-local
// `Cell`.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}
