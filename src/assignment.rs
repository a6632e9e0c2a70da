//! What `floe ingest` does when the consumer group moves partitions: where
//! each newly assigned partition starts reading, and taking partitions
//! back under either rebalance protocol.
//!
//! Several instances in one group share the work: Kafka assigns each
//! partition to one of them, and moves partitions when an instance joins,
//! leaves or stops answering (a kill -9 is noticed after
//! `session.timeout.ms`). Correctness never depends on where a partition
//! starts: every table holds the offsets it has applied, and a batch is
//! applied only past them (a commit that lost the race to another
//! instance's is planned again on the newer table). Where it starts
//! decides only how much is read twice, so it is the furthest of:
//!
//! - the offset the tables held when this instance started, or that this
//!   instance committed since (it may be stale: the partition may have
//!   been with another instance meanwhile);
//! - the group's committed offset, which every instance commits right
//!   after its Iceberg commits (never ahead of the tables).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

/// How long a newly assigned partition waits for the group's committed
/// offsets before starting from what this instance knows.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a newly assigned partition starts, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// After the offset the tables hold, as this instance last saw them.
    Table(i64),
    /// At the group's committed offset, further on than this instance
    /// knew the tables to be (another instance applied more meanwhile).
    Group(i64),
    /// Neither is known: the group's default (`auto.offset.reset`).
    Default,
}

/// The further of the next offset this instance holds for a partition
/// and the group's committed one.
pub(crate) fn start(held: Option<i64>, committed: Option<i64>) -> Start {
    match (held, committed) {
        (Some(h), Some(c)) if c > h => Start::Group(c),
        (Some(h), _) => Start::Table(h),
        (None, Some(c)) => Start::Group(c),
        (None, None) => Start::Default,
    }
}

/// Sets each partition of `tpl` to where it starts, given the next offsets
/// this instance holds per (topic, partition).
pub(crate) fn seek_assigned<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    held: &HashMap<(String, i32), i64>,
    tpl: &mut TopicPartitionList,
) {
    // a group coordinator that does not answer costs the rereading only
    let committed: HashMap<(String, i32), i64> = match consumer
        .committed_offsets(tpl.clone(), COMMITTED_TIMEOUT)
    {
        Ok(list) => list
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(n) => Some(((e.topic().to_string(), e.partition()), n)),
                _ => None,
            })
            .collect(),
        Err(e) => {
            tracing::warn!("cannot read the group's committed offsets; partitions start from the offsets this instance holds: {e}");
            HashMap::new()
        }
    };
    let keys: Vec<(String, i32)> = tpl
        .elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect();
    for (topic, partition) in keys {
        let key = (topic, partition);
        let offset = match start(held.get(&key).copied(), committed.get(&key).copied()) {
            Start::Table(next) => {
                tracing::info!(topic = %key.0, partition, offset = next, "resuming from the offset the table holds");
                next
            }
            Start::Group(next) => {
                tracing::info!(topic = %key.0, partition, offset = next, "resuming from the group's committed offset (another instance applied up to it)");
                next
            }
            Start::Default => continue,
        };
        if let Err(e) = tpl.set_partition_offset(&key.0, partition, Offset::Offset(offset)) {
            tracing::warn!(topic = %key.0, partition, "cannot set the starting offset: {e}");
        }
    }
}

/// Adds `tpl` to the assignment, as the group's protocol wants it.
pub(crate) fn assign<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
) -> KafkaResult<()> {
    if cooperative(consumer) {
        consumer.incremental_assign(tpl)
    } else {
        consumer.assign(tpl)
    }
}

/// Takes `tpl` out of the assignment (all of it, under the eager protocol).
pub(crate) fn revoke<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
) -> KafkaResult<()> {
    if cooperative(consumer) {
        consumer.incremental_unassign(tpl)
    } else {
        consumer.unassign()
    }
}

/// Under `partition.assignment.strategy = "cooperative-sticky"` a
/// rebalance moves only the partitions that change hands.
fn cooperative<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> bool {
    matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    )
}

/// `(topic, partition)` of each element, for logs.
pub(crate) fn describe(tpl: &TopicPartitionList) -> String {
    let mut parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect();
    parts.sort();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_starts_at_the_furthest_known_offset() {
        // the tables as this instance saw them are behind the group: another
        // instance applied more while it held the partition
        assert_eq!(start(Some(100), Some(900)), Start::Group(900));
        // the group offset trails (committed after the Iceberg commit, or a
        // commit was lost): the tables win
        assert_eq!(start(Some(900), Some(100)), Start::Table(900));
        assert_eq!(start(Some(900), Some(900)), Start::Table(900));
        assert_eq!(start(Some(7), None), Start::Table(7));
        assert_eq!(start(None, Some(7)), Start::Group(7));
        assert_eq!(start(None, None), Start::Default);
    }
}
