//! Connection limits at the relay's libp2p front door: in total, per peer and per IP address.
//!
//! Any page or program can reach a relay, and a fresh libp2p key costs nothing, so limits per
//! peer alone do not hold back one machine: [`PerIpLimit`] counts the connections (pending and
//! established, inbound) each remote address holds and refuses one more past
//! [`ConnectionCaps::max_per_ip`]. An address here is an [`AddressKey`]: an IPv4 address, or
//! an IPv6 address's /64, which one machine can fill with addresses of its own. libp2p's `connection_limits` enforces the totals and the
//! per-peer bound beside it. Reservations and circuits hang off connections (at most
//! `CircuitLimits::max_reservations_per_peer` each), so the per-address cap also bounds what
//! one address can reserve: it cannot take every reservation, nor fill the directory.
//!
//! An address the guard banned (`guard::Ban::address`: too many of its keys banned) is refused
//! outright until its ban ends: for IPv6, every address of its /64.
//!
//! A refusal is logged once a minute at most, with the number refused since, not once per
//! connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::{
    dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::address::AddressKey;

/// The relay's connection caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Established inbound connections, all peers together.
    pub max_incoming: u32,
    /// Inbound connections still in their handshake, all together.
    pub max_pending_incoming: u32,
    /// Connections to one peer (either direction).
    pub max_per_peer: u32,
    /// Inbound connections from one address (an IPv4 address or an IPv6 /64), pending and
    /// established.
    pub max_per_ip: u32,
    /// No new connection (either direction) while the process's resident memory is above
    /// this (libp2p's `memory_connection_limits`): the relay keeps serving whom it serves.
    pub max_memory_mb: usize,
}

impl Default for ConnectionCaps {
    fn default() -> Self {
        Self {
            max_incoming: 4_096,
            max_pending_incoming: 256,
            max_per_peer: 4,
            // Many tabs behind one NAT are honest: a household or an office.
            max_per_ip: 64,
            // The chain database's cache (redb's default, 1 GiB) and the answers in flight
            // (`super::guard`, 512 MiB) fit with room to spare.
            max_memory_mb: 3072,
        }
    }
}

impl ConnectionCaps {
    /// libp2p's `connection_limits` for the totals and the per-peer bound.
    pub fn libp2p(&self) -> connection_limits::Behaviour {
        connection_limits::Behaviour::new(
            ConnectionLimits::default()
                .with_max_established_incoming(Some(self.max_incoming))
                .with_max_pending_incoming(Some(self.max_pending_incoming))
                .with_max_established_per_peer(Some(self.max_per_peer)),
        )
    }
}

/// The connection limit per remote IP address (see the module docs).
pub struct PerIpLimit {
    max_per_ip: u32,
    /// Inbound connections by id → their remote address (pending or established).
    connections: HashMap<ConnectionId, AddressKey>,
    /// Connections per address (the counts of `connections`).
    per_ip: HashMap<AddressKey, u32>,
    /// Banned addresses and when their bans end (at most [`MAX_BANNED_ADDRESSES`]).
    banned: HashMap<AddressKey, Instant>,
    refused: u64,
    logged_at: Option<Instant>,
}

/// Most banned addresses remembered; beyond it the ban that ends first is forgotten.
pub const MAX_BANNED_ADDRESSES: usize = 16_384;

/// The error a connection from a banned address gets.
#[derive(Debug, thiserror::Error)]
#[error("{ip} is banned: too many of its peers were banned")]
pub struct AddressBanned {
    pub ip: AddressKey,
}

/// The error a refused connection gets.
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {open} connections, the most one address may hold")]
pub struct TooManyFromAddress {
    pub ip: AddressKey,
    pub open: u32,
}

impl PerIpLimit {
    pub fn new(max_per_ip: u32) -> Self {
        Self {
            max_per_ip,
            connections: HashMap::new(),
            per_ip: HashMap::new(),
            banned: HashMap::new(),
            refused: 0,
            logged_at: None,
        }
    }

    /// Refuses new connections from `ip` until `until`.
    pub fn ban(&mut self, ip: AddressKey, until: Instant) {
        if self.banned.len() >= MAX_BANNED_ADDRESSES && !self.banned.contains_key(&ip) {
            if let Some(first) = self
                .banned
                .iter()
                .min_by_key(|(_, u)| **u)
                .map(|(ip, _)| *ip)
            {
                self.banned.remove(&first);
            }
        }
        self.banned.insert(ip, until);
    }

    /// Whether `ip` is banned at `now` (a ban that ended is forgotten).
    pub fn is_banned(&mut self, ip: &AddressKey, now: Instant) -> bool {
        match self.banned.get(ip) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.banned.remove(ip);
                false
            }
            None => false,
        }
    }

    /// Connections counted for `ip` now.
    pub fn open_from(&self, ip: &AddressKey) -> u32 {
        self.per_ip.get(ip).copied().unwrap_or(0)
    }

    fn forget(&mut self, id: ConnectionId) {
        let Some(ip) = self.connections.remove(&id) else {
            return;
        };
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    fn refuse(&mut self, ip: AddressKey, open: u32) -> ConnectionDenied {
        self.refused += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            tracing::warn!(%ip, open, refused = self.refused, "connection refused: too many from one address");
            self.logged_at = Some(Instant::now());
            self.refused = 0;
        }
        ConnectionDenied::new(TooManyFromAddress { ip, open })
    }
}

impl NetworkBehaviour for PerIpLimit {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = AddressKey::of_multiaddr(remote) else {
            return Ok(());
        };
        if self.is_banned(&ip, Instant::now()) {
            return Err(ConnectionDenied::new(AddressBanned { ip }));
        }
        let open = self.open_from(&ip);
        if open >= self.max_per_ip {
            return Err(self.refuse(ip, open));
        }
        self.connections.insert(connection_id, ip);
        *self.per_ip.entry(ip).or_insert(0) += 1;
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.forget(connection_id)
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().unwrap()
    }

    fn key(ip: &str) -> AddressKey {
        AddressKey::of(ip.parse().unwrap())
    }

    /// Past the cap an address is refused, another is not; a closed or failed connection frees
    /// its place; a circuit (no IP of its own) is not counted.
    #[test]
    fn connections_are_counted_per_address_and_freed_when_they_end() {
        let mut limit = PerIpLimit::new(3);
        let local = addr("/ip4/10.0.0.1/tcp/9090/ws");
        let one = addr("/ip4/192.0.2.7/tcp/40000/ws");
        let ids: Vec<ConnectionId> = (1..=5).map(ConnectionId::new_unchecked).collect();
        for id in &ids[..3] {
            limit
                .handle_pending_inbound_connection(*id, &local, &one)
                .unwrap();
        }
        let refused = limit
            .handle_pending_inbound_connection(ids[3], &local, &one)
            .unwrap_err();
        let why = refused
            .downcast_ref::<TooManyFromAddress>()
            .expect("refused for the address");
        assert_eq!(
            why.to_string(),
            "192.0.2.7 already has 3 connections, the most one address may hold"
        );
        let other = addr("/ip4/198.51.100.1/udp/5000/webrtc-direct");
        limit
            .handle_pending_inbound_connection(ids[4], &local, &other)
            .unwrap();
        let circuit = addr("/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit");
        for i in 0..10 {
            limit
                .handle_pending_inbound_connection(
                    ConnectionId::new_unchecked(100 + i),
                    &local,
                    &circuit,
                )
                .unwrap();
        }
        assert_eq!(limit.open_from(&key("192.0.2.7")), 3);
        // One ends: there is room again.
        limit.forget(ids[0]);
        assert_eq!(limit.open_from(&key("192.0.2.7")), 2);
        limit
            .handle_pending_inbound_connection(ids[3], &local, &one)
            .unwrap();
        for id in &ids {
            limit.forget(*id);
        }
        assert!(limit.per_ip.is_empty() && limit.connections.is_empty());
    }

    /// A banned address is refused at once — even with no connection open — until its ban
    /// ends; others are not.
    #[test]
    fn a_banned_address_is_refused_until_its_ban_ends() {
        let mut limit = PerIpLimit::new(3);
        let local = addr("/ip4/10.0.0.1/tcp/9090/ws");
        let machine = addr("/ip4/192.0.2.7/tcp/40000/ws");
        let ip = key("192.0.2.7");
        let now = Instant::now();
        limit.ban(ip, now + Duration::from_secs(600));
        let refused = limit
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(1), &local, &machine)
            .unwrap_err();
        assert_eq!(
            refused.downcast_ref::<AddressBanned>().unwrap().to_string(),
            "192.0.2.7 is banned: too many of its peers were banned"
        );
        let other = addr("/ip4/198.51.100.1/tcp/40000/ws");
        limit
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(2), &local, &other)
            .unwrap();
        assert!(limit.is_banned(&ip, now + Duration::from_secs(599)));
        assert!(!limit.is_banned(&ip, now + Duration::from_secs(600)));
        assert!(limit.banned.is_empty(), "an ended ban is forgotten");
        // A ban that already ended lets the address in.
        limit.ban(ip, now);
        limit
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(3), &local, &machine)
            .unwrap();
    }

    /// One machine with an IPv6 /64 takes a new address for every connection: its addresses
    /// share one cap and one ban; another /64 has its own; an IPv4 client counts the same
    /// whether it reached an IPv4 socket or a dual-stack one (`::ffff:a.b.c.d`).
    #[test]
    fn ipv6_addresses_share_the_cap_and_the_ban_of_their_64() {
        let mut limit = PerIpLimit::new(3);
        let local = addr("/ip6/2001:db8:ffff::1/udp/9090/webrtc-direct");
        let id = ConnectionId::new_unchecked;
        let hosts = [
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "2001:db8:1:2:a1b2:c3d4:e5f6:789",
        ];
        for (n, host) in hosts.iter().enumerate() {
            let remote = addr(&format!("/ip6/{host}/tcp/4000{n}/ws"));
            limit
                .handle_pending_inbound_connection(id(n), &local, &remote)
                .unwrap();
        }
        let rotated = addr("/ip6/2001:db8:1:2:ffff:ffff:ffff:fffe/tcp/40009/ws");
        let refused = limit
            .handle_pending_inbound_connection(id(3), &local, &rotated)
            .unwrap_err();
        assert_eq!(
            refused
                .downcast_ref::<TooManyFromAddress>()
                .unwrap()
                .to_string(),
            "2001:db8:1:2::/64 already has 3 connections, the most one address may hold"
        );
        let next_door = addr("/ip6/2001:db8:1:3::1/tcp/40000/ws");
        limit
            .handle_pending_inbound_connection(id(4), &local, &next_door)
            .unwrap();
        assert_eq!(limit.open_from(&key("2001:db8:1:2::7")), 3);
        assert_eq!(limit.open_from(&key("2001:db8:1:3::7")), 1);

        // A ban of one address of the /64 refuses every other; the next /64 is not touched.
        let now = Instant::now();
        limit.ban(key("2001:db8:1:3::1"), now + Duration::from_secs(600));
        let another = addr("/ip6/2001:db8:1:3:9999::5/tcp/40000/ws");
        let refused = limit
            .handle_pending_inbound_connection(id(5), &local, &another)
            .unwrap_err();
        assert_eq!(
            refused.downcast_ref::<AddressBanned>().unwrap().to_string(),
            "2001:db8:1:3::/64 is banned: too many of its peers were banned"
        );
        limit.forget(id(0));
        limit
            .handle_pending_inbound_connection(id(6), &local, &rotated)
            .unwrap();

        // IPv4, mapped or not: one address, one count and one ban.
        let v4 = addr("/ip4/192.0.2.7/tcp/40000/ws");
        let mapped = addr("/ip6/::ffff:192.0.2.7/tcp/40001/ws");
        for (n, remote) in [&v4, &mapped, &v4].into_iter().enumerate() {
            limit
                .handle_pending_inbound_connection(id(10 + n), &local, remote)
                .unwrap();
        }
        assert!(limit
            .handle_pending_inbound_connection(id(13), &local, &mapped)
            .is_err());
        assert_eq!(limit.open_from(&key("192.0.2.7")), 3);
        assert_eq!(limit.open_from(&key("192.0.2.8")), 0);
        limit.ban(key("::ffff:198.51.100.1"), now + Duration::from_secs(600));
        assert!(limit
            .handle_pending_inbound_connection(id(14), &local, &addr("/ip4/198.51.100.1/tcp/1/ws"))
            .is_err());
        assert!(limit
            .handle_pending_inbound_connection(id(15), &local, &addr("/ip4/198.51.100.2/tcp/1/ws"))
            .is_ok());
    }
}
