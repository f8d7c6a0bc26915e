#![doc = include_str!("../README.md")]

pub mod store;

pub use store::{EventStore, EventStoreError, MemoryEventStore, SaveOutcome, SqliteEventStore};
