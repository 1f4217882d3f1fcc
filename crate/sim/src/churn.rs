//! Churn: nodes come and go the way browser tabs do.
//!
//! A host alternates between online sessions and offline gaps. Session lengths are drawn from
//! a log-normal distribution with the configured median (heavy-tailed, as measured for
//! peer-to-peer and web sessions); offline gaps likewise. A session ends either in a crash —
//! the node vanishes without a word, its peers learn nothing until their heartbeats time out —
//! or in a graceful departure, where the shell still just closes its connections (the core has
//! no "goodbye" message to send). A host that returns either keeps its stored data and
//! identity (a reloaded tab) or comes back empty with a new identity (cleared site data, a new
//! browser).

use serde::Serialize;

use crate::rng::SimRng;

/// How hosts come and go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChurnConfig {
    /// Median online session length; `None` means hosts never leave.
    pub median_session_min: Option<f64>,
    /// Median offline gap before a host returns.
    pub median_offline_min: f64,
    /// Shape (σ of the underlying normal) of both log-normal distributions.
    pub sigma: f64,
    /// Fraction of departures that are crashes: the connections vanish silently and peers
    /// are never told (the rest close their connections, which peers notice).
    pub crash_fraction: f64,
    /// Fraction of returns that keep stored data and identity.
    pub return_with_data_fraction: f64,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        Self {
            median_session_min: None,
            median_offline_min: 10.0,
            sigma: 1.0,
            crash_fraction: 0.5,
            return_with_data_fraction: 0.5,
        }
    }
}

/// How a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Vanishes; nobody is told.
    Crash,
    /// Closes its connections; its peers see them close.
    Close,
}

/// What a host brings back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    /// Same identity, same stored data.
    WithData,
    /// New identity, empty storage.
    Fresh,
}

/// The churn draws of one run.
pub struct Churn {
    config: ChurnConfig,
    rng: SimRng,
}

impl Churn {
    /// Churn for the run seeded with `seed`, drawing from stream `stream`.
    pub fn new(config: ChurnConfig, seed: u64, stream: u64) -> Self {
        Self {
            config,
            rng: SimRng::stream(seed, stream),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ChurnConfig {
        &self.config
    }

    /// True if hosts leave at all.
    pub fn enabled(&self) -> bool {
        self.config.median_session_min.is_some()
    }

    /// Length of the next online session, or `None` if hosts never leave.
    pub fn session_ms(&mut self) -> Option<u64> {
        let median_min = self.config.median_session_min?;
        let minutes = self.rng.log_normal(median_min, self.config.sigma);
        Some(minutes_to_ms(minutes))
    }

    /// Length of the next offline gap.
    pub fn offline_ms(&mut self) -> u64 {
        let minutes = self
            .rng
            .log_normal(self.config.median_offline_min, self.config.sigma);
        minutes_to_ms(minutes)
    }

    /// How the session that just ended ends.
    pub fn departure(&mut self) -> Departure {
        if self.rng.chance(self.config.crash_fraction) {
            Departure::Crash
        } else {
            Departure::Close
        }
    }

    /// What the returning host brings back.
    pub fn return_kind(&mut self) -> Return {
        if self.rng.chance(self.config.return_with_data_fraction) {
            Return::WithData
        } else {
            Return::Fresh
        }
    }
}

fn minutes_to_ms(minutes: f64) -> u64 {
    // At least a second, at most a year: keeps virtual time finite and events distinct.
    (minutes * 60_000.0).clamp(1_000.0, 365.0 * 24.0 * 3_600_000.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_churn_means_no_session_end() {
        let mut churn = Churn::new(ChurnConfig::default(), 1, 0);
        assert!(!churn.enabled());
        assert_eq!(churn.session_ms(), None);
    }

    #[test]
    fn sessions_have_the_configured_median() {
        let config = ChurnConfig {
            median_session_min: Some(30.0),
            ..ChurnConfig::default()
        };
        let mut churn = Churn::new(config, 2, 0);
        let mut sessions: Vec<u64> = (0..10_001).map(|_| churn.session_ms().unwrap()).collect();
        sessions.sort_unstable();
        let median_min = sessions[sessions.len() / 2] as f64 / 60_000.0;
        assert!((median_min - 30.0).abs() < 2.0, "median {median_min} min");
    }

    #[test]
    fn fractions_are_respected() {
        let config = ChurnConfig {
            median_session_min: Some(1.0),
            crash_fraction: 0.25,
            return_with_data_fraction: 0.75,
            ..ChurnConfig::default()
        };
        let mut churn = Churn::new(config, 3, 0);
        let crashes = (0..4_000)
            .filter(|_| churn.departure() == Departure::Crash)
            .count();
        let with_data = (0..4_000)
            .filter(|_| churn.return_kind() == Return::WithData)
            .count();
        assert!((850..1_150).contains(&crashes), "crashes {crashes}");
        assert!((2_850..3_150).contains(&with_data), "with data {with_data}");
    }
}
