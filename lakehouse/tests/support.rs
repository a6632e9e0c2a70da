//! Shared helpers of the lakehouse tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use iceberg::table::Table;
use iceberg_datafusion::IcebergStaticTableProvider;
use ingest::{ChangeBatch, ChangeDecoder, Recording};

/// Partitions `public.trips` by day of pickup, as the taxi lake does.
pub fn trips_by_day(lake: &mut lakehouse::LakeConfig) {
    lake.tables.by_source.insert(
        "public.trips".into(),
        lakehouse::TableConfig {
            partition: vec!["day(pickup_datetime)".into()],
            ..Default::default()
        },
    );
}

/// The recorded Debezium fixtures decoded into change batches, optionally
/// only those of one topic.
pub async fn recorded_batches(topic: Option<&str>) -> Vec<ChangeBatch> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let mut decoder = ChangeDecoder::new(rec.schemas.clone());
    for m in rec
        .messages
        .iter()
        .filter(|m| topic.is_none_or(|t| m.topic == t))
    {
        decoder.push(&m.as_raw()).await.unwrap();
    }
    decoder.flush()
}

/// Every live row of the table's current snapshot, read the way floe's
/// analytics read it: SQL through DataFusion and iceberg-datafusion (which
/// applies position deletes).
pub async fn scan_all(table: &Table) -> Vec<RecordBatch> {
    let provider = IcebergStaticTableProvider::try_new_from_table(table.clone())
        .await
        .unwrap();
    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(provider)).unwrap();
    ctx.sql("SELECT * FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

/// Every live row through iceberg's own Arrow scan (no DataFusion).
pub async fn scan_arrow(table: &Table) -> Vec<RecordBatch> {
    table
        .scan()
        .select_all()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// One column of scanned rows by trip id: `get` reads row `i` of the
/// column (as its concrete array type `A`), or None where it is null.
pub fn by_trip<A: arrow_array::Array + 'static, V>(
    batches: &[RecordBatch],
    column: &str,
    get: impl Fn(&A, usize) -> V,
) -> std::collections::BTreeMap<i64, Option<V>> {
    use arrow_array::Array;
    let mut out = std::collections::BTreeMap::new();
    for b in batches {
        let ids = b.column_by_name("trip_id").unwrap();
        let ids = ids
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        let col = b.column_by_name(column).unwrap();
        let col = col
            .as_any()
            .downcast_ref::<A>()
            .unwrap_or_else(|| panic!("{column} is not the expected array type"));
        for i in 0..b.num_rows() {
            out.insert(ids.value(i), col.is_valid(i).then(|| get(col, i)));
        }
    }
    out
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A private PostgreSQL on loopback; stopped on drop.
pub struct Postgres {
    data: PathBuf,
    port: u16,
}

impl Postgres {
    pub fn start(data: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = format!(
            "source '{}/scripts/lib/common.sh' && pg_start '{}' {port} && \
             psql -h 127.0.0.1 -p {port} -U postgres -q -c 'CREATE DATABASE lake'",
            repo().display(),
            data.display()
        );
        let status = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .status()
            .expect("bash runs");
        assert!(
            status.success(),
            "private PostgreSQL did not start (see {}/server.log)",
            data.display()
        );
        Self {
            data: data.to_path_buf(),
            port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn uri(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/lake?sslmode=disable",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let script = format!(
            "source '{}/scripts/lib/common.sh' && pg_stop '{}'",
            repo().display(),
            self.data.display()
        );
        let _ = Command::new("bash").arg("-c").arg(script).status();
    }
}

/// An empty local lake for one test, `$TMPDIR/floe-NAME-PID`: its folder
/// and the opened lake.
pub async fn temp_lake(name: &str) -> (PathBuf, lakehouse::Lake) {
    let warehouse = std::env::temp_dir().join(format!("floe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&warehouse);
    let lake = lakehouse::Lake::open(&lakehouse::LakeConfig {
        warehouse: warehouse.clone().into(),
        ..lakehouse::LakeConfig::default()
    })
    .await
    .unwrap();
    (warehouse, lake)
}

/// The file scan tasks of `table`'s current snapshot.
pub async fn scan_tasks(table: &Table) -> Vec<iceberg::scan::FileScanTask> {
    table
        .scan()
        .build()
        .unwrap()
        .plan_files()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Sets table properties `props` on `ident` through floe's transaction.
pub async fn set_properties(
    lake: &lakehouse::Lake,
    ident: &iceberg::TableIdent,
    props: &[(&str, &str)],
) {
    use lakehouse::transaction::{SetProperties, Transaction};
    let table = lake.catalog().load_table(ident).await.unwrap();
    let props = props
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Transaction::new(
        lake.catalog().as_ref(),
        lake.pointer(),
        table,
        SetProperties(props),
    )
    .commit()
    .await
    .unwrap();
}

/// The live position-delete files of `table`'s current snapshot, each with
/// the data files its rows name and its `referenced_data_file`.
pub async fn delete_files(
    table: &Table,
) -> std::collections::BTreeMap<String, (std::collections::BTreeSet<String>, Option<String>)> {
    use arrow_array::{Array, StringArray};
    use iceberg::spec::DataContentType;
    let mut out = std::collections::BTreeMap::new();
    if table.metadata().current_snapshot().is_none() {
        return out;
    }
    for manifest in manifests(table).await {
        let manifest = manifest.load_manifest(table.file_io()).await.unwrap();
        for entry in manifest.entries() {
            let file = entry.data_file();
            if !entry.is_alive() || file.content_type() != DataContentType::PositionDeletes {
                continue;
            }
            let bytes = read_bytes(table, file.file_path()).await;
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .unwrap()
                    .build()
                    .unwrap();
            let mut named = std::collections::BTreeSet::new();
            for batch in reader {
                let batch = batch.unwrap();
                let paths = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap();
                named.extend((0..paths.len()).map(|i| paths.value(i).to_string()));
            }
            out.insert(
                file.file_path().to_string(),
                (named, file.referenced_data_file()),
            );
        }
    }
    out
}

/// The manifests `table`'s current snapshot lists.
pub async fn manifests(table: &Table) -> Vec<iceberg::spec::ManifestFile> {
    let snapshot = table.metadata().current_snapshot().unwrap();
    let bytes = read_bytes(table, snapshot.manifest_list()).await;
    iceberg::spec::ManifestList::parse_with_version(&bytes, table.metadata().format_version())
        .unwrap()
        .entries()
        .to_vec()
}

/// One file of `table`, whole.
pub async fn read_bytes(table: &Table, path: &str) -> bytes::Bytes {
    table
        .file_io()
        .new_input(path)
        .unwrap()
        .read()
        .await
        .unwrap()
}
