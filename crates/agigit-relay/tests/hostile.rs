//! The `agigit-relay` binary under attack on loopback, bounded in time and count: while hostile
//! clients flood EVENTs without reading, subscribe without reading, hold connections idle and
//! stream uploads with an expired token from a throw-away key, an honest client publishes,
//! queries and moves a blob — and every one of its operations must succeed, the relay's resident
//! memory must stay under a stated bound, and its upload directory must take nothing from the
//! attackers. The figures are printed.

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "test fixtures"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agigit_event::{BlossomAuth, Signed, Verb};
use agigit_hash::BlobHash;
use futures_util::{SinkExt, StreamExt};
use nostr::prelude::{
    ClientMessage, Event, Filter, Keys, Kind, RelayMessage, SignEvent, SubscriptionId, Timestamp,
    UnsignedEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::dir_bytes;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// How long the attack lasts.
const ATTACK: Duration = Duration::from_secs(12);
/// The relay's resident memory must stay under this while it lasts.
const RSS_BOUND_MB: u64 = 128;
/// The longest any one honest operation may take.
const HONEST_WAIT: Duration = Duration::from_secs(10);

/// The relay process, killed on drop.
struct RelayProcess {
    child: std::process::Child,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_relay() -> Result<RelayProcess, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("agigit-relay-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_agigit-relay"))
        .args(["--listen", &addr.to_string(), "--data"])
        .arg(&dir)
        .args([
            "--max-connections-per-ip",
            "48",
            "--header-timeout-secs",
            "2",
            "--write-timeout-secs",
            "3",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let relay = RelayProcess { child, addr, dir };
    let started = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            return Err("the relay did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(relay)
}

/// The resident set of process `pid`, in kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn event(keys: &Keys, content: String, at: u64) -> Event {
    let unsigned = UnsignedEvent::new(
        keys.public_key(),
        Timestamp::from_secs(at),
        Kind::TextNote,
        [],
        content,
    );
    SignEvent::sign_event(keys, unsigned).expect("sign")
}

async fn connect(addr: SocketAddr) -> Result<Ws, Box<dyn std::error::Error>> {
    let (ws, _) = tokio::time::timeout(
        HONEST_WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/")),
    )
    .await??;
    Ok(ws)
}

async fn recv(ws: &mut Ws) -> Result<RelayMessage<'static>, Box<dyn std::error::Error>> {
    loop {
        let msg = tokio::time::timeout(HONEST_WAIT, ws.next())
            .await?
            .ok_or("closed")??;
        if let Message::Text(t) = msg {
            match RelayMessage::from_json(t.as_str())? {
                RelayMessage::Notice(_) => continue,
                m => return Ok(m),
            }
        }
    }
}

fn token(keys: &Keys, verb: Verb, blob: Option<BlobHash>, expires_in: i64) -> String {
    let now = Timestamp::now().as_secs();
    let mut auth = BlossomAuth::new(
        verb,
        Timestamp::from_secs(now.saturating_add_signed(expires_in)),
    );
    if let Some(b) = blob {
        auth = auth.with_blob(b);
    }
    Signed::sign(auth, keys, Timestamp::from_secs(now - 1))
        .expect("sign")
        .to_authorization_header()
}

/// What the attackers managed, counted as they go.
#[derive(Default)]
struct Tally {
    flooded_bytes: AtomicU64,
    uploads_refused: AtomicU64,
    idle_closed: AtomicU64,
    refused_connections: AtomicU64,
}

/// EVENTs of 64 KiB as fast as the relay takes them, never reading a reply.
async fn flooder(addr: SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>, seed: u64) {
    let Ok(mut ws) = connect(addr).await else {
        return;
    };
    let keys = Keys::generate();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let e = event(
            &keys,
            format!("{seed}-{i}-{}", "x".repeat(64 << 10)),
            1_700_000_000 + i,
        );
        let json = ClientMessage::event(e).as_json();
        let len = json.len() as u64;
        match tokio::time::timeout(Duration::from_secs(1), ws.send(Message::Text(json.into())))
            .await
        {
            Ok(Ok(())) => {
                tally.flooded_bytes.fetch_add(len, Ordering::Relaxed);
            }
            Ok(Err(_)) => return, // dropped by the relay
            Err(_) => {}          // blocked: the relay stopped reading us
        }
        i += 1;
    }
}

/// Subscribes with every filter the relay allows over everything stored, never reading.
async fn silent_subscriber(addr: SocketAddr, stop: Arc<AtomicBool>) {
    let Ok(mut ws) = connect(addr).await else {
        return;
    };
    let filters: Vec<Filter> = (0..16)
        .map(|i| Filter::new().kind(Kind::TextNote).limit(5000 + i))
        .collect();
    let req = ClientMessage::req(SubscriptionId::new("all"), filters).as_json();
    let _ = ws.send(Message::Text(req.into())).await;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(ws);
}

/// Half a request line, then nothing.
async fn idler(addr: SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = tcp.write_all(b"GET / HT").await;
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::Relaxed) {
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await
        {
            tally.idle_closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
}

/// A 100 MB upload with an expired `t=get` token from a throw-away key, body pushed as fast as
/// the relay takes it until the relay answers; again and again.
async fn hostile_uploader(addr: SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let chunk = vec![0u8; 64 << 10];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut tcp) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let auth = token(&Keys::generate(), Verb::Get, None, -60);
        let head = format!(
            "PUT /upload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n",
            100u64 << 20
        );
        if tcp.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let (mut read, mut write) = tcp.into_split();
        let pushing = async {
            while !stop.load(Ordering::Relaxed) {
                if tokio::time::timeout(Duration::from_millis(500), write.write_all(&chunk))
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    break;
                }
            }
        };
        let mut answer = [0u8; 12];
        let answered = async { read.read_exact(&mut answer).await.is_ok() };
        let (_, answered) = tokio::join!(pushing, answered);
        if answered && answer.starts_with(b"HTTP/1.1 4") {
            tally.uploads_refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The honest client's round: publish 20 events (each OK read), query them back, upload and
/// download a 1 MiB blob. Returns the slowest operation.
async fn honest_round(
    addr: SocketAddr,
    keys: &Keys,
    round: u64,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut slowest = Duration::ZERO;
    let mut timed = Instant::now();
    let mut lap = |slowest: &mut Duration| {
        *slowest = (*slowest).max(timed.elapsed());
        timed = Instant::now();
    };
    let mut ws = connect(addr).await?;
    let mut ids = Vec::new();
    for i in 0..20 {
        let e = event(
            keys,
            format!("honest {round} {i}"),
            1_800_000_000 + round * 100 + i,
        );
        ids.push(e.id);
        ws.send(Message::Text(ClientMessage::event(e).as_json().into()))
            .await?;
        match recv(&mut ws).await? {
            RelayMessage::Ok { status: true, .. } => {}
            other => return Err(format!("publish refused: {other:?}").into()),
        }
        lap(&mut slowest);
    }
    let sub = SubscriptionId::new(format!("honest-{round}"));
    let req = ClientMessage::req(sub, vec![Filter::new().ids(ids.clone())]);
    ws.send(Message::Text(req.as_json().into())).await?;
    let mut got = 0;
    loop {
        match recv(&mut ws).await? {
            RelayMessage::Event { .. } => got += 1,
            RelayMessage::EndOfStoredEvents(_) => break,
            other => return Err(format!("query: {other:?}").into()),
        }
    }
    if got != ids.len() {
        return Err(format!("queried {got} of {}", ids.len()).into());
    }
    lap(&mut slowest);
    let blob: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 ^ round as u8)
        .collect();
    let hash = BlobHash::digest(&blob);
    let status = http_status(
        addr,
        "PUT",
        "/upload",
        Some(token(keys, Verb::Upload, Some(hash), 600)),
        &blob,
    )
    .await?;
    if !(status == 200 || status == 201) {
        return Err(format!("upload answered {status}").into());
    }
    lap(&mut slowest);
    let status = http_status(addr, "GET", &format!("/{hash}"), None, &[]).await?;
    if status != 200 {
        return Err(format!("download answered {status}").into());
    }
    lap(&mut slowest);
    Ok(slowest)
}

/// One HTTP request on its own connection; its status (the body is read and dropped).
async fn http_status(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<String>,
    body: &[u8],
) -> Result<u16, Box<dyn std::error::Error>> {
    let mut tcp = tokio::time::timeout(HONEST_WAIT, TcpStream::connect(addr)).await??;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    if method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(body).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(HONEST_WAIT, tcp.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
    Ok(text.split(' ').nth(1).ok_or("no status")?.parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_client_is_served_while_hostile_ones_attack() -> TestResult {
    let relay = start_relay().await?;
    let addr = relay.addr;
    let pid = relay.child.id();

    // Something for the silent subscribers to be sent: 2000 stored events of 2 KiB, over four
    // connections (each within its opening allowance of the byte rate).
    let keys = Keys::generate();
    for c in 0..4u64 {
        let mut ws = connect(addr).await?;
        for i in 0..500u64 {
            let at = 1_600_000_000 + c * 500 + i;
            let e = event(&keys, format!("{at} {}", "s".repeat(2048)), at);
            ws.send(Message::Text(ClientMessage::event(e).as_json().into()))
                .await?;
        }
        for _ in 0..500 {
            recv(&mut ws).await?;
        }
    }

    let baseline = rss_kb(pid).unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let peak_rss = Arc::new(AtomicU64::new(baseline));
    let peak_tmp = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak_rss, peak_tmp) = (stop.clone(), peak_rss.clone(), peak_tmp.clone());
        let tmp = relay.dir.join("blobs").join("tmp");
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kb) = rss_kb(pid) {
                    peak_rss.fetch_max(kb, Ordering::Relaxed);
                }
                peak_tmp.fetch_max(dir_bytes(&tmp), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut attackers = Vec::new();
    for seed in 0..8 {
        attackers.push(tokio::spawn(flooder(
            addr,
            stop.clone(),
            tally.clone(),
            seed,
        )));
    }
    for _ in 0..4 {
        attackers.push(tokio::spawn(silent_subscriber(addr, stop.clone())));
        attackers.push(tokio::spawn(hostile_uploader(
            addr,
            stop.clone(),
            tally.clone(),
        )));
    }
    for _ in 0..8 {
        attackers.push(tokio::spawn(idler(addr, stop.clone(), tally.clone())));
    }

    // The honest client, throughout the attack.
    let honest = Keys::generate();
    let started = Instant::now();
    let mut rounds = 0u64;
    let mut slowest = Duration::ZERO;
    while started.elapsed() < ATTACK {
        let took = honest_round(addr, &honest, rounds).await?;
        slowest = slowest.max(took);
        rounds += 1;
    }
    // More connections from this address than the relay allows: the extra ones are closed.
    let mut crowd = Vec::new();
    for _ in 0..60 {
        if let Ok(tcp) = TcpStream::connect(addr).await {
            crowd.push(tcp);
        }
    }
    for tcp in &mut crowd {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await
        {
            tally.refused_connections.fetch_add(1, Ordering::Relaxed);
        }
    }
    drop(crowd);
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for a in &attackers {
        a.abort();
    }
    let _ = sampler.await;

    let peak = peak_rss.load(Ordering::Relaxed);
    println!(
        "hostile load, {} s: honest rounds {rounds} (20 publishes, a query, a 1 MiB upload and \
         download each), slowest operation {:.0} ms; relay RSS {} MB before, {} MB at peak \
         (bound {RSS_BOUND_MB} MB); flooders got {} MB through; hostile uploads refused before \
         their body: {}, blobs/tmp peaked at {} MB; idle connections closed: {}; connections \
         past the per-IP cap refused: {}",
        ATTACK.as_secs(),
        slowest.as_secs_f64() * 1000.0,
        baseline / 1024,
        peak / 1024,
        tally.flooded_bytes.load(Ordering::Relaxed) >> 20,
        tally.uploads_refused.load(Ordering::Relaxed),
        peak_tmp.load(Ordering::Relaxed) >> 20,
        tally.idle_closed.load(Ordering::Relaxed),
        tally.refused_connections.load(Ordering::Relaxed),
    );
    assert!(rounds >= 2, "the honest client completed {rounds} rounds");
    assert!(peak / 1024 < RSS_BOUND_MB, "peak RSS {} MB", peak / 1024);
    assert!(
        peak_tmp.load(Ordering::Relaxed) <= 1 << 20,
        "only the honest 1 MiB upload ever reached blobs/tmp"
    );
    assert_eq!(
        tally.idle_closed.load(Ordering::Relaxed),
        8,
        "every idle connection was closed by the header timeout"
    );
    assert!(
        tally.refused_connections.load(Ordering::Relaxed) > 0,
        "the per-IP cap refused some"
    );
    Ok(())
}
