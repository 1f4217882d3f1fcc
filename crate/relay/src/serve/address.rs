//! The address a per-address limit or ban counts by (issue 16).
//!
//! Every limit and ban the relay keeps per remote address — libp2p connections and address
//! bans ([`super::limits`]), the request rate, blocks and answers in flight ([`super::guard`]),
//! the node's fair inbox ([`super::link::fair`]) and HTTP connections ([`super::http`]) — keys
//! it by an [`AddressKey`], never by a bare `IpAddr`:
//!
//! - an **IPv4** address counts as itself;
//! - an **IPv6** address counts as its **/64** prefix: a host is given a whole /64 (SLAAC,
//!   privacy addresses, a provider's delegation), so it can take a new address for every
//!   connection, and keying by the full address would let one machine rotate past every cap
//!   and every ban. The tabs of one household behind one /64 share its limits, as the tabs
//!   behind one IPv4 NAT share theirs;
//! - an **IPv4-mapped IPv6** address (`::ffff:a.b.c.d`, what a dual-stack socket reports for
//!   an IPv4 client) counts as its IPv4 address, so one client is one key whichever socket it
//!   reached.
//!
//! A provider may hand one customer more than a /64 (a /56 or a /48); such a customer still
//! has 2^8 or 2^16 keys. Counting by shorter prefixes would put unrelated customers of one
//! provider together (many hand each customer a single /64); a /64 is the smallest block
//! IPv6 address autoconfiguration works in, so no two sites share one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libp2p::core::multiaddr::Protocol;
use libp2p::Multiaddr;

/// Bits of an IPv6 address that name its network: the rest a host may choose freely.
pub const IPV6_PREFIX_BITS: u32 = 64;

/// What a per-address limit counts by: an IPv4 address, or an IPv6 address's /64 prefix (see
/// the module docs). Displayed as `192.0.2.7` or `2001:db8:1:2::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressKey {
    V4(Ipv4Addr),
    /// The address with its last 64 bits cleared.
    V6Prefix(Ipv6Addr),
}

impl AddressKey {
    /// The key `ip` counts under.
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddressKey::V4(v4),
            IpAddr::V6(v6) => {
                let mask = u128::MAX << (128 - IPV6_PREFIX_BITS);
                AddressKey::V6Prefix(Ipv6Addr::from(v6.to_bits() & mask))
            }
        }
    }

    /// The key of the IP address a multiaddr starts with, if any (a relayed circuit's has
    /// none of its own).
    pub fn of_multiaddr(addr: &Multiaddr) -> Option<AddressKey> {
        match addr.iter().next()? {
            Protocol::Ip4(ip) => Some(AddressKey::of(IpAddr::V4(ip))),
            Protocol::Ip6(ip) => Some(AddressKey::of(IpAddr::V6(ip))),
            _ => None,
        }
    }
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        AddressKey::of(ip)
    }
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressKey::V4(ip) => write!(f, "{ip}"),
            AddressKey::V6Prefix(prefix) => write!(f, "{prefix}/{IPV6_PREFIX_BITS}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> AddressKey {
        AddressKey::of(text.parse().unwrap())
    }

    /// Two addresses of one /64 are one key; a neighbouring /64 is another; the key names the
    /// prefix.
    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix() {
        let machine = key("2001:db8:1:2::1");
        assert_eq!(machine, key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_eq!(machine, key("2001:db8:1:2:a1b2:c3d4:e5f6:789"));
        assert_ne!(machine, key("2001:db8:1:3::1"));
        assert_ne!(machine, key("2001:db8:1:1:ffff:ffff:ffff:ffff"));
        assert_ne!(machine, key("2002:db8:1:2::1"));
        assert_eq!(machine.to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("::1").to_string(), "::/64");
    }

    /// IPv4 addresses count one by one, and an IPv4-mapped IPv6 address as its IPv4 address
    /// (not as the /64 `::ffff:0:0/64`, which would put every IPv4 client of a dual-stack
    /// socket together).
    #[test]
    fn ipv4_counts_per_address_and_a_mapped_address_as_its_ipv4() {
        assert_eq!(key("192.0.2.7").to_string(), "192.0.2.7");
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("::ffff:192.0.2.7"), key("::ffff:192.0.2.8"));
        assert_eq!(key("::ffff:192.0.2.7").to_string(), "192.0.2.7");
    }

    /// From multiaddrs as libp2p reports remotes: the first component's IP; none for a circuit.
    #[test]
    fn a_multiaddr_gives_the_key_of_its_ip() {
        let of = |text: &str| AddressKey::of_multiaddr(&text.parse().unwrap());
        assert_eq!(of("/ip4/192.0.2.7/tcp/1/ws"), Some(key("192.0.2.7")));
        assert_eq!(
            of("/ip6/2001:db8:1:2::99/udp/5000/webrtc-direct"),
            Some(key("2001:db8:1:2::1"))
        );
        assert_eq!(of("/ip6/::ffff:192.0.2.7/tcp/1/ws"), Some(key("192.0.2.7")));
        assert_eq!(
            of("/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit"),
            None
        );
        assert_eq!(of("/dns4/example.com/tcp/1"), None);
    }
}
