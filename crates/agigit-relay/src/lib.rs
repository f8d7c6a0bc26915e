#![doc = include_str!("../README.md")]

pub mod blobs;
mod blossom;
pub mod config;
pub mod conformance;
pub mod identity;
pub mod range;
pub mod server;
pub mod store;

pub use blobs::{BlobInfo, BlobStore, BlobStoreError, FsBlobStore};
pub use config::{AuthPolicy, BlossomConfig, Config};
pub use server::{Relay, ServeError};
#[cfg(feature = "postgres")]
pub use store::PostgresEventStore;
pub use store::{EventStore, EventStoreError, MemoryEventStore, SaveOutcome, SqliteEventStore};
