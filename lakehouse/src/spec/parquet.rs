//! Parquet writer settings from a table's properties.
//!
//! Iceberg keeps a table's file format settings in its properties, so that
//! every engine writing the table writes alike; floe reads the compression
//! ones, defaulting as Iceberg does since 1.4 (zstd), and refuses a codec
//! it cannot write instead of falling back silently. Files written under
//! other settings stay readable: the codec is recorded per column chunk.
//!
//! One refinement, the one LSM stores make (RocksDB's per-level
//! compression: none or a fast codec for the first level, zstd for the
//! levels that last): a CDC commit's own small files ([`FileTier::Fresh`],
//! fewer than [`FRESH_SMALL_ROWS`] rows) live only until compaction merges
//! them, and zstd's fixed cost per page (a context and Huffman tables for
//! every column chunk) made applying batches of 10,000 changes over a month
//! of partitions 20% slower than uncompressed files
//! (docs/benchmarks.md). Unless the table names a codec itself, they are
//! written with snappy, without dictionaries (a dictionary page of a few
//! hundred rows costs more than it saves); everything that stays (larger
//! commits, compaction's output, job results, batch loads) is zstd.

use std::collections::HashMap;

use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};

use crate::error::LakehouseError;

/// The table property naming the codec of new data and delete files.
pub const COMPRESSION_CODEC: &str = "write.parquet.compression-codec";
/// The table property setting the codec's level (zstd: 1 to 22).
pub const COMPRESSION_LEVEL: &str = "write.parquet.compression-level";

/// The zstd level used when the table sets none: the level of Parquet's
/// Java writer, which Spark and Trino use for Iceberg tables.
const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// A file with fewer rows than this, written by a CDC commit, is small:
/// see [`FileTier`].
pub const FRESH_SMALL_ROWS: usize = 10_000;

/// Whether a file is written to last, or to be merged soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileTier {
    /// A CDC commit's data and delete files: ingest writes many small ones
    /// and compaction rewrites them.
    Fresh,
    /// Files that stay as written: compaction's output, job results, batch
    /// loads, dead letters, a schema change's rewrite.
    Settled,
}

/// A writer configured by `properties` (a table's), for a file of tier
/// `tier` holding `rows` rows, of table `table` (named in errors).
pub fn writer_properties(
    properties: &HashMap<String, String>,
    table: &str,
    tier: FileTier,
    rows: usize,
) -> Result<WriterPropertiesBuilder, LakehouseError> {
    let refuse = |reason: String| LakehouseError::TableProperty {
        table: table.to_string(),
        reason,
    };
    let level = properties
        .get(COMPRESSION_LEVEL)
        .map(|v| {
            v.trim()
                .parse::<i32>()
                .map_err(|_| refuse(format!("{COMPRESSION_LEVEL} = {v:?} is not a number")))
        })
        .transpose()?;
    let small = tier == FileTier::Fresh && rows < FRESH_SMALL_ROWS;
    let codec = match properties.get(COMPRESSION_CODEC) {
        Some(c) => c.trim().to_ascii_lowercase(),
        None if small => "snappy".into(),
        None => "zstd".into(),
    };
    let compression = match codec.as_str() {
        "zstd" => {
            let level = level.unwrap_or(DEFAULT_ZSTD_LEVEL);
            Compression::ZSTD(ZstdLevel::try_new(level).map_err(|_| {
                refuse(format!(
                    "{COMPRESSION_LEVEL} = {level} is outside zstd's levels 1 to 22"
                ))
            })?)
        }
        "snappy" => Compression::SNAPPY,
        "uncompressed" | "none" => Compression::UNCOMPRESSED,
        other => {
            return Err(refuse(format!(
                "{COMPRESSION_CODEC} = {other:?}: floe writes zstd, snappy or uncompressed"
            )))
        }
    };
    Ok(WriterProperties::builder()
        .set_compression(compression)
        .set_dictionary_enabled(!small))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        pairs: &[(&str, &str)],
        tier: FileTier,
        rows: usize,
    ) -> Result<(Compression, bool), LakehouseError> {
        let props = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let built = writer_properties(&props, "t", tier, rows)?.build();
        let column = parquet::schema::types::ColumnPath::from("c");
        Ok((
            built.compression(&column),
            built.dictionary_enabled(&column),
        ))
    }

    fn codec(pairs: &[(&str, &str)]) -> Result<Compression, LakehouseError> {
        Ok(settings(pairs, FileTier::Settled, 1)?.0)
    }

    #[test]
    fn a_commits_small_files_are_snappy_unless_the_table_names_a_codec() {
        let zstd3 = Compression::ZSTD(ZstdLevel::try_new(3).unwrap());
        let small = FRESH_SMALL_ROWS - 1;
        assert_eq!(
            settings(&[], FileTier::Fresh, small).unwrap(),
            (Compression::SNAPPY, false)
        );
        // the boundary, and what stays, are zstd with dictionaries
        assert_eq!(
            settings(&[], FileTier::Fresh, FRESH_SMALL_ROWS).unwrap(),
            (zstd3, true)
        );
        assert_eq!(
            settings(&[], FileTier::Settled, small).unwrap(),
            (zstd3, true)
        );
        // the table's own word wins, even for small files
        assert_eq!(
            settings(&[(COMPRESSION_CODEC, "zstd")], FileTier::Fresh, small).unwrap(),
            (zstd3, false)
        );
        assert_eq!(
            settings(
                &[(COMPRESSION_CODEC, "uncompressed")],
                FileTier::Fresh,
                small
            )
            .unwrap()
            .0,
            Compression::UNCOMPRESSED
        );
    }

    #[test]
    fn zstd_unless_the_table_says_otherwise() {
        assert_eq!(
            codec(&[]).unwrap(),
            Compression::ZSTD(ZstdLevel::try_new(3).unwrap())
        );
        assert_eq!(
            codec(&[(COMPRESSION_CODEC, "ZSTD"), (COMPRESSION_LEVEL, "9")]).unwrap(),
            Compression::ZSTD(ZstdLevel::try_new(9).unwrap())
        );
        assert_eq!(
            codec(&[(COMPRESSION_CODEC, "snappy")]).unwrap(),
            Compression::SNAPPY
        );
        assert_eq!(
            codec(&[(COMPRESSION_CODEC, "uncompressed")]).unwrap(),
            Compression::UNCOMPRESSED
        );
    }

    #[test]
    fn a_codec_floe_cannot_write_is_refused_not_replaced() {
        for bad in [
            vec![(COMPRESSION_CODEC, "lz4")],
            vec![(COMPRESSION_CODEC, "zstd"), (COMPRESSION_LEVEL, "99")],
            vec![(COMPRESSION_LEVEL, "high")],
        ] {
            let e = codec(&bad).unwrap_err();
            assert!(!e.is_retryable(), "{e}");
            assert!(e.to_string().contains("write.parquet.compression"), "{e}");
        }
    }
}
