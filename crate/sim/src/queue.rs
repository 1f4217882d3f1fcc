//! Virtual time: a bounded priority queue of future events.
//!
//! The simulator has no clock. Time is a `u64` count of milliseconds since the run started and
//! moves only when the next event is taken from this queue. Events due at the same millisecond
//! come out in the order they were scheduled (each carries a sequence number), so a run is a
//! pure function of its seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Scheduling failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue already holds its maximum number of events.
    #[error("event queue is full ({capacity} pending events)")]
    Full {
        /// The configured bound.
        capacity: usize,
    },
    /// The event would fire before the current virtual time.
    #[error("event scheduled in the past: at {at_ms} ms, now is {now_ms} ms")]
    InThePast {
        /// When it was asked to fire.
        at_ms: u64,
        /// The current virtual time.
        now_ms: u64,
    },
}

struct Entry<E> {
    at_ms: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    // BinaryHeap is a max-heap: reverse so the earliest (then first scheduled) is on top.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

/// A bounded queue of events ordered by virtual time, then by scheduling order.
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    next_seq: u64,
    now_ms: u64,
    capacity: usize,
}

impl<E> EventQueue<E> {
    /// An empty queue at time zero that holds at most `capacity` pending events.
    pub fn new(capacity: usize) -> Self {
        Self {
            heap: BinaryHeap::new(),
            next_seq: 0,
            now_ms: 0,
            capacity,
        }
    }

    /// The current virtual time: the time of the last event taken.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no event is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Schedules `event` to fire at `at_ms`.
    pub fn schedule(&mut self, at_ms: u64, event: E) -> Result<(), QueueError> {
        if at_ms < self.now_ms {
            return Err(QueueError::InThePast {
                at_ms,
                now_ms: self.now_ms,
            });
        }
        if self.heap.len() >= self.capacity {
            return Err(QueueError::Full {
                capacity: self.capacity,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { at_ms, seq, event });
        Ok(())
    }

    /// When the next event fires, if any.
    pub fn peek_ms(&self) -> Option<u64> {
        self.heap.peek().map(|entry| entry.at_ms)
    }

    /// Takes the next event and advances virtual time to it.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let entry = self.heap.pop()?;
        debug_assert!(entry.at_ms >= self.now_ms, "virtual time went backwards");
        self.now_ms = entry.at_ms;
        Some((entry.at_ms, entry.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn same_time_events_keep_their_order() {
        let mut queue = EventQueue::new(10);
        queue.schedule(5, "b").unwrap();
        queue.schedule(1, "a").unwrap();
        queue.schedule(5, "c").unwrap();
        assert_eq!(queue.pop(), Some((1, "a")));
        assert_eq!(queue.pop(), Some((5, "b")));
        assert_eq!(queue.pop(), Some((5, "c")));
        assert_eq!(queue.pop(), None);
        assert_eq!(queue.now_ms(), 5);
    }

    #[test]
    fn refuses_the_past_and_overflow() {
        let mut queue = EventQueue::new(1);
        queue.schedule(10, ()).unwrap();
        assert_eq!(
            queue.schedule(11, ()),
            Err(QueueError::Full { capacity: 1 })
        );
        queue.pop();
        assert_eq!(
            queue.schedule(9, ()),
            Err(QueueError::InThePast {
                at_ms: 9,
                now_ms: 10
            })
        );
    }

    proptest! {
        #[test]
        fn pops_in_time_order(times in proptest::collection::vec(0u64..1_000, 0..200)) {
            let mut queue = EventQueue::new(1_000);
            for (i, t) in times.iter().enumerate() {
                queue.schedule(*t, i).unwrap();
            }
            let mut last = (0, 0);
            let mut count = 0;
            while let Some((t, i)) = queue.pop() {
                prop_assert_eq!(t, times[i]);
                prop_assert!((t, i) >= last);
                last = (t, i);
                count += 1;
            }
            prop_assert_eq!(count, times.len());
        }
    }
}
