//! A counting global allocator for the tests that assert what allocates: each thread's
//! allocations (and reallocations) are counted in a thread-local, so tests running in parallel
//! do not disturb each other. A test binary that includes this module (`mod counting;`) makes
//! it its global allocator.
#![allow(dead_code)] // each binary uses part of it

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// `System`, counting the allocations (and reallocations) of each thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// Whether each allocation of this thread prints its backtrace ([`traced`]).
    static TRACING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    // `try_with`: a thread being torn down may still allocate; it is not measured.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    // Off while a backtrace is taken and printed: they allocate too.
    if TRACING.try_with(|t| t.replace(false)).unwrap_or(false) {
        eprintln!(
            "allocation:\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        TRACING.set(true);
    }
}

/// `f`, printing the backtrace of each allocation it makes: where they come from.
pub fn traced(f: impl FnOnce()) {
    TRACING.set(true);
    f();
    TRACING.set(false);
}

// SAFETY: every call is forwarded unchanged to `System`; the counter is a `const`-initialised
// thread-local `Cell`, which neither allocates nor reenters the allocator; a backtrace, taken
// only under `traced`, allocates with the flag off, so it does not reenter itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by this thread while `f` runs.
pub fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}
