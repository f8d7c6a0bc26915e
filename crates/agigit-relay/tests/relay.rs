//! Integration tests for agigit-relay: both event stores against the conformance suite.

agigit_relay::event_store_conformance!(
    memory_store_conforms,
    agigit_relay::MemoryEventStore::new()
);
agigit_relay::event_store_conformance!(
    sqlite_in_memory_conforms,
    agigit_relay::SqliteEventStore::in_memory().expect("sqlite")
);
/// A database file in a scratch directory that outlives the suite (the macro's one expression
/// could not keep it) and is removed after.
#[test]
fn sqlite_file_conforms() {
    let dir = tempfile::tempdir().expect("scratch directory");
    let store = agigit_relay::SqliteEventStore::open(dir.path().join("events.sqlite"))
        .expect("sqlite file");
    if let Err(failure) = agigit_relay::store::conformance::run_shared(std::sync::Arc::new(store)) {
        panic!("the SQLite file store fails the event store conformance suite: {failure}");
    }
}
