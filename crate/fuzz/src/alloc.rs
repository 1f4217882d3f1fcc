//! How much a target allocates, measured by a counting global allocator.
//!
//! A binary that runs targets installs the counting allocator once:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &shoal_fuzz::alloc::COUNTING;
//! ```
//!
//! Without it, [`measure`] counts nothing and every bound holds trivially. The counters are
//! global: a binary must not run targets on several threads at once (libFuzzer runs one input
//! at a time; `tests/targets.rs` runs every target from one test).

use stats_alloc::{Region, StatsAlloc};

/// The counting allocator to install (a wrapper of the system allocator).
pub use stats_alloc::INSTRUMENTED_SYSTEM as COUNTING;

/// Every decoder of network or disk bytes keeps its allocations within this many times the
/// bytes it was given (the worst case is a block of empty transactions: 56 bytes of
/// `Transaction` for each 10 bytes of input), plus [`SLACK_BYTES`].
pub const DECODE_FACTOR: usize = 8;
/// What any decode may allocate whatever its input size (error messages, small tables).
pub const SLACK_BYTES: usize = 64 * 1024;

/// Runs `f` and returns its result with the bytes allocated meanwhile (allocations and the
/// growth of reallocations; what was freed is not subtracted, so this bounds the peak).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let region = Region::new(counting());
    let result = f();
    let stats = region.change();
    let grown = usize::try_from(stats.bytes_reallocated).unwrap_or(0);
    (result, stats.bytes_allocated + grown)
}

/// Runs the decoder `f` on `input_len` bytes and panics if it allocated more than
/// [`DECODE_FACTOR`] times that plus [`SLACK_BYTES`].
pub fn bounded<R>(what: &str, input_len: usize, f: impl FnOnce() -> R) -> R {
    let (result, allocated) = measure(f);
    let limit = DECODE_FACTOR * input_len + SLACK_BYTES;
    assert!(
        allocated <= limit,
        "{what}: decoding {input_len} bytes allocated {allocated} bytes, more than the limit of {limit}"
    );
    result
}

/// Whether the counting allocator is the global one (so [`measure`] measures).
pub fn installed() -> bool {
    let (_, allocated) = measure(|| std::hint::black_box(vec![0u8; 64]));
    allocated >= 64
}

fn counting() -> &'static StatsAlloc<std::alloc::System> {
    &COUNTING
}
