//! `cargo +nightly fuzz run relay_identity`: the body is `shoal_fuzz::relay::relay_identity` (see FUZZING.md).
#![no_main]

#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &shoal_fuzz::alloc::COUNTING;

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::relay::relay_identity(data));
