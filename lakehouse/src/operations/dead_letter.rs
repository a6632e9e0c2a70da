//! The dead-letter table: Kafka messages that could not be decoded, kept
//! with their raw key and value bytes and the reason, so that skipping a
//! bad message never means losing it silently.
//!
//! Each commit records the Kafka offsets of its letters like any floe
//! commit (`crate::transaction::state`), so a restart resumes after them;
//! a letter the table already holds is not recorded twice. Compaction and
//! expiry of the table (scheduled maintenance runs on it too) only make a
//! commit try again on top of them.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use iceberg::spec::{NestedField, Operation, PrimitiveType, Schema, Type};
use iceberg::table::Table;
use iceberg::TableIdent;

use crate::catalog::Lake;
use crate::error::{iceberg_error, LakehouseError};
use crate::spec::write::{table_rows, write_rows};
use crate::table::load_or_create;
use crate::transaction::{KafkaOffsets, Rebasable, SnapshotUpdate, StateChange, Transaction};

/// One message floe could not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub error: String,
    /// When floe set it aside (microseconds since the epoch, UTC).
    pub recorded_at_us: i64,
}

/// Appends dead letters to their table, creating it the first time.
pub struct DeadLetterTable {
    lake: Lake,
    table: Table,
    commits: u64,
    lost_races: u64,
}

impl DeadLetterTable {
    /// Opens `ident` (e.g. `floe.dead_letters`), creating it if needed.
    pub async fn open(lake: &Lake, ident: TableIdent) -> Result<Self, LakehouseError> {
        let make = || schema().map_err(iceberg_error("dead-letter schema", &ident));
        let table = load_or_create(
            lake.catalog().as_ref(),
            &ident,
            make,
            &[],
            &Default::default(),
        )
        .await?;
        Ok(Self {
            lake: lake.clone(),
            table,
            commits: 0,
            lost_races: 0,
        })
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Commits that lost a race (to compaction or expiry of this table)
    /// and were committed again on the newer table.
    pub fn lost_races(&self) -> u64 {
        self.lost_races
    }

    /// Appends `letters` in one commit that also records their offsets.
    pub async fn record(&mut self, letters: &[DeadLetter]) -> Result<(), LakehouseError> {
        // letters the table already holds (a restart read them again)
        let held = KafkaOffsets::of(&self.table);
        let letters: Vec<&DeadLetter> = letters
            .iter()
            .filter(|l| {
                held.get(&l.topic, l.partition)
                    .is_none_or(|done| l.offset > done)
            })
            .collect();
        if letters.is_empty() {
            return Ok(());
        }
        let name = self.table.identifier().to_string();
        let bytes = |pick: fn(&DeadLetter) -> Option<&[u8]>| -> ArrayRef {
            Arc::new(letters.iter().map(|l| pick(l)).collect::<BinaryArray>())
        };
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "topic",
                Arc::new(StringArray::from_iter_values(
                    letters.iter().map(|l| &l.topic),
                )),
            ),
            (
                "partition",
                Arc::new(Int32Array::from_iter_values(
                    letters.iter().map(|l| l.partition),
                )),
            ),
            (
                "offset",
                Arc::new(Int64Array::from_iter_values(
                    letters.iter().map(|l| l.offset),
                )),
            ),
            ("key", bytes(|l| l.key.as_deref())),
            ("value", bytes(|l| l.value.as_deref())),
            (
                "error",
                Arc::new(StringArray::from_iter_values(
                    letters.iter().map(|l| &l.error),
                )),
            ),
            (
                "recorded_at",
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        letters.iter().map(|l| l.recorded_at_us),
                    )
                    .with_timezone("UTC"),
                ),
            ),
        ];
        // the table's Arrow types (binary may be large binary): cast to them
        let arrow = iceberg::arrow::schema_to_arrow_schema(self.table.metadata().current_schema())
            .map_err(iceberg_error("table schema", self.table.identifier()))?;
        let mut fields = Vec::with_capacity(columns.len());
        let mut arrays = Vec::with_capacity(columns.len());
        for (column, array) in columns {
            let target = match arrow.field_with_name(column) {
                Ok(f) => f.data_type().clone(),
                Err(_) => array.data_type().clone(),
            };
            let array = match (array.data_type(), &target) {
                (DataType::Timestamp(TimeUnit::Microsecond, _), _) => array,
                (have, want) if have != want => {
                    arrow_cast::cast(&array, want).map_err(|e| LakehouseError::Arrow {
                        context: format!("dead-letter column {column}"),
                        source: e,
                    })?
                }
                _ => array,
            };
            fields.push(Field::new(column, array.data_type().clone(), true));
            arrays.push(array);
        }
        let letters_struct =
            StructArray::try_new(Fields::from(fields), arrays, None).map_err(|e| {
                LakehouseError::Arrow {
                    context: "dead letters".into(),
                    source: e,
                }
            })?;
        let rows = table_rows(
            &letters_struct,
            self.table.metadata().current_schema(),
            &name,
        )?;
        self.commits += 1;
        let prefix = format!("{}-dead-{}", uuid::Uuid::new_v4(), self.commits);
        let written = write_rows(&self.table, &rows, &prefix).await?;
        crate::fault::point("dead-letter.written");

        let state = StateChange {
            ranges: letters
                .iter()
                .map(|l| (l.topic.clone(), l.partition, l.offset, l.offset))
                .collect(),
            ..StateChange::default()
        };
        // an append stays right on whatever another writer (compaction,
        // expiry) commits meanwhile: a lost race commits it again on top
        let committed = Transaction::new(
            self.lake.catalog().as_ref(),
            self.lake.pointer(),
            self.table.clone(),
            Rebasable(SnapshotUpdate::new(Operation::Append, written.files)),
        )
        .state(state)
        .commit()
        .await?;
        self.lost_races += u64::from(committed.attempts - 1);
        self.table = committed.table;
        Ok(())
    }
}

/// topic, partition, offset, key, value, error, recorded_at.
fn schema() -> Result<Schema, iceberg::Error> {
    let field = |id, name: &str, ty, required| {
        let ty = Type::Primitive(ty);
        Arc::new(if required {
            NestedField::required(id, name, ty)
        } else {
            NestedField::optional(id, name, ty)
        })
    };
    Schema::builder()
        .with_fields([
            field(1, "topic", PrimitiveType::String, true),
            field(2, "partition", PrimitiveType::Int, true),
            field(3, "offset", PrimitiveType::Long, true),
            field(4, "key", PrimitiveType::Binary, false),
            field(5, "value", PrimitiveType::Binary, false),
            field(6, "error", PrimitiveType::String, true),
            field(7, "recorded_at", PrimitiveType::Timestamptz, true),
        ])
        .build()
}
