//! Every column type the decoder produces from real Debezium output maps
//! onto the Iceberg type `docs/types.md` promises.

use iceberg::spec::{PrimitiveType, Schema, Type};
use ingest::ChangeBatch;
use lakehouse::{table_schema, SchemaError};

fn batches() -> Vec<ChangeBatch> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(crate::support::recorded_batches(None))
}

fn schema_of(batches: &[ChangeBatch], topic: &str) -> Schema {
    let b = batches.iter().rev().find(|b| b.topic == topic).unwrap();
    table_schema(&b.row_fields(), &b.key_fields).unwrap()
}

fn ty(schema: &Schema, column: &str) -> Type {
    (*schema
        .field_by_name(column)
        .unwrap_or_else(|| panic!("no {column}"))
        .field_type)
        .clone()
}

fn p(t: PrimitiveType) -> Type {
    Type::Primitive(t)
}

#[test]
fn default_settings_map_onto_iceberg_types() {
    let batches = batches();
    let s = schema_of(&batches, "taxi.public.all_types");
    use PrimitiveType::*;
    let expected = [
        ("id", p(Long)),
        ("c_smallint", p(Int)),
        ("c_int", p(Int)),
        ("c_bigint", p(Long)),
        ("c_real", p(Float)),
        ("c_double", p(Double)),
        ("c_bool", p(Boolean)),
        (
            "c_numeric",
            p(Decimal {
                precision: 12,
                scale: 4,
            }),
        ),
        ("c_numeric_unc", p(String)),
        (
            "c_money",
            p(Decimal {
                precision: 38,
                scale: 2,
            }),
        ),
        ("c_text", p(String)),
        ("c_char", p(String)),
        ("c_date", p(Date)),
        ("c_time", p(Time)),
        ("c_time3", p(Time)),
        ("c_timetz", p(Time)),
        ("c_timestamp", p(Timestamp)),
        ("c_timestamp3", p(Timestamp)),
        ("c_timestamptz", p(Timestamptz)),
        ("c_interval", p(Long)),
        ("c_uuid", p(String)),
        ("c_json", p(String)),
        ("c_jsonb", p(String)),
        ("c_xml", p(String)),
        ("c_bytea", p(Binary)),
        ("c_enum", p(String)),
        ("c_inet", p(String)),
        ("c_hstore", p(String)),
        ("c_big_text", p(String)),
    ];
    for (column, want) in expected {
        assert_eq!(ty(&s, column), want, "column {column}");
    }
    let Type::List(list) = ty(&s, "c_int_array") else {
        panic!("c_int_array is not a list")
    };
    assert_eq!(*list.element_field.field_type, p(Int));
    assert!(!list.element_field.required, "array elements may be null");
    let Type::List(list) = ty(&s, "c_text_array") else {
        panic!("c_text_array is not a list")
    };
    assert_eq!(*list.element_field.field_type, p(String));

    let id = s.field_by_name("id").unwrap().id;
    assert_eq!(s.identifier_field_ids().collect::<Vec<_>>(), [id]);
    assert!(s.field_by_name("id").unwrap().required);
    assert!(!s.field_by_name("c_int").unwrap().required);
}

#[test]
fn alternative_settings_map_onto_iceberg_types() {
    let batches = batches();
    use PrimitiveType::*;
    let alt1 = schema_of(&batches, "alt1.public.all_types");
    assert_eq!(ty(&alt1, "c_numeric"), p(Double));
    assert_eq!(ty(&alt1, "c_time"), p(Time));
    assert_eq!(ty(&alt1, "c_timestamp"), p(Timestamp));
    assert_eq!(ty(&alt1, "c_interval"), p(String));
    assert_eq!(ty(&alt1, "c_bytea"), p(String));
    let Type::Map(map) = ty(&alt1, "c_hstore") else {
        panic!("hstore map mode is an Iceberg map")
    };
    assert_eq!(*map.key_field.field_type, p(String));
    assert_eq!(*map.value_field.field_type, p(String));
    let alt2 = schema_of(&batches, "alt2.public.all_types");
    assert_eq!(ty(&alt2, "c_numeric"), p(String));
    assert_eq!(ty(&alt2, "c_time3"), p(Time));
}

#[test]
fn trips_schema_has_its_key_and_the_added_column() {
    let batches = batches();
    let s = schema_of(&batches, "taxi.public.trips");
    let id = s.field_by_name("trip_id").unwrap().id;
    assert_eq!(s.identifier_field_ids().collect::<Vec<_>>(), [id]);
    assert_eq!(ty(&s, "pickup_datetime"), p(PrimitiveType::Timestamp));
    assert_eq!(
        ty(&s, "congestion_surcharge"),
        p(PrimitiveType::Decimal {
            precision: 6,
            scale: 2
        })
    );
    assert_eq!(s.as_struct().fields().len(), 14);
}

#[test]
fn bad_primary_keys_are_refused() {
    let batches = batches();
    let b = batches
        .iter()
        .find(|b| b.topic == "taxi.public.trips")
        .unwrap();
    let fields = b.row_fields();
    assert!(
        matches!(table_schema(&fields, &["nope".into()]), Err(SchemaError::UnknownKeyColumn(c)) if c == "nope")
    );
    assert!(matches!(
        table_schema(&fields, &["notes".into()]),
        Err(SchemaError::BadKeyColumn {
            reason: "nullable",
            ..
        })
    ));
}
