#![doc = include_str!("../README.md")]

pub mod audits;
mod blob_index;
pub mod blobs;
mod blossom;
#[cfg(feature = "cashu")]
pub mod cashu;
pub mod config;
pub mod conformance;
pub mod identity;
mod linger;
pub mod payment;
pub mod range;
#[cfg(feature = "s3")]
pub mod s3;
pub mod server;
pub mod store;

pub use blobs::{BlobInfo, BlobStore, BlobStoreError, FsBlobStore, IndexDb};
pub use config::{AuthPolicy, BlossomConfig, Config};
#[cfg(feature = "s3")]
pub use s3::S3BlobStore;
pub use server::{Relay, ServeError};
#[cfg(feature = "postgres")]
pub use store::PostgresEventStore;
pub use store::{EventStore, EventStoreError, MemoryEventStore, SaveOutcome, SqliteEventStore};
