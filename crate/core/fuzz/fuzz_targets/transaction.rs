//! Fuzzes `shoal_core::chain::fuzz::transaction` (see that function for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_core::chain::fuzz::transaction(data));
