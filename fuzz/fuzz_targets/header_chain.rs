//! `cargo +nightly fuzz run header_chain`: the body is `shoal_fuzz::headers::header_chain` (see FUZZING.md).
#![no_main]

#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &shoal_fuzz::alloc::COUNTING;

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::headers::header_chain(data));
