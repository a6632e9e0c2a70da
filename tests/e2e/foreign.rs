//! Another engine commits to floe's tables between two runs of `floe
//! replay` (the same applying as `floe ingest`): pyiceberg deletes rows
//! copy-on-write and overwrites a table with its own rows, as Spark's
//! `rewrite_data_files` or Trino's `OPTIMIZE` would. Those snapshots carry
//! none of floe's state, so the next run must find its Kafka offsets past
//! them: it resumes where the first run stopped, applies nothing twice
//! (counted in the changes applied, and in the rows of an append-mode
//! table), and the table ends equal to the source.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::jobs::ok;
use crate::quickstart::{expected, lake_state, sql};
use crate::stack::{fresh_dir, repo, text};
use crate::types::lake_script;

/// Messages of the quickstart recording the first run replays (of 26910).
const FIRST_RUN: usize = 13_455;
/// Changes the whole recording applies (tombstones are not changes).
const ALL_CHANGES: u64 = 25_910;
/// Of which to `trips`.
const TRIP_CHANGES: u64 = 25_890;

/// The quickstart recording's first `n` messages, as a recording in `dir`.
fn first_messages(dir: &Path, n: usize) -> PathBuf {
    let source = repo().join("tests/fixtures/quickstart");
    let out = dir.join("first-run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(source.join("schemas.json"), out.join("schemas.json")).unwrap();
    let gz = std::fs::File::open(source.join("recording.jsonl.gz")).unwrap();
    let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(gz)).lines();
    let mut w = std::fs::File::create(out.join("recording.jsonl")).unwrap();
    for line in lines.take(n) {
        writeln!(w, "{}", line.unwrap()).unwrap();
    }
    out
}

/// `floe replay` of `input`: the changes it applied.
fn replay(input: &Path, config: &Path) -> u64 {
    let out = ok(Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["replay", "--input"])
        .arg(input)
        .arg("--config")
        .arg(config)
        .output()
        .expect("floe runs"));
    // "replayed N messages from ...: C changes applied to T tables ..."
    out.split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no count of changes applied in {out:?}"))
}

/// `floe.toml` in `dir`: `before` (other sections), then a local lake
/// in `dir/lake` with `tables` (lines of the `[lake]` section and its
/// subsections).
pub(crate) fn config(dir: &Path, tables: &str, before: &str) -> PathBuf {
    let config = dir.join("floe.toml");
    std::fs::write(
        &config,
        format!(
            "{before}\n[lake]\nwarehouse = \"{}\"\n{tables}",
            dir.join("lake").display()
        ),
    )
    .unwrap();
    config
}

/// `scripts/foreign-commit.py` on `table` of the lake in `dir`: the
/// operations it committed and the rows the table then holds.
pub(crate) fn foreign_commit(dir: &Path, table: &str, args: &[String]) -> (Vec<String>, u64) {
    let out = lake_script("foreign-commit.py", &dir.join("lake"))
        .args(["--table", table])
        .args(args)
        .output()
        .expect("pyiceberg runs");
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ops = report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    (ops, report["rows"].as_u64().unwrap())
}

fn trip_ids(csv: &str) -> BTreeSet<i64> {
    csv.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect()
}

#[test]
fn another_engines_commits_between_runs_lose_no_offsets_and_apply_nothing_twice() {
    // an upsert table: pyiceberg deletes rows the source deletes later,
    // then rewrites the table
    let dir = fresh_dir("foreign-upsert");
    let first = first_messages(&dir, FIRST_RUN);
    let upsert = config(&dir, "", "");
    let applied_first = replay(&first, &upsert);
    let live = trip_ids(&sql(&upsert, "SELECT trip_id FROM taxi_cdc.trips"));
    let [_, _, want_trips] = expected();
    let doomed: Vec<String> = live
        .difference(&trip_ids(&want_trips))
        .map(i64::to_string)
        .collect();
    assert!(
        !doomed.is_empty(),
        "the second half deletes none of the first half's trips: the delete is not exercised"
    );
    let (ops, rows) = foreign_commit(
        &dir,
        "taxi_cdc.trips",
        &[
            "--delete-column".into(),
            "trip_id".into(),
            "--delete-values".into(),
            doomed.join(","),
            "--rewrite".into(),
        ],
    );
    assert!(ops.len() >= 2, "pyiceberg committed {ops:?}");
    assert_eq!(rows, (live.len() - doomed.len()) as u64);
    let applied_rest = replay(&repo().join("tests/fixtures/quickstart"), &upsert);
    assert_eq!(
        applied_first + applied_rest,
        ALL_CHANGES,
        "the second run resumes where the first stopped ({applied_first} + {applied_rest})"
    );
    assert_eq!(
        lake_state(&upsert),
        expected(),
        "the table equals the source"
    );
    std::fs::remove_dir_all(&dir).ok();

    // an append-mode (changelog) table: every change one row
    let dir = fresh_dir("foreign-append");
    let first = first_messages(&dir, FIRST_RUN);
    let append = config(
        &dir,
        "[lake.tables.\"public.trips\"]\nmode = \"append\"\n",
        "",
    );
    let applied_first = replay(&first, &append);
    let (ops, rows) = foreign_commit(&dir, "taxi_cdc.trips", &["--rewrite".into()]);
    // pyiceberg's overwrite: a delete of every file, then an append
    assert_eq!(ops, ["delete", "append"]);
    let applied_rest = replay(&repo().join("tests/fixtures/quickstart"), &append);
    assert_eq!(applied_first + applied_rest, ALL_CHANGES);
    let counted = sql(
        &append,
        "SELECT count(*) AS n, count(DISTINCT _kafka_offset) AS offsets FROM taxi_cdc.trips",
    );
    assert_eq!(
        counted,
        format!("n,offsets\n{TRIP_CHANGES},{TRIP_CHANGES}\n"),
        "every change once (the first run's {rows} rows rewritten by pyiceberg)"
    );
    std::fs::remove_dir_all(&dir).ok();
}
