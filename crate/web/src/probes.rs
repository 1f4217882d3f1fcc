//! Transfer probes, for tests and benchmarks only (cargo feature `probes`; `npm run build`
//! leaves them out of the shipped package, `scripts/test.sh` builds them in for the end-to-end
//! tests and `bench.mjs`): `probeTransfer(bytes)` sends bytes to a connected relay on the probe
//! protocol and checks the SHA-256 it returns; `probeDownload(blockHash)` downloads one block
//! (`GetBlock`) and checks that its header hashes to the asked hash.

use std::collections::HashMap;

use futures::channel::oneshot;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId};
use libp2p::PeerId;
use sha2::{Digest, Sha256};
use shoal_core::chain::BlockHash;
use shoal_core::wire::{self, Message};

use crate::error::{ApiError, ErrorCode};
use crate::event_loop::{now_ms, EventLoop, MAX_PENDING_REQUESTS};
use crate::status::Transport;

/// What the API asks of the loop.
pub enum ProbeCommand {
    /// Send `bytes` on the probe protocol, to a connected relay or to `peer` (another page:
    /// the tab-to-tab transfer measurement; it answers probes in probe builds).
    Transfer {
        bytes: Vec<u8>,
        peer: Option<PeerId>,
        reply: oneshot::Sender<Result<Probed, ApiError>>,
    },
    /// Dial `addr` (a `/p2p-circuit/webrtc/p2p/<peer>` address: a direct connection, for the
    /// interop test with js-libp2p); the connection shows in `status().connections`.
    Dial {
        addr: libp2p::Multiaddr,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    /// Download one block from the relay (`GetBlock`) and check its header hashes to `hash`:
    /// the relay → page direction of the transfer measurement.
    Download {
        hash: BlockHash,
        reply: oneshot::Sender<Result<Probed, ApiError>>,
    },
}

/// A probe's outcome.
#[derive(Debug, Clone)]
pub struct Probed {
    pub bytes: usize,
    pub millis: f64,
    pub transport: Transport,
}

enum Pending {
    Transfer {
        digest: [u8; 32],
        bytes: usize,
        started_ms: f64,
        transport: Transport,
        reply: oneshot::Sender<Result<Probed, ApiError>>,
    },
    Download {
        hash: BlockHash,
        started_ms: f64,
        transport: Transport,
        reply: oneshot::Sender<Result<Probed, ApiError>>,
    },
}

/// The probes waiting for their answer.
#[derive(Default)]
pub struct Probes {
    pending: HashMap<OutboundRequestId, Pending>,
    next_request_id: u64,
}

impl Probes {
    /// The node stops: every waiting probe gets `stopped()`.
    pub fn stop(&mut self, stopped: impl Fn() -> ApiError) {
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Transfer { reply, .. } | Pending::Download { reply, .. } => {
                    let _ = reply.send(Err(stopped()));
                }
            }
        }
    }
}

impl EventLoop {
    /// The relay a probe goes to, or why none can be sent now.
    fn relay_for_probe(&self) -> Result<(PeerId, Transport), ApiError> {
        let Some(relay) = self.connected_relay() else {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "no relay is connected",
            ));
        };
        if self.probes.pending.len() >= MAX_PENDING_REQUESTS {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "too many requests are waiting for an answer",
            ));
        }
        Ok(relay)
    }

    pub(crate) fn on_probe_command(&mut self, command: ProbeCommand) {
        match command {
            ProbeCommand::Dial { addr, reply } => {
                let result = self.direct_want(&addr).map_err(|error| {
                    ApiError::new(ErrorCode::Unavailable, format!("cannot dial: {error}"))
                });
                let _ = reply.send(result);
            }
            ProbeCommand::Transfer { bytes, peer, reply } => {
                let target = match peer {
                    Some(peer) => match self.direct.transport_to(&peer) {
                        Some(transport) => Ok((peer, transport)),
                        None => Err(ApiError::new(
                            ErrorCode::Unavailable,
                            format!("not connected to {peer}"),
                        )),
                    },
                    None => self.relay_for_probe(),
                };
                let (peer, transport) = match target {
                    Ok(target) => target,
                    Err(err) => {
                        let _ = reply.send(Err(err));
                        return;
                    }
                };
                let digest: [u8; 32] = Sha256::digest(&bytes).into();
                let len = bytes.len();
                let id = self.swarm.behaviour_mut().probe.send_request(&peer, bytes);
                self.probes.pending.insert(
                    id,
                    Pending::Transfer {
                        digest,
                        bytes: len,
                        started_ms: now_ms(),
                        transport,
                        reply,
                    },
                );
            }
            ProbeCommand::Download { hash, reply } => {
                let (peer, transport) = match self.relay_for_probe() {
                    Ok(relay) => relay,
                    Err(err) => {
                        let _ = reply.send(Err(err));
                        return;
                    }
                };
                self.probes.next_request_id += 1;
                let message = Message::GetBlock {
                    request_id: self.probes.next_request_id,
                    block_hash: wire::BlockHash(hash.0),
                };
                match wire::encode(&message) {
                    Ok(bytes) => {
                        let id = self.swarm.behaviour_mut().msg.send_request(&peer, bytes);
                        self.probes.pending.insert(
                            id,
                            Pending::Download {
                                hash,
                                started_ms: now_ms(),
                                transport,
                                reply,
                            },
                        );
                    }
                    Err(err) => {
                        let _ =
                            reply.send(Err(ApiError::new(ErrorCode::BadInput, err.to_string())));
                    }
                }
            }
        }
    }

    /// A response on the message protocol that may answer a download probe.
    pub(crate) fn on_download_answer(
        &mut self,
        request_id: OutboundRequestId,
        decoded: Result<Message, wire::WireError>,
    ) {
        if !matches!(
            self.probes.pending.get(&request_id),
            Some(Pending::Download { .. })
        ) {
            return;
        }
        if let Some(Pending::Download {
            hash,
            started_ms,
            transport,
            reply,
        }) = self.probes.pending.remove(&request_id)
        {
            let millis = now_ms() - started_ms;
            let _ = reply.send(downloaded(hash, decoded, millis, transport));
        }
    }

    /// A request on the message protocol failed: a download probe waiting for it fails.
    pub(crate) fn on_download_failure(
        &mut self,
        request_id: OutboundRequestId,
        error: &OutboundFailure,
    ) {
        if !matches!(
            self.probes.pending.get(&request_id),
            Some(Pending::Download { .. })
        ) {
            return;
        }
        if let Some(Pending::Download { reply, .. }) = self.probes.pending.remove(&request_id) {
            let _ = reply.send(Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("the relay did not answer: {error}"),
            )));
        }
    }

    pub(crate) fn on_probe_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        let (request_id, result) = match event {
            // Another page's probe: its bytes' SHA-256 back, as a relay answers.
            request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let digest = Sha256::digest(&request).to_vec();
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .probe
                    .send_response(channel, digest);
                return;
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => (request_id, Ok(response)),
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => (request_id, Err(error.to_string())),
            _ => return,
        };
        let Some(Pending::Transfer {
            digest,
            bytes,
            started_ms,
            transport,
            reply,
        }) = self.probes.pending.remove(&request_id)
        else {
            return;
        };
        let answer = match result {
            Ok(response) if response == digest => Ok(Probed {
                bytes,
                millis: now_ms() - started_ms,
                transport,
            }),
            Ok(_) => Err(ApiError::new(
                ErrorCode::Unavailable,
                "the relay's SHA-256 of the probe differs: the bytes did not arrive intact",
            )),
            Err(error) => Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("the probe failed: {error}"),
            )),
        };
        let _ = reply.send(answer);
    }
}

/// Checks a `GetBlock` answer: a block whose header hashes to the requested hash.
fn downloaded(
    hash: BlockHash,
    decoded: Result<Message, wire::WireError>,
    millis: f64,
    transport: Transport,
) -> Result<Probed, ApiError> {
    let block = match decoded {
        Ok(Message::BlockData { block, .. }) => block,
        Ok(Message::BlockNotFound { .. }) => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("the relay has no block {hash}"),
            ))
        }
        Ok(other) => {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("the relay answered a block request with {other:?}"),
            ))
        }
        Err(err) => {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("the relay's answer does not decode: {err}"),
            ))
        }
    };
    let header = block
        .get(..80)
        .and_then(|bytes| shoal_core::chain::Header::decode(bytes).ok());
    match header {
        Some(header) if header.block_hash() == hash => Ok(Probed {
            bytes: block.len(),
            millis,
            transport,
        }),
        _ => Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("the relay's block does not hash to {hash}"),
        )),
    }
}
