//! The follower's I/O: a TCP connection to each `--bitcoin-peer`, redialled with back-off, the
//! clock, and the store updates handed to the archive's thread in order.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::p2p::Magic;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::follower::{ChainUpdate, Follower, Output, PeerKey};
use super::wire::{decode_frame, encode_frame, read_frame_header, Incoming, FRAME_HEADER_BYTES};
use super::BitcoinStatus;

/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before a peer is dialled again; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between dials of one peer.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A connection that lived this long was a good one: its next dial waits the first back-off.
const GOOD_CONNECTION: Duration = Duration::from_secs(60);
/// Frames waiting to be written to one peer; a peer that does not read them is closed.
const WRITE_QUEUE: usize = 256;

/// The follower's status, shared with `/status.json`.
pub type SharedBitcoinStatus = Arc<RwLock<Option<BitcoinStatus>>>;

enum Event {
    Connected { key: PeerKey, address: SocketAddr },
    Message { key: PeerKey, incoming: Incoming },
    Closed { key: PeerKey, reason: String },
}

/// One configured peer and its current connection.
struct Slot {
    address: String,
    connection: Option<Connection>,
    next_dial: Instant,
    backoff: Duration,
    last_error: Option<String>,
}

struct Connection {
    key: PeerKey,
    writes: mpsc::Sender<Vec<u8>>,
    task: JoinHandle<()>,
    opened: Option<Instant>,
}

/// Follows the network through `peers` (each `HOST:PORT`) until the archive's thread is gone.
pub fn spawn(
    follower: Follower,
    peers: Vec<String>,
    magic: Magic,
    updates: mpsc::Sender<ChainUpdate>,
    status: SharedBitcoinStatus,
) -> JoinHandle<()> {
    tokio::spawn(run(follower, peers, magic, updates, status))
}

async fn run(
    mut follower: Follower,
    peers: Vec<String>,
    magic: Magic,
    updates: mpsc::Sender<ChainUpdate>,
    status: SharedBitcoinStatus,
) {
    let started = Instant::now();
    let now_ms = || started.elapsed().as_millis() as u64;
    let (events_tx, mut events) = mpsc::channel::<Event>(64);
    let mut slots: Vec<Slot> = peers
        .into_iter()
        .map(|address| Slot {
            address,
            connection: None,
            next_dial: started,
            backoff: FIRST_BACKOFF,
            last_error: None,
        })
        .collect();
    let mut next_key: PeerKey = 0;
    loop {
        let now = Instant::now();
        for slot in slots.iter_mut() {
            if slot.connection.is_none() && now >= slot.next_dial {
                next_key += 1;
                let (writes, queue) = mpsc::channel(WRITE_QUEUE);
                let task = tokio::spawn(connection(
                    next_key,
                    slot.address.clone(),
                    magic,
                    events_tx.clone(),
                    queue,
                ));
                slot.connection = Some(Connection {
                    key: next_key,
                    writes,
                    task,
                    opened: None,
                });
            }
        }
        while let Some(output) = follower.poll_output() {
            match output {
                Output::Send { peer, message } => {
                    let Some(slot) = slot_of(&mut slots, peer) else {
                        continue;
                    };
                    let connection = slot.connection.as_ref().expect("slot_of");
                    if connection
                        .writes
                        .try_send(encode_frame(magic, message))
                        .is_err()
                    {
                        close(slot, "does not read what is sent to it".into());
                        follower.on_disconnected(peer);
                    }
                }
                Output::Disconnect { peer, reason } => {
                    if let Some(slot) = slot_of(&mut slots, peer) {
                        close(slot, reason);
                    }
                }
                Output::Store(update) => {
                    if updates.send(update).await.is_err() {
                        return; // The archive's thread is gone: the relay is stopping.
                    }
                }
            }
        }
        publish(&follower, &slots, &status);
        let timer = follower
            .poll_timeout()
            .map(|at_ms| started + Duration::from_millis(at_ms));
        let dial = slots
            .iter()
            .filter(|slot| slot.connection.is_none())
            .map(|slot| slot.next_dial)
            .min();
        let wake = [timer, dial].into_iter().flatten().min();
        tokio::select! {
            event = events.recv() => match event.expect("the loop holds a sender") {
                Event::Connected { key, address } => {
                    if let Some(slot) = slot_of(&mut slots, key) {
                        slot.connection.as_mut().expect("slot_of").opened = Some(Instant::now());
                        tracing::info!(peer = %slot.address, "bitcoin: connected");
                        follower.on_connected(key, address, now_ms(), unix_secs());
                    }
                }
                Event::Message { key, incoming } => {
                    follower.on_message(key, incoming, now_ms(), unix_secs());
                }
                Event::Closed { key, reason } => {
                    if let Some(slot) = slot_of(&mut slots, key) {
                        close(slot, reason);
                        follower.on_disconnected(key);
                    }
                }
            },
            _ = tokio::time::sleep_until(wake.unwrap_or(now + MAX_BACKOFF).into()) => {}
        }
        follower.on_timer(now_ms());
    }
}

fn slot_of(slots: &mut [Slot], key: PeerKey) -> Option<&mut Slot> {
    slots
        .iter_mut()
        .find(|slot| slot.connection.as_ref().is_some_and(|c| c.key == key))
}

/// Ends the slot's connection and schedules the next dial.
fn close(slot: &mut Slot, reason: String) {
    let Some(connection) = slot.connection.take() else {
        return;
    };
    connection.task.abort();
    let lived = connection.opened.map(|at| at.elapsed());
    if lived.is_some_and(|lived| lived >= GOOD_CONNECTION) {
        slot.backoff = FIRST_BACKOFF;
    }
    tracing::warn!(
        peer = %slot.address,
        %reason,
        retry_in_s = slot.backoff.as_secs_f32(),
        "bitcoin: connection closed"
    );
    slot.next_dial = Instant::now() + slot.backoff;
    slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
    slot.last_error = Some(reason);
}

fn publish(follower: &Follower, slots: &[Slot], status: &SharedBitcoinStatus) {
    let chain = follower.chain();
    let peers = follower.peers();
    let snapshot = BitcoinStatus {
        header_height: chain.tip_height(),
        header_hash: chain.tip_hash().to_string(),
        stored_height: follower.stored_tip().map(|(height, _)| height),
        stats: follower.stats(),
        stuck: follower.stuck().map(str::to_owned),
        peers: slots
            .iter()
            .map(|slot| {
                let info = slot
                    .connection
                    .as_ref()
                    .and_then(|c| peers.iter().find(|p| p.key == c.key));
                super::PeerStatus {
                    address: slot.address.clone(),
                    connected: info.is_some_and(|info| info.ready),
                    user_agent: info.map(|info| info.user_agent.clone()),
                    start_height: info.map(|info| info.start_height),
                    blocks_in_flight: info.map_or(0, |info| info.blocks_in_flight),
                    last_error: slot.last_error.clone(),
                }
            })
            .collect(),
    };
    if let Ok(mut shared) = status.write() {
        *shared = Some(snapshot);
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One connection: dial, then carry frames both ways until either side ends it.
async fn connection(
    key: PeerKey,
    address: String,
    magic: Magic,
    events: mpsc::Sender<Event>,
    writes: mpsc::Receiver<Vec<u8>>,
) {
    let reason = match carry(key, &address, magic, &events, writes).await {
        Ok(()) => "closed".to_owned(),
        Err(reason) => reason,
    };
    let _ = events.send(Event::Closed { key, reason }).await;
}

async fn carry(
    key: PeerKey,
    address: &str,
    magic: Magic,
    events: &mpsc::Sender<Event>,
    mut writes: mpsc::Receiver<Vec<u8>>,
) -> Result<(), String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| format!("connect: no answer in {CONNECT_TIMEOUT:?}"))?
        .map_err(|error| format!("connect: {error}"))?;
    let _ = stream.set_nodelay(true);
    let peer_address = stream
        .peer_addr()
        .map_err(|error| format!("connect: {error}"))?;
    events
        .send(Event::Connected {
            key,
            address: peer_address,
        })
        .await
        .map_err(|_| "stopping".to_owned())?;
    let (mut reader, mut writer) = stream.into_split();
    let read = async {
        loop {
            let incoming = read_frame(&mut reader, magic).await?;
            events
                .send(Event::Message { key, incoming })
                .await
                .map_err(|_| "stopping".to_owned())?;
        }
    };
    let write = async {
        while let Some(bytes) = writes.recv().await {
            writer
                .write_all(&bytes)
                .await
                .map_err(|error| format!("write: {error}"))?;
        }
        Ok::<(), String>(())
    };
    tokio::select! {
        result = read => result,
        result = write => result,
    }
}

/// Reads one frame: its header first, bounded, then its payload.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    magic: Magic,
) -> Result<Incoming, String> {
    let mut head = [0u8; FRAME_HEADER_BYTES];
    reader.read_exact(&mut head).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            "closed by the peer".to_owned()
        } else {
            format!("read: {error}")
        }
    })?;
    let header = read_frame_header(&head, magic).map_err(|error| error.to_string())?;
    let mut frame = vec![0u8; FRAME_HEADER_BYTES + header.length as usize];
    frame[..FRAME_HEADER_BYTES].copy_from_slice(&head);
    reader
        .read_exact(&mut frame[FRAME_HEADER_BYTES..])
        .await
        .map_err(|error| format!("read: {error}"))?;
    decode_frame(&header, &frame).map_err(|error| error.to_string())
}
