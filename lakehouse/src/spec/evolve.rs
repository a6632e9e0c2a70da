//! How a table's schema follows its source table's: what changed between
//! the table's columns and a change batch's row type ([`plan`]), and the
//! table's next schema ([`Evolution::apply`]), which commits in the same
//! snapshot as the batch's rows.
//!
//! Debezium says nothing about DDL; each event carries its row type, and
//! PostgreSQL keeps column order (added columns come last, a dropped
//! column's slot disappears, a renamed column keeps its place). So the
//! batch's columns are aligned with the table's, front to back:
//!
//! * a column in both, in the same order, is the same column (its type may
//!   have been widened, or it may have become nullable);
//! * a table column missing from the batch, where the batch has a column
//!   the table lacks, of the same type, was renamed (Iceberg keeps its field
//!   id, so its values stay);
//! * any other table column missing from the batch, or found only later in
//!   it (dropped and added again under the same name), was dropped: it
//!   leaves the current schema, so old values never come back under a new
//!   column of the same name; time travel still reads them;
//! * batch columns left over are new, with fresh field ids.
//!
//! A drop of the last column followed by an add of one of the same type,
//! with no change to the table in between, looks exactly like a rename and
//! is taken as one (`docs/types.md`).

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_schema::{Field, Fields};
use iceberg::spec::{ListType, MapType, NestedField, NestedFieldRef, Schema, StructType, Type};

use crate::spec::schema::{iceberg_type, is_widening, same_type, SchemaError};

/// A column new to the table.
#[derive(Debug, Clone)]
pub struct AddedColumn {
    pub name: String,
    /// Its type, with field ids still to be assigned ([`Evolution::apply`]).
    pub ty: Type,
    /// What rows that existed before it hold, when the source says
    /// (a one-row array of the batch's type; see `ingest::ChangeBatch::defaults`).
    pub default: Option<ArrayRef>,
}

/// What changed between a table's schema and a batch's row type.
#[derive(Debug, Clone, Default)]
pub struct Evolution {
    pub added: Vec<AddedColumn>,
    /// Field ids of dropped columns.
    pub dropped: Vec<i32>,
    /// Field id and new name.
    pub renamed: Vec<(i32, String)>,
    /// Field id and wider type (int to long, float to double, decimal
    /// precision up).
    pub widened: Vec<(i32, Type)>,
    /// Required columns that became nullable at the source.
    pub made_optional: Vec<i32>,
}

impl Evolution {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.dropped.is_empty()
            && self.renamed.is_empty()
            && self.widened.is_empty()
            && self.made_optional.is_empty()
    }

    /// Columns added with a default that old rows must be given.
    pub fn defaults(&self) -> impl Iterator<Item = (&str, &ArrayRef)> {
        self.added
            .iter()
            .filter_map(|c| Some((c.name.as_str(), c.default.as_ref()?)))
    }

    /// The schema after this change: kept columns keep their field ids,
    /// new ones get ids above `last_column_id` (the table's, so an id is
    /// never reused), identifier fields stay.
    pub fn apply(&self, schema: &Schema, last_column_id: i32) -> Result<Schema, SchemaError> {
        let mut next_id = last_column_id.max(schema.highest_field_id()) + 1;
        let mut fields: Vec<NestedFieldRef> = Vec::new();
        for field in schema.as_struct().fields() {
            if self.dropped.contains(&field.id) {
                continue;
            }
            let mut field = field.as_ref().clone();
            if let Some((_, name)) = self.renamed.iter().find(|(id, _)| *id == field.id) {
                field.name = name.clone();
            }
            if let Some((_, ty)) = self.widened.iter().find(|(id, _)| *id == field.id) {
                field.field_type = Box::new(ty.clone());
            }
            if self.made_optional.contains(&field.id) {
                field.required = false;
            }
            fields.push(Arc::new(field));
        }
        for column in &self.added {
            let id = next_id;
            next_id += 1;
            let ty = with_fresh_ids(&column.ty, &mut next_id);
            // added columns are optional: rows written before have none
            fields.push(Arc::new(NestedField::optional(id, &column.name, ty)));
        }
        Schema::builder()
            .with_schema_id(schema.schema_id() + 1)
            .with_fields(fields)
            .with_identifier_field_ids(schema.identifier_field_ids())
            .build()
            .map_err(|e| SchemaError::Invalid(Box::new(e)))
    }

    /// One line for the log: what changed, by column name.
    pub fn describe(&self, schema: &Schema) -> String {
        let name = |id: i32| schema.name_by_field_id(id).unwrap_or("?").to_string();
        let mut parts = Vec::new();
        for c in &self.added {
            let default = if c.default.is_some() {
                " (with a default)"
            } else {
                ""
            };
            parts.push(format!("added {}{default}", c.name));
        }
        for id in &self.dropped {
            parts.push(format!("dropped {}", name(*id)));
        }
        for (id, to) in &self.renamed {
            parts.push(format!("renamed {} to {to}", name(*id)));
        }
        for (id, ty) in &self.widened {
            parts.push(format!("widened {} to {ty}", name(*id)));
        }
        for id in &self.made_optional {
            parts.push(format!("made {} nullable", name(*id)));
        }
        parts.join(", ")
    }
}

/// What the batch's row type (`fields`, with the source's column
/// `defaults`) changes in the table's `schema`. Columns named in `keep`
/// (floe's own, such as a changelog's `_op`) and columns the partition
/// spec is built on (`partition_sources`, field ids) are never dropped: a
/// dropped partition source stays in the table, null in new rows.
///
/// Errors, which no retry can fix: a type change Iceberg cannot make (text
/// to integer, a decimal's scale) and a dropped or retyped primary-key
/// column.
pub fn plan(
    schema: &Schema,
    fields: &Fields,
    defaults: &std::collections::BTreeMap<String, ArrayRef>,
    keep: &[&str],
    partition_sources: &[i32],
) -> Result<Evolution, SchemaError> {
    let table: Vec<&NestedFieldRef> = schema
        .as_struct()
        .fields()
        .iter()
        .filter(|f| !keep.contains(&f.name.as_str()))
        .collect();
    let batch: Vec<&Arc<Field>> = fields.iter().collect();
    let in_batch: HashSet<&str> = batch.iter().map(|f| f.name().as_str()).collect();
    let in_table: HashSet<&str> = table.iter().map(|f| f.name.as_str()).collect();
    let identifier: HashSet<i32> = schema.identifier_field_ids().collect();

    let mut evolution = Evolution::default();
    let mut added: Vec<&Arc<Field>> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < table.len() {
        let column = table[i];
        let next = batch.get(j).copied();
        match next {
            Some(f) if f.name() == &column.name => {
                compare(column, f, &identifier, &mut evolution)?;
                i += 1;
                j += 1;
            }
            // a column added in the middle (not Postgres, whose new columns
            // come last, but other sources can)
            Some(f)
                if !in_table.contains(f.name().as_str())
                    && in_batch.contains(column.name.as_str()) =>
            {
                added.push(f);
                j += 1;
            }
            Some(f)
                if !in_table.contains(f.name().as_str())
                    && !in_batch.contains(column.name.as_str())
                    && same_type(&column.field_type, &iceberg_type(f)?) =>
            {
                evolution.renamed.push((column.id, f.name().clone()));
                compare(column, f, &identifier, &mut evolution)?;
                i += 1;
                j += 1;
            }
            _ => {
                drop_column(column, &identifier, partition_sources, &mut evolution)?;
                i += 1;
            }
        }
    }
    added.extend(batch[j..].iter().copied());
    for f in added {
        evolution.added.push(AddedColumn {
            name: f.name().clone(),
            ty: iceberg_type(f)?,
            default: defaults.get(f.name()).cloned(),
        });
    }
    Ok(evolution)
}

/// The same column in table and batch: its type may have widened, or it
/// may have become nullable.
fn compare(
    column: &NestedField,
    field: &Field,
    identifier: &HashSet<i32>,
    evolution: &mut Evolution,
) -> Result<(), SchemaError> {
    let incoming = iceberg_type(field)?;
    if !same_type(&column.field_type, &incoming) {
        if identifier.contains(&column.id) {
            return Err(SchemaError::KeyChanged(format!(
                "primary-key column {:?} changed type from {} to {incoming}",
                column.name, column.field_type
            )));
        }
        if is_widening(&column.field_type, &incoming) {
            evolution.widened.push((column.id, incoming));
        } else if !is_widening(&incoming, &column.field_type) {
            // (a batch from before a widening is cast up when written)
            return Err(SchemaError::Incompatible {
                column: column.name.clone(),
                from: column.field_type.to_string(),
                to: incoming.to_string(),
            });
        }
    }
    if column.required && field.is_nullable() && !identifier.contains(&column.id) {
        evolution.made_optional.push(column.id);
    }
    Ok(())
}

fn drop_column(
    column: &NestedField,
    identifier: &HashSet<i32>,
    partition_sources: &[i32],
    evolution: &mut Evolution,
) -> Result<(), SchemaError> {
    if identifier.contains(&column.id) {
        return Err(SchemaError::KeyChanged(format!(
            "primary-key column {:?} is gone from the source table",
            column.name
        )));
    }
    if partition_sources.contains(&column.id) {
        tracing::warn!(column = %column.name, "a column the table is partitioned by was dropped at the source; it stays in the lake, null in new rows");
        if column.required {
            evolution.made_optional.push(column.id);
        }
        return Ok(());
    }
    evolution.dropped.push(column.id);
    Ok(())
}

/// `ty` with every nested field given a new id from `next`.
fn with_fresh_ids(ty: &Type, next: &mut i32) -> Type {
    let fresh = |field: &NestedField, next: &mut i32| {
        let id = *next;
        *next += 1;
        let field_type = with_fresh_ids(&field.field_type, next);
        Arc::new(NestedField {
            id,
            field_type: Box::new(field_type),
            ..field.clone()
        })
    };
    match ty {
        Type::Primitive(_) => ty.clone(),
        Type::Struct(s) => Type::Struct(StructType::new(
            s.fields().iter().map(|f| fresh(f, next)).collect(),
        )),
        Type::List(l) => Type::List(ListType {
            element_field: fresh(&l.element_field, next),
        }),
        Type::Map(m) => {
            let key = fresh(&m.key_field, next);
            let value = fresh(&m.value_field, next);
            Type::Map(MapType {
                key_field: key,
                value_field: value,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow_schema::DataType;
    use iceberg::spec::PrimitiveType;

    use super::*;
    use crate::spec::schema::table_schema;

    fn fields(cols: &[(&str, DataType, bool)]) -> Fields {
        cols.iter()
            .map(|(n, t, nullable)| Field::new(*n, t.clone(), *nullable))
            .collect()
    }

    fn table(cols: &[(&str, DataType, bool)]) -> Schema {
        table_schema(&fields(cols), &["id".to_string()]).unwrap()
    }

    fn evolve(schema: &Schema, cols: &[(&str, DataType, bool)]) -> Result<Schema, SchemaError> {
        let e = plan(schema, &fields(cols), &BTreeMap::new(), &[], &[])?;
        e.apply(schema, schema.highest_field_id())
    }

    fn ids(schema: &Schema) -> Vec<(i32, String)> {
        schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| (f.id, f.name.clone()))
            .collect()
    }

    #[test]
    fn added_dropped_renamed_and_readded_columns() {
        use DataType::*;
        let t = table(&[("id", Int32, false), ("a", Utf8, true), ("b", Int32, true)]);
        // added last
        let t2 = evolve(
            &t,
            &[
                ("id", Int32, false),
                ("a", Utf8, true),
                ("b", Int32, true),
                ("c", Utf8, true),
            ],
        )
        .unwrap();
        assert_eq!(
            ids(&t2),
            [
                (1, "id".into()),
                (2, "a".into()),
                (3, "b".into()),
                (4, "c".into())
            ]
        );
        // a renamed in place keeps its id
        let t3 = evolve(
            &t2,
            &[
                ("id", Int32, false),
                ("a2", Utf8, true),
                ("b", Int32, true),
                ("c", Utf8, true),
            ],
        )
        .unwrap();
        assert_eq!(ids(&t3)[1], (2, "a2".into()));
        // b dropped
        let t4 = evolve(
            &t3,
            &[("id", Int32, false), ("a2", Utf8, true), ("c", Utf8, true)],
        )
        .unwrap();
        assert_eq!(
            ids(&t4),
            [(1, "id".into()), (2, "a2".into()), (4, "c".into())]
        );
        // a2 dropped and added again: moved to the end with a new id, so its
        // old values do not come back
        let t5 = evolve(
            &t4,
            &[("id", Int32, false), ("c", Utf8, true), ("a2", Utf8, true)],
        )
        .unwrap();
        assert_eq!(
            ids(&t5),
            [(1, "id".into()), (4, "c".into()), (5, "a2".into())]
        );
        // nothing changed: nothing to do
        let e = plan(
            &t5,
            &fields(&[("id", Int32, false), ("c", Utf8, true), ("a2", Utf8, true)]),
            &BTreeMap::new(),
            &[],
            &[],
        )
        .unwrap();
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn widening_nullability_and_refusals() {
        use DataType::*;
        let t = table(&[
            ("id", Int32, false),
            ("n", Int32, true),
            ("g", Utf8, false),
            ("d", Decimal128(8, 2), true),
        ]);
        let e = plan(
            &t,
            &fields(&[
                ("id", Int32, false),
                ("n", Int64, true),
                ("g", Utf8, true),
                ("d", Decimal128(14, 2), true),
            ]),
            &BTreeMap::new(),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(e.widened.len(), 2);
        assert_eq!(e.made_optional, [3]);
        let t2 = e.apply(&t, 4).unwrap();
        assert_eq!(
            *t2.field_by_id(2).unwrap().field_type,
            Type::Primitive(PrimitiveType::Long)
        );
        assert!(!t2.field_by_id(3).unwrap().required);
        // an older batch (narrower) needs nothing
        assert!(plan(
            &t2,
            &fields(&[
                ("id", Int32, false),
                ("n", Int32, true),
                ("g", Utf8, true),
                ("d", Decimal128(8, 2), true)
            ]),
            &BTreeMap::new(),
            &[],
            &[]
        )
        .unwrap()
        .is_empty());
        // text to integer, a decimal's scale: refused
        let err = plan(
            &t,
            &fields(&[
                ("id", Int32, false),
                ("n", Utf8, true),
                ("g", Utf8, false),
                ("d", Decimal128(8, 2), true),
            ]),
            &BTreeMap::new(),
            &[],
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, SchemaError::Incompatible { .. }), "{err}");
        assert!(plan(
            &t,
            &fields(&[
                ("id", Int32, false),
                ("n", Int32, true),
                ("g", Utf8, false),
                ("d", Decimal128(9, 3), true)
            ]),
            &BTreeMap::new(),
            &[],
            &[]
        )
        .is_err());
        // the key dropped or retyped
        assert!(matches!(
            plan(
                &t,
                &fields(&[("n", Int32, true)]),
                &BTreeMap::new(),
                &[],
                &[]
            ),
            Err(SchemaError::KeyChanged(_))
        ));
        assert!(matches!(
            plan(
                &t,
                &fields(&[("id", Utf8, false), ("n", Int32, true)]),
                &BTreeMap::new(),
                &[],
                &[]
            ),
            Err(SchemaError::KeyChanged(_))
        ));
    }

    #[test]
    fn nested_columns_compare_by_shape_and_get_fresh_ids() {
        use DataType::*;
        let list = List(Arc::new(Field::new("item", Int32, true)));
        let t = table(&[("id", Int32, false), ("xs", list.clone(), true)]);
        // the same list type built again (fresh element ids): no change
        let e = plan(
            &t,
            &fields(&[("id", Int32, false), ("xs", list.clone(), true)]),
            &BTreeMap::new(),
            &[],
            &[],
        )
        .unwrap();
        assert!(e.is_empty(), "{e:?}");
        let t2 = evolve(
            &t,
            &[
                ("id", Int32, false),
                ("xs", list.clone(), true),
                ("ys", list, true),
            ],
        )
        .unwrap();
        let Type::List(ys) = t2.field_by_name("ys").unwrap().field_type.as_ref() else {
            panic!("ys is a list")
        };
        assert!(
            ys.element_field.id > 3,
            "element id {} must be fresh",
            ys.element_field.id
        );
    }

    #[test]
    fn partition_sources_and_floes_own_columns_stay() {
        use DataType::*;
        let t = table(&[
            ("id", Int32, false),
            ("day", Date32, false),
            ("_op", Utf8, true),
        ]);
        let e = plan(
            &t,
            &fields(&[("id", Int32, false)]),
            &BTreeMap::new(),
            &["_op"],
            &[2],
        )
        .unwrap();
        assert!(e.dropped.is_empty());
        assert_eq!(e.made_optional, [2]);
    }
}
