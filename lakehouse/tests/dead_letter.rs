//! Dead letters keep flowing while scheduled maintenance rewrites and
//! expires `floe.dead_letters`: each append that loses the commit race to
//! a compaction or an expiry is committed again on the newer table, and
//! every letter is there exactly once at the end.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, Int64Array};
use iceberg::TableIdent;
use lakehouse::dead_letter::{DeadLetter, DeadLetterTable};
use lakehouse::maintain::{compact, expire, CompactPolicy, ExpirePolicy};

/// Batches recorded while maintenance runs alongside, then batches
/// recorded in lockstep with it (each on a table maintenance changed).
const BATCHES: i64 = 60;
const LOCKSTEP: i64 = 10;
const PER_BATCH: i64 = 5;

fn letters(batch: i64) -> Vec<DeadLetter> {
    (0..PER_BATCH)
        .map(|i| {
            let offset = batch * PER_BATCH + i;
            DeadLetter {
                topic: "taxi.public.trips".into(),
                partition: (offset % 2) as i32,
                offset,
                key: Some(offset.to_be_bytes().to_vec()),
                value: None,
                error: format!("unknown schema id {offset}"),
                recorded_at_us: 1_700_000_000_000_000 + offset,
            }
        })
        .collect()
}

/// One round of scheduled maintenance on `ident`, aggressive: compaction
/// of any two small files, expiry of all but the current snapshot.
async fn maintain(
    lake: &lakehouse::Lake,
    ident: &TableIdent,
    compactions: &mut usize,
    expiries: &mut usize,
) {
    let compact_policy = CompactPolicy {
        min_small_files: 2,
        ..CompactPolicy::default()
    };
    let expire_policy = ExpirePolicy {
        older_than: std::time::Duration::ZERO,
        retain_last: 1,
    };
    let c = compact(lake, ident, &compact_policy, false).await.unwrap();
    *compactions += usize::from(c.snapshot_id.is_some());
    let e = expire(lake, ident, &expire_policy, false).await.unwrap();
    *expiries += usize::from(!e.expired.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_flowing_while_their_table_is_compacted_and_expired() {
    let (warehouse, lake) = crate::support::temp_lake("dead-letters-maintained").await;
    let ident = TableIdent::from_strs(["floe", "dead_letters"]).unwrap();
    let mut table = DeadLetterTable::open(&lake, ident.clone()).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let done = done.clone();
        tokio::spawn(async move {
            for batch in 0..BATCHES {
                table.record(&letters(batch)).await.unwrap();
                tokio::task::yield_now().await;
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            table
        })
    };
    let (mut compactions, mut expiries) = (0, 0);
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        if lake.catalog().table_exists(&ident).await.unwrap() {
            maintain(&lake, &ident, &mut compactions, &mut expiries).await;
        }
        tokio::task::yield_now().await;
    }
    let mut table = writer.await.unwrap();
    let raced_alongside = table.lost_races();
    // lockstep: every letter batch commits on a table that a compaction and
    // an expiry changed after the dead-letter writer last saw it
    for batch in BATCHES..BATCHES + LOCKSTEP {
        table.record(&letters(batch)).await.unwrap();
        maintain(&lake, &ident, &mut compactions, &mut expiries).await;
    }
    assert!(
        compactions > 0 && expiries > 0,
        "{compactions} compactions, {expiries} expiries"
    );
    assert!(
        table.lost_races() - raced_alongside >= (LOCKSTEP - 1) as u64,
        "{} lost races in lockstep: a commit on a table maintenance changed must lose and rebase",
        table.lost_races() - raced_alongside
    );

    let current = lake.catalog().load_table(&ident).await.unwrap();
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for batch in crate::support::scan_all(&current).await {
        let i = batch.schema().index_of("offset").unwrap();
        let offsets = batch
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for o in 0..offsets.len() {
            *seen.entry(offsets.value(o)).or_default() += 1;
        }
    }
    let total = (BATCHES + LOCKSTEP) * PER_BATCH;
    let expected: BTreeMap<i64, usize> = (0..total).map(|o| (o, 1)).collect();
    assert_eq!(seen, expected, "every letter exactly once");
    // the offsets survive compaction and expiry: letters read again after
    // a restart are not recorded twice
    let offsets = lakehouse::transaction::KafkaOffsets::of(&current);
    assert_eq!(offsets.get("taxi.public.trips", 0), Some(total - 2));
    assert_eq!(offsets.get("taxi.public.trips", 1), Some(total - 1));
    // and a batch read again is not recorded twice
    let before = table.lost_races();
    table.record(&letters(BATCHES)).await.unwrap();
    assert_eq!(table.lost_races(), before);
    let again = lake.catalog().load_table(&ident).await.unwrap();
    assert_eq!(
        again.metadata().current_snapshot_id(),
        current.metadata().current_snapshot_id(),
        "letters the table holds are not committed again"
    );
    eprintln!(
        "{compactions} compactions, {expiries} expiries, {} dead-letter commits lost a race",
        table.lost_races()
    );
    let _ = std::fs::remove_dir_all(&warehouse);
}
