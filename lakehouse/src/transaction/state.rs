//! floe's own durable state, carried in snapshot summaries and typed here
//! (the only module that knows its `floe.*` keys):
//!
//! * [`KafkaOffsets`]: per topic and partition, the last offset a table
//!   has applied; where ingest resumes (exactly once);
//! * [`SourcePositions`]: per topic and partition, the highest source
//!   position (Postgres LSN) a table has applied, and the position of its
//!   last truncate; what keeps a multi-partition topic in source order;
//!   and where each partition's stream stands ([`StreamPosition`]); what
//!   tells a change Debezium sent again from a new one;
//! * [`JobLineage`]: the job run that computed a result table and the
//!   source snapshots it read; where an incremental job starts;
//! * the file a batch load's snapshot loaded, and a maintenance marker on
//!   floe's maintenance snapshots.
//!
//! Every floe snapshot carries the offsets and lineage of the snapshot it
//! follows, with its own changes ([`StateChange`]). Reading walks the
//! snapshot ancestry from the current snapshot back to the first that
//! carries them, the way Iceberg's streaming committers find their last
//! checkpoint, so a commit by another engine (pyiceberg, Spark's
//! `rewrite_data_files`, Trino's `OPTIMIZE`), which carries none, loses
//! nothing.

use std::collections::{BTreeMap, HashMap};

use iceberg::spec::{Snapshot, TableMetadata};
use iceberg::table::Table;

/// Snapshot-summary key prefix of the Kafka offsets:
/// `floe.offset.<topic>.<partition>` = last applied offset.
const OFFSET_PREFIX: &str = "floe.offset.";
/// `floe.lsn.<topic>.<partition>` = the highest source LSN applied from
/// the partition.
const LSN_PREFIX: &str = "floe.lsn.";
/// `floe.resnapshot.<topic>` = while Debezium snapshots the table again,
/// the table's last sequence number before the snapshot's first read:
/// rows only in data files of that sequence number or older were not
/// read again.
const RESNAPSHOT_PREFIX: &str = "floe.resnapshot.";
/// `floe.snapshot-lsn.<topic>` = the source LSN of the newest snapshot
/// whose reads the table applied (every read of one snapshot carries the
/// same LSN, on whichever partition it comes).
const SNAPSHOT_LSN_PREFIX: &str = "floe.snapshot-lsn.";
/// `floe.stream.<topic>.<partition>` = a [`StreamPosition`].
const STREAM_PREFIX: &str = "floe.stream.";
/// `floe.incremental-read.<topic>` = the window close of the newest
/// incremental snapshot chunk whose reads the table applied.
const INCREMENTAL_READ_PREFIX: &str = "floe.incremental-read.";
/// `floe.truncate-lsn.<topic>` = the source LSN of the last truncate.
const TRUNCATE_LSN_PREFIX: &str = "floe.truncate-lsn.";
/// `floe.schema-lsn.<topic>` = the source LSN of the first change that
/// brought the table's latest columns.
const SCHEMA_LSN_PREFIX: &str = "floe.schema-lsn.";
const JOB: &str = "floe.job";
const JOB_RUN_ID: &str = "floe.job.run-id";
const JOB_SOURCES: &str = "floe.job.sources";
const LOADED_FILE: &str = "floe.load.file";
const MAINTENANCE: &str = "floe.maintenance";

/// Per (topic, partition), the last Kafka offset a table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaOffsets(BTreeMap<(String, i32), i64>);

impl KafkaOffsets {
    /// The offsets of `table`: those of the newest snapshot in its
    /// current ancestry that carries any.
    pub fn of(table: &Table) -> Self {
        Self::of_metadata(table.metadata())
    }

    pub(crate) fn of_metadata(metadata: &TableMetadata) -> Self {
        carried(metadata, Self::from_summary).unwrap_or_default()
    }

    /// The offsets one snapshot's summary records (floe writes all it
    /// carries into each of its snapshots).
    pub fn in_snapshot(snapshot: &Snapshot) -> Option<Self> {
        Self::from_summary(&snapshot.summary().additional_properties)
    }

    pub(crate) fn from_summary(properties: &HashMap<String, String>) -> Option<Self> {
        let offsets: BTreeMap<(String, i32), i64> = properties
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(OFFSET_PREFIX)?;
                let (topic, partition) = rest.rsplit_once('.')?;
                Some((
                    (topic.to_string(), partition.parse().ok()?),
                    v.parse().ok()?,
                ))
            })
            .collect();
        (!offsets.is_empty()).then_some(Self(offsets))
    }

    /// The last applied offset of a topic partition.
    pub fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0.get(&(topic.to_string(), partition)).copied()
    }

    /// Records `last` as applied for the partition (never moving back).
    pub fn advance(&mut self, topic: &str, partition: i32, last: i64) {
        let slot = self.0.entry((topic.to_string(), partition)).or_insert(last);
        *slot = (*slot).max(last);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&(String, i32), &i64)> {
        self.0.iter()
    }

    /// As the map ingest and the tests use.
    pub fn into_map(self) -> BTreeMap<(String, i32), i64> {
        self.0
    }

    fn write(&self, properties: &mut HashMap<String, String>) {
        for ((topic, partition), offset) in &self.0 {
            properties.insert(
                format!("{OFFSET_PREFIX}{topic}.{partition}"),
                offset.to_string(),
            );
        }
    }
}

/// Where in the source's log a table is: per (topic, partition) the
/// highest LSN applied, and per topic the LSN of the last truncate and of
/// the first change with the table's latest columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePositions {
    applied: BTreeMap<(String, i32), i64>,
    truncated: BTreeMap<String, i64>,
    columns_changed: BTreeMap<String, i64>,
    stream: BTreeMap<(String, i32), StreamPosition>,
    /// A snapshot under way per topic; a negative value (in a change)
    /// closes it.
    resnapshot: BTreeMap<String, i64>,
    /// Per topic, the LSN of the newest snapshot read.
    snapshots: BTreeMap<String, i64>,
    /// Per topic, the window close of the newest incremental chunk read.
    incremental_reads: BTreeMap<String, i64>,
}

/// Where one partition's stream of Postgres changes stands: the newest
/// position applied, (the LSN of the last commit before the change, the
/// change's LSN), with how many changes at exactly it were applied (one
/// WAL record can make several) and, while Debezium is sending again
/// changes the table holds, how many at it came again so far.
/// `operations::apply::resent` explains the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPosition {
    pub at: (i64, i64),
    pub count: u32,
    pub again: Option<u32>,
}

impl StreamPosition {
    /// Before any change: where a snapshot starts the stream over.
    pub const START: Self = Self {
        at: (-1, -1),
        count: 0,
        again: None,
    };

    /// One change applied at `at`.
    pub fn at(at: (i64, i64)) -> Self {
        Self {
            at,
            count: 1,
            again: None,
        }
    }

    /// Reads the summary text: `commit/lsn/count`, then `/again` while
    /// Debezium sends again.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('/');
        let mut next = || parts.next().map(str::parse::<i64>);
        let commit = next()?.ok()?;
        let lsn = next()?.ok()?;
        let count = u32::try_from(next()?.ok()?).ok()?;
        let again = match next() {
            None => None,
            Some(again) => Some(u32::try_from(again.ok()?).ok()?),
        };
        next().is_none().then_some(Self {
            at: (commit, lsn),
            count,
            again,
        })
    }
}

impl std::fmt::Display for StreamPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (commit, lsn) = self.at;
        write!(f, "{commit}/{lsn}/{}", self.count)?;
        match self.again {
            Some(again) => write!(f, "/{again}"),
            None => Ok(()),
        }
    }
}

impl SourcePositions {
    /// The positions of `table`: those of the newest snapshot in its
    /// current ancestry that carries any.
    pub fn of(table: &Table) -> Self {
        Self::of_metadata(table.metadata())
    }

    pub(crate) fn of_metadata(metadata: &TableMetadata) -> Self {
        carried(metadata, Self::from_summary).unwrap_or_default()
    }

    /// The positions one snapshot's summary records (floe writes all it
    /// carries into each of its snapshots).
    pub fn in_snapshot(snapshot: &Snapshot) -> Option<Self> {
        Self::from_summary(&snapshot.summary().additional_properties)
    }

    pub(crate) fn from_summary(properties: &HashMap<String, String>) -> Option<Self> {
        let mut out = Self::default();
        for (k, v) in properties {
            if let Some((topic, partition)) = k
                .strip_prefix(STREAM_PREFIX)
                .and_then(|r| r.rsplit_once('.'))
            {
                if let (Ok(partition), Some(at)) = (partition.parse(), StreamPosition::parse(v)) {
                    out.stream.insert((topic.to_string(), partition), at);
                }
                continue;
            }
            let Ok(lsn) = v.parse::<i64>() else { continue };
            if let Some(topic) = k.strip_prefix(RESNAPSHOT_PREFIX) {
                if lsn >= 0 {
                    out.resnapshot.insert(topic.to_string(), lsn);
                }
            } else if let Some(topic) = k.strip_prefix(SNAPSHOT_LSN_PREFIX) {
                out.snapshots.insert(topic.to_string(), lsn);
            } else if let Some(topic) = k.strip_prefix(INCREMENTAL_READ_PREFIX) {
                out.incremental_reads.insert(topic.to_string(), lsn);
            } else if let Some(topic) = k.strip_prefix(TRUNCATE_LSN_PREFIX) {
                out.truncated.insert(topic.to_string(), lsn);
            } else if let Some(topic) = k.strip_prefix(SCHEMA_LSN_PREFIX) {
                out.columns_changed.insert(topic.to_string(), lsn);
            } else if let Some((topic, partition)) =
                k.strip_prefix(LSN_PREFIX).and_then(|r| r.rsplit_once('.'))
            {
                if let Ok(partition) = partition.parse() {
                    out.applied.insert((topic.to_string(), partition), lsn);
                }
            }
        }
        // a floe snapshot without positions (its changes had no LSN) says
        // there are none: the walk back stops at it
        let floe_state = properties.keys().any(|k| k.starts_with(OFFSET_PREFIX));
        (floe_state || !out.applied.is_empty() || !out.truncated.is_empty()).then_some(out)
    }

    /// The highest LSN applied from a topic partition.
    pub fn applied(&self, topic: &str, partition: i32) -> Option<i64> {
        self.applied.get(&(topic.to_string(), partition)).copied()
    }

    /// Each partition of `topic` with the highest LSN applied from it.
    pub fn partitions<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = (i32, i64)> + 'a {
        self.applied
            .iter()
            .filter(move |((t, _), _)| t == topic)
            .map(|((_, p), lsn)| (*p, *lsn))
    }

    /// Where the stream of a topic partition stands.
    pub fn stream(&self, topic: &str, partition: i32) -> Option<StreamPosition> {
        self.stream.get(&(topic.to_string(), partition)).copied()
    }

    /// Records where the stream of a topic partition stands after a batch
    /// (replacing what was: the batch was scanned from it).
    pub fn set_stream(&mut self, topic: &str, partition: i32, at: StreamPosition) {
        self.stream.insert((topic.to_string(), partition), at);
    }

    /// While Debezium snapshots `topic`'s table again: the table's last
    /// sequence number before the snapshot's first read.
    pub fn resnapshot(&self, topic: &str) -> Option<i64> {
        self.resnapshot.get(topic).copied()
    }

    /// Whether a snapshot of any topic is under way.
    pub fn resnapshotting(&self) -> bool {
        !self.resnapshot.is_empty()
    }

    /// Records that a snapshot of `topic` began after the table's
    /// sequence number `before`, or with None that it ended.
    pub fn set_resnapshot(&mut self, topic: &str, before: Option<i64>) {
        self.resnapshot
            .insert(topic.to_string(), before.map_or(-1, |b| b.max(0)));
    }

    /// The source LSN of the newest snapshot of `topic` whose reads the
    /// table applied.
    pub fn snapshot_lsn(&self, topic: &str) -> Option<i64> {
        self.snapshots.get(topic).copied()
    }

    /// Records reads of a snapshot of `topic` at `lsn` (never moving back).
    pub fn read_snapshot(&mut self, topic: &str, lsn: i64) {
        let slot = self.snapshots.entry(topic.to_string()).or_insert(lsn);
        *slot = (*slot).max(lsn);
    }

    /// The window close of the newest incremental snapshot chunk of
    /// `topic` whose reads the table applied.
    pub fn incremental_read(&self, topic: &str) -> Option<i64> {
        self.incremental_reads.get(topic).copied()
    }

    /// Records reads of an incremental chunk of `topic` whose window
    /// closed at `lsn` (never moving back).
    pub fn read_incrementally(&mut self, topic: &str, lsn: i64) {
        let slot = self
            .incremental_reads
            .entry(topic.to_string())
            .or_insert(lsn);
        *slot = (*slot).max(lsn);
    }

    /// The stream positions of `topic`'s partitions.
    pub fn streams<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = StreamPosition> + 'a {
        self.stream
            .iter()
            .filter(move |((t, _), _)| t == topic)
            .map(|(_, at)| *at)
    }

    /// The LSN of the last truncate of `topic` applied.
    pub fn truncated(&self, topic: &str) -> Option<i64> {
        self.truncated.get(topic).copied()
    }

    /// The LSN of the first change of `topic` with the table's latest
    /// columns: changes made before it (come late, on another partition)
    /// must not take the columns back.
    pub fn columns_changed(&self, topic: &str) -> Option<i64> {
        self.columns_changed.get(topic).copied()
    }

    /// Records that the table's columns changed with a change of `topic`
    /// at `lsn` (never moving back).
    pub fn change_columns(&mut self, topic: &str, lsn: i64) {
        let slot = self.columns_changed.entry(topic.to_string()).or_insert(lsn);
        *slot = (*slot).max(lsn);
    }

    /// Records `lsn` as applied from the partition (never moving back).
    pub fn advance(&mut self, topic: &str, partition: i32, lsn: i64) {
        let slot = self
            .applied
            .entry((topic.to_string(), partition))
            .or_insert(lsn);
        *slot = (*slot).max(lsn);
    }

    /// Records a truncate of `topic` at `lsn` (never moving back).
    pub fn truncate(&mut self, topic: &str, lsn: i64) {
        let slot = self.truncated.entry(topic.to_string()).or_insert(lsn);
        *slot = (*slot).max(lsn);
    }

    fn write(&self, properties: &mut HashMap<String, String>) {
        for ((topic, partition), lsn) in &self.applied {
            properties.insert(format!("{LSN_PREFIX}{topic}.{partition}"), lsn.to_string());
        }
        for (topic, lsn) in &self.truncated {
            properties.insert(format!("{TRUNCATE_LSN_PREFIX}{topic}"), lsn.to_string());
        }
        for (topic, lsn) in &self.columns_changed {
            properties.insert(format!("{SCHEMA_LSN_PREFIX}{topic}"), lsn.to_string());
        }
        for ((topic, partition), at) in &self.stream {
            properties.insert(
                format!("{STREAM_PREFIX}{topic}.{partition}"),
                at.to_string(),
            );
        }
        for (topic, before) in self.resnapshot.iter().filter(|(_, b)| **b >= 0) {
            properties.insert(format!("{RESNAPSHOT_PREFIX}{topic}"), before.to_string());
        }
        for (topic, lsn) in &self.snapshots {
            properties.insert(format!("{SNAPSHOT_LSN_PREFIX}{topic}"), lsn.to_string());
        }
        for (topic, lsn) in &self.incremental_reads {
            properties.insert(format!("{INCREMENTAL_READ_PREFIX}{topic}"), lsn.to_string());
        }
    }
}

/// The job run that computed a table's current result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLineage {
    pub job: String,
    pub run_id: String,
    /// Per source table (`ns.name`), the snapshot the run read.
    pub sources: BTreeMap<String, i64>,
}

impl JobLineage {
    /// The lineage of `table`'s current result: that of the newest
    /// snapshot in its ancestry that carries one.
    pub fn of(table: &Table) -> Option<Self> {
        carried(table.metadata(), Self::from_summary)
    }

    pub(crate) fn from_summary(properties: &HashMap<String, String>) -> Option<Self> {
        Some(Self {
            job: properties.get(JOB)?.clone(),
            run_id: properties.get(JOB_RUN_ID).cloned().unwrap_or_default(),
            sources: properties
                .get(JOB_SOURCES)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
        })
    }

    fn write(&self, properties: &mut HashMap<String, String>) {
        properties.insert(JOB.into(), self.job.clone());
        properties.insert(JOB_RUN_ID.into(), self.run_id.clone());
        properties.insert(
            JOB_SOURCES.into(),
            serde_json::to_string(&self.sources).unwrap_or_default(),
        );
    }
}

/// The file a batch load's snapshot loaded (named in its summary).
pub fn loaded_file(snapshot: &Snapshot) -> Option<&str> {
    snapshot
        .summary()
        .additional_properties
        .get(LOADED_FILE)
        .map(String::as_str)
}

/// Whether a snapshot is one of floe's maintenance snapshots (compaction).
pub fn is_maintenance(snapshot: &Snapshot) -> bool {
    snapshot
        .summary()
        .additional_properties
        .contains_key(MAINTENANCE)
}

/// What a floe commit changes in the state it carries forward.
#[derive(Debug, Clone, Default)]
pub struct StateChange {
    /// Kafka offsets this commit applies, (topic, partition, first, last):
    /// the carried offsets advance to `last`, and a table that already
    /// holds `first` is not committed to again.
    pub ranges: Vec<(String, i32, i64, i64)>,
    /// A new job result's lineage (replaces the carried one).
    pub lineage: Option<JobLineage>,
    /// The file a batch load's snapshot loaded.
    pub loaded_file: Option<String>,
    /// Marks a maintenance snapshot (its operation's name).
    pub maintenance: Option<&'static str>,
    /// Source positions this commit applies (highest LSN per partition,
    /// and a truncate's): the carried ones advance to them.
    pub positions: SourcePositions,
}

impl StateChange {
    /// Records the offsets of a batch applied: per partition, the first
    /// and last offset.
    pub fn offsets(topic: &str, ranges: impl IntoIterator<Item = (i32, i64, i64)>) -> Self {
        Self {
            ranges: ranges
                .into_iter()
                .map(|(p, first, last)| (topic.to_string(), p, first, last))
                .collect(),
            ..Self::default()
        }
    }

    /// Marks a maintenance snapshot: `op` names the operation.
    pub fn maintenance(op: &'static str) -> Self {
        Self {
            maintenance: Some(op),
            ..Self::default()
        }
    }

    /// The summary properties of a commit on `base`: the state `base`
    /// carries, with this change.
    pub fn properties(&self, base: &TableMetadata) -> HashMap<String, String> {
        let mut out = HashMap::new();
        let mut offsets = carried(base, KafkaOffsets::from_summary).unwrap_or_default();
        for (topic, partition, _, last) in &self.ranges {
            offsets.advance(topic, *partition, *last);
        }
        offsets.write(&mut out);
        let mut positions = carried(base, SourcePositions::from_summary).unwrap_or_default();
        for ((topic, partition), lsn) in &self.positions.applied {
            positions.advance(topic, *partition, *lsn);
        }
        for (topic, lsn) in &self.positions.truncated {
            positions.truncate(topic, *lsn);
        }
        for (topic, lsn) in &self.positions.columns_changed {
            positions.change_columns(topic, *lsn);
        }
        for ((topic, partition), at) in &self.positions.stream {
            positions.set_stream(topic, *partition, *at);
        }
        for (topic, before) in &self.positions.resnapshot {
            positions.resnapshot.insert(topic.clone(), *before);
        }
        for (topic, lsn) in &self.positions.snapshots {
            positions.read_snapshot(topic, *lsn);
        }
        for (topic, lsn) in &self.positions.incremental_reads {
            positions.read_incrementally(topic, *lsn);
        }
        positions.write(&mut out);
        let lineage = self
            .lineage
            .clone()
            .or_else(|| carried(base, JobLineage::from_summary));
        if let Some(lineage) = lineage {
            lineage.write(&mut out);
        }
        if let Some(file) = &self.loaded_file {
            out.insert(LOADED_FILE.into(), file.clone());
        }
        if let Some(op) = self.maintenance {
            out.insert(MAINTENANCE.into(), op.into());
        }
        out
    }
}

/// The newest state `read` finds along the current snapshot's ancestry.
fn carried<T>(
    metadata: &TableMetadata,
    read: impl Fn(&HashMap<String, String>) -> Option<T>,
) -> Option<T> {
    let mut cursor = metadata.current_snapshot();
    while let Some(snapshot) = cursor {
        if let Some(found) = read(&snapshot.summary().additional_properties) {
            return Some(found);
        }
        cursor = snapshot
            .parent_snapshot_id()
            .and_then(|id| metadata.snapshot_by_id(id));
    }
    None
}

/// The snapshot of `metadata` that last recorded floe state (offsets or
/// lineage) along the current ancestry: expiry keeps it.
pub(crate) fn state_snapshot(metadata: &TableMetadata) -> Option<i64> {
    let mut cursor = metadata.current_snapshot();
    while let Some(snapshot) = cursor {
        let p = &snapshot.summary().additional_properties;
        if KafkaOffsets::from_summary(p).is_some() || JobLineage::from_summary(p).is_some() {
            return Some(snapshot.snapshot_id());
        }
        cursor = snapshot
            .parent_snapshot_id()
            .and_then(|id| metadata.snapshot_by_id(id));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_only_advance() {
        let mut p = HashMap::new();
        let mut o = KafkaOffsets::default();
        o.advance("taxi.public.trips", 0, 41);
        o.advance("taxi.public.trips", 0, 7);
        o.advance("a.b.c", 2, 3);
        o.write(&mut p);
        assert_eq!(p["floe.offset.taxi.public.trips.0"], "41");
        let back = KafkaOffsets::from_summary(&p).unwrap();
        assert_eq!(back, o);
        assert_eq!(back.get("a.b.c", 2), Some(3));
        assert!(KafkaOffsets::from_summary(&HashMap::new()).is_none());
    }

    #[test]
    fn source_positions_round_trip_and_only_advance() {
        let mut p = HashMap::new();
        let mut s = SourcePositions::default();
        s.advance("taxi.public.trips", 2, 900);
        s.advance("taxi.public.trips", 2, 100);
        s.advance("taxi.public.trips", 0, 50);
        s.truncate("taxi.public.trips", 700);
        s.truncate("taxi.public.trips", 600);
        s.change_columns("taxi.public.trips", 650);
        s.write(&mut p);
        assert_eq!(p["floe.schema-lsn.taxi.public.trips"], "650");
        assert_eq!(p["floe.lsn.taxi.public.trips.2"], "900");
        assert_eq!(p["floe.truncate-lsn.taxi.public.trips"], "700");
        let back = SourcePositions::from_summary(&p).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            back.partitions("taxi.public.trips").collect::<Vec<_>>(),
            vec![(0, 50), (2, 900)]
        );
        assert_eq!(back.truncated("taxi.public.trips"), Some(700));
        assert_eq!(back.columns_changed("taxi.public.trips"), Some(650));
        assert_eq!(back.applied("taxi.public.trips", 1), None);
        // a floe snapshot without any: none, and no need to look further
        let offsets_only = HashMap::from([("floe.offset.t.0".to_string(), "3".to_string())]);
        assert_eq!(
            SourcePositions::from_summary(&offsets_only),
            Some(SourcePositions::default())
        );
        assert!(SourcePositions::from_summary(&HashMap::new()).is_none());
    }

    #[test]
    fn lineage_round_trips() {
        let lineage = JobLineage {
            job: "trip_aggregations".into(),
            run_id: "r1".into(),
            sources: BTreeMap::from([("taxi_cdc.trips".to_string(), 42)]),
        };
        let mut p = HashMap::new();
        lineage.write(&mut p);
        assert_eq!(JobLineage::from_summary(&p), Some(lineage));
    }
}
