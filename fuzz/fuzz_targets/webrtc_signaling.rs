//! `cargo +nightly fuzz run webrtc_signaling`: the body is `shoal_fuzz::net::webrtc_signaling` (see FUZZING.md).
#![no_main]

#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &shoal_fuzz::alloc::COUNTING;

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::net::webrtc_signaling(data));
