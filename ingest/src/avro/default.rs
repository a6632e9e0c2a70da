//! A field's `default` (JSON, in Avro's default-value encoding) as the
//! binary a writer would have produced for that value, so that defaults go
//! through the same column decoder as real values and get the same
//! Debezium type mapping.
//!
//! The JSON encoding of defaults (Avro specification, "Schema Declaration"):
//! `bytes` and `fixed` are strings of code points 0–255, records are
//! objects, enums their symbol, and a union's default belongs to its first
//! branch (Confluent's converter puts a non-null default's type first).

use serde_json::Value;

use super::schema::{AvroSchema, AvroType};

/// Encodes `value` as Avro binary of `schema`, or says why it cannot.
pub fn encode_default(schema: &AvroSchema, value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    encode(schema, value, &mut out)?;
    Ok(out)
}

fn encode(schema: &AvroSchema, value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let mismatch = || format!("default {value} does not match {:?}", schema.ty);
    match (&schema.ty, value) {
        (AvroType::Null, Value::Null) => {}
        (AvroType::Boolean, Value::Bool(b)) => out.push(u8::from(*b)),
        (AvroType::Int | AvroType::Long, Value::Number(n)) => {
            write_long(n.as_i64().ok_or_else(mismatch)?, out)
        }
        (AvroType::Float, Value::Number(n)) => {
            out.extend_from_slice(&(n.as_f64().ok_or_else(mismatch)? as f32).to_le_bytes())
        }
        (AvroType::Double, Value::Number(n)) => {
            out.extend_from_slice(&n.as_f64().ok_or_else(mismatch)?.to_le_bytes())
        }
        (AvroType::String, Value::String(s)) => write_bytes(s.as_bytes(), out),
        (AvroType::Bytes, Value::String(s)) => write_bytes(&latin1(s).ok_or_else(mismatch)?, out),
        (AvroType::Fixed { size, .. }, Value::String(s)) => {
            let bytes = latin1(s).ok_or_else(mismatch)?;
            if bytes.len() != *size {
                return Err(mismatch());
            }
            out.extend_from_slice(&bytes);
        }
        (AvroType::Enum { symbols, .. }, Value::String(s)) => {
            let index = symbols.iter().position(|x| x == s).ok_or_else(mismatch)?;
            write_long(index as i64, out);
        }
        (AvroType::Array(items), Value::Array(values)) => {
            if !values.is_empty() {
                write_long(values.len() as i64, out);
                for v in values {
                    encode(items, v, out)?;
                }
            }
            out.push(0);
        }
        (AvroType::Map(values), Value::Object(entries)) => {
            if !entries.is_empty() {
                write_long(entries.len() as i64, out);
                for (k, v) in entries {
                    write_bytes(k.as_bytes(), out);
                    encode(values, v, out)?;
                }
            }
            out.push(0);
        }
        (AvroType::Record { fields, .. }, Value::Object(given)) => {
            for field in fields {
                let v = given
                    .get(&field.name)
                    .or(field.default.as_ref())
                    .ok_or_else(|| format!("default has no value for field {}", field.name))?;
                encode(&field.schema, v, out)?;
            }
        }
        (AvroType::Union(branches), _) => {
            // the first branch by the specification; a null default of a
            // union whose null comes second is accepted too
            let index = if value.is_null() {
                branches.iter().position(|b| b.ty == AvroType::Null)
            } else {
                branches.iter().position(|b| b.ty != AvroType::Null)
            }
            .ok_or_else(mismatch)?;
            write_long(index as i64, out);
            encode(&branches[index], value, out)?;
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// A string of code points 0–255 as the bytes they stand for.
fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

fn write_long(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_long(b.len() as i64, out);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::Cursor;

    fn schema(text: &str) -> AvroSchema {
        AvroSchema::parse(text).unwrap()
    }

    #[test]
    fn primitives_round_trip_through_the_cursor() {
        let bytes = encode_default(&schema(r#""long""#), &serde_json::json!(-7)).unwrap();
        assert_eq!(Cursor::new(&bytes).read_long().unwrap(), -7);
        let bytes = encode_default(&schema(r#""string""#), &serde_json::json!("dflt")).unwrap();
        assert_eq!(Cursor::new(&bytes).read_str().unwrap(), "dflt");
        // bytes defaults are strings of code points 0-255
        let bytes =
            encode_default(&schema(r#""bytes""#), &serde_json::json!("\u{0}\u{ff}")).unwrap();
        assert_eq!(Cursor::new(&bytes).read_bytes().unwrap(), &[0, 0xff]);
        assert!(encode_default(&schema(r#""bytes""#), &serde_json::json!("\u{100}")).is_err());
    }

    #[test]
    fn union_defaults_pick_their_branch() {
        // Confluent's converter: a non-null default's type comes first
        let s = schema(r#"[{"type":"string","connect.default":"dflt"},"null"]"#);
        let bytes = encode_default(&s, &serde_json::json!("dflt")).unwrap();
        let mut cur = Cursor::new(&bytes);
        assert_eq!(cur.read_union_branch(2).unwrap(), 0);
        assert_eq!(cur.read_str().unwrap(), "dflt");
        let s = schema(r#"["null","int"]"#);
        let bytes = encode_default(&s, &Value::Null).unwrap();
        assert_eq!(Cursor::new(&bytes).read_union_branch(2).unwrap(), 0);
        assert!(encode_default(&schema(r#""int""#), &serde_json::json!("x")).is_err());
    }
}
