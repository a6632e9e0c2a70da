//! Avro schema JSON, parsed into a tree that keeps the attributes Kafka
//! Connect adds (`connect.name`, `connect.type`, `connect.parameters`).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use thiserror::Error;

/// Why a schema text is not an Avro schema floe can decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    #[error("schema is not valid JSON: {0}")]
    Json(String),
    #[error("unknown Avro type {0:?}")]
    UnknownType(String),
    #[error("{what} is missing required attribute {attribute:?}")]
    MissingAttribute {
        what: String,
        attribute: &'static str,
    },
    #[error("named type {0:?} refers to itself; recursive schemas are not supported")]
    Recursive(String),
    #[error("invalid schema: {0}")]
    Invalid(String),
}

/// One node of an Avro schema with its Connect/Debezium annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct AvroSchema {
    pub ty: AvroType,
    /// `connect.name`: Debezium's semantic type, e.g. `io.debezium.time.MicroTimestamp`.
    pub connect_name: Option<String>,
    /// `connect.type`: the Connect integer width, e.g. `int16` for `smallint`.
    pub connect_type: Option<String>,
    /// Avro's `logicalType`, e.g. `decimal`, `timestamp-millis`.
    pub logical_type: Option<String>,
    pub precision: Option<u32>,
    pub scale: Option<u32>,
    /// `connect.parameters`, e.g. the allowed values of an enum.
    pub connect_parameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AvroType {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Record { name: String, fields: Vec<Field> },
    Enum { name: String, symbols: Vec<String> },
    Array(Box<AvroSchema>),
    Map(Box<AvroSchema>),
    Union(Vec<AvroSchema>),
    Fixed { name: String, size: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub schema: AvroSchema,
    /// The field's `default`, as JSON (Avro's default-value encoding).
    /// Debezium sets it to the column's default in the source table.
    pub default: Option<Value>,
}

impl AvroSchema {
    /// Parses an Avro schema document, resolving references to named types.
    pub fn parse(text: &str) -> Result<Self, SchemaError> {
        let json: Value =
            serde_json::from_str(text).map_err(|e| SchemaError::Json(e.to_string()))?;
        Parser::default().parse(&json, "")
    }

    fn plain(ty: AvroType) -> Self {
        Self {
            ty,
            connect_name: None,
            connect_type: None,
            logical_type: None,
            precision: None,
            scale: None,
            connect_parameters: BTreeMap::new(),
        }
    }

    /// For a union of `null` and one other type, the index of the null branch
    /// and the other branch. Debezium writes every optional column this way.
    pub fn as_nullable(&self) -> Option<(usize, &AvroSchema)> {
        match &self.ty {
            AvroType::Union(branches) if branches.len() == 2 => {
                match (&branches[0].ty, &branches[1].ty) {
                    (AvroType::Null, AvroType::Null) => None,
                    (AvroType::Null, _) => Some((0, &branches[1])),
                    (_, AvroType::Null) => Some((1, &branches[0])),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The record's fields, looking through a nullable union.
    pub fn record_fields(&self) -> Option<&[Field]> {
        match &self.ty {
            AvroType::Record { fields, .. } => Some(fields),
            _ => self
                .as_nullable()
                .and_then(|(_, inner)| inner.record_fields()),
        }
    }

    /// The full name of a record, enum or fixed, looking through a nullable union.
    pub fn type_name(&self) -> Option<&str> {
        match &self.ty {
            AvroType::Record { name, .. }
            | AvroType::Enum { name, .. }
            | AvroType::Fixed { name, .. } => Some(name),
            _ => self.as_nullable().and_then(|(_, inner)| inner.type_name()),
        }
    }
}

/// Tracks named types as they are defined so later references resolve.
#[derive(Default)]
struct Parser {
    named: HashMap<String, AvroSchema>,
    in_progress: Vec<String>,
}

fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}.{name}")
    }
}

fn attr_str(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_string)
}

fn attr_u32(obj: &Map<String, Value>, key: &str) -> Option<u32> {
    match obj.get(key)? {
        Value::Number(n) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl Parser {
    fn parse(&mut self, json: &Value, namespace: &str) -> Result<AvroSchema, SchemaError> {
        match json {
            Value::String(name) => self.primitive_or_reference(name, namespace),
            Value::Array(branches) => {
                let branches = branches
                    .iter()
                    .map(|b| self.parse(b, namespace))
                    .collect::<Result<Vec<_>, _>>()?;
                if branches.iter().any(|b| matches!(b.ty, AvroType::Union(_))) {
                    return Err(SchemaError::Invalid(
                        "a union may not directly contain a union".into(),
                    ));
                }
                Ok(AvroSchema::plain(AvroType::Union(branches)))
            }
            Value::Object(obj) => self.complex(obj, namespace),
            other => Err(SchemaError::Invalid(format!(
                "unexpected JSON {other} where a schema was expected"
            ))),
        }
    }

    fn primitive_or_reference(
        &mut self,
        name: &str,
        namespace: &str,
    ) -> Result<AvroSchema, SchemaError> {
        let ty = match name {
            "null" => AvroType::Null,
            "boolean" => AvroType::Boolean,
            "int" => AvroType::Int,
            "long" => AvroType::Long,
            "float" => AvroType::Float,
            "double" => AvroType::Double,
            "bytes" => AvroType::Bytes,
            "string" => AvroType::String,
            _ => {
                let qualified = full_name(name, namespace);
                for candidate in [qualified.as_str(), name] {
                    if let Some(found) = self.named.get(candidate) {
                        return Ok(found.clone());
                    }
                    if self.in_progress.iter().any(|n| n == candidate) {
                        return Err(SchemaError::Recursive(candidate.to_string()));
                    }
                }
                return Err(SchemaError::UnknownType(name.to_string()));
            }
        };
        Ok(AvroSchema::plain(ty))
    }

    fn complex(
        &mut self,
        obj: &Map<String, Value>,
        namespace: &str,
    ) -> Result<AvroSchema, SchemaError> {
        let type_attr = obj
            .get("type")
            .ok_or_else(|| SchemaError::MissingAttribute {
                what: "schema object".into(),
                attribute: "type",
            })?;
        let mut schema = match type_attr {
            Value::String(t) => match t.as_str() {
                "record" | "error" => self.record(obj, namespace)?,
                "enum" => {
                    let name = self.define_name(obj, namespace)?;
                    let symbols = obj
                        .get("symbols")
                        .and_then(Value::as_array)
                        .ok_or_else(|| SchemaError::MissingAttribute {
                            what: format!("enum {name}"),
                            attribute: "symbols",
                        })?
                        .iter()
                        .map(|s| s.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            SchemaError::Invalid(format!("enum {name} has a non-string symbol"))
                        })?;
                    let schema = AvroSchema::plain(AvroType::Enum {
                        name: name.clone(),
                        symbols,
                    });
                    self.named.insert(name, schema.clone());
                    schema
                }
                "fixed" => {
                    let name = self.define_name(obj, namespace)?;
                    let size = obj.get("size").and_then(Value::as_u64).ok_or_else(|| {
                        SchemaError::MissingAttribute {
                            what: format!("fixed {name}"),
                            attribute: "size",
                        }
                    })?;
                    let size = usize::try_from(size)
                        .map_err(|_| SchemaError::Invalid(format!("fixed {name} is too large")))?;
                    let schema = AvroSchema::plain(AvroType::Fixed {
                        name: name.clone(),
                        size,
                    });
                    self.named.insert(name, schema.clone());
                    schema
                }
                "array" => {
                    let items = obj
                        .get("items")
                        .ok_or_else(|| SchemaError::MissingAttribute {
                            what: "array".into(),
                            attribute: "items",
                        })?;
                    AvroSchema::plain(AvroType::Array(Box::new(self.parse(items, namespace)?)))
                }
                "map" => {
                    let values =
                        obj.get("values")
                            .ok_or_else(|| SchemaError::MissingAttribute {
                                what: "map".into(),
                                attribute: "values",
                            })?;
                    AvroSchema::plain(AvroType::Map(Box::new(self.parse(values, namespace)?)))
                }
                primitive => self.primitive_or_reference(primitive, namespace)?,
            },
            // {"type": {...}} or {"type": [...]}: a wrapped schema
            nested => self.parse(nested, namespace)?,
        };
        // Annotations sit on the object that carries them; keep any already
        // found on a wrapped schema.
        schema.connect_name = attr_str(obj, "connect.name").or(schema.connect_name);
        schema.connect_type = attr_str(obj, "connect.type").or(schema.connect_type);
        schema.logical_type = attr_str(obj, "logicalType").or(schema.logical_type);
        schema.precision = attr_u32(obj, "precision").or(schema.precision);
        schema.scale = attr_u32(obj, "scale").or(schema.scale);
        if let Some(Value::Object(params)) = obj.get("connect.parameters") {
            for (k, v) in params {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                schema.connect_parameters.insert(k.clone(), v);
            }
        }
        Ok(schema)
    }

    fn define_name(
        &self,
        obj: &Map<String, Value>,
        namespace: &str,
    ) -> Result<String, SchemaError> {
        let name = attr_str(obj, "name").ok_or_else(|| SchemaError::MissingAttribute {
            what: "named type".into(),
            attribute: "name",
        })?;
        let ns = attr_str(obj, "namespace").unwrap_or_else(|| namespace.to_string());
        Ok(full_name(&name, &ns))
    }

    fn record(
        &mut self,
        obj: &Map<String, Value>,
        namespace: &str,
    ) -> Result<AvroSchema, SchemaError> {
        let name = self.define_name(obj, namespace)?;
        let inner_ns = name
            .rsplit_once('.')
            .map(|(ns, _)| ns.to_string())
            .unwrap_or_default();
        let fields_json = obj.get("fields").and_then(Value::as_array).ok_or_else(|| {
            SchemaError::MissingAttribute {
                what: format!("record {name}"),
                attribute: "fields",
            }
        })?;
        self.in_progress.push(name.clone());
        let mut fields = Vec::with_capacity(fields_json.len());
        for f in fields_json {
            let f = f.as_object().ok_or_else(|| {
                SchemaError::Invalid(format!("record {name} has a field that is not an object"))
            })?;
            let field_name = attr_str(f, "name").ok_or_else(|| SchemaError::MissingAttribute {
                what: format!("a field of {name}"),
                attribute: "name",
            })?;
            let ty = f.get("type").ok_or_else(|| SchemaError::MissingAttribute {
                what: format!("field {name}.{field_name}"),
                attribute: "type",
            })?;
            fields.push(Field {
                name: field_name,
                schema: self.parse(ty, &inner_ns)?,
                default: f.get("default").cloned(),
            });
        }
        self.in_progress.pop();
        let schema = AvroSchema::plain(AvroType::Record {
            name: name.clone(),
            fields,
        });
        self.named.insert(name, schema.clone());
        Ok(schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_and_annotations_are_kept() {
        let text = r#"{"type":"record","name":"Envelope","namespace":"p.s.t","fields":[
            {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
                {"name":"id","type":"long"},
                {"name":"small","type":["null",{"type":"int","connect.type":"int16"}]},
                {"name":"amount","type":{"type":"bytes","scale":2,"precision":10,"logicalType":"decimal",
                   "connect.name":"org.apache.kafka.connect.data.Decimal","connect.parameters":{"scale":"2"}}}]}]},
            {"name":"after","type":["null","Value"]}]}"#;
        let schema = AvroSchema::parse(text).unwrap();
        let AvroType::Record { name, fields } = &schema.ty else {
            panic!("not a record")
        };
        assert_eq!(name, "p.s.t.Envelope");
        assert_eq!(
            fields[0].schema, fields[1].schema,
            "after must resolve to the same Value record"
        );
        let value = fields[1].schema.record_fields().unwrap();
        let (null_at, small) = value[1].schema.as_nullable().unwrap();
        assert_eq!(null_at, 0);
        assert_eq!(small.connect_type.as_deref(), Some("int16"));
        assert_eq!(value[2].schema.scale, Some(2));
        assert_eq!(value[2].schema.precision, Some(10));
        assert_eq!(
            value[2]
                .schema
                .connect_parameters
                .get("scale")
                .map(String::as_str),
            Some("2")
        );
    }

    #[test]
    fn bad_schemas_are_errors() {
        assert!(matches!(AvroSchema::parse("{"), Err(SchemaError::Json(_))));
        assert!(matches!(
            AvroSchema::parse(r#""Nope""#),
            Err(SchemaError::UnknownType(_))
        ));
        assert!(matches!(
            AvroSchema::parse(r#"{"type":"record","name":"R","fields":[{"name":"r","type":"R"}]}"#),
            Err(SchemaError::Recursive(_))
        ));
        assert!(matches!(
            AvroSchema::parse(r#"{"type":"array"}"#),
            Err(SchemaError::MissingAttribute { .. })
        ));
    }
}
