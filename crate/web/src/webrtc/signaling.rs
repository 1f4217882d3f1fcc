//! Making a direct connection over a relayed one: libp2p's `/webrtc-signaling/0.0.1`
//! (libp2p/specs `webrtc/webrtc.md`). The dialer offers, the listener answers, both send their
//! ICE candidates as they are found and add the other's, until the `RTCPeerConnection` is
//! connected. Messages are `shoal_net::signaling`'s, on a stream of the relayed connection,
//! which is authenticated (Noise through the relay): the SDP's DTLS fingerprints arrive over it,
//! so the direct connection needs no Noise of its own and the peer is the relayed connection's.

use std::pin::pin;
use std::time::Duration;

use futures::future::{select, Either};
use futures::io::{ReadHalf, WriteHalf};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use futures_timer::Delay;
use js_sys::{Array, Object, Reflect};
use libp2p::Stream;
use shoal_net::signaling::{self, IceCandidate, Kind, Message};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Event, RtcConfiguration, RtcIceCandidateInit, RtcPeerConnection, RtcPeerConnectionIceEvent,
    RtcPeerConnectionState, RtcSdpType, RtcSessionDescriptionInit,
};

use super::connection::{Connection, INIT_LABEL};
use super::{Error, IceServer};

/// Longest a direct connection may take from the first signalling message to connected.
pub const SIGNALING_TIMEOUT: Duration = Duration::from_secs(10);

/// A new `RTCPeerConnection` with `ice_servers` (none: host candidates only, enough on one
/// machine or a LAN).
fn peer_connection(ice_servers: &[IceServer]) -> Result<RtcPeerConnection, Error> {
    let config = RtcConfiguration::new();
    let servers = Array::new();
    for server in ice_servers {
        let entry = Object::new();
        let urls: Array = server.urls.iter().map(|u| JsValue::from_str(u)).collect();
        Reflect::set(&entry, &"urls".into(), &urls).map_err(Error::js)?;
        if let Some(username) = &server.username {
            Reflect::set(&entry, &"username".into(), &username.into()).map_err(Error::js)?;
        }
        if let Some(credential) = &server.credential {
            Reflect::set(&entry, &"credential".into(), &credential.into()).map_err(Error::js)?;
        }
        servers.push(&entry);
    }
    config.set_ice_servers(&servers);
    RtcPeerConnection::new_with_configuration(&config).map_err(Error::js)
}

fn description(kind: RtcSdpType, sdp: &str) -> RtcSessionDescriptionInit {
    let init = RtcSessionDescriptionInit::new(kind);
    init.set_sdp(sdp);
    init
}

fn sdp_of(value: &JsValue) -> Result<String, Error> {
    Reflect::get(value, &"sdp".into())
        .ok()
        .and_then(|sdp| sdp.as_string())
        .ok_or_else(|| Error::Signaling("the browser made a description without SDP".into()))
}

/// Dials: offers a connection to the peer at the other end of `stream`.
pub async fn initiate(stream: Stream, ice_servers: &[IceServer]) -> Result<Connection, Error> {
    let pc = peer_connection(ice_servers)?;
    let connection = Connection::new(pc.clone());
    // An offer needs something to offer: a data channel, closed once connected (the spec's
    // and js-libp2p's way).
    let init = pc.create_data_channel(INIT_LABEL);
    let (reader, mut writer) = stream.split();
    let candidates = watch_candidates(&pc);
    let exchange = async {
        let offer = JsFuture::from(pc.create_offer()).await.map_err(Error::js)?;
        let offer = sdp_of(&offer)?;
        signaling::write_message(
            &mut writer,
            &Message {
                kind: Kind::SdpOffer,
                data: offer.clone(),
            },
        )
        .await?;
        JsFuture::from(pc.set_local_description(&description(RtcSdpType::Offer, &offer)))
            .await
            .map_err(Error::js)?;
        let mut messages = messages(reader);
        let answer = expect(&mut messages, Kind::SdpAnswer).await?;
        JsFuture::from(pc.set_remote_description(&description(RtcSdpType::Answer, &answer)))
            .await
            .map_err(Error::js)?;
        trickle(&pc, candidates, messages, &mut writer).await
    };
    let result = timed(exchange).await;
    init.close();
    let _ = writer.close().await;
    let mut connection = connection;
    result.map(|()| {
        connection.watch_transports();
        connection
    })
}

/// Listens: answers the offer that comes on `stream`.
pub async fn answer(stream: Stream, ice_servers: &[IceServer]) -> Result<Connection, Error> {
    let pc = peer_connection(ice_servers)?;
    let connection = Connection::new(pc.clone());
    let (reader, mut writer) = stream.split();
    let candidates = watch_candidates(&pc);
    let exchange = async {
        let mut messages = messages(reader);
        let offer = expect(&mut messages, Kind::SdpOffer).await?;
        JsFuture::from(pc.set_remote_description(&description(RtcSdpType::Offer, &offer)))
            .await
            .map_err(Error::js)?;
        let answer = JsFuture::from(pc.create_answer())
            .await
            .map_err(Error::js)?;
        let answer = sdp_of(&answer)?;
        signaling::write_message(
            &mut writer,
            &Message {
                kind: Kind::SdpAnswer,
                data: answer.clone(),
            },
        )
        .await?;
        JsFuture::from(pc.set_local_description(&description(RtcSdpType::Answer, &answer)))
            .await
            .map_err(Error::js)?;
        trickle(&pc, candidates, messages, &mut writer).await
    };
    let result = timed(exchange).await;
    let _ = writer.close().await;
    let mut connection = connection;
    result.map(|()| {
        connection.watch_transports();
        connection
    })
}

async fn timed(
    exchange: impl std::future::Future<Output = Result<(), Error>>,
) -> Result<(), Error> {
    match select(pin!(exchange), Delay::new(SIGNALING_TIMEOUT)).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(Error::Signaling(format!(
            "not connected within {} s",
            SIGNALING_TIMEOUT.as_secs()
        ))),
    }
}

/// The peer's next message, which must be of `kind` (its SDP offer or answer).
async fn expect(messages: &mut Messages, kind: Kind) -> Result<String, Error> {
    match messages.next().await {
        Some(Ok(message)) if message.kind == kind => Ok(message.data),
        Some(Ok(message)) => Err(Error::Signaling(format!(
            "expected {kind:?}, got {:?}",
            message.kind
        ))),
        Some(Err(error)) => Err(error.into()),
        None => Err(Error::Signaling(format!(
            "the peer closed the signalling stream before its {kind:?}"
        ))),
    }
}

type Messages =
    futures::stream::LocalBoxStream<'static, Result<Message, signaling::SignalingError>>;

/// The peer's signalling messages, one after the other.
fn messages(reader: ReadHalf<Stream>) -> Messages {
    futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match signaling::read_message(&mut reader).await {
            Ok(message) => Some((Ok(message), Some(reader))),
            Err(error) => Some((Err(error), None)),
        }
    })
    .boxed_local()
}

/// What happens on the peer connection while candidates are exchanged.
enum Local {
    /// A candidate of ours (`None`: all found).
    Candidate(Option<IceCandidate>),
    /// The connection state changed.
    State,
}

/// Our candidates and the connection's state changes, as they happen.
struct Watch {
    events: futures::channel::mpsc::UnboundedReceiver<Local>,
    pc: RtcPeerConnection,
    on_candidate: Closure<dyn FnMut(RtcPeerConnectionIceEvent)>,
    on_state: Closure<dyn FnMut(Event)>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.pc.set_onicecandidate(None);
        let _ = self.pc.remove_event_listener_with_callback(
            "connectionstatechange",
            self.on_state.as_ref().unchecked_ref(),
        );
        let _ = &self.on_candidate;
    }
}

fn watch_candidates(pc: &RtcPeerConnection) -> Watch {
    let (tx, events) = futures::channel::mpsc::unbounded();
    let candidate_tx = tx.clone();
    let on_candidate = Closure::<dyn FnMut(RtcPeerConnectionIceEvent)>::new(
        move |event: RtcPeerConnectionIceEvent| {
            let candidate = event.candidate().and_then(|c| {
                let candidate = c.candidate();
                // An empty candidate string is the end-of-candidates marker too.
                (!candidate.is_empty()).then(|| IceCandidate {
                    candidate,
                    sdp_mid: c.sdp_mid(),
                    sdp_m_line_index: c.sdp_m_line_index(),
                    username_fragment: Reflect::get(&c, &"usernameFragment".into())
                        .ok()
                        .and_then(|f| f.as_string()),
                })
            });
            let _ = candidate_tx.unbounded_send(Local::Candidate(candidate));
        },
    );
    let on_state = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
        let _ = tx.unbounded_send(Local::State);
    });
    pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));
    let _ = pc.add_event_listener_with_callback(
        "connectionstatechange",
        on_state.as_ref().unchecked_ref(),
    );
    Watch {
        events,
        pc: pc.clone(),
        on_candidate,
        on_state,
    }
}

/// Sends our candidates and adds the peer's until the connection is up (or failed).
async fn trickle(
    pc: &RtcPeerConnection,
    mut watch: Watch,
    mut messages: Messages,
    writer: &mut WriteHalf<Stream>,
) -> Result<(), Error> {
    let mut peer_done = false;
    loop {
        match pc.connection_state() {
            RtcPeerConnectionState::Connected => return Ok(()),
            RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed => {
                return Err(Error::Signaling(format!(
                    "the connection {:?} during ICE",
                    pc.connection_state()
                )))
            }
            _ => {}
        }
        let next_message = if peer_done {
            Either::Left(futures::future::pending())
        } else {
            Either::Right(messages.next())
        };
        match select(watch.events.next(), next_message).await {
            Either::Left((Some(Local::Candidate(candidate)), _)) => {
                let data = match &candidate {
                    Some(candidate) => signaling::candidate_to_data(candidate),
                    // End of candidates: js-libp2p reads an empty or "null" candidate as it.
                    None => signaling::END_OF_CANDIDATES_DATA.to_owned(),
                };
                // The peer may be connected already and gone from the stream: not an error.
                let _ = signaling::write_message(
                    writer,
                    &Message {
                        kind: Kind::IceCandidate,
                        data,
                    },
                )
                .await;
            }
            Either::Left((Some(Local::State), _)) => {}
            Either::Left((None, _)) => return Err(Error::Closed),
            Either::Right((Some(Ok(message)), _)) => {
                if message.kind != Kind::IceCandidate {
                    return Err(Error::Signaling(format!(
                        "expected an ICE candidate, got {:?}",
                        message.kind
                    )));
                }
                match signaling::candidate_from_data(&message.data)? {
                    Some(candidate) => {
                        let init = RtcIceCandidateInit::new(&candidate.candidate);
                        init.set_sdp_mid(candidate.sdp_mid.as_deref());
                        init.set_sdp_m_line_index(candidate.sdp_m_line_index);
                        if let Some(fragment) = &candidate.username_fragment {
                            Reflect::set(&init, &"usernameFragment".into(), &fragment.into())
                                .map_err(Error::js)?;
                        }
                        JsFuture::from(
                            pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init)),
                        )
                        .await
                        .map_err(Error::js)?;
                    }
                    None => peer_done = true,
                }
            }
            // The peer ended the stream (or it broke): wait for ICE with what we have.
            Either::Right((Some(Err(_)) | None, _)) => peer_done = true,
        }
    }
}
