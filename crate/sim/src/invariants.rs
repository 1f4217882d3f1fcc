//! The invariants the simulator checks, and the record of their violations.
//!
//! | invariant | what is checked | when |
//! |---|---|---|
//! | [`Invariant::NoUnverifiedStore`] | every block a node asks its storage to keep is byte-for-byte the true chain's block of that hash | on every storage command |
//! | [`Invariant::LiveHolder`] | every block a cluster has stored keeps a live holder in it, unless P or more of its holders failed within one repair window (S18) | whenever a holder leaves, fails or drops a block |
//! | [`Invariant::RepairedToP`] | once churn and faults stop, every block returns to at least P live holders in every cluster within the repair bound (S11) | at the repair deadline (churn stop + bound); for a cluster formed after churn stopped (cluster ids lapse every `cluster_ttl`), at formation + bound |
//! | [`Invariant::ExactlyP`] | … and to no more than P: no spare copies left behind | as for `RepairedToP` |
//! | [`Invariant::OneClusterPerNode`] | no live node is counted as a member by two clusters for longer than the membership grace period (S3) | every check interval |
//! | [`Invariant::MessageRateBounded`] | no node sends more than the configured number of messages per second, averaged over a window | on every message sent |
//! | [`Invariant::QueryAnswered`] | a query attempt for a confirmed transaction whose block had a live honest holder in the cluster ends with a verified proof, unless excused (see `world::serving`) (S16) | when each attempt ends |
//! | [`Invariant::NoForgedAnswerAccepted`] | every proof an honest node accepts (a `Confirmed` result, an honest member's answer to an outsider) holds on the true chain (S16) | on every accepted proof |
//! | [`Invariant::JobOnTrueBlock`] | the block a job is run on (fetched into the cache or read from the shard) is the true chain's block (S17) | on every job made ready |
//! | [`Invariant::NewBlockReachesP`] | every block mined during the run is on at least P live holders in every cluster once churn stops (S14, S15) | at the repair deadline |
//! | [`Invariant::DistinctDevices`] | every block's live holders in a cluster are on `min(P, devices the cluster spans)` distinct devices: no two copies share a device while the cluster has P devices (issue 17) | as for `RepairedToP` |
//!
//! An invariant that a run cannot check (for instance because nodes never formed a cluster)
//! is reported as not checked, with the reason, never as passed.

use std::collections::BTreeMap;

use serde::Serialize;

/// One of the simulator's invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Invariant {
    /// No block is stored unverified.
    NoUnverifiedStore,
    /// Every block keeps a live holder unless P holders failed within one repair window.
    LiveHolder,
    /// After churn stops every block returns to at least P live holders in bounded time.
    RepairedToP,
    /// … and to no more than P (together: exactly P).
    ExactlyP,
    /// No node is in two clusters.
    OneClusterPerNode,
    /// Per-node message rate stays bounded.
    MessageRateBounded,
    /// Queries with a live honest holder get a verified answer.
    QueryAnswered,
    /// No forged proof is accepted.
    NoForgedAnswerAccepted,
    /// Every new block reaches P live holders once churn stops.
    NewBlockReachesP,
    /// Jobs run on the true block.
    JobOnTrueBlock,
    /// A block's copies are on distinct devices whenever the cluster spans P.
    DistinctDevices,
}

impl Invariant {
    /// All invariants, in report order.
    pub const ALL: [Invariant; 11] = [
        Invariant::NoUnverifiedStore,
        Invariant::LiveHolder,
        Invariant::RepairedToP,
        Invariant::ExactlyP,
        Invariant::OneClusterPerNode,
        Invariant::MessageRateBounded,
        Invariant::QueryAnswered,
        Invariant::NoForgedAnswerAccepted,
        Invariant::NewBlockReachesP,
        Invariant::JobOnTrueBlock,
        Invariant::DistinctDevices,
    ];
}

/// One violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Virtual time of the step that broke it.
    pub at_ms: u64,
    /// Which invariant.
    pub invariant: Invariant,
    /// What happened, in words.
    pub detail: String,
}

/// How one invariant fared in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvariantStatus {
    /// Which invariant.
    pub invariant: Invariant,
    /// How many times it was evaluated.
    pub checks: u64,
    /// How many times it failed.
    pub violations: u64,
    /// Why it could not be evaluated, if it could not.
    pub not_checked: Option<String>,
}

/// Keeps the first violations in full and counts all of them.
#[derive(Debug, Clone)]
pub struct InvariantLog {
    kept: Vec<Violation>,
    keep_at_most: usize,
    checks: BTreeMap<Invariant, u64>,
    violations: BTreeMap<Invariant, u64>,
    not_checked: BTreeMap<Invariant, String>,
}

impl InvariantLog {
    /// A log that keeps the first `keep_at_most` violations of each invariant in full (so that
    /// a flood of one kind, e.g. the message budget at start, does not hide the others).
    pub fn new(keep_at_most: usize) -> Self {
        Self {
            kept: Vec::new(),
            keep_at_most,
            checks: BTreeMap::new(),
            violations: BTreeMap::new(),
            not_checked: BTreeMap::new(),
        }
    }

    /// Counts `n` evaluations of `invariant`.
    pub fn checked(&mut self, invariant: Invariant, n: u64) {
        *self.checks.entry(invariant).or_default() += n;
    }

    /// Records a violation.
    pub fn violate(&mut self, at_ms: u64, invariant: Invariant, detail: String) {
        let count = self.violations.entry(invariant).or_default();
        *count += 1;
        if *count <= self.keep_at_most as u64 {
            self.kept.push(Violation {
                at_ms,
                invariant,
                detail,
            });
        }
    }

    /// Marks `invariant` as not checkable in this run, with the reason.
    pub fn not_checkable(&mut self, invariant: Invariant, reason: impl Into<String>) {
        self.not_checked.insert(invariant, reason.into());
    }

    /// Total number of violations.
    pub fn total(&self) -> u64 {
        self.violations.values().sum()
    }

    /// The violations kept in full, first first.
    pub fn kept(&self) -> &[Violation] {
        &self.kept
    }

    /// Number of violations of one invariant.
    pub fn count(&self, invariant: Invariant) -> u64 {
        self.violations.get(&invariant).copied().unwrap_or(0)
    }

    /// The status of every invariant. One never evaluated counts as not checked.
    pub fn statuses(&self) -> Vec<InvariantStatus> {
        Invariant::ALL
            .iter()
            .map(|invariant| {
                let checks = self.checks.get(invariant).copied().unwrap_or(0);
                let not_checked =
                    self.not_checked.get(invariant).cloned().or_else(|| {
                        (checks == 0).then(|| "never evaluated in this run".to_string())
                    });
                InvariantStatus {
                    invariant: *invariant,
                    checks,
                    violations: self.count(*invariant),
                    not_checked,
                }
            })
            .collect()
    }
}

/// Counts messages per host in fixed windows and flags a host that exceeds its budget.
#[derive(Debug, Clone)]
pub struct RateLimitCheck {
    window_ms: u64,
    max_per_window: u64,
    /// Per host: (window index, messages sent in it).
    counts: Vec<(u64, u64)>,
    /// Per host: messages sent in its current window, by kind (for the violation's detail).
    kinds: Vec<Vec<(&'static str, u32)>>,
    peak_per_window: u64,
}

impl RateLimitCheck {
    /// A check allowing `max_per_s` messages per second averaged over `window_ms`.
    pub fn new(hosts: usize, window_ms: u64, max_per_s: f64) -> Self {
        assert!(window_ms > 0, "rate window must be positive");
        Self {
            window_ms,
            max_per_window: (max_per_s * window_ms as f64 / 1_000.0).ceil() as u64,
            counts: vec![(0, 0); hosts],
            kinds: vec![Vec::new(); hosts],
            peak_per_window: 0,
        }
    }

    /// Records one message of `kind` from `host` at `now_ms`. Returns the count in the
    /// current window when this message is the first to exceed the budget.
    pub fn record(&mut self, host: usize, now_ms: u64, kind: &'static str) -> Option<u64> {
        let window = now_ms / self.window_ms;
        let slot = &mut self.counts[host];
        let kinds = &mut self.kinds[host];
        if slot.0 != window {
            *slot = (window, 0);
            kinds.clear();
        }
        slot.1 += 1;
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, count)) => *count += 1,
            None => kinds.push((kind, 1)),
        }
        self.peak_per_window = self.peak_per_window.max(slot.1);
        (slot.1 == self.max_per_window + 1).then_some(slot.1)
    }

    /// What `host` sent in its current window, by kind, most first: `"hello 300, ping 100"`.
    pub fn kinds_in_window(&self, host: usize) -> String {
        let mut kinds = self.kinds[host].clone();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        kinds
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The budget per window.
    pub fn max_per_window(&self) -> u64 {
        self.max_per_window
    }

    /// The highest count any host reached in one window, as messages per second.
    pub fn peak_per_s(&self) -> f64 {
        self.peak_per_window as f64 * 1_000.0 / self.window_ms as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_evaluated_is_not_reported_as_passed() {
        let mut log = InvariantLog::new(10);
        log.checked(Invariant::LiveHolder, 3);
        log.not_checkable(Invariant::RepairedToP, "no cluster formed");
        let statuses = log.statuses();
        let live = &statuses[1];
        assert_eq!(live.invariant, Invariant::LiveHolder);
        assert_eq!(live.checks, 3);
        assert!(live.not_checked.is_none());
        assert_eq!(
            statuses[2].not_checked.as_deref(),
            Some("no cluster formed")
        );
        assert!(statuses[0].not_checked.is_some());
        assert_eq!(statuses.len(), Invariant::ALL.len());
    }

    #[test]
    fn log_keeps_first_and_counts_all() {
        let mut log = InvariantLog::new(2);
        for i in 0..5 {
            log.violate(i, Invariant::MessageRateBounded, format!("v{i}"));
        }
        assert_eq!(log.total(), 5);
        assert_eq!(log.kept().len(), 2);
        assert_eq!(log.kept()[1].detail, "v1");
        // Another invariant still gets its first ones kept, after the flood of the first.
        log.violate(9, Invariant::OneClusterPerNode, "other".into());
        assert_eq!(log.kept().len(), 3);
        assert_eq!(log.kept()[2].detail, "other");
    }

    #[test]
    fn rate_check_flags_once_per_window() {
        let mut rate = RateLimitCheck::new(2, 1_000, 3.0);
        assert_eq!(rate.max_per_window(), 3);
        for _ in 0..3 {
            assert_eq!(rate.record(0, 10, "ping"), None);
        }
        assert_eq!(rate.record(0, 20, "hello"), Some(4));
        assert_eq!(rate.record(0, 30, "ping"), None);
        assert_eq!(rate.kinds_in_window(0), "ping 4, hello 1");
        // A new window starts afresh; other hosts are independent.
        assert_eq!(rate.record(0, 1_000, "ping"), None);
        assert_eq!(rate.record(1, 30, "ping"), None);
        assert_eq!(rate.peak_per_s(), 5.0);
    }
}
