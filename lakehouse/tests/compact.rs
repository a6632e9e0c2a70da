//! Compaction racing ingest: a CDC history of upserts (some moving rows
//! between day partitions) and deletes is applied in small commits by a
//! `TableWriter` while compactions of the same partitions run and commit
//! in between; the table must end equal to the model of the source table,
//! with no row duplicated, and a writer opened afterwards must update and
//! delete correctly through its rebuilt index. The compactions lose races
//! to commits that delete rows of the files they rewrote; those rows must
//! be deleted from the new files too. Seeds: 1 to 3, or the list in
//! FLOE_COMPACT_SEEDS (e.g. `FLOE_COMPACT_SEEDS=4,5,6,7`).

use std::path::PathBuf;

use iceberg::spec::Struct;
use ingest::testing::EventEncoder;
use ingest::{ChangeDecoder, RecordedMessage, Recording};
use lakehouse::maintain::{compact, CompactPolicy};
use lakehouse::{Lake, LakeConfig};

use crate::model::{history, table_state, Action};
use crate::support::scan_all;

/// xorshift64*: a small deterministic generator for the histories.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % below
    }
}

fn actions(seed: u64, n: usize) -> Vec<Action> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..n)
        .map(|_| match rng.next(10) {
            0 | 1 => Action::Delete {
                key: rng.next(120) as i64,
            },
            _ => Action::Upsert {
                key: rng.next(120) as i64,
                day: rng.next(3) as i64,
                fare: 100 + rng.next(5000) as i64,
                notes: None,
                keep_notes: false,
            },
        })
        .collect()
}

/// A fresh local lake named `name` whose trips are partitioned by day.
async fn trips_lake(name: &str) -> (PathBuf, std::sync::Arc<Lake>) {
    let warehouse = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&warehouse);
    let mut config = LakeConfig {
        warehouse: warehouse.clone().into(),
        ..LakeConfig::default()
    };
    crate::support::trips_by_day(&mut config);
    let lake = std::sync::Arc::new(Lake::open(&config).await.unwrap());
    (warehouse, lake)
}

async fn apply(
    lake: &Lake,
    writer: &mut Option<lakehouse::apply::TableWriter>,
    rec: &Recording,
    messages: &[RecordedMessage],
) {
    let mut decoder = ChangeDecoder::new(rec.schemas.clone());
    for m in messages {
        decoder.push(&m.as_raw()).await.unwrap();
    }
    for batch in decoder.flush() {
        if writer.is_none() {
            *writer = Some(lake.writer(&batch).await.unwrap());
        }
        writer.as_mut().unwrap().apply(&batch).await.unwrap();
    }
}

/// The recorded Debezium fixture, and an encoder of trips events in its
/// schemas.
fn trips_recording() -> (Recording, EventEncoder) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let value_id = rec.schemas.subject_versions("taxi.public.trips-value")[0];
    let key_id = rec.schemas.subject_versions("taxi.public.trips-key")[0];
    let enc = EventEncoder::new(&rec.schemas, value_id, key_id).unwrap();
    (rec, enc)
}

/// Returns the rows compactions had to delete again from their new files.
async fn race(seed: u64) -> u64 {
    let (rec, enc) = trips_recording();
    let (messages, model) = history(&enc, &actions(seed, 900));

    let (warehouse, lake) = trips_lake(&format!("floe-compact-{seed}")).await;

    // a third of the history first, in commits of 15 messages: small files
    let chunks: Vec<&[RecordedMessage]> = messages.chunks(15).collect();
    let (first, rest) = chunks.split_at(chunks.len() / 3);
    let mut writer = None;
    for chunk in first {
        apply(&lake, &mut writer, &rec, chunk).await;
    }
    let ident = writer.as_ref().unwrap().table().identifier().clone();

    // the rest while compactions run
    let policy = CompactPolicy {
        small_file_bytes: 1 << 20,
        min_small_files: 2,
        max_deleted_ratio: 0.05,
        max_attempts: 20,
        ..CompactPolicy::default()
    };
    let ingest = {
        let lake = lake.clone();
        let rec = rec.clone();
        let rest: Vec<Vec<RecordedMessage>> = rest.iter().map(|c| c.to_vec()).collect();
        tokio::spawn(async move {
            for chunk in &rest {
                apply(&lake, &mut writer, &rec, chunk).await;
                tokio::task::yield_now().await;
            }
            writer
        })
    };
    let mut compacted = 0;
    let mut raced = 0;
    let mut deleted_again = 0;
    while !ingest.is_finished() {
        let report = compact(&lake, &ident, &policy, false).await.unwrap();
        if report.snapshot_id.is_some() {
            compacted += 1;
            raced += usize::from(report.attempts > 1);
            deleted_again += report.rows_deleted_again;
        }
    }
    let writer = ingest.await.unwrap();
    // and once more at rest
    let last = compact(&lake, &ident, &policy, false).await.unwrap();
    assert!(
        compacted + usize::from(last.snapshot_id.is_some()) > 0,
        "nothing was compacted"
    );

    let table = lake.catalog().load_table(&ident).await.unwrap();
    assert_eq!(table_state(&scan_all(&table).await), model, "seed {seed}");
    // the stored offsets survived the compactions
    assert_eq!(
        lakehouse::transaction::KafkaOffsets::of(&table).into_map(),
        writer.unwrap().applied_offsets(),
        "seed {seed}"
    );

    // a writer opened now updates and deletes through its rebuilt index
    let more = actions(seed + 1000, 200);
    let (all, model) = history(&enc, &[actions(seed, 900), more].concat());
    let mut fresh = None;
    let tail: Vec<RecordedMessage> = all[messages.len()..]
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, mut m)| {
            m.offset = messages.len() as i64 + i as i64;
            m
        })
        .collect();
    apply(&lake, &mut fresh, &rec, &tail).await;
    let table = lake.catalog().load_table(&ident).await.unwrap();
    assert_eq!(
        table_state(&scan_all(&table).await),
        model,
        "seed {seed}, after"
    );
    eprintln!(
        "seed {seed}: {compacted} compactions during ingest, {raced} after a lost race, \
         {deleted_again} rows deleted again"
    );
    std::fs::remove_dir_all(&warehouse).ok();
    deleted_again
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_racing_ingest_keeps_every_change() {
    let seeds: Vec<u64> = std::env::var("FLOE_COMPACT_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 3]);
    let mut deleted_again = 0;
    for seed in seeds {
        deleted_again += race(seed).await;
    }
    // the path that matters: ingest deleted rows of files being rewritten
    assert!(
        deleted_again > 0,
        "no compaction lost a race to a commit deleting its rows: the race was not exercised"
    );
}

/// Rewritten files aim at the target size: eight equal files compacted
/// with a target of a third of their bytes become three, rows unchanged.
#[tokio::test]
async fn compaction_writes_files_near_the_target_size() {
    use lakehouse::maintain::plan;
    use lakehouse::sink::WriteMode;

    let (warehouse, lake) = crate::support::temp_lake("compact-target").await;
    for i in 0..8i64 {
        let values: Vec<i64> = (i * 1000..(i + 1) * 1000).collect();
        crate::expire::write(&lake, WriteMode::Append, &values).await;
    }
    let ident = iceberg::TableIdent::from_strs(["results", "history"]).unwrap();
    let table = lake.catalog().load_table(&ident).await.unwrap();
    let before = plan(&table, &CompactPolicy::default()).await.unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].data_files.len(), 8);
    let policy = CompactPolicy {
        min_small_files: 2,
        target_file_bytes: before[0].data_bytes / 3,
        ..CompactPolicy::default()
    };
    let report = compact(&lake, &ident, &policy, false).await.unwrap();
    // a file is closed once it holds a third of the rows: after 3, 6, 8
    assert_eq!(report.files_added, 3);
    assert_eq!(report.rows_written, 8000);
    let table = lake.catalog().load_table(&ident).await.unwrap();
    let after = plan(&table, &CompactPolicy::default()).await.unwrap();
    assert_eq!(after[0].data_files.len(), 3);
    let mut values: Vec<i64> = Vec::new();
    for b in scan_all(&table).await {
        let c = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        values.extend(c.values().iter());
    }
    values.sort();
    assert_eq!(values, (0..8000).collect::<Vec<i64>>());
    let _ = std::fs::remove_dir_all(&warehouse);
}

/// The compression codec of every column chunk in the data files `table`'s
/// current snapshot reads (a file does not record zstd's level).
async fn codecs(table: &iceberg::table::Table) -> Vec<&'static str> {
    let mut out = Vec::new();
    for task in crate::support::scan_tasks(table).await {
        out.extend(file_codecs(table, &task.data_file_path).await);
    }
    out.sort_unstable();
    out
}

/// The compression codec of every column chunk of the file at `path`.
async fn file_codecs(table: &iceberg::table::Table, path: &str) -> Vec<&'static str> {
    use parquet::basic::Compression;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let bytes = table
        .file_io()
        .new_input(path)
        .unwrap()
        .read()
        .await
        .unwrap();
    let reader = SerializedFileReader::new(bytes).unwrap();
    let mut out = Vec::new();
    for rg in reader.metadata().row_groups() {
        out.extend(rg.columns().iter().map(|c| match c.compression() {
            Compression::ZSTD(_) => "zstd",
            Compression::SNAPPY => "snappy",
            Compression::UNCOMPRESSED => "uncompressed",
            _ => "other",
        }));
    }
    out
}

/// A CDC commit's small files (data and position deletes) are snappy when
/// the table names no codec; compaction rewrites them as zstd, the table's
/// default (spec/parquet.rs says why).
#[tokio::test]
async fn a_commits_small_files_are_snappy_until_compaction() {
    let (rec, enc) = trips_recording();
    let (messages, model) = history(&enc, &actions(11, 300));
    let (warehouse, _) = crate::support::temp_lake("compact-fresh-codec").await;
    let mut config = LakeConfig {
        warehouse: warehouse.clone().into(),
        ..LakeConfig::default()
    };
    crate::support::trips_by_day(&mut config);
    let lake = Lake::open(&config).await.unwrap();
    let mut writer = None;
    for chunk in messages.chunks(50) {
        apply(&lake, &mut writer, &rec, chunk).await;
    }
    let table = writer.unwrap().table().clone();
    let data = codecs(&table).await;
    assert!(!data.is_empty());
    assert!(data.iter().all(|c| *c == "snappy"), "{data:?}");
    let mut deletes = Vec::new();
    for task in crate::support::scan_tasks(&table).await {
        for d in &task.deletes {
            deletes.push(file_codecs(&table, &d.file_path).await);
        }
    }
    assert!(!deletes.is_empty(), "the history deletes rows");
    assert!(
        deletes.iter().flatten().all(|c| *c == "snappy"),
        "{deletes:?}"
    );

    let policy = CompactPolicy {
        min_small_files: 2,
        ..CompactPolicy::default()
    };
    let ident = table.identifier().clone();
    compact(&lake, &ident, &policy, false).await.unwrap();
    let table = lake.catalog().load_table(&ident).await.unwrap();
    let data = codecs(&table).await;
    assert!(data.iter().all(|c| *c == "zstd"), "{data:?}");
    assert_eq!(table_state(&scan_all(&table).await), model);
    let _ = std::fs::remove_dir_all(&warehouse);
}

/// New files are zstd unless the table's `write.parquet.compression-codec`
/// says otherwise; files written under another codec stay readable, and
/// compaction rewrites them in the table's codec. The compaction commits
/// Iceberg's `replace`, which the changes feed does not report as rows.
#[tokio::test]
async fn compaction_rewrites_old_files_in_the_tables_codec_as_a_replace() {
    use iceberg::spec::Operation;
    use lakehouse::changes::changes_since;
    use lakehouse::sink::WriteMode;
    use lakehouse::spec::parquet::COMPRESSION_CODEC;

    let (warehouse, lake) = crate::support::temp_lake("compact-codec").await;
    let ident = iceberg::TableIdent::from_strs(["results", "history"]).unwrap();
    let set_codec = |codec: &'static str| {
        let lake = &lake;
        let ident = &ident;
        async move { crate::support::set_properties(lake, ident, &[(COMPRESSION_CODEC, codec)]).await }
    };

    crate::expire::write(&lake, WriteMode::Append, &[0, 1, 2]).await;
    let table = lake.catalog().load_table(&ident).await.unwrap();
    assert_eq!(codecs(&table).await, vec!["zstd"], "zstd by default");

    set_codec("uncompressed").await;
    for i in 1..4i64 {
        crate::expire::write(&lake, WriteMode::Append, &[i * 10, i * 10 + 1]).await;
    }
    let table = lake.catalog().load_table(&ident).await.unwrap();
    assert_eq!(
        codecs(&table).await,
        ["uncompressed", "uncompressed", "uncompressed", "zstd"]
    );
    let rows_before = crate::support::scan_all(&table).await;

    set_codec("zstd").await;
    let table = lake.catalog().load_table(&ident).await.unwrap();
    let since = table.metadata().current_snapshot_id().unwrap();
    let policy = CompactPolicy {
        min_small_files: 2,
        ..CompactPolicy::default()
    };
    let report = compact(&lake, &ident, &policy, false).await.unwrap();
    assert_eq!(report.files_added, 1);
    let table = lake.catalog().load_table(&ident).await.unwrap();
    assert_eq!(codecs(&table).await, ["zstd"], "rewritten compressed");
    assert_eq!(
        table
            .metadata()
            .current_snapshot()
            .unwrap()
            .summary()
            .operation,
        Operation::Replace
    );
    let sorted = |batches: Vec<arrow_array::RecordBatch>| {
        let mut v: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(crate::support::scan_all(&table).await),
        sorted(rows_before)
    );
    let changes = changes_since(&table, since).await.unwrap().unwrap();
    assert_eq!(changes.rows(), 0, "a compaction changes no rows");
    let _ = std::fs::remove_dir_all(&warehouse);
}

/// A writer that follows a compaction which lost a race to the writer's
/// own commit: the compaction's new files hold the old row of the key the
/// commit updated, deleted again in the same snapshot. Catching up, the
/// writer must keep the key at its newer row: had it pointed the key at
/// the new file and then forgotten it with the deleted place, its next
/// update would leave the newer row behind (CI-F at stop 33: a trip twice
/// after three instances raced their merges).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_catching_up_with_a_compaction_that_deleted_rows_again_keeps_their_keys() {
    let (rec, enc) = trips_recording();
    const KEY: i64 = 5;
    let upsert = |key: i64, fare: i64| Action::Upsert {
        key,
        day: 0,
        fare,
        notes: None,
        keep_notes: false,
    };
    // forty rows in one partition, one commit each, then updates of KEY
    let mut actions: Vec<Action> = (0..40).map(|k| upsert(k, 100 + k)).collect();
    actions.extend((0..60).map(|i| upsert(KEY, 1000 + i)));
    let (messages, _) = history(&enc, &actions);

    let (warehouse, lake) = trips_lake("floe-compact-catch-up").await;
    let mut writer = None;
    let mut next = 0;
    let policy = CompactPolicy {
        small_file_bytes: 1 << 20,
        min_small_files: 2,
        max_deleted_ratio: 0.0,
        max_attempts: 20,
        ..CompactPolicy::default()
    };
    let mut raced = false;
    // the race needs the writer's commit to land while the compaction
    // rewrites; a few delays are tried, each on small files again
    for m in messages[..40].chunks(1) {
        apply(&lake, &mut writer, &rec, m).await;
    }
    next += 40;
    for (attempt, delay_ms) in [0u64, 5, 10, 20, 40, 80, 0, 5, 10].into_iter().enumerate() {
        if attempt > 0 {
            for m in messages[next..next + 4].chunks(1) {
                apply(&lake, &mut writer, &rec, m).await;
            }
            next += 4;
        }
        let ident = writer.as_ref().unwrap().table().identifier().clone();
        let compaction = {
            let lake = lake.clone();
            let policy = policy.clone();
            tokio::spawn(async move { compact(&lake, &ident, &policy, false).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        apply(&lake, &mut writer, &rec, &messages[next..next + 1]).await;
        next += 1;
        let report = compaction.await.unwrap().unwrap();
        if report.rows_deleted_again == 0 {
            continue;
        }
        raced = true;
        // the writer's next commit follows the compaction's snapshot
        apply(&lake, &mut writer, &rec, &messages[next..next + 1]).await;
        next += 1;
        let table = lake
            .catalog()
            .load_table(writer.as_ref().unwrap().table().identifier())
            .await
            .unwrap();
        let (_, model) = history(&enc, &actions[..next]);
        assert_eq!(
            table_state(&scan_all(&table).await),
            model,
            "after a compaction that deleted {} rows again (delay {delay_ms} ms)",
            report.rows_deleted_again
        );
        break;
    }
    assert!(raced, "no compaction lost a race to the writer's update");
    std::fs::remove_dir_all(&warehouse).ok();
}

/// The rows of `writer`'s table as committed, read back from the lake.
async fn committed_rows(
    lake: &Lake,
    writer: &lakehouse::apply::TableWriter,
) -> std::collections::BTreeMap<i64, crate::model::Row> {
    let table = lake
        .catalog()
        .load_table(writer.table().identifier())
        .await
        .unwrap();
    table_state(&scan_all(&table).await)
}

/// A history applied one commit at a time, each followed by a merge
/// round as ingest makes after every commit round.
struct CommitRounds<'a> {
    lake: &'a Lake,
    rec: &'a Recording,
    enc: &'a EventEncoder,
    policy: lakehouse::MergePolicy,
    writer: Option<lakehouse::apply::TableWriter>,
    done: Vec<Action>,
    sent: usize,
}

impl CommitRounds<'_> {
    /// Commits `actions`, merges, and checks the table against the
    /// model; the table's files by partition and its delete files.
    async fn commit(
        &mut self,
        actions: &[Action],
        what: &str,
    ) -> (Vec<(Struct, Vec<(String, u64)>)>, usize) {
        self.done.extend(actions.iter().cloned());
        let (messages, model) = history(self.enc, &self.done);
        apply(
            self.lake,
            &mut self.writer,
            self.rec,
            &messages[self.sent..],
        )
        .await;
        self.sent = messages.len();
        let mut w = self
            .writer
            .take()
            .unwrap()
            .with_merge_policy(self.policy.clone());
        // as ingest does after each commit round (loads the ledger)
        w.merge_beside().await.unwrap();
        assert_eq!(committed_rows(self.lake, &w).await, model, "{what}");
        let parts = w.files_by_partition().await.unwrap();
        let table = self
            .lake
            .catalog()
            .load_table(w.table().identifier())
            .await
            .unwrap();
        let deletes = crate::support::delete_files(&table).await.len();
        self.writer = Some(w);
        (parts, deletes)
    }
}

/// A merge round in the background keeps within its CPU share: from its
/// start to its commit it takes at least the wall time its measured CPU
/// (beyond the unpaced burst) needs at that share, and says it paused. A
/// round the writer waits for is not paced. Both leave the table's rows
/// as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_in_the_background_keeps_within_its_cpu_share() {
    use lakehouse::MergePolicy;
    use std::time::Duration;

    let (rec, enc) = trips_recording();
    // five commits of 6,000 rows into one partition: past two thirds of
    // max_files 6, within the bound, so the round runs in the background
    // then as many into a second partition, for a round waited for
    const ROWS: i64 = 30_000;
    let actions: Vec<Action> = (0..2 * ROWS)
        .map(|k| Action::Upsert {
            key: k,
            day: k / ROWS,
            fare: 100 + k % 900,
            notes: None,
            keep_notes: false,
        })
        .collect();
    let (all, model_all) = history(&enc, &actions);
    let (first, model) = history(&enc, &actions[..ROWS as usize]);
    let (messages, rest) = all.split_at(first.len());
    const SHARE: f64 = 0.05;
    // every commit's file stays its own (no tails), for the merge to take
    let policy = MergePolicy {
        max_files: 6,
        fanout: 64,
        cpu_share: SHARE,
        tail_rewrites: 0,
        ..MergePolicy::default()
    };

    let (warehouse, lake) = trips_lake("floe-merge-cpu-share").await;
    let mut writer = None;
    let chunk = messages.len() / 5;
    for (i, m) in messages.chunks(chunk).enumerate() {
        apply(&lake, &mut writer, &rec, m).await;
        if i == 0 {
            writer = writer.map(|w| w.with_merge_policy(policy.clone()));
        }
    }
    let mut writer = writer.unwrap();
    let mut report = writer.merge_beside().await.unwrap();
    assert!(writer.merging(), "no round started: {report:?}");
    let waited_from = std::time::Instant::now();
    while report.data_files_removed == 0 {
        assert!(
            waited_from.elapsed() < Duration::from_secs(120),
            "{report:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        report = writer.merge_beside().await.unwrap();
    }
    eprintln!("in the background: {report:?}");
    assert!(!report.waited, "{report:?}");
    // the burst (50 ms) runs unpaced; beyond it, CPU / share of wall time
    let least = report
        .cpu
        .saturating_sub(Duration::from_millis(50))
        .div_f64(SHARE);
    assert!(
        report.cpu > Duration::from_millis(75),
        "too little CPU past the burst to see the pacing: {report:?}"
    );
    assert!(report.took >= least, "{report:?} (at least {least:?})");
    assert!(!report.paused.is_zero(), "{report:?}");
    assert_eq!(committed_rows(&lake, &writer).await, model);

    // the same again, waited for: unpaced
    let mut writer = Some(writer);
    for m in rest.chunks(chunk) {
        apply(&lake, &mut writer, &rec, m).await;
    }
    let mut writer = writer.unwrap();
    let report = writer.merge().await.unwrap();
    eprintln!("waited for: {report:?}");
    assert!(report.data_files_removed >= 4, "{report:?}");
    assert!(!report.cpu.is_zero(), "{report:?}");
    assert_eq!(report.paused, Duration::ZERO, "{report:?}");
    assert_eq!(committed_rows(&lake, &writer).await, model_all);
    std::fs::remove_dir_all(&warehouse).ok();
}

/// A commit writes a partition's newest file again with its own rows
/// (its tail) instead of adding a file beside it, and leaves out the
/// tail's rows it updates or deletes instead of writing a delete file:
/// the partition holds one file until the tail's oldest rows were written
/// again `tail_rewrites` times; then the commit seals the tail's old rows
/// in a file of their own and keeps its young ones. Rows moved by a
/// rewrite are updated and deleted where they now are, by the writer that
/// moved them and by one opened afterwards; with `tail_rewrites = 0` every
/// commit adds its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_writes_its_partitions_tail_again_instead_of_adding_a_file() {
    use lakehouse::MergePolicy;

    let (rec, enc) = trips_recording();
    let upsert = |key: i64, day: i64, fare: i64| Action::Upsert {
        key,
        day,
        fare,
        notes: None,
        keep_notes: false,
    };
    // commit 0: 40 trips on day 0, 10 on day 1; each later commit adds
    // 5 trips to day 0, updates two earlier ones and deletes one (rows a
    // rewrite moved); day 1 gets nothing after commit 0
    let mut commits: Vec<Vec<Action>> = vec![(0..50)
        .map(|k| upsert(k, i64::from(k >= 40), 100 + k))
        .collect()];
    for c in 1..7i64 {
        let mut actions: Vec<Action> = (0..5).map(|i| upsert(100 + c * 5 + i, 0, 7)).collect();
        actions.push(upsert(c, 0, 1000 + c));
        actions.push(upsert(100 + (c - 1) * 5, 0, 2000 + c));
        actions.push(Action::Delete { key: 10 + c });
        commits.push(actions);
    }

    // the third: sealed files taken over by merges as ingest merges,
    // within a bound of 3 files after every commit round
    for (tail_rewrites, merging) in [(3u32, false), (0, false), (2, true)] {
        let policy = if merging {
            MergePolicy {
                tail_rewrites,
                max_files: 3,
                fanout: 2,
                ..MergePolicy::default()
            }
        } else {
            MergePolicy {
                tail_rewrites,
                // no merge is due: what the files are is the commits' doing
                max_files: 100,
                fanout: 100,
                ..MergePolicy::default()
            }
        };
        let (warehouse, lake) = trips_lake(&format!("floe-tail-{tail_rewrites}-{merging}")).await;
        let mut rounds = CommitRounds {
            lake: &lake,
            rec: &rec,
            enc: &enc,
            policy: policy.clone(),
            writer: None,
            done: Vec::new(),
            sent: 0,
        };
        let mut files_after = Vec::new();
        let mut day0_rows = Vec::new();
        for (c, actions) in commits.iter().enumerate() {
            let what = format!("tail_rewrites {tail_rewrites}, after commit {c}");
            let (parts, deletes) = rounds.commit(actions, &what).await;
            let day0 = parts.iter().map(|(_, f)| f.len()).max().unwrap_or(0);
            files_after.push((day0, deletes));
            // day 0: the partition with the most rows
            let rows_of = |f: &Vec<(String, u64)>| f.iter().map(|(_, r)| *r).sum::<u64>();
            if let Some((_, files)) = parts.iter().max_by_key(|(_, f)| rows_of(f)) {
                let mut rows: Vec<u64> = files.iter().map(|(_, r)| *r).collect();
                rows.sort();
                day0_rows.push(rows);
            }
        }
        eprintln!("tail_rewrites {tail_rewrites}: (day-0 files, delete files) {files_after:?}");
        if merging {
            assert!(files_after.iter().all(|(d, _)| *d <= 3), "{files_after:?}");
        } else if tail_rewrites == 3 {
            // commits 1 and 2 write the tail again, with no delete file;
            // in commit 3 the tail's oldest rows (commit 0's) reach 3
            // rewrites: they and commit 1's (older than a third of that)
            // are sealed, 34 + 6 rows, and commit 2's 6 rows stay with
            // commit 3's 7. Commits 4 and later delete rows of commit 0
            // (a delete file each); commit 5 seals commits 3 and 4's rows
            assert_eq!(
                files_after,
                vec![(1, 0), (1, 0), (1, 0), (2, 0), (2, 1), (3, 2), (3, 3)]
            );
            assert_eq!(day0_rows[0], vec![40]);
            assert_eq!(day0_rows[2], vec![40 + 7 + 7 - 5]);
            assert_eq!(day0_rows[3], vec![13, 40], "{day0_rows:?}");
            // commit 5 seals the 12 rows of commits 2 and 3 that stay; no
            // row is written again more than three times
            assert_eq!(day0_rows[5], vec![12, 13, 40], "{day0_rows:?}");
            assert_eq!(day0_rows[6], vec![12, 19, 40], "{day0_rows:?}");
        } else {
            // every commit adds a file, and deletes where rows were
            assert_eq!(
                files_after.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
                vec![1, 2, 3, 4, 5, 6, 7]
            );
            assert!(files_after[6].1 >= 3, "{files_after:?}");
        }

        // a writer opened now finds every row where the rewrites left it
        let ident = rounds.writer.as_ref().unwrap().table().identifier().clone();
        let mut done = rounds.done;
        done.extend((0..60).map(|k| upsert(k, 1, 5)));
        done.extend((100..135).map(|k| Action::Delete { key: k }));
        let (messages, model) = history(&enc, &done);
        let mut fresh = None;
        apply(&lake, &mut fresh, &rec, &messages[rounds.sent..]).await;
        let table = lake.catalog().load_table(&ident).await.unwrap();
        assert_eq!(
            table_state(&scan_all(&table).await),
            model,
            "tail_rewrites {tail_rewrites}, reopened"
        );
        std::fs::remove_dir_all(&warehouse).ok();
    }
}

/// A commit of deletes alone writes no data file: the tails stay the
/// partitions' newest files, and the next commit writes them again
/// (found in the freshness benchmark: a 3-event commit of deletes made
/// the next one add a file and a delete file to each of 30 partitions).
#[tokio::test]
async fn a_commit_of_deletes_alone_keeps_the_tails() {
    use lakehouse::MergePolicy;

    let (rec, enc) = trips_recording();
    let upsert = |key: i64, day: i64| Action::Upsert {
        key,
        day,
        fare: 100 + key,
        notes: None,
        keep_notes: false,
    };
    let commits: Vec<Vec<Action>> = vec![
        (0..20).map(|k| upsert(k, k / 10)).collect(),
        (20..30).map(|k| upsert(k, (k - 20) / 5)).collect(),
        // deletes alone: a row of day 0's tail
        vec![Action::Delete { key: 3 }],
        (30..40).map(|k| upsert(k, (k - 30) / 5)).collect(),
    ];
    let policy = MergePolicy {
        tail_rewrites: 24,
        max_files: 100,
        fanout: 100,
        ..MergePolicy::default()
    };
    let (warehouse, lake) = trips_lake("floe-tail-deletes-alone").await;
    let mut rounds = CommitRounds {
        lake: &lake,
        rec: &rec,
        enc: &enc,
        policy,
        writer: None,
        done: Vec::new(),
        sent: 0,
    };
    let mut files = Vec::new();
    for (c, actions) in commits.iter().enumerate() {
        let (parts, deletes) = rounds.commit(actions, &format!("after commit {c}")).await;
        let mut per_day: Vec<usize> = parts.iter().map(|(_, f)| f.len()).collect();
        per_day.sort();
        files.push((per_day, deletes));
    }
    // day 1's tail is written again by the last commit as by the second;
    // day 0's, named by the delete file, is left, and the last commit
    // starts a new one beside it
    assert_eq!(
        files,
        vec![
            (vec![1, 1], 0),
            (vec![1, 1], 0),
            (vec![1, 1], 1),
            (vec![1, 2], 1),
        ]
    );
    std::fs::remove_dir_all(&warehouse).ok();
}
