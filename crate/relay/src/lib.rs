//! `shoal-relay`: Shoal's native relay (`serve`) and the offline chain tools.
//!
//! The library holds the relay and the block-file reader so that the binary's commands,
//! integration tests and native clients share them; `main.rs` is a thin command line.

pub mod blockfile;
pub mod serve;
