//! Bad input gets a typed error naming topic, partition and offset, and
//! leaves the batch exactly as it was: the next good message decodes as if
//! the bad one had never been pushed.

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use ingest::avro::CursorError;
use ingest::column::ValueErrorKind;
use ingest::wire::FrameError;
use ingest::{
    ChangeDecoder, DecodeError, DecodeErrorKind, Part, RecordedMessage, RecordedSchemas, Recording,
};

use crate::fixtures::fixture_dir;
use crate::ready;

fn recording() -> Recording {
    Recording::load(&fixture_dir()).unwrap()
}

fn message(rec: &Recording, topic: &str, offset: i64) -> RecordedMessage {
    rec.messages
        .iter()
        .find(|m| m.topic == topic && m.offset == offset)
        .cloned()
        .unwrap()
}

fn replace_once(bytes: &mut [u8], needle: &[u8], with: &[u8]) {
    assert_eq!(
        needle.len(),
        with.len(),
        "same length keeps Avro length prefixes valid"
    );
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in recorded bytes");
    bytes[at..at + needle.len()].copy_from_slice(with);
}

/// Pushes `good`, then `bad` (which must fail), then `good2`; returns the
/// error and checks the batch holds exactly the two good rows.
fn fails_cleanly(
    schemas: RecordedSchemas,
    good: &RecordedMessage,
    bad: &RecordedMessage,
    good2: &RecordedMessage,
) -> DecodeError {
    let mut d = ChangeDecoder::new(schemas);
    ready(d.push(&good.as_raw())).unwrap();
    let err = ready(d.push(&bad.as_raw())).expect_err("bad message must fail");
    assert_eq!(err.position.topic, bad.topic);
    assert_eq!(err.position.partition, bad.partition);
    assert_eq!(err.position.offset, bad.offset);
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "topic {} partition {} offset {}",
            bad.topic, bad.partition, bad.offset
        )),
        "error text names the message: {text}"
    );
    ready(d.push(&good2.as_raw())).unwrap();
    let batches = d.flush();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2, "the bad message left nothing behind");
    for b in &batches {
        for c in b.records.columns() {
            c.to_data()
                .validate_full()
                .expect("arrays stay valid after a rolled-back row");
        }
        let offsets = b
            .records
            .column_by_name("_offset")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert!(!offsets.values().contains(&bad.offset));
    }
    err
}

#[test]
fn wrong_magic_byte() {
    let rec = recording();
    let good = message(&rec, "taxi.public.trips", 0);
    let mut bad = message(&rec, "taxi.public.trips", 1);
    bad.value.as_mut().unwrap()[0] = 1;
    let good2 = message(&rec, "taxi.public.trips", 2);
    let err = fails_cleanly(rec.schemas.clone(), &good, &bad, &good2);
    assert!(
        matches!(
            err.kind,
            DecodeErrorKind::Frame {
                part: Part::Value,
                source: FrameError::WrongMagic(1)
            }
        ),
        "{err}"
    );

    let mut bad_key = message(&rec, "taxi.public.trips", 1);
    bad_key.key = Some(vec![0, 0]);
    let err = fails_cleanly(rec.schemas.clone(), &good, &bad_key, &good2);
    assert!(matches!(
        err.kind,
        DecodeErrorKind::Frame {
            part: Part::Key,
            source: FrameError::TooShort { len: 2 }
        }
    ));
}

#[test]
fn truncated_body() {
    let rec = recording();
    let good = message(&rec, "taxi.public.trips", 0);
    let mut bad = message(&rec, "taxi.public.trips", 2);
    let v = bad.value.as_mut().unwrap();
    v.truncate(v.len() / 2);
    let good2 = message(&rec, "taxi.public.trips", 3);
    let err = fails_cleanly(rec.schemas.clone(), &good, &bad, &good2);
    assert!(
        matches!(&err.kind, DecodeErrorKind::Payload { part: Part::Value, source, .. }
            if matches!(source.kind, ValueErrorKind::Malformed(CursorError::Truncated { .. }))),
        "{err}"
    );
}

#[test]
fn unknown_schema_id() {
    let rec = recording();
    let good = message(&rec, "taxi.public.trips", 0);
    let mut bad = message(&rec, "taxi.public.trips", 1);
    bad.value.as_mut().unwrap()[1..5].copy_from_slice(&999u32.to_be_bytes());
    let good2 = message(&rec, "taxi.public.trips", 2);
    let err = fails_cleanly(rec.schemas.clone(), &good, &bad, &good2);
    assert!(
        matches!(
            err.kind,
            DecodeErrorKind::UnknownSchemaId {
                part: Part::Value,
                id: 999
            }
        ),
        "{err}"
    );
    assert!(err.is_message_fault());
}

#[test]
fn payload_that_does_not_match_its_schema() {
    let rec = recording();
    let good = message(&rec, "taxi.public.trips", 0);
    // a trips body framed with the vendors value schema id
    let vendors_value_id = rec.schemas.subject_versions("taxi.public.vendors-value")[0];
    let mut bad = message(&rec, "taxi.public.trips", 1);
    bad.value.as_mut().unwrap()[1..5].copy_from_slice(&vendors_value_id.to_be_bytes());
    let good2 = message(&rec, "taxi.public.trips", 2);
    let err = fails_cleanly(rec.schemas.clone(), &good, &bad, &good2);
    assert!(
        matches!(
            err.kind,
            DecodeErrorKind::Payload { .. }
                | DecodeErrorKind::TrailingBytes { .. }
                | DecodeErrorKind::UnknownOp(_)
        ),
        "{err}"
    );
}

#[test]
fn unparseable_zoned_timestamp() {
    let rec = recording();
    let good = message(&rec, "taxi.public.all_types", 0);
    let mut bad = message(&rec, "taxi.public.all_types", 1);
    replace_once(
        bad.value.as_mut().unwrap(),
        b"2024-02-29T08:15:10.654321Z",
        b"2024-02-30T08:15:10.654321Z",
    );
    let good2 = message(&rec, "taxi.public.all_types", 2);
    let err = fails_cleanly(rec.schemas.clone(), &good, &bad, &good2);
    let DecodeErrorKind::Payload { source, .. } = &err.kind else {
        panic!("{err}")
    };
    assert_eq!(source.path, ["after", "c_timestamptz"]);
    assert!(
        matches!(&source.kind, ValueErrorKind::BadSemanticValue { value, .. } if value == "2024-02-30T08:15:10.654321Z")
    );
    assert!(err.to_string().contains("after.c_timestamptz"), "{err}");
}

#[test]
fn decimal_wider_than_its_precision() {
    let rec = recording();
    let good = message(&rec, "taxi.public.all_types", 0);
    let mut bad = message(&rec, "taxi.public.all_types", 2);
    // c_numeric numeric(12,4) = -99999999.9999; make it -100000000.0000
    replace_once(
        bad.value.as_mut().unwrap(),
        &[0xff, 0x17, 0x2b, 0x5a, 0xf0, 0x01],
        &[0xff, 0x17, 0x2b, 0x5a, 0xf0, 0x00],
    );
    let good2 = message(&rec, "taxi.public.all_types", 1);
    let err = fails_cleanly(rec.schemas.clone(), &good, &bad, &good2);
    let DecodeErrorKind::Payload { source, .. } = &err.kind else {
        panic!("{err}")
    };
    assert_eq!(source.path, ["after", "c_numeric"]);
    assert_eq!(
        source.kind,
        ValueErrorKind::DecimalOverflow { precision: 12 }
    );
}

#[test]
fn not_a_debezium_envelope() {
    let rec = recording();
    let mut schemas = rec.schemas.clone();
    // what the ExtractNewRecordState transform produces: the bare row
    schemas.insert(
        500,
        r#"{"type":"record","name":"Value","fields":[{"name":"id","type":"long"}]}"#,
    );
    let good = message(&rec, "taxi.public.trips", 0);
    let bad = RecordedMessage {
        value: Some(ingest::wire::frame(500, &[2])),
        ..message(&rec, "taxi.public.trips", 1)
    };
    let good2 = message(&rec, "taxi.public.trips", 2);
    let err = fails_cleanly(schemas, &good, &bad, &good2);
    assert!(
        matches!(err.kind, DecodeErrorKind::NotAnEnvelope { id: 500, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("ExtractNewRecordState"),
        "the error suggests the likely cause: {err}"
    );
}

#[test]
fn operation_without_its_row_image() {
    let rec = recording();
    let good = message(&rec, "taxi.public.vendors", 0);
    // a delete (vendors offset 2) relabelled as an update has no after-image
    let mut bad = message(&rec, "taxi.public.vendors", 2);
    let v = bad.value.as_mut().unwrap();
    let at = v
        .windows(2)
        .rposition(|w| w == [2, b'd'])
        .expect("op field");
    v[at + 1] = b'u';
    let good2 = message(&rec, "taxi.public.vendors", 1);
    let err = fails_cleanly(rec.schemas.clone(), &good, &bad, &good2);
    assert!(
        matches!(
            err.kind,
            DecodeErrorKind::MissingImage {
                op: "u",
                missing: "after"
            }
        ),
        "{err}"
    );

    let mut bad = message(&rec, "taxi.public.vendors", 2);
    let v = bad.value.as_mut().unwrap();
    v[at + 1] = b'x';
    let err = fails_cleanly(rec.schemas.clone(), &good, &bad, &good2);
    assert!(
        matches!(&err.kind, DecodeErrorKind::UnknownOp(op) if op == "x"),
        "{err}"
    );
}

#[test]
fn tombstone_before_any_schema_is_reported_not_dropped_silently() {
    let rec = recording();
    let tombstone = message(&rec, "taxi.public.trips", 7);
    assert!(tombstone.value.is_none());
    let mut d = ChangeDecoder::new(rec.schemas.clone());
    assert_eq!(
        ready(d.push(&tombstone.as_raw())).unwrap(),
        ingest::Pushed::UnattachedTombstone
    );
    ready(d.push(&message(&rec, "taxi.public.trips", 6).as_raw())).unwrap();
    assert_eq!(
        ready(d.push(&tombstone.as_raw())).unwrap(),
        ingest::Pushed::Tombstone
    );
    let b = d.flush();
    assert_eq!(b[0].offsets[0].last, 7);
    assert!(b[0].key().unwrap().is_valid(0));
}

#[test]
fn a_failed_message_with_a_new_schema_leaves_no_batch_behind() {
    // Found by the fuzz test: a bad message carrying a new schema id used to
    // close the open batch and leave an empty one announcing a schema change.
    let rec = recording();
    let mut bad = message(&rec, "taxi.public.trips", 8); // first event after ADD COLUMN
    bad.value.as_mut().unwrap().truncate(20);
    let mut d = ChangeDecoder::new(rec.schemas.clone());
    ready(d.push(&message(&rec, "taxi.public.trips", 0).as_raw())).unwrap();
    ready(d.push(&bad.as_raw())).unwrap_err();
    ready(d.push(&message(&rec, "taxi.public.trips", 1).as_raw())).unwrap();
    let batches = d.flush();
    assert_eq!(batches.len(), 1, "still one batch");
    assert!(!batches[0].schema_changed());
    assert_eq!(batches[0].num_rows(), 2);
}
