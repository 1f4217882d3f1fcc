//! Writes every target's seed corpus to `fuzz/seeds/<target>/` (see `shoal_fuzz::seeds`):
//! `cargo run -p shoal-fuzz --example write-seeds`. The inputs of findings kept beside them
//! (`finding-*`) stay.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    for target in shoal_fuzz::TARGETS {
        let dir = root.join(target.name);
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if !name.starts_with("finding-") {
                std::fs::remove_file(&path)?;
            }
        }
        let seeds = shoal_fuzz::seeds::seeds(target.name);
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes)?;
        }
        println!("{}: {} seeds", target.name, seeds.len());
    }
    Ok(())
}
