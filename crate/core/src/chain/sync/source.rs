//! What the sync knows of one source: its window, its claim, its standing and where its chain
//! stands against ours.

/// How far a source is trusted to be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// Never demoted, or answered well since.
    Good,
    /// Demoted: not asked before `until_ms`.
    Benched { until_ms: u64 },
    /// Its demotion is over: asked only while no source in good standing can be, until it
    /// answers well.
    Probation,
}

/// Where a source's chain stands against ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Track {
    /// On our best chain as far as we know: asked for the window's batches and polled.
    Main,
    /// Its headers stopped connecting at `from`: asked from `from - depth` next.
    Searching { from: u32, depth: u32 },
    /// Its chain is a side branch of ours with less work so far, going on at `next`.
    Branch { next: u32 },
}

/// One source.
#[derive(Debug, Clone)]
pub(super) struct Source<S> {
    pub(super) id: S,
    /// Most requests unanswered at once.
    pub(super) max_unanswered: usize,
    /// The tip its latest answer claimed (raised to the last header it sent).
    pub(super) claimed_tip: Option<u32>,
    pub(super) standing: Standing,
    /// Demotions so far: each doubles the next one's length.
    pub(super) strikes: u32,
    /// Failed, timed-out or outrun requests since its last good answer.
    pub(super) failures_in_a_row: u32,
    pub(super) track: Track,
    /// Once synced: a poll is due.
    pub(super) poll_wanted: bool,
}

impl<S> Source<S> {
    pub(super) fn new(id: S, max_unanswered: usize) -> Self {
        Self {
            id,
            max_unanswered,
            claimed_tip: None,
            standing: Standing::Good,
            strikes: 0,
            failures_in_a_row: 0,
            track: Track::Main,
            poll_wanted: false,
        }
    }

    pub(super) fn is_benched(&self) -> bool {
        matches!(self.standing, Standing::Benched { .. })
    }

    /// Lower is asked first; a source is asked only while none of a lower tier can be.
    pub(super) fn tier(&self) -> u8 {
        match self.standing {
            Standing::Good => 0,
            Standing::Probation => 1,
            Standing::Benched { .. } => 2,
        }
    }

    /// It answered well: a source on probation is in good standing again.
    pub(super) fn answered_well(&mut self) {
        if self.standing == Standing::Probation {
            self.standing = Standing::Good;
        }
    }
}
