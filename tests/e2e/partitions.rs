//! Topics with several partitions, against the real stack.
//!
//! * Several `floe ingest` instances in one consumer group: the trips topic
//!   has three partitions (Debezium keys each change by primary key, so a
//!   row's changes stay in one partition and in order), three instances
//!   share them through a Postgres catalog, one is killed with kill -9
//!   mid-stream and started again, trips is truncated while all three
//!   apply changes, and every table ends equal to Postgres.
//! * Source order: Debezium's real events, truncates among them, produced
//!   again to three partitions in the worst order for each truncate (the
//!   changes made after it committed first, the changes made before it
//!   arriving after it), and the table ends equal to Postgres.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lakehouse::Lake;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

use crate::ingest::{
    difference, difference_in, spawn_floe_env, stop, wait_until_all_equal, write_config, Ingest,
    SETUP, WORKLOAD,
};
use crate::stack::{fresh_dir, text, Stack};

const TRIPS_TOPIC: &str = "taxi.public.trips";

/// Creates `topic` with `partitions` before Debezium writes to it (the
/// connector would create it with one).
async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
}

/// An instance of `floe ingest` with its own log.
fn instance(config: &Path, dir: &Path, name: &str) -> (Ingest, PathBuf) {
    let log = dir.join(format!("floe-{name}.log"));
    let floe = spawn_floe_env(config, &log, &[]);
    (floe, log)
}

/// The e2e config, without a metrics listener (several instances would
/// need a port each, and a free port picked now can be taken by then).
fn config_without_metrics(config: &Path) -> String {
    let written = std::fs::read_to_string(config).unwrap();
    let kept: Vec<&str> = written
        .lines()
        .filter(|l| !l.starts_with("metrics_listen"))
        .collect();
    assert!(kept.len() < written.lines().count(), "{written}");
    kept.join("\n")
}

/// The trips partitions of the last assignment an instance logged.
fn trips_partitions(log: &Path) -> Vec<i32> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let Some(line) = text.lines().rfind(|l| l.contains("partitions assigned")) else {
        return Vec::new();
    };
    let prefix = format!("{TRIPS_TOPIC}[");
    line.match_indices(&prefix)
        .filter_map(|(at, _)| {
            let rest = &line[at + prefix.len()..];
            rest[..rest.find(']')?].parse().ok()
        })
        .collect()
}

/// Changes to trips while an instance is killed: inserts, updates, rows
/// moved to another day partition, deletes, and primary-key changes
/// (Debezium's delete of the old key and create of the new one land on
/// different partitions, so on different instances).
fn stream_changes(stack: &Stack, round: u32) {
    let first = 7000 + round * 50;
    let low = 1 + round * 20;
    stack.psql(&format!(
        "INSERT INTO trips SELECT i, 1, timestamp '2024-03-11 00:00' + i * interval '1 second', \
         timestamp '2024-03-11 00:30', 3, 4, 1, 1.0, 8.0, 1.0, 10.0, 1, NULL \
         FROM generate_series({first}, {}) AS i; \
         UPDATE trips SET tip_amount = {round} WHERE trip_id BETWEEN {first} - 50 AND {first} - 25; \
         UPDATE trips SET trip_id = trip_id + 100000 WHERE trip_id BETWEEN {low} AND {low} + 9; \
         UPDATE trips SET pickup_datetime = pickup_datetime + interval '2 days' \
           WHERE trip_id BETWEEN {low} + 10 AND {low} + 14; \
         DELETE FROM trips WHERE trip_id BETWEEN {low} + 15 AND {low} + 17;",
        first + 49
    ));
}

#[tokio::test]
async fn three_instances_share_a_three_partition_topic() {
    let dir = fresh_dir("instances");
    let stack = Stack::up(&dir.join("stack"));
    stack.psql(SETUP);
    stack.psql("CREATE DATABASE floe_catalog");

    // several processes commit to the same tables: the catalog is the
    // Postgres one a deployment of several instances shares
    let config = dir.join("floe.toml");
    write_config(
        &config,
        &stack,
        "s3://lake/instances",
        &dir.join("unused.db"),
    );
    let written = config_without_metrics(&config);
    let sqlite = format!(
        "type = \"sqlite\"\npath = \"{}\"",
        dir.join("unused.db").display()
    );
    assert!(written.contains(&sqlite), "{written}");
    let postgres = format!(
        "type = \"sql\"\nuri = \"postgres://postgres@127.0.0.1:{}/floe_catalog?sslmode=disable\"",
        stack.env["PGPORT"]
    );
    std::fs::write(&config, written.replace(&sqlite, &postgres)).unwrap();
    let lake_config: lakehouse::LakeConfig = {
        let doc: toml::Table = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        doc["lake"].clone().try_into().unwrap()
    };
    let lake = Lake::open(&lake_config).await.unwrap();

    let (mut a, a_log) = instance(&config, &dir, "a");
    let (mut b, b_log) = instance(&config, &dir, "b");
    let (mut c, c_log) = instance(&config, &dir, "c");
    // every topic with three partitions, as a user asks for them: the
    // vendors' key change and the payment types' truncate and inserts of
    // the workload below spread over partitions too
    let registered = stack.setup_connectors(&["--set", "topic.creation.default.partitions=3"]);
    assert!(registered.status.success(), "{}", text(&registered));
    wait_until_all_equal(&stack, &lake, &mut [&mut a, &mut b, &mut c], false).await;

    // the group spread the trips partitions: one each
    let spread = |logs: [&Path; 3]| logs.map(trips_partitions);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut assigned = spread([&a_log, &b_log, &c_log]);
    while assigned.iter().any(|p| p.len() != 1) {
        assert!(
            Instant::now() < deadline,
            "trips partitions per instance: {assigned:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
        assigned = spread([&a_log, &b_log, &c_log]);
    }
    let all: BTreeSet<i32> = assigned.iter().flatten().copied().collect();
    assert_eq!(all, BTreeSet::from([0, 1, 2]), "{assigned:?}");

    // kill -9 one instance while changes stream; the group moves its
    // partitions to the others after session.timeout.ms
    std::thread::scope(|s| {
        let writes = s.spawn(|| {
            for round in 0..12 {
                stream_changes(&stack, round);
                std::thread::sleep(Duration::from_millis(400));
            }
        });
        std::thread::sleep(Duration::from_secs(2));
        b.kill().unwrap();
        b.wait().unwrap();
        writes.join().unwrap();
    });
    wait_until_all_equal(&stack, &lake, &mut [&mut a, &mut c], false).await;
    let survivors = [trips_partitions(&a_log), trips_partitions(&c_log)];
    assert_eq!(
        survivors.iter().map(Vec::len).sum::<usize>(),
        3,
        "the killed instance's partition moved: {survivors:?}"
    );

    // started again, it rejoins and takes a share back; the rest of the
    // workload (a column added, another table's key changed and truncated)
    // streams meanwhile
    let (mut b, b_log) = instance(&config, &dir, "b-restarted");
    stack.psql(WORKLOAD);
    wait_until_all_equal(&stack, &lake, &mut [&mut a, &mut b, &mut c], true).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while trips_partitions(&b_log).len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the restarted instance got no trips partition: {}",
            std::fs::read_to_string(&b_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // a truncate of trips among changes on every partition: Debezium
    // sends it without a key, to one partition, so one instance applies it
    // while the other two commit the changes made before and after it
    stream_changes(&stack, 12);
    stack.psql("TRUNCATE trips");
    stream_changes(&stack, 13);
    wait_until_all_equal(&stack, &lake, &mut [&mut a, &mut b, &mut c], true).await;

    let logs: Vec<String> = [(a, &a_log), (b, &b_log), (c, &c_log)]
        .into_iter()
        .map(|(floe, log)| stop(floe, log))
        .collect();
    assert!(
        logs[1].contains("resuming from the"),
        "the restarted instance starts where the tables are: {}",
        logs[1]
    );
    // every instance, the killed one before and after, applied trips
    let b_killed = std::fs::read_to_string(dir.join("floe-b.log")).unwrap_or_default();
    for log in logs.iter().chain([&b_killed]) {
        assert!(
            log.lines()
                .any(|l| l.contains("committed") && l.contains("table=taxi_cdc.trips")),
            "an instance never committed to trips: {log}"
        );
        // a race lost to another instance is caught up from its snapshots,
        // never by reading the whole table again
        assert!(
            !log.contains("building the key index again"),
            "an instance rescanned a table: {log}"
        );
    }
    assert!(
        logs.iter()
            .chain([&b_killed])
            .any(|l| l.contains("key index caught up with the commits it lost to")),
        "no commit race between the instances happened"
    );
    assert_eq!(difference(&stack, &lake, true).await, None);

    drop(stack);
    std::fs::remove_dir_all(&dir).ok();
}

/// Changes to trips around two truncates, each statement its own
/// transaction (so its own LSNs).
const AROUND_TRUNCATES: [&str; 9] = [
    "UPDATE trips SET fare_amount = fare_amount + 1 WHERE trip_id % 10 = 0",
    "DELETE FROM trips WHERE trip_id % 13 = 0",
    "TRUNCATE trips",
    "INSERT INTO trips SELECT i, 1, timestamp '2024-03-08 00:00' + i * interval '1 minute', \
     timestamp '2024-03-08 00:30' + i * interval '1 minute', 7, 8, 1, 1.5, 9.5, 1, 12, 2, NULL \
     FROM generate_series(3001, 3300) AS i",
    "UPDATE trips SET tip_amount = 3 WHERE trip_id % 7 = 0",
    "TRUNCATE trips",
    "INSERT INTO trips SELECT i, 2, timestamp '2024-03-09 00:00' + i * interval '1 minute', \
     timestamp '2024-03-09 00:30' + i * interval '1 minute', 9, 10, 2, 2.5, 11.0, 1.5, 14, 1, NULL \
     FROM generate_series(4001, 4200) AS i",
    "UPDATE trips SET trip_id = trip_id + 100000 WHERE trip_id % 11 = 0",
    "DELETE FROM trips WHERE trip_id % 17 = 0",
];

/// A raw Kafka message, as read from Debezium's topic.
#[derive(Clone)]
struct Raw {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// Every message of a one-partition topic, read until `done` holds and no
/// more came for 3 s.
fn read_all(bootstrap: &str, topic: &str, done: impl Fn(&[Raw]) -> bool) -> Vec<Raw> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "floe-e2e-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_since = Instant::now();
    loop {
        assert!(
            Instant::now() < deadline,
            "Debezium's {topic} never held the whole workload ({} messages)",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push(Raw {
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                });
                quiet_since = Instant::now();
            }
            Some(Err(e)) => eprintln!("reading {topic}: {e}"),
            None if done(&out) && quiet_since.elapsed() > Duration::from_secs(3) => return out,
            None => {}
        }
    }
}

/// Produces `messages` to the partitions given, in order, and waits for
/// each to be acknowledged.
async fn produce(bootstrap: &str, topic: &str, messages: &[(i32, Raw)]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    for (partition, m) in messages {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).partition(*partition);
        if let Some(k) = &m.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &m.value {
            record = record.payload(v.as_slice());
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
    }
}

/// Waits until the trips table holds each partition's offsets up to
/// `last` (what was produced so far).
async fn wait_for_offsets(lake: &Lake, last: &[(i32, i64)], floe: &mut Ingest, log: &Path) {
    let ident = iceberg::TableIdent::from_strs(["taxi_cdc", "trips"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(table) = lake.catalog().load_table(&ident).await {
            let held = lakehouse::transaction::KafkaOffsets::of(&table);
            if last
                .iter()
                .all(|(p, o)| held.get(TRIPS_TOPIC, *p).is_some_and(|h| h >= *o))
            {
                return;
            }
        }
        if let Ok(Some(status)) = floe.try_wait() {
            panic!(
                "floe ingest exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the table never held offsets {last:?}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn truncates_produced_to_other_partitions_than_the_changes_around_them() {
    let dir = fresh_dir("source-order");
    let stack = Stack::up(&dir.join("stack"));
    stack.psql(SETUP);
    let bootstrap = stack.env["KAFKA_BOOTSTRAP"].clone();
    create_topic(&bootstrap, TRIPS_TOPIC, 3).await;
    // Debezium writes its own topics (src.*), which floe does not read;
    // the test produces their messages to floe's topic, partitions chosen
    let registered = stack.setup_connectors(&["--set", "topic.prefix=src"]);
    assert!(registered.status.success(), "{}", text(&registered));
    for statement in AROUND_TRUNCATES {
        stack.psql(statement);
    }
    let truncates = |m: &[Raw]| m.iter().filter(|m| m.key.is_none()).count();
    let messages = read_all(&bootstrap, "src.public.trips", |m| truncates(m) == 2);

    // each keyed message to its key's partition (the bytes' sum stands in
    // for the producer's hash); the first truncate to partition 0, the
    // second to partition 1
    let mut seen_truncates: u8 = 0;
    let mut lanes: [Vec<(i32, Raw, u8)>; 3] = Default::default();
    for m in messages {
        let partition = match &m.key {
            Some(k) => (k.iter().map(|&b| u32::from(b)).sum::<u32>() % 3) as i32,
            None => {
                seen_truncates += 1;
                i32::from(seen_truncates - 1)
            }
        };
        // which stretch of the history: before, between or after the
        // truncates
        let stretch = seen_truncates - u8::from(m.key.is_none());
        lanes[partition as usize].push((partition, m, stretch));
    }
    assert!(
        lanes.iter().all(|l| l.iter().any(|(_, _, s)| *s == 2)),
        "every partition has changes after both truncates"
    );
    // what each round produces: per partition, the messages up to and
    // including the stretch given (the truncates themselves end theirs)
    let upto = |lane: &[(i32, Raw, u8)], from: usize, through: Option<u8>, with_truncate: bool| {
        let mut end = from;
        while end < lane.len() {
            let (_, m, s) = &lane[end];
            let fits = through.is_none_or(|t| *s <= t) && (with_truncate || m.key.is_some());
            if !fits {
                break;
            }
            end += 1;
        }
        end
    };

    let config = dir.join("floe.toml");
    write_config(&config, &stack, "s3://lake/order", &dir.join("catalog.db"));
    std::fs::write(&config, config_without_metrics(&config)).unwrap();
    let lake_config: lakehouse::LakeConfig = {
        let doc: toml::Table = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        doc["lake"].clone().try_into().unwrap()
    };
    let lake = Lake::open(&lake_config).await.unwrap();
    let (mut floe, log) = instance(&config, &dir, "order");
    let mut sent = [0usize; 3];
    // per partition: through which stretch, and whether its truncate too
    let mut round = |plan: &[(usize, Option<u8>, bool)]| {
        let mut out = Vec::new();
        for &(p, through, with_truncate) in plan {
            let end = upto(&lanes[p], sent[p], through, with_truncate);
            out.extend(
                lanes[p][sent[p]..end]
                    .iter()
                    .map(|(p, m, _)| (*p, m.clone())),
            );
            sent[p] = end;
        }
        let last: Vec<(i32, i64)> = (0..3)
            .filter(|&p| sent[p] > 0)
            .map(|p| (p as i32, sent[p] as i64 - 1))
            .collect();
        (out, last)
    };
    // 1. partition 0 through the first truncate: applied in order
    let (batch, last) = round(&[(0, Some(0), true)]);
    produce(&bootstrap, TRIPS_TOPIC, &batch).await;
    wait_for_offsets(&lake, &last, &mut floe, &log).await;
    // 2. partitions 1 and 2 from the start: their changes from before the
    // first truncate arrive after it (skipped); partition 2 runs on past
    // the second truncate, which partition 1 has not delivered yet
    let (batch, last) = round(&[(1, Some(1), false), (2, None, false)]);
    produce(&bootstrap, TRIPS_TOPIC, &batch).await;
    wait_for_offsets(&lake, &last, &mut floe, &log).await;
    // 3. the second truncate, after partition 2's changes made after it
    // (read again and applied after it), then the rest of partition 0
    // (its changes between the truncates skipped)
    let (batch, last) = round(&[(1, None, true), (0, None, true)]);
    produce(&bootstrap, TRIPS_TOPIC, &batch).await;
    wait_for_offsets(&lake, &last, &mut floe, &log).await;

    assert_eq!(difference_in(&stack, &lake, false, &["trips"]).await, None);
    let out = stop(floe, &log);
    assert!(
        out.contains("reading them again to apply after it"),
        "the second truncate arrived late: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("committed") && !l.contains("before_truncate=0")),
        "changes older than a truncate were skipped: {out}"
    );

    drop(stack);
    std::fs::remove_dir_all(&dir).ok();
}
