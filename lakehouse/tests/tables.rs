//! Creating Iceberg tables from the recorded change batches, in a real
//! SQLite catalog with the warehouse on the local filesystem.

use std::path::PathBuf;

use iceberg::spec::{FormatVersion, Transform};
use iceberg::{NamespaceIdent, TableIdent};
use ingest::ChangeBatch;
use lakehouse::{
    ensure_table, open_catalog, LakeConfig, LakehouseError, TableConfig, TableMode, TableTarget,
    Warehouse,
};

async fn batches() -> Vec<ChangeBatch> {
    crate::support::recorded_batches(None).await
}

fn first<'a>(batches: &'a [ChangeBatch], topic: &str) -> &'a ChangeBatch {
    batches.iter().find(|b| b.topic == topic).unwrap()
}

fn lake(test: &str) -> LakeConfig {
    let dir = std::env::temp_dir().join(format!("floe-lake-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    LakeConfig {
        warehouse: dir.into(),
        ..LakeConfig::default()
    }
}

fn with_table(mut lake: LakeConfig, source: &str, config: TableConfig) -> LakeConfig {
    lake.tables.by_source.insert(source.to_string(), config);
    lake
}

#[tokio::test]
async fn trips_table_is_created_partitioned_by_day_and_survives_a_reopen() {
    let batches = batches().await;
    let trips = first(&batches, "taxi.public.trips");
    let lake = with_table(
        lake("trips"),
        "public.trips",
        TableConfig {
            partition: vec!["day(pickup_datetime)".into()],
            ..TableConfig::default()
        },
    );
    let catalog = open_catalog(&lake).await.unwrap();
    let target = TableTarget::for_batch(trips, &lake.tables).unwrap();
    assert_eq!(
        target.ident,
        TableIdent::new(NamespaceIdent::new("taxi_cdc".into()), "trips".into())
    );
    let created = ensure_table(catalog.as_ref(), &target, trips)
        .await
        .unwrap();
    let location = created.metadata().location().to_string();
    assert!(location.contains(&lake.warehouse.to_string()), "{location}");
    drop(catalog);

    // a new catalog over the same SQLite file sees the same table
    let catalog = open_catalog(&lake).await.unwrap();
    let table = catalog.load_table(&target.ident).await.unwrap();
    let meta = table.metadata();
    assert_eq!(meta.format_version(), FormatVersion::V2);
    let schema = meta.current_schema();
    let trip_id = schema.field_by_name("trip_id").unwrap().id;
    assert_eq!(schema.identifier_field_ids().collect::<Vec<_>>(), [trip_id]);
    let spec = meta.default_partition_spec();
    assert_eq!(spec.fields().len(), 1);
    let field = &spec.fields()[0];
    assert_eq!(field.transform, Transform::Day);
    assert_eq!(field.name, "pickup_datetime_day");
    assert_eq!(
        field.source_id,
        schema.field_by_name("pickup_datetime").unwrap().id
    );
    let metadata_file = table
        .metadata_location()
        .unwrap()
        .trim_start_matches("file://")
        .to_string();
    assert!(
        std::path::Path::new(&metadata_file).is_file(),
        "metadata written to {metadata_file}"
    );

    // the table exists now: a later batch loads it instead of creating it
    let later = batches
        .iter()
        .rfind(|b| b.topic == "taxi.public.trips")
        .unwrap();
    let again = ensure_table(catalog.as_ref(), &target, later)
        .await
        .unwrap();
    assert_eq!(again.metadata_location(), table.metadata_location());
    std::fs::remove_dir_all(lake.warehouse.local_dir().unwrap()).ok();
}

#[tokio::test]
async fn names_come_from_configuration_or_the_topic_prefix() {
    let batches = batches().await;
    let vendors = first(&batches, "taxi.public.vendors");
    let mut lake = lake("names");
    assert_eq!(
        TableTarget::for_batch(vendors, &lake.tables)
            .unwrap()
            .ident
            .to_string(),
        "taxi_cdc.vendors"
    );
    lake.tables.namespace = Some("raw".into());
    assert_eq!(
        TableTarget::for_batch(vendors, &lake.tables)
            .unwrap()
            .ident
            .to_string(),
        "raw.vendors"
    );
    let lake = with_table(
        lake,
        "public.vendors",
        TableConfig {
            namespace: Some("reference".into()),
            name: Some("taxi_vendors".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        TableTarget::for_batch(vendors, &lake.tables)
            .unwrap()
            .ident
            .to_string(),
        "reference.taxi_vendors"
    );
}

#[tokio::test]
async fn a_table_without_primary_key_is_keyed_by_whole_rows_or_kept_as_a_changelog() {
    let batches = batches().await;
    let log = first(&batches, "taxi.public.event_log");
    let lake = lake("append");
    let catalog = open_catalog(&lake).await.unwrap();
    // by default: the source table's own columns, no identifier fields
    // (TableWriter keys its rows by their whole value)
    let target = TableTarget::for_batch(log, &lake.tables).unwrap();
    let table = ensure_table(catalog.as_ref(), &target, log).await.unwrap();
    let schema = table.metadata().current_schema();
    assert_eq!(schema.identifier_field_ids().count(), 0);
    assert!(schema.field_by_name("_op").is_none());
    catalog.drop_table(&target.ident).await.unwrap();

    let lake = with_table(
        lake,
        "public.event_log",
        TableConfig {
            mode: TableMode::Append,
            ..Default::default()
        },
    );
    let target = TableTarget::for_batch(log, &lake.tables).unwrap();
    let table = ensure_table(catalog.as_ref(), &target, log).await.unwrap();
    let schema = table.metadata().current_schema();
    for column in [
        "message",
        "logged_at",
        "_op",
        "_kafka_partition",
        "_kafka_offset",
        "_source_ts",
    ] {
        assert!(
            schema.field_by_name(column).is_some(),
            "append table has {column}"
        );
    }
    assert_eq!(schema.identifier_field_ids().count(), 0);
    std::fs::remove_dir_all(lake.warehouse.local_dir().unwrap()).ok();
}

#[tokio::test]
async fn every_transform_and_bad_specs() {
    let batches = batches().await;
    let all = first(&batches, "taxi.public.all_types");
    let spec = [
        "identity(c_int)",
        "year(c_date)",
        "month(c_timestamp)",
        "hour(c_timestamptz)",
        "bucket[8](id)",
        "truncate[3](c_text)",
    ];
    let lake = with_table(
        lake("transforms"),
        "public.all_types",
        TableConfig {
            partition: spec.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    );
    let catalog = open_catalog(&lake).await.unwrap();
    let target = TableTarget::for_batch(all, &lake.tables).unwrap();
    let table = ensure_table(catalog.as_ref(), &target, all).await.unwrap();
    let transforms: Vec<Transform> = table
        .metadata()
        .default_partition_spec()
        .fields()
        .iter()
        .map(|f| f.transform)
        .collect();
    assert_eq!(
        transforms,
        [
            Transform::Identity,
            Transform::Year,
            Transform::Month,
            Transform::Hour,
            Transform::Bucket(8),
            Transform::Truncate(3)
        ]
    );

    let trips = first(&batches, "taxi.public.trips");
    for (bad, says) in [
        ("day(nope)", "no column"),
        ("day(trip_id)", "cannot partition column"),
        ("weekly(pickup_datetime)", "unknown transform"),
    ] {
        let lake = with_table(
            lake.clone(),
            "public.trips",
            TableConfig {
                partition: vec![bad.into()],
                ..Default::default()
            },
        );
        let target = TableTarget::for_batch(trips, &lake.tables).unwrap();
        let err = ensure_table(catalog.as_ref(), &target, trips)
            .await
            .unwrap_err();
        assert!(
            matches!(err, LakehouseError::PartitionSpec { .. }),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains(says), "{bad}: {err}");
        assert!(!catalog.table_exists(&target.ident).await.unwrap());
    }
    std::fs::remove_dir_all(lake.warehouse.local_dir().unwrap()).ok();
}

#[test]
fn configuration_parses() {
    let lake: LakeConfig = serde_json::from_value(serde_json::json!({
        "warehouse": "/data/lake",
        "catalog": {"type": "sql", "uri": "postgres://floe@db/lake"},
        "tables": {
            "namespace": "raw",
            "public.trips": {"partition": ["day(pickup_datetime)"]},
            "public.event_log": {"mode": "append", "name": "events"}
        }
    }))
    .unwrap();
    assert_eq!(
        lake.warehouse,
        Warehouse::Local(PathBuf::from("/data/lake"))
    );
    assert!(
        matches!(lake.catalog, lakehouse::CatalogConfig::Sql { ref uri } if uri == "postgres://floe@db/lake")
    );
    assert_eq!(lake.tables.namespace.as_deref(), Some("raw"));
    assert_eq!(
        lake.tables.by_source["public.trips"].partition,
        ["day(pickup_datetime)"]
    );
    assert_eq!(
        lake.tables.by_source["public.event_log"].mode,
        TableMode::Append
    );
    let typo = serde_json::from_value::<TableConfig>(serde_json::json!({"partiton": ["x"]}));
    assert!(
        typo.is_err(),
        "a misspelt key in a table section is an error"
    );
    let default: LakeConfig = serde_json::from_value(serde_json::json!({})).unwrap();
    assert!(matches!(
        default.catalog,
        lakehouse::CatalogConfig::Sqlite { path: None }
    ));
}

/// Several writers (ingest instances) creating the same table at once:
/// each gets the table, whichever of them created it.
#[tokio::test]
async fn writers_racing_to_create_a_table_all_get_it() {
    let batches = batches().await;
    let trips = first(&batches, "taxi.public.trips");
    let lake = lake("race");
    let target = TableTarget::for_batch(trips, &lake.tables).unwrap();
    let mut catalogs = Vec::new();
    for _ in 0..8 {
        catalogs.push(open_catalog(&lake).await.unwrap());
    }
    let created = futures::future::join_all(
        catalogs
            .iter()
            .map(|catalog| ensure_table(catalog.as_ref(), &target, trips)),
    )
    .await;
    let locations: Vec<String> = created
        .into_iter()
        .map(|t| {
            t.unwrap_or_else(|e| panic!("{e}"))
                .metadata()
                .location()
                .to_string()
        })
        .collect();
    assert!(locations.windows(2).all(|w| w[0] == w[1]), "{locations:?}");
    std::fs::remove_dir_all(lake.warehouse.local_dir().unwrap()).ok();
}
