//! Resuming membership after a restart: a reloaded browser tab comes back as the member it
//! was, with the same view, number and shard, instead of being declared offline, replaced and
//! refilled.
//!
//! # Overview
//!
//! With [`Config::resume_membership`](crate::config::Config::resume_membership), every change
//! of this node's role is written to its key/value store (the one that keeps the transaction
//! index, `StorageCommand::WriteKv`) as one record under [`MEMBERSHIP_KEY`]: the view it is a
//! member of and when its cluster id lapses, or a delete once it is an ordinary node again. At
//! start the node lists its records (`ListKv`, as for the index) and, if the record is there,
//! intact, of a view that lists this node and passes [`check_view`], and its cluster id has
//! not lapsed, becomes a member of that view again at once: it dials the members, heartbeats
//! resume, and its stored blocks (listed from storage as always) are its shard, so it fetches
//! only what it lacks. Anything else — a corrupt or oversized record, a lapsed id, a clock that
//! went back (a shell whose clock restarts at 0 cannot tell how long it was away) — deletes the
//! record and the node starts as an ordinary node.
//!
//! If the others declared it offline while it was away, its view is older than theirs: the
//! first heartbeat brings their greater view, which leaves it out, and it re-adds itself if the
//! cluster has room or becomes an ordinary node if it has been replaced (the rules of a healed
//! partition, `node::membership`). Times in the record are on the shell's clock, so the shell
//! must keep one clock across restarts (the page: Unix milliseconds).
//!
//! # Record
//!
//! `version (1) ‖ saved_at_ms (u64 LE) ‖ expires_at_ms (u64 LE) ‖ wire-encoded View message ‖
//! first 8 bytes of sha256d of everything before`, at most [`MAX_MEMBERSHIP_RECORD_BYTES`].

use super::Node;
use crate::chain::sha256d;
use crate::cluster::{check_view, ViewError};
use crate::io::{Output, StorageCommand};
use crate::serve::txindex::KvOp;
use crate::shared::Role;
use crate::wire::{self, Message, View, WireError};

/// The key of the membership record in the node's key/value store (the transaction index's
/// keys start with `txi/`).
pub const MEMBERSHIP_KEY: &[u8] = b"member/view";
/// The largest membership record: a view of 64 members with 512-byte addresses is ~40 KB.
pub const MAX_MEMBERSHIP_RECORD_BYTES: usize = 64 * 1024;
const VERSION: u8 = 1;
const HEAD_BYTES: usize = 1 + 8 + 8;
const CHECK_BYTES: usize = 8;

/// A membership as saved: the view and the times on the shell's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedMembership {
    pub view: View,
    pub saved_at_ms: u64,
    pub expires_at_ms: u64,
}

/// Why a membership record was not restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    #[error("membership record of {len} bytes is over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("membership record of {0} bytes is too short")]
    TooShort(usize),
    #[error("membership record version {0} is not supported")]
    Version(u8),
    #[error("membership record fails its checksum")]
    Checksum,
    #[error("membership record's view does not decode: {0}")]
    Wire(#[from] WireError),
    #[error("membership record holds a message that is not a view")]
    NotAView,
    #[error("saved view is invalid: {0}")]
    View(#[from] ViewError),
    #[error("saved view does not list this node")]
    NotListed,
    #[error("the saved cluster id lapsed")]
    Lapsed,
    #[error("resuming membership is not configured")]
    Disabled,
    #[error("the clock is behind the time the record was saved (the shell's clock restarted)")]
    ClockWentBack,
}

/// Encodes a membership record. `None` if the view does not encode (it broke a wire limit) or
/// the record would be over [`MAX_MEMBERSHIP_RECORD_BYTES`].
pub fn encode_record(saved: &SavedMembership) -> Option<Vec<u8>> {
    let view = wire::encode(&Message::View(saved.view.clone())).ok()?;
    let mut out = Vec::with_capacity(HEAD_BYTES + view.len() + CHECK_BYTES);
    out.push(VERSION);
    out.extend_from_slice(&saved.saved_at_ms.to_le_bytes());
    out.extend_from_slice(&saved.expires_at_ms.to_le_bytes());
    out.extend_from_slice(&view);
    let check = sha256d(&out);
    out.extend_from_slice(&check[..CHECK_BYTES]);
    (out.len() <= MAX_MEMBERSHIP_RECORD_BYTES).then_some(out)
}

/// Decodes a membership record, refusing anything over the limit, truncated, of another
/// version, failing its checksum or not holding one well-formed view message.
pub fn decode_record(bytes: &[u8]) -> Result<SavedMembership, ResumeError> {
    if bytes.len() > MAX_MEMBERSHIP_RECORD_BYTES {
        return Err(ResumeError::TooLarge {
            len: bytes.len(),
            max: MAX_MEMBERSHIP_RECORD_BYTES,
        });
    }
    if bytes.len() < HEAD_BYTES + CHECK_BYTES {
        return Err(ResumeError::TooShort(bytes.len()));
    }
    if bytes[0] != VERSION {
        return Err(ResumeError::Version(bytes[0]));
    }
    let (body, check) = bytes.split_at(bytes.len() - CHECK_BYTES);
    if sha256d(body)[..CHECK_BYTES] != *check {
        return Err(ResumeError::Checksum);
    }
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let (saved_at_ms, expires_at_ms) = (u64_at(1), u64_at(9));
    match wire::decode(&body[HEAD_BYTES..])? {
        Message::View(view) => Ok(SavedMembership {
            view,
            saved_at_ms,
            expires_at_ms,
        }),
        _ => Err(ResumeError::NotAView),
    }
}

impl Node {
    /// After a change of role: saves the membership, or deletes the record of an ordinary
    /// node (only with `Config::resume_membership`).
    pub(crate) fn save_membership(&mut self) {
        let cx = &mut self.shared;
        if !cx.config.resume_membership || cx.config.archive {
            return;
        }
        let op = match &cx.role {
            Role::Member(m) => {
                let saved = SavedMembership {
                    view: View {
                        expires_in_ms: m.expires_at_ms.saturating_sub(cx.now_ms),
                        ..m.view.clone()
                    },
                    saved_at_ms: cx.now_ms,
                    expires_at_ms: m.expires_at_ms,
                };
                match encode_record(&saved) {
                    Some(value) => KvOp::Put {
                        key: MEMBERSHIP_KEY.to_vec(),
                        value,
                    },
                    None => KvOp::Delete {
                        key: MEMBERSHIP_KEY.to_vec(),
                    },
                }
            }
            Role::Ordinary => KvOp::Delete {
                key: MEMBERSHIP_KEY.to_vec(),
            },
        };
        let request_id = cx.fresh_id();
        cx.push(Output::Storage(StorageCommand::WriteKv {
            request_id,
            ops: vec![op],
        }));
    }

    /// The membership record listed at start: becomes a member of its view again, or deletes
    /// it (see the module docs). Returns why it was not restored.
    pub(crate) fn resume_membership(&mut self, value: &[u8]) -> Result<(), ResumeError> {
        let restored = self.restorable(value);
        match restored {
            Ok(saved) if matches!(self.shared.role, Role::Ordinary) => {
                self.become_member(saved.view, saved.expires_at_ms);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(error) => {
                let request_id = self.shared.fresh_id();
                self.shared.push(Output::Storage(StorageCommand::WriteKv {
                    request_id,
                    ops: vec![KvOp::Delete {
                        key: MEMBERSHIP_KEY.to_vec(),
                    }],
                }));
                Err(error)
            }
        }
    }

    fn restorable(&self, value: &[u8]) -> Result<SavedMembership, ResumeError> {
        let cx = &self.shared;
        if !cx.config.resume_membership || cx.config.archive {
            return Err(ResumeError::Disabled);
        }
        let saved = decode_record(value)?;
        check_view(&saved.view, cx.config.cluster_size_max)?;
        if saved
            .view
            .members
            .binary_search_by(|m| m.id.cmp(&cx.id))
            .is_err()
        {
            return Err(ResumeError::NotListed);
        }
        if cx.now_ms < saved.saved_at_ms {
            return Err(ResumeError::ClockWentBack);
        }
        if saved.expires_at_ms <= cx.now_ms {
            return Err(ResumeError::Lapsed);
        }
        Ok(saved)
    }
}

#[cfg(test)]
mod tests;
