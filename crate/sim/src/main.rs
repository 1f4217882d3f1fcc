//! `shoal-sim`: runs the simulator from the command line.
fn main() {}
