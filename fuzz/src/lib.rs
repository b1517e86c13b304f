//! What the fuzz targets share: the allocation limit and a way to cut one
//! input into the chunks a socket or an HTTP body would deliver.
//!
//! The targets run without a sanitizer (`cargo fuzz run -s none` on the
//! stable toolchain), and libFuzzer's `-malloc_limit_mb` needs a sanitizer's
//! malloc hooks. So the limit is enforced here: any single allocation over
//! [`MALLOC_LIMIT`] aborts, which libFuzzer reports as a crash and saves the
//! input, as it would with `-malloc_limit_mb=512`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

/// The largest single allocation a target may make (the `-malloc_limit_mb`
/// that `fuzz/ci` and docs/fuzzing.md pass).
pub const MALLOC_LIMIT: usize = 512 << 20;

struct Limited;

fn over_limit(size: usize) -> ! {
    // No allocation here: format into a stack buffer.
    let mut buf = [0u8; 96];
    let mut w = &mut buf[..];
    let _ = writeln!(w, "fuzz: allocation of {size} bytes is over the limit");
    let used = 96 - w.len();
    let _ = std::io::stderr().write_all(&buf[..used]);
    std::process::abort()
}

// SAFETY: forwards to the system allocator unchanged; only refuses sizes.
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MALLOC_LIMIT {
            over_limit(layout.size());
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MALLOC_LIMIT {
            over_limit(layout.size());
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MALLOC_LIMIT {
            over_limit(new_size);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Limited = Limited;

/// Splits `data` into a chunk-size byte and the rest: the first byte (1 to
/// 256) says how long each chunk of the rest is, so the fuzzer explores
/// where reads split a stream. Empty input: one empty chunk size of 1.
pub fn chunked(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&n, rest)) => (usize::from(n) + 1, rest),
        None => (1, data),
    }
}
