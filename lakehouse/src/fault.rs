//! Crash points for tests: the process dies at a named point of a commit
//! or a merge, as a `kill -9` there would leave it, so a test can check
//! that a restart finishes or discards what was under way.
//!
//! Set `FLOE_CRASH_AT=<point>` (the first time the point is reached) or
//! `FLOE_CRASH_AT=<point>@<n>` (the n-th time). Unset, a point costs one
//! relaxed load. The points:
//!
//! - `commit.data-written`: a batch's data and delete files are written,
//!   no manifest yet
//! - `commit.written`: a commit's manifests, list and metadata file are
//!   written, the catalog's pointer not yet swapped
//! - `commit.swapped`: the pointer swapped, nothing after it done (the
//!   caller has not seen the commit)
//! - `merge.rewritten`: a merge's new files are written, its commit not
//!   yet begun
//! - `merge.committed`: a merge committed, the writer's index not yet
//!   moved to its files
//! - `dead-letter.written`: dead letters' data file written, not yet
//!   committed
//! - `ingest.committed`: `floe ingest` committed a round of batches to
//!   the tables, the consumer group's offsets not yet committed
//!
//! Not meant for production, so not in the user documentation: a process
//! that reaches the point aborts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The point to crash at and on which visit, from `FLOE_CRASH_AT`.
fn armed() -> Option<&'static (String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var("FLOE_CRASH_AT").ok()?;
            Some(parse(&value))
        })
        .as_ref()
}

fn parse(value: &str) -> (String, u64) {
    match value.rsplit_once('@') {
        Some((point, n)) => match n.trim().parse::<u64>() {
            Ok(n) => (point.trim().to_string(), n.max(1)),
            Err(_) => (value.trim().to_string(), 1),
        },
        None => (value.trim().to_string(), 1),
    }
}

/// Aborts the process if `FLOE_CRASH_AT` names `point` and this is the
/// visit it names.
pub fn point(point: &'static str) {
    static VISITS: AtomicU64 = AtomicU64::new(0);
    let Some((name, on)) = armed() else {
        return;
    };
    if name != point {
        return;
    }
    if VISITS.fetch_add(1, Ordering::Relaxed) + 1 == *on {
        // no destructors, no flushes: what a kill -9 leaves
        eprintln!("floe: crashing at {point} (FLOE_CRASH_AT)");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn points_are_named_with_an_optional_visit() {
        assert_eq!(
            super::parse("merge.rewritten"),
            ("merge.rewritten".into(), 1)
        );
        assert_eq!(
            super::parse("commit.swapped@3"),
            ("commit.swapped".into(), 3)
        );
        assert_eq!(
            super::parse("commit.swapped@0"),
            ("commit.swapped".into(), 1)
        );
        assert_eq!(super::parse("odd@name@x"), ("odd@name@x".into(), 1));
    }
}
