#![doc = include_str!("../README.md")]

pub mod server;
pub mod store;

pub use store::{EventStore, EventStoreError, MemoryEventStore, SaveOutcome, SqliteEventStore};
