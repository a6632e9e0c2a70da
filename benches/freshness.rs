//! Freshness benchmark driver, run by `scripts/bench-freshness.sh` against
//! the local stack and a running `floe ingest`.
//!
//! A writer makes a steady stream of row changes to Postgres `trips` (20
//! transactions a second: 60% inserts, 30% updates, 10% deletes) and notes
//! when each transaction's COMMIT returned. A reader queries the lake
//! through floe's DataFusion session (`SELECT max(trip_id) FROM
//! taxi_cdc.trips`) whenever the table has a new snapshot. A transaction's
//! latency is the time the first query that shows its newest insert
//! returned, minus its commit time.
//!
//! Usage: freshness --lake-config FLOE_TOML --postgres URL --rate N
//!        --seconds S [--first-id ID] [--pids name=pid+pid,...]
//! Prints one line: rate achieved, p50/p99/max latency and per-process CPU.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use analytics::LakeSession;
use datafusion::arrow::array::{Array, Int64Array};
use iceberg::TableIdent;

const TXNS_PER_SECOND: u64 = 20;

struct Args {
    lake_config: String,
    postgres: String,
    rate: u64,
    seconds: u64,
    first_id: i64,
    /// Processes to report CPU for: a name and its process ids.
    pids: Vec<(String, Vec<u32>)>,
}

fn args() -> Args {
    let mut a = Args {
        lake_config: "floe.toml".into(),
        postgres: String::new(),
        rate: 2000,
        seconds: 60,
        first_id: 1_000_000,
        pids: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // cargo bench passes --bench; it is not ours
        if flag == "--bench" {
            continue;
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--lake-config" => a.lake_config = value,
            "--postgres" => a.postgres = value,
            "--rate" => a.rate = value.parse().expect("--rate N"),
            "--seconds" => a.seconds = value.parse().expect("--seconds S"),
            "--first-id" => a.first_id = value.parse().expect("--first-id ID"),
            "--pids" => {
                a.pids = value
                    .split(',')
                    .filter_map(|p| p.split_once('='))
                    .map(|(n, p)| {
                        let pids = p.split('+').filter_map(|p| p.parse().ok()).collect();
                        (n.to_string(), pids)
                    })
                    .collect()
            }
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

/// CPU seconds (user + system) some processes have used so far.
fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|p| process_cpu_seconds(*p)).sum()
}

fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the command name, which is in parentheses
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Committed transactions: (newest trip id inserted, when COMMIT returned).
type Commits = Arc<Mutex<Vec<(i64, Instant)>>>;

async fn write(pg: sqlx::PgPool, a: &Args, commits: Commits) -> (u64, Duration) {
    let per_txn = (a.rate / TXNS_PER_SECOND).max(10) as i64;
    let inserts = per_txn * 6 / 10;
    let updates = per_txn * 3 / 10;
    let deletes = per_txn - inserts - updates;
    let txns = a.seconds * TXNS_PER_SECOND;
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / TXNS_PER_SECOND));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut changes = 0u64;
    for k in 0..txns as i64 {
        tick.tick().await;
        let first = a.first_id + k * inserts;
        let last = first + inserts - 1;
        let mut sql = format!(
            "BEGIN;
             INSERT INTO trips (trip_id, vendor_id, pickup_datetime, dropoff_datetime, pickup_zone_id,
               dropoff_zone_id, passenger_count, trip_distance, fare_amount, tip_amount, total_amount, payment_type)
             SELECT i, 1 + i % 2, timestamp '2024-05-01' + (i % 30) * interval '1 day',
               timestamp '2024-05-01 00:20' + (i % 30) * interval '1 day', 1 + i % 265, 1 + i % 200,
               1, 2.5, 12.0, 2.0, 16.0, 1 FROM generate_series({first}, {last}) AS i;"
        );
        if k > 0 {
            // the previous transaction's first rows
            let from = first - inserts;
            sql += &format!(
                "UPDATE trips SET tip_amount = tip_amount + 1 WHERE trip_id BETWEEN {from} AND {};",
                from + updates - 1
            );
        }
        if k >= 20 {
            // rows of a transaction a second ago, past the updated ones
            let to = a.first_id + (k - 19) * inserts - 1;
            sql += &format!(
                "DELETE FROM trips WHERE trip_id BETWEEN {} AND {to};",
                to - deletes + 1
            );
        }
        sql += "COMMIT;";
        if let Err(e) = sqlx::raw_sql(&sql).execute(&pg).await {
            panic!("workload transaction {k} failed: {e}");
        }
        commits.lock().unwrap().push((last, Instant::now()));
        changes +=
            (inserts + if k > 0 { updates } else { 0 } + if k >= 20 { deletes } else { 0 }) as u64;
    }
    (changes, started.elapsed())
}

/// Queries the lake after every new snapshot; (when the query returned,
/// the newest trip id it saw).
async fn read(
    session: &LakeSession,
    until: i64,
    deadline: Instant,
    seen: &Mutex<Vec<(Instant, i64)>>,
) -> Result<(), String> {
    let ident = TableIdent::from_strs(["taxi_cdc", "trips"]).map_err(|e| e.to_string())?;
    let mut last_snapshot = None;
    loop {
        if Instant::now() > deadline {
            return Err("the lake did not catch up within 120 s of the last write".into());
        }
        // the table appears with floe's first commit
        let table = match session.lake.catalog.load_table(&ident).await {
            Ok(table) => table,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let snapshot = table.metadata().current_snapshot_id();
        if snapshot != last_snapshot {
            if last_snapshot.is_none() {
                // the session lists tables when refreshed: now it has one
                session.refresh().await.map_err(|e| e.to_string())?;
            }
            last_snapshot = snapshot;
            let batches = session
                .sql("SELECT max(trip_id) FROM taxi_cdc.trips")
                .await
                .map_err(|e| e.to_string())?;
            let newest = batches
                .first()
                .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().cloned())
                .filter(|c| !c.is_empty() && !c.is_null(0))
                .map(|c| c.value(0))
                .unwrap_or(0);
            seen.lock().unwrap().push((Instant::now(), newest));
            if newest >= until {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let text = std::fs::read_to_string(&a.lake_config).expect("lake config readable");
    let doc: toml::Table = toml::from_str(&text).expect("valid TOML");
    let lake: lakehouse::LakeConfig = doc["lake"].clone().try_into().expect("[lake] section");
    let session = LakeSession::open(&lake).await.expect("lake opens");
    let pg = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&a.postgres)
        .await
        .expect("Postgres reachable");
    let cpu_before: BTreeMap<String, Option<f64>> = a
        .pids
        .iter()
        .map(|(n, p)| (n.clone(), cpu_seconds(p)))
        .collect();
    let per_txn = (a.rate / TXNS_PER_SECOND).max(10) as i64;
    let inserts = per_txn * 6 / 10;
    let last_id = a.first_id + (a.seconds * TXNS_PER_SECOND) as i64 * inserts - 1;
    let commits: Commits = Arc::default();
    let seen = Mutex::new(Vec::new());
    let wall = Instant::now();
    let writer = write(pg, &a, commits.clone());
    let reader = async {
        // the reader runs from the start; its deadline is set generously
        // and checked again once the writer is done
        read(
            &session,
            last_id,
            Instant::now() + Duration::from_secs(a.seconds + 120),
            &seen,
        )
        .await
    };
    let ((changes, writing), caught_up) = tokio::join!(writer, reader);
    let cpu_window = wall.elapsed().as_secs_f64();
    let seen = seen.into_inner().unwrap();
    let commits = commits.lock().unwrap().clone();
    let mut latencies: Vec<f64> = commits
        .iter()
        .filter_map(|(id, at)| {
            seen.iter()
                .find(|(_, newest)| newest >= id)
                .map(|(when, _)| when.saturating_duration_since(*at).as_secs_f64())
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let cpu: Vec<String> = a
        .pids
        .iter()
        .map(|(n, p)| {
            let used = cpu_seconds(p)
                .zip(cpu_before.get(n).copied().flatten())
                .map(|(after, before)| (after - before) / cpu_window * 100.0);
            match used {
                Some(pct) => format!("{n} {pct:.0}%"),
                None => format!("{n} ?"),
            }
        })
        .collect();
    let achieved = changes as f64 / writing.as_secs_f64();
    if latencies.is_empty() {
        println!(
            "rate {} changes/s: no transaction became visible ({})",
            a.rate,
            caught_up.err().unwrap_or_default()
        );
        std::process::exit(1);
    }
    println!(
        "target {} changes/s | achieved {achieved:.0}/s over {:.0} s | visible in SQL: p50 {:.2} s, p99 {:.2} s, max {:.2} s ({} of {} transactions{}) | CPU {}",
        a.rate,
        writing.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        latencies.len(),
        commits.len(),
        match caught_up {
            Ok(()) => String::new(),
            Err(e) => format!("; {e}"),
        },
        cpu.join(", ")
    );
}
