//! The PostgreSQL event store against the conformance suite, on a server the test starts itself
//! (skipped with a message where PostgreSQL is not installed; `.ci/run` installs it and sets
//! `AGIGIT_REQUIRE_POSTGRES=1`, so CI never skips it).

#![cfg(feature = "postgres")]
#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

mod support;

use agigit_relay::{EventStore, PostgresEventStore};
use support::postgres::TempPostgres;

#[test]
fn postgres_store_conforms() {
    let Some(server) = TempPostgres::start("conformance").expect("start PostgreSQL") else {
        return;
    };
    let store = std::sync::Arc::new(PostgresEventStore::connect(&server.url).expect("connect"));
    if let Err(failure) = agigit_relay::store::conformance::run_shared(store) {
        panic!("the PostgreSQL store fails the conformance suite: {failure}");
    }
    // Schemas keep stores apart in one database.
    let other = PostgresEventStore::connect_in_schema(&server.url, Some("other_relay"))
        .expect("connect in schema");
    assert!(
        other
            .query(&[nostr::prelude::Filter::new()])
            .expect("query")
            .is_empty()
    );
    assert!(
        PostgresEventStore::connect_in_schema(&server.url, Some("Robert'); DROP TABLE")).is_err()
    );
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let err = PostgresEventStore::connect(&format!(
        "host=127.0.0.1 port={port} user=x connect_timeout=5"
    ))
    .expect_err("nothing listens there");
    assert!(err.to_string().starts_with("postgres:"), "{err}");
}
