//! cargo-fuzz builds with `--cfg fuzzing` (see `src/relay.rs`); say so to the cfg checker.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
