//! The bridge from rdkafka's messages to floe's [`RawMessage`]. The consumer
//! service itself (`floe ingest`) builds on this.

use rdkafka::message::{BorrowedMessage, Message};

use crate::decoder::RawMessage;

impl<'a> From<&'a BorrowedMessage<'a>> for RawMessage<'a> {
    fn from(m: &'a BorrowedMessage<'a>) -> Self {
        RawMessage {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            value: m.payload(),
        }
    }
}
