//! Query results as text: an aligned table for people, CSV or JSON lines
//! for other programs.

use std::io::Write;

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::json::LineDelimitedWriter;
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
            let mut writer = LineDelimitedWriter::new(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
    }
    Ok(())
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
            "{\"zone\":\"JFK, Airport\",\"trips\":3}\n{\"trips\":4}\n"
        );
        let table = text(OutputFormat::Table);
        assert!(table.contains("| JFK, Airport | 3     |"), "{table}");
        assert_eq!(table.lines().count(), 6, "{table}");
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
