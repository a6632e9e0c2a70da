//! The primary-key index: every live key of a table and where its row is
//! (data file and position). It turns an update or delete into a position
//! delete of exactly the row it replaces, in whatever partition that row
//! lives, which equality deletes cannot do.
//!
//! Tables keyed by one integer column use [`I64Map`] (19–28 bytes per live
//! row); other keys (text, composite) are encoded with Arrow's row format
//! and kept in a `HashMap`.
//!
//! A table without a primary key is keyed by the whole row
//! ([`PrimaryKeyIndex::whole_rows`]): each distinct row's 128-bit hash maps
//! to the places of its copies (a keyless table may hold duplicates), and a
//! delete or update removes one copy, as PostgreSQL's logical replication
//! does with `REPLICA IDENTITY FULL`.
//!
//! A batch changes the index before its commit (each upsert yields the
//! delete of the row it replaces). Between [`PrimaryKeyIndex::begin`] and
//! [`PrimaryKeyIndex::keep`] every change is journaled, so a commit that
//! does not happen is undone ([`PrimaryKeyIndex::rollback`]) in the
//! batch's time, never by building the index again.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int16Array, Int32Array, Int64Array, StructArray};
use arrow_row::SortField;
use arrow_schema::DataType;

use crate::error::LakehouseError;
use crate::index::i64_map::I64Map;
use crate::spec::position_delete::PositionDelete;

/// Where a live row is: a data file (by id, see
/// [`PrimaryKeyIndex::register_file`]) and the row's position in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RowLocation {
    pub file: u32,
    pub pos: u32,
}

enum Keys {
    Int(I64Map<RowLocation>),
    Encoded {
        converter: arrow_row::RowConverter,
        map: HashMap<Box<[u8]>, RowLocation>,
    },
    /// Whole rows (tables without a key): a row's hash to its copies.
    Rows {
        converter: arrow_row::RowConverter,
        map: HashMap<u128, Vec<RowLocation>>,
        len: usize,
    },
}

/// The keys of a batch's rows, in the index's representation.
pub enum BatchKeys {
    Int(Vec<Option<i64>>),
    Encoded(arrow_row::Rows, Vec<bool>),
    Rows(Vec<Option<u128>>),
    /// A batch with no key column at all (e.g. only a truncate): `n` rows,
    /// none with a key.
    Absent(usize),
}

impl BatchKeys {
    pub fn len(&self) -> usize {
        match self {
            BatchKeys::Int(v) => v.len(),
            BatchKeys::Encoded(_, valid) => valid.len(),
            BatchKeys::Rows(hashes) => hashes.len(),
            BatchKeys::Absent(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of row `i`; None for a row without a key (a truncate).
    pub fn get(&self, i: usize) -> Option<Key<'_>> {
        match self {
            BatchKeys::Int(v) => v[i].map(Key::Int),
            BatchKeys::Encoded(rows, valid) => valid[i].then(|| Key::Encoded(rows.row(i).data())),
            BatchKeys::Rows(hashes) => hashes[i].map(Key::Row),
            BatchKeys::Absent(_) => None,
        }
    }
}

/// One key, borrowed from [`BatchKeys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key<'a> {
    Int(i64),
    Encoded(&'a [u8]),
    /// A whole row's hash.
    Row(u128),
}

/// Every live key of a table and where its row is.
pub struct PrimaryKeyIndex {
    files: Vec<Arc<str>>,
    file_ids: HashMap<Arc<str>, u32>,
    keys: Keys,
    /// While a batch runs: how to undo each change, oldest first.
    journal: Option<Vec<Undo>>,
    /// How many of the journal's first changes are a launched batch's,
    /// whose commit has not landed yet (see [`PrimaryKeyIndex::hold`]).
    held: Option<usize>,
}

/// A key as the journal keeps it.
enum OwnedKey {
    Int(i64),
    Encoded(Box<[u8]>),
}

/// One change of the index, as its undoing needs it.
enum Undo {
    /// `key` pointed at the location (None: it was absent).
    Key(OwnedKey, Option<RowLocation>),
    /// A copy of a whole row was added at the location.
    CopyInserted(u128, RowLocation),
    /// A copy of a whole row was removed from the location.
    CopyRemoved(u128, RowLocation),
    /// Every key was forgotten (a truncate): the map as it was.
    Cleared(SavedKeys),
    /// Rows moved (a fill rewrote their files): new place to old.
    Relocated(HashMap<RowLocation, RowLocation>),
}

/// The map of [`Keys`] without its encoder.
enum SavedKeys {
    Int(I64Map<RowLocation>),
    Encoded(HashMap<Box<[u8]>, RowLocation>),
    Rows(HashMap<u128, Vec<RowLocation>>, usize),
}

fn is_integer(t: &DataType) -> bool {
    matches!(t, DataType::Int64 | DataType::Int32 | DataType::Int16)
}

impl PrimaryKeyIndex {
    /// An empty index for keys of these column types.
    pub fn new(key_types: &[DataType]) -> Result<Self, LakehouseError> {
        let keys = match key_types {
            [t] if is_integer(t) => Keys::Int(I64Map::new()),
            _ => {
                let fields = key_types
                    .iter()
                    .map(|t| SortField::new(t.clone()))
                    .collect();
                let converter =
                    arrow_row::RowConverter::new(fields).map_err(|e| LakehouseError::Arrow {
                        context: "primary-key encoding".into(),
                        source: e,
                    })?;
                Keys::Encoded {
                    converter,
                    map: HashMap::new(),
                }
            }
        };
        Ok(Self {
            files: Vec::new(),
            file_ids: HashMap::new(),
            keys,
            journal: None,
            held: None,
        })
    }

    /// An empty index of whole rows of these column types (a table without
    /// a primary key).
    pub fn whole_rows(column_types: &[DataType]) -> Result<Self, LakehouseError> {
        let fields = column_types
            .iter()
            .map(|t| SortField::new(t.clone()))
            .collect();
        let converter =
            arrow_row::RowConverter::new(fields).map_err(|e| LakehouseError::Arrow {
                context: "whole-row keys (a table without a primary key)".into(),
                source: e,
            })?;
        Ok(Self {
            files: Vec::new(),
            file_ids: HashMap::new(),
            keys: Keys::Rows {
                converter,
                map: HashMap::new(),
                len: 0,
            },
            journal: None,
            held: None,
        })
    }

    /// Whether rows are keyed by their whole value (no primary key).
    pub fn is_whole_rows(&self) -> bool {
        matches!(self.keys, Keys::Rows { .. })
    }

    pub fn len(&self) -> usize {
        match &self.keys {
            Keys::Int(m) => m.len(),
            Keys::Encoded { map, .. } => map.len(),
            Keys::Rows { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap bytes held (keys, locations, file paths).
    pub fn heap_bytes(&self) -> usize {
        let keys = match &self.keys {
            Keys::Int(m) => m.heap_bytes(),
            Keys::Encoded { map, .. } => {
                map.capacity() * (std::mem::size_of::<(Box<[u8]>, RowLocation)>() + 1)
                    + map.keys().map(|k| k.len()).sum::<usize>()
            }
            Keys::Rows { map, .. } => {
                map.capacity() * (std::mem::size_of::<(u128, Vec<RowLocation>)>() + 1)
                    + map
                        .values()
                        .map(|v| v.capacity() * std::mem::size_of::<RowLocation>())
                        .sum::<usize>()
            }
        };
        keys + self.files.iter().map(|p| p.len() * 2 + 48).sum::<usize>()
    }

    /// The id of a data file, registering it on first sight.
    pub fn register_file(&mut self, path: &str) -> u32 {
        if let Some(id) = self.file_ids.get(path) {
            return *id;
        }
        let id = self.files.len() as u32;
        let path: Arc<str> = Arc::from(path);
        self.files.push(path.clone());
        self.file_ids.insert(path, id);
        id
    }

    fn delete_of(&self, loc: RowLocation) -> PositionDelete {
        PositionDelete {
            file_path: self.files[loc.file as usize].clone(),
            pos: i64::from(loc.pos),
        }
    }

    /// The keys of `key` (a batch's `_key` struct, one column per key field).
    pub fn batch_keys(&self, key: &StructArray) -> Result<BatchKeys, LakehouseError> {
        match &self.keys {
            Keys::Int(_) => {
                let column = key.column(0);
                let values: Vec<Option<i64>> =
                    if let Some(a) = column.as_any().downcast_ref::<Int64Array>() {
                        (0..a.len())
                            .map(|i| key.is_valid(i).then(|| a.value(i)))
                            .collect()
                    } else if let Some(a) = column.as_any().downcast_ref::<Int32Array>() {
                        (0..a.len())
                            .map(|i| key.is_valid(i).then(|| i64::from(a.value(i))))
                            .collect()
                    } else if let Some(a) = column.as_any().downcast_ref::<Int16Array>() {
                        (0..a.len())
                            .map(|i| key.is_valid(i).then(|| i64::from(a.value(i))))
                            .collect()
                    } else {
                        return Err(LakehouseError::SchemaMismatch {
                            table: String::new(),
                            reason: format!(
                                "primary key column is {}, not an integer",
                                column.data_type()
                            ),
                        });
                    };
                Ok(BatchKeys::Int(values))
            }
            Keys::Encoded { converter, .. } => {
                let columns: Vec<ArrayRef> = key.columns().to_vec();
                let rows =
                    converter
                        .convert_columns(&columns)
                        .map_err(|e| LakehouseError::Arrow {
                            context: "primary-key encoding".into(),
                            source: e,
                        })?;
                let valid = (0..key.len()).map(|i| key.is_valid(i)).collect();
                Ok(BatchKeys::Encoded(rows, valid))
            }
            Keys::Rows { converter, .. } => {
                let columns: Vec<ArrayRef> = key.columns().to_vec();
                let rows =
                    converter
                        .convert_columns(&columns)
                        .map_err(|e| LakehouseError::Arrow {
                            context: "whole-row keys".into(),
                            source: e,
                        })?;
                Ok(BatchKeys::Rows(
                    (0..key.len())
                        .map(|i| key.is_valid(i).then(|| row_hash(rows.row(i).data())))
                        .collect(),
                ))
            }
        }
    }

    /// Adds one copy of a whole row (a table without a key).
    pub fn insert_copy(&mut self, key: Key<'_>, loc: RowLocation) {
        if let (Keys::Rows { map, len, .. }, Key::Row(hash)) = (&mut self.keys, key) {
            map.entry(hash).or_default().push(loc);
            *len += 1;
            self.record(|| Undo::CopyInserted(hash, loc));
        }
    }

    /// Removes one copy of a whole row; returns its position delete, if
    /// the table held one.
    pub fn remove_copy(&mut self, key: Key<'_>) -> Option<PositionDelete> {
        let (Keys::Rows { map, len, .. }, Key::Row(hash)) = (&mut self.keys, key) else {
            return None;
        };
        let copies = map.get_mut(&hash)?;
        let loc = copies.pop()?;
        if copies.is_empty() {
            map.remove(&hash);
        }
        *len -= 1;
        self.record(|| Undo::CopyRemoved(hash, loc));
        Some(self.delete_of(loc))
    }

    /// Forgets `key` if its row (or, for whole rows, one of its copies) is
    /// at `loc`: a row another writer deleted or rewrote away. Returns
    /// whether it did.
    pub fn remove_at(&mut self, key: Key<'_>, loc: RowLocation) -> bool {
        match (&mut self.keys, key) {
            (Keys::Int(m), Key::Int(k)) if m.get(k) == Some(loc) => {
                m.remove(k);
                self.record(|| Undo::Key(OwnedKey::Int(k), Some(loc)));
                true
            }
            (Keys::Encoded { map, .. }, Key::Encoded(bytes)) if map.get(bytes) == Some(&loc) => {
                map.remove(bytes);
                self.record(|| Undo::Key(OwnedKey::Encoded(Box::from(bytes)), Some(loc)));
                true
            }
            (Keys::Rows { map, len, .. }, Key::Row(hash)) => {
                let Some(copies) = map.get_mut(&hash) else {
                    return false;
                };
                let Some(at) = copies.iter().position(|c| *c == loc) else {
                    return false;
                };
                copies.remove(at);
                if copies.is_empty() {
                    map.remove(&hash);
                }
                *len -= 1;
                self.record(|| Undo::CopyRemoved(hash, loc));
                true
            }
            _ => false,
        }
    }

    /// The id of a registered data file.
    pub fn file_id(&self, path: &str) -> Option<u32> {
        self.file_ids.get(path).copied()
    }

    /// Starts journaling changes (a batch begins). With a batch held
    /// (launched, its commit not landed), the new batch's changes are
    /// journaled after the held ones.
    pub fn begin(&mut self) {
        if self.held.is_none() || self.journal.is_none() {
            self.held = None;
            self.journal = Some(Vec::new());
        }
    }

    /// Keeps the changes since [`begin`](Self::begin) (the batch committed).
    pub fn keep(&mut self) {
        self.journal = None;
        self.held = None;
    }

    /// The batch since [`begin`](Self::begin) is launched, its commit not
    /// landed yet: its changes stay journaled, apart from the next
    /// batch's, until [`release_held`](Self::release_held) or
    /// [`rollback_all`](Self::rollback_all).
    pub fn hold(&mut self) {
        let journal = self.journal.get_or_insert_with(Vec::new);
        self.held = Some(journal.len());
    }

    /// The held batch's commit landed: its changes stay for good, and a
    /// batch begun since keeps its own journal.
    pub fn release_held(&mut self) {
        if let (Some(n), Some(journal)) = (self.held.take(), self.journal.as_mut()) {
            journal.drain(..n.min(journal.len()));
        }
    }

    /// Undoes every change since [`begin`](Self::begin): the index is as
    /// it was when the batch began (a held batch's changes stay).
    pub fn rollback(&mut self) {
        let Some(mut journal) = self.journal.take() else {
            return;
        };
        let undone = match self.held {
            Some(n) => {
                let undone = journal.split_off(n.min(journal.len()));
                self.journal = Some(journal);
                undone
            }
            None => journal,
        };
        self.undo(undone);
    }

    /// Undoes the held batch's changes too: its commit did not land.
    pub fn rollback_all(&mut self) {
        self.held = None;
        if let Some(journal) = self.journal.take() {
            self.undo(journal);
        }
    }

    fn undo(&mut self, undone: Vec<Undo>) {
        for undo in undone.into_iter().rev() {
            match (undo, &mut self.keys) {
                (Undo::Key(OwnedKey::Int(k), before), Keys::Int(m)) => {
                    match before {
                        Some(loc) => m.insert(k, loc),
                        None => m.remove(k),
                    };
                }
                (Undo::Key(OwnedKey::Encoded(k), before), Keys::Encoded { map, .. }) => {
                    match before {
                        Some(loc) => map.insert(k, loc),
                        None => map.remove(&k),
                    };
                }
                (Undo::CopyInserted(hash, loc), Keys::Rows { map, len, .. }) => {
                    if let Some(copies) = map.get_mut(&hash) {
                        if let Some(at) = copies.iter().rposition(|c| *c == loc) {
                            copies.remove(at);
                            *len -= 1;
                        }
                        if copies.is_empty() {
                            map.remove(&hash);
                        }
                    }
                }
                (Undo::CopyRemoved(hash, loc), Keys::Rows { map, len, .. }) => {
                    map.entry(hash).or_default().push(loc);
                    *len += 1;
                }
                (Undo::Cleared(saved), keys) => match (saved, keys) {
                    (SavedKeys::Int(saved), Keys::Int(m)) => *m = saved,
                    (SavedKeys::Encoded(saved), Keys::Encoded { map, .. }) => *map = saved,
                    (SavedKeys::Rows(saved, n), Keys::Rows { map, len, .. }) => {
                        *map = saved;
                        *len = n;
                    }
                    _ => {}
                },
                (Undo::Relocated(back), _) => {
                    self.move_rows(|loc| back.get(&loc).copied());
                }
                _ => {}
            }
        }
    }

    /// Adds an undo step while journaling.
    fn record(&mut self, undo: impl FnOnce() -> Undo) {
        if let Some(journal) = &mut self.journal {
            journal.push(undo());
        }
    }

    /// Moves every row to where `moved` says it is now (its file rewritten:
    /// `moved(file id, position)` gives the new place, or None when the
    /// row's file was not rewritten).
    pub fn relocate(&mut self, mut moved: impl FnMut(RowLocation) -> Option<RowLocation>) {
        if self.journal.is_none() {
            self.move_rows(moved);
            return;
        }
        let mut back = HashMap::new();
        self.move_rows(|loc| {
            let to = moved(loc)?;
            back.insert(to, loc);
            Some(to)
        });
        self.record(|| Undo::Relocated(back));
    }

    fn move_rows(&mut self, mut moved: impl FnMut(RowLocation) -> Option<RowLocation>) {
        let mut apply = |loc: &mut RowLocation| {
            if let Some(to) = moved(*loc) {
                *loc = to;
            }
        };
        match &mut self.keys {
            Keys::Int(m) => m.values_mut().for_each(&mut apply),
            Keys::Encoded { map, .. } => map.values_mut().for_each(&mut apply),
            Keys::Rows { map, .. } => map.values_mut().flatten().for_each(&mut apply),
        }
    }

    /// The path of a registered data file.
    pub fn file_path(&self, file: u32) -> Option<&Arc<str>> {
        self.files.get(file as usize)
    }

    /// Points `key` at `loc`; returns the position delete of the row it
    /// pointed at before, if the key was live.
    pub fn upsert(&mut self, key: Key<'_>, loc: RowLocation) -> Option<PositionDelete> {
        let previous = match (&mut self.keys, key) {
            (Keys::Int(m), Key::Int(k)) => {
                let previous = m.insert(k, loc);
                self.record(|| Undo::Key(OwnedKey::Int(k), previous));
                previous
            }
            (Keys::Encoded { map, .. }, Key::Encoded(bytes)) => {
                let previous = map.insert(Box::from(bytes), loc);
                self.record(|| Undo::Key(OwnedKey::Encoded(Box::from(bytes)), previous));
                previous
            }
            (Keys::Rows { .. }, key @ Key::Row(_)) => {
                self.insert_copy(key, loc);
                None
            }
            _ => None,
        };
        previous.map(|p| self.delete_of(p))
    }

    /// Forgets `key`; returns the position delete of its row, if it was live.
    pub fn remove(&mut self, key: Key<'_>) -> Option<PositionDelete> {
        let previous = match (&mut self.keys, key) {
            (Keys::Int(m), Key::Int(k)) => {
                let previous = m.remove(k);
                if previous.is_some() {
                    self.record(|| Undo::Key(OwnedKey::Int(k), previous));
                }
                previous
            }
            (Keys::Encoded { map, .. }, Key::Encoded(bytes)) => {
                let previous = map.remove(bytes);
                if previous.is_some() {
                    self.record(|| Undo::Key(OwnedKey::Encoded(Box::from(bytes)), previous));
                }
                previous
            }
            (Keys::Rows { .. }, key @ Key::Row(_)) => return self.remove_copy(key),
            _ => None,
        };
        previous.map(|p| self.delete_of(p))
    }

    /// Where `key`'s row is, if live.
    pub fn get(&self, key: Key<'_>) -> Option<(Arc<str>, u32)> {
        let loc = match (&self.keys, key) {
            (Keys::Int(m), Key::Int(k)) => m.get(k),
            (Keys::Encoded { map, .. }, Key::Encoded(bytes)) => map.get(bytes).copied(),
            (Keys::Rows { map, .. }, Key::Row(hash)) => map.get(&hash)?.last().copied(),
            _ => None,
        }?;
        Some((self.files[loc.file as usize].clone(), loc.pos))
    }

    /// The position delete of every live row (a truncate deletes them all).
    pub fn locations(&self) -> Vec<PositionDelete> {
        match &self.keys {
            Keys::Int(m) => m.iter().map(|(_, loc)| self.delete_of(loc)).collect(),
            Keys::Encoded { map, .. } => map.values().map(|loc| self.delete_of(*loc)).collect(),
            Keys::Rows { map, .. } => map
                .values()
                .flatten()
                .map(|loc| self.delete_of(*loc))
                .collect(),
        }
    }

    /// Forgets every row in a file `stale` picks; returns their position
    /// deletes (journaled like single removals). A re-snapshot drops the
    /// rows it did not read again.
    pub fn remove_in_files(&mut self, stale: impl Fn(u32) -> bool) -> Vec<PositionDelete> {
        let mut gone: Vec<RowLocation> = Vec::new();
        let mut undo: Vec<Undo> = Vec::new();
        match &mut self.keys {
            Keys::Int(m) => {
                let keys: Vec<(i64, RowLocation)> =
                    m.iter().filter(|(_, loc)| stale(loc.file)).collect();
                for (k, loc) in keys {
                    m.remove(k);
                    undo.push(Undo::Key(OwnedKey::Int(k), Some(loc)));
                    gone.push(loc);
                }
            }
            Keys::Encoded { map, .. } => {
                map.retain(|k, loc| {
                    let keep = !stale(loc.file);
                    if !keep {
                        undo.push(Undo::Key(OwnedKey::Encoded(k.clone()), Some(*loc)));
                        gone.push(*loc);
                    }
                    keep
                });
            }
            Keys::Rows { map, len, .. } => {
                map.retain(|hash, copies| {
                    copies.retain(|loc| {
                        let keep = !stale(loc.file);
                        if !keep {
                            undo.push(Undo::CopyRemoved(*hash, *loc));
                            gone.push(*loc);
                            *len -= 1;
                        }
                        keep
                    });
                    !copies.is_empty()
                });
            }
        }
        if let Some(journal) = &mut self.journal {
            journal.extend(undo);
        }
        gone.into_iter().map(|loc| self.delete_of(loc)).collect()
    }

    /// Forgets every key (a truncate).
    pub fn clear(&mut self) {
        if self.journal.is_some() {
            // the map moves into the journal whole: undoing is a move back
            let saved = match &mut self.keys {
                Keys::Int(m) => SavedKeys::Int(std::mem::take(m)),
                Keys::Encoded { map, .. } => SavedKeys::Encoded(std::mem::take(map)),
                Keys::Rows { map, len, .. } => {
                    SavedKeys::Rows(std::mem::take(map), std::mem::take(len))
                }
            };
            self.record(|| Undo::Cleared(saved));
            return;
        }
        match &mut self.keys {
            Keys::Int(m) => m.clear(),
            Keys::Encoded { map, .. } => map.clear(),
            Keys::Rows { map, len, .. } => {
                map.clear();
                *len = 0;
            }
        }
    }

    /// Where `key`'s row is, as a location, if live.
    pub fn location(&self, key: Key<'_>) -> Option<RowLocation> {
        match (&self.keys, key) {
            (Keys::Int(m), Key::Int(k)) => m.get(k),
            (Keys::Encoded { map, .. }, Key::Encoded(bytes)) => map.get(bytes).copied(),
            (Keys::Rows { map, .. }, Key::Row(hash)) => map.get(&hash)?.last().copied(),
            _ => None,
        }
    }
}

/// A 128-bit hash of a row's encoding: two SipHash passes seeded apart
/// (the standard library's hasher with its fixed keys; the index is built
/// again whenever a writer opens, so the hash is never stored). Two
/// different rows colliding is a 2^-128 event.
fn row_hash(bytes: &[u8]) -> u128 {
    use std::hash::{Hash, Hasher};
    let mut a = std::hash::DefaultHasher::new();
    bytes.hash(&mut a);
    let mut b = std::hash::DefaultHasher::new();
    0x5f1b_e6c4_u32.hash(&mut b);
    bytes.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Upsert(i64, u32),
        Remove(i64),
        RemoveAt(i64, u32),
        Clear,
        Shift,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0..40i64, 0..50u32).prop_map(|(k, p)| Step::Upsert(k, p)),
            3 => (0..40i64).prop_map(Step::Remove),
            2 => (0..40i64, 0..50u32).prop_map(|(k, p)| Step::RemoveAt(k, p)),
            1 => Just(Step::Clear),
            1 => Just(Step::Shift),
        ]
    }

    /// Every (key, file, position) of the index, in order.
    fn contents(index: &PrimaryKeyIndex) -> Vec<(String, i64)> {
        let mut all: Vec<(String, i64)> = index
            .locations()
            .into_iter()
            .map(|d| (d.file_path.to_string(), d.pos))
            .collect();
        all.sort();
        all
    }

    fn run(index: &mut PrimaryKeyIndex, steps: &[Step], key: impl Fn(i64) -> Vec<u8>) {
        let file = index.register_file("f");
        for s in steps {
            match *s {
                Step::Upsert(k, p) => {
                    let bytes = key(k);
                    index.upsert(key_of(index, &bytes, k), RowLocation { file, pos: p });
                }
                Step::Remove(k) => {
                    let bytes = key(k);
                    index.remove(key_of(index, &bytes, k));
                }
                Step::RemoveAt(k, p) => {
                    let bytes = key(k);
                    index.remove_at(key_of(index, &bytes, k), RowLocation { file, pos: p });
                }
                Step::Clear => index.clear(),
                Step::Shift => index.relocate(|l| {
                    Some(RowLocation {
                        pos: l.pos + 100,
                        ..l
                    })
                }),
            }
        }
    }

    fn key_of<'a>(index: &PrimaryKeyIndex, bytes: &'a [u8], k: i64) -> Key<'a> {
        match index.keys {
            Keys::Int(_) => Key::Int(k),
            Keys::Encoded { .. } => Key::Encoded(bytes),
            Keys::Rows { .. } => Key::Row(k as u128),
        }
    }

    proptest! {
        /// Whatever a batch did, rolling it back leaves the index as the
        /// batch found it, for every kind of key.
        #[test]
        fn a_rolled_back_batch_leaves_the_index_as_it_was(
            before in proptest::collection::vec(step(), 0..60),
            batch in proptest::collection::vec(step(), 0..60),
        ) {
            let kinds = [
                PrimaryKeyIndex::new(&[DataType::Int64]).unwrap(),
                PrimaryKeyIndex::new(&[DataType::Utf8]).unwrap(),
                PrimaryKeyIndex::whole_rows(&[DataType::Int64]).unwrap(),
            ];
            for mut index in kinds {
                let key = |k: i64| format!("k{k}").into_bytes();
                run(&mut index, &before, key);
                let expected = (contents(&index), index.len());
                index.begin();
                run(&mut index, &batch, key);
                index.rollback();
                prop_assert_eq!((contents(&index), index.len()), expected.clone());
                // and a kept batch stays
                index.begin();
                run(&mut index, &batch, key);
                let after = (contents(&index), index.len());
                index.keep();
                index.rollback();
                prop_assert_eq!((contents(&index), index.len()), after);
            }
        }
    }
}
