//! When a source table's buffered changes are committed.
//!
//! A table is due once its oldest buffered change is `commit_interval_ms`
//! old, or it holds `max_rows` or `max_bytes`. While changes keep coming,
//! though, the oldest one arrived just after the last commit was cut, a
//! fraction of an interval later, and waiting for it to age a whole
//! interval adds that fraction to every change's wait (at 200 ms commits
//! about 100 ms: in a 10-minute run, 104 ms at the median between one
//! commit's end and the next's start where no merge committed in
//! between; 53-55 ms with this rule, docs/benchmarks.md). So a table
//! whose changes kept coming since its last cut, the oldest arriving
//! within an interval of it, is due one interval after that cut: commits
//! follow each other every `commit_interval_ms` (or as soon as the last
//! one ends, when it took longer), and a table that had gone quiet waits
//! a whole interval for its first change as before, so a burst after a
//! pause is still one commit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ingest::Buffered;

use crate::config::IngestConfig;

/// When each table's buffer was last cut for a commit.
#[derive(Debug, Default)]
pub(crate) struct Cadence {
    cut_at: HashMap<String, Instant>,
}

impl Cadence {
    /// Whether `topic`'s buffer is due for a commit at `now`.
    pub(crate) fn due(
        &self,
        settings: &IngestConfig,
        topic: &str,
        buffered: &Buffered,
        now: Instant,
    ) -> bool {
        let interval = Duration::from_millis(settings.commit_interval_ms);
        if buffered.messages >= settings.max_rows
            || buffered.bytes >= settings.max_bytes
            || now.saturating_duration_since(buffered.since) >= interval
        {
            return true;
        }
        self.cut_at.get(topic).is_some_and(|&cut| {
            buffered.since.saturating_duration_since(cut) < interval
                && now.saturating_duration_since(cut) >= interval
        })
    }

    /// Notes that `topics`' buffers were cut at `now`.
    pub(crate) fn cut<'a>(&mut self, topics: impl IntoIterator<Item = &'a str>, now: Instant) {
        for topic in topics {
            match self.cut_at.get_mut(topic) {
                Some(at) => *at = now,
                None => {
                    self.cut_at.insert(topic.to_string(), now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> IngestConfig {
        IngestConfig {
            commit_interval_ms: 1000,
            max_rows: 10,
            max_bytes: 1000,
            ..IngestConfig::default()
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_table_is_due_by_age_rows_or_bytes() {
        let (settings, cadence) = (settings(), Cadence::default());
        let now = Instant::now();
        let fresh = Buffered {
            messages: 9,
            bytes: 999,
            since: now,
        };
        let due = |b: &Buffered, at| cadence.due(&settings, "t", b, at);
        assert!(!due(&fresh, now));
        let rows = Buffered {
            messages: 10,
            ..fresh
        };
        assert!(due(&rows, now));
        let bytes = Buffered {
            bytes: 1000,
            ..fresh
        };
        assert!(due(&bytes, now));
        assert!(due(&fresh, now + MS(1000)));
        assert!(!due(&fresh, now + MS(999)));
    }

    #[test]
    fn a_steady_stream_is_due_an_interval_after_the_last_cut() {
        let settings = settings();
        let mut cadence = Cadence::default();
        let cut = Instant::now();
        cadence.cut(["t"], cut);
        // the first change since the cut came 300 ms after it
        let buffered = Buffered {
            messages: 1,
            bytes: 1,
            since: cut + MS(300),
        };
        assert!(!cadence.due(&settings, "t", &buffered, cut + MS(999)));
        assert!(cadence.due(&settings, "t", &buffered, cut + MS(1000)));
        // another table's cut says nothing of this one
        assert!(!cadence.due(&settings, "u", &buffered, cut + MS(1000)));
        // a later cut counts from then
        cadence.cut(["t"], cut + MS(1000));
        let next = Buffered {
            since: cut + MS(1100),
            ..buffered
        };
        assert!(!cadence.due(&settings, "t", &next, cut + MS(1500)));
        assert!(cadence.due(&settings, "t", &next, cut + MS(2000)));
    }

    #[test]
    fn a_table_that_went_quiet_waits_an_interval_for_its_first_change() {
        let settings = settings();
        let mut cadence = Cadence::default();
        let cut = Instant::now();
        cadence.cut(["t"], cut);
        // nothing for five seconds, then a burst
        let burst = Buffered {
            messages: 3,
            bytes: 3,
            since: cut + MS(5000),
        };
        assert!(!cadence.due(&settings, "t", &burst, cut + MS(5001)));
        assert!(!cadence.due(&settings, "t", &burst, cut + MS(5999)));
        assert!(cadence.due(&settings, "t", &burst, cut + MS(6000)));
    }
}
