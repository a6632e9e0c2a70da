//! A taxi lake built the way floe ingest builds it: trips as Debezium
//! change events (encoded by apache-avro with the registry schemas of the
//! fixture recording), decoded by floe's decoder and applied by
//! `TableWriter` (updates and deletes become position deletes); vendors
//! and payment types as plain tables.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use iceberg::TableIdent;
use ingest::testing::{decimal, EventEncoder, Value};
use ingest::{ChangeDecoder, Op, RecordedMessage, Recording};
use lakehouse::sink::{write_result, WriteMode};
use lakehouse::{Lake, LakeConfig};

use crate::stack::repo;

const TOPIC: &str = "taxi.public.trips";

/// Key and value bytes of one Kafka record (a null value is a tombstone).
type KafkaRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

/// One trip as Postgres has it; money and distance in hundredths.
#[derive(Debug, Clone, Copy)]
pub struct Trip {
    pub id: i64,
    pub vendor: i32,
    /// `YYYY-MM-DD HH:MM`
    pub pickup: &'static str,
    pub dropoff: &'static str,
    pub pickup_zone: i32,
    pub dropoff_zone: i32,
    pub passengers: i32,
    pub distance: i64,
    pub fare: i64,
    pub total: i64,
    pub payment: i32,
}

pub enum Change {
    /// Insert, or update when the trip exists.
    Upsert(Trip),
    Delete(i64),
}

pub fn micros(t: &str) -> i64 {
    datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(&format!("{t}:00"))
        .unwrap()
        / 1000
}

fn image(t: &Trip) -> HashMap<&'static str, Value> {
    HashMap::from([
        ("trip_id", Value::Long(t.id)),
        ("vendor_id", Value::Int(t.vendor)),
        ("pickup_datetime", Value::Long(micros(t.pickup))),
        ("dropoff_datetime", Value::Long(micros(t.dropoff))),
        ("pickup_zone_id", Value::Int(t.pickup_zone)),
        ("dropoff_zone_id", Value::Int(t.dropoff_zone)),
        ("passenger_count", Value::Int(t.passengers)),
        ("trip_distance", decimal(t.distance)),
        ("fare_amount", decimal(t.fare)),
        ("tip_amount", decimal(0)),
        ("total_amount", decimal(t.total)),
        ("payment_type", Value::Int(t.payment)),
    ])
}

/// Applies trip changes to `taxi_cdc.trips` (partitioned by pickup day),
/// one Kafka-like batch per call.
pub struct CdcTrips {
    config: LakeConfig,
    encoder: EventEncoder,
    recording: Recording,
    known: std::collections::HashSet<i64>,
    offset: i64,
}

impl CdcTrips {
    pub fn new(lake: &LakeConfig) -> Self {
        let recording = Recording::load(&repo().join("tests/fixtures/debezium")).unwrap();
        let value_id = recording
            .schemas
            .subject_versions("taxi.public.trips-value")[0];
        let key_id = recording.schemas.subject_versions("taxi.public.trips-key")[0];
        let encoder = EventEncoder::new(&recording.schemas, value_id, key_id).unwrap();
        let mut config = lake.clone();
        config.tables.by_source.insert(
            "public.trips".into(),
            lakehouse::TableConfig {
                partition: vec!["day(pickup_datetime)".into()],
                ..Default::default()
            },
        );
        Self {
            config,
            encoder,
            recording,
            known: Default::default(),
            offset: 0,
        }
    }

    /// Decodes and applies `changes` as one batch (one snapshot).
    pub async fn apply(&mut self, changes: &[Change]) {
        let mut records: Vec<KafkaRecord> = Vec::new();
        for (lsn, change) in changes.iter().enumerate() {
            let lsn = self.offset + lsn as i64 + 1;
            let key = |id: i64| HashMap::from([("trip_id", Value::Long(id))]);
            match change {
                Change::Upsert(t) => {
                    let op = if self.known.insert(t.id) {
                        Op::Create
                    } else {
                        Op::Update
                    };
                    let (k, v) = self
                        .encoder
                        .event(op, Some(&key(t.id)), None, Some(&image(t)), lsn)
                        .unwrap();
                    records.push((k, Some(v)));
                }
                Change::Delete(id) => {
                    self.known.remove(id);
                    // the key-only before image Debezium sends under
                    // REPLICA IDENTITY DEFAULT
                    let mut before = image(&Trip {
                        id: *id,
                        vendor: 0,
                        pickup: "1970-01-01 00:00",
                        dropoff: "1970-01-01 00:00",
                        pickup_zone: 0,
                        dropoff_zone: 0,
                        passengers: 0,
                        distance: 0,
                        fare: 0,
                        total: 0,
                        payment: 0,
                    });
                    before.remove("passenger_count");
                    let (k, v) = self
                        .encoder
                        .event(Op::Delete, Some(&key(*id)), Some(&before), None, lsn)
                        .unwrap();
                    records.push((k.clone(), Some(v)));
                    records.push((k, None));
                }
            }
        }
        let mut decoder = ChangeDecoder::new(self.recording.schemas.clone());
        for (key, value) in records {
            let message = RecordedMessage {
                topic: TOPIC.into(),
                partition: 0,
                offset: self.offset,
                timestamp_ms: None,
                key,
                value,
            };
            self.offset += 1;
            decoder.push(&message.as_raw()).await.unwrap();
        }
        let lake = Lake::open(&self.config).await.unwrap();
        for batch in decoder.flush() {
            let mut writer = lake.writer(&batch).await.unwrap();
            writer.apply(&batch).await.unwrap();
        }
    }
}

/// `taxi_cdc.vendors` (1, 2) and `taxi_cdc.payment_types` (1 to 4).
pub async fn seed_reference(lake: &Lake) {
    let write = |name: &'static str,
                 key: &'static str,
                 value: &'static str,
                 rows: Vec<(i32, &'static str)>| async move {
        let schema = Schema::new(vec![
            Field::new(key, DataType::Int32, false),
            Field::new(value, DataType::Utf8, false),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        ];
        let batch = RecordBatch::try_new(Arc::new(schema.clone()), columns).unwrap();
        write_result(
            lake,
            &TableIdent::from_strs(["taxi_cdc", name]).unwrap(),
            &[],
            WriteMode::Overwrite,
            &schema,
            &[batch],
            Default::default(),
        )
        .await
        .unwrap();
    };
    write(
        "vendors",
        "vendor_id",
        "name",
        vec![(1, "Creative Mobile"), (2, "VeriFone")],
    )
    .await;
    write(
        "payment_types",
        "payment_type_id",
        "description",
        vec![
            (1, "Credit card"),
            (2, "Cash"),
            (3, "No charge"),
            (4, "Dispute"),
        ],
    )
    .await;
}
