//! `floe ingest`'s Prometheus `/metrics` and `/healthz`, served on
//! `[ingest] metrics_listen` by a minimal HTTP listener (GET only).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use lakehouse::TableFiles;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bounds (seconds) of the commit latency histogram's buckets.
const COMMIT_BUCKETS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How long the main loop may go without a tick before `/healthz` fails.
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Metrics {
    consumed: AtomicU64,
    /// (table, op) to events applied.
    applied: Mutex<BTreeMap<(String, String), u64>>,
    commit_buckets: [AtomicU64; COMMIT_BUCKETS.len()],
    commit_count: AtomicU64,
    commit_sum_us: AtomicU64,
    /// Source commit time (µs) of the newest event committed to the lake.
    newest_source_us: AtomicI64,
    /// Errors by kind (decode, apply_retry, kafka, dead_letter).
    errors: Mutex<BTreeMap<&'static str, u64>>,
    /// When the main loop last ran (µs since the epoch).
    heartbeat_us: AtomicI64,
    /// (topic, partition) to messages not yet committed to the lake, from
    /// librdkafka's statistics (high watermark minus committed offset).
    lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// Kafka bytes decoded and waiting for a commit.
    buffered_bytes: AtomicU64,
    /// 1 while partitions are paused because the buffers are full.
    paused: AtomicU64,
    /// Each table's files after its last commit by this process.
    tables: Mutex<BTreeMap<String, TableFiles>>,
    /// Per table: merge rounds that rewrote files, and bytes rewritten.
    merges: Mutex<BTreeMap<String, (u64, u64)>>,
    merge_seconds_us: AtomicU64,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Metrics {
    pub fn consumed(&self) {
        self.consumed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn applied(&self, table: &str, op: &str, events: u64) {
        if let Ok(mut m) = self.applied.lock() {
            *m.entry((table.to_string(), op.to_string())).or_default() += events;
        }
    }

    pub fn committed(&self, took: Duration, newest_source_us: Option<i64>) {
        let secs = took.as_secs_f64();
        for (bound, bucket) in COMMIT_BUCKETS.iter().zip(&self.commit_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.commit_count.fetch_add(1, Ordering::Relaxed);
        self.commit_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if let Some(ts) = newest_source_us {
            self.newest_source_us.fetch_max(ts, Ordering::Relaxed);
        }
    }

    /// What `table` holds after a commit: the files a reader opens and
    /// the share of rows it reads only to drop, which compaction lowers.
    pub fn table_files(&self, table: &str, files: TableFiles) {
        if let Ok(mut m) = self.tables.lock() {
            m.insert(table.to_string(), files);
        }
    }

    /// A merge round on `table` rewrote files.
    pub fn merged(&self, table: &str, report: &lakehouse::apply::MergeReport, took: Duration) {
        if let Ok(mut m) = self.merges.lock() {
            let entry = m.entry(table.to_string()).or_default();
            entry.0 += 1;
            entry.1 += report.bytes_rewritten;
        }
        self.merge_seconds_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn error(&self, kind: &'static str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    /// Replaces the lag of every partition librdkafka reported on.
    pub fn lag(&self, by_partition: impl IntoIterator<Item = ((String, i32), i64)>) {
        if let Ok(mut m) = self.lag.lock() {
            m.clear();
            m.extend(by_partition);
        }
    }

    pub fn buffer(&self, bytes: usize, paused: bool) {
        self.buffered_bytes.store(bytes as u64, Ordering::Relaxed);
        self.paused.store(u64::from(paused), Ordering::Relaxed);
    }

    pub fn heartbeat(&self) {
        self.heartbeat_us.store(now_us(), Ordering::Relaxed);
    }

    fn healthy(&self) -> bool {
        now_us() - self.heartbeat_us.load(Ordering::Relaxed) < HEALTHY_WITHIN.as_micros() as i64
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP floe_events_consumed_total Kafka messages consumed."
        );
        let _ = writeln!(out, "# TYPE floe_events_consumed_total counter");
        let _ = writeln!(
            out,
            "floe_events_consumed_total {}",
            self.consumed.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP floe_events_applied_total Change events committed to Iceberg, by table and operation.");
        let _ = writeln!(out, "# TYPE floe_events_applied_total counter");
        if let Ok(m) = self.applied.lock() {
            for ((table, op), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "floe_events_applied_total{{table=\"{table}\",op=\"{op}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP floe_commit_seconds Time to apply and commit one change batch."
        );
        let _ = writeln!(out, "# TYPE floe_commit_seconds histogram");
        for (bound, bucket) in COMMIT_BUCKETS.iter().zip(&self.commit_buckets) {
            let _ = writeln!(
                out,
                "floe_commit_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.commit_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "floe_commit_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "floe_commit_seconds_sum {}",
            self.commit_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "floe_commit_seconds_count {count}");
        let newest = self.newest_source_us.load(Ordering::Relaxed);
        if newest > 0 {
            let _ = writeln!(out, "# HELP floe_freshness_seconds Now minus the source commit time of the newest event committed to the lake.");
            let _ = writeln!(out, "# TYPE floe_freshness_seconds gauge");
            let _ = writeln!(
                out,
                "floe_freshness_seconds {}",
                (now_us() - newest) as f64 / 1e6
            );
        }
        let _ = writeln!(
            out,
            "# HELP floe_consumer_lag Messages in each partition not yet committed to the lake."
        );
        let _ = writeln!(out, "# TYPE floe_consumer_lag gauge");
        if let Ok(m) = self.lag.lock() {
            for ((topic, partition), lag) in m.iter() {
                let _ = writeln!(
                    out,
                    "floe_consumer_lag{{topic=\"{topic}\",partition=\"{partition}\"}} {lag}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP floe_buffered_bytes Kafka bytes decoded and waiting for a commit."
        );
        let _ = writeln!(out, "# TYPE floe_buffered_bytes gauge");
        let _ = writeln!(
            out,
            "floe_buffered_bytes {}",
            self.buffered_bytes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP floe_paused 1 while partitions are paused because the buffers are full."
        );
        let _ = writeln!(out, "# TYPE floe_paused gauge");
        let _ = writeln!(out, "floe_paused {}", self.paused.load(Ordering::Relaxed));
        self.render_tables(&mut out);
        let _ = writeln!(out, "# HELP floe_errors_total Errors by kind.");
        let _ = writeln!(out, "# TYPE floe_errors_total counter");
        if let Ok(m) = self.errors.lock() {
            for (kind, n) in m.iter() {
                let _ = writeln!(out, "floe_errors_total{{kind=\"{kind}\"}} {n}");
            }
        }
        out
    }
}

/// A per-table gauge: its name, help text and value.
type TableGauge = (&'static str, &'static str, fn(&TableFiles) -> f64);

/// A per-table merge counter: its name, help text and value from (merge
/// rounds, bytes rewritten).
type MergeCounter = (&'static str, &'static str, fn(&(u64, u64)) -> u64);

impl Metrics {
    fn render_tables(&self, out: &mut String) {
        let Ok(tables) = self.tables.lock() else {
            return;
        };
        let gauges: [TableGauge; 4] = [
            (
                "floe_table_data_files",
                "Live data files of each table after its last commit.",
                |f| f.data_files as f64,
            ),
            (
                "floe_table_delete_files",
                "Live position-delete files of each table after its last commit.",
                |f| f.delete_files as f64,
            ),
            (
                "floe_table_live_rows",
                "Rows a reader of each table sees after its last commit.",
                |f| f.live_rows() as f64,
            ),
            (
                "floe_table_deleted_row_share",
                "Share of each table's stored rows that readers read only to drop (0 to 1).",
                TableFiles::deleted_share,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (table, files) in tables.iter() {
                let _ = writeln!(out, "{name}{{table=\"{table}\"}} {}", value(files));
            }
        }
        let Ok(merges) = self.merges.lock() else {
            return;
        };
        let counters: [MergeCounter; 2] = [
            (
                "floe_merges_total",
                "Merge rounds inside ingest that rewrote small files, per table.",
                |m| m.0,
            ),
            (
                "floe_merge_bytes_rewritten_total",
                "Bytes of data files merges inside ingest rewrote, per table.",
                |m| m.1,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (table, m) in merges.iter() {
                let _ = writeln!(out, "{name}{{table=\"{table}\"}} {}", value(m));
            }
        }
        let _ = writeln!(
            out,
            "# HELP floe_merge_seconds_total Time spent merging small files inside ingest."
        );
        let _ = writeln!(out, "# TYPE floe_merge_seconds_total counter");
        let _ = writeln!(
            out,
            "floe_merge_seconds_total {}",
            self.merge_seconds_us.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
}

/// Serves `/metrics` and `/healthz` on `listen` until the process ends.
pub async fn serve(listen: &str, metrics: Arc<Metrics>) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for metrics on {listen}"))?;
    tracing::info!(%listen, "serving /metrics and /healthz");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = match path {
                    "/metrics" => ("200 OK", metrics.render()),
                    "/healthz" if metrics.healthy() => ("200 OK", "ok\n".to_string()),
                    "/healthz" => ("503 Service Unavailable", "stalled\n".to_string()),
                    _ => ("404 Not Found", "try /metrics or /healthz\n".to_string()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(())
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
}
