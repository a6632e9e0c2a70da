//! What `floe ingest` tells an operator over HTTP: Prometheus metrics
//! (this module, built on the `prometheus-client` crate), the health and
//! readiness verdicts ([`health`]), and the hyper server that answers
//! `/metrics`, `/healthz` and `/readyz` within fixed limits ([`server`]).
//!
//! Every metric is registered when [`Metrics`] is made, so a scrape sees
//! all of them from start, before the first event.

mod health;
mod server;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use lakehouse::TableFiles;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use health::{HealthRules, Stage};
pub use server::serve;

use health::{now_us, Health};

/// Upper bounds (seconds) of the commit latency histogram's buckets.
const COMMIT_BUCKETS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The error kinds counted from start, so a dashboard's rate() has a
/// series before the first error of each kind.
const ERROR_KINDS: [&str; 8] = [
    "decode",
    "registry",
    "kafka",
    "apply",
    "apply_retry",
    "dead_letter",
    "merge",
    "merge_lost_race",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableOp {
    table: String,
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    topic: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

type GaugeF64 = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    consumed: Counter,
    applied: Family<TableOp, Counter>,
    commit_seconds: Histogram,
    freshness: GaugeF64,
    /// Source commit time (µs) of the newest event committed to the lake;
    /// 0 before the first.
    newest_source_us: AtomicI64,
    errors: Family<KindLabel, Counter>,
    lag: Family<PartitionLabel, Gauge>,
    buffered_bytes: Gauge,
    paused: Gauge,
    data_files: Family<TableLabel, Gauge>,
    delete_files: Family<TableLabel, Gauge>,
    live_rows: Family<TableLabel, Gauge>,
    deleted_share: Family<TableLabel, GaugeF64>,
    merges: Family<TableLabel, Counter>,
    merge_bytes: Family<TableLabel, Counter>,
    merge_seconds: Counter<f64, AtomicU64>,
    merge_cpu_seconds: Counter<f64, AtomicU64>,
    merge_paused_seconds: Counter<f64, AtomicU64>,
    merge_waits: Family<TableLabel, Counter>,
    tail_rows: Family<TableLabel, Counter>,
    resent: Family<TableLabel, Counter>,
    healthy: Gauge,
    health: Health,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(HealthRules::default())
    }
}

impl Metrics {
    pub fn new(rules: HealthRules) -> Self {
        let mut m = Self {
            registry: Registry::default(),
            consumed: Counter::default(),
            applied: Family::default(),
            commit_seconds: Histogram::new(COMMIT_BUCKETS),
            freshness: GaugeF64::default(),
            newest_source_us: AtomicI64::new(0),
            errors: Family::default(),
            lag: Family::default(),
            buffered_bytes: Gauge::default(),
            paused: Gauge::default(),
            data_files: Family::default(),
            delete_files: Family::default(),
            live_rows: Family::default(),
            deleted_share: Family::default(),
            merges: Family::default(),
            merge_bytes: Family::default(),
            tail_rows: Family::default(),
            merge_seconds: Counter::default(),
            merge_cpu_seconds: Counter::default(),
            merge_paused_seconds: Counter::default(),
            merge_waits: Family::default(),
            resent: Family::default(),
            healthy: Gauge::default(),
            health: Health::new(rules),
        };
        for kind in ERROR_KINDS {
            let _ = m.errors.get_or_create(&KindLabel { kind: kind.into() });
        }
        m.register();
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "floe_events_consumed",
            "Kafka messages consumed",
            self.consumed.clone(),
        );
        r.register(
            "floe_events_applied",
            "Change events committed to Iceberg, by table and operation",
            self.applied.clone(),
        );
        r.register(
            "floe_commit_seconds",
            "Time to apply and commit one change batch",
            self.commit_seconds.clone(),
        );
        r.register(
            "floe_freshness_seconds",
            "Now minus the source commit time of the newest event committed to the lake \
             (until the first, the time since floe started)",
            self.freshness.clone(),
        );
        r.register(
            "floe_consumer_lag",
            "Messages in each partition not yet committed to the lake",
            self.lag.clone(),
        );
        r.register(
            "floe_buffered_bytes",
            "Kafka bytes decoded and waiting for a commit",
            self.buffered_bytes.clone(),
        );
        r.register(
            "floe_paused",
            "1 while partitions are paused because the buffers are full",
            self.paused.clone(),
        );
        r.register(
            "floe_table_data_files",
            "Live data files of each table after its last commit",
            self.data_files.clone(),
        );
        r.register(
            "floe_table_delete_files",
            "Live position-delete files of each table after its last commit",
            self.delete_files.clone(),
        );
        r.register(
            "floe_table_live_rows",
            "Rows a reader of each table sees after its last commit",
            self.live_rows.clone(),
        );
        r.register(
            "floe_table_deleted_row_share",
            "Share of each table's stored rows that readers read only to drop (0 to 1)",
            self.deleted_share.clone(),
        );
        r.register(
            "floe_merges",
            "Merge rounds inside ingest that rewrote small files, per table",
            self.merges.clone(),
        );
        r.register(
            "floe_merge_bytes_rewritten",
            "Bytes of data files merges inside ingest rewrote, per table",
            self.merge_bytes.clone(),
        );
        r.register(
            "floe_tail_rows_rewritten",
            "Rows of partitions' newest files commits wrote again with their own rows, per table",
            self.tail_rows.clone(),
        );
        r.register(
            "floe_merge_seconds",
            "Time spent merging small files inside ingest",
            self.merge_seconds.clone(),
        );
        r.register(
            "floe_merge_cpu_seconds",
            "CPU time merges inside ingest took (the threads polling their rewrites)",
            self.merge_cpu_seconds.clone(),
        );
        r.register(
            "floe_merge_paused_seconds",
            "Time merges inside ingest were paused to keep within lake.tables.merge.cpu_share",
            self.merge_paused_seconds.clone(),
        );
        r.register(
            "floe_merge_waits",
            "Commit rounds that waited for merges because a partition was past lake.tables.merge.max_files, per table",
            self.merge_waits.clone(),
        );
        r.register(
            "floe_events_resent",
            "Changes Debezium sent again under new offsets (after a Kafka Connect crash or rebalance), skipped by their source position, per table",
            self.resent.clone(),
        );
        r.register("floe_errors", "Errors by kind", self.errors.clone());
        r.register(
            "floe_healthy",
            "1 while /healthz answers 200",
            self.healthy.clone(),
        );
    }

    pub fn consumed(&self) {
        self.consumed.inc();
    }

    /// A table this process writes, known before its first commit: its
    /// series start at its current files and zero events.
    pub fn known_table(&self, table: &str, files: TableFiles) {
        for op in ["c", "u", "d", "r", "t"] {
            self.applied(table, op, 0);
        }
        self.resent(table, 0);
        self.table_files(table, files);
    }

    pub fn applied(&self, table: &str, op: &str, events: u64) {
        let labels = TableOp {
            table: table.to_string(),
            op: op.to_string(),
        };
        self.applied.get_or_create(&labels).inc_by(events);
    }

    pub fn committed(&self, took: Duration, newest_source_us: Option<i64>) {
        self.commit_seconds.observe(took.as_secs_f64());
        if let Some(ts) = newest_source_us {
            self.newest_source_us.fetch_max(ts, Ordering::Relaxed);
        }
        self.health.committed();
    }

    /// What `table` holds after a commit: the files a reader opens and
    /// the share of rows it reads only to drop, which compaction lowers.
    pub fn table_files(&self, table: &str, files: TableFiles) {
        let labels = TableLabel {
            table: table.to_string(),
        };
        let gauge = |family: &Family<TableLabel, Gauge>, v: u64| {
            family
                .get_or_create(&labels)
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        gauge(&self.data_files, files.data_files);
        gauge(&self.delete_files, files.delete_files);
        gauge(&self.live_rows, files.live_rows());
        self.deleted_share
            .get_or_create(&labels)
            .set(files.deleted_share());
    }

    /// `events` changes to `table` were skipped as sent again by Debezium.
    pub fn resent(&self, table: &str, events: u64) {
        let labels = TableLabel {
            table: table.to_string(),
        };
        self.resent.get_or_create(&labels).inc_by(events);
    }

    /// A commit to `table` wrote `rows` of its partitions' newest files
    /// again, in place of those files.
    pub fn tail_rewritten(&self, table: &str, rows: u64) {
        let labels = TableLabel {
            table: table.to_string(),
        };
        self.tail_rows.get_or_create(&labels).inc_by(rows);
    }

    /// A merge round on `table` rewrote files.
    pub fn merged(&self, table: &str, report: &lakehouse::apply::MergeReport, took: Duration) {
        let labels = TableLabel {
            table: table.to_string(),
        };
        self.merges.get_or_create(&labels).inc();
        if report.waited {
            self.merge_waits.get_or_create(&labels).inc();
        }
        self.merge_bytes
            .get_or_create(&labels)
            .inc_by(report.bytes_rewritten);
        self.merge_seconds.inc_by(took.as_secs_f64());
        self.merge_cpu_seconds.inc_by(report.cpu.as_secs_f64());
        self.merge_paused_seconds
            .inc_by(report.paused.as_secs_f64());
    }

    pub fn error(&self, kind: &'static str) {
        self.errors
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// A commit could not reach the lake (and will be tried again).
    pub fn lake_failed(&self, reason: &str) {
        self.error("apply_retry");
        self.health.lake_failed(reason);
    }

    /// Replaces the lag of every partition librdkafka reported on.
    pub fn lag(&self, by_partition: impl IntoIterator<Item = ((String, i32), i64)>) {
        self.lag.clear();
        let mut total = 0;
        for ((topic, partition), lag) in by_partition {
            total += lag.max(0);
            self.lag
                .get_or_create(&PartitionLabel { topic, partition })
                .set(lag);
        }
        self.health.lag(total);
    }

    /// librdkafka's statistics say whether any broker's connection is up.
    pub fn broker_reachable(&self, up: bool) {
        if up {
            self.health.broker_up();
        }
    }

    pub fn buffer(&self, bytes: usize, paused: bool) {
        self.buffered_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.paused.set(i64::from(paused));
    }

    pub fn heartbeat(&self) {
        self.health.heartbeat();
    }

    /// Where start-up is; `/readyz` answers 200 from [`Stage::Consuming`].
    pub fn stage(&self, stage: Stage) {
        self.health.stage(stage);
    }

    /// The reason `/healthz` fails, if it does.
    pub fn unhealthy(&self) -> Option<String> {
        self.health.unhealthy()
    }

    /// The reason `/readyz` fails, if it does.
    pub fn unready(&self) -> Option<String> {
        self.health.unready()
    }

    /// The OpenMetrics text exposition (which Prometheus reads).
    pub fn render(&self) -> String {
        let newest = self.newest_source_us.load(Ordering::Relaxed);
        let since = if newest > 0 {
            newest
        } else {
            self.health.started_us()
        };
        self.freshness.set((now_us() - since) as f64 / 1e6);
        self.healthy.set(i64::from(self.unhealthy().is_none()));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // only a metric that cannot be written as text fails here
            tracing::error!("cannot render the metrics: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_replaced_per_report_and_rendered_per_partition() {
        let m = Metrics::default();
        m.lag([
            (("taxi.public.trips".to_string(), 0), 42),
            (("taxi.public.vendors".to_string(), 0), 0),
        ]);
        let text = m.render();
        assert!(
            text.contains("floe_consumer_lag{topic=\"taxi.public.trips\",partition=\"0\"} 42\n"),
            "{text}"
        );
        // a partition no longer assigned disappears with the next report
        m.lag([(("taxi.public.trips".to_string(), 0), 7)]);
        let text = m.render();
        assert!(
            text.contains("floe_consumer_lag{topic=\"taxi.public.trips\",partition=\"0\"} 7\n"),
            "{text}"
        );
        assert!(!text.contains("taxi.public.vendors"), "{text}");
        m.buffer(1234, true);
        let text = m.render();
        assert!(
            text.contains("floe_buffered_bytes 1234\n") && text.contains("floe_paused 1\n"),
            "{text}"
        );
    }

    /// Series without labels are there from start, and so are those of
    /// the tables the lake already holds (a family without any label set
    /// is left out by the encoder, as Prometheus expects).
    #[test]
    fn every_metric_is_there_before_the_first_event() {
        let m = Metrics::default();
        m.known_table(
            "taxi_cdc.trips",
            TableFiles {
                data_files: 4,
                ..TableFiles::default()
            },
        );
        let text = m.render();
        for name in [
            "floe_events_consumed_total 0",
            "floe_events_applied_total{table=\"taxi_cdc.trips\",op=\"d\"} 0",
            "floe_commit_seconds_count 0",
            "floe_freshness_seconds ",
            "floe_buffered_bytes 0",
            "floe_paused 0",
            "floe_table_data_files{table=\"taxi_cdc.trips\"} 4",
            "floe_table_live_rows{table=\"taxi_cdc.trips\"} 0",
            "floe_errors_total{kind=\"decode\"} 0",
            "floe_errors_total{kind=\"kafka\"} 0",
            "floe_merge_seconds_total 0",
            "floe_events_resent_total{table=\"taxi_cdc.trips\"} 0",
            "floe_healthy 1",
        ] {
            assert!(text.contains(name), "{name} missing: {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_commit_is_counted_with_its_table_and_freshness() {
        let m = Metrics::default();
        m.applied("taxi_cdc.trips", "c", 3);
        m.committed(Duration::from_millis(300), Some(now_us() - 2_000_000));
        m.table_files(
            "taxi_cdc.trips",
            TableFiles {
                data_files: 2,
                delete_files: 1,
                records: 10,
                position_deletes: 5,
            },
        );
        let text = m.render();
        for line in [
            "floe_events_applied_total{table=\"taxi_cdc.trips\",op=\"c\"} 3\n",
            "floe_commit_seconds_bucket{le=\"0.25\"} 0\n",
            "floe_commit_seconds_bucket{le=\"0.5\"} 1\n",
            "floe_table_data_files{table=\"taxi_cdc.trips\"} 2\n",
            "floe_table_live_rows{table=\"taxi_cdc.trips\"} 5\n",
            "floe_table_deleted_row_share{table=\"taxi_cdc.trips\"} 0.5\n",
        ] {
            assert!(text.contains(line), "{line} missing: {text}");
        }
        let freshness: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("floe_freshness_seconds "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0);
        assert!((2.0..10.0).contains(&freshness), "{text}");
    }

    #[test]
    fn merges_count_rounds_bytes_and_the_rounds_commits_waited_for() {
        let m = Metrics::default();
        let round = lakehouse::apply::MergeReport {
            bytes_rewritten: 4096,
            cpu: Duration::from_millis(300),
            paused: Duration::from_millis(125),
            ..Default::default()
        };
        m.merged("taxi_cdc.trips", &round, Duration::from_millis(500));
        let waited = lakehouse::apply::MergeReport {
            bytes_rewritten: 1024,
            waited: true,
            ..Default::default()
        };
        m.merged("taxi_cdc.trips", &waited, Duration::from_millis(250));
        m.tail_rewritten("taxi_cdc.trips", 40);
        m.tail_rewritten("taxi_cdc.trips", 2);
        let text = m.render();
        for line in [
            "floe_merges_total{table=\"taxi_cdc.trips\"} 2\n",
            "floe_merge_bytes_rewritten_total{table=\"taxi_cdc.trips\"} 5120\n",
            "floe_merge_waits_total{table=\"taxi_cdc.trips\"} 1\n",
            "floe_merge_seconds_total 0.75\n",
            "floe_merge_cpu_seconds_total 0.3\n",
            "floe_merge_paused_seconds_total 0.125\n",
            "floe_tail_rows_rewritten_total{table=\"taxi_cdc.trips\"} 42\n",
        ] {
            assert!(text.contains(line), "{line} missing: {text}");
        }
    }
}
