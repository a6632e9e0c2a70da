//! How floe reaches object storage: the S3 operators behind Iceberg's
//! `FileIO` ([`S3StorageFactory`]) and behind listings
//! ([`crate::spec::store`]), built the same way from the lake's S3
//! settings, and the HTTP client they send with ([`quick_ack`]).
//!
//! iceberg-storage-opendal builds its S3 operators itself, with OpenDAL's
//! HTTP client; floe's own [`S3Storage`] is the same OpenDAL S3 service
//! with floe's client, so a read does not wait out a delayed ACK (see
//! [`quick_ack`]). Local warehouses keep iceberg-storage-opendal's
//! filesystem storage.

mod quick_ack;
mod s3;

pub(crate) use s3::{s3_builder, s3_operator, S3StorageFactory};
