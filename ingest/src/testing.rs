//! Test support (feature `testing`): Debezium change events encoded by
//! apache-avro, an Avro implementation independent of floe's decoder, with
//! schemas a real Debezium registered (e.g. from the fixture recording).

use std::collections::HashMap;

pub use apache_avro::types::Value;
use apache_avro::Schema;

use crate::envelope::Op;
use crate::recording::RecordedSchemas;
use crate::wire::frame;

/// Encodes Confluent-framed Debezium events for one table.
/// Where an encoded event's `source` block places it.
struct Source<'a> {
    /// Its timestamps and transaction id derive from this.
    ts: i64,
    lsn: Option<i64>,
    /// Debezium's `sequence`: (last commit, LSN).
    sequence: Option<(i64, i64)>,
    snapshot: &'a str,
}

pub struct EventEncoder {
    envelope: Schema,
    key: Schema,
    row: Schema,
    source: Schema,
    value_id: u32,
    key_id: u32,
}

/// A Connect decimal's bytes: minimal big-endian two's complement.
pub fn decimal(unscaled: i64) -> Value {
    let bytes = unscaled.to_be_bytes();
    let skip = bytes
        .windows(2)
        .take_while(|w| (w[0] == 0 && w[1] & 0x80 == 0) || (w[0] == 0xff && w[1] & 0x80 != 0))
        .count();
    Value::Decimal(apache_avro::Decimal::from(&bytes[skip..]))
}

fn field<'a>(schema: &'a Schema, name: &str) -> Result<&'a Schema, String> {
    let Schema::Record(r) = schema else {
        return Err("not a record".into());
    };
    r.lookup
        .get(name)
        .map(|&i| &r.fields[i].schema)
        .ok_or_else(|| format!("no field {name}"))
}

/// A record of `schema` from named values; fields not given are null.
pub fn record(schema: &Schema, values: &HashMap<&str, Value>) -> Result<Value, String> {
    let Schema::Record(r) = schema else {
        return Err("not a record".into());
    };
    let mut fields = Vec::with_capacity(r.fields.len());
    for f in &r.fields {
        let v = values.get(f.name.as_str()).cloned();
        let v = match &f.schema {
            Schema::Union(u) => {
                let null_at = u
                    .variants()
                    .iter()
                    .position(|s| *s == Schema::Null)
                    .ok_or("union without null")? as u32;
                match v {
                    None => Value::Union(null_at, Box::new(Value::Null)),
                    Some(v) => Value::Union(1 - null_at, Box::new(v)),
                }
            }
            _ => v.ok_or_else(|| format!("no value for required field {}", f.name))?,
        };
        fields.push((f.name.clone(), v));
    }
    Ok(Value::Record(fields))
}

impl EventEncoder {
    /// An encoder for the subject pair's schemas with these ids.
    pub fn new(schemas: &RecordedSchemas, value_id: u32, key_id: u32) -> Result<Self, String> {
        let text = |id: u32| {
            schemas
                .get(id)
                .map(|s| s.to_string())
                .ok_or(format!("no schema {id}"))
        };
        let envelope = Schema::parse_str(&text(value_id)?).map_err(|e| e.to_string())?;
        let key = Schema::parse_str(&text(key_id)?).map_err(|e| e.to_string())?;
        // the row record is defined inline in `before` (`after` refers to it)
        let row = match field(&envelope, "before")? {
            Schema::Union(u) => u
                .variants()
                .iter()
                .find(|s| **s != Schema::Null)
                .cloned()
                .ok_or("no row type")?,
            s => s.clone(),
        };
        let source = field(&envelope, "source")?.clone();
        Ok(Self {
            envelope,
            key,
            row,
            source,
            value_id,
            key_id,
        })
    }

    /// One event: framed key and value bytes. `key` and the images are
    /// named column values; `lsn` orders events as Postgres would. No
    /// `sequence` (see [`EventEncoder::event_in_stream`]).
    pub fn event(
        &self,
        op: Op,
        key: Option<&HashMap<&str, Value>>,
        before: Option<&HashMap<&str, Value>>,
        after: Option<&HashMap<&str, Value>>,
        lsn: i64,
    ) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
        self.event_in_stream(op, key, before, after, lsn, None)
    }

    /// [`EventEncoder::event`] with Debezium's `sequence`,
    /// `["<commit_lsn>", "<lsn>"]` (a commit LSN of 0 is sent as null, as
    /// Debezium does before it has seen a commit).
    pub fn event_in_stream(
        &self,
        op: Op,
        key: Option<&HashMap<&str, Value>>,
        before: Option<&HashMap<&str, Value>>,
        after: Option<&HashMap<&str, Value>>,
        lsn: i64,
        commit_lsn: Option<i64>,
    ) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
        self.encode(op, key, before, after, lsn, commit_lsn, "false")
    }

    /// A snapshot read (`op = r`) of the row `after`, with Debezium's
    /// snapshot marker (`first`, `first_in_data_collection`, `true`,
    /// `last_in_data_collection`, `last`, `incremental`).
    pub fn snapshot_read(
        &self,
        key: &HashMap<&str, Value>,
        after: &HashMap<&str, Value>,
        lsn: i64,
        marker: &str,
    ) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
        self.encode(Op::Read, Some(key), None, Some(after), lsn, Some(0), marker)
    }

    /// A read of an incremental snapshot (`op = r`, marker `incremental`)
    /// of the row `after`, as Debezium sends it: no LSN of its own, and
    /// its chunk's window close as both halves of `sequence`.
    pub fn incremental_read(
        &self,
        key: &HashMap<&str, Value>,
        after: &HashMap<&str, Value>,
        close: i64,
    ) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
        let source = Source {
            ts: close,
            lsn: None,
            sequence: Some((close, close)),
            snapshot: "incremental",
        };
        self.encode_at(Op::Read, Some(key), None, Some(after), source)
    }

    #[allow(clippy::too_many_arguments)]
    fn encode(
        &self,
        op: Op,
        key: Option<&HashMap<&str, Value>>,
        before: Option<&HashMap<&str, Value>>,
        after: Option<&HashMap<&str, Value>>,
        lsn: i64,
        commit_lsn: Option<i64>,
        snapshot: &str,
    ) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
        let source = Source {
            ts: lsn,
            lsn: Some(lsn),
            sequence: commit_lsn.map(|c| (c, lsn)),
            snapshot,
        };
        self.encode_at(op, key, before, after, source)
    }

    fn encode_at(
        &self,
        op: Op,
        key: Option<&HashMap<&str, Value>>,
        before: Option<&HashMap<&str, Value>>,
        after: Option<&HashMap<&str, Value>>,
        at: Source<'_>,
    ) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
        let Source {
            ts: lsn, snapshot, ..
        } = at;
        let s = |v: &str| Value::String(v.to_string());
        let mut fields = HashMap::from([
            ("version", s("3.6.3.Final")),
            ("connector", s("postgresql")),
            ("name", s("test")),
            ("ts_ms", Value::Long(1_763_700_000_000 + lsn)),
            ("ts_us", Value::Long((1_763_700_000_000 + lsn) * 1000)),
            ("snapshot", s(snapshot)),
            ("db", s("taxi")),
            ("schema", s("public")),
            ("table", s("trips")),
            ("txId", Value::Long(1000 + lsn)),
        ]);
        if let Some(lsn) = at.lsn {
            fields.insert("lsn", Value::Long(lsn));
        }
        if let Some((commit, lsn)) = at.sequence {
            let commit = match commit {
                0 => "null".to_string(),
                c => format!("\"{c}\""),
            };
            fields.insert("sequence", s(&format!("[{commit},\"{lsn}\"]")));
        }
        let source = record(&self.source, &fields)?;
        let mut env: HashMap<&str, Value> = HashMap::from([
            ("source", source),
            ("op", s(op.code())),
            ("ts_ms", Value::Long(1_763_700_000_000 + lsn)),
        ]);
        if let Some(b) = before {
            env.insert("before", record(&self.row, b)?);
        }
        if let Some(a) = after {
            env.insert("after", record(&self.row, a)?);
        }
        let value = apache_avro::to_avro_datum(&self.envelope, record(&self.envelope, &env)?)
            .map_err(|e| e.to_string())?;
        let key = match key {
            Some(k) => {
                let body = apache_avro::to_avro_datum(&self.key, record(&self.key, k)?)
                    .map_err(|e| e.to_string())?;
                Some(frame(self.key_id, &body))
            }
            None => None,
        };
        Ok((key, frame(self.value_id, &value)))
    }
}

/// A small deterministic generator (splitmix64) for synthetic workloads.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `lo..hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo) as u64) as i64
    }
}
