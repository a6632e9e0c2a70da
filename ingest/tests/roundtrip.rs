//! Differential tests against an independent Avro implementation: events
//! encoded by apache-avro (with the trips schema Debezium registered, and
//! with hand-written Debezium 1.x and 2.x envelope shapes) must decode to
//! exactly the values that were encoded.

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::Schema;
use arrow::array::{Array, AsArray, StructArray};
use arrow::datatypes::{Decimal128Type, Int32Type, Int64Type, TimestampMicrosecondType};
use ingest::testing::decimal;
use ingest::wire::frame;
use ingest::{ChangeDecoder, Op, RecordedMessage, RecordedSchemas, Recording};
use proptest::prelude::*;

use crate::fixtures::fixture_dir;
use crate::ready;

/// The value for a field of `schema`'s record type, by name; fields not
/// given are null (their union's null branch).
fn record(schema: &Schema, values: HashMap<&str, Option<Value>>) -> Value {
    let Schema::Record(r) = schema else {
        panic!("not a record: {schema:?}")
    };
    let fields = r
        .fields
        .iter()
        .map(|f| {
            let v = values.get(f.name.as_str()).cloned().flatten();
            (f.name.clone(), wrap(&f.schema, v))
        })
        .collect();
    Value::Record(fields)
}

/// Wraps a value in the right union branch when the field is a union.
fn wrap(schema: &Schema, v: Option<Value>) -> Value {
    match schema {
        Schema::Union(u) => {
            let null_at = u
                .variants()
                .iter()
                .position(|s| *s == Schema::Null)
                .expect("nullable union") as u32;
            match v {
                None => Value::Union(null_at, Box::new(Value::Null)),
                Some(v) => Value::Union(1 - null_at, Box::new(v)),
            }
        }
        _ => v.unwrap_or_else(|| panic!("required field without a value: {schema:?}")),
    }
}

fn field_schema<'a>(schema: &'a Schema, name: &str) -> &'a Schema {
    let Schema::Record(r) = schema else {
        panic!("not a record")
    };
    &r.fields[r.lookup[name]].schema
}

/// The row record, from `before` where it is defined (`after` refers to it by name).
fn row_schema(envelope: &Schema) -> &Schema {
    match field_schema(envelope, "before") {
        Schema::Union(u) => u.variants().iter().find(|s| **s != Schema::Null).unwrap(),
        s => s,
    }
}

fn source_value(envelope: &Schema, lsn: i64, tx: i64, ts_ms: i64) -> Value {
    let source = field_schema(envelope, "source");
    let s = |v: &str| Some(Value::String(v.to_string()));
    record(
        source,
        HashMap::from([
            ("version", s("3.6.3.Final")),
            ("connector", s("postgresql")),
            ("name", s("taxi")),
            ("ts_ms", Some(Value::Long(ts_ms))),
            ("ts_us", Some(Value::Long(ts_ms * 1000 + 7))),
            ("snapshot", s("false")),
            ("db", s("taxi")),
            ("schema", s("public")),
            ("table", s("trips")),
            ("txId", Some(Value::Long(tx))),
            ("lsn", Some(Value::Long(lsn))),
        ]),
    )
}

#[derive(Debug, Clone)]
struct Trip {
    trip_id: i64,
    vendor_id: i32,
    pickup: i64,
    dropoff: i64,
    zones: (i32, i32),
    passengers: Option<i32>,
    distance: Option<i64>,
    fare: Option<i64>,
    tip: Option<i64>,
    total: Option<i64>,
    payment: Option<i32>,
    notes: Option<String>,
    surcharge: Option<i64>,
}

fn trip_value(row: &Schema, t: &Trip) -> Value {
    let long = |v: i64| Some(Value::Long(v));
    let int = |v: i32| Some(Value::Int(v));
    record(
        row,
        HashMap::from([
            ("trip_id", long(t.trip_id)),
            ("vendor_id", int(t.vendor_id)),
            ("pickup_datetime", long(t.pickup)),
            ("dropoff_datetime", long(t.dropoff)),
            ("pickup_zone_id", int(t.zones.0)),
            ("dropoff_zone_id", int(t.zones.1)),
            ("passenger_count", t.passengers.map(Value::Int)),
            ("trip_distance", t.distance.map(decimal)),
            ("fare_amount", t.fare.map(decimal)),
            ("tip_amount", t.tip.map(decimal)),
            ("total_amount", t.total.map(decimal)),
            ("payment_type", t.payment.map(Value::Int)),
            ("notes", t.notes.clone().map(Value::String)),
            ("congestion_surcharge", t.surcharge.map(decimal)),
        ]),
    )
}

fn trip_strategy() -> impl Strategy<Value = Trip> {
    let dec = |digits: u32| proptest::option::of(-(10i64.pow(digits) - 1)..10i64.pow(digits));
    (
        any::<i64>(),
        any::<i32>(),
        (-(1i64 << 52)..(1i64 << 52)),
        (-(1i64 << 52)..(1i64 << 52)),
        (any::<i32>(), any::<i32>()),
        proptest::option::of(-32768..32768i32),
        (dec(8), dec(10), dec(10), dec(10)),
        proptest::option::of(-32768..32768i32),
        proptest::option::of(prop_oneof![
            ".{0,40}",
            Just(ingest::DEFAULT_UNAVAILABLE_PLACEHOLDER.to_string())
        ]),
        dec(6),
    )
        .prop_map(
            |(
                trip_id,
                vendor_id,
                pickup,
                dropoff,
                zones,
                passengers,
                (distance, fare, tip, total),
                payment,
                notes,
                surcharge,
            )| Trip {
                trip_id,
                vendor_id,
                pickup,
                dropoff,
                zones,
                passengers,
                distance,
                fare,
                tip,
                total,
                payment,
                notes,
                surcharge,
            },
        )
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Create),
        Just(Op::Update),
        Just(Op::Delete),
        Just(Op::Read)
    ]
}

fn dec_at(s: &StructArray, name: &str, i: usize) -> Option<i128> {
    let a = s
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Decimal128Type>();
    a.is_valid(i).then(|| a.value(i))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn trips_encoded_by_apache_avro_decode_exactly(events in proptest::collection::vec((op_strategy(), trip_strategy()), 1..40)) {
        let recording = Recording::load(&fixture_dir()).unwrap();
        let value_id = *recording.schemas.subject_versions("taxi.public.trips-value").last().unwrap();
        let key_id = recording.schemas.subject_versions("taxi.public.trips-key")[0];
        let envelope = Schema::parse_str(recording.schemas.get(value_id).unwrap()).unwrap();
        let key_schema = Schema::parse_str(recording.schemas.get(key_id).unwrap()).unwrap();
        let row = row_schema(&envelope).clone();

        let mut decoder = ChangeDecoder::new(recording.schemas.clone());
        for (offset, (op, trip)) in events.iter().enumerate() {
            let image = Some(trip_value(&row, trip));
            let (before, after) = if *op == Op::Delete { (image, None) } else { (None, image) };
            let value = record(&envelope, HashMap::from([
                ("before", before),
                ("after", after),
                ("source", Some(source_value(&envelope, 1000 + offset as i64, 77, 1_700_000_000_000))),
                ("op", Some(Value::String(op.code().to_string()))),
                ("ts_ms", Some(Value::Long(1_700_000_000_123))),
            ]));
            let key = record(&key_schema, HashMap::from([("trip_id", Some(Value::Long(trip.trip_id)))]));
            let msg = RecordedMessage {
                topic: "taxi.public.trips".into(),
                partition: 3,
                offset: offset as i64,
                timestamp_ms: None,
                key: Some(frame(key_id, &apache_avro::to_avro_datum(&key_schema, key).unwrap())),
                value: Some(frame(value_id, &apache_avro::to_avro_datum(&envelope, value).unwrap())),
            };
            ready(decoder.push(&msg.as_raw())).unwrap();
        }
        let batches = decoder.flush();
        prop_assert_eq!(batches.len(), 1);
        let b = &batches[0];
        prop_assert_eq!(b.num_rows(), events.len());
        let keys = b.key().unwrap().column(0).as_primitive::<Int64Type>();
        let lsn = b.records.column_by_name("_source_lsn").unwrap().as_primitive::<Int64Type>();
        let ts = b.records.column_by_name("_source_ts").unwrap().as_primitive::<TimestampMicrosecondType>();
        for (i, (op, t)) in events.iter().enumerate() {
            prop_assert_eq!(b.op(i), Some(*op));
            prop_assert_eq!(keys.value(i), t.trip_id);
            prop_assert_eq!(lsn.value(i), 1000 + i as i64);
            prop_assert_eq!(ts.value(i), 1_700_000_000_000_000 + 7, "ts_us wins over ts_ms");
            let image = if *op == Op::Delete { b.before().unwrap() } else { b.after().unwrap() };
            prop_assert!(image.is_valid(i));
            let other = if *op == Op::Delete { b.after().unwrap() } else { b.before().unwrap() };
            prop_assert!(other.is_null(i));
            let col = |n: &str| image.column_by_name(n).unwrap();
            prop_assert_eq!(col("trip_id").as_primitive::<Int64Type>().value(i), t.trip_id);
            prop_assert_eq!(col("vendor_id").as_primitive::<Int32Type>().value(i), t.vendor_id);
            prop_assert_eq!(col("pickup_datetime").as_primitive::<TimestampMicrosecondType>().value(i), t.pickup);
            prop_assert_eq!(col("dropoff_datetime").as_primitive::<TimestampMicrosecondType>().value(i), t.dropoff);
            prop_assert_eq!(col("pickup_zone_id").as_primitive::<Int32Type>().value(i), t.zones.0);
            prop_assert_eq!(col("dropoff_zone_id").as_primitive::<Int32Type>().value(i), t.zones.1);
            let pc = col("passenger_count").as_primitive::<Int32Type>();
            prop_assert_eq!(pc.is_valid(i).then(|| pc.value(i)), t.passengers);
            prop_assert_eq!(dec_at(image, "trip_distance", i), t.distance.map(i128::from));
            prop_assert_eq!(dec_at(image, "fare_amount", i), t.fare.map(i128::from));
            prop_assert_eq!(dec_at(image, "tip_amount", i), t.tip.map(i128::from));
            prop_assert_eq!(dec_at(image, "total_amount", i), t.total.map(i128::from));
            prop_assert_eq!(dec_at(image, "congestion_surcharge", i), t.surcharge.map(i128::from));
            let pt = col("payment_type").as_primitive::<Int32Type>();
            prop_assert_eq!(pt.is_valid(i).then(|| pt.value(i)), t.payment);
            let notes = col("notes").as_string::<i32>();
            let placeholder = t.notes.as_deref() == Some(ingest::DEFAULT_UNAVAILABLE_PLACEHOLDER);
            if placeholder && *op != Op::Delete {
                prop_assert!(notes.is_null(i));
                prop_assert_eq!(b.unchanged(i), vec!["notes".to_string()]);
            } else {
                prop_assert_eq!(notes.is_valid(i).then(|| notes.value(i).to_string()), t.notes.clone());
                prop_assert!(b.unchanged(i).is_empty());
            }
        }
    }
}

/// An envelope as Debezium 2.0–2.5 wrote it for Postgres (no `ts_us`/`ts_ns`
/// anywhere), and as 1.x wrote it (also no `transaction` field).
fn legacy_envelope(with_transaction: bool) -> String {
    let transaction = if with_transaction {
        r#",{"name":"transaction","type":["null",{"type":"record","name":"ConnectDefault","namespace":"io.confluent.connect.avro","fields":[{"name":"id","type":"string"},{"name":"total_order","type":"long"},{"name":"data_collection_order","type":"long"}]}],"default":null}"#
    } else {
        ""
    };
    format!(
        r#"{{"type":"record","name":"Envelope","namespace":"old.public.items","fields":[
        {{"name":"before","type":["null",{{"type":"record","name":"Value","fields":[
            {{"name":"id","type":"int"}},
            {{"name":"price","type":["null",{{"type":"bytes","scale":2,"precision":6,"connect.version":1,"connect.parameters":{{"scale":"2","connect.decimal.precision":"6"}},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}}],"default":null}},
            {{"name":"seen","type":["null",{{"type":"string","connect.version":1,"connect.name":"io.debezium.time.ZonedTimestamp"}}],"default":null}}],
            "connect.name":"old.public.items.Value"}}],"default":null}},
        {{"name":"after","type":["null","Value"],"default":null}},
        {{"name":"source","type":{{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":[
            {{"name":"version","type":"string"}},{{"name":"connector","type":"string"}},{{"name":"name","type":"string"}},
            {{"name":"ts_ms","type":"long"}},
            {{"name":"snapshot","type":[{{"type":"string","connect.version":1,"connect.parameters":{{"allowed":"true,last,false,incremental"}},"connect.default":"false","connect.name":"io.debezium.data.Enum"}},"null"],"default":"false"}},
            {{"name":"db","type":"string"}},{{"name":"sequence","type":["null","string"],"default":null}},
            {{"name":"schema","type":"string"}},{{"name":"table","type":"string"}},
            {{"name":"txId","type":["null","long"],"default":null}},{{"name":"lsn","type":["null","long"],"default":null}},
            {{"name":"xmin","type":["null","long"],"default":null}}],"connect.name":"io.debezium.connector.postgresql.Source"}}}},
        {{"name":"op","type":"string"}},
        {{"name":"ts_ms","type":["null","long"],"default":null}}{transaction}],
        "connect.name":"old.public.items.Envelope"}}"#
    )
}

#[test]
fn debezium_1x_and_2x_envelopes() {
    for with_transaction in [false, true] {
        let text = legacy_envelope(with_transaction);
        let envelope = Schema::parse_str(&text).unwrap();
        let row = row_schema(&envelope).clone();
        let mut schemas = RecordedSchemas::default();
        schemas.insert(1, &text);
        let s = |v: &str| Some(Value::String(v.to_string()));
        let source = record(
            field_schema(&envelope, "source"),
            HashMap::from([
                ("version", s("2.4.2.Final")),
                ("connector", s("postgresql")),
                ("name", s("old")),
                ("ts_ms", Some(Value::Long(1_600_000_000_250))),
                ("snapshot", s("last")),
                ("db", s("shop")),
                ("schema", s("public")),
                ("table", s("items")),
                ("lsn", Some(Value::Long(42))),
            ]),
        );
        let after = record(
            &row,
            HashMap::from([
                ("id", Some(Value::Int(5))),
                ("price", Some(decimal(-1999))),
                ("seen", s("2020-09-13T12:26:40.25Z")),
            ]),
        );
        let mut fields = HashMap::from([
            ("after", Some(after)),
            ("source", Some(source)),
            ("op", s("r")),
            ("ts_ms", Some(Value::Long(1))),
        ]);
        if with_transaction {
            let block = match field_schema(&envelope, "transaction") {
                Schema::Union(u) => u.variants()[1].clone(),
                _ => unreachable!(),
            };
            let t = record(
                &block,
                HashMap::from([
                    ("id", s("571")),
                    ("total_order", Some(Value::Long(3))),
                    ("data_collection_order", Some(Value::Long(2))),
                ]),
            );
            fields.insert("transaction", Some(t));
        }
        let value = record(&envelope, fields);
        let msg = RecordedMessage {
            topic: "old.public.items".into(),
            partition: 0,
            offset: 9,
            timestamp_ms: None,
            key: None,
            value: Some(frame(
                1,
                &apache_avro::to_avro_datum(&envelope, value).unwrap(),
            )),
        };
        let mut d = ChangeDecoder::new(schemas);
        ready(d.push(&msg.as_raw())).unwrap();
        let b = &d.flush()[0];
        assert_eq!(b.op(0), Some(Op::Read));
        let after = b.after().unwrap();
        assert_eq!(
            after
                .column_by_name("id")
                .unwrap()
                .as_primitive::<Int32Type>()
                .value(0),
            5
        );
        assert_eq!(dec_at(after, "price", 0), Some(-1999));
        let seen = after
            .column_by_name("seen")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(seen.value(0), 1_600_000_000_250_000);
        let ts = b
            .records
            .column_by_name("_source_ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(
            ts.value(0),
            1_600_000_000_250_000,
            "without ts_us, ts_ms in microseconds"
        );
        assert_eq!(
            b.records
                .column_by_name("_snapshot")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "last"
        );
        assert_eq!(b.source.as_ref().unwrap().database, "shop");
        let txn = b
            .records
            .column_by_name("_transaction")
            .unwrap()
            .as_struct();
        assert_eq!(txn.is_valid(0), with_transaction);
        if with_transaction {
            assert_eq!(txn.column(0).as_string::<i32>().value(0), "571");
            assert_eq!(txn.column(1).as_primitive::<Int64Type>().value(0), 3);
        }
    }
}
