//! Column decoders compiled from an Avro writer schema.
//!
//! A [`Column`] knows how to read one Avro value of its schema and append it
//! to its own buffers, which become one Arrow array on [`Column::finish`].
//! The Avro-to-Arrow type mapping (documented in `docs/types.md`) lives in
//! [`Column::for_schema`]. Buffers can be cut back with
//! [`Column::truncate`], which is how a row that fails half-way is removed
//! again: a batch never holds part of a bad message.

use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, ListArray, MapArray, PrimitiveArray,
    StringArray, StructArray,
};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use thiserror::Error;

use crate::avro::{AvroSchema, AvroType, Cursor, CursorError};
use crate::semantic;

/// Arrow field metadata key holding the Debezium/Connect semantic type a
/// column was decoded from (e.g. `io.debezium.time.MicroDuration`).
pub const SEMANTIC_METADATA_KEY: &str = "floe.semantic";

/// Widest decimal Arrow's Decimal128 (and Iceberg) can hold.
const MAX_DECIMAL_PRECISION: u8 = 38;

/// Why a timestamp is [`ValueErrorKind::Unrepresentable`].
const TIMESTAMP_RANGE: &str = "Iceberg timestamps are 64-bit microseconds, from 290308 BC to \
     294247-01-10 (PostgreSQL goes on to 294276-12-31; Debezium overflows past 294247)";

/// A value that could not be decoded, with the path of the column it is in.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{}: {kind}", if path.is_empty() { "value".to_string() } else { path.join(".") })]
pub struct ValueError {
    pub path: Vec<String>,
    pub kind: ValueErrorKind,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ValueErrorKind {
    #[error("malformed Avro: {0}")]
    Malformed(#[from] CursorError),
    #[error("decimal value does not fit precision {precision}")]
    DecimalOverflow { precision: u8 },
    #[error("{semantic} value {value:?} cannot be parsed")]
    BadSemanticValue {
        semantic: &'static str,
        value: String,
    },
    #[error("{semantic} value {value} is out of range")]
    OutOfRange { semantic: &'static str, value: i64 },
    #[error("{semantic} value {value} has sub-microsecond precision, which floe cannot store without loss")]
    SubMicrosecond { semantic: &'static str, value: i64 },
    /// A real value the lake cannot hold (e.g. a timestamp past what 64-bit
    /// microseconds reach): permanent, so the message is dead-lettered or
    /// floe stops, never retried.
    #[error(transparent)]
    Unrepresentable(Box<Unrepresentable>),
    #[error("column buffer exceeds 2 GiB; flush batches sooner")]
    BufferFull,
}

impl ValueError {
    fn new(kind: impl Into<ValueErrorKind>) -> Self {
        Self {
            path: Vec::new(),
            kind: kind.into(),
        }
    }

    /// Prefixes the path with the enclosing field's name.
    pub fn in_field(mut self, name: &str) -> Self {
        self.path.insert(0, name.to_string());
        self
    }
}

impl From<CursorError> for ValueError {
    fn from(e: CursorError) -> Self {
        Self::new(e)
    }
}

/// See [`ValueErrorKind::Unrepresentable`].
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{semantic} value {value} cannot be stored: {reason}")]
pub struct Unrepresentable {
    pub semantic: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl ValueErrorKind {
    fn unrepresentable(semantic: &'static str, value: String, reason: &'static str) -> Self {
        Self::Unrepresentable(Box::new(Unrepresentable {
            semantic,
            value,
            reason,
        }))
    }
}

/// A schema floe cannot map onto Arrow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("column {path}: {reason}")]
pub struct UnsupportedType {
    pub path: String,
    pub reason: String,
}

/// Scale of an integer time value relative to microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Millis,
    Micros,
    Nanos,
}

impl Unit {
    fn to_micros(self, v: i64, semantic: &'static str) -> Result<i64, ValueErrorKind> {
        match self {
            Unit::Micros => Ok(v),
            Unit::Millis => v
                .checked_mul(1000)
                .ok_or(ValueErrorKind::OutOfRange { semantic, value: v }),
            Unit::Nanos if v % 1000 == 0 => Ok(v / 1000),
            Unit::Nanos => Err(ValueErrorKind::SubMicrosecond { semantic, value: v }),
        }
    }
}

/// Variable-length bytes (Utf8 or Binary) with i32 offsets.
#[derive(Debug, Default)]
struct ByteStore {
    offsets: Vec<i32>,
    data: Vec<u8>,
}

impl ByteStore {
    fn new() -> Self {
        Self {
            offsets: vec![0],
            data: Vec::new(),
        }
    }

    #[inline]
    fn push(&mut self, bytes: &[u8]) -> Result<(), ValueErrorKind> {
        self.data.extend_from_slice(bytes);
        let end = i32::try_from(self.data.len()).map_err(|_| ValueErrorKind::BufferFull)?;
        self.offsets.push(end);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        let end = *self.offsets.last().unwrap_or(&0);
        self.data.truncate(end as usize);
    }

    fn last(&self) -> &[u8] {
        let n = self.offsets.len();
        if n < 2 {
            return &[];
        }
        &self.data[self.offsets[n - 2] as usize..self.offsets[n - 1] as usize]
    }

    fn take(&mut self) -> (OffsetBuffer<i32>, Buffer) {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let data = std::mem::take(&mut self.data);
        // Offsets start at 0 and only grow, so they are valid by construction.
        (
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from_vec(data),
        )
    }
}

/// What a column reads and how it stores it. One variant per Arrow layout;
/// variants that share a layout differ in how the Avro value is converted.
#[derive(Debug)]
enum Node {
    Bool(BooleanBufferBuilder),
    /// Avro int as Int32 (also Connect int8/int16).
    Int(Vec<i32>),
    /// Avro long as Int64 (also `MicroDuration`, in microseconds).
    Long(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    /// Days since the epoch, from an Avro int.
    Date(Vec<i32>),
    /// Time of day in microseconds, from an int (millis) or a long.
    Time {
        unit: Unit,
        from_int: bool,
        values: Vec<i64>,
    },
    /// Timestamp in microseconds, from a long. `debezium`: a Debezium or
    /// Connect timestamp of a Postgres column, whose infinity markers and
    /// range PostgreSQL defines ([`semantic::debezium_timestamp`]).
    Timestamp {
        unit: Unit,
        tz: Option<Arc<str>>,
        debezium: bool,
        values: Vec<i64>,
    },
    ZonedTimestamp(Vec<i64>),
    ZonedTime(Vec<i64>),
    Decimal {
        precision: u8,
        scale: i8,
        fixed: Option<usize>,
        values: Vec<i128>,
    },
    /// `io.debezium.data.VariableScaleDecimal` as exact decimal text.
    VariableScaleDecimal(ByteStore),
    /// A decimal wider than 38 digits (`numeric(p, s)` with p > 38), which
    /// neither Arrow's Decimal128 nor Iceberg can hold: exact decimal text.
    WideDecimal {
        scale: i32,
        fixed: Option<usize>,
        store: ByteStore,
    },
    /// `io.debezium.data.Bits` of a known length (`bit(n)`), as the text
    /// of its bits, as PostgreSQL prints it (`0101`). Debezium sends the
    /// bits as the little-endian bytes of the string's binary value.
    BitString {
        length: usize,
        store: ByteStore,
    },
    Utf8(ByteStore),
    Binary(ByteStore),
    Enum {
        symbols: Vec<String>,
        store: ByteStore,
    },
    Fixed {
        size: usize,
        data: Vec<u8>,
    },
    List {
        offsets: Vec<i32>,
        item: Box<Column>,
    },
    Map {
        offsets: Vec<i32>,
        keys: ByteStore,
        values: Box<Column>,
    },
    Struct(Vec<Column>),
}

/// Decodes values of one Avro schema into one Arrow array.
#[derive(Debug)]
pub struct Column {
    name: String,
    node: Node,
    /// For `["null", T]` unions: the index of the null branch.
    null_branch: Option<usize>,
    validity: BooleanBufferBuilder,
    len: usize,
    semantic: Option<String>,
}

impl Column {
    /// Compiles a column decoder for `schema`. Fails for schemas Debezium
    /// never writes (unions of several non-null types, bare nulls).
    pub fn for_schema(name: &str, schema: &AvroSchema) -> Result<Self, UnsupportedType> {
        let (null_branch, inner) = match &schema.ty {
            AvroType::Union(_) => match schema.as_nullable() {
                Some((i, inner)) => (Some(i), inner),
                None => {
                    return Err(UnsupportedType {
                        path: name.to_string(),
                        reason: "unions other than [null, T] are not supported".into(),
                    })
                }
            },
            _ => (None, schema),
        };
        let semantic = inner
            .connect_name
            .clone()
            .or_else(|| inner.logical_type.clone());
        let node = Self::node_for(name, inner)?;
        Ok(Self {
            name: name.to_string(),
            node,
            null_branch,
            validity: BooleanBufferBuilder::new(0),
            len: 0,
            semantic,
        })
    }

    fn node_for(name: &str, s: &AvroSchema) -> Result<Node, UnsupportedType> {
        let unsupported = |reason: String| UnsupportedType {
            path: name.to_string(),
            reason,
        };
        let connect = s.connect_name.as_deref().unwrap_or("");
        let logical = s.logical_type.as_deref().unwrap_or("");
        let node = match (&s.ty, connect, logical) {
            (AvroType::Int, "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date", _)
            | (AvroType::Int, _, "date") => Node::Date(Vec::new()),
            (AvroType::Int, "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time", _)
            | (AvroType::Int, _, "time-millis") => Node::Time {
                unit: Unit::Millis,
                from_int: true,
                values: Vec::new(),
            },
            (AvroType::Long, "io.debezium.time.MicroTime", _)
            | (AvroType::Long, _, "time-micros") => Node::Time {
                unit: Unit::Micros,
                from_int: false,
                values: Vec::new(),
            },
            (AvroType::Long, "io.debezium.time.NanoTime", _) => Node::Time {
                unit: Unit::Nanos,
                from_int: false,
                values: Vec::new(),
            },
            // Debezium's and Connect's timestamps carry no zone: they are
            // Postgres `timestamp` wall-clock values. A bare Avro
            // timestamp-* logical type means an instant, hence UTC.
            (
                AvroType::Long,
                "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp",
                _,
            )
            | (AvroType::Long, _, "local-timestamp-millis") => Node::Timestamp {
                unit: Unit::Millis,
                tz: None,
                debezium: !connect.is_empty(),
                values: Vec::new(),
            },
            (AvroType::Long, "io.debezium.time.MicroTimestamp", _)
            | (AvroType::Long, _, "local-timestamp-micros") => Node::Timestamp {
                unit: Unit::Micros,
                tz: None,
                debezium: !connect.is_empty(),
                values: Vec::new(),
            },
            (AvroType::Long, "io.debezium.time.NanoTimestamp", _)
            | (AvroType::Long, _, "local-timestamp-nanos") => Node::Timestamp {
                unit: Unit::Nanos,
                tz: None,
                debezium: !connect.is_empty(),
                values: Vec::new(),
            },
            (AvroType::Long, "", "timestamp-millis") => Node::Timestamp {
                unit: Unit::Millis,
                tz: Some("UTC".into()),
                debezium: false,
                values: Vec::new(),
            },
            (AvroType::Long, "", "timestamp-micros") => Node::Timestamp {
                unit: Unit::Micros,
                tz: Some("UTC".into()),
                debezium: false,
                values: Vec::new(),
            },
            (AvroType::Long, "", "timestamp-nanos") => Node::Timestamp {
                unit: Unit::Nanos,
                tz: Some("UTC".into()),
                debezium: false,
                values: Vec::new(),
            },
            (AvroType::String, "io.debezium.time.ZonedTimestamp", _) => {
                Node::ZonedTimestamp(Vec::new())
            }
            (AvroType::String, "io.debezium.time.ZonedTime", _) => Node::ZonedTime(Vec::new()),
            (AvroType::Record { fields, .. }, "io.debezium.data.VariableScaleDecimal", _) => {
                let ok = fields.len() == 2
                    && fields[0].name == "scale"
                    && fields[0].schema.ty == AvroType::Int
                    && fields[1].name == "value"
                    && fields[1].schema.ty == AvroType::Bytes;
                if !ok {
                    return Err(unsupported(
                        "VariableScaleDecimal must be {scale: int, value: bytes}".into(),
                    ));
                }
                Node::VariableScaleDecimal(ByteStore::new())
            }
            (
                AvroType::Bytes | AvroType::Fixed { .. },
                "org.apache.kafka.connect.data.Decimal",
                _,
            )
            | (AvroType::Bytes | AvroType::Fixed { .. }, _, "decimal") => {
                let scale = s
                    .scale
                    .or_else(|| {
                        s.connect_parameters
                            .get("scale")
                            .and_then(|v| v.parse().ok())
                    })
                    .unwrap_or(0);
                // Connect's converter writes precision 64 when the column has
                // none (e.g. money): that means "unknown", so use the widest
                // Arrow decimal and reject only values that do not fit.
                let declared = s
                    .connect_parameters
                    .get("connect.decimal.precision")
                    .and_then(|v| v.parse::<u32>().ok());
                let fixed = match s.ty {
                    AvroType::Fixed { size, .. } => Some(size),
                    _ => None,
                };
                // numeric(p, s) with p > 38: exact text (the converter's 64
                // without a declared precision means "unknown", see above)
                let wide = match declared {
                    Some(p) => p > u32::from(MAX_DECIMAL_PRECISION),
                    None => s
                        .precision
                        .is_some_and(|p| p > u32::from(MAX_DECIMAL_PRECISION) && p != 64),
                };
                if wide {
                    return Ok(Node::WideDecimal {
                        scale: i32::try_from(scale).map_err(|_| {
                            unsupported(format!("decimal scale {scale} is too large"))
                        })?,
                        fixed,
                        store: ByteStore::new(),
                    });
                }
                let precision = declared
                    .or(s.precision)
                    .unwrap_or(u32::from(MAX_DECIMAL_PRECISION))
                    .clamp(1, u32::from(MAX_DECIMAL_PRECISION))
                    as u8;
                let scale = i8::try_from(scale)
                    .ok()
                    .filter(|sc| *sc as u8 <= precision)
                    .ok_or_else(|| {
                        unsupported(format!(
                            "decimal scale {scale} does not fit precision {precision}"
                        ))
                    })?;
                Node::Decimal {
                    precision,
                    scale,
                    fixed,
                    values: Vec::new(),
                }
            }
            // bit(n): n is known, so the bits print exactly as in Postgres;
            // varbit's length is "unknown" (i32::MAX): its leading zeros are
            // lost in Debezium's encoding, so it stays bytes
            (AvroType::Bytes, "io.debezium.data.Bits", _)
                if s.connect_parameters
                    .get("length")
                    .and_then(|l| l.parse::<u32>().ok())
                    .is_some_and(|l| l < i32::MAX as u32) =>
            {
                let length = s
                    .connect_parameters
                    .get("length")
                    .and_then(|l| l.parse::<usize>().ok())
                    .unwrap_or(0);
                Node::BitString {
                    length,
                    store: ByteStore::new(),
                }
            }
            (AvroType::Boolean, ..) => Node::Bool(BooleanBufferBuilder::new(0)),
            (AvroType::Int, ..) => Node::Int(Vec::new()),
            (AvroType::Long, ..) => Node::Long(Vec::new()),
            (AvroType::Float, ..) => Node::Float(Vec::new()),
            (AvroType::Double, ..) => Node::Double(Vec::new()),
            (AvroType::String, ..) => Node::Utf8(ByteStore::new()),
            (AvroType::Bytes, ..) => Node::Binary(ByteStore::new()),
            (AvroType::Enum { symbols, .. }, ..) => Node::Enum {
                symbols: symbols.clone(),
                store: ByteStore::new(),
            },
            (AvroType::Fixed { size, .. }, ..) => {
                i32::try_from(*size)
                    .map_err(|_| unsupported(format!("fixed size {size} is too large")))?;
                Node::Fixed {
                    size: *size,
                    data: Vec::new(),
                }
            }
            (AvroType::Array(items), ..) => Node::List {
                offsets: vec![0],
                item: Box::new(Column::for_schema("item", items)?),
            },
            (AvroType::Map(values), ..) => Node::Map {
                offsets: vec![0],
                keys: ByteStore::new(),
                values: Box::new(Column::for_schema("value", values)?),
            },
            (AvroType::Record { fields, .. }, ..) => Node::Struct(
                fields
                    .iter()
                    .map(|f| {
                        Column::for_schema(&f.name, &f.schema).map_err(|e| unsupported_in(name, e))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (AvroType::Null, ..) => {
                return Err(unsupported("a column of type null carries no data".into()))
            }
            (AvroType::Union(_), ..) => {
                return Err(unsupported("nested unions are not supported".into()))
            }
        };
        Ok(node)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True for columns whose unchanged-TOAST placeholder Debezium sends as
    /// text or bytes (strings, bytes, JSON, arrays of strings), or, for
    /// arrays of integers, as the placeholder's bytes, one per element.
    pub fn can_carry_placeholder(&self) -> bool {
        match &self.node {
            Node::Utf8(_) | Node::Binary(_) => true,
            Node::List { item, .. } => {
                matches!(item.node, Node::Utf8(_) | Node::Int(_) | Node::Long(_))
            }
            _ => false,
        }
    }

    /// The Arrow field this column produces.
    pub fn field(&self) -> Field {
        let nullable = self.null_branch.is_some();
        let mut field = Field::new(&self.name, self.data_type(), nullable);
        if let Some(sem) = &self.semantic {
            field.set_metadata([(SEMANTIC_METADATA_KEY.to_string(), sem.clone())].into());
        }
        field
    }

    fn data_type(&self) -> DataType {
        match &self.node {
            Node::Bool(_) => DataType::Boolean,
            Node::Int(_) => DataType::Int32,
            Node::Long(_) => DataType::Int64,
            Node::Float(_) => DataType::Float32,
            Node::Double(_) => DataType::Float64,
            Node::Date(_) => DataType::Date32,
            Node::Time { .. } | Node::ZonedTime(_) => DataType::Time64(TimeUnit::Microsecond),
            Node::Timestamp { tz, .. } => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            Node::ZonedTimestamp(_) => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            Node::Decimal {
                precision, scale, ..
            } => DataType::Decimal128(*precision, *scale),
            Node::VariableScaleDecimal(_)
            | Node::WideDecimal { .. }
            | Node::BitString { .. }
            | Node::Utf8(_)
            | Node::Enum { .. } => DataType::Utf8,
            Node::Binary(_) => DataType::Binary,
            Node::Fixed { size, .. } => DataType::FixedSizeBinary(*size as i32),
            Node::List { item, .. } => DataType::List(Arc::new(item.field())),
            Node::Map { values, .. } => {
                DataType::Map(Arc::new(Self::map_entries(values.field())), false)
            }
            Node::Struct(children) => {
                DataType::Struct(children.iter().map(Column::field).collect())
            }
        }
    }

    fn map_entries(value: Field) -> Field {
        let fields = Fields::from(vec![Field::new("key", DataType::Utf8, false), value]);
        Field::new("entries", DataType::Struct(fields), false)
    }

    /// Children of a struct column, for callers that decode a record field
    /// by field (the envelope's row images).
    pub fn children_mut(&mut self) -> Option<&mut [Column]> {
        match &mut self.node {
            Node::Struct(children) => Some(children),
            _ => None,
        }
    }

    /// Reads one value of this column's schema (including its union branch,
    /// if nullable) and appends it.
    #[inline(always)]
    pub fn decode(&mut self, cur: &mut Cursor<'_>) -> Result<(), ValueError> {
        if let Some(null_branch) = self.null_branch {
            if cur
                .read_union_branch(2)
                .map_err(|e| ValueError::from(e).in_field(&self.name))?
                == null_branch
            {
                self.append_null();
                return Ok(());
            }
        }
        // Fast path, inlined into the row loop: the plain leaves that make up
        // most columns, without a call into the general decoder.
        let done = match &mut self.node {
            Node::Long(v)
            | Node::Timestamp {
                unit: Unit::Micros,
                debezium: false,
                values: v,
                ..
            } => {
                v.push(
                    cur.read_long()
                        .map_err(|e| ValueError::from(e).in_field(&self.name))?,
                );
                true
            }
            Node::Int(v) => {
                v.push(
                    cur.read_int()
                        .map_err(|e| ValueError::from(e).in_field(&self.name))?,
                );
                true
            }
            Node::Date(v) => {
                let days = cur
                    .read_int()
                    .map_err(|e| ValueError::from(e).in_field(&self.name))?;
                v.push(semantic::debezium_date(days));
                true
            }
            Node::Utf8(store) => {
                let text = cur
                    .read_str()
                    .map_err(|e| ValueError::from(e).in_field(&self.name))?;
                store
                    .push(text.as_bytes())
                    .map_err(|k| ValueError::new(k).in_field(&self.name))?;
                true
            }
            _ => false,
        };
        if !done {
            self.decode_value(cur).map_err(|e| e.in_field(&self.name))?;
        }
        self.validity.append(true);
        self.len += 1;
        Ok(())
    }

    /// Like [`Column::decode`], but if the value equals `placeholder` (a
    /// TOASTed value Debezium did not send) appends null and returns true.
    pub fn decode_or_placeholder(
        &mut self,
        cur: &mut Cursor<'_>,
        placeholder: &[u8],
    ) -> Result<bool, ValueError> {
        self.decode(cur)?;
        if !self.validity.get_bit(self.len - 1) {
            return Ok(false);
        }
        let is_placeholder = match &mut self.node {
            Node::Utf8(store) | Node::Binary(store) => store.last() == placeholder,
            Node::List { offsets, item } => {
                let n = offsets.len();
                let (start, end) = (offsets[n - 2] as usize, offsets[n - 1] as usize);
                let all_valid = (start..end).all(|i| item.validity.get_bit(i));
                let bytes = placeholder.iter().map(|&b| i64::from(b));
                all_valid
                    && match &item.node {
                        Node::Utf8(store) => end - start == 1 && store.last() == placeholder,
                        Node::Int(v) => v[start..end].iter().map(|&x| i64::from(x)).eq(bytes),
                        Node::Long(v) => v[start..end].iter().copied().eq(bytes),
                        _ => false,
                    }
            }
            _ => false,
        };
        if is_placeholder {
            let len = self.len;
            self.truncate(len - 1);
            self.append_null();
        }
        Ok(is_placeholder)
    }

    /// Whether the last appended value is non-null.
    pub fn is_valid_last(&self) -> bool {
        self.len > 0 && self.validity.get_bit(self.len - 1)
    }

    /// Reads a nullable row record (Debezium's `after`) field by field.
    /// Fields whose value is the unavailable-value `placeholder` are stored
    /// as null and their indices pushed to `unchanged`.
    pub fn decode_row_image(
        &mut self,
        cur: &mut Cursor<'_>,
        placeholder: &[u8],
        unchanged: &mut Vec<usize>,
    ) -> Result<(), ValueError> {
        if let Some(null_branch) = self.null_branch {
            if cur
                .read_union_branch(2)
                .map_err(|e| ValueError::from(e).in_field(&self.name))?
                == null_branch
            {
                self.append_null();
                return Ok(());
            }
        }
        let Node::Struct(children) = &mut self.node else {
            return self
                .decode_value(cur)
                .map_err(|e| e.in_field(&self.name))
                .map(|_| {
                    self.validity.append(true);
                    self.len += 1;
                });
        };
        Self::pad_children(self.len, children);
        for (i, child) in children.iter_mut().enumerate() {
            let result = if child.can_carry_placeholder() {
                child.decode_or_placeholder(cur, placeholder)
            } else {
                child.decode(cur).map(|_| false)
            };
            if result.map_err(|e| e.in_field(&self.name))? {
                unchanged.push(i);
            }
        }
        self.validity.append(true);
        self.len += 1;
        Ok(())
    }

    fn decode_value(&mut self, cur: &mut Cursor<'_>) -> Result<(), ValueError> {
        match &mut self.node {
            Node::Bool(b) => b.append(cur.read_bool()?),
            Node::Int(v) => v.push(cur.read_int()?),
            Node::Long(v) => v.push(cur.read_long()?),
            Node::Float(v) => v.push(cur.read_f32()?),
            Node::Double(v) => v.push(cur.read_f64()?),
            Node::Date(v) => v.push(semantic::debezium_date(cur.read_int()?)),
            Node::Time {
                unit,
                from_int,
                values,
            } => {
                let raw = if *from_int {
                    i64::from(cur.read_int()?)
                } else {
                    cur.read_long()?
                };
                let micros = unit.to_micros(raw, "time").map_err(ValueError::new)?;
                if !(0..=semantic::MICROS_PER_DAY).contains(&micros) {
                    return Err(ValueError::new(ValueErrorKind::OutOfRange {
                        semantic: "time",
                        value: raw,
                    }));
                }
                // PostgreSQL's 24:00:00 is past Iceberg's last time of day
                values.push(micros.min(semantic::LAST_TIME_OF_DAY));
            }
            Node::Timestamp {
                unit,
                debezium: false,
                values,
                ..
            } => values.push(
                unit.to_micros(cur.read_long()?, "timestamp")
                    .map_err(ValueError::new)?,
            ),
            Node::Timestamp {
                unit,
                debezium: true,
                values,
                ..
            } => {
                let raw = cur.read_long()?;
                let micros = unit.to_micros(raw, "timestamp");
                if let Err(e @ ValueErrorKind::SubMicrosecond { .. }) = micros {
                    return Err(ValueError::new(e));
                }
                let micros = semantic::debezium_timestamp(raw, micros.ok()).map_err(|_| {
                    ValueError::new(ValueErrorKind::unrepresentable(
                        "timestamp",
                        raw.to_string(),
                        TIMESTAMP_RANGE,
                    ))
                })?;
                values.push(micros);
            }
            Node::ZonedTimestamp(v) => {
                let text = cur.read_str()?;
                let micros = semantic::parse_zoned_timestamp(text).map_err(|e| {
                    ValueError::new(match e {
                        semantic::TimestampError::Malformed => ValueErrorKind::BadSemanticValue {
                            semantic: "io.debezium.time.ZonedTimestamp",
                            value: text.to_string(),
                        },
                        semantic::TimestampError::OutOfRange => ValueErrorKind::unrepresentable(
                            "io.debezium.time.ZonedTimestamp",
                            text.to_string(),
                            TIMESTAMP_RANGE,
                        ),
                    })
                })?;
                v.push(micros);
            }
            Node::ZonedTime(v) => {
                let text = cur.read_str()?;
                v.push(semantic::parse_zoned_time(text).ok_or_else(|| {
                    ValueError::new(ValueErrorKind::BadSemanticValue {
                        semantic: "io.debezium.time.ZonedTime",
                        value: text.to_string(),
                    })
                })?);
            }
            Node::Decimal {
                precision,
                fixed,
                values,
                ..
            } => {
                let bytes = match fixed {
                    Some(size) => cur.take(*size as u64)?,
                    None => cur.read_bytes()?,
                };
                let overflow = || {
                    ValueError::new(ValueErrorKind::DecimalOverflow {
                        precision: *precision,
                    })
                };
                let v = semantic::i128_from_be_bytes(bytes).ok_or_else(overflow)?;
                if v.unsigned_abs() >= semantic::decimal_bound(*precision) as u128 {
                    return Err(overflow());
                }
                values.push(v);
            }
            Node::VariableScaleDecimal(store) => {
                let scale = cur.read_int()?;
                let unscaled = cur.read_bytes()?;
                store
                    .push(semantic::format_decimal(unscaled, scale).as_bytes())
                    .map_err(ValueError::new)?;
            }
            Node::WideDecimal {
                scale,
                fixed,
                store,
            } => {
                let unscaled = match fixed {
                    Some(size) => cur.take(*size as u64)?,
                    None => cur.read_bytes()?,
                };
                store
                    .push(semantic::format_decimal(unscaled, *scale).as_bytes())
                    .map_err(ValueError::new)?;
            }
            Node::BitString { length, store } => {
                let bytes = cur.read_bytes()?;
                let text = semantic::bit_string(bytes, *length).ok_or_else(|| {
                    ValueError::new(ValueErrorKind::BadSemanticValue {
                        semantic: "io.debezium.data.Bits",
                        value: format!("{bytes:02x?} (length {length})"),
                    })
                })?;
                store.push(text.as_bytes()).map_err(ValueError::new)?;
            }
            Node::Utf8(store) => store
                .push(cur.read_str()?.as_bytes())
                .map_err(ValueError::new)?,
            Node::Binary(store) => store.push(cur.read_bytes()?).map_err(ValueError::new)?,
            Node::Enum { symbols, store } => {
                let at = cur.position();
                let index = cur.read_long()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .ok_or_else(|| {
                        ValueError::from(CursorError::BadEnumSymbol {
                            at,
                            index,
                            symbols: symbols.len(),
                        })
                    })?;
                store.push(symbol.as_bytes()).map_err(ValueError::new)?;
            }
            Node::Fixed { size, data } => data.extend_from_slice(cur.take(*size as u64)?),
            Node::List { offsets, item } => {
                loop {
                    let count = cur.read_block_count()?;
                    if count == 0 {
                        break;
                    }
                    for _ in 0..count {
                        item.decode(cur)?;
                    }
                }
                offsets.push(
                    i32::try_from(item.len)
                        .map_err(|_| ValueError::new(ValueErrorKind::BufferFull))?,
                );
            }
            Node::Map {
                offsets,
                keys,
                values,
            } => {
                loop {
                    let count = cur.read_block_count()?;
                    if count == 0 {
                        break;
                    }
                    for _ in 0..count {
                        keys.push(cur.read_str()?.as_bytes())
                            .map_err(ValueError::new)?;
                        values.decode(cur)?;
                    }
                }
                offsets.push(
                    i32::try_from(values.len)
                        .map_err(|_| ValueError::new(ValueErrorKind::BufferFull))?,
                );
            }
            Node::Struct(children) => {
                Self::pad_children(self.len, children);
                for child in children.iter_mut() {
                    child.decode(cur)?;
                }
            }
        }
        Ok(())
    }

    /// Appends a null (and, in the value buffers, a placeholder default).
    pub fn append_null(&mut self) {
        self.append_nulls(1);
    }

    /// Appends `n` nulls. A struct does not touch its children here: they
    /// are padded in bulk when the next non-null value arrives or on
    /// [`Column::finish`], which keeps an image that is mostly null (the
    /// `before` of inserts, the `after` of deletes) nearly free.
    pub fn append_nulls(&mut self, n: usize) {
        match &mut self.node {
            Node::Bool(b) => b.append_n(n, false),
            Node::Int(v) | Node::Date(v) => grow(v, n, 0),
            Node::Long(v)
            | Node::Time { values: v, .. }
            | Node::Timestamp { values: v, .. }
            | Node::ZonedTimestamp(v)
            | Node::ZonedTime(v) => grow(v, n, 0),
            Node::Float(v) => grow(v, n, 0.0),
            Node::Double(v) => grow(v, n, 0.0),
            Node::Decimal { values, .. } => grow(values, n, 0),
            Node::VariableScaleDecimal(s)
            | Node::WideDecimal { store: s, .. }
            | Node::BitString { store: s, .. }
            | Node::Utf8(s)
            | Node::Binary(s)
            | Node::Enum { store: s, .. } => {
                let end = *s.offsets.last().unwrap_or(&0);
                grow(&mut s.offsets, n, end);
            }
            Node::Fixed { size, data } => data.resize(data.len() + *size * n, 0),
            Node::List { offsets, .. } | Node::Map { offsets, .. } => {
                let end = *offsets.last().unwrap_or(&0);
                grow(offsets, n, end);
            }
            Node::Struct(_) => {}
        }
        self.validity.append_n(n, false);
        self.len += n;
    }

    /// Reserves room for `n` more values of this column only, not of a
    /// struct's children.
    pub fn reserve_self(&mut self, n: usize) {
        self.validity.reserve(n);
    }

    /// Reserves room for `n` more values (and, for lists and maps, about
    /// as many items), so a batch of a known size grows its buffers once.
    pub fn reserve(&mut self, n: usize) {
        self.validity.reserve(n);
        match &mut self.node {
            Node::Bool(b) => b.reserve(n),
            Node::Int(v) | Node::Date(v) => v.reserve(n),
            Node::Long(v)
            | Node::Time { values: v, .. }
            | Node::Timestamp { values: v, .. }
            | Node::ZonedTimestamp(v)
            | Node::ZonedTime(v) => v.reserve(n),
            Node::Float(v) => v.reserve(n),
            Node::Double(v) => v.reserve(n),
            Node::Decimal { values, .. } => values.reserve(n),
            Node::VariableScaleDecimal(s)
            | Node::WideDecimal { store: s, .. }
            | Node::BitString { store: s, .. }
            | Node::Utf8(s)
            | Node::Binary(s)
            | Node::Enum { store: s, .. } => s.offsets.reserve(n),
            Node::Fixed { size, data } => data.reserve(n * *size),
            Node::List { offsets, .. } | Node::Map { offsets, .. } => offsets.reserve(n),
            Node::Struct(children) => children.iter_mut().for_each(|c| c.reserve(n)),
        }
    }

    /// Brings a struct's children up to the struct's length (see
    /// [`Column::append_nulls`]).
    fn pad_children(len: usize, children: &mut [Column]) {
        for child in children {
            if child.len < len {
                child.append_nulls(len - child.len);
            }
        }
    }

    /// Cuts the column back to its first `len` values.
    pub fn truncate(&mut self, len: usize) {
        // No early return when `len >= self.len`: after a failed decode a
        // struct's children can be longer than the struct itself.
        match &mut self.node {
            Node::Bool(b) => b.truncate(len),
            Node::Int(v) | Node::Date(v) => v.truncate(len),
            Node::Long(v)
            | Node::Time { values: v, .. }
            | Node::Timestamp { values: v, .. }
            | Node::ZonedTimestamp(v)
            | Node::ZonedTime(v) => v.truncate(len),
            Node::Float(v) => v.truncate(len),
            Node::Double(v) => v.truncate(len),
            Node::Decimal { values, .. } => values.truncate(len),
            Node::VariableScaleDecimal(s)
            | Node::WideDecimal { store: s, .. }
            | Node::BitString { store: s, .. }
            | Node::Utf8(s)
            | Node::Binary(s)
            | Node::Enum { store: s, .. } => s.truncate(len),
            Node::Fixed { size, data } => data.truncate(len * *size),
            Node::List { offsets, item } => {
                offsets.truncate(len + 1);
                item.truncate(*offsets.last().unwrap_or(&0) as usize);
            }
            Node::Map {
                offsets,
                keys,
                values,
            } => {
                offsets.truncate(len + 1);
                let end = *offsets.last().unwrap_or(&0) as usize;
                keys.truncate(end);
                values.truncate(end);
            }
            Node::Struct(children) => children.iter_mut().for_each(|c| c.truncate(len)),
        }
        self.validity.truncate(len.min(self.len));
        self.len = len.min(self.len);
    }

    /// Builds the Arrow array from everything appended and empties the column.
    pub fn finish(&mut self) -> ArrayRef {
        let nulls = NullBuffer::new(self.validity.finish());
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        let len = std::mem::take(&mut self.len);
        let data_type = self.data_type();
        match &mut self.node {
            Node::Bool(b) => Arc::new(BooleanArray::new(b.finish(), nulls)),
            Node::Int(v) => Arc::new(PrimitiveArray::<Int32Type>::new(
                std::mem::take(v).into(),
                nulls,
            )),
            Node::Long(v) => Arc::new(PrimitiveArray::<Int64Type>::new(
                std::mem::take(v).into(),
                nulls,
            )),
            Node::Float(v) => Arc::new(PrimitiveArray::<Float32Type>::new(
                std::mem::take(v).into(),
                nulls,
            )),
            Node::Double(v) => Arc::new(PrimitiveArray::<Float64Type>::new(
                std::mem::take(v).into(),
                nulls,
            )),
            Node::Date(v) => Arc::new(PrimitiveArray::<Date32Type>::new(
                std::mem::take(v).into(),
                nulls,
            )),
            Node::Time { values: v, .. } | Node::ZonedTime(v) => {
                Arc::new(PrimitiveArray::<Time64MicrosecondType>::new(
                    std::mem::take(v).into(),
                    nulls,
                ))
            }
            Node::Timestamp { values: v, tz, .. } => Arc::new(
                PrimitiveArray::<TimestampMicrosecondType>::new(std::mem::take(v).into(), nulls)
                    .with_timezone_opt(tz.clone()),
            ),
            Node::ZonedTimestamp(v) => Arc::new(
                PrimitiveArray::<TimestampMicrosecondType>::new(std::mem::take(v).into(), nulls)
                    .with_timezone("UTC"),
            ),
            Node::Decimal { values, .. } => {
                // precision and scale were validated when the column was built
                Arc::new(
                    PrimitiveArray::<Decimal128Type>::new(std::mem::take(values).into(), nulls)
                        .with_data_type(data_type),
                )
            }
            Node::VariableScaleDecimal(s)
            | Node::WideDecimal { store: s, .. }
            | Node::BitString { store: s, .. }
            | Node::Utf8(s)
            | Node::Enum { store: s, .. } => {
                let (offsets, data) = s.take();
                Arc::new(StringArray::new(offsets, data, nulls))
            }
            Node::Binary(s) => {
                let (offsets, data) = s.take();
                Arc::new(BinaryArray::new(offsets, data, nulls))
            }
            Node::Fixed { size, data } => Arc::new(FixedSizeBinaryArray::new(
                *size as i32,
                Buffer::from_vec(std::mem::take(data)),
                nulls,
            )),
            Node::List { offsets, item } => {
                let offsets = std::mem::replace(offsets, vec![0]);
                let field = Arc::new(item.field());
                Arc::new(ListArray::new(
                    field,
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    item.finish(),
                    nulls,
                ))
            }
            Node::Map {
                offsets,
                keys,
                values,
            } => {
                let offsets = std::mem::replace(offsets, vec![0]);
                let value_field = values.field();
                let (key_offsets, key_data) = keys.take();
                let key_array: ArrayRef = Arc::new(StringArray::new(key_offsets, key_data, None));
                let entry_fields = Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    value_field.clone(),
                ]);
                let entries =
                    StructArray::new(entry_fields, vec![key_array, values.finish()], None);
                Arc::new(MapArray::new(
                    Arc::new(Self::map_entries(value_field)),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    entries,
                    nulls,
                    false,
                ))
            }
            Node::Struct(children) => {
                Self::pad_children(len, children);
                let fields: Fields = children.iter().map(Column::field).collect();
                let arrays = children.iter_mut().map(Column::finish).collect();
                Arc::new(StructArray::new(fields, arrays, nulls))
            }
        }
    }
}

/// Appends `n` copies of `fill`; a push when `n` is 1 (nulls come one at a time).
#[inline]
fn grow<T: Copy>(v: &mut Vec<T>, n: usize, fill: T) {
    if n == 1 {
        v.push(fill);
    } else {
        v.resize(v.len() + n, fill);
    }
}

fn unsupported_in(parent: &str, e: UnsupportedType) -> UnsupportedType {
    UnsupportedType {
        path: format!("{parent}.{}", e.path),
        reason: e.reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::cursor::tests::zigzag as zz;
    use arrow_array::{Array, Int64Array};

    fn col(schema: &str) -> Column {
        Column::for_schema("c", &AvroSchema::parse(schema).unwrap()).unwrap()
    }

    #[test]
    fn truncate_removes_a_half_written_row() {
        let mut c = col(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string"}]}"#,
        );
        let mut good = zz(7);
        good.extend(zz(2));
        good.extend_from_slice(b"hi");
        c.decode(&mut Cursor::new(&good)).unwrap();
        // a decodes, b is cut short
        let mut bad = zz(8);
        bad.extend(zz(10));
        let err = c.decode(&mut Cursor::new(&bad)).unwrap_err();
        assert_eq!(err.path, vec!["c", "b"]);
        c.truncate(1);
        let arr = c.finish();
        let s = arr.as_any().downcast_ref::<StructArray>().unwrap();
        assert_eq!(s.len(), 1);
        let a = s.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(a.values().as_ref(), &[7]);
        let b = s.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(b.value(0), "hi");
    }

    #[test]
    fn decimal_overflow_is_an_error() {
        let mut c = col(r#"{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}"#);
        let mut ok = zz(2);
        ok.extend_from_slice(&9999i16.to_be_bytes());
        c.decode(&mut Cursor::new(&ok)).unwrap();
        let mut wide = zz(2);
        wide.extend_from_slice(&10000i16.to_be_bytes());
        let err = c.decode(&mut Cursor::new(&wide)).unwrap_err();
        assert_eq!(err.kind, ValueErrorKind::DecimalOverflow { precision: 4 });
    }

    #[test]
    fn nanosecond_times_keep_exact_microseconds_and_refuse_finer_ones() {
        let mut ts = col(r#"{"type":"long","connect.name":"io.debezium.time.NanoTimestamp"}"#);
        assert_eq!(
            ts.field().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        ts.decode(&mut Cursor::new(&zz(1_709_194_510_654_321_000)))
            .unwrap();
        let err = ts
            .decode(&mut Cursor::new(&zz(1_709_194_510_654_321_001)))
            .unwrap_err();
        assert!(
            matches!(err.kind, ValueErrorKind::SubMicrosecond { .. }),
            "{err}"
        );
        let a = ts.finish();
        let a = a
            .as_any()
            .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(a.values().as_ref(), &[1_709_194_510_654_321]);

        let mut t = col(r#"{"type":"long","connect.name":"io.debezium.time.NanoTime"}"#);
        t.decode(&mut Cursor::new(&zz(3_600_000_000_000))).unwrap();
        assert!(t.decode(&mut Cursor::new(&zz(999))).is_err());
        let err = t
            .decode(&mut Cursor::new(&zz(90_000_000_000_000)))
            .unwrap_err();
        assert!(
            matches!(err.kind, ValueErrorKind::OutOfRange { .. }),
            "25 h is not a time of day: {err}"
        );
        let a = t.finish();
        let a = a
            .as_any()
            .downcast_ref::<arrow_array::Time64MicrosecondArray>()
            .unwrap();
        assert_eq!(a.values().as_ref(), &[3_600_000_000]);
    }

    #[test]
    fn general_unions_are_unsupported() {
        let s = AvroSchema::parse(r#"["int","string"]"#).unwrap();
        assert!(Column::for_schema("u", &s).is_err());
    }
}
