use super::*;

fn config() -> GuardConfig {
    GuardConfig {
        requests_per_ip: Rate {
            burst: 10,
            per_second: 5,
        },
        blocks_per_peer: 2,
        blocks_per_ip: 3,
        unsent_per_peer: 1000,
        unsent_per_ip: 1500,
        unsent_total: 2500,
        ban_points: 100,
        ban_for: Duration::from_secs(600),
        address_ban_after: 3,
    }
}

/// A multiaddr from `ip`, IPv4 or IPv6.
fn at(ip: &str) -> Multiaddr {
    match ip.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(_) => format!("/ip4/{ip}/tcp/1/ws"),
        std::net::IpAddr::V6(_) => format!("/ip6/{ip}/tcp/1/ws"),
    }
    .parse()
    .unwrap()
}

fn key(ip: &str) -> AddressKey {
    AddressKey::of(ip.parse().unwrap())
}

fn new_guard(config: GuardConfig) -> Guard<u64, u64> {
    Guard::new(config)
}

fn connect(guard: &mut Guard<u64, u64>, ip: &str) -> PeerId {
    let peer = PeerId::random();
    guard.connected(peer, &at(ip));
    peer
}

/// Fresh keys from one address share its bucket; another address has its own; the bucket
/// refills with time.
#[test]
fn the_request_rate_is_per_address_whatever_the_keys() {
    let mut guard = new_guard(config());
    let now = Instant::now();
    let mut id = 0;
    let mut ask = |guard: &mut Guard<u64, u64>, peer, now| {
        id += 1;
        let result = guard.admit(peer, id, RequestKind::Other, now);
        guard.finished(id);
        result
    };
    let keys: Vec<PeerId> = (0..10).map(|_| connect(&mut guard, "10.0.0.1")).collect();
    for peer in &keys {
        assert!(ask(&mut guard, *peer, now).is_ok());
    }
    let fresh = connect(&mut guard, "10.0.0.1");
    let (refusal, ban) = ask(&mut guard, fresh, now).unwrap_err();
    assert_eq!(refusal, Refusal::Rate(key("10.0.0.1")));
    assert_eq!(ban, None, "going over the rate is no offence");
    for _ in 0..1000 {
        assert_eq!(ask(&mut guard, fresh, now).unwrap_err().1, None);
    }
    let elsewhere = connect(&mut guard, "10.0.0.2");
    assert!(ask(&mut guard, elsewhere, now).is_ok());
    // 5 a second: one second later, five more.
    let later = now + Duration::from_secs(1);
    for _ in 0..5 {
        assert!(ask(&mut guard, fresh, later).is_ok());
    }
    assert!(ask(&mut guard, fresh, later).is_err());
}

/// Block requests are counted from arrival until their answer is read or fails, per peer and
/// per address; bytes of answers not yet read bound every request.
#[test]
fn open_blocks_and_unread_answers_are_bounded() {
    let mut guard = new_guard(GuardConfig {
        requests_per_ip: Rate {
            burst: 1000,
            per_second: 1000,
        },
        ..config()
    });
    let now = Instant::now();
    let a = connect(&mut guard, "10.0.0.1");
    let b = connect(&mut guard, "10.0.0.1");
    assert!(guard.admit(a, 1, RequestKind::Block, now).is_ok());
    assert!(guard.admit(a, 2, RequestKind::Block, now).is_ok());
    let (refusal, _) = guard.admit(a, 3, RequestKind::Block, now).unwrap_err();
    assert_eq!(refusal, Refusal::BlocksOpen { open: 2 });
    // Other requests of the peer still pass; the address has one block place left, for b.
    assert!(guard.admit(a, 4, RequestKind::Other, now).is_ok());
    assert!(guard.admit(b, 5, RequestKind::Block, now).is_ok());
    let (refusal, _) = guard.admit(b, 6, RequestKind::Block, now).unwrap_err();
    assert_eq!(refusal, Refusal::AddressBlocksOpen { open: 3 });
    // a's answers are written but not read: 1,000 bytes, a's bound.
    guard.responding(1, 600);
    guard.responding(2, 400);
    assert_eq!(guard.unsent_bytes(), 1000);
    let (refusal, _) = guard.admit(a, 7, RequestKind::Other, now).unwrap_err();
    assert_eq!(refusal, Refusal::Unsent { unsent: 1000 });
    // b is under its own bound, but the address reaches its 1,500.
    guard.responding(5, 500);
    let (refusal, _) = guard.admit(b, 8, RequestKind::Other, now).unwrap_err();
    assert_eq!(refusal, Refusal::AddressUnsent { unsent: 1500 });
    // Read (or failed): everything is released.
    for id in [1, 2, 4, 5] {
        guard.finished(id);
    }
    guard.finished(99); // unknown ids are nothing
    assert_eq!(guard.unsent_bytes(), 0);
    assert_eq!(guard.open_requests(), 0);
    assert!(guard.admit(a, 9, RequestKind::Block, now).is_ok());
    assert!(guard.admit(b, 10, RequestKind::Block, now).is_ok());
}

/// Answers nobody reads, from many addresses, reach the total bound: then nobody is served,
/// and nobody is struck for it.
#[test]
fn the_total_of_unread_answers_is_bounded() {
    let mut guard = new_guard(config());
    let now = Instant::now();
    for (id, ip) in [(1, "10.0.0.1"), (2, "10.0.0.2"), (3, "10.0.0.3")] {
        let peer = connect(&mut guard, ip);
        guard.admit(peer, id, RequestKind::Other, now).unwrap();
        guard.responding(id, 900);
    }
    let honest = connect(&mut guard, "10.0.0.4");
    let (refusal, ban) = guard.admit(honest, 4, RequestKind::Other, now).unwrap_err();
    assert_eq!(refusal, Refusal::UnsentTotal { unsent: 2700 });
    assert_eq!(ban, None);
    guard.finished(1);
    assert!(guard.admit(honest, 5, RequestKind::Other, now).is_ok());
}

/// Five requests that do not decode ban a peer; the ban ends after its time and is reported
/// once.
#[test]
fn undecodable_requests_ban_the_peer_for_a_while() {
    let mut guard = new_guard(config());
    let now = Instant::now();
    let peer = connect(&mut guard, "10.0.0.1");
    for _ in 0..4 {
        assert_eq!(guard.strike(peer, Offence::Undecodable, now), None);
    }
    let ban = guard.strike(peer, Offence::Undecodable, now).unwrap();
    assert_eq!(ban.peer, peer);
    assert_eq!(ban.until, now + Duration::from_secs(600));
    assert!(guard.is_banned(&peer, now));
    assert_eq!(
        guard.strike(peer, Offence::Undecodable, now),
        None,
        "a banned peer is not banned again"
    );
    assert!(guard.expired(now + Duration::from_secs(599)).is_empty());
    assert_eq!(guard.expired(now + Duration::from_secs(600)), vec![peer]);
    assert!(!guard.is_banned(&peer, now + Duration::from_secs(600)));
}

/// A machine minting keys: the third peer from one address banned within the ban time bans
/// the address too (its ban says so); another address is not touched, bans further apart than
/// the ban time do not add up, and `address_ban_after` 0 never bans an address.
#[test]
fn the_third_peer_banned_from_one_address_bans_the_address() {
    let ban = |guard: &mut Guard<u64, u64>, ip: &str, now: Instant| {
        let peer = connect(guard, ip);
        (0..5)
            .find_map(|_| guard.strike(peer, Offence::Undecodable, now))
            .expect("banned")
    };
    let mut guard = new_guard(config());
    let now = Instant::now();
    let machine = key("10.0.0.1");
    assert_eq!(ban(&mut guard, "10.0.0.1", now).address, None);
    assert_eq!(ban(&mut guard, "10.0.0.2", now).address, None);
    assert_eq!(ban(&mut guard, "10.0.0.1", now).address, None);
    assert_eq!(ban(&mut guard, "10.0.0.1", now).address, Some(machine));
    // Not again while the address is banned; after, the count starts again.
    for _ in 0..5 {
        assert_eq!(ban(&mut guard, "10.0.0.1", now).address, None);
    }
    let later = now + Duration::from_secs(600);
    assert_eq!(ban(&mut guard, "10.0.0.1", later).address, None);
    assert_eq!(ban(&mut guard, "10.0.0.1", later).address, None);
    assert_eq!(ban(&mut guard, "10.0.0.1", later).address, Some(machine));
    // Bans eleven minutes apart: never three within ten.
    let mut guard = new_guard(config());
    for i in 0..6 {
        let later = now + Duration::from_secs(660 * i);
        assert_eq!(ban(&mut guard, "10.0.0.1", later).address, None, "ban {i}");
    }
    let mut guard = new_guard(GuardConfig {
        address_ban_after: 0,
        ..config()
    });
    for _ in 0..10 {
        assert_eq!(ban(&mut guard, "10.0.0.1", now).address, None);
    }
}

/// Points fade: an occasional refusal never adds up to a ban; a stream of them does.
#[test]
fn strikes_fade_with_time() {
    let mut guard = new_guard(config());
    let start = Instant::now();
    let peer = connect(&mut guard, "10.0.0.1");
    let slow = Offence::Refused(Refusal::BlocksOpen { open: 2 });
    // Five points a minute against ten that fade: never banned.
    for minute in 0..60 {
        let now = start + Duration::from_secs(60 * minute);
        assert_eq!(guard.strike(peer, slow, now), None, "minute {minute}");
    }
    // Twenty at once: banned.
    let now = start + Duration::from_secs(3600);
    let bans: Vec<Ban> = (0..20)
        .filter_map(|_| guard.strike(peer, slow, now))
        .collect();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].last, slow);
}

/// The node's misbehaviour score bans a peer once it reaches the threshold.
#[test]
fn a_peer_the_node_scores_past_the_threshold_is_banned() {
    let mut guard = new_guard(config());
    let now = Instant::now();
    let peer = connect(&mut guard, "10.0.0.1");
    assert_eq!(
        guard.strike(peer, Offence::Misbehaved { score: 60 }, now),
        None
    );
    assert_eq!(
        guard.strike(peer, Offence::Misbehaved { score: 80 }, now),
        None
    );
    let ban = guard.strike(peer, Offence::Misbehaved { score: 100 }, now);
    assert_eq!(
        ban.map(|b| b.last),
        Some(Offence::Misbehaved { score: 100 })
    );
}

/// An address's bucket is kept while any of its peers is connected and forgotten with the
/// last; a relayed peer (no address of its own) has no bucket.
#[test]
fn tables_go_with_the_last_connection() {
    let mut guard = new_guard(config());
    let now = Instant::now();
    let a = connect(&mut guard, "10.0.0.1");
    let b = connect(&mut guard, "10.0.0.1");
    guard.connected(a, &at("10.0.0.1"));
    for id in 0..10 {
        guard.admit(a, id, RequestKind::Other, now).unwrap();
        guard.finished(id);
    }
    guard.disconnected(a, 1);
    guard.disconnected(a, 0);
    assert!(
        guard.admit(b, 20, RequestKind::Other, now).is_err(),
        "b shares the bucket"
    );
    guard.disconnected(b, 0);
    assert!(guard.buckets.is_empty() && guard.peers.is_empty());
    let relayed = PeerId::random();
    guard.connected(relayed, &"/p2p-circuit".parse().unwrap());
    assert_eq!(guard.address_of(&relayed), None);
    for id in 30..50 {
        assert!(guard.admit(relayed, id, RequestKind::Other, now).is_ok());
    }
}

/// A late answer goes to its peer as a request of its own only while the peer's unread bytes
/// stay within bounds; one dropped strikes the peer; a pushed answer read frees its bytes.
#[test]
fn late_answers_are_pushed_within_the_bounds() {
    let mut guard = new_guard(config());
    let now = Instant::now();
    let peer = connect(&mut guard, "10.0.0.1");
    assert!(guard.may_push(peer, 600, now).is_ok());
    guard.pushing(peer, 1, 600);
    assert_eq!(guard.unsent_bytes(), 600);
    let (refusal, ban) = guard.may_push(peer, 600, now).unwrap_err();
    assert_eq!(refusal, Refusal::Unsent { unsent: 600 });
    assert_eq!(ban, None);
    // Twenty dropped answers (5 points each) ban the peer.
    let bans = (0..19)
        .filter_map(|_| guard.may_push(peer, 600, now).unwrap_err().1)
        .count();
    assert_eq!(bans, 1);
    guard.push_finished(1);
    guard.push_finished(2);
    assert_eq!(guard.unsent_bytes(), 0);
    assert_eq!(guard.open_requests(), 0);
}

/// Fresh keys from fresh addresses of one IPv6 /64 share one bucket and one block share; a
/// neighbouring /64 has its own; an IPv4 client reaching a dual-stack socket shares its IPv4
/// address's bucket.
#[test]
fn addresses_of_one_ipv6_64_share_the_rate_and_the_shares() {
    let mut guard = new_guard(config());
    let now = Instant::now();
    let mut id = 0;
    let mut ask = |guard: &mut Guard<u64, u64>, peer, kind| {
        id += 1;
        guard.admit(peer, id, kind, now)
    };
    // Three block requests (the address's share) from three addresses of one /64, each a
    // fresh key: the fourth, from a fourth address, is refused for the /64's share.
    for host in 1..=3 {
        let peer = connect(&mut guard, &format!("2001:db8:1:2::{host}"));
        assert!(ask(&mut guard, peer, RequestKind::Block).is_ok());
    }
    let rotated = connect(&mut guard, "2001:db8:1:2:ffff::4");
    assert_eq!(
        ask(&mut guard, rotated, RequestKind::Block).unwrap_err().0,
        Refusal::AddressBlocksOpen { open: 3 }
    );
    let next_door = connect(&mut guard, "2001:db8:1:3::1");
    assert!(ask(&mut guard, next_door, RequestKind::Block).is_ok());
    // The rate: ten at once per address; the three above took three of the /64's tokens.
    for n in 0..7 {
        let peer = connect(&mut guard, &format!("2001:db8:1:2:{n}::9"));
        assert!(ask(&mut guard, peer, RequestKind::Other).is_ok(), "{n}");
    }
    let (refusal, _) = ask(&mut guard, rotated, RequestKind::Other).unwrap_err();
    assert_eq!(refusal, Refusal::Rate(key("2001:db8:1:2::")));
    assert_eq!(
        refusal.to_string(),
        "the address 2001:db8:1:2::/64 is over its request rate"
    );
    // IPv4: mapped or not, one bucket.
    for _ in 0..5 {
        let peer = connect(&mut guard, "192.0.2.7");
        assert!(ask(&mut guard, peer, RequestKind::Other).is_ok());
        let mapped = connect(&mut guard, "::ffff:192.0.2.7");
        assert!(ask(&mut guard, mapped, RequestKind::Other).is_ok());
    }
    let mapped = connect(&mut guard, "::ffff:192.0.2.7");
    assert_eq!(
        ask(&mut guard, mapped, RequestKind::Other).unwrap_err().0,
        Refusal::Rate(key("192.0.2.7"))
    );
    let other = connect(&mut guard, "192.0.2.8");
    assert!(ask(&mut guard, other, RequestKind::Other).is_ok());
}

/// A machine minting a key and an IPv6 address for each: the peers banned from one /64 add
/// up to the /64's ban, whatever their addresses; bans in another /64 do not count towards it;
/// an IPv4 address's bans count the same mapped or not.
#[test]
fn peers_banned_from_one_ipv6_64_ban_the_64() {
    let ban = |guard: &mut Guard<u64, u64>, ip: &str| {
        let peer = connect(guard, ip);
        (0..5)
            .find_map(|_| guard.strike(peer, Offence::Undecodable, Instant::now()))
            .expect("banned")
    };
    let mut guard = new_guard(config());
    assert_eq!(ban(&mut guard, "2001:db8:1:2::1").address, None);
    assert_eq!(ban(&mut guard, "2001:db8:1:3::1").address, None);
    assert_eq!(ban(&mut guard, "2001:db8:1:2:aaaa::2").address, None);
    assert_eq!(ban(&mut guard, "2001:db8:1:3::2").address, None);
    let banned = ban(&mut guard, "2001:db8:1:2:ffff:ffff:ffff:ffff").address;
    assert_eq!(banned, Some(key("2001:db8:1:2::")));
    assert_eq!(banned.unwrap().to_string(), "2001:db8:1:2::/64");
    assert_eq!(ban(&mut guard, "192.0.2.7").address, None);
    assert_eq!(ban(&mut guard, "::ffff:192.0.2.7").address, None);
    assert_eq!(ban(&mut guard, "192.0.2.8").address, None);
    assert_eq!(
        ban(&mut guard, "::ffff:192.0.2.7").address,
        Some(key("192.0.2.7"))
    );
}
