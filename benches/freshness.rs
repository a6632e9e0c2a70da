//! Freshness benchmark driver, run by `scripts/bench-freshness.sh` against
//! the local stack and a running `floe ingest`.
//!
//! A writer makes a steady stream of row changes to Postgres `trips` (20
//! transactions a second: 60% inserts, 30% updates, 10% deletes) and notes
//! when each transaction's COMMIT returned. A watcher follows the lake
//! table's snapshots (through the catalog, as every query does) and reads
//! the newest trip id each one added from its data files' column bounds.
//! A transaction's latency is the commit time of the first snapshot that
//! holds its newest insert (from then on every floe SQL query sees it)
//! minus its Postgres commit time. After the run, one full-table SQL query
//! through floe's DataFusion session is timed: what a reader pays on top.
//!
//! With `--probe-every S`, every S seconds during the run it also pins the
//! table's current snapshot (a copy of its metadata registered as
//! `bench.trips_pinned_<s>`: ingest expires old snapshots, their files
//! stay), counts its live files and times two reads of
//! it (a full `count(*)` and a three-column aggregate by zone); after the
//! run each pinned snapshot's rows are written once more as a compacted
//! table (`bench.trips_compacted`, files of the job sink's size, the same
//! day partitions) and the same two reads are timed on it: what the live
//! table costs a reader against the same rows compacted. The compacted
//! reads run on a machine no longer ingesting, so the live snapshot is
//! read once more beside them (`count_after_s`, `aggregate_after_s`): the
//! ratio of the table's layout alone. With `--probe-compact-during true`
//! each probe also writes its snapshot's rows compacted at once
//! (`bench.trips_compacted_during`) and reads the two alternately, while
//! ingest runs: the same rows under the same load (the copy's writing
//! takes CPU from the run, so its freshness is not the plain run's).
//! `--probe-csv` writes the probes for `scripts/bench-chart.py`.
//!
//! Usage: freshness --lake-config FLOE_TOML --postgres URL --rate N
//!        --seconds S [--first-id ID] [--pids name=pid+pid,...] [--query-after true]
//!        [--probe-every S] [--probe-csv PATH] [--probe-compact-during true]
//! Prints one line: rate achieved, p50/p99/max latency and per-process CPU.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use analytics::LakeSession;
use iceberg::spec::{
    FormatVersion, ManifestContentType, ManifestList, ManifestStatus, PrimitiveLiteral,
};
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
    /// Time one full-table query after the run.
    query_after: bool,
    /// Probe the table's files and read cost this often (seconds; 0: never).
    probe_every: u64,
    /// Where to write the probes as CSV.
    probe_csv: Option<String>,
    /// At each probe, also write the snapshot's rows compacted and read
    /// both tables then, under the same load.
    compact_during: bool,
    /// With `compact_during`, how many times each table is read per probe
    /// (alternately); the fastest read counts.
    probe_reads: usize,
}

fn args() -> Args {
    let mut a = Args {
        lake_config: "floe.toml".into(),
        postgres: String::new(),
        rate: 2000,
        seconds: 60,
        first_id: 1_000_000,
        pids: Vec::new(),
        query_after: false,
        probe_every: 0,
        probe_csv: None,
        compact_during: false,
        probe_reads: 2,
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
            "--query-after" => a.query_after = value == "true",
            "--probe-every" => a.probe_every = value.parse().expect("--probe-every S"),
            "--probe-csv" => a.probe_csv = Some(value),
            "--probe-compact-during" => a.compact_during = value == "true",
            "--probe-reads" => {
                a.probe_reads = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .expect("--probe-reads N (at least 1)")
            }
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

/// Committed transactions: (newest trip id inserted, when COMMIT returned,
/// ms since the epoch).
type Commits = Arc<Mutex<Vec<(i64, i64)>>>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

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
        commits.lock().unwrap().push((last, now_ms()));
        changes +=
            (inserts + if k > 0 { updates } else { 0 } + if k >= 20 { deletes } else { 0 }) as u64;
    }
    (changes, started.elapsed())
}

/// When each snapshot of `taxi_cdc.trips` was committed (ms since the
/// epoch) and the newest trip id among the rows it added, read from the
/// added data files' column bounds (no data file is read).
async fn watch(
    session: &LakeSession,
    until: i64,
    deadline: Instant,
    seen: &Mutex<Vec<(i64, i64)>>,
) -> Result<(), String> {
    let ident = TableIdent::from_strs(["taxi_cdc", "trips"]).map_err(|e| e.to_string())?;
    let mut done: HashSet<i64> = HashSet::new();
    let mut newest = 0;
    loop {
        if Instant::now() > deadline {
            return Err("the lake did not catch up within 120 s of the last write".into());
        }
        // the table appears with floe's first commit
        let Ok(table) = session.lake.catalog().load_table(&ident).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let metadata = table.metadata();
        let trip_id = metadata
            .current_schema()
            .field_by_name("trip_id")
            .map(|f| f.id)
            .ok_or("trips has no trip_id")?;
        let mut fresh: Vec<_> = metadata
            .snapshots()
            .filter(|s| !done.contains(&s.snapshot_id()))
            .cloned()
            .collect();
        fresh.sort_by_key(|s| s.sequence_number());
        for snapshot in fresh {
            let io = table.file_io();
            let bytes = io
                .new_input(snapshot.manifest_list())
                .map_err(|e| e.to_string())?
                .read()
                .await
                .map_err(|e| e.to_string())?;
            let list = ManifestList::parse_with_version(&bytes, FormatVersion::V2)
                .map_err(|e| e.to_string())?;
            let mut added_max = None;
            for m in list.entries() {
                if m.added_snapshot_id != snapshot.snapshot_id()
                    || m.content != ManifestContentType::Data
                {
                    continue;
                }
                let manifest = m.load_manifest(io).await.map_err(|e| e.to_string())?;
                for entry in manifest.entries() {
                    if entry.status() != ManifestStatus::Added {
                        continue;
                    }
                    if let Some(PrimitiveLiteral::Long(v)) = entry
                        .data_file()
                        .upper_bounds()
                        .get(&trip_id)
                        .map(|d| d.literal().clone())
                    {
                        added_max = added_max.max(Some(v));
                    }
                }
            }
            done.insert(snapshot.snapshot_id());
            if let Some(max) = added_max {
                newest = newest.max(max);
                seen.lock().unwrap().push((snapshot.timestamp_ms(), max));
            }
        }
        if newest >= until {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The two reads a probe times, on a table expression.
const PROBE_READS: [&str; 2] = [
    "SELECT count(*) FROM {t}",
    "SELECT pickup_zone_id, sum(total_amount), avg(tip_amount) FROM {t} GROUP BY pickup_zone_id",
];

/// One probe of the table during the run, and the same reads of its rows
/// compacted, after it.
#[derive(Debug, Default, Clone)]
struct Probe {
    at: u64,
    /// The table as it was at the probe, readable after the run ([`pin`]).
    pinned: String,
    data_files: u64,
    delete_files: u64,
    live_rows: u64,
    /// Seconds for each of [`PROBE_READS`] on the live table.
    live: [f64; 2],
    /// The same on the rows compacted.
    compacted: [f64; 2],
    /// The live reads again after the run, on the same pinned snapshot:
    /// the compacted reads run after it too, on a machine no longer
    /// ingesting, so this is the like-for-like ratio's numerator.
    live_after: [f64; 2],
    /// With `--probe-compact-during`: the same rows compacted at the
    /// probe, read between two reads of the live snapshot, while ingest
    /// runs (`live` is then the faster of those two).
    compacted_during: Option<[f64; 2]>,
}

/// The most live data files any one partition of `table` holds (the
/// bound ingest's merges keep after every commit round).
async fn most_files_in_a_partition(table: &iceberg::table::Table) -> Option<usize> {
    let metadata = table.metadata();
    let snapshot = metadata.current_snapshot()?;
    let io = table.file_io();
    let bytes = io
        .new_input(snapshot.manifest_list())
        .ok()?
        .read()
        .await
        .ok()?;
    let list = ManifestList::parse_with_version(&bytes, metadata.format_version()).ok()?;
    let mut per_partition: BTreeMap<String, usize> = BTreeMap::new();
    for m in list.entries() {
        if m.content != ManifestContentType::Data {
            continue;
        }
        let manifest = m.load_manifest(io).await.ok()?;
        for entry in manifest.entries() {
            if entry.is_alive() {
                *per_partition
                    .entry(format!("{:?}", entry.data_file().partition()))
                    .or_default() += 1;
            }
        }
    }
    per_partition.into_values().max()
}

/// Runs `sql` once and returns its seconds.
async fn timed(session: &LakeSession, sql: &str) -> f64 {
    let started = Instant::now();
    if let Err(e) = session.sql(sql).await {
        panic!("{sql}: {e}");
    }
    started.elapsed().as_secs_f64()
}

/// Pins the table's current snapshot and times the probe reads of it;
/// with `compact_during` (reads per table), also against its rows
/// compacted now.
async fn probe(session: &LakeSession, at: u64, compact_during: Option<usize>) -> Option<Probe> {
    let ident = TableIdent::from_strs(["taxi_cdc", "trips"]).ok()?;
    let table = session.lake.catalog().load_table(&ident).await.ok()?;
    let snapshot = table.metadata().current_snapshot()?.snapshot_id();
    let files = lakehouse::TableFiles::of(table.metadata());
    let pinned = pin(session, &table, at).await;
    let source = format!("as_of('taxi_cdc.trips', {snapshot})");
    let mut live = [0.0; 2];
    let mut compacted_during = None;
    if let Some(reads) = compact_during {
        // the copy is written first, so that both are read under the load
        // of the moment, alternately, the fastest of `reads` each
        compact(session, &source, "trips_compacted_during").await;
        let mut compacted = [0.0; 2];
        for (i, read) in PROBE_READS.iter().enumerate() {
            let live_sql = read.replace("{t}", &source);
            let compacted_sql = read.replace("{t}", "bench.trips_compacted_during");
            let (mut l, mut c) = (f64::MAX, f64::MAX);
            for _ in 0..reads {
                l = l.min(timed(session, &live_sql).await);
                c = c.min(timed(session, &compacted_sql).await);
            }
            (live[i], compacted[i]) = (l, c);
        }
        compacted_during = Some(compacted);
    } else {
        for (i, read) in PROBE_READS.iter().enumerate() {
            live[i] = timed(session, &read.replace("{t}", &source)).await;
        }
    }
    Some(Probe {
        at,
        pinned,
        data_files: files.data_files,
        delete_files: files.delete_files,
        live_rows: files.records.saturating_sub(files.position_deletes),
        live,
        compacted: [0.0; 2],
        live_after: [0.0; 2],
        compacted_during,
    })
}

/// Keeps the table as it is now readable after the run, as
/// `bench.trips_pinned_<at>`: ingest expires old snapshots (at 200 ms
/// commits its history reaches back about 40 s) but leaves their files
/// for `floe maintain orphans`, so a copy of this metadata, registered as
/// another table, still reads them. Its metadata is the live table's at
/// this moment, snapshots and all, so reading it costs what reading the
/// live table did.
async fn pin(session: &LakeSession, table: &iceberg::table::Table, at: u64) -> String {
    let from = table
        .metadata_location()
        .expect("a loaded table has metadata");
    let io = table.file_io();
    let bytes = io
        .new_input(from)
        .expect("a metadata path")
        .read()
        .await
        .expect("the metadata reads");
    let to = format!(
        "{}/metadata/bench-pinned-{at}.metadata.json",
        table.metadata().location()
    );
    io.new_output(&to)
        .expect("a metadata path")
        .write(bytes)
        .await
        .expect("the metadata copy is written");
    let catalog = session.lake.catalog();
    let namespace = iceberg::NamespaceIdent::new("bench".into());
    if !catalog.namespace_exists(&namespace).await.unwrap_or(false) {
        catalog
            .create_namespace(&namespace, Default::default())
            .await
            .expect("namespace bench");
    }
    let name = format!("trips_pinned_{at}");
    catalog
        .register_table(&TableIdent::new(namespace, name.clone()), to)
        .await
        .expect("the pinned copy registers");
    format!("bench.{name}")
}

/// Writes the rows `source` reads once more as `bench.<name>`, compacted:
/// files of the job sink's size, the same day partitions.
async fn compact(session: &LakeSession, source: &str, name: &str) {
    session.refresh().await.expect("refresh");
    let rows = session
        .sql(&format!("SELECT * FROM {source}"))
        .await
        .expect("the pinned snapshot reads");
    if let Some(first) = rows.first() {
        let ident = TableIdent::from_strs(["bench", name]).expect("a table name");
        lakehouse::sink::write_result(
            &session.lake,
            &ident,
            &["day(pickup_datetime)".to_string()],
            lakehouse::sink::WriteMode::Overwrite,
            &first.schema(),
            &rows,
            lakehouse::transaction::StateChange::default(),
        )
        .await
        .expect("the compacted copy is written");
    }
    session.refresh().await.expect("refresh");
}

/// Writes the rows of the probe's snapshot as a compacted table and
/// times the probe reads on it.
async fn probe_compacted(session: &LakeSession, probe: &mut Probe) {
    compact(session, &probe.pinned, "trips_compacted").await;
    for (i, read) in PROBE_READS.iter().enumerate() {
        probe.compacted[i] = timed(session, &read.replace("{t}", "bench.trips_compacted")).await;
        probe.live_after[i] = timed(session, &read.replace("{t}", &probe.pinned)).await;
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
        // the watcher runs from the start, with a generous deadline
        watch(
            &session,
            last_id,
            Instant::now() + Duration::from_secs(a.seconds + 120),
            &seen,
        )
        .await
    };
    // the table's live files every 10 s while the run goes on
    let samples = Mutex::new(Vec::new());
    let sampling = async {
        let ident = TableIdent::from_strs(["taxi_cdc", "trips"]).expect("a table name");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(a.seconds) {
            tokio::time::sleep(Duration::from_secs(10)).await;
            if let Ok(table) = session.lake.catalog().load_table(&ident).await {
                let files = lakehouse::TableFiles::of(table.metadata());
                let most = most_files_in_a_partition(&table).await;
                samples.lock().unwrap().push((
                    started.elapsed().as_secs(),
                    files.data_files,
                    files.delete_files,
                    most,
                ));
            }
        }
    };
    let probes = Mutex::new(Vec::new());
    let during = a.compact_during.then_some(a.probe_reads);
    let probing = async {
        if a.probe_every == 0 {
            return;
        }
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(a.probe_every)).await;
            if started.elapsed() > Duration::from_secs(a.seconds) {
                return;
            }
            if let Some(p) = probe(&session, started.elapsed().as_secs(), during).await {
                probes.lock().unwrap().push(p);
            }
        }
    };
    let ((changes, writing), caught_up, (), ()) = tokio::join!(writer, reader, sampling, probing);
    let mut most_seen = 0;
    for (at, data, deletes, most) in samples.into_inner().unwrap() {
        let most = most.map_or("?".to_string(), |m| {
            most_seen = most_seen.max(m);
            m.to_string()
        });
        println!("files at {at:>4} s: {data} data, {deletes} delete, at most {most} data files in a partition");
    }
    println!("at most {most_seen} data files in one partition at any 10 s sample");
    let cpu_window = wall.elapsed().as_secs_f64();
    let seen = seen.into_inner().unwrap();
    let commits = commits.lock().unwrap().clone();
    // a transaction is visible from the first snapshot (in commit order)
    // holding its newest row
    let mut snapshots = seen.clone();
    snapshots.sort();
    let mut latencies: Vec<f64> = commits
        .iter()
        .filter_map(|(id, at)| {
            snapshots
                .iter()
                .find(|(_, newest)| newest >= id)
                .map(|(when, _)| (when - at).max(0) as f64 / 1000.0)
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
    let mut probes = probes.into_inner().unwrap();
    for p in &mut probes {
        probe_compacted(&session, p).await;
        let ratio = |i: usize| p.live[i] / p.compacted[i].max(1e-9);
        let after = |i: usize| p.live_after[i] / p.compacted[i].max(1e-9);
        let during = |i: usize| match p.compacted_during {
            Some(c) => format!(
                "; {:.2} s compacted during the run, {:.1}x",
                c[i],
                p.live[i] / c[i].max(1e-9)
            ),
            None => String::new(),
        };
        println!(
            "probe at {:>4} s: {} data + {} delete files, {} rows | count(*) {:.2} s vs {:.2} s compacted ({:.1}x; {:.2} s after the run, {:.1}x{}) | aggregate {:.2} s vs {:.2} s ({:.1}x; {:.2} s after, {:.1}x{})",
            p.at, p.data_files, p.delete_files, p.live_rows, p.live[0], p.compacted[0], ratio(0),
            p.live_after[0], after(0), during(0), p.live[1], p.compacted[1], ratio(1), p.live_after[1], after(1), during(1)
        );
    }
    if let Some(path) = &a.probe_csv {
        let mut csv = String::from(
            "seconds,data_files,delete_files,live_rows,count_s,count_compacted_s,aggregate_s,aggregate_compacted_s,count_after_s,aggregate_after_s,count_compacted_during_s,aggregate_compacted_during_s\n",
        );
        for p in &probes {
            let during = |i: usize| {
                p.compacted_during
                    .map_or(String::new(), |c| format!("{:.3}", c[i]))
            };
            csv += &format!(
                "{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{},{}\n",
                p.at,
                p.data_files,
                p.delete_files,
                p.live_rows,
                p.live[0],
                p.compacted[0],
                p.live[1],
                p.compacted[1],
                p.live_after[0],
                p.live_after[1],
                during(0),
                during(1)
            );
        }
        std::fs::write(path, csv).expect("the probe CSV is written");
    }
    // what a reader pays on top: one full-table query at the end of the run
    let query = if a.query_after {
        session.refresh().await.expect("refresh");
        let started = Instant::now();
        session
            .sql("SELECT count(*) FROM taxi_cdc.trips")
            .await
            .expect("the lake answers");
        format!("{:.1} s", started.elapsed().as_secs_f64())
    } else {
        "not run".into()
    };
    let files = session
        .lake
        .catalog()
        .load_table(&TableIdent::from_strs(["taxi_cdc", "trips"]).unwrap())
        .await
        .ok()
        .and_then(|t| {
            let s = t
                .metadata()
                .current_snapshot()?
                .summary()
                .additional_properties
                .clone();
            Some(format!(
                "{} data + {} delete files",
                s.get("total-data-files").cloned().unwrap_or_default(),
                s.get("total-delete-files").cloned().unwrap_or_default()
            ))
        })
        .unwrap_or_default();
    if latencies.is_empty() {
        println!(
            "rate {} changes/s: no transaction became visible ({})",
            a.rate,
            caught_up.err().unwrap_or_default()
        );
        std::process::exit(1);
    }
    println!(
        "target {} changes/s | achieved {achieved:.0}/s over {:.0} s | committed to the lake: p50 {:.2} s, p99 {:.2} s, max {:.2} s ({} of {} transactions{}) | full-table SQL query after: {query} over {files} | CPU {}",
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
