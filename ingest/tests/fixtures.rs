//! Decodes the recording of real Debezium 3.6.3 output
//! (`tests/fixtures/debezium`, made by `scripts/record-fixtures.sh`) and
//! checks every value against what the workload SQL wrote. The expected
//! values are restated here by hand from `setup.sql` and `stream.sql`.

use std::path::PathBuf;

use arrow::array::{Array, AsArray, ListArray, MapArray, StructArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use chrono::NaiveDateTime;
use ingest::{ChangeBatch, ChangeDecoder, Op, Recording};

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium")
}

pub fn decode_recording() -> Vec<ChangeBatch> {
    let recording = Recording::load(&fixture_dir()).expect("fixture recording loads");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut decoder = ChangeDecoder::new(recording.schemas.clone());
        for m in &recording.messages {
            decoder
                .push(&m.as_raw())
                .await
                .unwrap_or_else(|e| panic!("recorded message failed: {e}"));
        }
        decoder.flush()
    })
}

fn batches_of<'a>(all: &'a [ChangeBatch], topic: &str) -> Vec<&'a ChangeBatch> {
    all.iter().filter(|b| b.topic == topic).collect()
}

fn micros(ts: &str) -> i64 {
    NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

fn time_micros(h: i64, m: i64, s: i64, us: i64) -> i64 {
    ((h * 60 + m) * 60 + s) * 1_000_000 + us
}

fn days(date: &str) -> i32 {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// One row of a struct column, looked up by field name.
struct Row<'a> {
    s: &'a StructArray,
    i: usize,
}

impl<'a> Row<'a> {
    fn col(&self, name: &str) -> &'a dyn Array {
        self.s
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .as_ref()
    }
    fn is_null(&self, name: &str) -> bool {
        self.col(name).is_null(self.i)
    }
    fn i32(&self, name: &str) -> i32 {
        assert!(!self.is_null(name), "{name} is null");
        self.col(name).as_primitive::<Int32Type>().value(self.i)
    }
    fn i64(&self, name: &str) -> i64 {
        assert!(!self.is_null(name), "{name} is null");
        self.col(name).as_primitive::<Int64Type>().value(self.i)
    }
    fn f32(&self, name: &str) -> f32 {
        self.col(name).as_primitive::<Float32Type>().value(self.i)
    }
    fn f64(&self, name: &str) -> f64 {
        self.col(name).as_primitive::<Float64Type>().value(self.i)
    }
    fn bool(&self, name: &str) -> bool {
        self.col(name).as_boolean().value(self.i)
    }
    fn str(&self, name: &str) -> &'a str {
        assert!(!self.is_null(name), "{name} is null");
        self.col(name).as_string::<i32>().value(self.i)
    }
    fn bytes(&self, name: &str) -> &'a [u8] {
        self.col(name).as_binary::<i32>().value(self.i)
    }
    fn decimal(&self, name: &str) -> (i128, u8, i8) {
        let a = self.col(name).as_primitive::<Decimal128Type>();
        let DataType::Decimal128(p, s) = a.data_type() else {
            panic!("{name} is not decimal")
        };
        (a.value(self.i), *p, *s)
    }
    fn date(&self, name: &str) -> i32 {
        self.col(name).as_primitive::<Date32Type>().value(self.i)
    }
    fn time(&self, name: &str) -> i64 {
        assert_eq!(
            self.col(name).data_type(),
            &DataType::Time64(TimeUnit::Microsecond)
        );
        self.col(name)
            .as_primitive::<Time64MicrosecondType>()
            .value(self.i)
    }
    fn ts(&self, name: &str) -> (i64, Option<String>) {
        let a = self.col(name).as_primitive::<TimestampMicrosecondType>();
        let DataType::Timestamp(TimeUnit::Microsecond, tz) = a.data_type() else {
            panic!("{name} not ts(us)")
        };
        (a.value(self.i), tz.as_ref().map(|t| t.to_string()))
    }
    fn int_list(&self, name: &str) -> Vec<Option<i32>> {
        let l: &ListArray = self.col(name).as_list::<i32>();
        l.value(self.i).as_primitive::<Int32Type>().iter().collect()
    }
    fn str_list(&self, name: &str) -> Vec<Option<String>> {
        let l: &ListArray = self.col(name).as_list::<i32>();
        l.value(self.i)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }
}

fn after(b: &ChangeBatch, i: usize) -> Row<'_> {
    Row {
        s: b.after().expect("after column"),
        i,
    }
}

/// The batch's top-level columns as one struct, for the same accessors.
fn meta(b: &ChangeBatch) -> StructArray {
    StructArray::from(b.records.clone())
}

fn ops(b: &ChangeBatch) -> Vec<Op> {
    (0..b.num_rows()).map(|i| b.op(i).unwrap()).collect()
}

fn keys_i64(b: &ChangeBatch, field: &str) -> Vec<Option<i64>> {
    let k = b.key().expect("key column");
    let col = k.column_by_name(field).unwrap();
    (0..b.num_rows())
        .map(|i| {
            if k.is_null(i) {
                None
            } else {
                Some(col.as_primitive::<Int64Type>().value(i))
            }
        })
        .collect()
}

#[test]
fn every_recorded_message_decodes_and_every_topic_is_covered() {
    let batches = decode_recording();
    let recording = Recording::load(&fixture_dir()).unwrap();
    let rows: usize = batches.iter().map(ChangeBatch::num_rows).sum();
    let tombstones: usize = batches.iter().map(|b| b.tombstones).sum();
    assert_eq!(
        rows + tombstones,
        recording.messages.len(),
        "every message is a row or a counted tombstone"
    );
    assert_eq!(tombstones, 2, "trip 1 delete and vendor 2 key change");
    let mut topics: Vec<&str> = batches.iter().map(|b| b.topic.as_str()).collect();
    topics.dedup();
    assert_eq!(
        topics,
        [
            "alt1.public.all_types",
            "alt2.public.all_types",
            "taxi.public.all_types",
            "taxi.public.event_log",
            "taxi.public.payment_types",
            "taxi.public.trips",
            "taxi.public.vendors"
        ]
    );
    for b in &batches {
        let src = b.source.as_ref().expect("source table");
        assert_eq!(src.database, "taxi");
        assert_eq!(src.schema, "public");
        assert_eq!(b.topic.rsplit('.').next(), Some(src.table.as_str()));
    }
}

/// Flushing one topic leaves the others buffered, counted, and unchanged:
/// the two flushes together give exactly the batches of one whole flush.
#[test]
fn flushing_one_topic_keeps_the_others_buffered() {
    let recording = Recording::load(&fixture_dir()).unwrap();
    let whole = decode_recording();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (trips, rest, left) = rt.block_on(async {
        let mut decoder = ChangeDecoder::new(recording.schemas.clone());
        for m in &recording.messages {
            decoder.push(&m.as_raw()).await.unwrap();
        }
        let trips_bytes: usize = recording
            .messages
            .iter()
            .filter(|m| m.topic == "taxi.public.trips")
            .map(|m| m.key.as_ref().map_or(0, Vec::len) + m.value.as_ref().map_or(0, Vec::len))
            .sum();
        let buffered: Vec<(String, ingest::Buffered)> = decoder
            .buffered()
            .map(|(t, b)| (t.to_string(), b))
            .collect();
        let (_, of_trips) = buffered
            .iter()
            .find(|(t, _)| t == "taxi.public.trips")
            .expect("trips buffered");
        assert_eq!(of_trips.bytes, trips_bytes);
        assert_eq!(
            decoder.buffered_messages(),
            recording.messages.len(),
            "every recorded message is attached to a batch"
        );
        let trips = decoder.flush_where(|topic, _| topic == "taxi.public.trips");
        let left = decoder.buffered_messages();
        (trips, decoder.flush(), left)
    });
    assert!(trips.len() > 1, "trips changes schema mid-recording");
    assert!(trips.iter().all(|b| b.topic == "taxi.public.trips"));
    assert!(rest.iter().all(|b| b.topic != "taxi.public.trips"));
    let trips_messages: usize = trips.iter().map(|b| b.num_rows() + b.tombstones).sum();
    assert_eq!(left, recording.messages.len() - trips_messages);
    let summary = |batches: &[&ChangeBatch]| -> Vec<(String, usize, Vec<ingest::OffsetRange>)> {
        batches
            .iter()
            .map(|b| (b.topic.clone(), b.num_rows(), b.offsets.clone()))
            .collect()
    };
    let mut split: Vec<&ChangeBatch> = rest.iter().chain(&trips).collect();
    split.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(summary(&split), summary(&whole.iter().collect::<Vec<_>>()));
}

#[test]
fn trips_ops_keys_images_and_schema_change() {
    let batches = decode_recording();
    let trips = batches_of(&batches, "taxi.public.trips");
    assert_eq!(trips.len(), 2, "ADD COLUMN starts a second batch");
    let (b1, b2) = (trips[0], trips[1]);
    assert_eq!(b1.key_fields, ["trip_id"]);
    assert!(!b1.schema_changed());
    assert!(b2.schema_changed(), "the batch after ADD COLUMN says so");
    assert_eq!(b2.previous_version, Some(b1.version));
    assert_ne!(b1.version.value_schema_id, b2.version.value_schema_id);
    assert_eq!(b1.version.key_schema_id, b2.version.key_schema_id);

    use Op::*;
    assert_eq!(
        ops(b1),
        [Read, Read, Create, Update, Update, Update, Delete]
    );
    assert_eq!(
        keys_i64(b1, "trip_id"),
        [
            Some(1),
            Some(2),
            Some(3),
            Some(1),
            Some(2),
            Some(3),
            Some(1)
        ]
    );
    assert_eq!(
        b1.offsets,
        [ingest::OffsetRange {
            partition: 0,
            first: 0,
            last: 7
        }],
        "tombstone at 7 is covered"
    );
    assert_eq!(b1.tombstones, 1);
    assert_eq!(ops(b2), [Create, Update]);
    assert_eq!(keys_i64(b2, "trip_id"), [Some(4), Some(3)]);
    assert_eq!(
        b2.offsets,
        [ingest::OffsetRange {
            partition: 0,
            first: 8,
            last: 9
        }]
    );
    assert!(b1.row_fields().find("congestion_surcharge").is_none());
    assert!(b2.row_fields().find("congestion_surcharge").is_some());

    // snapshot row 1 exactly as inserted
    let r = after(b1, 0);
    assert_eq!(r.i64("trip_id"), 1);
    assert_eq!(r.i32("vendor_id"), 1);
    assert_eq!(
        r.ts("pickup_datetime"),
        (micros("2024-03-01 08:15:00"), None)
    );
    assert_eq!(
        r.ts("dropoff_datetime"),
        (micros("2024-03-01 08:35:30"), None)
    );
    assert_eq!(
        (r.i32("pickup_zone_id"), r.i32("dropoff_zone_id")),
        (161, 237)
    );
    assert_eq!(r.i32("passenger_count"), 1, "smallint arrives as Int32");
    assert_eq!(r.decimal("trip_distance"), (250, 8, 2));
    assert_eq!(r.decimal("fare_amount"), (1420, 10, 2));
    assert_eq!(r.decimal("tip_amount"), (300, 10, 2));
    assert_eq!(r.decimal("total_amount"), (1970, 10, 2));
    assert_eq!(r.i32("payment_type"), 1);
    assert!(r.is_null("notes"));

    // insert of trip 3 carries the large note in full
    let r = after(b1, 2);
    assert_eq!(r.str("notes"), "note-".repeat(1000));
    assert_eq!(r.ts("pickup_datetime").0, micros("2024-03-02 23:50:00"));

    // update of trip 1: fare and total changed; no before-image (REPLICA IDENTITY DEFAULT)
    let r = after(b1, 3);
    assert_eq!(r.decimal("fare_amount").0, 1500);
    assert_eq!(r.decimal("total_amount").0, 2050);
    assert!(
        b1.before().unwrap().is_null(3),
        "no before-image on update with default identity"
    );

    // trip 2 moved to 2024-03-05
    let r = after(b1, 4);
    assert_eq!(r.ts("pickup_datetime").0, micros("2024-03-05 09:00:00"));
    assert_eq!(r.ts("dropoff_datetime").0, micros("2024-03-05 09:20:00"));

    // tip update on trip 3 leaves the TOASTed note unchanged: null plus a mark
    let r = after(b1, 5);
    assert_eq!(r.decimal("tip_amount").0, 1200);
    assert!(
        r.is_null("notes"),
        "the placeholder is never stored as data"
    );
    assert_eq!(b1.unchanged(5), ["notes"]);
    for i in [0, 1, 2, 3, 4, 6] {
        assert!(
            b1.unchanged(i).is_empty(),
            "row {i} has no unchanged columns"
        );
    }

    // delete of trip 1: no after, key in before and in the Kafka key
    assert!(b1.after().unwrap().is_null(6));
    let before = Row {
        s: b1.before().unwrap(),
        i: 6,
    };
    assert_eq!(before.i64("trip_id"), 1);

    // after ADD COLUMN
    let r = after(b2, 0);
    assert_eq!(r.i64("trip_id"), 4);
    assert_eq!(r.decimal("congestion_surcharge"), (250, 6, 2));
    assert_eq!(r.i32("payment_type"), 2);
    assert!(r.is_null("notes"));
    assert!(
        b2.unchanged(0).is_empty(),
        "a real null is not an unchanged mark"
    );
    let r = after(b2, 1);
    assert_eq!(r.decimal("congestion_surcharge").0, 275);
    assert!(r.is_null("notes"));
    assert_eq!(b2.unchanged(1), ["notes"]);
}

#[test]
fn key_change_truncate_and_keyless_tables() {
    let batches = decode_recording();
    use Op::*;

    let vendors = batches_of(&batches, "taxi.public.vendors");
    assert_eq!(vendors.len(), 1);
    let v = vendors[0];
    // UPDATE vendors SET vendor_id = 3 WHERE vendor_id = 2: delete, tombstone, create
    assert_eq!(ops(v), [Read, Read, Delete, Create]);
    let k = v
        .key()
        .unwrap()
        .column_by_name("vendor_id")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!(k.values().as_ref(), &[1, 2, 2, 3]);
    assert_eq!(after(v, 0).str("name"), "Creative Mobile Technologies");
    assert_eq!(after(v, 3).i32("vendor_id"), 3);
    assert_eq!(after(v, 3).str("name"), "VeriFone Inc.");
    assert_eq!(v.tombstones, 1);

    let pt = batches_of(&batches, "taxi.public.payment_types");
    assert_eq!(
        pt.len(),
        1,
        "a truncate's null key does not split the batch"
    );
    let p = pt[0];
    assert_eq!(ops(p), [Read, Read, Read, Read, Truncate, Create, Create]);
    assert_eq!(p.key_fields, ["payment_type_id"]);
    let key = p.key().unwrap();
    assert!(key.is_null(4), "truncate has a null key");
    assert!(p.after().unwrap().is_null(4) && p.before().unwrap().is_null(4));
    let descriptions: Vec<&str> = [0, 1, 2, 3, 5, 6]
        .iter()
        .map(|&i| after(p, i).str("description"))
        .collect();
    assert_eq!(
        descriptions,
        [
            "Credit card",
            "Cash",
            "No charge",
            "Dispute",
            "Credit card",
            "Cash"
        ]
    );
    assert_eq!(after(p, 3).i32("payment_type_id"), 4);

    let log = batches_of(&batches, "taxi.public.event_log");
    assert_eq!(log.len(), 1);
    let l = log[0];
    assert!(
        l.key().is_none() && l.key_fields.is_empty(),
        "no primary key, no key column"
    );
    assert_eq!(ops(l), [Create]);
    assert_eq!(after(l, 0).str("message"), "fare table reloaded");
    assert_eq!(after(l, 0).ts("logged_at").0, micros("2024-03-06 08:00:00"));
}

#[test]
fn position_metadata() {
    let batches = decode_recording();
    let recording = Recording::load(&fixture_dir()).unwrap();
    let floor = micros("2025-01-01 00:00:00");
    for b in &batches {
        let m = meta(b);
        let m = Row { s: &m, i: 0 };
        let offsets = m.col("_offset").as_primitive::<Int64Type>();
        let parts = m.col("_partition").as_primitive::<Int32Type>();
        let snapshot = m.col("_snapshot").as_string::<i32>();
        let lsn = m.col("_source_lsn");
        let tx = m.col("_source_tx_id");
        let ts = m
            .col("_source_ts")
            .as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let msg = recording
                .messages
                .iter()
                .find(|r| r.topic == b.topic && r.offset == offsets.value(i))
                .expect("row offset is a recorded offset");
            assert!(msg.value.is_some());
            assert_eq!(parts.value(i), 0);
            assert!(
                ts.value(i) > floor,
                "source commit time is the recording's wall clock"
            );
            assert!(!lsn.is_null(i), "every Postgres event has an LSN");
            let op = b.op(i).unwrap();
            if op == Op::Read {
                assert_ne!(
                    snapshot.value(i),
                    "false",
                    "snapshot reads carry a snapshot marker"
                );
            } else {
                assert_eq!(snapshot.value(i), "false");
                assert!(!tx.is_null(i), "streamed events carry a transaction id");
            }
        }
    }
}

/// Debezium's `sequence` (the LSN of the commit before the change, then
/// the change's LSN) orders each topic's streamed changes, where the LSN
/// alone need not; a key change's delete and create share one position.
#[test]
fn the_commit_lsn_from_sequence_orders_each_stream() {
    let batches = decode_recording();
    let mut positions: std::collections::BTreeMap<(String, i64), (Op, (i64, i64))> =
        Default::default();
    for b in &batches {
        let m = meta(b);
        let m = Row { s: &m, i: 0 };
        let offsets = m.col("_offset").as_primitive::<Int64Type>();
        let lsn = m.col("_source_lsn").as_primitive::<Int64Type>();
        let commit = m.col("_source_commit_lsn").as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            assert!(!commit.is_null(i), "Debezium 3.6 sends sequence");
            positions.insert(
                (b.topic.clone(), offsets.value(i)),
                (b.op(i).unwrap(), (commit.value(i), lsn.value(i))),
            );
        }
    }
    // streamed changes: never back, per topic, in offset order
    let mut last: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
    for ((topic, offset), (op, at)) in &positions {
        if *op == Op::Read {
            continue;
        }
        if let Some(before) = last.insert(topic.as_str(), *at) {
            assert!(
                before <= *at,
                "{topic} offset {offset}: {before:?} then {at:?}"
            );
        }
    }
    let at = |topic: &str, offset: i64| positions[&(topic.to_string(), offset)];
    // the first streamed change: no commit seen yet (null, read as 0)
    assert_eq!(at("taxi.public.trips", 2), (Op::Create, (0, 26709304)));
    assert_eq!(at("taxi.public.trips", 3).1, (26710024, 26710024));
    // the vendor's key change: its delete and create share a position
    assert_eq!(at("taxi.public.vendors", 2).0, Op::Delete);
    assert_eq!(at("taxi.public.vendors", 4).0, Op::Create);
    assert_eq!(
        at("taxi.public.vendors", 2).1,
        at("taxi.public.vendors", 4).1
    );
    // one transaction's changes: one commit before them, rising LSNs
    let (a, b) = (
        at("taxi.public.payment_types", 5).1,
        at("taxi.public.payment_types", 6).1,
    );
    assert_eq!(a.0, b.0);
    assert!(a.1 < b.1);
}

#[test]
fn all_types_with_default_connector_settings() {
    let batches = decode_recording();
    let at = batches_of(&batches, "taxi.public.all_types");
    assert_eq!(at.len(), 1);
    let b = at[0];
    use Op::*;
    assert_eq!(ops(b), [Read, Read, Create, Update]);

    // row id 1: every column null
    let r = after(b, 0);
    assert_eq!(r.i64("id"), 1);
    for f in b.row_fields().iter().filter(|f| f.name() != "id") {
        assert!(r.is_null(f.name()), "{} should be null", f.name());
    }

    let r = after(b, 1);
    assert_eq!(r.i64("id"), 2);
    assert_eq!(r.i32("c_smallint"), -12345);
    assert_eq!(r.i32("c_int"), 42);
    assert_eq!(r.i64("c_bigint"), 9_007_199_254_740_993);
    assert_eq!(r.f32("c_real"), 1.5);
    assert_eq!(r.f64("c_double"), std::f64::consts::PI);
    assert!(r.bool("c_bool"));
    assert_eq!(r.decimal("c_numeric"), (123_456_789_012, 12, 4));
    assert_eq!(
        r.str("c_numeric_unc"),
        "3.14159265358979323846264338327950288"
    );
    assert_eq!(
        r.decimal("c_money"),
        (123_456, 38, 2),
        "money: precision unknown, widest decimal, scale 2"
    );
    assert_eq!(r.str("c_text"), "hello, wörld ✓");
    assert_eq!(r.str("c_varchar"), "varchar value");
    assert_eq!(r.str("c_char"), "ab   ", "char(5) is blank-padded");
    assert_eq!(r.date("c_date"), days("2024-02-29"));
    assert_eq!(r.time("c_time"), time_micros(13, 45, 10, 123_456));
    assert_eq!(r.time("c_time3"), time_micros(13, 45, 10, 123_000));
    assert_eq!(
        r.time("c_timetz"),
        time_micros(11, 45, 10, 500_000),
        "timetz normalised to UTC"
    );
    assert_eq!(
        r.ts("c_timestamp"),
        (micros("2024-02-29 13:45:10.123456"), None)
    );
    assert_eq!(
        r.ts("c_timestamp3"),
        (micros("2024-02-29 13:45:10.123"), None)
    );
    assert_eq!(
        r.ts("c_timestamptz"),
        (micros("2024-02-29 08:15:10.654321"), Some("UTC".into()))
    );
    // Debezium's MicroDuration counts a month as 365.25 / 12 days
    let month_us = 365.25 / 12.0 * 86_400e6;
    let expected = (14.0 * month_us) as i64 + 3 * 86_400_000_000 + time_micros(4, 5, 6, 789_000);
    assert_eq!(r.i64("c_interval"), expected);
    assert_eq!(r.str("c_uuid"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(
        r.str("c_json"),
        r#"{"b": 1, "a": [1, 2]}"#,
        "json keeps its text"
    );
    assert_eq!(
        r.str("c_jsonb"),
        r#"{"a": [1, 2], "b": 1}"#,
        "jsonb is normalised by Postgres"
    );
    assert_eq!(r.str("c_xml"), r#"<trip id="2"><fare>14.2</fare></trip>"#);
    assert_eq!(r.bytes("c_bytea"), [0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]);
    assert_eq!(r.str("c_enum"), "happy");
    assert_eq!(r.str("c_inet"), "10.1.2.3");
    assert_eq!(r.str("c_cidr"), "10.1.0.0/16");
    assert_eq!(r.str("c_macaddr"), "08:00:2b:01:02:03");
    assert_eq!(r.int_list("c_int_array"), [Some(1), Some(2), None, Some(4)]);
    assert_eq!(
        r.str_list("c_text_array"),
        [Some("a".into()), Some("b c".into()), None]
    );
    let hstore: serde_json::Value = serde_json::from_str(r.str("c_hstore")).unwrap();
    assert_eq!(hstore, serde_json::json!({"a": "1", "b": null}));
    assert_eq!(r.str("c_big_text"), "toast-".repeat(2000));

    let r = after(b, 2);
    assert_eq!(r.i64("id"), 3);
    assert_eq!(r.i32("c_smallint"), 32767);
    assert_eq!(r.i32("c_int"), i32::MIN);
    assert_eq!(r.i64("c_bigint"), i64::MIN);
    assert!(r.f32("c_real").is_nan());
    assert_eq!(r.f64("c_double"), f64::INFINITY);
    assert!(!r.bool("c_bool"));
    assert_eq!(r.decimal("c_numeric").0, -999_999_999_999);
    assert_eq!(
        r.str("c_numeric_unc"),
        "-1000000000000000000000000000000.000001"
    );
    assert_eq!(r.decimal("c_money").0, -1);
    assert_eq!(r.str("c_text"), "", "empty string is not null");
    assert_eq!(r.str("c_char"), "abcde");
    assert_eq!(r.date("c_date"), days("1960-01-01"));
    assert_eq!(r.time("c_time"), 0);
    assert_eq!(r.time("c_time3"), time_micros(23, 59, 59, 999_000));
    assert_eq!(r.time("c_timetz"), 0);
    assert_eq!(r.ts("c_timestamp").0, -1);
    assert_eq!(r.ts("c_timestamp3").0, 0);
    assert_eq!(r.ts("c_timestamptz").0, -1);
    assert_eq!(r.i64("c_interval"), -86_400_000_000);
    assert_eq!(r.str("c_uuid"), "00000000-0000-0000-0000-000000000000");
    assert_eq!(
        (r.str("c_json"), r.str("c_jsonb"), r.str("c_xml")),
        ("[]", "{}", "<a/>")
    );
    assert!(r.bytes("c_bytea").is_empty() && !r.is_null("c_bytea"));
    assert_eq!(r.str("c_enum"), "sad");
    assert_eq!(
        (r.str("c_inet"), r.str("c_cidr"), r.str("c_macaddr")),
        ("::1", "::/0", "00:00:00:00:00:00")
    );
    assert!(r.int_list("c_int_array").is_empty() && !r.is_null("c_int_array"));
    assert!(r.str_list("c_text_array").is_empty());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(r.str("c_hstore")).unwrap(),
        serde_json::json!({})
    );
    assert_eq!(r.str("c_big_text"), "short");

    // UPDATE all_types SET c_int = 43 WHERE id = 2: c_big_text unchanged
    let r = after(b, 3);
    assert_eq!(r.i64("id"), 2);
    assert_eq!(r.i32("c_int"), 43);
    assert_eq!(r.str("c_text"), "hello, wörld ✓");
    assert!(r.is_null("c_big_text"));
    assert_eq!(b.unchanged(3), ["c_big_text"]);
}

#[test]
fn all_types_with_alternative_connector_settings() {
    let batches = decode_recording();
    use Op::*;

    // decimal.handling.mode=double, time.precision.mode=connect,
    // hstore.handling.mode=map, interval.handling.mode=string, binary.handling.mode=hex
    let alt1 = batches_of(&batches, "alt1.public.all_types");
    assert_eq!(alt1.len(), 1);
    let b = alt1[0];
    assert_eq!(ops(b), [Read, Read, Create, Update]);
    let r = after(b, 1);
    assert_eq!(r.f64("c_numeric"), 12345678.9012);
    assert_eq!(r.f64("c_numeric_unc"), std::f64::consts::PI);
    assert_eq!(r.f64("c_money"), 1234.56);
    assert_eq!(r.date("c_date"), days("2024-02-29"));
    assert_eq!(
        r.time("c_time"),
        time_micros(13, 45, 10, 123_000),
        "connect mode keeps milliseconds"
    );
    assert_eq!(r.time("c_time3"), time_micros(13, 45, 10, 123_000));
    assert_eq!(
        r.ts("c_timestamp"),
        (micros("2024-02-29 13:45:10.123"), None)
    );
    assert_eq!(r.str("c_interval"), "P1Y2M3DT4H5M6.789S");
    assert_eq!(r.str("c_bytea"), "deadbeef00ff");
    let map: &MapArray = r.col("c_hstore").as_map();
    let entries = map.value(1);
    let keys: Vec<&str> = entries
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    let values: Vec<Option<&str>> = entries.column(1).as_string::<i32>().iter().collect();
    let mut pairs: Vec<(&str, Option<&str>)> = keys.into_iter().zip(values).collect();
    pairs.sort();
    assert_eq!(pairs, [("a", Some("1")), ("b", None)]);
    assert_eq!(after(b, 2).f64("c_money"), -0.01);
    assert_eq!(after(b, 2).f64("c_numeric"), -99999999.9999);
    assert_eq!(b.unchanged(3), ["c_big_text"]);

    // provide.transaction.metadata=true: the block is there and names the
    // same transaction as source.txId
    let m = meta(b);
    let m = Row { s: &m, i: 0 };
    let txn: &StructArray = m.col("_transaction").as_struct();
    let tx_ids = m.col("_source_tx_id").as_primitive::<Int64Type>();
    for i in 2..4 {
        assert!(
            !txn.is_null(i),
            "streamed event {i} has a transaction block"
        );
        let id = txn
            .column_by_name("id")
            .unwrap()
            .as_string::<i32>()
            .value(i);
        assert!(
            id.starts_with(&format!("{}:", tx_ids.value(i))),
            "transaction id {id} starts with txId"
        );
        assert_eq!(
            txn.column_by_name("data_collection_order")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(i),
            1
        );
    }

    // decimal.handling.mode=string, time.precision.mode=adaptive_time_microseconds,
    // binary.handling.mode=base64
    let alt2 = batches_of(&batches, "alt2.public.all_types");
    let b = alt2[0];
    let r = after(b, 1);
    assert_eq!(r.str("c_numeric"), "12345678.9012");
    assert_eq!(
        r.str("c_numeric_unc"),
        "3.14159265358979323846264338327950288"
    );
    assert_eq!(r.str("c_money"), "1234.56");
    assert_eq!(r.time("c_time3"), time_micros(13, 45, 10, 123_000));
    assert_eq!(
        r.ts("c_timestamp3"),
        (micros("2024-02-29 13:45:10.123"), None)
    );
    assert_eq!(r.str("c_bytea"), "3q2+7wD/");
    assert_eq!(after(b, 2).str("c_money"), "-0.01");
    let m = meta(b);
    let m = Row { s: &m, i: 0 };
    assert!(
        m.col("_transaction").is_null(2),
        "no transaction block without the setting"
    );
}

/// A decoder that starts at a truncate (a restart after the snapshot) must
/// not lose the keys of the events after it: the keyless truncate gets its
/// own batch and the keyed inserts the next.
#[test]
fn a_fresh_decoder_starting_at_a_truncate_keeps_the_later_keys() {
    let recording = Recording::load(&fixture_dir()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let batches = rt.block_on(async {
        let mut decoder = ChangeDecoder::new(recording.schemas.clone());
        for m in recording
            .messages
            .iter()
            .filter(|m| m.topic == "taxi.public.payment_types")
            .skip(4)
        {
            decoder.push(&m.as_raw()).await.unwrap();
        }
        decoder.flush()
    });
    assert_eq!(batches.len(), 2);
    assert_eq!(ops(&batches[0]), [Op::Truncate]);
    assert_eq!(ops(&batches[1]), [Op::Create, Op::Create]);
    let key = batches[1]
        .key()
        .expect("the inserts carry their keys")
        .column_by_name("payment_type_id")
        .unwrap()
        .clone();
    let key = arrow::compute::cast(&key, &DataType::Int64).unwrap();
    assert_eq!(key.as_primitive::<Int64Type>().values().as_ref(), &[1, 2]);
}
