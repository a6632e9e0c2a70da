//! Decode throughput: one million trips change events (70% inserts, 25%
//! updates, 5% deletes; Confluent-framed Avro with the exact schemas
//! Debezium 3.6.3 registered for `taxi.public.trips`), decoded
//!
//! * by floe's [`ChangeDecoder`] into Arrow [`ingest::ChangeBatch`]es, and
//! * by apache-avro's `from_avro_datum` into `Value` trees (the usual Rust
//!   path; it stops at `Value` and does not even build Arrow arrays).
//!
//! Also timed: putting the batches of a topic with three partitions back
//! in source order (`ChangeBatch::in_source_order`), what such a topic
//! costs per batch before it is applied.
//!
//! floe flushes a batch every `FLUSH_EVERY` events, as `floe ingest` does
//! at its commit trigger, so batches stay the size the service builds.
//!
//! Run: `cargo bench -p ingest --bench decode`. Results go in
//! `docs/benchmarks.md`. `FLOE_BENCH_EVENTS` changes the event count.

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::Schema;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingest::testing::{decimal, record, Rng};
use ingest::wire::{frame, split_frame};
use ingest::{ChangeDecoder, RawMessage, Recording};

const TOPIC: &str = "taxi.public.trips";
const FLUSH_EVERY: usize = 100_000;

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn field<'a>(schema: &'a Schema, name: &str) -> &'a Schema {
    let Schema::Record(r) = schema else {
        panic!("not a record")
    };
    &r.fields[r.lookup[name]].schema
}

struct Workload {
    messages: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    schemas: ingest::RecordedSchemas,
    envelope: Schema,
    bytes: u64,
}

/// The benchmark's events, encoded once by apache-avro.
fn workload(n: usize) -> Workload {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).expect("fixture recording");
    let value_id = *rec
        .schemas
        .subject_versions("taxi.public.trips-value")
        .last()
        .unwrap();
    let key_id = rec.schemas.subject_versions("taxi.public.trips-key")[0];
    let envelope = Schema::parse_str(rec.schemas.get(value_id).unwrap()).unwrap();
    let key_schema = Schema::parse_str(rec.schemas.get(key_id).unwrap()).unwrap();
    let row = match field(&envelope, "before") {
        Schema::Union(u) => u
            .variants()
            .iter()
            .find(|s| **s != Schema::Null)
            .unwrap()
            .clone(),
        s => s.clone(),
    };
    let source_schema = field(&envelope, "source").clone();
    let mut rng = Rng(42);
    let day0 = 1_709_251_200_000_000i64; // 2024-03-01 in microseconds
    let mut next_id = 1i64;
    let mut messages = Vec::with_capacity(n);
    let mut bytes = 0u64;
    for i in 0..n {
        let roll = rng.range(0, 100);
        let (op, trip_id) = if roll < 70 || next_id < 100 {
            next_id += 1;
            ("c", next_id)
        } else {
            (if roll < 95 { "u" } else { "d" }, rng.range(1, next_id))
        };
        let pickup = day0 + rng.range(0, 30 * 86_400) * 1_000_000;
        let fare = rng.range(250, 9_000);
        let tip = rng.range(0, 2_000);
        let row_values: HashMap<&str, Value> = HashMap::from([
            ("trip_id", Value::Long(trip_id)),
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
            ("tip_amount", decimal(tip)),
            ("total_amount", decimal(fare + tip + 100)),
            ("payment_type", Value::Int(rng.range(1, 5) as i32)),
            ("congestion_surcharge", decimal(250)),
        ]);
        let image = record(&row, &row_values).unwrap();
        let source = record(
            &source_schema,
            &HashMap::from([
                ("version", Value::String("3.6.3.Final".into())),
                ("connector", Value::String("postgresql".into())),
                ("name", Value::String("taxi".into())),
                ("ts_ms", Value::Long(1_763_700_000_000 + i as i64)),
                (
                    "ts_us",
                    Value::Long(1_763_700_000_000_000 + i as i64 * 1000),
                ),
                (
                    "ts_ns",
                    Value::Long(1_763_700_000_000_000_000 + i as i64 * 1_000_000),
                ),
                ("snapshot", Value::String("false".into())),
                ("db", Value::String("taxi".into())),
                (
                    "sequence",
                    Value::String(format!("[null,\"{}\"]", 26_000_000 + i)),
                ),
                ("schema", Value::String("public".into())),
                ("table", Value::String("trips".into())),
                ("txId", Value::Long(800 + i as i64)),
                ("lsn", Value::Long(26_000_000 + i as i64 * 64)),
            ]),
        )
        .unwrap();
        let mut env: HashMap<&str, Value> = HashMap::from([
            ("source", source),
            ("op", Value::String(op.into())),
            ("ts_ms", Value::Long(1_763_700_000_000 + i as i64)),
            (
                "ts_us",
                Value::Long(1_763_700_000_000_000 + i as i64 * 1000),
            ),
            (
                "ts_ns",
                Value::Long(1_763_700_000_000_000_000 + i as i64 * 1_000_000),
            ),
        ]);
        if op == "d" {
            // REPLICA IDENTITY DEFAULT: a delete's before-image holds the key only
            let mut key_only = row_values.clone();
            for (_, v) in key_only.iter_mut().filter(|(k, _)| **k != "trip_id") {
                let zero = match v {
                    Value::Int(_) => Some(Value::Int(0)),
                    Value::Long(_) => Some(Value::Long(0)),
                    _ => None,
                };
                if let Some(zero) = zero {
                    *v = zero;
                }
            }
            env.insert("before", record(&row, &key_only).unwrap());
        } else {
            env.insert("after", image);
        }
        let value = frame(
            value_id,
            &apache_avro::to_avro_datum(&envelope, record(&envelope, &env).unwrap()).unwrap(),
        );
        let key = record(
            &key_schema,
            &HashMap::from([("trip_id", Value::Long(trip_id))]),
        )
        .unwrap();
        let key = frame(
            key_id,
            &apache_avro::to_avro_datum(&key_schema, key).unwrap(),
        );
        bytes += (value.len() + key.len()) as u64;
        messages.push((Some(key), value));
    }
    Workload {
        messages,
        schemas: rec.schemas,
        envelope,
        bytes,
    }
}

fn decode(c: &mut Criterion) {
    let n: usize = std::env::var("FLOE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let w = workload(n);
    eprintln!(
        "workload: {n} events, {:.1} MB framed (key + value), {:.0} bytes/event",
        w.bytes as f64 / 1e6,
        w.bytes as f64 / n as f64
    );

    let mut group = c.benchmark_group(format!("decode_{n}_trips_events"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(n as u64));

    group.bench_function("floe_change_decoder_to_arrow", |b| {
        b.iter(|| {
            let mut decoder = ChangeDecoder::new(w.schemas.clone());
            for (offset, (key, value)) in w.messages.iter().enumerate() {
                let msg = RawMessage {
                    topic: TOPIC,
                    partition: 0,
                    offset: offset as i64,
                    key: key.as_deref(),
                    value: Some(value),
                };
                ready(decoder.push(&msg)).unwrap();
                if offset % FLUSH_EVERY == FLUSH_EVERY - 1 {
                    black_box(decoder.flush());
                }
            }
            black_box(decoder.flush())
        })
    });

    // what a topic with three partitions adds per batch: the batches put
    // back in source order (merged by LSN), timed alone on batches decoded
    // beforehand; the events go round-robin to the partitions and arrive
    // as a consumer fetches them, 500 from one partition, then the next's
    let spread = {
        let mut lanes: [Vec<usize>; 3] = Default::default();
        for i in 0..w.messages.len() {
            lanes[i % 3].push(i);
        }
        let mut arrival = Vec::with_capacity(w.messages.len());
        for chunk in 0..lanes[0].len().div_ceil(500) {
            for lane in &lanes {
                arrival.extend(lane.iter().skip(chunk * 500).take(500).copied());
            }
        }
        let mut decoder = ChangeDecoder::new(w.schemas.clone());
        let mut batches = Vec::new();
        for (n, &i) in arrival.iter().enumerate() {
            let (key, value) = &w.messages[i];
            let msg = RawMessage {
                topic: TOPIC,
                partition: (i % 3) as i32,
                offset: (i / 3) as i64,
                key: key.as_deref(),
                value: Some(value),
            };
            ready(decoder.push(&msg)).unwrap();
            if n % FLUSH_EVERY == FLUSH_EVERY - 1 {
                batches.extend(decoder.flush());
            }
        }
        batches.extend(decoder.flush());
        batches
    };
    group.bench_function("source_order_of_3_partitions", |b| {
        b.iter(|| {
            for batch in &spread {
                black_box(batch.clone().in_source_order().unwrap());
            }
        })
    });

    group.bench_function("apache_avro_value", |b| {
        b.iter(|| {
            let mut decoded = 0usize;
            for (_, value) in &w.messages {
                let (_, mut body) = split_frame(value).unwrap();
                let v = apache_avro::from_avro_datum(&w.envelope, &mut body, None).unwrap();
                decoded += matches!(v, Value::Record(_)) as usize;
            }
            black_box(decoded)
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
