//! The verdicts behind `/healthz` (is this process doing its job, or
//! should it be looked at or restarted) and `/readyz` (has start-up
//! finished), each with the reason when it fails.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// How long the main loop may go without a tick before `/healthz` fails:
/// far above any tick gap a working loop has, which is under a second.
const LOOP_STALLED_AFTER: Duration = Duration::from_secs(30);

/// `[ingest.health]`: when `/healthz` turns unhealthy (503).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthRules {
    /// No Kafka broker reachable for this long (seconds). Default 60.
    #[serde(default = "default_broker_down")]
    pub broker_down_seconds: u64,
    /// Commits failing against the lake (catalog or store) for this long
    /// (seconds). Default 60.
    #[serde(default = "default_lake_down")]
    pub lake_down_seconds: u64,
    /// No commit for this long (seconds) while messages wait in Kafka.
    /// Default 300.
    #[serde(default = "default_commit_stalled")]
    pub commit_stalled_seconds: u64,
}

fn default_broker_down() -> u64 {
    60
}

fn default_lake_down() -> u64 {
    60
}

fn default_commit_stalled() -> u64 {
    300
}

impl Default for HealthRules {
    fn default() -> Self {
        Self {
            broker_down_seconds: default_broker_down(),
            lake_down_seconds: default_lake_down(),
            commit_stalled_seconds: default_commit_stalled(),
        }
    }
}

/// Start-up, in order; `/readyz` is 200 from `Consuming` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Stage {
    OpeningLake = 0,
    ReadingOffsets = 1,
    JoiningGroup = 2,
    Consuming = 3,
}

impl Stage {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::OpeningLake,
            1 => Self::ReadingOffsets,
            2 => Self::JoiningGroup,
            _ => Self::Consuming,
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Self::OpeningLake => "opening the lake's catalog",
            Self::ReadingOffsets => "reading the Kafka offsets the tables hold",
            Self::JoiningGroup => "waiting for the consumer group to assign partitions",
            Self::Consuming => "consuming",
        }
    }
}

pub(super) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Timestamps (µs since the epoch; 0 for never) the verdicts are made of.
pub(super) struct Health {
    rules: HealthRules,
    started_us: i64,
    heartbeat_us: AtomicI64,
    broker_up_us: AtomicI64,
    last_commit_us: AtomicI64,
    lake_failing_since_us: AtomicI64,
    lake_failure: Mutex<String>,
    lag: AtomicI64,
    stage: AtomicU8,
}

impl Health {
    pub(super) fn new(rules: HealthRules) -> Self {
        let now = now_us();
        Self {
            rules,
            started_us: now,
            heartbeat_us: AtomicI64::new(now),
            broker_up_us: AtomicI64::new(0),
            last_commit_us: AtomicI64::new(0),
            lake_failing_since_us: AtomicI64::new(0),
            lake_failure: Mutex::new(String::new()),
            lag: AtomicI64::new(0),
            stage: AtomicU8::new(Stage::OpeningLake as u8),
        }
    }

    pub(super) fn started_us(&self) -> i64 {
        self.started_us
    }

    pub(super) fn heartbeat(&self) {
        self.heartbeat_us.store(now_us(), Ordering::Relaxed);
    }

    pub(super) fn broker_up(&self) {
        self.broker_up_us.store(now_us(), Ordering::Relaxed);
    }

    pub(super) fn committed(&self) {
        self.last_commit_us.store(now_us(), Ordering::Relaxed);
        self.lake_failing_since_us.store(0, Ordering::Relaxed);
    }

    pub(super) fn lake_failed(&self, reason: &str) {
        let _ = self.lake_failing_since_us.compare_exchange(
            0,
            now_us(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        if let Ok(mut r) = self.lake_failure.lock() {
            *r = reason.to_string();
        }
    }

    pub(super) fn lag(&self, total: i64) {
        self.lag.store(total, Ordering::Relaxed);
    }

    pub(super) fn stage(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::Relaxed);
    }

    pub(super) fn unready(&self) -> Option<String> {
        let stage = Stage::from_u8(self.stage.load(Ordering::Relaxed));
        (stage != Stage::Consuming).then(|| format!("starting: {}", stage.doing()))
    }

    pub(super) fn unhealthy(&self) -> Option<String> {
        self.unhealthy_at(now_us())
    }

    fn unhealthy_at(&self, now: i64) -> Option<String> {
        let secs = |since: i64| (now - since).max(0) / 1_000_000;
        let over = |since: i64, limit: u64| secs(since) >= limit as i64;
        let beat = self.heartbeat_us.load(Ordering::Relaxed);
        if over(beat, LOOP_STALLED_AFTER.as_secs()) {
            return Some(format!(
                "the main loop has not run for {} s ({})",
                secs(beat),
                Stage::from_u8(self.stage.load(Ordering::Relaxed)).doing()
            ));
        }
        let broker = self.broker_up_us.load(Ordering::Relaxed);
        if over(broker.max(self.started_us), self.rules.broker_down_seconds) {
            return Some(if broker == 0 {
                format!(
                    "no Kafka broker reachable since floe started {} s ago",
                    secs(self.started_us)
                )
            } else {
                format!("no Kafka broker reachable for {} s", secs(broker))
            });
        }
        let failing = self.lake_failing_since_us.load(Ordering::Relaxed);
        if failing > 0 && over(failing, self.rules.lake_down_seconds) {
            let reason = self
                .lake_failure
                .lock()
                .map(|r| r.clone())
                .unwrap_or_default();
            return Some(format!(
                "the lake cannot be written for {} s: {reason}",
                secs(failing)
            ));
        }
        let lag = self.lag.load(Ordering::Relaxed);
        let commit = self.last_commit_us.load(Ordering::Relaxed);
        if lag > 0
            && over(
                commit.max(self.started_us),
                self.rules.commit_stalled_seconds,
            )
        {
            return Some(format!(
                "no commit for {} s while {lag} messages wait in Kafka",
                secs(commit.max(self.started_us))
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn rules() -> HealthRules {
        HealthRules {
            broker_down_seconds: 10,
            lake_down_seconds: 20,
            commit_stalled_seconds: 30,
        }
    }

    #[test]
    fn each_rule_fails_health_with_its_reason_and_recovers() {
        let h = Health::new(rules());
        let t0 = h.started_us;
        h.heartbeat_us.store(t0 + 100 * S, Ordering::Relaxed);
        h.broker_up_us.store(t0 + 95 * S, Ordering::Relaxed);
        assert_eq!(h.unhealthy_at(t0 + 100 * S), None);
        // broker
        let why = h.unhealthy_at(t0 + 106 * S).unwrap_or_default();
        assert!(why.contains("no Kafka broker reachable for 11 s"), "{why}");
        h.broker_up_us.store(t0 + 106 * S, Ordering::Relaxed);
        h.heartbeat_us.store(t0 + 106 * S, Ordering::Relaxed);
        assert_eq!(h.unhealthy_at(t0 + 106 * S), None);
        // lake: reported once it has failed for the set time, with why
        h.lake_failing_since_us
            .store(t0 + 90 * S, Ordering::Relaxed);
        h.lake_failed("connection refused by the store");
        assert_eq!(h.unhealthy_at(t0 + 106 * S), None);
        h.heartbeat_us.store(t0 + 111 * S, Ordering::Relaxed);
        h.broker_up_us.store(t0 + 111 * S, Ordering::Relaxed);
        let why = h.unhealthy_at(t0 + 111 * S).unwrap_or_default();
        assert!(
            why.contains("lake cannot be written for 21 s: connection refused"),
            "{why}"
        );
        h.committed();
        assert_eq!(h.lake_failing_since_us.load(Ordering::Relaxed), 0);
        // stalled commits count only while something waits
        h.last_commit_us.store(t0 + 70 * S, Ordering::Relaxed);
        assert_eq!(h.unhealthy_at(t0 + 111 * S), None);
        h.lag(5);
        let why = h.unhealthy_at(t0 + 111 * S).unwrap_or_default();
        assert!(why.contains("no commit for 41 s while 5 messages"), "{why}");
        // and a loop that stopped ticking overrides the rest
        let why = h.unhealthy_at(t0 + 150 * S).unwrap_or_default();
        assert!(why.contains("main loop has not run for 39 s"), "{why}");
    }

    #[test]
    fn a_broker_never_seen_counts_from_start_and_readiness_follows_the_stage() {
        let h = Health::new(rules());
        let t0 = h.started_us;
        h.heartbeat_us.store(t0 + 12 * S, Ordering::Relaxed);
        let why = h.unhealthy_at(t0 + 12 * S).unwrap_or_default();
        assert!(why.contains("since floe started 12 s ago"), "{why}");
        assert!(h.unready().is_some_and(|w| w.contains("opening the lake")));
        h.stage(Stage::JoiningGroup);
        assert!(h.unready().is_some_and(|w| w.contains("assign partitions")));
        h.stage(Stage::Consuming);
        assert_eq!(h.unready(), None);
    }
}
