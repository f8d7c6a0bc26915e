//! agigit-net against real servers on loopback: our relay and Blossom (agigit-relay), a relay no
//! one here wrote (nostr-relay-builder 0.44.1), and hand-made misbehaving servers. Every wait is
//! bounded.

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test fixtures"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agigit_event::Signer;
use agigit_hash::BlobHash;
use agigit_net::{
    BlobClient, BlobClientOptions, MemoryTransport, NetError, Network, PoolOptions, RelayPool,
    Roles, Transport,
};
use agigit_relay::server::{Info, Limits, Relay, serve};
use agigit_relay::{AuthPolicy, BlossomConfig, FsBlobStore, SqliteEventStore};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use nostr::prelude::{
    Event, Filter, Keys, Kind, RelayMessage, SignEvent, SubscriptionId, Timestamp, UnsignedEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Error = Box<dyn std::error::Error>;
const WAIT: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    dir: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    fn ws(&self) -> String {
        format!("ws://{}", self.addr)
    }
    fn http(&self) -> String {
        format!("http://{}", self.addr)
    }
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(WAIT, &mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_on(listener: TcpListener, name: &str, auth: AuthPolicy) -> Result<Server, Error> {
    start_with(listener, name, |relay, dir| {
        Ok(relay.with_auth(auth).with_blobs(
            Arc::new(FsBlobStore::open(dir.join("blobs"))?),
            BlossomConfig::default(),
        ))
    })
    .await
}

/// An agigit-relay on `listener`, its SQLite store under a directory of its own, set up by
/// `configure` (given the relay and that directory).
async fn start_with(
    listener: TcpListener,
    name: &str,
    configure: impl FnOnce(Relay, &std::path::Path) -> Result<Relay, Error>,
) -> Result<Server, Error> {
    let addr = listener.local_addr()?;
    let dir = std::env::temp_dir().join(format!("agigit-net-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let relay = configure(
        Relay::new(
            Arc::new(SqliteEventStore::open(dir.join("events.sqlite"))?),
            Limits::default(),
            Info::default(),
        ),
        &dir,
    )?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, relay, async {
        let _ = stopped.await;
    }));
    Ok(Server {
        addr,
        dir,
        stop: Some(stop),
        task,
    })
}

async fn start(name: &str) -> Result<Server, Error> {
    start_on(
        TcpListener::bind("127.0.0.1:0").await?,
        name,
        AuthPolicy::Off,
    )
    .await
}

fn quick() -> PoolOptions {
    PoolOptions {
        connect_timeout: Duration::from_secs(2),
        publish_timeout: Duration::from_secs(3),
        query_timeout: Duration::from_secs(3),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        ..PoolOptions::default()
    }
}

fn note(keys: &Keys, text: &str) -> Result<Event, Error> {
    let unsigned = UnsignedEvent::new(
        keys.public_key(),
        Timestamp::now(),
        Kind::TextNote,
        [],
        text,
    );
    Ok(SignEvent::sign_event(keys, unsigned)?)
}

/// A port nothing listens on.
fn dead_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::test]
async fn publish_m_of_n_query_dedup_and_live() -> TestResult {
    let (a, b) = (start("pool-a").await?, start("pool-b").await?);
    let pool = RelayPool::new(quick(), None);
    let dead = format!("ws://127.0.0.1:{}", dead_port()?);
    for url in [a.ws(), b.ws(), dead.clone()] {
        pool.add_relay(&url, Roles::BOTH)?;
    }
    let keys = Keys::generate();
    let e = note(&keys, "to three relays, one of them down")?;
    let report = tokio::time::timeout(WAIT, pool.publish(&e, 2)).await??;
    assert_eq!(report.accepted(), 2);
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, dead);
    // Requiring all three fails, with the report.
    let e2 = note(&keys, "needs all three")?;
    match tokio::time::timeout(WAIT, pool.publish(&e2, 3)).await? {
        Err(NetError::NotEnoughAccepted {
            accepted: 2,
            required: 3,
            report,
            ..
        }) => {
            assert_eq!(report.outcomes.len(), 3);
        }
        other => panic!("{other:?}"),
    }
    // Both events are on both live relays; the query returns each once, newest first.
    let got = tokio::time::timeout(WAIT, pool.query(&[Filter::new().author(keys.public_key())]))
        .await??;
    let ids: Vec<_> = got.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&e.id) && ids.contains(&e2.id));

    // Live: an event published after subscribing arrives once, though two relays carry it.
    let mut sub = pool
        .subscribe(&[Filter::new()
            .author(keys.public_key())
            .since(Timestamp::now())])
        .await?;
    // Give the REQs a moment to reach both relays.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let live = note(&keys, "live")?;
    pool.publish(&live, 2).await?;
    let got = tokio::time::timeout(WAIT, sub.next())
        .await?
        .ok_or("subscription ended")?;
    assert_eq!(got.id, live.id);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), sub.next())
            .await
            .is_err(),
        "the copy from the second relay is deduplicated"
    );
    let statuses = pool.relays();
    assert_eq!(statuses.iter().filter(|s| s.connected).count(), 2);
    assert!(
        statuses
            .iter()
            .any(|s| !s.connected && s.last_error.is_some())
    );
    Ok(())
}

#[tokio::test]
async fn reconnects_after_a_relay_restarts() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = start_on(listener, "restart", AuthPolicy::Off).await?;
    let pool = RelayPool::new(quick(), None);
    pool.add_relay(&server.ws(), Roles::BOTH)?;
    let keys = Keys::generate();
    pool.publish(&note(&keys, "before")?, 1).await?;
    server.stop().await;
    // While it is down, publishing fails within the timeout.
    assert!(pool.publish(&note(&keys, "while down")?, 1).await.is_err());
    // Back on the same port (same data directory name, fresh store): the pool reconnects.
    let listener = TcpListener::bind(addr).await?;
    let _again = start_on(listener, "restart-2", AuthPolicy::Off).await?;
    let after = note(&keys, "after")?;
    let mut ok = false;
    for _ in 0..40 {
        if pool.publish(&after, 1).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the pool reconnected");
    assert!(pool.relays()[0].connects >= 2);
    Ok(())
}

#[tokio::test]
async fn answers_nip42_challenges() -> TestResult {
    let server = start_on(
        TcpListener::bind("127.0.0.1:0").await?,
        "auth",
        AuthPolicy::All,
    )
    .await?;
    let keys = Keys::generate();
    // Without a key the relay refuses.
    let anonymous = RelayPool::new(quick(), None);
    anonymous.add_relay(&server.ws(), Roles::BOTH)?;
    let e = note(&keys, "authenticated")?;
    match anonymous.publish(&e, 1).await {
        Err(NetError::NotEnoughAccepted { report, .. }) => {
            let (_, why) = report.failures().next().ok_or("a failure")?;
            assert!(why.starts_with("auth-required:"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // With one, the pool authenticates and both writes and reads go through. The key is held
    // by a signer the pool knows only by its trait (as a NIP-46 bunker would be), called off
    // the async threads.
    let remote = Arc::new(RemoteSigner::new(keys.clone(), false));
    let pool = RelayPool::new(quick(), Some(remote.clone()));
    pool.add_relay(&server.ws(), Roles::BOTH)?;
    pool.publish(&e, 1).await?;
    let got = pool.query(&[Filter::new().id(e.id)]).await?;
    assert_eq!(got.len(), 1);
    assert!(remote.calls() >= 1);
    // Blossom tokens go through the same signer.
    let blobs = BlobClient::new(Some(remote.clone()), BlobClientOptions::default());
    let before = remote.calls();
    blobs
        .upload(&server.http(), Bytes::from_static(b"signed remotely"))
        .await?;
    assert!(remote.calls() > before);

    // A signer that answers with another key's event: the pool does not send it, so the relay
    // still refuses; the blob client refuses to use the token.
    let liar = Arc::new(RemoteSigner::new(keys.clone(), true));
    let fooled = RelayPool::new(quick(), Some(liar.clone()));
    fooled.add_relay(&server.ws(), Roles::BOTH)?;
    let e2 = note(&keys, "not authenticated")?;
    assert!(fooled.publish(&e2, 1).await.is_err());
    assert!(liar.calls() >= 1);
    let liar_blobs = BlobClient::new(Some(liar), BlobClientOptions::default());
    assert!(matches!(
        liar_blobs
            .upload(&server.http(), Bytes::from_static(b"x"))
            .await,
        Err(NetError::Sign(_))
    ));
    Ok(())
}

/// A signer known to the client only through the `Signer` trait, as a remote one would be: it
/// blocks a little (a round trip), counts its calls, and when `lies`, signs with another key.
struct RemoteSigner {
    keys: Keys,
    other: Keys,
    lies: bool,
    calls: std::sync::atomic::AtomicUsize,
}

impl RemoteSigner {
    fn new(keys: Keys, lies: bool) -> Self {
        Self {
            keys,
            other: Keys::generate(),
            lies,
            calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Signer for RemoteSigner {
    fn public_key(&self) -> nostr::prelude::PublicKey {
        self.keys.public_key()
    }

    fn sign_event(&self, mut unsigned: UnsignedEvent) -> Result<Event, agigit_event::SignError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(5));
        let keys = if self.lies {
            unsigned.pubkey = self.other.public_key();
            unsigned.id = None;
            &self.other
        } else {
            &self.keys
        };
        Signer::sign_event(keys, unsigned)
    }
}

/// A hand-made relay that answers every REQ with the messages `answer` makes for its
/// subscription id (then nothing else).
async fn scripted_relay(
    answer: impl Fn(SubscriptionId) -> Vec<String> + Clone + Send + Sync + 'static,
) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Ok(text) = msg.to_text() else { continue };
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
                        continue;
                    };
                    if v[0] == "REQ" {
                        let sub = SubscriptionId::new(v[1].as_str().unwrap_or_default());
                        for m in answer(sub) {
                            if ws.send(m.into()).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// A relay that answers every REQ with one forged event, one event that does not match, and one
/// good event, then EOSE.
async fn lying_relay(good: Event, forged: Event, off_filter: Event) -> Result<SocketAddr, Error> {
    flooding_relay(vec![forged, off_filter, good], 0).await
}

#[tokio::test]
async fn drops_events_that_do_not_verify_or_match() -> TestResult {
    let keys = Keys::generate();
    let good = note(&keys, "good")?;
    let mut forged = note(&keys, "honest")?;
    forged.content = "tampered".into();
    let off = note(&Keys::generate(), "someone else")?;
    let addr = lying_relay(good.clone(), forged, off).await?;
    let pool = RelayPool::new(quick(), None);
    pool.add_relay(&format!("ws://{addr}"), Roles::FETCH)?;
    let got = pool
        .query(&[Filter::new().author(keys.public_key())])
        .await?;
    assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), vec![good.id]);
    assert_eq!(pool.relays()[0].dropped_events, 2);
    Ok(())
}

/// Interop: our pool publishes to and queries a relay no one here wrote.
#[tokio::test]
async fn interop_with_nostr_relay_builder() -> TestResult {
    use nostr_relay_builder::prelude as builder;
    let relay = builder::LocalRelay::new(
        builder::RelayBuilder::default().addr(std::net::IpAddr::from([127, 0, 0, 1])),
    );
    relay.run().await?;
    let url = relay.url().await.to_string();
    let pool = RelayPool::new(quick(), None);
    pool.add_relay(&url, Roles::BOTH)?;
    let keys = Keys::generate();
    let e = note(&keys, "agigit-net to nostr-relay-builder")?;
    let report = tokio::time::timeout(WAIT, pool.publish(&e, 1)).await??;
    assert_eq!(report.accepted(), 1, "{report:?}");
    let got = tokio::time::timeout(WAIT, pool.query(&[Filter::new().author(keys.public_key())]))
        .await??;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, e.id);
    relay.shutdown();
    Ok(())
}

#[tokio::test]
async fn blossom_round_trip_and_resume() -> TestResult {
    let server = start("blobs").await?;
    let keys = Keys::generate();
    let client = BlobClient::new(Some(Arc::new(keys.clone())), BlobClientOptions::default());
    let data = Bytes::from(
        (0..(3u32 << 20))
            .map(|i| (i * 7 + i / 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let hash = BlobHash::digest(&data);
    let desc = client.upload(&server.http(), data.clone()).await?;
    assert!(desc.created && desc.hash == hash && desc.size == data.len() as u64);
    assert!(!client.upload(&server.http(), data.clone()).await?.created);
    assert!(client.exists(&server.http(), &hash).await?);
    assert_eq!(
        client
            .download(&server.http(), &hash, data.len() as u64)
            .await?,
        data
    );

    // Resume: a part file with the first megabyte, continued by Range.
    let dir = server.dir.join("download");
    std::fs::create_dir_all(&dir)?;
    let target = dir.join("blob");
    std::fs::write(dir.join("blob.part"), &data[..1 << 20])?;
    let n = client
        .download_to(&server.http(), &hash, data.len() as u64, &target)
        .await?;
    assert_eq!(n, data.len() as u64);
    assert_eq!(std::fs::read(&target)?, data);
    assert!(!dir.join("blob.part").exists());
    // A part file with wrong bytes: the result fails verification and nothing is left behind.
    let target2 = dir.join("blob2");
    std::fs::write(dir.join("blob2.part"), vec![0u8; 1000])?;
    let err = client
        .download_to(&server.http(), &hash, data.len() as u64, &target2)
        .await
        .expect_err("corrupt");
    assert!(matches!(err, NetError::Corrupt { .. }), "{err}");
    assert!(!target2.exists() && !dir.join("blob2.part").exists());

    // Missing blobs, refusals, and deletes.
    let missing = BlobHash::digest(b"missing");
    assert!(matches!(
        client.download(&server.http(), &missing, 1 << 20).await,
        Err(NetError::NotFound { .. })
    ));
    let anonymous = BlobClient::new(None, BlobClientOptions::default());
    assert!(matches!(
        anonymous.upload(&server.http(), data.clone()).await,
        Err(NetError::Sign(_))
    ));
    let stranger = BlobClient::new(
        Some(Arc::new(Keys::generate())),
        BlobClientOptions::default(),
    );
    match stranger.delete(&server.http(), &hash).await {
        Err(NetError::Http { status: 403, .. }) => {}
        other => panic!("{other:?}"),
    }
    client.delete(&server.http(), &hash).await?;
    assert!(!client.exists(&server.http(), &hash).await?);
    Ok(())
}

/// An HTTP server that serves every GET with the same wrong bytes.
async fn corrupt_server(bytes: &'static [u8]) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                );
                let _ = tcp.write_all(head.as_bytes()).await;
                let _ = tcp.write_all(bytes).await;
            });
        }
    });
    Ok(addr)
}

#[tokio::test]
async fn fetch_any_skips_corrupt_and_dead_servers() -> TestResult {
    let good = start("fetch-any").await?;
    let keys = Keys::generate();
    let client = BlobClient::new(
        Some(Arc::new(keys)),
        BlobClientOptions {
            attempts: 2,
            backoff: Duration::from_millis(20),
            ..BlobClientOptions::default()
        },
    );
    let data = Bytes::from_static(b"the real shard");
    let hash = client.upload(&good.http(), data.clone()).await?.hash;
    let bad = format!("http://{}", corrupt_server(b"rotten bytes").await?);
    let dead = format!("http://127.0.0.1:{}", dead_port()?);
    let servers = vec![bad.clone(), dead.clone(), good.http()];
    // A reader with no record yet tries them in the given order.
    let client = BlobClient::new(
        None,
        BlobClientOptions {
            attempts: 2,
            backoff: Duration::from_millis(20),
            ..BlobClientOptions::default()
        },
    );
    let (bytes, from) = client.fetch_any(&servers, &hash, 1 << 20).await?;
    assert_eq!((bytes, from), (data.clone(), good.http()));
    // The record now ranks the good server first.
    assert_eq!(client.rank(&servers)[0], good.http());
    let health = client.health();
    for server in [&bad, &dead] {
        let h = &health
            .iter()
            .find(|(s, _)| s == server)
            .ok_or("server recorded")?
            .1;
        assert!(h.failures == 1 && h.last_error.is_some(), "{h:?}");
    }
    // With no good copy anywhere, the error names every server.
    let err = client
        .fetch_any(&[bad, dead], &hash, 1 << 20)
        .await
        .expect_err("unavailable");
    assert!(
        matches!(&err, NetError::Unavailable { errors, .. } if errors.len() == 2),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn network_is_a_transport() -> TestResult {
    let (a, b) = (start("net-a").await?, start("net-b").await?);
    let keys = Keys::generate();
    let net = Network::new(
        RelayPool::new(quick(), Some(Arc::new(keys.clone()))),
        BlobClient::new(Some(Arc::new(keys.clone())), BlobClientOptions::default()),
    );
    for s in [&a, &b] {
        net.pool.add_relay(&s.ws(), Roles::BOTH)?;
        net.add_blob_server(&s.http(), Roles::BOTH)?;
    }
    // TLS URLs are taken (nothing connects until used); other schemes are not.
    for bad in [
        "ftp://example.com",
        "example.com",
        "https://example.com/path",
    ] {
        assert!(net.add_blob_server(bad, Roles::BOTH).is_err(), "{bad}");
    }
    for bad in ["http://example.com", "wss://", "wss://h:port"] {
        assert!(net.pool.add_relay(bad, Roles::BOTH).is_err(), "{bad}");
    }
    assert!(agigit_net::blob::check_server_url("https://blobs.example:8443").is_ok());
    assert!(agigit_net::pool::check_relay_url("wss://relay.example").is_ok());
    exercise(&net, &keys).await?;
    exercise(&MemoryTransport::new(["x", "y"]), &keys).await
}

/// The same calls on any transport.
async fn exercise(t: &dyn Transport, keys: &Keys) -> TestResult {
    let e = note(keys, "through the transport")?;
    assert_eq!(t.publish(&e, 2).await?.accepted(), 2);
    let got = t.query(&[Filter::new().id(e.id)]).await?;
    assert_eq!(got.len(), 1);
    let servers = t.push_servers();
    assert_eq!(servers.len(), 2);
    let hash = t.put_blob(&servers[0], Bytes::from_static(b"blob")).await?;
    assert_eq!(
        t.get_blob(&servers[0], &hash, 4).await?,
        Bytes::from_static(b"blob")
    );
    assert!(t.get_blob(&servers[1], &hash, 4).await.is_err());
    // Shorter than the blob: refused, whatever the transport.
    assert!(matches!(
        t.get_blob(&servers[0], &hash, 3).await,
        Err(NetError::TooLarge { limit: 3, .. })
    ));
    // A pre-computed hash is taken as given, so one that lies is an error, and nothing is
    // stored under the name it claimed.
    let data = Bytes::from_static(b"pre-hashed shard");
    let right = BlobHash::digest(&data);
    assert_eq!(
        t.put_blob_hashed(&servers[1], &right, data.clone()).await?,
        right
    );
    assert_eq!(t.get_blob(&servers[1], &right, 64).await?, data);
    let liar = BlobHash::digest(b"another shard");
    let err = t
        .put_blob_hashed(&servers[1], &liar, Bytes::from_static(b"what was sent"))
        .await
        .expect_err("a hash that is not the data's");
    assert!(
        matches!(err, NetError::Corrupt { .. } | NetError::Http { .. }),
        "{err}"
    );
    assert!(t.get_blob(&servers[1], &liar, 64).await.is_err());
    Ok(())
}

#[tokio::test]
async fn memory_transport_fails_like_a_network() -> TestResult {
    let net = MemoryTransport::new(["a", "b", "c"]);
    let keys = Keys::generate();
    net.set_down("c", true);
    let e = note(&keys, "memory")?;
    assert_eq!(net.publish(&e, 2).await?.accepted(), 2);
    assert!(matches!(
        net.publish(&e, 3).await,
        Err(NetError::NotEnoughAccepted { accepted: 2, .. })
    ));
    let mut forged = note(&keys, "x")?;
    forged.content = "y".into();
    assert!(net.publish(&forged, 1).await.is_err());
    let hash = net.put_blob("a", Bytes::from_static(b"shard")).await?;
    assert!(net.corrupt_blob("a", &hash, Bytes::from_static(b"rot")));
    assert!(matches!(
        net.get_blob("a", &hash, 1 << 20).await,
        Err(NetError::Corrupt { .. })
    ));
    assert!(net.put_blob("c", Bytes::from_static(b"x")).await.is_err());
    Ok(())
}

/// An HTTP server that answers every GET with `head` and then, when `endless`, zeros forever in
/// 64 KiB chunks (chunked encoding), as fast as the client reads them.
async fn hostile_blob_server(head: &'static str, endless: bool) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                if tcp.write_all(head.as_bytes()).await.is_err() || !endless {
                    return;
                }
                let mut chunk = format!("{:x}\r\n", 64 << 10).into_bytes();
                chunk.extend_from_slice(&vec![0u8; 64 << 10]);
                chunk.extend_from_slice(b"\r\n");
                while tcp.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    Ok(addr)
}

#[tokio::test]
async fn endless_or_oversized_blob_bodies_are_cut_off_and_another_server_serves() -> TestResult {
    let good = start("endless").await?;
    let keys = Keys::generate();
    let data = Bytes::from_static(b"a shard of known length");
    let hash = BlobClient::new(Some(Arc::new(keys)), BlobClientOptions::default())
        .upload(&good.http(), data.clone())
        .await?
        .hash;
    let endless = format!(
        "http://{}",
        hostile_blob_server(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            true
        )
        .await?
    );
    let huge = format!(
        "http://{}",
        hostile_blob_server(
            "HTTP/1.1 200 OK\r\nContent-Length: 107374182400\r\n\r\n",
            false
        )
        .await?
    );
    let client = BlobClient::new(None, BlobClientOptions::default());
    let started = std::time::Instant::now();
    for server in [&endless, &huge] {
        match tokio::time::timeout(WAIT, client.download(server, &hash, 1 << 20)).await? {
            Err(NetError::TooLarge { limit, .. }) => assert_eq!(limit, 1 << 20),
            other => panic!("{server}: {other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(10), "cut off fast");
    // The honest server still serves, after both liars.
    let (bytes, from) = tokio::time::timeout(
        WAIT,
        client.fetch_any(&[endless, huge, good.http()], &hash, data.len() as u64),
    )
    .await??;
    assert_eq!((bytes, from), (data, good.http()));
    Ok(())
}

/// A relay that answers every REQ with `events` (pre-signed) and then, if given, one message of
/// `junk` bytes, then EOSE.
async fn flooding_relay(events: Vec<Event>, junk: usize) -> Result<SocketAddr, Error> {
    scripted_relay(move |sub| {
        let mut out: Vec<String> = events
            .iter()
            .map(|e| RelayMessage::event(sub.clone(), e.clone()).as_json())
            .collect();
        if junk > 0 {
            out.push(format!("[\"NOTICE\",\"{}\"]", "x".repeat(junk)));
        }
        out.push(RelayMessage::eose(sub).as_json());
        out
    })
    .await
}

#[tokio::test]
async fn a_relay_that_floods_a_query_or_sends_a_huge_message_is_cut_off() -> TestResult {
    let keys = Keys::generate();
    let events: Vec<Event> = (0..50)
        .map(|i| note(&keys, &format!("flood {i}")))
        .collect::<Result<_, _>>()?;
    let options = PoolOptions {
        max_query_events: 10,
        max_message_bytes: 64 << 10,
        ..quick()
    };
    let filter = [Filter::new().author(keys.public_key())];

    // 50 valid events where 10 are allowed: the query keeps 10 and stops reading.
    let flood = flooding_relay(events.clone(), 0).await?;
    let pool = RelayPool::new(options.clone(), None);
    pool.add_relay(&format!("ws://{flood}"), Roles::FETCH)?;
    let got = tokio::time::timeout(WAIT, pool.query(&filter)).await??;
    assert_eq!(got.len(), 10);

    // A 1 MiB message where 64 KiB are allowed: the connection is dropped before it is buffered,
    // and the query fails instead of waiting on it.
    let huge = flooding_relay(Vec::new(), 1 << 20).await?;
    let pool = RelayPool::new(options, None);
    pool.add_relay(&format!("ws://{huge}"), Roles::FETCH)?;
    let result = tokio::time::timeout(WAIT, pool.query(&filter)).await?;
    assert!(result.is_err(), "{result:?}");
    let status = &pool.relays()[0];
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("too long") || e.contains("size")),
        "{status:?}"
    );
    Ok(())
}

/// An agigit-relay with its own key `keys`, storing its self-description and `also` (other
/// relays' self-descriptions, as their announcements would have brought them).
async fn start_identified(
    name: &str,
    keys: &Keys,
    also: &[Event],
) -> Result<(Server, Event), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let description = agigit_relay::identity::self_description(
        keys,
        &[format!("ws://{}", listener.local_addr()?)],
        Timestamp::now(),
    )?;
    let stored = description.clone();
    let server = start_with(listener, name, move |relay, _| {
        let relay = relay.with_identity(keys.public_key());
        relay.store_event(&stored)?;
        for e in also {
            relay.store_event(e)?;
        }
        Ok(relay)
    })
    .await?;
    Ok((server, description))
}

#[tokio::test]
async fn a_relay_is_found_by_its_key_and_pinned_to_it() -> TestResult {
    let (b_keys, liar) = (Keys::generate(), Keys::generate());
    let (b, b_description) = start_identified("locate-b", &b_keys, &[]).await?;
    // A liar's relay list that names b's URL: only b's own NIP-11 answer may confirm a key.
    let lie = agigit_relay::identity::self_description(&liar, &[b.ws()], Timestamp::now())?;
    let (a, _) = start_identified("locate-a", &Keys::generate(), &[b_description, lie]).await?;

    let pool = RelayPool::new(quick(), None);
    pool.add_relay(&a.ws(), Roles::FETCH)?;
    assert_eq!(pool.locate_relay(&b_keys.public_key()).await?, b.ws());
    match pool.locate_relay(&liar.public_key()).await {
        Err(NetError::UnknownRelay { reason, .. }) => {
            assert!(reason.contains("identifies as"), "{reason}");
        }
        other => panic!("the liar's list was believed: {other:?}"),
    }
    match pool.locate_relay(&Keys::generate().public_key()).await {
        Err(NetError::UnknownRelay { .. }) => {}
        other => panic!("{other:?}"),
    }

    // Pinned to the right key: used. Pinned to another: refused at once, with the reason.
    let keys = Keys::generate();
    let right = RelayPool::new(quick(), None);
    right.add_pinned_relay(&b.ws(), Roles::BOTH, Some(b_keys.public_key()))?;
    tokio::time::timeout(WAIT, right.publish(&note(&keys, "pinned")?, 1)).await??;
    let wrong = RelayPool::new(quick(), None);
    wrong.add_pinned_relay(&b.ws(), Roles::BOTH, Some(liar.public_key()))?;
    let started = std::time::Instant::now();
    match wrong.publish(&note(&keys, "impostor")?, 1).await {
        Err(NetError::NotEnoughAccepted { report, .. }) => {
            let (_, why) = report.failures().next().ok_or("a failure")?;
            assert!(why.contains("now identifies as"), "{why}");
        }
        other => panic!("published to a relay whose key changed: {other:?}"),
    }
    assert!(
        started.elapsed() < quick().publish_timeout,
        "refused at once, not at the timeout"
    );
    match wrong.query(&[Filter::new().kind(Kind::TextNote)]).await {
        Err(NetError::Connection { reason, .. }) => assert!(reason.contains("identifies as")),
        other => panic!("queried a relay whose key changed: {other:?}"),
    }
    a.stop().await;
    b.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_endless_or_broken_information_document_is_cut_off() -> TestResult {
    let endless = hostile_blob_server(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        true,
    )
    .await?;
    let started = std::time::Instant::now();
    match agigit_net::fetch_relay_info(&format!("ws://{endless}"), Duration::from_secs(5)).await {
        Err(NetError::TooLarge { limit, .. }) => {
            assert_eq!(limit, agigit_net::info::MAX_INFO_BYTES as u64);
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let garbage = hostile_blob_server(
        "HTTP/1.1 200 OK\r\ncontent-length: 17\r\n\r\n{\"self\":\"nope\"}\n\n",
        false,
    )
    .await?;
    match agigit_net::fetch_relay_info(&format!("ws://{garbage}"), Duration::from_secs(5)).await {
        Err(NetError::Malformed { .. }) => {}
        other => panic!("{other:?}"),
    }
    Ok(())
}
