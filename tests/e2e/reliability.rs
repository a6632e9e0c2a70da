//! Faults outside floe, against the real stack.
//!
//! * Kafka Connect killed with kill -9 mid-stream: Debezium resumes from
//!   the source offsets it last flushed and sends again what came after
//!   them, under new Kafka offsets. An upsert lake and an append-mode
//!   changelog lake read the same topics; the first equals Postgres, the
//!   second holds each source change once.
//! * floe ingest aborted at each of its crash points in turn, then
//!   started again: every table exact, each poison message one letter.
//! * A replication slot lost while rows are deleted at the source, then a
//!   new snapshot: the rows it does not read are deleted from the lake.
//!   Lost again behind a connector that only streams: an incremental
//!   snapshot asked for by signal repairs values and, when it ends,
//!   deletes the rows deleted meanwhile (floe reads where it was asked
//!   for and its chunk windows from the signal table's topic); a blocking
//!   one asked for after it is reconciled too and finds nothing more.
//! * The schema registry unreachable (for floe) while a new schema id
//!   arrives: floe waits at the message, commits nothing past it, and
//!   resumes when the registry is back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use lakehouse::Lake;

use crate::ingest::{
    difference, lake_rows, lake_rows_in, metrics_port, spawn_floe_env, stop, wait_for,
    wait_until_all_equal, write_config, SETUP,
};
use crate::stack::{fresh_dir, text, Stack};

/// A test's own stack with the source tables seeded, and a floe config
/// for it (`s3://lake/<name>`, a SQLite catalog).
struct Scenario {
    dir: PathBuf,
    stack: Stack,
    config: PathBuf,
}

impl Scenario {
    fn new(name: &str) -> Self {
        let dir = fresh_dir(name);
        let stack = Stack::up(&dir.join("stack"));
        stack.psql(SETUP);
        let config = dir.join("floe.toml");
        write_config(
            &config,
            &stack,
            &format!("s3://lake/{name}"),
            &dir.join("catalog.db"),
        );
        Self { dir, stack, config }
    }
}

/// Debezium's offsets reach Kafka Connect's offset file this often here:
/// slower than the stack's default, so a kill -9 between two flushes
/// leaves seconds of changes for Debezium to send again.
const OFFSET_FLUSH_MS: &str = "8000";

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The lake of a config written by [`write_config`].
async fn open_lake(config: &Path) -> Lake {
    let doc: toml::Table = toml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    let lake: lakehouse::LakeConfig = doc["lake"].clone().try_into().unwrap();
    Lake::open(&lake).await.unwrap()
}

#[tokio::test]
async fn kafka_connect_killed_mid_stream_sends_again_and_nothing_is_applied_twice() {
    let dir = fresh_dir("connect-kill");
    let stack = Stack::up_with(
        &dir.join("stack"),
        &[("STACK_CONNECT_OFFSET_FLUSH_MS", OFFSET_FLUSH_MS)],
    );
    stack.psql(SETUP);

    // two deployments on the same topics: an upsert lake, and a lake with
    // trips as an append-mode changelog
    let upsert = dir.join("upsert.toml");
    write_config(&upsert, &stack, "s3://lake/upsert", &dir.join("upsert.db"));
    let changelog = dir.join("changelog.toml");
    write_config(
        &changelog,
        &stack,
        "s3://lake/changelog",
        &dir.join("changelog.db"),
    );
    let written = std::fs::read_to_string(&changelog).unwrap();
    let written = written
        .replace("group_id = \"floe-e2e\"", "group_id = \"floe-changelog\"")
        .replace(
            "partition = [\"day(pickup_datetime)\"] }",
            "partition = [\"day(pickup_datetime)\"], mode = \"append\" }",
        );
    assert!(written.contains("mode = \"append\""), "{written}");
    std::fs::write(&changelog, written).unwrap();
    let (upsert_log, changelog_log) = (dir.join("upsert.log"), dir.join("changelog.log"));
    let mut a = spawn_floe_env(&upsert, &upsert_log, &[]);
    let mut b = spawn_floe_env(&changelog, &changelog_log, &[]);
    let registered = stack.setup_connectors(&[]);
    assert!(registered.status.success(), "{}", text(&registered));
    let lake = open_lake(&upsert).await;
    wait_until_all_equal(&stack, &lake, &mut [&mut a], false).await;

    // changes stream; right after Connect flushes Debezium's offsets (it
    // writes the file only when they moved), a few more seconds of
    // changes, and Connect is killed before its next flush
    let offsets = dir.join("stack/connect/offsets");
    let before = modified(&offsets);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    while modified(&offsets) == before {
        assert!(
            Instant::now() < deadline,
            "Connect never flushed its offsets"
        );
        crate::chaos::workload_round(&stack.env["PGPORT"], round);
        round += 1;
    }
    let flushed = Instant::now();
    while flushed.elapsed() < Duration::from_secs(4) {
        crate::chaos::workload_round(&stack.env["PGPORT"], round);
        round += 1;
    }
    let pid = std::fs::read_to_string(dir.join("stack/connect.pid")).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_secs(1));

    // started again (standalone Connect keeps offsets, not connectors):
    // the connector resumes from the offsets flushed before the kill
    stack.service("start", "connect");
    let registered = stack.setup_connectors(&[]);
    assert!(registered.status.success(), "{}", text(&registered));
    for more in 0..3 {
        crate::chaos::workload_round(&stack.env["PGPORT"], round + more);
    }
    wait_until_all_equal(&stack, &lake, &mut [&mut a], false).await;
    assert_eq!(difference(&stack, &lake, false).await, None);

    // the changelog: each change once, and replayed in order it gives the
    // rows Postgres holds
    let changelog_lake = open_lake(&changelog).await;
    let sql = "SELECT _op, CAST(trip_id AS VARCHAR), CAST(_source_ts AS VARCHAR), \
               CAST(_kafka_offset AS VARCHAR), CAST(fare_amount AS VARCHAR) FROM {t}";
    let source: BTreeMap<String, String> = stack
        .query("SELECT trip_id, fare_amount FROM trips")
        .into_iter()
        .filter_map(|l| {
            l.split_once('|')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (changes, replayed) = loop {
        let rows = lake_rows(&changelog_lake, "trips", sql)
            .await
            .unwrap_or_default();
        // (offset, op, trip, source time, fare), in Kafka order: one
        // partition, so the source's order
        let mut changes: Vec<(i64, String, String, String, String)> = rows
            .iter()
            .map(|r| {
                let f: Vec<&str> = r.split('|').collect();
                let offset = f[3].parse().unwrap();
                (offset, f[0].into(), f[1].into(), f[2].into(), f[4].into())
            })
            .collect();
        changes.sort();
        let mut fares: BTreeMap<String, String> = BTreeMap::new();
        for (_, op, id, _, fare) in &changes {
            if op == "d" {
                fares.remove(id);
            } else {
                fares.insert(id.clone(), fare.clone());
            }
        }
        if fares.len() == source.len() || Instant::now() > deadline {
            break (changes, fares);
        }
        assert!(
            b.try_wait().unwrap().is_none(),
            "the changelog ingest stopped"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let mut once = BTreeSet::new();
    for (offset, op, id, ts, _) in &changes {
        assert!(
            once.insert((op, id, ts)),
            "recorded twice: {op} of trip {id} at {ts} (offset {offset})"
        );
    }
    assert_eq!(replayed.len(), source.len(), "live trips in the changelog");
    let differing: Vec<_> = source
        .iter()
        .filter(|(id, fare)| {
            replayed.get(*id).map(|f| f.parse::<f64>().ok()) != Some(fare.parse().ok())
        })
        .take(5)
        .collect();
    assert!(
        differing.is_empty(),
        "changelog replay differs: {differing:?}"
    );

    let logs = [stop(a, &upsert_log), stop(b, &changelog_log)];
    for log in &logs {
        // without what was sent again, nothing here could fail
        assert!(
            log.contains("skipped changes Debezium sent again"),
            "Debezium sent nothing again: {log}"
        );
    }
    drop(stack);
    std::fs::remove_dir_all(&dir).ok();
}

/// A TCP gate (scripts/tcp-gate.py) from `port` to `to`: what floe sees
/// of the registry. Dropping it is an outage for floe alone; Kafka Connect
/// keeps registering schemas with the registry itself.
struct Gate(std::process::Child);

impl Gate {
    fn open(port: u16, to: &str) -> Self {
        let child = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tcp-gate.py"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--to", to])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_for(port);
        Self(child)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_registry_outage_while_a_new_schema_arrives_is_waited_out() {
    let Scenario { dir, stack, config } = Scenario::new("registry-outage");
    let registry = stack.env["SCHEMA_REGISTRY_URL"].clone();
    let behind = registry.trim_start_matches("http://").to_string();
    let port = metrics_port();
    let registry_gate = Gate::open(port, &behind);
    let written = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        written.replace(
            &format!("url = \"{registry}\""),
            &format!("url = \"http://127.0.0.1:{port}\""),
        ),
    )
    .unwrap();
    let log = dir.join("floe.log");
    let mut floe = spawn_floe_env(&config, &log, &[]);
    let registered = stack.setup_connectors(&[]);
    assert!(registered.status.success(), "{}", text(&registered));
    let lake = open_lake(&config).await;
    wait_until_all_equal(&stack, &lake, &mut [&mut floe], false).await;

    // the registry goes away for floe; Postgres adds a column, so
    // Debezium's next trips changes carry a schema id floe has not seen
    drop(registry_gate);
    stack.psql(
        "ALTER TABLE trips ADD COLUMN congestion_surcharge numeric(6, 2); \
         INSERT INTO trips SELECT i, 1, timestamp '2024-03-12 00:00' + i * interval '1 second', \
           timestamp '2024-03-12 00:30', 3, 4, 1, 1.0, 8.0, 1.0, 10.0, 1, NULL, 2.50 \
           FROM generate_series(20001, 20100) AS i;",
    );
    stack.psql("UPDATE vendors SET name = 'Creative Mobile Technologies' WHERE vendor_id = 1");
    let count = "SELECT CAST(count(*) AS VARCHAR) FROM {t}";
    let deadline = Instant::now() + Duration::from_secs(90);
    let waiting = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("this message waits for it") {
            break text;
        }
        assert!(
            floe.try_wait().unwrap().is_none(),
            "floe stopped instead of waiting: {text}"
        );
        assert!(
            Instant::now() < deadline,
            "floe never said it waits: {text}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(waiting.contains("taxi.public.trips"), "{waiting}");
    // a while later: still waiting, and trips has nothing past the message
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        floe.try_wait().unwrap().is_none(),
        "floe stopped while waiting"
    );
    assert_eq!(
        lake_rows(&lake, "trips", count).await.unwrap(),
        ["2000"],
        "trips committed past the message"
    );

    // the registry is back: floe resumes at the message
    let _registry_gate = Gate::open(port, &behind);
    wait_until_all_equal(&stack, &lake, &mut [&mut floe], true).await;
    let out = stop(floe, &log);
    assert!(
        out.contains("the schema registry answers again; resuming"),
        "{out}"
    );
    drop(stack);
    std::fs::remove_dir_all(&dir).ok();
}

/// `floe ingest` aborted at each of its crash points in turn (as a kill
/// -9 there would leave it), each time started again with the next, and
/// finally without: every table equals Postgres, and the poison messages
/// sent meanwhile are each one dead letter.
#[tokio::test]
async fn floe_ingest_aborted_at_each_crash_point_resumes_exactly() {
    let Scenario { dir, stack, config } = Scenario::new("crash-points");
    let written = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        written.replace("[ingest]\n", "[ingest]\non_error = \"dead_letter\"\n"),
    )
    .unwrap();
    let lake = open_lake(&config).await;
    let registered = stack.setup_connectors(&[]);
    assert!(registered.status.success(), "{}", text(&registered));

    let mut poisons = 0;
    let mut round = 0;
    for (i, point) in [
        "ingest.committed@2",
        "commit.data-written@2",
        "commit.written@2",
        "commit.swapped@2",
        "dead-letter.written@1",
        "merge.rewritten@1",
        "merge.committed@1",
    ]
    .into_iter()
    .enumerate()
    {
        let log = dir.join(format!("floe-{i}.log"));
        let mut floe = spawn_floe_env(&config, &log, &[("FLOE_CRASH_AT", point)]);
        if point.starts_with("dead-letter") {
            crate::chaos::poison(&stack.env["KAFKA_BOOTSTRAP"]).await;
            poisons += 1;
        }
        // changes until the point is reached
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(status) = floe.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{point} never reached: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            crate::chaos::workload_round(&stack.env["PGPORT"], round);
            round += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        let name = point.split('@').next().unwrap();
        assert!(
            status.code().is_none() && out.contains(&format!("crashing at {name}")),
            "{point}: {status:?} {out}"
        );
    }
    let log = dir.join("floe-last.log");
    let mut floe = spawn_floe_env(&config, &log, &[]);
    wait_until_all_equal(&stack, &lake, &mut [&mut floe], false).await;
    let dead = lake_rows_in(
        &lake,
        "floe",
        "dead_letters",
        "SELECT CAST(count(*) AS VARCHAR) FROM {t}",
    )
    .await
    .unwrap();
    assert_eq!(dead, [poisons.to_string()], "each poison one dead letter");
    stop(floe, &log);
    drop(stack);
    std::fs::remove_dir_all(&dir).ok();
}

/// The replication slot is lost while rows are deleted and updated at the
/// source; the connector starts again with a new slot and snapshots every
/// table anew while changes go on. The deleted rows get no delete event,
/// yet the lake loses them when the snapshot ends, and the rows changed
/// during the snapshot keep their newest values.
#[tokio::test]
async fn a_lost_slot_and_a_new_snapshot_reconcile_rows_deleted_meanwhile() {
    let Scenario { dir, stack, config } = Scenario::new("resnapshot");
    let log = dir.join("floe.log");
    let mut floe = spawn_floe_env(&config, &log, &[]);
    let registered = stack.setup_connectors(&[]);
    assert!(registered.status.success(), "{}", text(&registered));
    let lake = open_lake(&config).await;
    wait_until_all_equal(&stack, &lake, &mut [&mut floe], false).await;

    // the connector goes, and its slot with it
    lose_slot(&stack, "taxi-postgres", "floe_taxi");
    // changes no one captures
    stack.psql(
        "DELETE FROM trips WHERE trip_id BETWEEN 100 AND 180; \
         UPDATE trips SET fare_amount = 77 WHERE trip_id BETWEEN 200 AND 220; \
         DELETE FROM payment_types WHERE payment_type_id = 3; \
         UPDATE vendors SET name = 'VeriFone Inc.' WHERE vendor_id = 2",
    );

    // a new connector (its own name and slot, the same topics) snapshots
    // every table again; changes go on meanwhile. It also takes signals
    // from Debezium's signal table, for the ad-hoc snapshots below.
    stack.psql(SIGNAL_TABLE);
    let again = connector_config(
        &dir,
        "taxi-postgres-again",
        &[
            ("slot.name", "floe_taxi_again"),
            ("signal.data.collection", "public.debezium_signal"),
            ("table.include.list", WITH_SIGNALS),
        ],
    );
    register(&stack, &again);
    stack.psql(
        "UPDATE trips SET tip_amount = 9 WHERE trip_id BETWEEN 300 AND 320; \
         DELETE FROM trips WHERE trip_id BETWEEN 400 AND 410; \
         INSERT INTO trips SELECT i, 1, timestamp '2024-03-13 00:00' + i * interval '1 second', \
           timestamp '2024-03-13 00:30', 3, 4, 1, 1.0, 8.0, 1.0, 10.0, 1, NULL \
           FROM generate_series(30001, 30050) AS i",
    );
    wait_until_all_equal(&stack, &lake, &mut [&mut floe], false).await;
    const ENDED: &str = "a snapshot read again has ended";
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    let ended = out.matches(ENDED).count();
    assert!(ended > 0, "no snapshot was reconciled: {out}");

    // --- ad-hoc snapshots, asked for through the signal table ---
    // The slot is lost again, and the next connector only streams
    // (`snapshot.mode` no_data): the lake keeps rows deleted meanwhile and
    // old values of rows updated meanwhile until a snapshot is asked for.
    lose_slot(&stack, "taxi-postgres-again", "floe_taxi_again");
    stack.psql(
        "DELETE FROM trips WHERE trip_id BETWEEN 500 AND 540; \
         UPDATE trips SET fare_amount = 66 WHERE trip_id BETWEEN 600 AND 610",
    );
    let deleted: BTreeSet<String> = (500..=540).map(|i: i32| i.to_string()).collect();
    let streaming = connector_config(
        &dir,
        "taxi-postgres-signals",
        &[
            ("slot.name", "floe_taxi_signals"),
            ("snapshot.mode", "no_data"),
            ("signal.data.collection", "public.debezium_signal"),
            ("table.include.list", WITH_SIGNALS),
            ("incremental.snapshot.chunk.size", "500"),
        ],
    );
    register(&stack, &streaming);

    // An incremental snapshot reads the table in chunks among streamed
    // changes. floe reads where it was asked for and where its chunk
    // windows closed from the signal table's topic: the snapshot is over
    // once the table's stream passes a window that read nothing of it,
    // and then the rows it did not read (deleted while the slot was lost)
    // go. A busy table shows that with its next change; this one gets a
    // change every two seconds until the lake equals Postgres.
    stack.psql(&format!(
        "{}; UPDATE trips SET tip_amount = 5 WHERE trip_id BETWEEN 700 AND 720",
        signal("incremental-1", "incremental")
    ));
    let trips = CHECK_TRIPS;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let source: BTreeSet<String> = stack
            .query(&trips.replace("{t}", "trips"))
            .into_iter()
            .collect();
        let in_lake = match lake_rows(&lake, "trips", trips).await {
            Ok(rows) => rows,
            Err(e) => panic!("reading the lake's trips: {e}"),
        };
        let key = |r: &String| r.split('|').next().unwrap_or_default().to_string();
        let extra: BTreeSet<String> = in_lake
            .iter()
            .map(key)
            .filter(|k| deleted.contains(k))
            .collect();
        let in_lake: BTreeSet<String> = in_lake.into_iter().collect();
        if in_lake == source {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the incremental snapshot did not reconcile the lake: {} rows in the lake, {} in Postgres, \
             {} of {} deleted rows kept; only in the lake {:?}, only in Postgres {:?}",
            in_lake.len(),
            source.len(),
            extra.len(),
            deleted.len(),
            in_lake.difference(&source).take(5).collect::<Vec<_>>(),
            source.difference(&in_lake).take(5).collect::<Vec<_>>(),
        );
        stack.psql("UPDATE trips SET tip_amount = tip_amount WHERE trip_id = 1");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    let incremental_end = out
        .lines()
        .find(|l| l.contains("an incremental snapshot has ended"))
        .unwrap_or_else(|| panic!("no incremental snapshot was reconciled: {out}"));
    assert!(
        incremental_end.contains(&format!("rows={}", deleted.len())),
        "the incremental snapshot deleted other rows than the {} deleted while the slot was lost: {incremental_end}",
        deleted.len()
    );

    // A blocking snapshot pauses streaming and reads the table as the
    // first snapshot did, marked first to last: floe reconciles it too
    // (the incremental one left nothing to delete; the model tests and
    // the first lost slot above show what a blocking one deletes).
    stack.psql(&format!(
        "{}; DELETE FROM trips WHERE trip_id BETWEEN 800 AND 805; \
         UPDATE trips SET tip_amount = 4 WHERE trip_id BETWEEN 900 AND 910",
        signal("blocking-1", "blocking")
    ));
    wait_until_all_equal(&stack, &lake, &mut [&mut floe], false).await;
    let out = stop(floe, &log);
    assert!(
        out.matches(ENDED).count() > ended,
        "the blocking snapshot was not reconciled: {out}"
    );
    drop(stack);
    std::fs::remove_dir_all(&dir).ok();
}

/// Debezium's signal table (`signal.data.collection`): a row inserted
/// asks the connector for an ad-hoc snapshot.
const SIGNAL_TABLE: &str = "CREATE TABLE debezium_signal \
     (id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))";

/// The taxi tables and the signal table, which Debezium must capture to
/// see its signals (and to mark an incremental snapshot's chunks).
const WITH_SIGNALS: &str =
    "public.vendors,public.payment_types,public.trips,public.debezium_signal";

/// The trips as [`difference`] compares them, without the column the
/// workload adds.
const CHECK_TRIPS: &str = "SELECT trip_id, vendor_id, CAST(date_part('epoch', pickup_datetime) * 1000000 AS BIGINT), \
     pickup_zone_id, CAST(fare_amount AS VARCHAR), CAST(tip_amount AS VARCHAR), md5(coalesce(notes, '')) \
     FROM {t} ORDER BY 1";

/// An `execute-snapshot` signal of `kind` (`incremental` or `blocking`)
/// for the trips table.
fn signal(id: &str, kind: &str) -> String {
    format!(
        "INSERT INTO debezium_signal VALUES ('{id}', 'execute-snapshot', \
         '{{\"data-collections\": [\"public.trips\"], \"type\": \"{kind}\"}}')"
    )
}

/// Deletes `connector`, waits until its slot is let go, and drops the
/// slot: what a lost slot leaves.
fn lose_slot(stack: &Stack, connector: &str, slot: &str) {
    let deleted = std::process::Command::new("curl")
        .args(["-sf", "-X", "DELETE"])
        .arg(format!(
            "{}/connectors/{connector}",
            stack.env["CONNECT_URL"]
        ))
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{}", text(&deleted));
    let deadline = Instant::now() + Duration::from_secs(60);
    let active = format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'");
    while stack.query(&active) != ["f"] {
        assert!(Instant::now() < deadline, "the slot {slot} stayed active");
        std::thread::sleep(Duration::from_millis(500));
    }
    stack.psql(&format!("SELECT pg_drop_replication_slot('{slot}')"));
}

/// The taxi connector's config under another `name`, with `settings`.
fn connector_config(dir: &Path, name: &str, settings: &[(&str, &str)]) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    let mut connector: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::stack::repo().join("connectors/taxi-postgres.json"))
            .unwrap(),
    )
    .unwrap();
    connector["name"] = name.into();
    for (key, value) in settings {
        connector["config"][*key] = (*value).into();
    }
    std::fs::write(&path, connector.to_string()).unwrap();
    path
}

fn register(stack: &Stack, config: &Path) {
    let registered = stack.setup_connectors(&["--config", &config.display().to_string()]);
    assert!(registered.status.success(), "{}", text(&registered));
}
