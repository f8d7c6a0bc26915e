//! Integration tests for agigit-relay: both event stores against the conformance suite.

agigit_relay::event_store_conformance!(
    memory_store_conforms,
    agigit_relay::MemoryEventStore::new()
);
agigit_relay::event_store_conformance!(
    sqlite_in_memory_conforms,
    agigit_relay::SqliteEventStore::in_memory().expect("sqlite")
);
agigit_relay::event_store_conformance!(sqlite_file_conforms, {
    let path =
        std::env::temp_dir().join(format!("agigit-relay-test-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    agigit_relay::SqliteEventStore::open(&path).expect("sqlite file")
});
