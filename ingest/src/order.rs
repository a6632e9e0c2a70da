//! Source order across the partitions of one topic.
//!
//! Debezium keys each change by the row's primary key, so a row's changes
//! share a partition and arrive in the order Postgres made them. Two kinds
//! of event have no key and may land on any partition: a truncate, and
//! every change of a table without a primary key. Across partitions Kafka
//! keeps no order, so a batch holding several partitions is put back in
//! source order before it is applied: the partitions are merged by the
//! events' log sequence numbers, each partition's own order kept.
//!
//! The LSN order is the one that matters for the table: a truncate takes
//! Postgres's strongest table lock, so every change to the table made by
//! another transaction has its LSN below the truncate's (it committed
//! first) or above its commit (it waited for it). An event without an LSN
//! (a source other than Postgres) keeps its place behind the event before
//! it in its partition.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use arrow_array::{Array, Int32Array, Int64Array, UInt32Array};
use arrow_schema::ArrowError;

use crate::batch::{columns, ChangeBatch};

/// The row indices of a batch in source order: each partition's rows in
/// their own order, partitions merged by LSN, ties (and rows without an
/// LSN before any with one) by where they arrived.
pub fn source_order(partitions: &[i32], lsns: &[Option<i64>]) -> Vec<u32> {
    // each partition's rows, in arrival order
    let mut queues: Vec<(i32, Vec<u32>)> = Vec::new();
    for (i, &p) in partitions.iter().enumerate() {
        match queues.iter_mut().find(|(q, _)| *q == p) {
            Some((_, rows)) => rows.push(i as u32),
            None => queues.push((p, vec![i as u32])),
        }
    }
    if queues.len() < 2 {
        return (0..partitions.len() as u32).collect();
    }
    // a row without an LSN sorts with the last LSN its partition showed
    let mut carried: Vec<i64> = vec![i64::MIN; queues.len()];
    let mut next: Vec<usize> = vec![0; queues.len()];
    let key = |q: usize, row: u32, carried: &[i64]| {
        let lsn = lsns.get(row as usize).copied().flatten();
        (lsn.unwrap_or(carried[q]), row)
    };
    let mut heads = BinaryHeap::new();
    for (q, (_, rows)) in queues.iter().enumerate() {
        heads.push(Reverse((key(q, rows[0], &carried), q)));
    }
    let mut order = Vec::with_capacity(partitions.len());
    while let Some(Reverse(((lsn, row), q))) = heads.pop() {
        order.push(row);
        carried[q] = lsn;
        next[q] += 1;
        if let Some(&row) = queues[q].1.get(next[q]) {
            heads.push(Reverse((key(q, row, &carried), q)));
        }
    }
    order
}

impl ChangeBatch {
    /// The batch with its rows in source order (see the module docs); a
    /// batch whose rows come from one partition is returned as it is (its
    /// offsets do not decide: a batch may carry rows read again from other
    /// partitions).
    pub fn in_source_order(self) -> Result<ChangeBatch, ArrowError> {
        let partitions = self
            .records
            .column_by_name(columns::PARTITION)
            .and_then(|c| c.as_any().downcast_ref::<Int32Array>())
            .map(|a| a.values().to_vec())
            .unwrap_or_default();
        let lsns: Vec<Option<i64>> = self
            .records
            .column_by_name(columns::SOURCE_LSN)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let order = source_order(&partitions, &lsns);
        if order.iter().enumerate().all(|(i, &row)| i as u32 == row) {
            return Ok(self);
        }
        let records =
            arrow_select::take::take_record_batch(&self.records, &UInt32Array::from(order))?;
        Ok(ChangeBatch { records, ..self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_merge_by_lsn_and_keep_their_own_order() {
        // partition 1's truncate (lsn 50) arrived between partition 0's
        // changes from before it (10, 40) and after it (60); partition 2's
        // came first though made last
        let partitions = [2, 0, 1, 0, 0];
        let lsns = [Some(70), Some(10), Some(50), Some(40), Some(60)];
        assert_eq!(source_order(&partitions, &lsns), vec![1, 3, 2, 4, 0]);
    }

    #[test]
    fn a_partition_out_of_lsn_order_is_not_reordered_within() {
        // two transactions committed in the other order than their LSNs:
        // Postgres sent 30 before 20, and so must floe apply them
        let partitions = [0, 0, 1];
        let lsns = [Some(30), Some(20), Some(25)];
        assert_eq!(source_order(&partitions, &lsns), vec![2, 0, 1]);
    }

    #[test]
    fn rows_without_an_lsn_follow_the_row_before_them() {
        let partitions = [0, 1, 0, 1];
        let lsns = [Some(5), None, None, Some(1)];
        // partition 1's first row has no LSN yet: it goes first; partition
        // 0's second row sorts as 5, after partition 1's 1
        assert_eq!(source_order(&partitions, &lsns), vec![1, 3, 0, 2]);
    }

    #[test]
    fn one_partition_keeps_arrival_order() {
        let lsns = [Some(3), Some(1), Some(2)];
        assert_eq!(source_order(&[4, 4, 4], &lsns), vec![0, 1, 2]);
    }
}
