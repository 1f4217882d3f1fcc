//! Codec tests: round trips of every message, and hostile input (random, truncated, oversized,
//! over-limit) that must give a typed error, never a panic.

use super::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 32]>().prop_map(NodeId)
}

fn record() -> impl Strategy<Value = NodeRecord> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(blocks_served, capacity_bytes, segment, device, archive)| NodeRecord {
                blocks_served,
                capacity_bytes,
                segment,
                device,
                archive,
            },
        )
}

fn header() -> impl Strategy<Value = Header> {
    (
        any::<i32>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(version, prev, root, time, bits, nonce)| Header {
            version,
            prev_blockhash: BlockHash(prev),
            merkle_root: Hash256(root),
            time,
            bits,
            nonce,
        })
}

fn address() -> impl Strategy<Value = String> {
    "[a-z0-9/.]{0,40}"
}

fn view_stamp() -> impl Strategy<Value = ViewStamp> {
    (any::<[u8; 32]>(), any::<u64>(), any::<u32>(), any::<u64>()).prop_map(
        |(c, epoch, members, digest)| ViewStamp {
            cluster: ClusterId(c),
            epoch,
            members,
            digest,
        },
    )
}

fn shard_report() -> impl Strategy<Value = ShardReport> {
    (any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
        |(held_blocks, missing_blocks, stored_bytes)| ShardReport {
            held_blocks,
            missing_blocks,
            stored_bytes,
        },
    )
}

fn stamp() -> impl Strategy<Value = Option<ViewStamp>> {
    proptest::option::of(view_stamp())
}

fn view() -> impl Strategy<Value = View> {
    (
        any::<[u8; 32]>(),
        node_id(),
        any::<u64>(),
        vec(node_id(), 0..8),
        any::<u64>(),
        vec(
            (
                node_id(),
                address(),
                any::<u32>(),
                any::<u64>(),
                any::<u64>(),
            ),
            0..8,
        ),
        any::<u64>(),
    )
        .prop_map(
            |(c, proposer, generation, founders, epoch, members, expires_in_ms)| View {
                cluster: ClusterId(c),
                genesis: ClusterGenesis {
                    proposer,
                    generation,
                    founders,
                },
                epoch,
                members: members
                    .into_iter()
                    .map(
                        |(id, address, segment, capacity_bytes, device)| MemberInfo {
                            id,
                            address,
                            segment,
                            capacity_bytes,
                            device,
                        },
                    )
                    .collect(),
                expires_in_ms,
            },
        )
}

fn answer() -> impl Strategy<Value = TxAnswerBody> {
    prop_oneof![
        (
            any::<[u8; 32]>(),
            any::<u32>(),
            any::<u32>(),
            vec(any::<[u8; 32]>().prop_map(Hash256), 0..=MAX_BRANCH_LEN),
            proptest::option::of(header()),
            vec(any::<u8>(), 0..300),
        )
            .prop_map(|(h, height, pos, branch, header, tx)| TxAnswerBody::Found {
                block_hash: BlockHash(h),
                height,
                pos,
                branch,
                header,
                tx,
            }),
        Just(TxAnswerBody::NotFound),
        Just(TxAnswerBody::Unavailable),
    ]
}

pub(crate) fn message() -> impl Strategy<Value = Message> {
    let cluster = proptest::option::of(any::<[u8; 32]>().prop_map(ClusterId));
    prop_oneof![
        (record(), cluster.clone(), any::<u32>()).prop_map(|(record, cluster, open_slots)| {
            Message::Hello {
                record,
                cluster,
                open_slots,
            }
        }),
        (any::<u64>(), stamp(), proptest::option::of(shard_report())).prop_map(
            |(nonce, stamp, shard)| Message::Ping {
                nonce,
                stamp,
                shard
            }
        ),
        (any::<u64>(), stamp()).prop_map(|(nonce, stamp)| Message::Pong { nonce, stamp }),
        (any::<u64>(), address(), record(), cluster).prop_map(
            |(invite_id, address, record, cluster)| Message::Invite {
                invite_id,
                address,
                record,
                cluster,
            }
        ),
        (any::<u64>(), any::<bool>(), address(), record()).prop_map(
            |(invite_id, accept, address, record)| Message::InviteReply {
                invite_id,
                accept,
                address,
                record,
            }
        ),
        any::<u64>().prop_map(|invite_id| Message::InviteWithdrawn { invite_id }),
        (any::<u64>(), address(), record()).prop_map(|(request_id, address, record)| {
            Message::JoinRequest {
                request_id,
                address,
                record,
            }
        }),
        any::<u64>().prop_map(|request_id| Message::JoinDenied { request_id }),
        view().prop_map(Message::View),
        (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(
            |(request_id, start_height, max_count)| Message::GetHeaders {
                request_id,
                start_height,
                max_count,
            }
        ),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            vec(header(), 0..20)
        )
            .prop_map(
                |(request_id, start_height, tip_height, headers)| Message::Headers {
                    request_id,
                    start_height,
                    tip_height,
                    headers,
                }
            ),
        (any::<u64>(), any::<[u8; 32]>()).prop_map(|(request_id, h)| Message::GetBlock {
            request_id,
            block_hash: BlockHash(h),
        }),
        (any::<u64>(), vec(any::<u8>(), 0..300))
            .prop_map(|(request_id, block)| Message::BlockData { request_id, block }),
        any::<u64>().prop_map(|request_id| Message::BlockNotFound { request_id }),
        (any::<[u8; 32]>(), any::<u32>()).prop_map(|(h, height)| Message::BlockStored {
            block_hash: BlockHash(h),
            height,
        }),
        vec(any::<u8>(), 0..300).prop_map(|block| Message::NewBlock { block }),
        header().prop_map(|header| Message::BlockAnnounce { header }),
        view_stamp().prop_map(|view| Message::ShardHeld { view }),
        (
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u32>(),
            0..=MAX_CHALLENGE_RANGE_BYTES
        )
            .prop_map(
                |(request_id, h, nonce, offset, length)| Message::HoldChallenge {
                    request_id,
                    block_hash: BlockHash(h),
                    nonce,
                    offset,
                    length,
                }
            ),
        (any::<u64>(), proptest::option::of(any::<[u8; 32]>())).prop_map(|(request_id, proof)| {
            Message::HoldProof {
                request_id,
                proof: proof.map(Hash256),
            }
        }),
        (any::<[u8; 32]>(), node_id()).prop_map(|(c, member)| Message::HolderFaulty {
            cluster: ClusterId(c),
            member,
        }),
        (
            any::<u64>(),
            any::<[u8; 32]>(),
            proptest::option::of(any::<[u8; 32]>())
        )
            .prop_map(|(request_id, txid, hint)| Message::TxQuery {
                request_id,
                txid: Hash256(txid),
                block_hint: hint.map(BlockHash),
            }),
        (any::<u64>(), answer())
            .prop_map(|(request_id, answer)| Message::TxAnswer { request_id, answer }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(m in message()) {
        let bytes = encode(&m).unwrap();
        prop_assert_eq!(encoded_len(&m).unwrap(), bytes.len());
        prop_assert_eq!(decode(&bytes).unwrap(), m);
    }

    #[test]
    fn every_truncation_is_an_error(m in message()) {
        let bytes = encode(&m).unwrap();
        for cut in 0..bytes.len() {
            prop_assert!(decode(&bytes[..cut]).is_err(), "prefix of {} bytes decoded", cut);
        }
    }

    #[test]
    fn trailing_bytes_are_refused(m in message(), extra in vec(any::<u8>(), 1..8)) {
        let mut bytes = encode(&m).unwrap();
        bytes.extend_from_slice(&extra);
        prop_assert!(decode(&bytes).is_err());
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn random_bytes_with_a_valid_prefix_never_panic(tag in 0u8..25, rest in vec(any::<u8>(), 0..600)) {
        let mut bytes = vec![WIRE_VERSION, tag];
        bytes.extend_from_slice(&rest);
        if let Ok(m) = decode(&bytes) {
            // Whatever decodes re-encodes to the same bytes: one byte form per message.
            prop_assert_eq!(encode(&m).unwrap(), bytes);
        }
    }

    #[test]
    fn bit_flips_never_panic(m in message(), at in any::<usize>(), bit in 0u8..8) {
        let mut bytes = encode(&m).unwrap();
        let at = at % bytes.len();
        bytes[at] ^= 1 << bit;
        let _ = decode(&bytes);
    }
}

#[test]
fn oversized_input_is_refused_before_reading() {
    let bytes = vec![0u8; MAX_MESSAGE_BYTES + 1];
    assert_eq!(
        decode(&bytes),
        Err(WireError::TooLarge {
            len: MAX_MESSAGE_BYTES + 1,
            max: MAX_MESSAGE_BYTES
        })
    );
}

#[test]
fn wrong_version_and_unknown_tag_are_typed_errors() {
    assert_eq!(decode(&[9, 1]), Err(WireError::UnsupportedVersion(9)));
    assert_eq!(
        decode(&[WIRE_VERSION, 200]),
        Err(WireError::UnknownTag(200))
    );
    assert!(matches!(decode(&[]), Err(WireError::Truncated { .. })));
}

/// Found by fuzzing (FUZZING.md): a 9-byte `Headers` message claiming 1,271 headers made the
/// decoder reserve room for all of them (about 100 KB) before finding the bytes missing. Every
/// count is now checked against what the bytes left could hold.
#[test]
fn a_count_the_bytes_left_cannot_hold_is_refused_before_allocating() {
    let claims = [
        // Headers (request 4, start 9, tip 42): 1,271 headers of 80 bytes in 3 bytes.
        (
            vec![WIRE_VERSION, 11, 4, 9, 42, 0xf7, 0x09, 0x2a, 0xf7],
            "headers",
        ),
        // A view with 64 founders of 32 bytes, and nothing after.
        (
            [&[WIRE_VERSION, 9][..], &[0; 64], &[0, 64]].concat(),
            "founders",
        ),
        // A found answer with a 32-hash branch and nothing after.
        (
            [&[WIRE_VERSION, 16, 1, 0][..], &[0; 32], &[0, 0, 32]].concat(),
            "branch",
        ),
    ];
    for (bytes, what) in claims {
        assert_eq!(decode(&bytes), Err(WireError::Truncated { what }), "{what}");
    }
    // One whole header more than the count: still decodes as far as the count allows.
    let mut one = vec![WIRE_VERSION, 11, 4, 9, 42, 1];
    one.extend_from_slice(&[0; 80]);
    assert!(decode(&one).is_ok());
}

#[test]
fn a_huge_declared_count_is_refused_without_allocating() {
    // Headers message (request 0, start 0, tip 0) claiming u64::MAX headers.
    let mut bytes = vec![WIRE_VERSION, 11, 0, 0, 0];
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert!(matches!(
        decode(&bytes),
        Err(WireError::LimitExceeded {
            what: "headers",
            ..
        })
    ));
    // A block claiming 5 MB.
    let mut bytes = vec![WIRE_VERSION, 13, 0];
    bytes.extend_from_slice(&[0xc0, 0x96, 0xb1, 0x02]);
    assert!(matches!(
        decode(&bytes),
        Err(WireError::LimitExceeded { what: "block", .. })
    ));
}

#[test]
fn over_limit_messages_do_not_encode() {
    let too_many = Message::Headers {
        request_id: 1,
        start_height: 0,
        tip_height: 0,
        headers: vec![Header::default(); MAX_HEADERS_PER_MESSAGE + 1],
    };
    assert!(matches!(
        encode(&too_many),
        Err(WireError::LimitExceeded {
            what: "headers",
            ..
        })
    ));
    let big_block = Message::BlockData {
        request_id: 1,
        block: vec![0; MAX_BLOCK_BYTES + 1],
    };
    assert!(encode(&big_block).is_err());
    assert!(encoded_len(&big_block).is_err());
    let max_block = Message::BlockData {
        request_id: u64::MAX,
        block: vec![7; MAX_BLOCK_BYTES],
    };
    let bytes = encode(&max_block).unwrap();
    assert!(bytes.len() <= MAX_MESSAGE_BYTES);
    assert_eq!(decode(&bytes).unwrap(), max_block);
}

#[test]
fn a_transaction_answer_over_its_limit_is_refused() {
    // TxAnswer (request 0) Found: block hash, height 0, pos 0, empty branch, no header, then a
    // transaction claiming 5 MB: refused from the length alone.
    let mut bytes = vec![WIRE_VERSION, 16, 0, 0];
    bytes.extend_from_slice(&[9; 32]);
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    bytes.extend_from_slice(&[0xc0, 0x96, 0xb1, 0x02]);
    assert_eq!(
        decode(&bytes),
        Err(WireError::LimitExceeded {
            what: "transaction",
            len: 5_000_000,
            max: MAX_TX_BYTES
        })
    );
    // A transaction that says it is longer than what follows.
    let mut short = bytes[..bytes.len() - 4].to_vec();
    short.extend_from_slice(&[10, 1, 2, 3]);
    assert!(matches!(
        decode(&short),
        Err(WireError::Truncated {
            what: "transaction"
        })
    ));
    let found = |tx: Vec<u8>| Message::TxAnswer {
        request_id: u64::MAX,
        answer: TxAnswerBody::Found {
            block_hash: BlockHash([1; 32]),
            height: u32::MAX,
            pos: u32::MAX,
            branch: vec![Hash256([2; 32]); MAX_BRANCH_LEN],
            header: Some(Header::default()),
            tx,
        },
    };
    assert!(matches!(
        encode(&found(vec![0; MAX_TX_BYTES + 1])),
        Err(WireError::LimitExceeded {
            what: "transaction",
            ..
        })
    ));
    // The largest answer still fits a message.
    let largest = found(vec![5; MAX_TX_BYTES]);
    let bytes = encode(&largest).unwrap();
    assert!(bytes.len() <= MAX_MESSAGE_BYTES);
    assert_eq!(decode(&bytes).unwrap(), largest);
}

#[test]
fn varints_are_minimal_and_bounded() {
    // Non-minimal zero (0x80 0x00) as a JoinDenied request id.
    assert!(matches!(
        decode(&[WIRE_VERSION, 8, 0x80, 0x00]),
        Err(WireError::BadVarint { .. })
    ));
    // Eleven continuation bytes.
    let mut bytes = vec![WIRE_VERSION, 8];
    bytes.extend_from_slice(&[0xff; 11]);
    assert!(matches!(decode(&bytes), Err(WireError::BadVarint { .. })));
    // u64::MAX survives.
    let m = Message::JoinDenied {
        request_id: u64::MAX,
    };
    assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
    // A height above u32 is refused.
    let mut bytes = vec![WIRE_VERSION, 10, 0];
    bytes.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10, 0]);
    assert!(matches!(
        decode(&bytes),
        Err(WireError::InvalidValue { .. })
    ));
}

#[test]
fn ping_is_small() {
    let m = Message::Ping {
        nonce: 1,
        stamp: None,
        shard: None,
    };
    assert_eq!(encode(&m).unwrap().len(), 5);
    // A member's heartbeat with its shard report: stamp and report included, still small.
    let heartbeat = Message::Ping {
        nonce: u64::MAX,
        stamp: Some(ViewStamp {
            cluster: ClusterId([7; 32]),
            epoch: 12,
            members: 8,
            digest: 99,
        }),
        shard: Some(ShardReport {
            held_blocks: 400_000,
            missing_blocks: 3,
            stored_bytes: 40_000_000_000,
        }),
    };
    let bytes = encode(&heartbeat).unwrap();
    assert!(bytes.len() <= 70, "{} bytes", bytes.len());
    assert_eq!(decode(&bytes), Ok(heartbeat));
}

#[test]
fn a_shard_report_with_a_bad_presence_byte_or_an_overlong_count_is_refused() {
    let mut bytes = encode(&Message::Ping {
        nonce: 1,
        stamp: None,
        shard: None,
    })
    .unwrap();
    *bytes.last_mut().unwrap() = 2;
    assert!(matches!(
        decode(&bytes),
        Err(WireError::InvalidValue { what: "shard", .. })
    ));
    // held_blocks one past u32::MAX.
    let mut bytes = encode(&Message::Ping {
        nonce: 1,
        stamp: None,
        shard: Some(ShardReport::default()),
    })
    .unwrap();
    bytes.truncate(bytes.len() - 3);
    bytes.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10, 0, 0]);
    assert!(decode(&bytes).is_err());
    // Cut short inside the report.
    let bytes = encode(&Message::Ping {
        nonce: 1,
        stamp: None,
        shard: Some(ShardReport::default()),
    })
    .unwrap();
    assert!(decode(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn a_block_announcement_is_its_header_and_nothing_else() {
    let header = crate::chain::ChainParams::REGTEST.genesis;
    let bytes = encode(&Message::BlockAnnounce { header }).unwrap();
    // Version, tag, the 80 header bytes: what every light node receives per new block.
    assert_eq!(bytes.len(), 82);
    assert_eq!(decode(&bytes), Ok(Message::BlockAnnounce { header }));
    // Hostile: cut short anywhere, or followed by anything, it is refused with a typed error.
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "{len} bytes decoded");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(decode(&long), Err(WireError::TrailingBytes(1)));
    // A block's worth of bytes behind the tag is not taken for an announcement.
    let mut block = vec![WIRE_VERSION, bytes[1]];
    block.extend(std::iter::repeat_n(0u8, 1_000));
    assert_eq!(decode(&block), Err(WireError::TrailingBytes(920)));
}

#[test]
fn a_shard_held_message_is_a_view_stamp_and_nothing_else() {
    let view = ViewStamp {
        cluster: ClusterId([7; 32]),
        epoch: 5,
        members: 4,
        digest: 0x0123_4567_89ab_cdef,
    };
    let bytes = encode(&Message::ShardHeld { view }).unwrap();
    // Version, tag, cluster, epoch, member count, digest: what each member sends each other
    // member once per view.
    assert_eq!(bytes.len(), 2 + 32 + 1 + 1 + 8);
    assert_eq!(decode(&bytes), Ok(Message::ShardHeld { view }));
    let largest = Message::ShardHeld {
        view: ViewStamp {
            epoch: u64::MAX,
            members: u32::MAX,
            digest: u64::MAX,
            ..view
        },
    };
    assert_eq!(encode(&largest).unwrap().len(), 57);
    assert_eq!(decode(&encode(&largest).unwrap()), Ok(largest));
    // Hostile: cut short anywhere, or followed by anything, it is refused with a typed error.
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "{len} bytes decoded");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(decode(&long), Err(WireError::TrailingBytes(1)));
    // A member count beyond u32 is refused, not wrapped.
    let mut wide = bytes[..35].to_vec();
    wide.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10]);
    wide.extend_from_slice(&[0; 8]);
    assert_eq!(
        decode(&wide),
        Err(WireError::InvalidValue {
            what: "stamp members",
            value: 1 << 32
        })
    );
    // So is a non-minimal epoch (each message has one byte form).
    let mut padded = bytes[..34].to_vec();
    padded.extend_from_slice(&[0x85, 0x00]);
    padded.extend_from_slice(&bytes[35..]);
    assert!(matches!(
        decode(&padded),
        Err(WireError::BadVarint {
            what: "stamp epoch"
        })
    ));
}

#[test]
fn a_hold_challenge_is_small_and_its_range_is_bounded() {
    let challenge_of = |request_id, offset, length| Message::HoldChallenge {
        request_id,
        block_hash: BlockHash([4; 32]),
        nonce: 0x0102_0304_0506_0708,
        offset,
        length,
    };
    let challenge = challenge_of(9, 1_000, 256);
    let bytes = encode(&challenge).unwrap();
    // Version, tag, request id, block hash, nonce (8 raw bytes), offset, length.
    assert_eq!(bytes.len(), 2 + 1 + 32 + 8 + 2 + 2);
    assert_eq!(decode(&bytes), Ok(challenge.clone()));
    let largest = challenge_of(u64::MAX, u32::MAX, MAX_CHALLENGE_RANGE_BYTES);
    assert_eq!(encode(&largest).unwrap().len(), 2 + 10 + 32 + 8 + 5 + 3);
    // Hostile: cut short anywhere, or followed by anything, it is refused with a typed error.
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "{len} bytes decoded");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(decode(&long), Err(WireError::TrailingBytes(1)));
    // A range over the limit neither encodes nor decodes.
    let over = challenge_of(9, 1_000, MAX_CHALLENGE_RANGE_BYTES + 1);
    assert!(matches!(
        encode(&over),
        Err(WireError::LimitExceeded {
            what: "challenge range",
            ..
        })
    ));
    let mut wide = bytes[..bytes.len() - 2].to_vec();
    wide.extend_from_slice(&[0x81, 0x80, 0x04]); // 65,537
    assert_eq!(
        decode(&wide),
        Err(WireError::LimitExceeded {
            what: "challenge range",
            len: MAX_CHALLENGE_RANGE_BYTES as usize + 1,
            max: MAX_CHALLENGE_RANGE_BYTES as usize
        })
    );
    // An offset beyond u32 is refused, not wrapped.
    let mut offset = bytes[..2 + 1 + 32 + 8].to_vec();
    offset.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10, 0x80, 0x02]);
    assert_eq!(
        decode(&offset),
        Err(WireError::InvalidValue {
            what: "offset",
            value: 1 << 32
        })
    );
}

#[test]
fn a_hold_proof_is_a_digest_or_a_no_and_nothing_else() {
    let yes = Message::HoldProof {
        request_id: 3,
        proof: Some(Hash256([0xab; 32])),
    };
    let no = Message::HoldProof {
        request_id: 3,
        proof: None,
    };
    let (yes_bytes, no_bytes) = (encode(&yes).unwrap(), encode(&no).unwrap());
    assert_eq!((yes_bytes.len(), no_bytes.len()), (36, 4));
    assert_eq!(decode(&yes_bytes), Ok(yes));
    assert_eq!(decode(&no_bytes), Ok(no));
    for len in 0..yes_bytes.len() {
        assert!(decode(&yes_bytes[..len]).is_err(), "{len} bytes decoded");
    }
    // A presence byte other than 0 or 1 is refused, so is a "no" carrying a digest.
    let mut bad = no_bytes.clone();
    bad[3] = 2;
    assert_eq!(
        decode(&bad),
        Err(WireError::InvalidValue {
            what: "proof flag",
            value: 2
        })
    );
    let mut padded = no_bytes;
    padded.extend_from_slice(&[0xab; 32]);
    assert_eq!(decode(&padded), Err(WireError::TrailingBytes(32)));
}

#[test]
fn a_holder_faulty_message_is_a_cluster_and_a_member() {
    let message = Message::HolderFaulty {
        cluster: ClusterId([1; 32]),
        member: NodeId([2; 32]),
    };
    let bytes = encode(&message).unwrap();
    assert_eq!(bytes.len(), 66);
    assert_eq!(decode(&bytes), Ok(message));
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "{len} bytes decoded");
    }
    let mut long = bytes;
    long.push(0);
    assert_eq!(decode(&long), Err(WireError::TrailingBytes(1)));
}
