//! Warnings that repeat while something is down, said once per window.
//!
//! With Kafka unreachable, the consumer reports the same failure every
//! poll and librdkafka at every reconnect: dozens of lines a second that
//! bury everything else and fill disks. A [`Repeats`] lets the first
//! occurrence of each kind through at once and then one line per window
//! saying how many were held back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a repeated warning is said again.
pub const WINDOW: Duration = Duration::from_secs(30);

/// Occurrences by kind: when it was last said, and how many came since.
#[derive(Default)]
pub struct Repeats {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Repeats {
    /// Whether to say an occurrence of `kind` now, at `now`: `Some(n)`
    /// with the `n` occurrences held back since it was last said, `None`
    /// to hold this one back.
    pub fn note(&self, kind: &str, now: Instant) -> Option<u64> {
        let Ok(mut seen) = self.seen.lock() else {
            return Some(0);
        };
        match seen.get_mut(kind) {
            Some((said, held)) if now.duration_since(*said) < WINDOW => {
                *held += 1;
                None
            }
            Some((said, held)) => {
                let n = *held;
                *said = now;
                *held = 0;
                Some(n)
            }
            None => {
                seen.insert(kind.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

/// " (and N more like it in the last 30 s)" when some were held back.
pub fn held_back(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!(" (and {n} more like it in the last {} s)", WINDOW.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_said_once_per_window_with_what_was_held_back() {
        let r = Repeats::default();
        let t0 = Instant::now();
        assert_eq!(r.note("kafka", t0), Some(0));
        for i in 1..=40 {
            assert_eq!(r.note("kafka", t0 + Duration::from_millis(50 * i)), None);
        }
        // another kind is not held back by the first
        assert_eq!(r.note("registry", t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(r.note("kafka", t0 + WINDOW), Some(40));
        assert_eq!(r.note("kafka", t0 + WINDOW + Duration::from_secs(1)), None);
        assert_eq!(held_back(0), "");
        assert_eq!(held_back(3), " (and 3 more like it in the last 30 s)");
    }
}
