//! The edge values of the type recording (`tests/fixtures/types`, made by
//! `scripts/record-types.sh` with real Debezium 3.6.3) as the decoder
//! stores them, and its refusals of what the lake cannot hold. The whole
//! comparison with Postgres' own output is `tests/e2e/types.rs`; these are
//! the decoder's share, fast and named.

use std::path::PathBuf;

use arrow::array::{Array, AsArray, StructArray};
use arrow::datatypes::{Date32Type, Int32Type, Time64MicrosecondType, TimestampMicrosecondType};
use ingest::{ChangeBatch, ChangeDecoder, DecodeError, Op, Recording};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/types")
}

fn decode(recording: &Recording) -> (Vec<ChangeBatch>, Vec<DecodeError>) {
    let mut decoder = ChangeDecoder::new(recording.schemas.clone());
    let mut errors = Vec::new();
    for m in &recording.messages {
        if let Err(e) = crate::ready(decoder.push(&m.as_raw())) {
            errors.push(e);
        }
    }
    (decoder.flush(), errors)
}

/// The `after` image of the last event of `id` in the wide table.
fn wide_row(batches: &[ChangeBatch], id: i64) -> (StructArray, usize, Vec<String>) {
    let mut found = None;
    for b in batches.iter().filter(|b| b.topic == "types.public.wide") {
        let after = b.after().unwrap();
        let ids = after
            .column_by_name("id")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            if after.is_valid(i) && ids.value(i) == id && b.op(i) != Some(Op::Delete) {
                found = Some((after.clone(), i, b.unchanged(i)));
            }
        }
    }
    found.unwrap_or_else(|| panic!("no row {id}"))
}

#[test]
fn edge_values_decode_to_their_documented_encodings() {
    let recording = Recording::load(&dir()).unwrap();
    let (batches, errors) = decode(&recording);
    assert!(errors.is_empty(), "{errors:?}");
    let date = |row: &(StructArray, usize, Vec<String>), c: &str| {
        row.0
            .column_by_name(c)
            .unwrap()
            .as_primitive::<Date32Type>()
            .value(row.1)
    };
    let ts = |row: &(StructArray, usize, Vec<String>), c: &str| {
        row.0
            .column_by_name(c)
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .value(row.1)
    };
    let time = |row: &(StructArray, usize, Vec<String>), c: &str| {
        row.0
            .column_by_name(c)
            .unwrap()
            .as_primitive::<Time64MicrosecondType>()
            .value(row.1)
    };
    let text = |row: &(StructArray, usize, Vec<String>), c: &str| {
        row.0
            .column_by_name(c)
            .unwrap()
            .as_string::<i32>()
            .value(row.1)
            .to_string()
    };
    // infinity from a snapshot read (5, 6) and from streamed inserts (15, 16)
    for (id, sign) in [(5, 1), (15, 1), (6, -1), (16, -1)] {
        let row = wide_row(&batches, id);
        assert_eq!(date(&row, "c_date"), sign * i32::MAX, "row {id}");
        for c in ["c_timestamp", "c_timestamp3", "c_timestamptz"] {
            assert_eq!(ts(&row, c), i64::from(sign) * i64::MAX, "row {id} {c}");
        }
    }
    // 24:00:00, in micro- and milliseconds, is the last microsecond
    let row = wide_row(&batches, 5);
    for c in ["c_time", "c_time0", "c_time3"] {
        assert_eq!(time(&row, c), 86_399_999_999, "{c}");
    }
    // numeric(60, 10) as exact text; bit(12) as its bits
    let row = wide_row(&batches, 4);
    assert_eq!(
        text(&row, "c_numeric_wide"),
        format!("{}.{}", "9".repeat(50), "9".repeat(10))
    );
    assert_eq!(text(&row, "c_bits"), "111111111111");
    assert_eq!(text(&wide_row(&batches, 2), "c_bits"), "101000000101");
    // a streamed BC date is exact (proleptic Gregorian): 4713-01-01 BC
    assert_eq!(date(&wide_row(&batches, 13), "c_date"), -2_440_550);
    // an update that left TOASTed columns alone: text, bytes, jsonb, a text
    // array and an integer array all marked unchanged, none stored
    let row = wide_row(&batches, 2);
    for c in [
        "c_big_text",
        "c_big_bytea",
        "c_big_jsonb",
        "c_big_text_arr",
        "c_big_int_arr",
    ] {
        assert!(
            row.2.iter().any(|u| u == c),
            "{c} not unchanged: {:?}",
            row.2
        );
        assert!(
            row.0.column_by_name(c).unwrap().is_null(row.1),
            "{c} stored"
        );
    }
}

#[test]
fn added_columns_carry_their_defaults() {
    let recording = Recording::load(&dir()).unwrap();
    let (batches, _) = decode(&recording);
    let last = batches
        .iter()
        .rfind(|b| b.topic == "types.public.evolving")
        .unwrap();
    let n_default = last.defaults.get("n_default").expect("n_default's default");
    assert_eq!(n_default.as_string::<i32>().value(0), "dflt");
    let n_required = last
        .defaults
        .get("n_required")
        .expect("n_required's default");
    assert_eq!(n_required.as_primitive::<Int32Type>().value(0), 7);
    // columns without a DEFAULT have none
    assert!(!last.defaults.contains_key("n_plain"));
    assert!(!last.defaults.contains_key("g"));
}

#[test]
fn timestamps_past_icebergs_range_are_refused_by_name() {
    let recording = Recording::load(&dir().join("refused")).unwrap();
    let (_, errors) = decode(&recording);
    let refused: Vec<(String, i64)> = errors
        .iter()
        .map(|e| (e.position.topic.clone(), e.position.offset))
        .collect();
    assert_eq!(
        refused,
        [
            ("bad.public.out_of_range".to_string(), 1),
            ("bad.public.out_of_range".to_string(), 2),
            ("bad.public.out_of_range".to_string(), 3),
        ]
    );
    // each update keeps the earlier columns' values, so `ts` (Debezium's
    // overflow) is the first refused column of all three; `ts3` and `tstz`
    // past the range are refused on their own in ingest's unit tests
    for e in &errors {
        let text = e.to_string();
        assert!(e.is_message_fault(), "{text}");
        assert!(
            text.contains("after.ts:") && text.contains("cannot be stored"),
            "{text}"
        );
    }
}
