//! Per-peer token buckets on the node's clock (`now_ms` passed in): how many queries a peer may
//! send us (S16). Bounded: at most `max_peers` buckets are kept.

use std::collections::HashMap;
use std::hash::Hash;

/// Configuration of a [`RateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Tokens a peer may save up (its burst).
    pub burst: u32,
    /// Tokens a peer earns per second.
    pub per_second: u32,
    /// Peers tracked at once; beyond that the bucket refilled longest ago is forgotten (it
    /// would be nearly full anyway).
    pub max_peers: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            burst: 20,
            per_second: 5,
            max_peers: 256,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens in thousandths, so that refills in whole milliseconds are exact.
    milli_tokens: u64,
    updated_ms: u64,
}

/// A token bucket per peer. See the module docs.
#[derive(Debug, Clone)]
pub struct RateLimiter<P> {
    config: RateLimitConfig,
    buckets: HashMap<P, Bucket>,
}

impl<P: Copy + Eq + Hash> RateLimiter<P> {
    /// No peer has spent anything yet.
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token from `peer`'s bucket; `false` if the bucket is empty (refuse the
    /// request). A clock that goes backwards refills nothing.
    pub fn try_take(&mut self, now_ms: u64, peer: P) -> bool {
        let capacity = u64::from(self.config.burst) * 1000;
        if !self.buckets.contains_key(&peer) && self.buckets.len() >= self.config.max_peers.max(1) {
            let oldest = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.updated_ms)
                .map(|(p, _)| *p);
            if let Some(oldest) = oldest {
                self.buckets.remove(&oldest);
            }
        }
        let bucket = self.buckets.entry(peer).or_insert(Bucket {
            milli_tokens: capacity,
            updated_ms: now_ms,
        });
        let elapsed_ms = now_ms.saturating_sub(bucket.updated_ms);
        bucket.milli_tokens = bucket
            .milli_tokens
            .saturating_add(elapsed_ms.saturating_mul(u64::from(self.config.per_second)))
            .min(capacity);
        bucket.updated_ms = bucket.updated_ms.max(now_ms);
        if bucket.milli_tokens >= 1000 {
            bucket.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }

    /// Peers with a bucket.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no peer has a bucket.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_the_configured_rate() {
        let mut limiter = RateLimiter::new(RateLimitConfig {
            burst: 3,
            per_second: 2,
            max_peers: 4,
        });
        for _ in 0..3 {
            assert!(limiter.try_take(1_000, 1u8));
        }
        assert!(!limiter.try_take(1_000, 1u8), "burst spent");
        assert!(limiter.try_take(1_000, 2u8), "other peers unaffected");
        assert!(!limiter.try_take(1_499, 1u8), "half a token is not enough");
        assert!(
            limiter.try_take(1_500, 1u8),
            "one token after 500 ms at 2/s"
        );
        assert!(!limiter.try_take(1_500, 1u8));
        // A long pause refills only up to the burst.
        for _ in 0..3 {
            assert!(limiter.try_take(100_000, 1u8));
        }
        assert!(!limiter.try_take(100_000, 1u8));
    }

    #[test]
    fn table_is_bounded() {
        let mut limiter = RateLimiter::new(RateLimitConfig {
            burst: 1,
            per_second: 1,
            max_peers: 3,
        });
        for peer in 0..100u32 {
            limiter.try_take(u64::from(peer), peer);
            assert!(limiter.len() <= 3);
        }
    }
}
