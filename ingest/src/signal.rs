//! Debezium's signal table, read from its change events.
//!
//! A connector with `signal.data.collection` watches a table for rows a
//! user inserts to ask for things (`execute-snapshot`, `stop-snapshot`),
//! and while it runs an incremental snapshot it inserts rows of its own
//! there: `<chunk>-open` and `<chunk>-close` around each chunk it reads
//! (the `insert_insert` watermarks). The table is captured like any other,
//! so its inserts reach Kafka with their place in the source's log.
//!
//! An incremental snapshot's reads carry only their chunk's window close,
//! as Debezium's `sequence`; when it was asked for, and where each window
//! closed, is only in this table's events. [`signals`] reads them out of a
//! batch of the signal table; what floe does with them is the lakehouse's
//! business (`lakehouse::apply::SignalLog`).

use arrow_array::{Array, Int64Array, StringArray};

use crate::batch::{columns, ChangeBatch, SourceTable};
use crate::envelope::Op;

/// What one row inserted into the signal table says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalKind {
    /// `execute-snapshot` of these data collections (`schema.table`
    /// names or regular expressions), incremental or blocking.
    Snapshot {
        incremental: bool,
        collections: Vec<String>,
    },
    /// `stop-snapshot`: these collections, or every one when empty.
    StopSnapshot { collections: Vec<String> },
    /// Debezium closed the window of an incremental snapshot's chunk: the
    /// chunk's reads follow, carrying this position.
    WindowClose,
}

/// One signal and where in the source's log it was inserted: (the LSN of
/// the last commit before it, its LSN), Debezium's `sequence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub kind: SignalKind,
    pub at: (i64, i64),
}

impl Signal {
    /// Whether the signal names `table` among its data collections (an
    /// empty list of a stop names all).
    pub fn covers(&self, table: &SourceTable) -> bool {
        let collections = match &self.kind {
            SignalKind::Snapshot { collections, .. } => collections,
            SignalKind::StopSnapshot { collections } if collections.is_empty() => return true,
            SignalKind::StopSnapshot { collections } => collections,
            SignalKind::WindowClose => return false,
        };
        let name = format!("{}.{}", table.schema, table.table);
        let full = format!("{}.{}", table.database, name);
        collections.iter().any(|c| {
            c == &name
                || c == &full
                // Debezium takes each entry as a regular expression too
                || regex::Regex::new(&format!("^(?:{c})$"))
                    .is_ok_and(|re| re.is_match(&name) || re.is_match(&full))
        })
    }
}

/// The signals in a batch of the signal table: its inserts, in order.
/// Rows that are not signals floe follows (other types, a snapshot's
/// reads of old signal rows, rows without a position) are skipped.
pub fn signals(batch: &ChangeBatch) -> Vec<Signal> {
    let Some(after) = batch.after() else {
        return Vec::new();
    };
    let text = |name: &str| -> Option<&StringArray> {
        after.column_by_name(name)?.as_any().downcast_ref()
    };
    let long = |name: &str| -> Option<&Int64Array> {
        batch.records.column_by_name(name)?.as_any().downcast_ref()
    };
    let (Some(kinds), Some(lsns)) = (text("type"), long(columns::SOURCE_LSN)) else {
        return Vec::new();
    };
    let ids = text("id");
    let data = text("data");
    let commits = long(columns::SOURCE_COMMIT_LSN);
    (0..batch.num_rows())
        .filter(|&i| batch.op(i) == Some(Op::Create) && lsns.is_valid(i) && kinds.is_valid(i))
        .filter_map(|i| {
            let commit = commits.filter(|c| c.is_valid(i)).map_or(0, |c| c.value(i));
            let value = |a: Option<&StringArray>| {
                a.filter(|a| a.is_valid(i))
                    .map_or(String::new(), |a| a.value(i).to_string())
            };
            let kind = kind_of(kinds.value(i), &value(ids), &value(data))?;
            Some(Signal {
                kind,
                at: (commit, lsns.value(i)),
            })
        })
        .collect()
}

fn kind_of(kind: &str, id: &str, data: &str) -> Option<SignalKind> {
    match kind {
        "execute-snapshot" => {
            let data = parse(data)?;
            Some(SignalKind::Snapshot {
                // Debezium's default is an incremental snapshot
                incremental: data
                    .get("type")
                    .and_then(|t| t.as_str())
                    .is_none_or(|t| t.eq_ignore_ascii_case("incremental")),
                collections: collections(&data),
            })
        }
        "stop-snapshot" => Some(SignalKind::StopSnapshot {
            collections: parse(data).map(|d| collections(&d)).unwrap_or_default(),
        }),
        "snapshot-window-close" if id.ends_with("-close") => Some(SignalKind::WindowClose),
        _ => None,
    }
}

fn parse(data: &str) -> Option<serde_json::Value> {
    serde_json::from_str(data).ok()
}

fn collections(data: &serde_json::Value) -> Vec<String> {
    data.get("data-collections")
        .and_then(|c| c.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str) -> SourceTable {
        SourceTable {
            database: "taxi".into(),
            schema: schema.into(),
            table: name.into(),
        }
    }

    #[test]
    fn signal_rows_as_debezium_writes_them() {
        let asked = kind_of(
            "execute-snapshot",
            "resync-1",
            r#"{"data-collections": ["public.trips"], "type": "incremental"}"#,
        );
        assert_eq!(
            asked,
            Some(SignalKind::Snapshot {
                incremental: true,
                collections: vec!["public.trips".into()]
            })
        );
        let blocking = kind_of(
            "execute-snapshot",
            "b",
            r#"{"data-collections": ["public.trips"], "type": "BLOCKING"}"#,
        );
        assert!(matches!(
            blocking,
            Some(SignalKind::Snapshot {
                incremental: false,
                ..
            })
        ));
        // no type: Debezium's default, incremental
        let default = kind_of(
            "execute-snapshot",
            "d",
            r#"{"data-collections": ["public.trips"]}"#,
        );
        assert!(matches!(
            default,
            Some(SignalKind::Snapshot {
                incremental: true,
                ..
            })
        ));
        assert_eq!(
            kind_of(
                "snapshot-window-close",
                "a03cd2aa-d002-41f9-b87d-384d09b39211-close",
                r#"{"openWindowTimestamp": "2026-11-29T19:42:41Z"}"#
            ),
            Some(SignalKind::WindowClose)
        );
        assert_eq!(
            kind_of("snapshot-window-open", "x-open", "{}"),
            None,
            "an open is not needed"
        );
        assert_eq!(kind_of("log", "l", r#"{"message": "hi"}"#), None);
        assert_eq!(kind_of("execute-snapshot", "bad", "not json"), None);
    }

    #[test]
    fn a_signal_covers_the_tables_it_names() {
        let signal = |collections: &[&str]| Signal {
            kind: SignalKind::Snapshot {
                incremental: true,
                collections: collections.iter().map(|c| c.to_string()).collect(),
            },
            at: (0, 1),
        };
        let trips = table("public", "trips");
        assert!(signal(&["public.trips"]).covers(&trips));
        assert!(signal(&["taxi.public.trips"]).covers(&trips));
        assert!(signal(&["public\\.t.*"]).covers(&trips));
        assert!(!signal(&["public.trips_archive"]).covers(&trips));
        assert!(!signal(&["public.vendors"]).covers(&trips));
        assert!(!signal(&["other.trips"]).covers(&trips));
        let stop_all = Signal {
            kind: SignalKind::StopSnapshot {
                collections: vec![],
            },
            at: (0, 2),
        };
        assert!(stop_all.covers(&trips));
        let close = Signal {
            kind: SignalKind::WindowClose,
            at: (0, 3),
        };
        assert!(!close.covers(&trips));
    }
}
