//! Query results as text: an aligned table for people, CSV or JSON lines
//! for other programs.

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder;
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

/// Writes `batches` to `out` in `format`. A table with no rows still
/// shows its header (in `table` and `csv`).
pub fn write_batches(
    out: &mut dyn Write,
    batches: &[RecordBatch],
    format: OutputFormat,
) -> Result<(), AnalyticsError> {
    match format {
        OutputFormat::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                if let Some(first) = batches.first() {
                    let names: Vec<&str> = first
                        .schema_ref()
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect();
                    writeln!(out, "{}\n(no rows)", names.join(" | "))?;
                }
                return Ok(());
            }
            writeln!(out, "{}", pretty_format_batches(batches)?)?;
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
        write_batches(&mut out, &[batch()], format).unwrap();
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
        let empty = batch().slice(0, 0);
        let mut out = Vec::new();
        write_batches(&mut out, &[empty], OutputFormat::Table).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "zone | trips\n(no rows)\n");
    }
}
