//! The checked-in seed corpus is what `shoal_fuzz::seeds` makes: an encoder that changed
//! without the seeds being written again fails here, with the command that writes them.

use std::path::Path;

#[test]
fn checked_in_seeds_are_the_generated_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    for target in shoal_fuzz::TARGETS {
        let seeds = shoal_fuzz::seeds::seeds(target.name);
        assert!(!seeds.is_empty(), "{} has seeds", target.name);
        for (name, bytes) in seeds {
            let path = root.join(target.name).join(&name);
            let on_disk = std::fs::read(&path).unwrap_or_default();
            assert!(
                on_disk == bytes,
                "{} differs from the generated seed: run `cargo run -p shoal-fuzz --example write-seeds`",
                path.display()
            );
        }
    }
}
