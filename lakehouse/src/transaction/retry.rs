//! The one retry policy of every write: exponential backoff with jitter
//! (`backon`), only for errors that say they are retryable
//! ([`crate::LakehouseError::is_retryable`]): a lost commit race, or an
//! outage of the catalog or the store.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};

/// How long and how often a write tries again.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Commits allowed after lost races, each on the newer table.
    pub conflicts: u32,
    /// How long an outage is waited out; `None`: until it ends (ingest,
    /// whose job is to wait outages out).
    pub outages: Option<Duration>,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Ten lost races, outages waited out for five minutes, 100 ms to 30 s
    /// between attempts.
    fn default() -> Self {
        Self {
            conflicts: 10,
            outages: Some(Duration::from_secs(300)),
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Waits out outages for as long as they last.
    pub fn patient(mut self) -> Self {
        self.outages = None;
        self
    }

    /// A fresh schedule of delays for one write.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            delays: ExponentialBuilder::default()
                .with_min_delay(self.min_delay)
                .with_max_delay(self.max_delay)
                .with_jitter()
                .without_max_times()
                .build(),
            started: Instant::now(),
            conflicts: 0,
            policy: self.clone(),
        }
    }
}

/// The delays of one write's attempts.
pub struct Schedule {
    delays: backon::ExponentialBackoff,
    started: Instant,
    conflicts: u32,
    policy: RetryPolicy,
}

impl Schedule {
    /// The wait before trying again after a lost race, or None when the
    /// policy's races are used up.
    pub fn after_conflict(&mut self) -> Option<Duration> {
        self.conflicts += 1;
        (self.conflicts <= self.policy.conflicts).then(|| self.next())
    }

    /// The wait before trying again after an outage, or None when the
    /// policy has waited long enough.
    pub fn after_outage(&mut self) -> Option<Duration> {
        match self.policy.outages {
            Some(limit) if self.started.elapsed() >= limit => None,
            _ => Some(self.next()),
        }
    }

    fn next(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.policy.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_counted_and_delays_grow_within_bounds() {
        let policy = RetryPolicy {
            conflicts: 3,
            outages: Some(Duration::ZERO),
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(80),
        };
        let mut s = policy.schedule();
        let delays: Vec<Duration> = (0..3).filter_map(|_| s.after_conflict()).collect();
        assert_eq!(delays.len(), 3);
        assert!(
            s.after_conflict().is_none(),
            "a fourth race is one too many"
        );
        // jitter adds up to the delay itself
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(160)),
            "{delays:?}"
        );
        assert!(s.after_outage().is_none(), "no time for outages");
        let mut patient = policy.patient().schedule();
        assert!(patient.after_outage().is_some());
    }
}
