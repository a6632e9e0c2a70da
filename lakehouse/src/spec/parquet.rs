//! Parquet writer settings from a table's properties.
//!
//! Iceberg keeps a table's file format settings in its properties, so that
//! every engine writing the table writes alike; floe reads the compression
//! ones, defaulting as Iceberg does since 1.4 (zstd), and refuses a codec
//! it cannot write instead of falling back silently. Files written under
//! other settings stay readable: the codec is recorded per column chunk.

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

/// A writer configured by `properties` (a table's), for table `table`
/// (named in errors).
pub fn writer_properties(
    properties: &HashMap<String, String>,
    table: &str,
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
    let codec = properties
        .get(COMPRESSION_CODEC)
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "zstd".into());
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
    Ok(WriterProperties::builder().set_compression(compression))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(pairs: &[(&str, &str)]) -> Result<Compression, LakehouseError> {
        let props = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(writer_properties(&props, "t")?
            .build()
            .compression(&parquet::schema::types::ColumnPath::from("c")))
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
