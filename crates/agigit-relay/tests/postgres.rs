//! The PostgreSQL event store and the blob owner index in PostgreSQL against their conformance
//! suites, and the relay binary on PostgreSQL, on a server the test starts itself
//! (skipped with a message where PostgreSQL is not installed; `.ci/run` installs it and sets
//! `AGIGIT_REQUIRE_POSTGRES=1`, so CI never skips it).

#![cfg(feature = "postgres")]
#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agigit_hash::BlobHash;
use agigit_relay::conformance::{CHECKS, test_bytes};
use agigit_relay::{BlobStore as _, EventStore, FsBlobStore, IndexDb, PostgresEventStore};
use nostr::prelude::Keys;
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

/// Each check of the blob store suite on a filesystem store whose owner index is in
/// PostgreSQL, a schema per check.
#[test]
fn a_blob_store_with_its_index_in_postgres_passes_the_conformance_suite() {
    let Some(server) = TempPostgres::start("blob-index").expect("start PostgreSQL") else {
        return;
    };
    for (i, (name, check)) in CHECKS.iter().enumerate() {
        let dir = scratch(&format!("blob-index-{i}"));
        let index = IndexDb::Postgres {
            url: server.url.clone(),
            schema: Some(format!("blob_index_{i}")),
        };
        let store = FsBlobStore::open_with(&dir, &index).expect("open");
        let outcome = check(&store);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = outcome {
            panic!("{name}: {e}");
        }
        // The index was in PostgreSQL, not in a local file.
        assert!(!dir.join("index.sqlite").exists());
    }
    let bad = IndexDb::Postgres {
        url: server.url.clone(),
        schema: Some("x; DROP TABLE owners".into()),
    };
    let dir = scratch("blob-index-bad");
    let err = FsBlobStore::open_with(&dir, &bad).expect_err("refused");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(err.to_string().contains("schema"), "{err}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agigit-pg-relay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// One HTTP/1.1 request; the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header end");
    let status = std::str::from_utf8(&raw[9..12])
        .expect("status")
        .parse()
        .expect("status");
    (status, raw[split + 4..].to_vec())
}

/// The relay binary with `--postgres`: it starts (opening PostgreSQL off its async threads),
/// keeps its events and its blob owner index there, and answers from them.
#[test]
fn the_relay_binary_keeps_events_and_blob_owners_in_postgres() {
    let Some(server) = TempPostgres::start("binary").expect("start PostgreSQL") else {
        return;
    };
    let dir = scratch("binary");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = Command::new(env!("CARGO_BIN_EXE_agigit-relay"))
        .args(["--listen", &addr.to_string(), "--data"])
        .arg(&dir)
        .args(["--postgres", &server.url, "--postgres-schema", "relay_bin"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the relay");
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            panic!("the relay exited ({status}): {stderr}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the relay did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its self-description went into PostgreSQL.
    let events =
        PostgresEventStore::connect_in_schema(&server.url, Some("relay_bin")).expect("connect");
    assert!(
        !events
            .query(&[nostr::prelude::Filter::new()])
            .expect("query")
            .is_empty()
    );
    // A blob claimed through the relay's index in PostgreSQL (beside its files): the relay
    // answers HEAD and GET from it, though its own data directory has no index.
    let index = IndexDb::Postgres {
        url: server.url.clone(),
        schema: Some("relay_bin".into()),
    };
    let store = FsBlobStore::open_with(dir.join("blobs"), &index).expect("open");
    let data = test_bytes(300_000, 4);
    let hash = BlobHash::digest(&data);
    let path = format!("/{hash}");
    assert_eq!(http(addr, "HEAD", &path).0, 404);
    let mut upload = store.begin(data.len() as u64).expect("begin");
    upload.write(&data).expect("write");
    upload
        .commit(&Keys::generate().public_key(), "", Some(&hash), None)
        .expect("commit");
    assert_eq!(http(addr, "HEAD", &path).0, 200);
    assert_eq!(http(addr, "GET", &path), (200, data));
    assert!(!dir.join("blobs").join("index.sqlite").exists());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
