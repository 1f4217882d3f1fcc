//! `shoal-relay`: the native relay and the offline chain tools.

fn main() {
    println!("shoal-relay: nothing here yet");
}
