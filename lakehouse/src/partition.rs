//! Partition specs from configuration strings such as `day(pickup_datetime)`
//! or `bucket[16](trip_id)`.

use std::str::FromStr;

use iceberg::spec::{PartitionSpec, Schema, Transform};

use crate::error::LakehouseError;

/// One parsed partition field: a transform of a source column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionField {
    pub transform: Transform,
    pub column: String,
}

impl PartitionField {
    /// Parses `transform(column)` or a bare `column` (identity).
    pub fn parse(text: &str) -> Result<Self, LakehouseError> {
        let bad = |why: &str| LakehouseError::PartitionSpec {
            field: text.to_string(),
            reason: why.to_string(),
        };
        let text_trimmed = text.trim();
        let Some(open) = text_trimmed.find('(') else {
            if text_trimmed.is_empty() {
                return Err(bad("empty partition field"));
            }
            return Ok(Self {
                transform: Transform::Identity,
                column: text_trimmed.to_string(),
            });
        };
        let column = text_trimmed[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| bad("expected `transform(column)`"))?
            .trim();
        if column.is_empty() {
            return Err(bad("no column inside the parentheses"));
        }
        let name = text_trimmed[..open].trim();
        let transform = Transform::from_str(name).map_err(|_| {
            bad("unknown transform; use identity, year, month, day, hour, bucket[N], truncate[W] or void")
        })?;
        Ok(Self {
            transform,
            column: column.to_string(),
        })
    }

    /// The partition field's name, as Iceberg's Java and Python libraries
    /// name them: `pickup_datetime_day`, `trip_id_bucket`, `name_trunc`.
    pub fn field_name(&self) -> String {
        let suffix = match self.transform {
            Transform::Identity => return self.column.clone(),
            Transform::Year => "year",
            Transform::Month => "month",
            Transform::Day => "day",
            Transform::Hour => "hour",
            Transform::Bucket(_) => "bucket",
            Transform::Truncate(_) => "trunc",
            Transform::Void => "null",
            Transform::Unknown => "unknown",
        };
        format!("{}_{suffix}", self.column)
    }
}

/// Builds the partition spec for `schema` from configured fields, checking
/// each column exists and each transform suits its type.
pub fn partition_spec(schema: &Schema, fields: &[String]) -> Result<PartitionSpec, LakehouseError> {
    let mut builder = PartitionSpec::builder(schema.clone());
    for text in fields {
        let field = PartitionField::parse(text)?;
        let source =
            schema
                .field_by_name(&field.column)
                .ok_or_else(|| LakehouseError::PartitionSpec {
                    field: text.clone(),
                    reason: format!("no column {:?} in the table", field.column),
                })?;
        field
            .transform
            .result_type(&source.field_type)
            .map_err(|e| LakehouseError::PartitionSpec {
                field: text.clone(),
                reason: format!(
                    "{} cannot partition column {:?} of type {}: {e}",
                    field.transform, field.column, source.field_type
                ),
            })?;
        builder = builder
            .add_partition_field(&field.column, field.field_name(), field.transform)
            .map_err(|e| LakehouseError::PartitionSpec {
                field: text.clone(),
                reason: e.to_string(),
            })?;
    }
    builder.build().map_err(|e| LakehouseError::PartitionSpec {
        field: fields.join(", "),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_transform() {
        let cases = [
            ("trip_id", Transform::Identity, "trip_id"),
            ("identity(trip_id)", Transform::Identity, "trip_id"),
            ("year(t)", Transform::Year, "t_year"),
            ("month(t)", Transform::Month, "t_month"),
            (
                "day(pickup_datetime)",
                Transform::Day,
                "pickup_datetime_day",
            ),
            ("hour(t)", Transform::Hour, "t_hour"),
            (
                "bucket[16](trip_id)",
                Transform::Bucket(16),
                "trip_id_bucket",
            ),
            ("truncate[4]( name )", Transform::Truncate(4), "name_trunc"),
            ("void(x)", Transform::Void, "x_null"),
        ];
        for (text, transform, name) in cases {
            let f = PartitionField::parse(text).unwrap();
            assert_eq!(f.transform, transform, "{text}");
            assert_eq!(f.field_name(), name, "{text}");
        }
        for bad in ["", "day(", "day()", "weekly(t)", "bucket(t)"] {
            assert!(
                PartitionField::parse(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }
}
