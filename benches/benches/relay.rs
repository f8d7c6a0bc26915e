//! The relay and the network client over loopback, against software no one here wrote where it
//! applies, in the same run:
//!
//! - events ingested per second (pipelined EVENTs on one WebSocket, each answered by OK): our
//!   relay on SQLite (file, WAL) and in memory, and `nostr-relay-builder` 0.44.1's `LocalRelay`
//!   (its in-memory database);
//! - REQ latency (author + kind, limit 100, over 10 000 stored events) on the same relays;
//! - Blossom upload and download of 16 MiB through `agigit-net`'s client and our server, against
//!   a raw loopback TCP copy of the same bytes (the ceiling).

#![allow(
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    reason = "a broken bench fixture should stop the run loudly; figures for people"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agigit_hash::BlobHash;
use agigit_net::{BlobClient, BlobClientOptions};
use agigit_relay::server::{Info, Limits, Relay, serve};
use agigit_relay::{BlossomConfig, EventStore, FsBlobStore, MemoryEventStore, SqliteEventStore};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group};
use futures_util::{SinkExt, StreamExt};
use nostr::prelude::{
    ClientMessage, Event, Filter, Keys, Kind, RelayMessage, SignEvent, SubscriptionId, Timestamp,
    UnsignedEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::best_of;

const BATCH: usize = 500;
const STORED: usize = 10_000;
const BLOB: usize = 16 << 20;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("agigit-bench-relay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

fn unlimited() -> Limits {
    Limits {
        messages_per_minute: u32::MAX,
        bytes_per_minute: u32::MAX,
        ..Limits::default()
    }
}

/// Starts our relay over `store` (with Blossom in `blobs`, if given); returns its address.
fn ours(rt: &Runtime, store: Arc<dyn EventStore>, blobs: Option<&std::path::Path>) -> SocketAddr {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut relay = Relay::new(store, unlimited(), Info::default());
        if let Some(dir) = blobs {
            let blobs = FsBlobStore::open(dir).expect("blob store");
            relay = relay.with_blobs(Arc::new(blobs), BlossomConfig::default());
        }
        tokio::spawn(serve(listener, relay, std::future::pending()));
        addr
    })
}

/// Starts nostr-relay-builder's LocalRelay; returns it (it stops when dropped) and its URL.
fn theirs(rt: &Runtime) -> (nostr_relay_builder::prelude::LocalRelay, String) {
    use nostr_relay_builder::prelude as b;
    rt.block_on(async {
        let builder = b::RelayBuilder::default()
            .addr(std::net::IpAddr::from([127, 0, 0, 1]))
            .rate_limit(b::RateLimit {
                max_reqs: 500,
                notes_per_minute: u32::MAX,
            });
        let relay = b::LocalRelay::new(builder);
        relay.run().await.expect("nostr-relay-builder runs");
        let url = relay.url().await.to_string();
        (relay, url)
    })
}

async fn connect(url: &str) -> Ws {
    // No Nagle: small frames must not wait for delayed ACKs (the relays under test do the same).
    tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .expect("connect")
        .0
}

fn events(keys: &Keys, n: usize, tag: &str) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let unsigned = UnsignedEvent::new(
                keys.public_key(),
                Timestamp::from_secs(1_700_000_000 + i as u64),
                Kind::TextNote,
                [],
                format!("{tag} {i}"),
            );
            SignEvent::sign_event(keys, unsigned).expect("sign")
        })
        .collect()
}

/// Sends every event, then reads until each has its OK; returns the elapsed time.
async fn ingest(ws: &mut Ws, batch: &[Event]) -> Duration {
    let texts: Vec<String> = batch
        .iter()
        .map(|e| ClientMessage::event(e.clone()).as_json())
        .collect();
    let start = Instant::now();
    for t in texts {
        ws.send(Message::Text(t.into())).await.expect("send");
    }
    let mut oks = 0;
    while oks < batch.len() {
        let msg = ws.next().await.expect("open").expect("frame");
        if let Message::Text(t) = msg
            && let Ok(RelayMessage::Ok { status, .. }) = RelayMessage::from_json(t.as_str())
        {
            assert!(status, "the relay refused a bench event");
            oks += 1;
        }
    }
    start.elapsed()
}

/// One REQ to EOSE; returns the elapsed time and the events received.
async fn req(ws: &mut Ws, filter: &Filter, n: usize) -> (Duration, usize) {
    let sub = SubscriptionId::new(format!("b{n}"));
    let msg = ClientMessage::req(sub.clone(), vec![filter.clone()]).as_json();
    let start = Instant::now();
    ws.send(Message::Text(msg.into())).await.expect("send");
    let mut got = 0;
    loop {
        let msg = ws.next().await.expect("open").expect("frame");
        if let Message::Text(t) = msg {
            match RelayMessage::from_json(t.as_str()) {
                Ok(RelayMessage::Event { .. }) => got += 1,
                Ok(RelayMessage::EndOfStoredEvents(_)) => break,
                _ => {}
            }
        }
    }
    let elapsed = start.elapsed();
    let close = ClientMessage::close(sub).as_json();
    ws.send(Message::Text(close.into())).await.expect("close");
    (elapsed, got)
}

struct Target {
    name: &'static str,
    url: String,
}

fn targets(rt: &Runtime) -> (Vec<Target>, nostr_relay_builder::prelude::LocalRelay) {
    let dir = scratch("events");
    let sqlite = SqliteEventStore::open(dir.join("events.sqlite")).expect("sqlite");
    let a = ours(rt, Arc::new(sqlite), None);
    let b = ours(rt, Arc::new(MemoryEventStore::new()), None);
    let (relay, url) = theirs(rt);
    let list = vec![
        Target {
            name: "agigit_sqlite",
            url: format!("ws://{a}"),
        },
        Target {
            name: "agigit_memory",
            url: format!("ws://{b}"),
        },
        Target {
            name: "nostr_relay_builder_memory",
            url,
        },
    ];
    (list, relay)
}

fn bench_relay(c: &mut Criterion) {
    let rt = runtime();
    let (targets, _keep) = targets(&rt);
    let keys = Keys::generate();
    let mut group = c.benchmark_group("relay_ingest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for t in &targets {
        let mut ws = rt.block_on(connect(&t.url));
        let mut round = 0usize;
        group.bench_function(t.name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        round += 1;
                        let batch = events(&keys, BATCH, &format!("{} {round}", t.name));
                        total += ingest(&mut ws, &batch).await;
                    }
                    total
                })
            });
        });
    }
    group.finish();

    // REQ latency over a filled store.
    let author = Keys::generate();
    let filter = Filter::new()
        .author(author.public_key())
        .kind(Kind::TextNote)
        .limit(100);
    let mut group = c.benchmark_group("relay_req_limit100_of_10k");
    group.sample_size(20);
    for t in &targets {
        let mut ws = rt.block_on(connect(&t.url));
        for chunk in events(&author, STORED, t.name).chunks(BATCH) {
            rt.block_on(ingest(&mut ws, chunk));
        }
        let mut n = 0;
        group.bench_function(t.name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        n += 1;
                        let (d, got) = req(&mut ws, &filter, n).await;
                        assert_eq!(got, 100);
                        total += d;
                    }
                    total
                })
            });
        });
    }
    group.finish();
}

/// Raw loopback TCP: the same bytes through a socket, no HTTP, no hashing, no disk.
async fn raw_tcp_copy(data: &[u8]) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let len = data.len();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 256 << 10];
        let mut n = 0;
        while n < len {
            n += s.read(&mut buf).await.expect("read");
        }
    });
    let start = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(data).await.expect("write");
    reader.await.expect("reader");
    start.elapsed()
}

fn print_figures() {
    let rt = runtime();
    let (targets, _keep) = targets(&rt);
    let keys = Keys::generate();
    let mut line =
        String::from("\nrelay, events ingested per second (best of 5 × 500, pipelined):");
    let mut rates = Vec::new();
    for t in &targets {
        let mut ws = rt.block_on(connect(&t.url));
        let mut round = 0;
        let batches: Vec<Vec<Event>> = (0..5)
            .map(|_| {
                round += 1;
                events(&keys, BATCH, &format!("figures {} {round}", t.name))
            })
            .collect();
        let mut i = 0;
        let best = best_of(5, || {
            rt.block_on(ingest(&mut ws, &batches[i]));
            i += 1;
        });
        let rate = BATCH as f64 / best;
        rates.push(rate);
        line.push_str(&format!(" {} {:.0}/s;", t.name, rate));
    }
    line.push_str(&format!(
        " agigit_sqlite / nostr_relay_builder = {:.2}×, agigit_memory / nostr_relay_builder = {:.2}×",
        rates[0] / rates[2],
        rates[1] / rates[2]
    ));
    println!("{line}");

    // Blossom through agigit-net's client against raw TCP.
    let dir = scratch("blobs");
    let addr = ours(&rt, Arc::new(MemoryEventStore::new()), Some(&dir));
    let server = format!("http://{addr}");
    let client = BlobClient::new(
        Some(Arc::new(Keys::generate())),
        BlobClientOptions::default(),
    );
    let data: Vec<Bytes> = (0..5u8)
        .map(|s| {
            Bytes::from(
                (0..BLOB)
                    .map(|i| (i as u8) ^ s.wrapping_mul(41))
                    .collect::<Vec<u8>>(),
            )
        })
        .collect();
    let mut i = 0;
    let up = best_of(5, || {
        rt.block_on(client.upload(&server, data[i].clone()))
            .expect("upload");
        i += 1;
    });
    let hash = BlobHash::digest(&data[0]);
    let down = best_of(5, || {
        let b = rt
            .block_on(client.download(&server, &hash, BLOB as u64))
            .expect("download");
        assert_eq!(b.len(), BLOB);
    });
    let raw = best_of(5, || {
        rt.block_on(raw_tcp_copy(&data[0]));
    });
    let mbs = |s: f64| BLOB as f64 / s / 1e6;
    println!(
        "blossom, 16 MiB (best of 5): upload {:.0} MB/s (hash + fsync + index), download {:.0} MB/s (verified while streaming); raw loopback TCP {:.0} MB/s; upload/raw {:.2}×, download/raw {:.2}×",
        mbs(up),
        mbs(down),
        mbs(raw),
        raw / up,
        raw / down
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_relay);

fn main() {
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        benches();
        Criterion::default().configure_from_args().final_summary();
        print_figures();
    }
}
