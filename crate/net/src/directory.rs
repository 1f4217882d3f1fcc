//! The peer directory's namespace: nodes of one chain find each other (S1: discovery of ordinary
//! peers through relays).
//!
//! The relay runs a libp2p rendezvous server; nodes register under [`namespace`] of their chain
//! and discover the others registered there. Nodes of different chains never see each other.

/// Longest network name accepted by [`namespace`]; rendezvous namespaces are limited to 255 bytes.
pub const MAX_NETWORK_NAME_BYTES: usize = 32;

/// The rendezvous namespace for the chain called `network` (`"regtest"`, `"signet"`, …).
///
/// Returns `None` for a name that is empty, too long, or not lowercase ASCII letters and digits,
/// so a caller cannot build a namespace that two ends would spell differently.
pub fn namespace(network: &str) -> Option<String> {
    let valid = !network.is_empty()
        && network.len() <= MAX_NETWORK_NAME_BYTES
        && network
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    valid.then(|| format!("shoal/{network}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_per_network() {
        assert_eq!(namespace("regtest").as_deref(), Some("shoal/regtest"));
        assert_ne!(namespace("regtest"), namespace("signet"));
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(namespace(""), None);
        assert_eq!(namespace("RegTest"), None);
        assert_eq!(namespace("reg/test"), None);
        assert_eq!(namespace(&"a".repeat(MAX_NETWORK_NAME_BYTES + 1)), None);
    }
}
