//! The byte form of [`Message`]: see the module docs of [`crate::wire`].

use super::*;

const TAG_HELLO: u8 = 1;
const TAG_PING: u8 = 2;
const TAG_PONG: u8 = 3;
const TAG_INVITE: u8 = 4;
const TAG_INVITE_REPLY: u8 = 5;
const TAG_INVITE_WITHDRAWN: u8 = 6;
const TAG_JOIN_REQUEST: u8 = 7;
const TAG_JOIN_DENIED: u8 = 8;
const TAG_VIEW: u8 = 9;
const TAG_GET_HEADERS: u8 = 10;
const TAG_HEADERS: u8 = 11;
const TAG_GET_BLOCK: u8 = 12;
const TAG_BLOCK_DATA: u8 = 13;
const TAG_BLOCK_NOT_FOUND: u8 = 14;
const TAG_TX_QUERY: u8 = 15;
const TAG_TX_ANSWER: u8 = 16;
const TAG_BLOCK_STORED: u8 = 17;
const TAG_NEW_BLOCK: u8 = 18;
const TAG_BLOCK_ANNOUNCE: u8 = 19;
const TAG_SHARD_HELD: u8 = 20;
const TAG_HOLD_CHALLENGE: u8 = 21;
const TAG_HOLD_PROOF: u8 = 22;
const TAG_HOLDER_FAULTY: u8 = 23;

/// Encodes a message. Fails only if the message breaks a limit (too many headers, a block or
/// address too long, a whole message over [`MAX_MESSAGE_BYTES`]): what this returns always
/// decodes.
pub fn encode(message: &Message) -> Result<Vec<u8>, WireError> {
    let mut w = Writer(Vec::with_capacity(encoded_len_hint(message)));
    w.u8(WIRE_VERSION);
    w.message(message)?;
    if w.0.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge {
            len: w.0.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    Ok(w.0)
}

/// The encoded size of a message in bytes, as [`encode`] would produce it (for byte counting
/// in simulations without encoding). Errors as [`encode`].
pub fn encoded_len(message: &Message) -> Result<usize, WireError> {
    // Large payloads dominate; encoding small messages is cheap. Count without copying blocks.
    match message {
        Message::BlockData { request_id, block } => {
            check_len("block", block.len(), MAX_BLOCK_BYTES)?;
            Ok(2 + varint_len(*request_id) + varint_len(block.len() as u64) + block.len())
        }
        Message::NewBlock { block } => {
            check_len("block", block.len(), MAX_BLOCK_BYTES)?;
            Ok(2 + varint_len(block.len() as u64) + block.len())
        }
        other => encode(other).map(|bytes| bytes.len()),
    }
}

/// Decodes one message, refusing anything malformed, over a limit, or followed by extra bytes.
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u8("version")?;
    if version != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let message = r.message()?;
    let left = bytes.len() - r.pos;
    if left != 0 {
        return Err(WireError::TrailingBytes(left));
    }
    Ok(message)
}

fn encoded_len_hint(message: &Message) -> usize {
    match message {
        Message::BlockData { block, .. } => block.len() + 16,
        Message::Headers { headers, .. } => headers.len() * 80 + 16,
        Message::TxAnswer {
            answer: TxAnswerBody::Found { branch, tx, .. },
            ..
        } => 64 + branch.len() * 32 + 80 + tx.len() + 8,
        _ => 64,
    }
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), WireError> {
    if len > max {
        return Err(WireError::LimitExceeded { what, len, max });
    }
    Ok(())
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn bool(&mut self, v: bool) {
        self.0.push(v as u8);
    }
    fn bytes32(&mut self, v: &[u8; 32]) {
        self.0.extend_from_slice(v);
    }
    fn len_prefixed(&mut self, what: &'static str, v: &[u8], max: usize) -> Result<(), WireError> {
        check_len(what, v.len(), max)?;
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        Ok(())
    }
    fn record(&mut self, r: &NodeRecord) {
        self.varint(r.blocks_served);
        self.varint(r.capacity_bytes);
        self.varint(r.segment as u64);
        self.varint(r.device);
        self.bool(r.archive);
    }
    fn stamp(&mut self, s: &Option<ViewStamp>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.stamp_fields(s);
            }
        }
    }
    fn stamp_fields(&mut self, s: &ViewStamp) {
        self.bytes32(&s.cluster.0);
        self.varint(s.epoch);
        self.varint(s.members as u64);
        self.0.extend_from_slice(&s.digest.to_le_bytes());
    }
    fn header(&mut self, h: &Header) {
        self.0.extend_from_slice(&h.encode());
    }

    fn message(&mut self, m: &Message) -> Result<(), WireError> {
        match m {
            Message::Hello {
                record,
                cluster,
                open_slots,
            } => {
                self.u8(TAG_HELLO);
                self.record(record);
                self.opt_cluster(cluster);
                self.varint(*open_slots as u64);
            }
            Message::Ping {
                nonce,
                stamp,
                shard,
            } => {
                self.u8(TAG_PING);
                self.varint(*nonce);
                self.stamp(stamp);
                match shard {
                    None => self.u8(0),
                    Some(r) => {
                        self.u8(1);
                        self.varint(r.held_blocks as u64);
                        self.varint(r.missing_blocks as u64);
                        self.varint(r.stored_bytes);
                    }
                }
            }
            Message::Pong { nonce, stamp } => {
                self.u8(TAG_PONG);
                self.varint(*nonce);
                self.stamp(stamp);
            }
            Message::Invite {
                invite_id,
                address,
                record,
                cluster,
            } => {
                self.u8(TAG_INVITE);
                self.varint(*invite_id);
                self.len_prefixed("address", address.as_bytes(), MAX_ADDRESS_BYTES)?;
                self.record(record);
                self.opt_cluster(cluster);
            }
            Message::InviteReply {
                invite_id,
                accept,
                address,
                record,
            } => {
                self.u8(TAG_INVITE_REPLY);
                self.varint(*invite_id);
                self.bool(*accept);
                self.len_prefixed("address", address.as_bytes(), MAX_ADDRESS_BYTES)?;
                self.record(record);
            }
            Message::InviteWithdrawn { invite_id } => {
                self.u8(TAG_INVITE_WITHDRAWN);
                self.varint(*invite_id);
            }
            Message::JoinRequest {
                request_id,
                address,
                record,
            } => {
                self.u8(TAG_JOIN_REQUEST);
                self.varint(*request_id);
                self.len_prefixed("address", address.as_bytes(), MAX_ADDRESS_BYTES)?;
                self.record(record);
            }
            Message::JoinDenied { request_id } => {
                self.u8(TAG_JOIN_DENIED);
                self.varint(*request_id);
            }
            Message::View(view) => {
                self.u8(TAG_VIEW);
                self.bytes32(&view.cluster.0);
                self.bytes32(&view.genesis.proposer.0);
                self.varint(view.genesis.generation);
                check_len("founders", view.genesis.founders.len(), MAX_VIEW_MEMBERS)?;
                self.varint(view.genesis.founders.len() as u64);
                for founder in &view.genesis.founders {
                    self.bytes32(&founder.0);
                }
                self.varint(view.epoch);
                check_len("members", view.members.len(), MAX_VIEW_MEMBERS)?;
                self.varint(view.members.len() as u64);
                for member in &view.members {
                    self.bytes32(&member.id.0);
                    self.len_prefixed("address", member.address.as_bytes(), MAX_ADDRESS_BYTES)?;
                    self.varint(member.segment as u64);
                    self.varint(member.capacity_bytes);
                    self.varint(member.device);
                }
                self.varint(view.expires_in_ms);
            }
            Message::GetHeaders {
                request_id,
                start_height,
                max_count,
            } => {
                self.u8(TAG_GET_HEADERS);
                self.varint(*request_id);
                self.varint(*start_height as u64);
                self.varint(*max_count as u64);
            }
            Message::Headers {
                request_id,
                start_height,
                tip_height,
                headers,
            } => {
                self.u8(TAG_HEADERS);
                self.varint(*request_id);
                self.varint(*start_height as u64);
                self.varint(*tip_height as u64);
                check_len("headers", headers.len(), MAX_HEADERS_PER_MESSAGE)?;
                self.varint(headers.len() as u64);
                for header in headers {
                    self.header(header);
                }
            }
            Message::GetBlock {
                request_id,
                block_hash,
            } => {
                self.u8(TAG_GET_BLOCK);
                self.varint(*request_id);
                self.bytes32(&block_hash.0);
            }
            Message::BlockData { request_id, block } => {
                self.u8(TAG_BLOCK_DATA);
                self.varint(*request_id);
                self.len_prefixed("block", block, MAX_BLOCK_BYTES)?;
            }
            Message::BlockNotFound { request_id } => {
                self.u8(TAG_BLOCK_NOT_FOUND);
                self.varint(*request_id);
            }
            Message::TxQuery {
                request_id,
                txid,
                block_hint,
            } => {
                self.u8(TAG_TX_QUERY);
                self.varint(*request_id);
                self.bytes32(&txid.0);
                match block_hint {
                    None => self.u8(0),
                    Some(hash) => {
                        self.u8(1);
                        self.bytes32(&hash.0);
                    }
                }
            }
            Message::TxAnswer { request_id, answer } => {
                self.u8(TAG_TX_ANSWER);
                self.varint(*request_id);
                match answer {
                    TxAnswerBody::Found {
                        block_hash,
                        height,
                        pos,
                        branch,
                        header,
                        tx,
                    } => {
                        self.u8(0);
                        self.bytes32(&block_hash.0);
                        self.varint(*height as u64);
                        self.varint(*pos as u64);
                        check_len("branch", branch.len(), MAX_BRANCH_LEN)?;
                        self.varint(branch.len() as u64);
                        for hash in branch {
                            self.bytes32(&hash.0);
                        }
                        match header {
                            None => self.u8(0),
                            Some(h) => {
                                self.u8(1);
                                self.header(h);
                            }
                        }
                        self.len_prefixed("transaction", tx, MAX_TX_BYTES)?;
                    }
                    TxAnswerBody::NotFound => self.u8(1),
                    TxAnswerBody::Unavailable => self.u8(2),
                }
            }
            Message::BlockStored { block_hash, height } => {
                self.u8(TAG_BLOCK_STORED);
                self.bytes32(&block_hash.0);
                self.varint(*height as u64);
            }
            Message::NewBlock { block } => {
                self.u8(TAG_NEW_BLOCK);
                self.len_prefixed("block", block, MAX_BLOCK_BYTES)?;
            }
            Message::BlockAnnounce { header } => {
                self.u8(TAG_BLOCK_ANNOUNCE);
                self.header(header);
            }
            Message::ShardHeld { view } => {
                self.u8(TAG_SHARD_HELD);
                self.stamp_fields(view);
            }
            Message::HoldChallenge {
                request_id,
                block_hash,
                nonce,
                offset,
                length,
            } => {
                self.u8(TAG_HOLD_CHALLENGE);
                self.varint(*request_id);
                self.bytes32(&block_hash.0);
                self.0.extend_from_slice(&nonce.to_le_bytes());
                self.varint(u64::from(*offset));
                check_len(
                    "challenge range",
                    *length as usize,
                    MAX_CHALLENGE_RANGE_BYTES as usize,
                )?;
                self.varint(u64::from(*length));
            }
            Message::HoldProof { request_id, proof } => {
                self.u8(TAG_HOLD_PROOF);
                self.varint(*request_id);
                match proof {
                    None => self.u8(0),
                    Some(digest) => {
                        self.u8(1);
                        self.bytes32(&digest.0);
                    }
                }
            }
            Message::HolderFaulty { cluster, member } => {
                self.u8(TAG_HOLDER_FAULTY);
                self.bytes32(&cluster.0);
                self.bytes32(&member.0);
            }
        }
        Ok(())
    }

    fn opt_cluster(&mut self, c: &Option<ClusterId>) {
        match c {
            None => self.u8(0),
            Some(c) => {
                self.u8(1);
                self.bytes32(&c.0);
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(WireError::Truncated { what })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    fn varint(&mut self, what: &'static str) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = self.u8(what)?;
            let low = (byte & 0x7f) as u64;
            if i == 9 && low > 1 {
                return Err(WireError::BadVarint { what });
            }
            value |= low << (7 * i);
            if byte & 0x80 == 0 {
                // Refuse non-minimal encodings so each message has one byte form.
                if i > 0 && byte == 0 {
                    return Err(WireError::BadVarint { what });
                }
                return Ok(value);
            }
        }
        Err(WireError::BadVarint { what })
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let v = self.varint(what)?;
        u32::try_from(v).map_err(|_| WireError::InvalidValue { what, value: v })
    }
    fn bool(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(WireError::InvalidValue {
                what,
                value: v as u64,
            }),
        }
    }
    fn bytes32(&mut self, what: &'static str) -> Result<[u8; 32], WireError> {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.take(32, what)?);
        Ok(out)
    }
    /// A count of items of at least `min_item_bytes` each, checked against `max` and against
    /// what the bytes left could hold before anything is allocated for it: a few bytes cannot
    /// make the decoder reserve room for 2,000 headers.
    fn count(
        &mut self,
        what: &'static str,
        max: usize,
        min_item_bytes: usize,
    ) -> Result<usize, WireError> {
        let n = self.varint(what)?;
        if n > max as u64 {
            return Err(WireError::LimitExceeded {
                what,
                len: usize::try_from(n).unwrap_or(usize::MAX),
                max,
            });
        }
        let left = self.bytes.len() - self.pos;
        if n > (left / min_item_bytes.max(1)) as u64 {
            return Err(WireError::Truncated { what });
        }
        Ok(n as usize)
    }
    fn len_prefixed(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let n = self.count(what, max, 1)?;
        self.take(n, what)
    }
    fn address(&mut self) -> Result<String, WireError> {
        let bytes = self.len_prefixed("address", MAX_ADDRESS_BYTES)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError::InvalidUtf8)
    }
    fn record(&mut self) -> Result<NodeRecord, WireError> {
        Ok(NodeRecord {
            blocks_served: self.varint("blocks_served")?,
            capacity_bytes: self.varint("capacity_bytes")?,
            segment: self.u32("segment")?,
            device: self.varint("device")?,
            archive: self.bool("archive")?,
        })
    }
    fn option_flag(&mut self, what: &'static str) -> Result<bool, WireError> {
        self.bool(what)
    }
    fn opt_cluster(&mut self) -> Result<Option<ClusterId>, WireError> {
        Ok(if self.option_flag("cluster flag")? {
            Some(ClusterId(self.bytes32("cluster")?))
        } else {
            None
        })
    }
    fn stamp(&mut self) -> Result<Option<ViewStamp>, WireError> {
        if !self.option_flag("stamp flag")? {
            return Ok(None);
        }
        self.stamp_fields().map(Some)
    }
    fn stamp_fields(&mut self) -> Result<ViewStamp, WireError> {
        let cluster = ClusterId(self.bytes32("stamp cluster")?);
        let epoch = self.varint("stamp epoch")?;
        let members = self.u32("stamp members")?;
        let digest_bytes: [u8; 8] = self
            .take(8, "stamp digest")?
            .try_into()
            .expect("take(8) returns 8 bytes");
        Ok(ViewStamp {
            cluster,
            epoch,
            members,
            digest: u64::from_le_bytes(digest_bytes),
        })
    }
    fn shard_report(&mut self) -> Result<Option<ShardReport>, WireError> {
        Ok(match self.bool("shard")? {
            false => None,
            true => Some(ShardReport {
                held_blocks: self.u32("held_blocks")?,
                missing_blocks: self.u32("missing_blocks")?,
                stored_bytes: self.varint("stored_bytes")?,
            }),
        })
    }
    fn header(&mut self) -> Result<Header, WireError> {
        let bytes = self.take(80, "header")?;
        Ok(Header::decode(bytes).expect("take(80) returns 80 bytes"))
    }

    fn message(&mut self) -> Result<Message, WireError> {
        let tag = self.u8("tag")?;
        Ok(match tag {
            TAG_HELLO => Message::Hello {
                record: self.record()?,
                cluster: self.opt_cluster()?,
                open_slots: self.u32("open_slots")?,
            },
            TAG_PING => Message::Ping {
                nonce: self.varint("nonce")?,
                stamp: self.stamp()?,
                shard: self.shard_report()?,
            },
            TAG_PONG => Message::Pong {
                nonce: self.varint("nonce")?,
                stamp: self.stamp()?,
            },
            TAG_INVITE => Message::Invite {
                invite_id: self.varint("invite_id")?,
                address: self.address()?,
                record: self.record()?,
                cluster: self.opt_cluster()?,
            },
            TAG_INVITE_REPLY => Message::InviteReply {
                invite_id: self.varint("invite_id")?,
                accept: self.bool("accept")?,
                address: self.address()?,
                record: self.record()?,
            },
            TAG_INVITE_WITHDRAWN => Message::InviteWithdrawn {
                invite_id: self.varint("invite_id")?,
            },
            TAG_JOIN_REQUEST => Message::JoinRequest {
                request_id: self.varint("request_id")?,
                address: self.address()?,
                record: self.record()?,
            },
            TAG_JOIN_DENIED => Message::JoinDenied {
                request_id: self.varint("request_id")?,
            },
            TAG_VIEW => {
                let cluster = ClusterId(self.bytes32("cluster")?);
                let proposer = NodeId(self.bytes32("proposer")?);
                let generation = self.varint("generation")?;
                let n = self.count("founders", MAX_VIEW_MEMBERS, 32)?;
                let mut founders = Vec::with_capacity(n);
                for _ in 0..n {
                    founders.push(NodeId(self.bytes32("founder")?));
                }
                let epoch = self.varint("epoch")?;
                // A member: its id, an address, a segment, a capacity and a device (one byte
                // each at least).
                let n = self.count("members", MAX_VIEW_MEMBERS, 32 + 4)?;
                let mut members = Vec::with_capacity(n);
                for _ in 0..n {
                    members.push(MemberInfo {
                        id: NodeId(self.bytes32("member")?),
                        address: self.address()?,
                        segment: self.u32("segment")?,
                        capacity_bytes: self.varint("capacity_bytes")?,
                        device: self.varint("device")?,
                    });
                }
                Message::View(View {
                    cluster,
                    genesis: ClusterGenesis {
                        proposer,
                        generation,
                        founders,
                    },
                    epoch,
                    members,
                    expires_in_ms: self.varint("expires_in_ms")?,
                })
            }
            TAG_GET_HEADERS => Message::GetHeaders {
                request_id: self.varint("request_id")?,
                start_height: self.u32("start_height")?,
                max_count: self.u32("max_count")?,
            },
            TAG_HEADERS => {
                let request_id = self.varint("request_id")?;
                let start_height = self.u32("start_height")?;
                let tip_height = self.u32("tip_height")?;
                let n = self.count("headers", MAX_HEADERS_PER_MESSAGE, 80)?;
                let mut headers = Vec::with_capacity(n);
                for _ in 0..n {
                    headers.push(self.header()?);
                }
                Message::Headers {
                    request_id,
                    start_height,
                    tip_height,
                    headers,
                }
            }
            TAG_GET_BLOCK => Message::GetBlock {
                request_id: self.varint("request_id")?,
                block_hash: BlockHash(self.bytes32("block_hash")?),
            },
            TAG_BLOCK_DATA => Message::BlockData {
                request_id: self.varint("request_id")?,
                block: self.len_prefixed("block", MAX_BLOCK_BYTES)?.to_vec(),
            },
            TAG_BLOCK_NOT_FOUND => Message::BlockNotFound {
                request_id: self.varint("request_id")?,
            },
            TAG_TX_QUERY => Message::TxQuery {
                request_id: self.varint("request_id")?,
                txid: Hash256(self.bytes32("txid")?),
                block_hint: if self.option_flag("block_hint flag")? {
                    Some(BlockHash(self.bytes32("block_hint")?))
                } else {
                    None
                },
            },
            TAG_TX_ANSWER => {
                let request_id = self.varint("request_id")?;
                let kind = self.u8("answer kind")?;
                let answer = match kind {
                    0 => {
                        let block_hash = BlockHash(self.bytes32("block_hash")?);
                        let height = self.u32("height")?;
                        let pos = self.u32("pos")?;
                        let n = self.count("branch", MAX_BRANCH_LEN, 32)?;
                        let mut branch = Vec::with_capacity(n);
                        for _ in 0..n {
                            branch.push(Hash256(self.bytes32("branch hash")?));
                        }
                        let header = if self.option_flag("header flag")? {
                            Some(self.header()?)
                        } else {
                            None
                        };
                        let tx = self.len_prefixed("transaction", MAX_TX_BYTES)?.to_vec();
                        TxAnswerBody::Found {
                            block_hash,
                            height,
                            pos,
                            branch,
                            header,
                            tx,
                        }
                    }
                    1 => TxAnswerBody::NotFound,
                    2 => TxAnswerBody::Unavailable,
                    v => {
                        return Err(WireError::InvalidValue {
                            what: "answer kind",
                            value: v as u64,
                        })
                    }
                };
                Message::TxAnswer { request_id, answer }
            }
            TAG_BLOCK_STORED => Message::BlockStored {
                block_hash: BlockHash(self.bytes32("block_hash")?),
                height: self.u32("height")?,
            },
            TAG_NEW_BLOCK => Message::NewBlock {
                block: self.len_prefixed("block", MAX_BLOCK_BYTES)?.to_vec(),
            },
            TAG_BLOCK_ANNOUNCE => Message::BlockAnnounce {
                header: self.header()?,
            },
            TAG_SHARD_HELD => Message::ShardHeld {
                view: self.stamp_fields()?,
            },
            TAG_HOLD_CHALLENGE => {
                let request_id = self.varint("request_id")?;
                let block_hash = BlockHash(self.bytes32("block_hash")?);
                let nonce_bytes: [u8; 8] = self
                    .take(8, "nonce")?
                    .try_into()
                    .expect("take(8) returns 8 bytes");
                let offset = self.u32("offset")?;
                let length = self.u32("length")?;
                if length > MAX_CHALLENGE_RANGE_BYTES {
                    return Err(WireError::LimitExceeded {
                        what: "challenge range",
                        len: length as usize,
                        max: MAX_CHALLENGE_RANGE_BYTES as usize,
                    });
                }
                Message::HoldChallenge {
                    request_id,
                    block_hash,
                    nonce: u64::from_le_bytes(nonce_bytes),
                    offset,
                    length,
                }
            }
            TAG_HOLD_PROOF => Message::HoldProof {
                request_id: self.varint("request_id")?,
                proof: if self.option_flag("proof flag")? {
                    Some(Hash256(self.bytes32("proof")?))
                } else {
                    None
                },
            },
            TAG_HOLDER_FAULTY => Message::HolderFaulty {
                cluster: ClusterId(self.bytes32("cluster")?),
                member: NodeId(self.bytes32("member")?),
            },
            other => return Err(WireError::UnknownTag(other)),
        })
    }
}
