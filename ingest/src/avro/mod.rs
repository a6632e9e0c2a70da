//! Just enough Avro to decode Debezium's records fast: a schema model that
//! keeps the Kafka Connect attributes (`connect.name`, `connect.type`,
//! `connect.parameters`) which carry Debezium's semantic types, and a
//! bounds-checked cursor over the binary encoding.
//!
//! apache-avro's own schema type drops those attributes on primitive types,
//! and its `Value` tree costs an allocation per field; floe compiles the
//! writer schema into a column decoder instead (see [`crate::column`]).

pub(crate) mod cursor;
mod default;
mod schema;
mod skip;

pub use cursor::{Cursor, CursorError};
pub use default::encode_default;
pub use schema::{AvroSchema, AvroType, Field, SchemaError};
pub use skip::{skip, SkipPlan};
