//! Partition specs from configuration strings such as `day(pickup_datetime)`
//! or `bucket[16](trip_id)`.

use std::str::FromStr;

use iceberg::spec::{
    Literal, PartitionSpec, PrimitiveLiteral, PrimitiveType, Schema, Struct, Transform, Type,
};

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

/// The folder (below `data/`) of a partition's files: `name=value/...`,
/// as iceberg's `PartitionSpec::partition_to_path` writes it, except that a
/// date or timestamp too far out for a calendar (PostgreSQL's `infinity`,
/// stored as the largest value) is written as its number: iceberg's would
/// panic formatting it. Readers never parse the folder (manifests carry the
/// partition values), so only its name differs.
pub fn partition_path(
    spec: &PartitionSpec,
    partition: &Struct,
    schema: &Schema,
) -> Result<String, LakehouseError> {
    let partition_type =
        spec.partition_type(schema)
            .map_err(|e| LakehouseError::PartitionSpec {
                field: format!(
                    "{:?}",
                    spec.fields().iter().map(|f| &f.name).collect::<Vec<_>>()
                ),
                reason: e.to_string(),
            })?;
    let types = partition_type.fields();
    let parts: Vec<String> = spec
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let value = partition[i].as_ref();
            let text = match (value, types.get(i).map(|t| t.field_type.as_ref())) {
                (Some(Literal::Primitive(raw)), Some(Type::Primitive(ty)))
                    if !has_calendar(ty, raw) =>
                {
                    match raw {
                        PrimitiveLiteral::Int(v) => v.to_string(),
                        PrimitiveLiteral::Long(v) => v.to_string(),
                        other => format!("{other:?}"),
                    }
                }
                (value, Some(ty)) => field.transform.to_human_string(ty, value),
                (_, None) => "null".to_string(),
            };
            format!("{}={}", field.name, text)
        })
        .collect();
    Ok(parts.join("/"))
}

/// Whether a partition value of this type has a calendar form chrono can
/// print (about 262,000 years either side of year 0).
fn has_calendar(ty: &PrimitiveType, value: &PrimitiveLiteral) -> bool {
    const MAX_DAYS: i64 = 95_000_000;
    match (ty, value) {
        (PrimitiveType::Date, PrimitiveLiteral::Int(days)) => i64::from(*days).abs() <= MAX_DAYS,
        (PrimitiveType::Timestamp | PrimitiveType::Timestamptz, PrimitiveLiteral::Long(us)) => {
            us.unsigned_abs() <= (MAX_DAYS as u64) * 86_400_000_000
        }
        _ => true,
    }
}

/// `values` (partition values iceberg computed for `rows`) with every
/// `hour` value of a timestamp past what a 32-bit hour count holds (about
/// 245,000 years from 1970: PostgreSQL's `infinity`) set to the largest or
/// smallest one. iceberg 0.10.1 wraps such hours around, which would put
/// `infinity` among the earliest hours and let a reader's pruning skip it;
/// clamped, it sorts where it belongs.
pub fn clamp_hours(
    spec: &PartitionSpec,
    schema: &Schema,
    rows: &arrow_array::RecordBatch,
    values: &arrow_array::ArrayRef,
) -> iceberg::Result<arrow_array::ArrayRef> {
    use arrow_array::{Array, Int32Array, TimestampMicrosecondArray};
    let Some(values) = values.as_any().downcast_ref::<arrow_array::StructArray>() else {
        return Ok(values.clone());
    };
    let mut columns = values.columns().to_vec();
    let mut changed = false;
    for (i, field) in spec.fields().iter().enumerate() {
        if field.transform != Transform::Hour {
            continue;
        }
        let Some(source) = schema
            .name_by_field_id(field.source_id)
            .and_then(|n| rows.column_by_name(n))
            .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
        else {
            continue;
        };
        let Some(hours) = columns[i].as_any().downcast_ref::<Int32Array>() else {
            continue;
        };
        let clamped: Int32Array = source
            .iter()
            .zip(hours.iter())
            .map(|(us, h)| match us {
                Some(us) => {
                    let exact = us.div_euclid(3_600_000_000);
                    Some(exact.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
                }
                None => h,
            })
            .collect();
        if clamped != *hours {
            columns[i] = std::sync::Arc::new(clamped);
            changed = true;
        }
    }
    if !changed {
        return Ok(std::sync::Arc::new(values.clone()));
    }
    arrow_array::StructArray::try_new(values.fields().clone(), columns, values.nulls().cloned())
        .map(|s| std::sync::Arc::new(s) as arrow_array::ArrayRef)
        .map_err(|e| iceberg::Error::new(iceberg::ErrorKind::Unexpected, e.to_string()))
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

    fn timestamp_table() -> (Schema, arrow_array::RecordBatch) {
        use arrow_array::TimestampMicrosecondArray;
        let fields = arrow_schema::Fields::from(vec![arrow_schema::Field::new(
            "t",
            arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None),
            true,
        )]);
        let schema = crate::spec::schema::table_schema(&fields, &[]).unwrap();
        let arrow = iceberg::arrow::schema_to_arrow_schema(&schema).unwrap();
        // infinity, -infinity (as floe stores them), an ordinary hour, null
        let t = TimestampMicrosecondArray::from(vec![
            Some(i64::MAX),
            Some(-i64::MAX),
            Some(3_600_000_000 * 5 + 1),
            None,
        ]);
        let rows = arrow_array::RecordBatch::try_new(
            std::sync::Arc::new(arrow),
            vec![std::sync::Arc::new(t)],
        )
        .unwrap();
        (schema, rows)
    }

    #[test]
    fn hours_of_infinite_timestamps_sort_at_the_ends() {
        use arrow_array::{Array, Int32Array, StructArray};
        let (schema, rows) = timestamp_table();
        let spec = partition_spec(&schema, &["hour(t)".to_string()]).unwrap();
        let calculator = iceberg::arrow::PartitionValueCalculator::try_new(&spec, &schema).unwrap();
        let values = calculator.calculate(&rows).unwrap();
        let values = clamp_hours(&spec, &schema, &rows, &values).unwrap();
        let hours = values
            .as_any()
            .downcast_ref::<StructArray>()
            .unwrap()
            .column(0)
            .clone();
        let hours = hours.as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(hours.value(0), i32::MAX);
        assert_eq!(hours.value(1), i32::MIN);
        assert_eq!(hours.value(2), 5);
        assert!(hours.is_null(3));
    }

    #[test]
    fn folders_of_dates_no_calendar_has() {
        let (schema, _) = timestamp_table();
        let spec = partition_spec(&schema, &["day(t)".to_string()]).unwrap();
        let path = |days: i32| {
            let partition =
                Struct::from_iter([Some(Literal::Primitive(PrimitiveLiteral::Int(days)))]);
            partition_path(&spec, &partition, &schema).unwrap()
        };
        assert_eq!(path(19_782), "t_day=2024-02-29");
        // day(infinity): iceberg's own path would panic
        assert_eq!(path(106_751_991), "t_day=106751991");
        assert_eq!(path(-106_751_992), "t_day=-106751992");
    }
}
