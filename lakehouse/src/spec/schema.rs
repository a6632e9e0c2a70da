//! Iceberg schemas for source tables, from the row type of their change
//! batches (the `after` image's Arrow fields, whose types follow
//! `docs/types.md`).

use arrow_schema::{Fields, Schema as ArrowSchema};
use iceberg::spec::Schema;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("column type has no Iceberg equivalent: {0}")]
    Unmappable(#[source] Box<iceberg::Error>),
    #[error("primary-key column {0:?} is not a column of the table")]
    UnknownKeyColumn(String),
    #[error("primary-key column {column:?} must be a required primitive column, but is {reason}")]
    BadKeyColumn {
        column: String,
        reason: &'static str,
    },
    #[error("invalid Iceberg schema: {0}")]
    Invalid(#[source] Box<iceberg::Error>),
    #[error(
        "column {column:?} changed type from {from} to {to}; Iceberg can only widen int to long, \
         float to double and a decimal's precision (same scale)"
    )]
    Incompatible {
        column: String,
        from: String,
        to: String,
    },
    #[error("{0}; floe cannot re-key a table")]
    KeyChanged(String),
}

/// The Iceberg schema for a source table whose rows have `fields`, with
/// the primary-key columns `key_fields` as identifier fields. Field ids are
/// assigned from 1 in column order.
pub fn table_schema(fields: &Fields, key_fields: &[String]) -> Result<Schema, SchemaError> {
    let arrow = ArrowSchema::new(fields.clone());
    let schema = iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&arrow)
        .map_err(|e| SchemaError::Unmappable(Box::new(e)))?;
    let mut ids = Vec::with_capacity(key_fields.len());
    for key in key_fields {
        let field = schema
            .field_by_name(key)
            .ok_or_else(|| SchemaError::UnknownKeyColumn(key.clone()))?;
        if !field.required {
            return Err(SchemaError::BadKeyColumn {
                column: key.clone(),
                reason: "nullable",
            });
        }
        if !field.field_type.is_primitive() {
            return Err(SchemaError::BadKeyColumn {
                column: key.clone(),
                reason: "not a primitive type",
            });
        }
        ids.push(field.id);
    }
    schema
        .into_builder()
        .with_identifier_field_ids(ids)
        .build()
        .map_err(|e| SchemaError::Invalid(Box::new(e)))
}

/// The Iceberg type of one Arrow column, as [`table_schema`] maps it.
pub fn iceberg_type(field: &arrow_schema::Field) -> Result<iceberg::spec::Type, SchemaError> {
    let single = table_schema(&Fields::from(vec![field.clone()]), &[])?;
    let ty = single
        .as_struct()
        .fields()
        .first()
        .map(|f| f.field_type.as_ref().clone());
    ty.ok_or_else(|| {
        let reason = format!("column {:?} has no Iceberg type", field.name());
        SchemaError::Invalid(Box::new(iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            reason,
        )))
    })
}

/// Whether two Iceberg types have the same shape: equal primitives, and
/// nested types whose fields match by name and type. Field ids and
/// nullability are ignored: a type built again from a batch has fresh ids.
pub fn same_type(a: &iceberg::spec::Type, b: &iceberg::spec::Type) -> bool {
    use iceberg::spec::Type;
    match (a, b) {
        (Type::Primitive(x), Type::Primitive(y)) => x == y,
        (Type::List(x), Type::List(y)) => {
            same_type(&x.element_field.field_type, &y.element_field.field_type)
        }
        (Type::Map(x), Type::Map(y)) => {
            same_type(&x.key_field.field_type, &y.key_field.field_type)
                && same_type(&x.value_field.field_type, &y.value_field.field_type)
        }
        (Type::Struct(x), Type::Struct(y)) => {
            x.fields().len() == y.fields().len()
                && x.fields()
                    .iter()
                    .zip(y.fields())
                    .all(|(f, g)| f.name == g.name && same_type(&f.field_type, &g.field_type))
        }
        _ => false,
    }
}

/// Whether values of type `from` can be read as `to` without loss, as the
/// Iceberg spec allows a column type to be promoted.
pub fn is_widening(from: &iceberg::spec::Type, to: &iceberg::spec::Type) -> bool {
    use iceberg::spec::{PrimitiveType as P, Type};
    match (from, to) {
        (Type::Primitive(P::Int), Type::Primitive(P::Long)) => true,
        (Type::Primitive(P::Float), Type::Primitive(P::Double)) => true,
        (
            Type::Primitive(P::Decimal {
                precision: p1,
                scale: s1,
            }),
            Type::Primitive(P::Decimal {
                precision: p2,
                scale: s2,
            }),
        ) => s1 == s2 && p2 > p1,
        _ => false,
    }
}
