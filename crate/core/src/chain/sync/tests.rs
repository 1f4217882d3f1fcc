//! Tests of [`HeaderSync`] against sources that serve generated regtest chains
//! (`chain::generate`), honestly or not, answered by hand in virtual time.

use super::*;
use crate::base::rng::Rng;
use crate::chain::block::Block;
use crate::chain::generate::{generate_chain, GenerateConfig, Generator};
use crate::chain::headers::HeaderChainConfig;
use crate::chain::params::ChainParams;
use crate::chain::pow::U256;

/// "Now": 2033, after every generated header's time.
const T0: u64 = 2_000_000_000_000;

/// `n` generated blocks after genesis, empty but for their coinbase.
fn blocks(n: u32, seed: u64) -> Vec<Block> {
    generate_chain(&GenerateConfig {
        blocks: n,
        txs_per_block: 0,
        seed,
        ..GenerateConfig::default()
    })
    .unwrap()
}

fn headers(blocks: &[Block]) -> Vec<Header> {
    blocks.iter().map(|b| b.header).collect()
}

/// The first `keep` blocks of `base`, then `extra` blocks of another seed: a fork at `keep`.
fn fork(base: &[Block], keep: usize, extra: u32, seed: u64) -> Vec<Block> {
    let config = GenerateConfig {
        txs_per_block: 0,
        seed,
        ..GenerateConfig::default()
    };
    let mut generator = Generator::resume(&config, &base[..keep]).unwrap();
    let mut out = base[..keep].to_vec();
    for height in keep as u32 + 1..=keep as u32 + extra {
        out.push(
            generator
                .next_block(config.block_time(height).unwrap())
                .unwrap(),
        );
    }
    out
}

/// Small batches, so that a few hundred headers make many.
fn small(headers_per_request: u32) -> SyncConfig {
    SyncConfig {
        headers_per_request,
        ..SyncConfig::default()
    }
}

/// What a simulated source does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Honest,
    /// Never answers.
    Silent,
    /// The header at this height carries the wrong `nBits` (its hash changes with them, so
    /// its proof of work may fail first).
    BadBitsAt(u32),
    /// The headers at this height and the next come swapped.
    SwappedAt(u32),
    /// Claims a tip this much higher than its chain's.
    ClaimsMore(u32),
    /// Answers with headers from one height below the one asked (from the second request on).
    Shifted,
}

#[derive(Debug, Clone)]
struct Peer {
    /// Its chain: `chain[i]` at height `i + 1`.
    chain: Vec<Header>,
    behaviour: Behaviour,
}

impl Peer {
    fn honest(chain: Vec<Header>) -> Peer {
        Peer {
            chain,
            behaviour: Behaviour::Honest,
        }
    }

    fn answer(&self, request: &HeadersRequest<u8>) -> Option<Message> {
        let mut start = request.start_height;
        match self.behaviour {
            Behaviour::Silent => return None,
            Behaviour::Shifted if start > 1 => start -= 1,
            _ => {}
        }
        let mut headers: Vec<Header> = self
            .chain
            .iter()
            .skip(start as usize - 1)
            .take(request.max_count as usize)
            .copied()
            .collect();
        let mut tip_height = self.chain.len() as u32;
        let at = |height: u32| height.checked_sub(start).map(|i| i as usize);
        match self.behaviour {
            Behaviour::BadBitsAt(height) => {
                if let Some(h) = at(height).and_then(|i| headers.get_mut(i)) {
                    h.bits = 0x207f_fffe;
                }
            }
            Behaviour::SwappedAt(height) => {
                if let Some(i) = at(height).filter(|i| i + 1 < headers.len()) {
                    headers.swap(i, i + 1);
                }
            }
            Behaviour::ClaimsMore(extra) => tip_height += extra,
            _ => {}
        }
        Some(Message::Headers {
            request_id: request.id.0,
            start_height: request.start_height,
            tip_height,
            headers,
        })
    }
}

/// A sync, its chain and its sources (source `i` is `peers[i]`), answered by hand.
struct Harness {
    sync: HeaderSync<u8>,
    chain: HeaderChain,
    now_ms: u64,
    peers: Vec<Peer>,
    /// Requests sent and not answered by the harness yet, oldest first.
    pending: Vec<HeadersRequest<u8>>,
    /// Every request, with when it was sent.
    log: Vec<(u64, HeadersRequest<u8>)>,
    events: Vec<SyncEvent<u8>>,
    /// What a shell would have persisted from the events: the hash at height `i + 1` is
    /// `store[i]` (written as the page's shell writes, from the chain as it stands once the
    /// events are drained).
    store: Vec<BlockHash>,
}

impl Harness {
    /// `peers` with the window each is added with, all before the first request.
    fn new(config: SyncConfig, peers: Vec<(Peer, usize)>) -> Harness {
        Self::with_chain(config, HeaderChain::new(ChainParams::REGTEST), peers)
    }

    /// [`Harness::new`] on regtest with a minimum chain work of `min_work` (each regtest
    /// header proves work 2, genesis included).
    fn with_min_work(config: SyncConfig, min_work: u64, peers: Vec<(Peer, usize)>) -> Harness {
        let chain_config = HeaderChainConfig {
            min_chain_work: Some(U256::from_u64(min_work)),
            ..HeaderChainConfig::default()
        };
        let chain = HeaderChain::with_config(ChainParams::REGTEST, chain_config);
        Self::with_chain(config, chain, peers)
    }

    fn with_chain(config: SyncConfig, chain: HeaderChain, peers: Vec<(Peer, usize)>) -> Harness {
        let mut harness = Harness {
            sync: HeaderSync::new(config).unwrap(),
            chain,
            now_ms: T0,
            peers: Vec::new(),
            pending: Vec::new(),
            log: Vec::new(),
            events: Vec::new(),
            store: Vec::new(),
        };
        for (peer, window) in peers {
            let id = harness.peers.len() as u8;
            harness.peers.push(peer);
            harness.sync.handle_source_added(T0, id, window).unwrap();
        }
        harness.pump();
        harness
    }

    fn add(&mut self, peer: Peer, window: usize) -> u8 {
        let id = self.peers.len() as u8;
        self.peers.push(peer);
        self.sync
            .handle_source_added(self.now_ms, id, window)
            .unwrap();
        self.pump();
        id
    }

    /// Drains requests and events, checking the window's bounds on the way.
    fn pump(&mut self) {
        while let Some(request) = self.sync.poll_request(&self.chain) {
            self.log.push((self.now_ms, request.clone()));
            self.pending.push(request);
        }
        let mut lowest_changed: Option<u32> = None;
        while let Some(event) = self.sync.poll_event() {
            let lowest = match &event {
                SyncEvent::MinimumWorkReached { .. } => Some(1),
                SyncEvent::HeadersChanged(change) => change.lowest_height(),
                _ => None,
            };
            if let Some(height) = lowest {
                lowest_changed = Some(lowest_changed.map_or(height, |h| h.min(height)));
            }
            self.events.push(event);
        }
        if let Some(from) = lowest_changed {
            self.store.truncate(from as usize - 1);
            for height in from..=self.chain.tip_height() {
                self.store.push(self.chain.hash_at(height).unwrap());
            }
        }
        assert!(self.sync.batches_ahead() <= self.sync.config().max_batches_ahead);
    }

    /// Answers the pending request at `index` now (a silent source's is dropped).
    fn answer_at(&mut self, index: usize) {
        let request = self.pending.remove(index);
        if let Some(answer) = self.peers[request.source as usize].answer(&request) {
            self.sync
                .handle_answer(self.now_ms, &mut self.chain, request.id, answer);
        }
        self.pump();
    }

    /// Answers the oldest request of a source that answers; false if there is none.
    fn answer_next(&mut self) -> bool {
        let Some(index) = self
            .pending
            .iter()
            .position(|r| self.peers[r.source as usize].behaviour != Behaviour::Silent)
        else {
            return false;
        };
        self.answer_at(index);
        true
    }

    fn advance_to(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.sync.handle_timeout(now_ms, &self.chain);
        self.pump();
    }

    /// Moves time to the sync's next deadline; false if it has none.
    fn advance_to_deadline(&mut self) -> bool {
        match self.sync.poll_timeout() {
            Some(at_ms) => {
                assert!(at_ms >= self.now_ms, "a deadline in the past stays due");
                self.advance_to(at_ms);
                true
            }
            None => false,
        }
    }

    /// Answers everything answerable, moving time on when nothing is, until synced at
    /// `tip` (or `limit_ms` of virtual time passed).
    fn sync_to(&mut self, tip: BlockHash, limit_ms: u64) {
        let end_ms = self.now_ms + limit_ms;
        while !(self.sync.is_synced() && self.chain.tip_hash() == tip) {
            assert!(self.now_ms <= end_ms, "not synced within {limit_ms} ms");
            if !self.answer_next() && !self.advance_to_deadline() {
                panic!("nothing to do and not synced");
            }
        }
    }

    /// Heights connected and disconnected by every `HeadersChanged`, in order.
    fn changes(&self) -> Vec<&ChainChange> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SyncEvent::HeadersChanged(change) => Some(change),
                _ => None,
            })
            .collect()
    }

    fn progress(&self) -> Vec<Progress> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SyncEvent::Progress(p) => Some(*p),
                _ => None,
            })
            .collect()
    }

    fn demotions(&self, source: u8) -> Vec<&Demotion> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SyncEvent::SourceDemoted {
                    source: s, reason, ..
                } if *s == source => Some(reason),
                _ => None,
            })
            .collect()
    }

    /// The requests of the log sent to `source`, as start heights.
    fn asked(&self, source: u8) -> Vec<u32> {
        self.log
            .iter()
            .filter(|(_, r)| r.source == source)
            .map(|(_, r)| r.start_height)
            .collect()
    }
}

#[test]
fn a_catch_up_over_several_batches_verifies_them_in_height_order() {
    let chain = blocks(430, 1);
    let tip = chain.last().unwrap().block_hash();
    let mut h = Harness::new(small(50), vec![(Peer::honest(headers(&chain)), 6)]);
    // Six batches at consecutive heights go out at once.
    assert_eq!(h.asked(0), vec![1, 51, 101, 151, 201, 251]);
    // Answer the newest first: nothing is verified until the oldest arrives.
    for _ in 0..5 {
        let last = h.pending.len() - 1;
        h.answer_at(last);
    }
    assert_eq!(h.chain.tip_height(), 0);
    assert_eq!(h.sync.open_requests(), 1);
    h.answer_at(0);
    assert_eq!(h.chain.tip_height(), 300);
    h.sync_to(tip, 1_000);

    let mut connected = Vec::new();
    for change in h.changes() {
        assert!(change.disconnected.is_empty());
        connected.extend(change.connected.iter().map(|(height, _)| *height));
    }
    assert_eq!(connected, (1..=430).collect::<Vec<_>>());
    assert_eq!(h.asked(0), (0..9).map(|i| 1 + 50 * i).collect::<Vec<_>>());
    assert_eq!(h.sync.stats().headers_used, 430);
    let progress = h.progress();
    assert!(progress[..progress.len() - 1]
        .iter()
        .all(|p| !p.synced && p.target == Some(430) && p.height < 430));
    assert_eq!(
        progress.last(),
        Some(&Progress {
            height: 430,
            target: Some(430),
            synced: true
        })
    );
    assert_eq!(h.sync.open_requests(), 0);
}

/// The page's case (`tests/e2e/sync-progress.test.mjs`): 4,100 headers in batches of 2,000.
#[test]
fn full_batches_of_2000_headers_end_with_a_short_one() {
    let chain = blocks(4_100, 2);
    let tip = chain.last().unwrap().block_hash();
    let mut h = Harness::new(
        SyncConfig::default(),
        vec![(Peer::honest(headers(&chain)), 2)],
    );
    assert_eq!(h.asked(0), vec![1, 2_001]);
    h.sync_to(tip, 1_000);
    // Once the first answer said the tip is at 4,100, nothing above it was asked.
    assert_eq!(h.asked(0), vec![1, 2_001, 4_001]);
    assert_eq!(
        h.progress(),
        vec![
            Progress {
                height: 2_000,
                target: Some(4_100),
                synced: false
            },
            Progress {
                height: 4_000,
                target: Some(4_100),
                synced: false
            },
            Progress {
                height: 4_100,
                target: Some(4_100),
                synced: true
            },
        ]
    );
}

#[test]
fn the_window_and_every_sources_unanswered_requests_stay_within_bounds() {
    let chain = headers(&blocks(700, 3));
    let tip = chain.last().unwrap().block_hash();
    for seed in 0..8 {
        let mut h = Harness::new(
            small(25),
            vec![
                (Peer::honest(chain.clone()), 2), // WebRTC-direct
                (Peer::honest(chain.clone()), 6), // WebSocket
                (Peer::honest(chain.clone()), 1),
            ],
        );
        let mut rng = Rng::new(seed);
        while !h.sync.is_synced() {
            assert!(h.sync.unanswered(0) <= 2);
            assert!(h.sync.unanswered(1) <= 6);
            assert!(h.sync.unanswered(2) <= 1);
            assert!(h.sync.batches_ahead() <= 6);
            // Open requests are batches at consecutive heights from the tip up.
            let mut starts: Vec<u32> = h.pending.iter().map(|r| r.start_height).collect();
            starts.sort_unstable();
            let next = h.chain.tip_height() + 1;
            assert!(starts
                .iter()
                .all(|s| s >= &next && (s - next) % 25 == 0 && *s < next + 150));
            let index = rng.index(h.pending.len());
            h.answer_at(index);
        }
        assert_eq!(h.chain.tip_hash(), tip, "seed {seed}");
        assert_eq!(h.sync.stats().reasks, 0);
        assert_eq!(h.sync.stats().headers_used, 700);
        // All three were used.
        assert!((0..3).all(|s| !h.asked(s).is_empty()));
    }
}

#[test]
fn a_late_batch_is_asked_again_of_another_source_and_the_first_answer_wins() {
    let chain = headers(&blocks(120, 4));
    let tip = chain.last().unwrap().block_hash();
    let mut h = Harness::new(
        small(50),
        vec![
            (Peer::honest(chain.clone()), 1),
            (Peer::honest(chain.clone()), 1),
        ],
    );
    assert_eq!(h.asked(0), vec![1]);
    assert_eq!(h.asked(1), vec![51]);
    // Source 1 answers; source 0 is slow with the batch next to verify.
    h.answer_at(1);
    assert_eq!(h.asked(1), vec![51, 101], "it has room again");
    assert_eq!(h.sync.poll_timeout(), Some(T0 + 150));
    h.advance_to(T0 + 149);
    assert_eq!(h.log.len(), 3);
    h.advance_to(T0 + 150);
    assert_eq!(
        h.asked(1),
        vec![51, 101, 1],
        "asked again, of the other source"
    );
    // The re-ask's answer comes first and is used.
    let reask = h
        .pending
        .iter()
        .position(|r| r.source == 1 && r.start_height == 1)
        .unwrap();
    h.answer_at(reask);
    assert_eq!(h.chain.tip_height(), 100);
    let used = h.sync.stats().headers_used;
    let changes = h.changes().len();
    // The slow answer comes after: ignored, not counted.
    let slow = h.pending.iter().position(|r| r.start_height == 1).unwrap();
    h.answer_at(slow);
    assert_eq!(h.sync.stats().headers_used, used);
    assert_eq!(h.sync.stats().answers_ignored, 1);
    assert_eq!(h.changes().len(), changes);
    h.sync_to(tip, 1_000);
    assert_eq!(h.sync.stats().reasks, 1);
}

#[test]
fn a_late_batch_is_asked_again_after_150_300_and_600_ms_then_no_more() {
    let chain = headers(&blocks(60, 5));
    let mut h = Harness::new(small(50), vec![(Peer::honest(chain), 1)]);
    // The only source: asked again on new streams, at most three times.
    h.log.clear();
    while let Some(at_ms) = h.sync.poll_timeout().filter(|at| *at < T0 + 5_000) {
        h.advance_to(at_ms);
    }
    let times: Vec<u64> = h.log.iter().map(|(t, _)| t - T0).collect();
    assert_eq!(times, vec![150, 450, 1_050]);
    assert_eq!(h.asked(0), vec![1, 1, 1]);
    assert_eq!(h.sync.stats().reasks, 3);
    // The first ask times out at 10 s; its re-asks are still awaited.
    assert_eq!(h.sync.poll_timeout(), Some(T0 + 10_000));
    // Any of the four answers the batch.
    h.answer_at(2);
    assert_eq!(h.chain.tip_height(), 50);
}

#[test]
fn a_silent_source_is_demoted_and_the_other_completes_the_sync() {
    let chain = headers(&blocks(400, 6));
    let tip = chain.last().unwrap().block_hash();
    let silent = Peer {
        chain: chain.clone(),
        behaviour: Behaviour::Silent,
    };
    let mut h = Harness::new(
        small(20),
        vec![(silent, 2), (Peer::honest(chain.clone()), 2)],
    );
    h.sync_to(tip, 60_000);
    assert_eq!(h.demotions(0), vec![&Demotion::Stalled { failures: 3 }]);
    assert!(matches!(
        h.sync.source_standing(0),
        Some(SourceStanding::Demoted { .. })
    ));
    assert_eq!(h.sync.source_standing(1), Some(SourceStanding::Good));
    // Each of its batches cost one late re-ask, and only a few were given it.
    assert!(h.asked(0).len() <= 4, "{:?}", h.asked(0));
    assert!(h.now_ms - T0 < 1_000, "took {} ms", h.now_ms - T0);
}

#[test]
fn a_source_whose_requests_time_out_is_demoted_and_a_new_one_takes_over() {
    let chain = headers(&blocks(100, 7));
    let tip = chain.last().unwrap().block_hash();
    let silent = Peer {
        chain: chain.clone(),
        behaviour: Behaviour::Silent,
    };
    let config = SyncConfig {
        max_reasks: 0,
        ..small(50)
    };
    let mut h = Harness::new(config, vec![(silent, 1)]);
    // Three requests in a row time out (10 s each, asked again at once).
    h.advance_to(T0 + 10_000);
    h.advance_to(T0 + 20_000);
    assert!(h.demotions(0).is_empty());
    h.advance_to(T0 + 30_000);
    assert_eq!(h.demotions(0), vec![&Demotion::Stalled { failures: 3 }]);
    assert_eq!(h.sync.stats().timeouts, 3);
    assert_eq!(
        h.sync.source_standing(0),
        Some(SourceStanding::Demoted {
            until_ms: T0 + 31_000
        })
    );
    assert_eq!(h.sync.open_requests(), 0);
    let honest = h.add(Peer::honest(chain), 2);
    h.sync_to(tip, 1_000);
    // Its first answer said the tip is at 100: nothing above was asked.
    assert_eq!(h.asked(honest), vec![1, 51]);
}

/// A liar and an honest source, both with room for every batch: the liar is demoted and the
/// honest source's chain is the one synced.
fn liar_is_demoted(liar: Peer, honest: Vec<Header>) -> Harness {
    let tip = honest.last().unwrap().block_hash();
    let mut h = Harness::new(small(25), vec![(liar, 3), (Peer::honest(honest), 3)]);
    h.sync_to(tip, 60_000);
    assert_eq!(h.sync.source_standing(1), Some(SourceStanding::Good));
    assert!(!h.demotions(0).is_empty(), "the liar was not demoted");
    assert!(h.demotions(1).is_empty());
    // Every change connected the honest chain (a liar's valid prefix is the honest chain's).
    let changes = h.changes();
    assert!(changes.iter().all(|c| c.disconnected.is_empty()));
    h
}

#[test]
fn a_source_sending_an_invalid_header_is_demoted() {
    let chain = headers(&blocks(300, 8));
    let liar = Peer {
        chain: chain.clone(),
        behaviour: Behaviour::BadBitsAt(60),
    };
    let h = liar_is_demoted(liar, chain);
    assert!(matches!(
        h.demotions(0)[0],
        Demotion::InvalidHeader {
            height: 60,
            error: HeaderError::BadDifficulty { .. } | HeaderError::BadPow { .. }
        }
    ));
}

#[test]
fn a_source_sending_headers_out_of_order_is_demoted() {
    let chain = headers(&blocks(300, 9));
    let liar = Peer {
        chain: chain.clone(),
        behaviour: Behaviour::SwappedAt(10),
    };
    let h = liar_is_demoted(liar, chain);
    assert!(matches!(
        h.demotions(0)[0],
        Demotion::InvalidHeader {
            height: 10,
            error: HeaderError::Unconnected { .. }
        }
    ));
}

#[test]
fn a_source_answering_for_heights_not_asked_is_demoted() {
    let chain = headers(&blocks(300, 10));
    let liar = Peer {
        chain: chain.clone(),
        behaviour: Behaviour::Shifted,
    };
    let h = liar_is_demoted(liar, chain);
    assert!(matches!(h.demotions(0)[0], Demotion::WrongHeights { .. }));
}

#[test]
fn a_short_answer_while_claiming_a_higher_tip_is_demoted() {
    let chain = headers(&blocks(110, 11));
    let liar = Peer {
        chain: chain.clone(),
        behaviour: Behaviour::ClaimsMore(1_000),
    };
    let h = liar_is_demoted(liar, chain);
    assert!(matches!(
        h.demotions(0)[0],
        Demotion::ShortAnswer {
            claimed_tip: 1_110,
            ..
        }
    ));
    // Its claim no longer counts: the target is the honest tip.
    assert_eq!(h.progress().last().unwrap().target, Some(110));
}

#[test]
fn a_source_on_a_cheaper_fork_is_demoted() {
    let honest = blocks(300, 12);
    // Leaves the honest chain above 200 and ends at 260: less work than the honest 300.
    let cheaper = headers(&fork(&honest, 200, 60, 99));
    let mut h = Harness::new(
        small(50),
        vec![
            (Peer::honest(headers(&honest)), 6),
            (Peer::honest(cheaper), 6),
        ],
    );
    h.sync_to(honest[299].block_hash(), 60_000);
    // Its batch above 250 did not connect to the honest 250: it is asked deeper (16, then
    // 64 below) until its branch connects, then along the branch, which ends at 260 with less
    // work.
    while h.answer_next() {}
    assert_eq!(h.asked(1)[h.asked(1).len() - 3..], [235, 187, 237]);
    assert_eq!(
        h.demotions(1),
        vec![&Demotion::CheaperFork { tip_height: 260 }]
    );
    assert!(h.demotions(0).is_empty());
    assert!(h.changes().iter().all(|c| c.disconnected.is_empty()));
    assert_eq!(h.sync.source_standing(0), Some(SourceStanding::Good));
}

#[test]
fn a_chain_that_connects_nowhere_is_a_lie_after_the_deepest_search() {
    let chain = headers(&blocks(100, 13));
    let mut stranger = headers(&blocks(150, 113));
    // Its headers build on blocks nobody knows (their proof of work does not matter: they
    // are refused before).
    for (i, header) in stranger.iter_mut().enumerate() {
        header.prev_blockhash = BlockHash([i as u8 + 1; 32]);
    }
    let config = SyncConfig {
        max_fork_depth: 64,
        ..small(25)
    };
    let mut h = Harness::new(config, vec![(Peer::honest(chain.clone()), 2)]);
    h.sync_to(chain[99].block_hash(), 1_000);
    // Added once synced: polled above the tip, then asked 16 and 64 deeper.
    let stranger = h.add(Peer::honest(stranger), 2);
    while h.answer_next() {}
    assert_eq!(h.asked(stranger), vec![101, 85, 37]);
    assert_eq!(
        h.demotions(stranger),
        vec![&Demotion::Unconnected { from: 101 }]
    );
    assert!(h.sync.is_synced());
    assert_eq!(h.progress().last().unwrap().target, Some(100));
}

#[test]
fn a_reorganisation_switches_the_best_chain_and_says_which_heights_left() {
    let old = blocks(300, 14);
    let new = fork(&old, 290, 20, 77); // heights 291..=310 replace 291..=300
    let mut h = Harness::new(small(100), vec![(Peer::honest(headers(&old)), 2)]);
    h.sync_to(old[299].block_hash(), 1_000);
    h.events.clear();
    // The source moves to the other branch; the next poll finds it.
    h.peers[0].chain = headers(&new);
    let synced_at = h.now_ms;
    h.sync_to(new[309].block_hash(), 10_000);
    assert_eq!(h.now_ms, synced_at + 5_000, "found by the 5 s poll");
    // Asked above the tip (301: does not connect), then 16 deeper (285: connects at 284).
    assert_eq!(h.asked(0)[h.asked(0).len() - 2..], [301, 285]);
    let changes = h.changes();
    assert_eq!(changes.len(), 1);
    let disconnected: Vec<(u32, BlockHash)> = (291..=300)
        .rev()
        .map(|height| (height, old[height as usize - 1].block_hash()))
        .collect();
    let connected: Vec<(u32, BlockHash)> = (291..=310)
        .map(|height| (height, new[height as usize - 1].block_hash()))
        .collect();
    assert_eq!(changes[0].disconnected, disconnected);
    assert_eq!(changes[0].connected, connected);
    assert_eq!(changes[0].lowest_height(), Some(291));
    assert!(h.demotions(0).is_empty());
    assert_eq!(
        h.progress().last(),
        Some(&Progress {
            height: 310,
            target: Some(310),
            synced: true
        })
    );
}

#[test]
fn a_branch_longer_than_one_batch_is_followed_until_it_has_more_work() {
    let old = blocks(200, 15);
    // Forks at 100: the new branch needs two batches of 60 before it has more work.
    let new = fork(&old, 100, 130, 78);
    let mut h = Harness::new(small(60), vec![(Peer::honest(headers(&old)), 2)]);
    h.sync_to(old[199].block_hash(), 1_000);
    h.events.clear();
    h.peers[0].chain = headers(&new);
    h.sync_to(new[229].block_hash(), 10_000);
    let disconnected: Vec<u32> = h
        .changes()
        .iter()
        .flat_map(|c| c.disconnected.iter().map(|(height, _)| *height))
        .collect();
    assert_eq!(disconnected, (101..=200).rev().collect::<Vec<_>>());
    assert!(h.demotions(0).is_empty());
}

#[test]
fn once_synced_every_source_is_polled_every_5_s_for_new_headers() {
    let mut chain = blocks(80, 16);
    let mut h = Harness::new(
        small(50),
        vec![
            (Peer::honest(headers(&chain)), 2),
            (Peer::honest(headers(&chain)), 6),
        ],
    );
    h.sync_to(chain[79].block_hash(), 1_000);
    let synced_at = h.now_ms;
    h.log.clear();
    assert_eq!(h.sync.poll_timeout(), Some(synced_at + 5_000));
    h.advance_to(synced_at + 4_999);
    assert!(h.log.is_empty());
    h.advance_to(synced_at + 5_000);
    assert_eq!(h.asked(0), vec![81]);
    assert_eq!(h.asked(1), vec![81]);
    while h.answer_next() {}
    assert!(h.sync.is_synced());
    assert_eq!(h.chain.tip_height(), 80);

    // A new block on one source: the next poll brings it.
    let config = GenerateConfig {
        txs_per_block: 0,
        seed: 16,
        ..GenerateConfig::default()
    };
    let next = Generator::resume(&config, &chain)
        .unwrap()
        .next_block(config.block_time(81).unwrap())
        .unwrap();
    chain.push(next);
    h.peers[1].chain = headers(&chain);
    h.events.clear();
    h.advance_to(synced_at + 10_000);
    while h.answer_next() {}
    assert_eq!(h.chain.tip_hash(), chain[80].block_hash());
    assert_eq!(h.changes()[0].connected, vec![(81, chain[80].block_hash())]);
    assert_eq!(
        h.progress(),
        vec![Progress {
            height: 81,
            target: Some(81),
            synced: true
        }]
    );
    assert_eq!(h.sync.poll_timeout(), Some(synced_at + 15_000));
}

#[test]
fn a_source_added_once_synced_is_asked_at_once_and_a_higher_claim_resumes_the_catch_up() {
    let chain = blocks(250, 17);
    let short = headers(&chain[..100]);
    let mut h = Harness::new(small(50), vec![(Peer::honest(short), 2)]);
    h.sync_to(chain[99].block_hash(), 1_000);
    h.log.clear();
    let newcomer = h.add(Peer::honest(headers(&chain)), 2);
    assert_eq!(h.asked(newcomer), vec![101]);
    h.answer_next();
    // A full answer claiming 250: catching up again, from the newcomer only (the first
    // source claims less than the heights asked).
    assert!(!h.sync.is_synced());
    assert_eq!(h.asked(newcomer), vec![101, 151, 201]);
    h.sync_to(chain[249].block_hash(), 1_000);
    assert_eq!(h.asked(0), Vec::<u32>::new());
}

#[test]
fn a_demoted_source_is_asked_again_only_when_no_better_one_can_be() {
    let chain = headers(&blocks(200, 18));
    let liar = Peer {
        chain: chain.clone(),
        behaviour: Behaviour::BadBitsAt(5),
    };
    let mut h = Harness::new(small(50), vec![(liar, 2), (Peer::honest(chain.clone()), 2)]);
    // The liar is demoted at its first answer, for a second; the honest source completes.
    h.answer_next();
    assert!(matches!(
        h.sync.source_standing(0),
        Some(SourceStanding::Demoted { until_ms }) if until_ms == T0 + 1_000
    ));
    h.sync_to(chain[199].block_hash(), 1_000);
    // Its demotion over, it is on probation: while the honest source can be asked, only the
    // honest one is polled.
    h.advance_to(T0 + 1_000);
    assert_eq!(h.sync.source_standing(0), Some(SourceStanding::Probation));
    h.log.clear();
    h.advance_to(T0 + 5_000);
    assert_eq!(h.asked(0), Vec::<u32>::new());
    assert_eq!(h.asked(1), vec![201]);
    while h.answer_next() {}
    // Without the honest one, the liar is asked (a last resort); answering well, it is in
    // good standing again.
    h.sync.handle_source_removed(h.now_ms, &h.chain, 1);
    h.pump();
    h.advance_to(T0 + 10_000);
    assert_eq!(h.asked(0), vec![201]);
    while h.answer_next() {}
    assert_eq!(h.sync.source_standing(0), Some(SourceStanding::Good));
    assert!(h.sync.is_synced());
}

#[test]
fn a_source_demoted_again_waits_twice_as_long() {
    let chain = headers(&blocks(100, 21));
    let liar = Peer {
        chain: chain.clone(),
        behaviour: Behaviour::BadBitsAt(5),
    };
    let mut h = Harness::new(small(50), vec![(liar, 1)]);
    let mut benched = Vec::new();
    for _ in 0..4 {
        h.answer_next();
        match h.sync.source_standing(0) {
            Some(SourceStanding::Demoted { until_ms }) => benched.push(until_ms - h.now_ms),
            other => panic!("not demoted: {other:?}"),
        }
        assert!(h.pending.is_empty() || h.sync.open_requests() == 0);
        h.pending.clear();
        assert!(h.advance_to_deadline());
    }
    assert_eq!(benched, vec![1_000, 2_000, 4_000, 8_000]);
    // Its valid headers below the bad one were taken, once.
    assert_eq!(h.chain.tip_height(), 4);
}

#[test]
fn a_failed_batch_is_asked_of_another_source_without_dropping_the_window() {
    let chain = headers(&blocks(300, 19));
    let mut h = Harness::new(
        small(50),
        vec![
            (Peer::honest(chain.clone()), 3),
            (Peer::honest(chain.clone()), 3),
        ],
    );
    let first = h.pending.iter().position(|r| r.start_height == 1).unwrap();
    let failed = h.pending.remove(first);
    assert!(h
        .sync
        .handle_failure(h.now_ms, &h.chain, failed.id, RequestFailure::Transport));
    h.pump();
    let again: Vec<_> = h.pending.iter().filter(|r| r.start_height == 1).collect();
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].source, failed.source);
    // Failing it again is not news.
    assert!(!h
        .sync
        .handle_failure(h.now_ms, &h.chain, failed.id, RequestFailure::Transport));
    h.sync_to(chain[299].block_hash(), 1_000);
    assert_eq!(h.sync.stats().window_resets, 0);
    assert_eq!(h.sync.stats().headers_used, 300);
}

#[test]
fn a_removed_sources_batches_go_to_the_others_and_synced_outlives_every_source() {
    let chain = headers(&blocks(300, 22));
    let mut h = Harness::new(
        small(50),
        vec![
            (Peer::honest(chain.clone()), 3),
            (Peer::honest(chain.clone()), 3),
        ],
    );
    assert_eq!(h.asked(0), vec![1, 101, 201]);
    h.sync.handle_source_removed(h.now_ms, &h.chain, 0);
    h.pending.retain(|r| r.source != 0);
    h.pump();
    // Its batches are asked of the other source as it has room, lowest first.
    h.sync_to(chain[299].block_hash(), 1_000);
    assert_eq!(h.asked(1)[..4], [51, 151, 251, 1]);
    assert_eq!(h.sync.stats().headers_used, 300);
    // With no source left nothing is known: still synced, and polled once one comes back.
    h.sync.handle_source_removed(h.now_ms, &h.chain, 1);
    assert!(h.sync.is_synced());
    assert_eq!(h.sync.sources().count(), 0);
    h.log.clear();
    h.sync.handle_source_added(h.now_ms, 1, 3).unwrap();
    h.pump();
    assert_eq!(h.asked(1), vec![301]);
}

#[test]
fn sources_and_configuration_are_bounded() {
    let mut sync: HeaderSync<u32> = HeaderSync::new(SyncConfig {
        max_sources: 2,
        max_batches_ahead: 30,
        ..SyncConfig::default()
    })
    .unwrap();
    sync.handle_source_added(T0, 1, 100).unwrap();
    assert_eq!(
        sync.handle_source_added(T0, 1, 2),
        Err(SyncError::AlreadyAdded)
    );
    sync.handle_source_added(T0, 2, 0).unwrap();
    assert_eq!(
        sync.handle_source_added(T0, 3, 2),
        Err(SyncError::TooManySources { limit: 2 })
    );
    let chain = HeaderChain::new(ChainParams::REGTEST);
    let mut requests = Vec::new();
    while let Some(r) = sync.poll_request(&chain) {
        requests.push(r);
    }
    // Source 1's window is capped at 16, source 2's raised to 1.
    assert_eq!(requests.len(), 17);
    assert_eq!(sync.unanswered(1), 16);
    assert_eq!(sync.unanswered(2), 1);
    for bad in [
        SyncConfig {
            headers_per_request: 2_001,
            ..SyncConfig::default()
        },
        SyncConfig {
            max_batches_ahead: 0,
            ..SyncConfig::default()
        },
        SyncConfig {
            max_failures_in_a_row: 0,
            ..SyncConfig::default()
        },
    ] {
        assert!(matches!(
            HeaderSync::<u32>::new(bad),
            Err(SyncError::BadConfig(_))
        ));
    }
}

#[test]
fn a_non_headers_answer_or_undecodable_bytes_demote_at_once() {
    let chain = headers(&blocks(100, 20));
    let mut h = Harness::new(
        small(50),
        vec![
            (Peer::honest(chain.clone()), 1),
            (Peer::honest(chain.clone()), 1),
        ],
    );
    let r0 = h.pending.remove(0);
    h.sync.handle_answer(
        h.now_ms,
        &mut h.chain,
        r0.id,
        Message::BlockNotFound {
            request_id: r0.id.0,
        },
    );
    let r1 = h.pending.remove(0);
    h.sync
        .handle_failure(h.now_ms, &h.chain, r1.id, RequestFailure::Malformed);
    h.pump();
    assert_eq!(h.demotions(0), vec![&Demotion::NotHeaders]);
    assert_eq!(h.demotions(1), vec![&Demotion::NotHeaders]);
    // Both benched for a second: nothing is asked until then.
    assert!(h.pending.is_empty());
    assert_eq!(h.sync.poll_timeout(), Some(T0 + 1_000));
    h.advance_to(T0 + 1_000);
    h.sync_to(chain[99].block_hash(), 1_000);
}

/// The block after `chain`'s last, as its generator makes it.
fn next_block(chain: &[Block], seed: u64) -> Block {
    let config = GenerateConfig {
        txs_per_block: 0,
        seed,
        ..GenerateConfig::default()
    };
    let height = chain.len() as u32 + 1;
    Generator::resume(&config, chain)
        .unwrap()
        .next_block(config.block_time(height).unwrap())
        .unwrap()
}

#[test]
fn an_announced_header_that_extends_the_tip_is_accepted_at_once_without_a_request() {
    let mut chain = blocks(60, 30);
    let mut h = Harness::new(small(50), vec![(Peer::honest(headers(&chain)), 2)]);
    h.sync_to(chain[59].block_hash(), 1_000);
    h.log.clear();
    h.events.clear();
    let next = next_block(&chain, 30);
    chain.push(next.clone());
    h.sync
        .handle_announcement(h.now_ms, &mut h.chain, 0, next.header);
    h.pump();
    assert!(h.log.is_empty(), "no request: {:?}", h.log);
    assert_eq!(h.chain.tip_hash(), next.block_hash());
    assert_eq!(h.changes()[0].connected, vec![(61, next.block_hash())]);
    assert!(h.sync.is_synced());
    assert_eq!(h.sync.stats().announcements_accepted, 1);
    // The same announcement again (another relay, or a repeat) changes nothing.
    h.events.clear();
    h.sync
        .handle_announcement(h.now_ms, &mut h.chain, 0, next.header);
    h.pump();
    assert!(h.log.is_empty() && h.changes().is_empty());
    assert!(h.demotions(0).is_empty());
}

#[test]
fn an_announced_header_that_does_not_extend_the_tip_makes_that_source_asked_at_once() {
    let mut chain = blocks(60, 31);
    let mut h = Harness::new(
        small(50),
        vec![
            (Peer::honest(headers(&chain)), 2),
            (Peer::honest(headers(&chain)), 2),
        ],
    );
    h.sync_to(chain[59].block_hash(), 1_000);
    // Two new blocks; only the second is announced (the first announcement was lost).
    for _ in 0..2 {
        let next = next_block(&chain, 31);
        chain.push(next);
    }
    h.peers[1].chain = headers(&chain);
    h.log.clear();
    h.sync
        .handle_announcement(h.now_ms, &mut h.chain, 1, chain[61].header);
    h.pump();
    assert_eq!(
        h.asked(1),
        vec![61],
        "the announcing source is asked above the tip"
    );
    assert!(h.asked(0).is_empty(), "the other is not");
    assert_eq!(h.chain.tip_height(), 60, "nothing accepted unconnected");
    while h.answer_next() {}
    assert_eq!(h.chain.tip_hash(), chain[61].block_hash());
    assert!(h.demotions(1).is_empty());
}

#[test]
fn an_announced_header_that_fails_the_checks_demotes_its_source() {
    let mut chain = blocks(60, 32);
    let mut h = Harness::new(
        small(50),
        vec![
            (Peer::honest(headers(&chain)), 2),
            (Peer::honest(headers(&chain)), 2),
        ],
    );
    h.sync_to(chain[59].block_hash(), 1_000);
    let next = next_block(&chain, 32);
    chain.push(next.clone());
    // Junk: the right parent, a difficulty this chain does not allow.
    let mut junk = next.header;
    junk.bits = 0x207f_fffe;
    h.sync.handle_announcement(h.now_ms, &mut h.chain, 1, junk);
    h.pump();
    assert_eq!(h.chain.tip_height(), 60, "the junk was not accepted");
    assert!(matches!(
        h.demotions(1)[..],
        [Demotion::InvalidHeader { height: 61, .. }]
    ));
    assert!(h.demotions(0).is_empty());
    // The honest source's announcement still goes through.
    h.sync
        .handle_announcement(h.now_ms, &mut h.chain, 0, next.header);
    h.pump();
    assert_eq!(h.chain.tip_hash(), next.block_hash());
}

#[test]
fn an_announcement_from_an_unknown_source_is_ignored() {
    let chain = blocks(60, 33);
    let mut h = Harness::new(small(50), vec![(Peer::honest(headers(&chain)), 2)]);
    h.sync_to(chain[59].block_hash(), 1_000);
    let next = next_block(&chain, 33);
    h.log.clear();
    h.sync
        .handle_announcement(h.now_ms, &mut h.chain, 9, next.header);
    h.pump();
    assert!(h.log.is_empty());
    assert_eq!(h.chain.tip_height(), 60);
}

fn hashes(blocks: &[Block]) -> Vec<BlockHash> {
    blocks.iter().map(Block::block_hash).collect()
}

#[test]
fn a_low_work_chain_is_neither_persisted_nor_synced_and_its_source_is_dropped_once_done() {
    // The minimum is the work of 100 regtest headers and genesis: the liar's 60 valid
    // headers fall short, the honest 150 reach it.
    let min_work = 2 * 101;
    let low = blocks(60, 40);
    let honest = blocks(150, 41);
    let mut h = Harness::with_min_work(small(25), min_work, vec![(Peer::honest(headers(&low)), 2)]);
    while h.answer_next() {}
    // Every header was checked and held, but nothing was reported to persist, and the sync
    // is not synced though the source has nothing more.
    assert!(h.store.is_empty());
    assert!(h.changes().is_empty());
    assert!(!h.sync.is_synced());
    assert!(h.progress().iter().all(|p| !p.synced));
    assert_eq!(h.sync.stats().headers_used, 60);
    assert_eq!(
        h.demotions(0),
        vec![&Demotion::BelowMinimumWork { tip_height: 60 }]
    );
    // No one can take it further: the chain is dropped, not kept to build on.
    assert_eq!(h.chain.tip_height(), 0);
    assert_eq!(h.sync.stats().chains_dropped, 1);

    // An honest source with more work syncs from genesis as usual.
    let honest_id = h.add(Peer::honest(headers(&honest)), 2);
    h.sync_to(honest[149].block_hash(), 60_000);
    assert!(h.chain.has_minimum_work());
    assert_eq!(h.store, hashes(&honest));
    let reached: Vec<u32> = h
        .events
        .iter()
        .filter_map(|e| match e {
            SyncEvent::MinimumWorkReached { tip_height } => Some(*tip_height),
            _ => None,
        })
        .collect();
    // Reached with the batch holding height 100 (batches of 25 from 1).
    assert_eq!(reached, vec![100]);
    // After it, every change is reported as before.
    let connected: Vec<u32> = h
        .changes()
        .iter()
        .flat_map(|c| c.connected.iter().map(|(height, _)| *height))
        .collect();
    assert_eq!(connected, (101..=150).collect::<Vec<_>>());
    assert!(h.demotions(honest_id).is_empty());
    assert_eq!(
        h.progress().last(),
        Some(&Progress {
            height: 150,
            target: Some(150),
            synced: true
        })
    );
}

#[test]
fn a_source_ending_below_the_minimum_while_another_claims_more_is_dropped_alone() {
    // Both serve the same chain; one is behind. It is demoted when its part ends, the chain
    // is kept (the other claims more) and the sync goes on from it.
    let chain = blocks(150, 42);
    let behind = headers(&chain[..40]);
    let mut h = Harness::with_min_work(
        small(25),
        2 * 101,
        vec![
            (Peer::honest(headers(&chain)), 2),
            (Peer::honest(behind), 2),
        ],
    );
    h.sync_to(chain[149].block_hash(), 60_000);
    assert_eq!(
        h.demotions(1),
        vec![&Demotion::BelowMinimumWork { tip_height: 40 }]
    );
    assert_eq!(h.sync.stats().chains_dropped, 0);
    assert_eq!(h.sync.stats().headers_used, 150, "nothing downloaded twice");
    assert_eq!(h.store, hashes(&chain));
}

#[test]
fn a_low_work_fork_from_genesis_loses_to_the_real_chain_and_nothing_of_it_is_persisted() {
    // The liar is added first and answers first: its fork from genesis is the best chain
    // for a while. Its work never reaches the minimum, so none of it is persisted, and the
    // real chain replaces it.
    let real = blocks(150, 43);
    let low = blocks(70, 44);
    let mut h = Harness::with_min_work(
        small(25),
        2 * 101,
        vec![
            (Peer::honest(headers(&low)), 2),
            (Peer::honest(headers(&real)), 2),
        ],
    );
    // Answer the liar's first batch before anything else.
    let first = h.pending.iter().position(|r| r.source == 0).unwrap();
    h.answer_at(first);
    assert_eq!(h.chain.tip_hash(), low[24].block_hash());
    assert!(h.store.is_empty());
    h.sync_to(real[149].block_hash(), 120_000);
    while h.answer_next() {}
    assert_eq!(h.store, hashes(&real));
    let fork: Vec<BlockHash> = hashes(&low);
    assert!(h.store.iter().all(|hash| !fork.contains(hash)));
    assert!(!h.demotions(0).is_empty(), "the liar is demoted");
    assert!(h.demotions(1).is_empty(), "the honest source is not");
    assert!(h.sync.is_synced());
    // No reported change ever disconnected a block: the fork was never persisted to undo.
    assert!(h.changes().iter().all(|c| c.disconnected.is_empty()));
}

#[test]
fn with_no_minimum_the_first_batch_is_reported_as_a_change() {
    // Regtest's minimum is zero: genesis alone is trusted, so the page's and the demo's
    // sync is what it was (no `MinimumWorkReached`, every batch a change).
    let chain = blocks(60, 45);
    let mut h = Harness::new(small(25), vec![(Peer::honest(headers(&chain)), 2)]);
    h.sync_to(chain[59].block_hash(), 1_000);
    assert!(h
        .events
        .iter()
        .all(|e| !matches!(e, SyncEvent::MinimumWorkReached { .. })));
    assert_eq!(h.changes().len(), 3);
    assert_eq!(h.store, hashes(&chain));
}

#[test]
fn a_chain_below_the_minimum_is_not_synced_even_when_no_source_claims_more() {
    // A source with nothing above genesis claims tip 0: the tip has reached every claim, but
    // genesis alone is far below the minimum.
    let mut h = Harness::with_min_work(small(25), 2 * 101, vec![(Peer::honest(Vec::new()), 2)]);
    while h.answer_next() {}
    assert_eq!(h.sync.claimed_tip(0), Some(0));
    assert!(!h.sync.is_synced());
    assert!(h.progress().iter().all(|p| !p.synced));
    // With no minimum (regtest's), the same answer is synced at genesis, as before.
    let mut h = Harness::new(small(25), vec![(Peer::honest(Vec::new()), 2)]);
    while h.answer_next() {}
    assert!(h.sync.is_synced());
}
