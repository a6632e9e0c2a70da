//! Apply throughput and read cost (issue 3).
//!
//! `cargo bench -p lakehouse --bench apply -- BATCH` applies
//! `FLOE_BENCH_EVENTS` (default 1,000,000) trips change events (70%
//! inserts, 25% updates, 5% deletes; keys spread over the trips inserted so
//! far; pickups over 30 days; the table partitioned by day) in batches of
//! BATCH events through the real decoder and `TableWriter`, on the local
//! filesystem with a SQLite catalog, and prints events/s, commit latency,
//! files per commit, the table's and the index's bytes per live row and
//! peak memory.
//! `-- read` measures the scan cost of 10% position-deleted rows instead,
//! the two tables read in turn `FLOE_BENCH_READ_PAIRS` times (default 5)
//! on `FLOE_BENCH_READ_WORKERS` runtime workers (default 1).
//! `-- export BATCH DIR` writes the same events, batch by batch, as the
//! Parquet files `scripts/bench-pyiceberg.py` feeds to pyiceberg's
//! `Table.upsert` and `Table.delete` (each batch's final state per key:
//! upserted rows and deleted keys), for the peer comparison.
//! `-- maintain` applies the same workload in batches of 1,000 (1,000
//! commits) twice: once alone, then measuring file count, bytes and a full
//! scan before and after one compaction (and its throughput) and an
//! expiry; once with compaction and expiry running beside it every
//! `FLOE_BENCH_MAINTAIN_SECONDS` (default 10), as `floe jobs schedule`
//! would, ingest committing at most every `FLOE_BENCH_COMMIT_MS` (default
//! 250), sampling the live file count every 100 commits.
//! `-- add_default` loads FLOE_BENCH_EVENTS trips, then applies one update
//! whose schema adds a column with a `DEFAULT`: floe rewrites every live
//! row with the default in that commit (issue 14), timed against the same
//! update without a schema change.
//! `-- conflict` loads FLOE_BENCH_EVENTS trips (in batches of 500,000),
//! then opens three writers on the table; one commits an update, and the
//! others, whose table is now stale, apply another each: the time it
//! takes to recover from the lost race and commit is what a conflict costs
//! at that table size (issue 15), with the retry policy's backoff and
//! without it, with the table's bytes per live row.
//! `FLOE_BENCH_CODEC` (`uncompressed`, `snappy`, `zstd:LEVEL`) sets the
//! table's Parquet codec; default: none set, zstd level 3.
//! `scripts/bench-apply.sh` runs all of them; `scripts/bench-maintain.sh`
//! the maintenance one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::TryStreamExt;
use ingest::testing::{decimal, EventEncoder, Rng, Value};
use ingest::{ChangeBatch, ChangeDecoder, Op, RecordedMessage, Recording};
use lakehouse::apply::TableWriter;
use lakehouse::transaction::{RetryPolicy, SetProperties, Transaction};
use lakehouse::{Lake, LakeConfig, TableConfig};

const MARCH_1: i64 = 1_709_251_200_000_000;

/// The benchmark's events, decoded into batches of `batch` messages.
fn events(n: usize, batch: usize, deletes_percent: i64, updates_percent: i64) -> Vec<ChangeBatch> {
    events_from(0, n, batch, deletes_percent, updates_percent)
}

/// [`events`], as if `start` inserts had come before (trip ids and Kafka
/// offsets continue from there).
fn events_from(
    start: usize,
    n: usize,
    batch: usize,
    deletes_percent: i64,
    updates_percent: i64,
) -> Vec<ChangeBatch> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let value_id = rec.schemas.subject_versions("taxi.public.trips-value")[0];
    let key_id = rec.schemas.subject_versions("taxi.public.trips-key")[0];
    let enc = EventEncoder::new(&rec.schemas, value_id, key_id).unwrap();
    let mut rng = Rng(7 + start as u64);
    let mut next_id = start as i64;
    let mut decoder = ChangeDecoder::new(rec.schemas.clone());
    let mut out = Vec::new();
    for i in start..start + n {
        let roll = rng.range(0, 100);
        let (op, id) = if roll >= updates_percent + deletes_percent || next_id < 100 {
            next_id += 1;
            (Op::Create, next_id)
        } else if roll < deletes_percent {
            (Op::Delete, rng.range(1, next_id + 1))
        } else {
            (Op::Update, rng.range(1, next_id + 1))
        };
        let pickup = MARCH_1 + rng.range(0, 30 * 86_400) * 1_000_000;
        let fare = rng.range(250, 9_000);
        let row = HashMap::from([
            ("trip_id", Value::Long(id)),
            ("vendor_id", Value::Int(rng.range(1, 3) as i32)),
            ("pickup_datetime", Value::Long(pickup)),
            (
                "dropoff_datetime",
                Value::Long(pickup + rng.range(120, 3_600) * 1_000_000),
            ),
            ("pickup_zone_id", Value::Int(rng.range(1, 266) as i32)),
            ("dropoff_zone_id", Value::Int(rng.range(1, 266) as i32)),
            ("passenger_count", Value::Int(rng.range(1, 5) as i32)),
            ("trip_distance", decimal(rng.range(10, 3_000))),
            ("fare_amount", decimal(fare)),
            ("tip_amount", decimal(fare / 5)),
            ("total_amount", decimal(fare + fare / 5 + 100)),
            ("payment_type", Value::Int(rng.range(1, 5) as i32)),
        ]);
        let key = HashMap::from([("trip_id", Value::Long(id))]);
        let (k, v) = match op {
            Op::Delete => enc.event(op, Some(&key), Some(&row), None, i as i64),
            _ => enc.event(op, Some(&key), None, Some(&row), i as i64),
        }
        .unwrap();
        let msg = RecordedMessage {
            topic: "taxi.public.trips".into(),
            partition: 0,
            offset: i as i64,
            timestamp_ms: None,
            key: k,
            value: Some(v),
        };
        ready(decoder.push(&msg.as_raw())).unwrap();
        if (i - start + 1).is_multiple_of(batch) {
            out.extend(decoder.flush());
        }
    }
    out.extend(decoder.flush());
    out
}

/// Runs a future that never waits (decoding with recorded schemas).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn writer(name: &str, first: &ChangeBatch) -> (TableWriter, PathBuf) {
    let warehouse = std::env::temp_dir().join(format!("floe-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&warehouse);
    let mut lake = LakeConfig {
        warehouse: warehouse.clone().into(),
        ..LakeConfig::default()
    };
    lake.tables.by_source.insert(
        "public.trips".into(),
        TableConfig {
            partition: vec!["day(pickup_datetime)".into()],
            ..Default::default()
        },
    );
    let lake = Lake::open(&lake).await.unwrap();
    let w = lake.writer(first).await.unwrap();
    // FLOE_BENCH_CODEC: the table's write.parquet.compression-codec
    // (default: none set, so zstd at floe's default level)
    let Ok(codec) = std::env::var("FLOE_BENCH_CODEC") else {
        return (w, warehouse);
    };
    // `zstd:LEVEL` sets the level too
    let (codec, level) = codec.split_once(':').unwrap_or((codec.as_str(), ""));
    let mut props: HashMap<String, String> = [(
        lakehouse::spec::parquet::COMPRESSION_CODEC.to_string(),
        codec.to_string(),
    )]
    .into();
    if !level.is_empty() {
        props.insert(
            lakehouse::spec::parquet::COMPRESSION_LEVEL.to_string(),
            level.to_string(),
        );
    }
    let table = Transaction::new(
        lake.catalog().as_ref(),
        lake.pointer(),
        w.table().clone(),
        SetProperties(props),
    )
    .commit()
    .await
    .unwrap()
    .table;
    let w = TableWriter::open(lake.catalog().clone(), table, lake.pointer().clone())
        .await
        .unwrap();
    (w, warehouse)
}

async fn apply_run(n: usize, batch: usize) {
    let t = Instant::now();
    let batches = events(n, batch, 5, 25);
    eprintln!(
        "generated and decoded {n} events into {} batches in {:.1} s",
        batches.len(),
        t.elapsed().as_secs_f64()
    );
    let (mut w, warehouse) = writer(&format!("apply{batch}"), &batches[0]).await;
    let mut latencies = Vec::with_capacity(batches.len());
    let started = Instant::now();
    for b in &batches {
        let t = Instant::now();
        w.apply(b).await.unwrap();
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let total = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    let files: u64 = w
        .table()
        .metadata()
        .snapshots()
        .map(|s| {
            let p = &s.summary().additional_properties;
            let get = |k: &str| p.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            get("added-data-files") + get("added-delete-files")
        })
        .sum();
    // data and delete files as ingest left them, before any compaction
    let table_bytes = w
        .table()
        .metadata()
        .current_snapshot()
        .and_then(|s| s.summary().additional_properties.get("total-files-size"))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    println!(
        "apply batch={batch}: {n} events in {total:.1} s = {:.0} events/s; commit p50 {:.0} ms, p99 {:.0} ms; {:.1} files/commit; table {:.1} bytes/live row; index {:.1} bytes/live row ({} live); peak RSS {:.0} MB",
        n as f64 / total,
        pct(0.5),
        pct(0.99),
        files as f64 / batches.len() as f64,
        table_bytes / w.live_rows().max(1) as f64,
        w.index_heap_bytes() as f64 / w.live_rows().max(1) as f64,
        w.live_rows(),
        peak_rss_mb()
    );
    std::fs::remove_dir_all(&warehouse).ok();
}

async fn scan_seconds(table: &iceberg::table::Table) -> (f64, usize) {
    let t = Instant::now();
    let batches: Vec<arrow_array::RecordBatch> = table
        .scan()
        .select_all()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    (
        t.elapsed().as_secs_f64(),
        batches.iter().map(|b| b.num_rows()).sum(),
    )
}

/// The same rows scanned with and without 10% of them position-deleted.
async fn read_run(n: usize) {
    let inserts = events(n, n, 0, 0);
    let (mut plain, w1) = writer("readplain", &inserts[0]).await;
    plain.apply(&inserts[0]).await.unwrap();
    let (mut deleted, w2) = writer("readdeleted", &inserts[0]).await;
    deleted.apply(&inserts[0]).await.unwrap();
    // delete every tenth trip, as position deletes
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let value_id = rec.schemas.subject_versions("taxi.public.trips-value")[0];
    let key_id = rec.schemas.subject_versions("taxi.public.trips-key")[0];
    let enc = EventEncoder::new(&rec.schemas, value_id, key_id).unwrap();
    let mut decoder = ChangeDecoder::new(rec.schemas.clone());
    for (i, id) in (1..=n as i64).step_by(10).enumerate() {
        let key = HashMap::from([("trip_id", Value::Long(id))]);
        let (k, v) = enc
            .event(
                Op::Delete,
                Some(&key),
                Some(&HashMap::from([
                    ("trip_id", Value::Long(id)),
                    ("vendor_id", Value::Int(0)),
                    ("pickup_datetime", Value::Long(0)),
                    ("dropoff_datetime", Value::Long(0)),
                    ("pickup_zone_id", Value::Int(0)),
                    ("dropoff_zone_id", Value::Int(0)),
                ])),
                None,
                0,
            )
            .unwrap();
        let msg = RecordedMessage {
            topic: "taxi.public.trips".into(),
            partition: 0,
            offset: (n + i) as i64,
            timestamp_ms: None,
            key: k,
            value: Some(v),
        };
        decoder.push(&msg.as_raw()).await.unwrap();
    }
    for b in decoder.flush() {
        deleted.apply(&b).await.unwrap();
    }
    // warm the page cache once, then read the two tables in turn: the
    // best of each (the figure every earlier run gave) and the median of
    // each pair's ratio, which a slow moment on a shared machine moves
    // less, since both reads of a pair meet it
    let _ = scan_seconds(plain.table()).await;
    let _ = scan_seconds(deleted.table()).await;
    let pairs = env_or("FLOE_BENCH_READ_PAIRS", 5).max(1);
    let (mut best_plain, mut best_deleted, mut rows) = (f64::MAX, f64::MAX, (0, 0));
    let mut ratios = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        let (t, r) = scan_seconds(plain.table()).await;
        best_plain = best_plain.min(t);
        let (t2, r2) = scan_seconds(deleted.table()).await;
        best_deleted = best_deleted.min(t2);
        rows = (r, r2);
        ratios.push(t2 / t);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "read: {} rows scanned in {:.3} s; with 10% position-deleted ({} rows left) {:.3} s; ratio {:.2}x (best of {pairs} each); median ratio of {pairs} pairs {:.2}x ({:.2}-{:.2}x); {} runtime workers",
        rows.0,
        best_plain,
        rows.1,
        best_deleted,
        best_deleted / best_plain,
        ratios[pairs / 2],
        ratios[0],
        ratios[pairs - 1],
        read_workers(),
    );
    // FLOE_BENCH_READ_KEEP=FILE: both tables are kept, their metadata
    // files named in FILE, for the other readers (scripts/bench-apply.sh)
    if let Ok(keep) = std::env::var("FLOE_BENCH_READ_KEEP") {
        let location = |w: &TableWriter| w.table().metadata_location().unwrap().to_string();
        let text = format!(
            "plain {}\ndeleted {}\n",
            location(&plain),
            location(&deleted)
        );
        std::fs::write(&keep, text).unwrap();
        return;
    }
    std::fs::remove_dir_all(&w1).ok();
    std::fs::remove_dir_all(&w2).ok();
}

/// Writes each batch's final state per key as `DIR/NNNNN-upsert.parquet`
/// (the `after` rows) and `DIR/NNNNN-delete.parquet` (deleted trip ids),
/// and `DIR/batches.json` listing them with each batch's event count.
fn export(n: usize, batch: usize, dir: &Path) {
    use arrow_array::{Array, Int64Array, RecordBatch};
    std::fs::create_dir_all(dir).unwrap();
    let mut listing = Vec::new();
    for (b, changes) in events(n, batch, 5, 25).iter().enumerate() {
        let key = changes.key().unwrap();
        let ids = key.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let mut last: HashMap<i64, usize> = HashMap::new();
        for i in 0..changes.num_rows() {
            last.insert(ids.value(i), i);
        }
        let mut finals: Vec<usize> = last.into_values().collect();
        finals.sort_unstable();
        let (deleted, upserted): (Vec<usize>, Vec<usize>) = finals
            .into_iter()
            .partition(|&i| changes.op(i) == Some(Op::Delete));
        let take = |rows: &[usize], array: &dyn Array| {
            let idx = arrow_array::UInt32Array::from_iter_values(rows.iter().map(|&i| i as u32));
            arrow_select::take::take(array, &idx, None).unwrap()
        };
        let after = take(&upserted, changes.after().unwrap());
        let after = after
            .as_any()
            .downcast_ref::<arrow_array::StructArray>()
            .unwrap();
        let upserts = RecordBatch::from(after.clone());
        let deletes = RecordBatch::try_from_iter([("trip_id", take(&deleted, ids))]).unwrap();
        let write = |name: String, rows: &RecordBatch| {
            let file = std::fs::File::create(dir.join(&name)).unwrap();
            let mut w = parquet::arrow::ArrowWriter::try_new(file, rows.schema(), None).unwrap();
            w.write(rows).unwrap();
            w.close().unwrap();
            name
        };
        listing.push(serde_json::json!({
            "events": changes.num_rows() + changes.tombstones,
            "upsert": write(format!("{b:05}-upsert.parquet"), &upserts),
            "delete": write(format!("{b:05}-delete.parquet"), &deletes),
        }));
    }
    std::fs::write(
        dir.join("batches.json"),
        serde_json::to_string_pretty(&listing).unwrap(),
    )
    .unwrap();
    eprintln!("exported {} batches to {}", listing.len(), dir.display());
}

/// Files and bytes under `dir`.
fn on_disk(dir: &Path) -> (usize, u64) {
    let mut out = (0, 0);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                let (n, b) = on_disk(&path);
                out = (out.0 + n, out.1 + b);
            } else if let Ok(m) = entry.metadata() {
                out = (out.0 + 1, out.1 + m.len());
            }
        }
    }
    out
}

/// The current snapshot's live data and delete files and their bytes.
fn live_files(table: &iceberg::table::Table) -> (u64, u64, u64) {
    let Some(s) = table.metadata().current_snapshot() else {
        return (0, 0, 0);
    };
    let p = &s.summary().additional_properties;
    let get = |k: &str| p.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (
        get("total-data-files"),
        get("total-delete-files"),
        get("total-files-size"),
    )
}

/// Best of three full scans (after one to warm the page cache).
async fn best_scan(lake: &Lake, ident: &iceberg::TableIdent) -> (f64, usize) {
    let table = lake.catalog().load_table(ident).await.unwrap();
    let _ = scan_seconds(&table).await;
    let mut best = (f64::MAX, 0);
    for _ in 0..3 {
        let (t, rows) = scan_seconds(&table).await;
        if t < best.0 {
            best = (t, rows);
        }
    }
    best
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The maintenance benchmark: see the module comment.
async fn maintain_run(n: usize, with_maintenance: bool) {
    use lakehouse::maintain::{compact, expire, CompactPolicy, ExpirePolicy};
    const BATCH: usize = 1000;
    let batches = events(n, BATCH, 5, 25);
    let name = if with_maintenance {
        "scheduled"
    } else {
        "alone"
    };
    let (mut w, warehouse) = writer(&format!("maintain-{name}"), &batches[0]).await;
    let lake = std::sync::Arc::new(
        Lake::open(&LakeConfig {
            warehouse: warehouse.clone().into(),
            ..LakeConfig::default()
        })
        .await
        .unwrap(),
    );
    let ident = iceberg::TableIdent::from_strs(["taxi_cdc", "trips"]).unwrap();
    let table_dir = warehouse.join("taxi_cdc/trips");
    let interval = env_or("FLOE_BENCH_MAINTAIN_SECONDS", 10) as u64;
    // with maintenance, ingest commits at most every FLOE_BENCH_COMMIT_MS
    // (default 250), as `floe ingest` paces its commits by
    // `commit_interval_ms` (at least 200)
    let pace = std::time::Duration::from_millis(env_or("FLOE_BENCH_COMMIT_MS", 250) as u64);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let maintenance = with_maintenance.then(|| {
        let (lake, ident, stop) = (lake.clone(), ident.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut runs, mut rewritten, mut spent) = (0, 0u64, 0.0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
                let t = Instant::now();
                let report = compact(&lake, &ident, &CompactPolicy::default(), false)
                    .await
                    .unwrap();
                let compacted = t.elapsed().as_secs_f64();
                expire(
                    &lake,
                    &ident,
                    &ExpirePolicy {
                        older_than: std::time::Duration::ZERO,
                        retain_last: 10,
                    },
                    false,
                )
                .await
                .unwrap();
                runs += 1;
                rewritten += report.bytes_before;
                spent += t.elapsed().as_secs_f64();
                eprintln!(
                    "  maintenance run {runs}: compaction {compacted:.1} s ({} files into {}, {} attempts, {} rows deleted again), expiry {:.1} s",
                    report.data_files_removed + report.delete_files_removed,
                    report.files_added,
                    report.attempts,
                    report.rows_deleted_again,
                    t.elapsed().as_secs_f64() - compacted
                );
            }
            (runs, rewritten, spent)
        })
    });
    if with_maintenance {
        println!(
            "maintain ({name}): {n} events in batches of {BATCH}, a commit at most every {} ms, compaction and expiry every {interval} s",
            pace.as_millis()
        );
    } else {
        println!("maintain ({name}): {n} events in batches of {BATCH}, back to back");
    }
    println!("| commits | live data files | live delete files | live MiB | files on disk | MiB on disk |");
    println!("|---|---|---|---|---|---|");
    let started = Instant::now();
    for (i, b) in batches.iter().enumerate() {
        let t = Instant::now();
        w.apply(b).await.unwrap();
        if with_maintenance {
            tokio::time::sleep(pace.saturating_sub(t.elapsed())).await;
        }
        if (i + 1) % 100 == 0 || i + 1 == batches.len() {
            let table = lake.catalog().load_table(&ident).await.unwrap();
            let (data, deletes, bytes) = live_files(&table);
            let (files, disk) = on_disk(&table_dir);
            println!(
                "| {} | {data} | {deletes} | {:.1} | {files} | {:.1} |",
                i + 1,
                mib(bytes),
                mib(disk)
            );
        }
    }
    let applied = started.elapsed().as_secs_f64();
    println!(
        "applied in {applied:.1} s = {:.0} events/s",
        n as f64 / applied
    );
    if let Some(task) = maintenance {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (runs, rewritten, spent) = task.await.unwrap();
        println!(
            "maintenance: {runs} runs, {:.1} MiB rewritten, {spent:.1} s spent",
            mib(rewritten)
        );
    }
    let (scan, rows) = best_scan(&lake, &ident).await;
    println!("full scan: {rows} rows in {scan:.3} s");
    if !with_maintenance {
        let t = Instant::now();
        let report = compact(&lake, &ident, &CompactPolicy::default(), false)
            .await
            .unwrap();
        let took = t.elapsed().as_secs_f64();
        println!(
            "compaction: {} partitions, {} data + {} delete files ({:.1} MiB) into {} files ({:.1} MiB), {} rows, {took:.1} s = {:.1} MiB/s",
            report.partitions.len(),
            report.data_files_removed,
            report.delete_files_removed,
            mib(report.bytes_before),
            report.files_added,
            mib(report.bytes_after),
            report.rows_written,
            mib(report.bytes_before) / took
        );
        let table = lake.catalog().load_table(&ident).await.unwrap();
        let (data, deletes, bytes) = live_files(&table);
        let (scan, rows) = best_scan(&lake, &ident).await;
        println!(
            "after compaction: {data} data + {deletes} delete files live, {:.1} MiB; full scan: {rows} rows in {scan:.3} s",
            mib(bytes)
        );
        let (files, disk) = on_disk(&table_dir);
        expire(
            &lake,
            &ident,
            &ExpirePolicy {
                older_than: std::time::Duration::ZERO,
                retain_last: 1,
            },
            false,
        )
        .await
        .unwrap();
        let (files_after, disk_after) = on_disk(&table_dir);
        println!(
            "expiry to the current snapshot: on disk {files} files, {:.1} MiB -> {files_after} files, {:.1} MiB",
            mib(disk),
            mib(disk_after)
        );
        // nothing else writes here, so no age threshold is needed
        let orphans = lakehouse::maintain::orphans(
            &lake,
            &ident,
            &lakehouse::maintain::OrphanPolicy {
                older_than: std::time::Duration::ZERO,
            },
            false,
        )
        .await
        .unwrap();
        let (files_left, disk_left) = on_disk(&table_dir);
        println!(
            "orphan cleanup: {} files ({:.1} MiB, old metadata files the metadata log no longer names) deleted -> {files_left} files, {:.1} MiB on disk",
            orphans.orphans.len(),
            mib(orphans.orphan_bytes()),
            mib(disk_left)
        );
    }
    println!("peak RSS {:.0} MB", peak_rss_mb());
    std::fs::remove_dir_all(&warehouse).ok();
}

/// The cost of a lost commit race on a table of `n` rows.
async fn conflict_run(n: usize) {
    const LOAD: usize = 500_000;
    let t = Instant::now();
    let mut first: Option<(TableWriter, PathBuf)> = None;
    let mut loaded = 0;
    while loaded < n {
        let chunk = LOAD.min(n - loaded);
        // inserts only, ids continuing from the chunks before
        let mut batches = events_from(loaded, chunk, chunk, 0, 0);
        let batch = batches.remove(0);
        if first.is_none() {
            first = Some(writer("conflict", &batch).await);
        }
        let (w, _) = first.as_mut().unwrap();
        w.apply(&batch).await.unwrap();
        loaded += chunk;
    }
    let (w, warehouse) = first.unwrap();
    let load = t.elapsed().as_secs_f64();
    let table_bytes: u64 = w
        .table()
        .metadata()
        .current_snapshot()
        .and_then(|s| {
            s.summary()
                .additional_properties
                .get("total-files-size")
                .cloned()
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let lake = Lake::open(&LakeConfig {
        warehouse: warehouse.clone().into(),
        ..LakeConfig::default()
    })
    .await
    .unwrap();
    let ident = w.table().identifier().clone();
    drop(w);
    // two writers on the same snapshot
    let open = || async {
        let table = lake.catalog().load_table(&ident).await.unwrap();
        let t = Instant::now();
        let w = TableWriter::open(lake.catalog().clone(), table, lake.pointer().clone())
            .await
            .unwrap();
        (w, t.elapsed().as_secs_f64())
    };
    let (mut a, open_secs) = open().await;
    // the production retry policy (a lost race waits 100 ms to 200 ms
    // with jitter before the next attempt), and one without the wait: the
    // work of recovering alone
    let (mut b, _) = open().await;
    let (c, _) = open().await;
    let mut c = c.with_retry(RetryPolicy {
        min_delay: std::time::Duration::ZERO,
        max_delay: std::time::Duration::ZERO,
        ..RetryPolicy::default()
    });
    a.apply(&one_update(n as i64, false)).await.unwrap();
    let t = Instant::now();
    b.apply(&one_update(n as i64 + 1, false)).await.unwrap();
    let recovered = t.elapsed().as_secs_f64();
    let t = Instant::now();
    c.apply(&one_update(n as i64 + 2, false)).await.unwrap();
    let work = t.elapsed().as_secs_f64();
    let t = Instant::now();
    c.apply(&one_update(n as i64 + 3, false)).await.unwrap();
    let plain = t.elapsed().as_secs_f64();
    println!(
        "conflict at {n} live rows (loaded in {load:.1} s, {:.1} bytes/row on disk): a writer that lost the race committed in {recovered:.3} s with the retry policy's backoff, {work:.3} s without it (index rebuilds after the race: {}; an uncontended commit: {plain:.3} s; opening a writer, index built: {open_secs:.2} s); peak RSS {:.0} MB",
        table_bytes as f64 / n as f64,
        b.index_rebuilds_after_races() + c.index_rebuilds_after_races(),
        peak_rss_mb()
    );
    std::fs::remove_dir_all(&warehouse).ok();
}

/// One update of trip 1, in the trips schema with `rate_code text DEFAULT
/// 'standard'` added when `with_column`, at `offset`.
fn one_update(offset: i64, with_column: bool) -> ChangeBatch {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let value_id = rec.schemas.subject_versions("taxi.public.trips-value")[0];
    let key_id = rec.schemas.subject_versions("taxi.public.trips-key")[0];
    let mut schemas = rec.schemas.clone();
    let id = if with_column {
        let mut json: serde_json::Value =
            serde_json::from_str(rec.schemas.get(value_id).unwrap()).unwrap();
        // as Debezium and the Confluent converter write a column with a default
        json["fields"][0]["type"][1]["fields"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "name": "rate_code",
                "type": [{"type": "string", "connect.default": "standard"}, "null"],
                "default": "standard"
            }));
        schemas.insert(9_001, &json.to_string());
        9_001
    } else {
        value_id
    };
    let enc = EventEncoder::new(&schemas, id, key_id).unwrap();
    let mut row = HashMap::from([
        ("trip_id", Value::Long(1)),
        ("vendor_id", Value::Int(2)),
        ("pickup_datetime", Value::Long(MARCH_1)),
        ("dropoff_datetime", Value::Long(MARCH_1 + 600_000_000)),
        ("pickup_zone_id", Value::Int(1)),
        ("dropoff_zone_id", Value::Int(2)),
    ]);
    if with_column {
        row.insert("rate_code", Value::String("express".into()));
    }
    let key = HashMap::from([("trip_id", Value::Long(1))]);
    let (k, v) = enc
        .event(Op::Update, Some(&key), None, Some(&row), offset)
        .unwrap();
    let msg = RecordedMessage {
        topic: "taxi.public.trips".into(),
        partition: 0,
        offset,
        timestamp_ms: None,
        key: k,
        value: Some(v),
    };
    let mut decoder = ChangeDecoder::new(schemas);
    ready(decoder.push(&msg.as_raw())).unwrap();
    decoder.flush().remove(0)
}

/// The cost of `ADD COLUMN ... DEFAULT` on a table of `n` rows.
async fn add_default_run(n: usize) {
    let inserts = events(n, n, 0, 0);
    let (mut w, warehouse) = writer("adddefault", &inserts[0]).await;
    let t = Instant::now();
    w.apply(&inserts[0]).await.unwrap();
    let load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    w.apply(&one_update(n as i64, false)).await.unwrap();
    let plain = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let stats = w.apply(&one_update(n as i64 + 1, true)).await.unwrap();
    let filled = t.elapsed().as_secs_f64();
    assert!(
        stats.schema_changed && stats.rows_filled == n as u64,
        "{stats:?}"
    );
    let files = w.table().metadata().current_snapshot().map_or(0, |s| {
        s.summary()
            .additional_properties
            .get("added-data-files")
            .cloned()
            .unwrap_or_default()
            .parse::<u64>()
            .unwrap_or(0)
    });
    println!(
        "add column with default: {n} rows (loaded in {load:.1} s) filled in {filled:.2} s = {:.0} rows/s, {files} files written; the same update without the column {:.3} s; peak RSS {:.0} MB",
        n as f64 / filled,
        plain,
        peak_rss_mb()
    );
    std::fs::remove_dir_all(&warehouse).ok();
}

/// A count from the environment, or `default` when unset or not a number.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `FLOE_BENCH_READ_WORKERS`: the read run's runtime workers (default 1).
fn read_workers() -> usize {
    env_or("FLOE_BENCH_READ_WORKERS", 1).max(1)
}

fn main() {
    let n = env_or("FLOE_BENCH_EVENTS", 1_000_000);
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let [cmd, batch, dir] = args.as_slice() {
        if cmd == "export" {
            return export(n, batch.parse().expect("batch size"), Path::new(dir));
        }
    }
    let arg = args.first().cloned().unwrap_or_else(|| "10000".into());
    if arg == "maintain" {
        // two workers: ingest and maintenance each get a core
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let which = args.get(1).map(String::as_str).unwrap_or("both");
        if which != "scheduled" {
            rt.block_on(maintain_run(n, false));
        }
        if which != "alone" {
            rt.block_on(maintain_run(n, true));
        }
        return;
    }
    // one worker unless the read run is asked for more, to read as
    // `floe sql` does, on every core (on 2 cores the 10%-deleted ratio
    // came out the same: docs/benchmarks.md, "seventeenth numbers")
    let workers = if arg == "read" { read_workers() } else { 1 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    match arg.as_str() {
        "read" => rt.block_on(read_run(n)),
        "add_default" => rt.block_on(add_default_run(n)),
        "conflict" => rt.block_on(conflict_run(n)),
        size => rt.block_on(apply_run(n, size.parse().expect("batch size or `read`"))),
    }
}
