//! The peer directory: nodes of one chain find each other through a relay (S1: discovery of
//! ordinary peers).
//!
//! Shoal's directory protocol [`PROTOCOL_NAME`], keyed by [`namespace`] so that nodes of
//! different chains never see each other (it costs a page almost no code, as it rides on the
//! request-response codec the page has anyway): a node that holds a circuit reservation on the
//! relay is listed; the request is the namespace ([`encode_lookup`]), the response up to
//! [`MAX_ENTRIES`] peer ids holding a reservation ([`encode_peers`]), at most
//! [`MAX_MESSAGE_BYTES`]. The asker reaches each through the same relay at
//! `<relay address>/p2p-circuit/p2p/<peer id>`. Both decoders are bounded. (The relay once ran a
//! libp2p rendezvous server beside it; nothing used it, and its defaults let a stranger park
//! 10,000 registrations of up to 1 MiB for 72 hours, so it is gone.)

/// Longest network name accepted by [`namespace`].
pub const MAX_NETWORK_NAME_BYTES: usize = 32;

/// The directory namespace for the chain called `network` (`"regtest"`, `"signet"`, …).
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

/// Shoal's directory protocol: request = namespace, response = peer ids.
pub const PROTOCOL_NAME: &str = "/shoal/directory/1.0.0";
/// Most peer ids in one answer.
pub const MAX_ENTRIES: usize = 64;
/// Longest peer id accepted (multihash of an inlined ed25519 key: 38 bytes; room to spare).
pub const MAX_PEER_ID_BYTES: usize = 64;
/// Largest directory message, either way (an answer of [`MAX_ENTRIES`] longest ids): what a
/// directory codec need read.
pub const MAX_MESSAGE_BYTES: usize = MAX_ENTRIES * (1 + MAX_PEER_ID_BYTES);

/// A directory message that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    #[error("the namespace is not a valid one")]
    BadNamespace,
    #[error("more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("an entry is truncated or too long")]
    BadEntry,
    #[error("an entry is not a peer id")]
    BadPeerId,
}

/// The protocol for a `request_response::Behaviour` with [`crate::FrameCodec`].
pub fn protocol() -> libp2p::StreamProtocol {
    libp2p::StreamProtocol::new(PROTOCOL_NAME)
}

/// The lookup request for the chain called `network`.
pub fn encode_lookup(network: &str) -> Option<Vec<u8>> {
    namespace(network).map(String::into_bytes)
}

/// The namespace a lookup asks about.
pub fn decode_lookup(bytes: &[u8]) -> Result<String, DirectoryError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DirectoryError::BadNamespace)?;
    let network = text
        .strip_prefix("shoal/")
        .ok_or(DirectoryError::BadNamespace)?;
    namespace(network).ok_or(DirectoryError::BadNamespace)
}

/// The answer: each peer id as one length byte and its bytes; at most [`MAX_ENTRIES`] are
/// written (the rest are left out).
pub fn encode_peers(peers: &[libp2p::PeerId]) -> Vec<u8> {
    let mut out = Vec::new();
    for peer in peers.iter().take(MAX_ENTRIES) {
        let bytes = peer.to_bytes();
        debug_assert!(bytes.len() <= MAX_PEER_ID_BYTES);
        out.push(bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out
}

/// Reads an answer (bounded: at most [`MAX_ENTRIES`] ids of at most [`MAX_PEER_ID_BYTES`]).
pub fn decode_peers(mut bytes: &[u8]) -> Result<Vec<libp2p::PeerId>, DirectoryError> {
    let mut peers = Vec::new();
    while let Some((&len, rest)) = bytes.split_first() {
        if peers.len() == MAX_ENTRIES {
            return Err(DirectoryError::TooManyEntries);
        }
        let len = len as usize;
        if len == 0 || len > MAX_PEER_ID_BYTES || rest.len() < len {
            return Err(DirectoryError::BadEntry);
        }
        let peer =
            libp2p::PeerId::from_bytes(&rest[..len]).map_err(|_| DirectoryError::BadPeerId)?;
        peers.push(peer);
        bytes = &rest[len..];
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn lookups_and_answers_round_trip() {
        let lookup = encode_lookup("regtest").unwrap();
        assert_eq!(decode_lookup(&lookup).unwrap(), "shoal/regtest");
        assert_eq!(encode_lookup("Bad/Name"), None);
        assert_eq!(decode_lookup(b"regtest"), Err(DirectoryError::BadNamespace));
        assert_eq!(decode_lookup(b"shoal/"), Err(DirectoryError::BadNamespace));
        let peers: Vec<libp2p::PeerId> = (0..3).map(|_| libp2p::PeerId::random()).collect();
        assert_eq!(decode_peers(&encode_peers(&peers)).unwrap(), peers);
        assert_eq!(decode_peers(&[]).unwrap(), vec![]);
    }

    #[test]
    fn answers_are_bounded() {
        let many: Vec<libp2p::PeerId> = (0..MAX_ENTRIES + 5)
            .map(|_| libp2p::PeerId::random())
            .collect();
        let encoded = encode_peers(&many);
        assert!(encoded.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(decode_peers(&encoded).unwrap().len(), MAX_ENTRIES);
        let mut over = encoded;
        over.extend(encode_peers(&many[..1]));
        assert_eq!(decode_peers(&over), Err(DirectoryError::TooManyEntries));
        assert_eq!(decode_peers(&[200, 1, 2]), Err(DirectoryError::BadEntry));
        assert_eq!(decode_peers(&[3, 1, 2]), Err(DirectoryError::BadEntry));
        assert_eq!(decode_peers(&[0]), Err(DirectoryError::BadEntry));
        assert_eq!(
            decode_peers(&[2, 0xff, 0xff]),
            Err(DirectoryError::BadPeerId)
        );
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(peers) = decode_peers(&bytes) {
                prop_assert!(peers.len() <= MAX_ENTRIES);
            }
            let _ = decode_lookup(&bytes);
        }
    }

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
