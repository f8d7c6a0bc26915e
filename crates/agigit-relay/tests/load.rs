//! A bounded load test on loopback: 8 writers publish 250 events each over their own
//! WebSockets while 4 readers query, all at once. Every event must be accepted once and read back;
//! the relay's rate (printed) is for people, not asserted: speed goals live in `benches/relay.rs`.

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    reason = "test fixtures"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use agigit_relay::SqliteEventStore;
use agigit_relay::server::{Info, Limits, Relay, serve};
use futures_util::{SinkExt, StreamExt};
use nostr::prelude::{
    ClientMessage, Filter, Keys, Kind, RelayMessage, SignEvent, SubscriptionId, Timestamp,
    UnsignedEvent,
};
use tokio_tungstenite::tungstenite::Message;

const WRITERS: usize = 8;
const PER_WRITER: usize = 250;
const READERS: usize = 4;
const BOUND: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_readers() {
    let dir = std::env::temp_dir().join(format!("agigit-relay-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let store = SqliteEventStore::open(dir.join("events.sqlite")).expect("store");
    let limits = Limits {
        messages_per_minute: 100_000,
        ..Limits::default()
    };
    let relay = Relay::new(Arc::new(store), limits, Info::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, relay, async {
        let _ = stopped.await;
    }));
    let keys = Keys::generate();
    // Sign up front: the test measures the relay, not the signer.
    let batches: Vec<Vec<String>> = (0..WRITERS)
        .map(|w| {
            (0..PER_WRITER)
                .map(|i| {
                    let unsigned = UnsignedEvent::new(
                        keys.public_key(),
                        Timestamp::from_secs(1_700_000_000 + (w * PER_WRITER + i) as u64),
                        Kind::TextNote,
                        [],
                        format!("load {w} {i}"),
                    );
                    let e = SignEvent::sign_event(&keys, unsigned).expect("sign");
                    ClientMessage::event(e).as_json()
                })
                .collect()
        })
        .collect();

    let start = Instant::now();
    let run = async {
        let writers = batches.into_iter().map(|batch| {
            let url = url.clone();
            tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(&url)
                    .await
                    .expect("connect");
                for text in &batch {
                    ws.send(Message::Text(text.clone().into()))
                        .await
                        .expect("send");
                }
                let mut accepted = 0;
                while accepted < batch.len() {
                    let Some(Ok(Message::Text(t))) = ws.next().await else {
                        panic!("the connection closed early");
                    };
                    match RelayMessage::from_json(t.as_str()).expect("relay message") {
                        RelayMessage::Ok { status: true, .. } => accepted += 1,
                        other => panic!("unexpected {other:?}"),
                    }
                }
                accepted
            })
        });
        let readers = (0..READERS).map(|r| {
            let (url, author) = (url.clone(), keys.public_key());
            tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(&url)
                    .await
                    .expect("connect");
                let mut queries = 0;
                for q in 0..20 {
                    let sub = SubscriptionId::new(format!("r{r}-{q}"));
                    let req = ClientMessage::req(
                        sub.clone(),
                        vec![Filter::new().author(author).limit(50)],
                    );
                    ws.send(Message::Text(req.as_json().into()))
                        .await
                        .expect("send");
                    loop {
                        let Some(Ok(Message::Text(t))) = ws.next().await else {
                            panic!("the connection closed early");
                        };
                        if let RelayMessage::EndOfStoredEvents(_) =
                            RelayMessage::from_json(t.as_str()).expect("relay message")
                        {
                            break;
                        }
                    }
                    ws.send(Message::Text(ClientMessage::close(sub).as_json().into()))
                        .await
                        .expect("close");
                    queries += 1;
                }
                queries
            })
        });
        let writers: Vec<_> = writers.collect();
        let readers: Vec<_> = readers.collect();
        let mut accepted = 0;
        for w in writers {
            accepted += w.await.expect("writer");
        }
        let mut queries = 0;
        for r in readers {
            queries += r.await.expect("reader");
        }
        (accepted, queries)
    };
    let (accepted, queries) = tokio::time::timeout(BOUND, run).await.expect("bounded");
    let elapsed = start.elapsed();
    assert_eq!(accepted, WRITERS * PER_WRITER);
    assert_eq!(queries, READERS * 20);
    eprintln!(
        "load: {accepted} events from {WRITERS} connections and {queries} REQs in {:.2} s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64()
    );

    // Every event is stored exactly once.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    let req = ClientMessage::req(
        SubscriptionId::new("all"),
        vec![Filter::new().author(keys.public_key()).limit(5000)],
    );
    ws.send(Message::Text(req.as_json().into()))
        .await
        .expect("send");
    let mut ids = std::collections::HashSet::new();
    loop {
        let Some(Ok(Message::Text(t))) = tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("bounded")
        else {
            panic!("closed");
        };
        match RelayMessage::from_json(t.as_str()).expect("relay message") {
            RelayMessage::Event { event, .. } => assert!(ids.insert(event.id)),
            RelayMessage::EndOfStoredEvents(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ids.len(), WRITERS * PER_WRITER);
    let _ = stop.send(());
    let _ = tokio::time::timeout(BOUND, server).await;
    let _ = std::fs::remove_dir_all(&dir);
}
