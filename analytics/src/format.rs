//! Query results as text: an aligned table for people, CSV or JSON lines
//! for other programs.

use std::io::Write;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::json::writer::LineDelimited;
use datafusion::arrow::json::WriterBuilder as JsonWriterBuilder;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::error::AnalyticsError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned table with a header.
    #[default]
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per row (JSON lines).
    Json,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown format {other:?} (table, csv, json)")),
        }
    }
}

/// Writes `batches` (of `schema`) to `out` in `format`. A result with no
/// rows still shows its header (in `table` and `csv`).
pub fn write_batches(
    out: &mut dyn Write,
    schema: &Schema,
    batches: &[RecordBatch],
    format: OutputFormat,
) -> Result<(), AnalyticsError> {
    let empty = batches.iter().all(|b| b.num_rows() == 0);
    let batches = &batches
        .iter()
        .map(printable)
        .collect::<Result<Vec<_>, _>>()?;
    let names = || -> Vec<&str> { schema.fields().iter().map(|f| f.name().as_str()).collect() };
    match format {
        OutputFormat::Table if empty => writeln!(out, "{}\n(no rows)", names().join(" | "))?,
        OutputFormat::Table => writeln!(out, "{}", pretty_format_batches(batches)?)?,
        OutputFormat::Csv if empty => {
            let header = RecordBatch::new_empty(Arc::new(schema.clone()));
            WriterBuilder::new()
                .with_header(true)
                .build(&mut *out)
                .write(&header)?;
        }
        OutputFormat::Csv => {
            let mut writer = WriterBuilder::new().with_header(true).build(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
        }
        OutputFormat::Json => {
            // a null is a value the reader should see, not a missing key
            let mut writer = JsonWriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, LineDelimited>(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
    }
    Ok(())
}

/// `batch` with dates and timestamps no calendar can print turned into
/// text: PostgreSQL's `infinity` and `-infinity` (which floe stores as the
/// largest and smallest values, as DuckDB does) by name, anything else
/// past chrono's range (about 262,000 years) as its number. Every writer
/// would fail on them otherwise.
fn printable(batch: &RecordBatch) -> Result<RecordBatch, AnalyticsError> {
    let mut fields: Vec<Field> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    let mut changed = false;
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match special_values(column)? {
            Some(text) => {
                changed = true;
                fields.push(Field::new(field.name(), DataType::Utf8, true));
                columns.push(Arc::new(text));
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    if !changed {
        return Ok(batch.clone());
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The column as text, if it holds a date or timestamp chrono cannot hold.
fn special_values(column: &ArrayRef) -> Result<Option<StringArray>, AnalyticsError> {
    let special: Vec<Option<String>> = match column.data_type() {
        DataType::Date32 => {
            let days = column.as_any().downcast_ref::<Date32Array>();
            let Some(days) = days else { return Ok(None) };
            days.iter()
                .map(|d| {
                    d.and_then(|d| match d {
                        i32::MAX => Some("infinity".to_string()),
                        d if d == -i32::MAX => Some("-infinity".to_string()),
                        d if d.unsigned_abs() > 95_000_000 => {
                            Some(format!("{d} days after 1970-01-01"))
                        }
                        _ => None,
                    })
                })
                .collect()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let us = column.as_any().downcast_ref::<TimestampMicrosecondArray>();
            let Some(us) = us else { return Ok(None) };
            us.iter()
                .map(|v| {
                    v.and_then(|v| match v {
                        i64::MAX => Some("infinity".to_string()),
                        v if v == -i64::MAX => Some("-infinity".to_string()),
                        v if v.unsigned_abs() > 8_200_000_000_000_000_000 => {
                            Some(format!("{v} µs after 1970-01-01"))
                        }
                        _ => None,
                    })
                })
                .collect()
        }
        _ => return Ok(None),
    };
    if special.iter().all(Option::is_none) {
        return Ok(None);
    }
    let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())?;
    let text: StringArray = (0..column.len())
        .map(|i| match &special[i] {
            Some(s) => Some(s.clone()),
            None if column.is_null(i) => None,
            None => Some(formatter.value(i).to_string()),
        })
        .collect();
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("zone", DataType::Utf8, true),
            Field::new("trips", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("JFK, Airport"), None])),
                Arc::new(Int64Array::from(vec![3, 4])),
            ],
        )
        .unwrap()
    }

    fn text(format: OutputFormat) -> String {
        let mut out = Vec::new();
        write_batches(&mut out, &batch().schema(), &[batch()], format).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_format_writes_every_row() {
        assert_eq!(
            text(OutputFormat::Csv),
            "zone,trips\n\"JFK, Airport\",3\n,4\n"
        );
        assert_eq!(
            text(OutputFormat::Json),
            "{\"zone\":\"JFK, Airport\",\"trips\":3}\n{\"zone\":null,\"trips\":4}\n"
        );
        let table = text(OutputFormat::Table);
        assert!(table.contains("| JFK, Airport | 3     |"), "{table}");
        assert_eq!(table.lines().count(), 6, "{table}");
    }

    #[test]
    fn infinite_dates_and_timestamps_print_as_postgres_does() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Date32Array::from(vec![
                    Some(i32::MAX),
                    Some(-i32::MAX),
                    Some(19_782),
                    None,
                ])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(i64::MAX),
                    Some(-i64::MAX),
                    Some(0),
                    None,
                ])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        write_batches(&mut out, &schema, &[batch], OutputFormat::Csv).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "d,t\ninfinity,infinity\n-infinity,-infinity\n2024-02-29,1970-01-01T00:00:00\n,\n"
        );
    }

    #[test]
    fn an_empty_result_keeps_its_header() {
        let schema = batch().schema();
        let mut out = Vec::new();
        write_batches(&mut out, &schema, &[], OutputFormat::Table).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "zone | trips\n(no rows)\n");
        let mut out = Vec::new();
        write_batches(&mut out, &schema, &[], OutputFormat::Csv).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "zone,trips\n");
    }
}
