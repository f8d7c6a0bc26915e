//! Blossom on the relay's port over real HTTP on loopback: uploads with BUD-11 tokens, ranged
//! downloads, BUD-06 checks, listing and deleting, and every refusal the issue names. Every wait
//! is bounded.

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test fixtures"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agigit_event::{BlossomAuth, Signed, Verb};
use agigit_hash::BlobHash;
use agigit_relay::payment::{PaidAction, PaidRequest, PaymentCheck, PaymentGate, PaymentRequired};
use agigit_relay::server::{Info, Limits, Relay, serve};
use agigit_relay::{BlossomConfig, FsBlobStore, SqliteEventStore};
use nostr::prelude::{Keys, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

type TestResult = Result<(), Box<dyn std::error::Error>>;
const WAIT: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    dir: std::path::PathBuf,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start(name: &str, config: BlossomConfig) -> Result<Server, Box<dyn std::error::Error>> {
    Ok(start_with(name, config, 0).await?.0)
}

/// A server whose store keeps unclaimed blobs `retention` seconds, and a handle on the store.
async fn start_with(
    name: &str,
    config: BlossomConfig,
    retention: u64,
) -> Result<(Server, FsBlobStore), Box<dyn std::error::Error>> {
    launch(name, config, retention, None).await
}

/// [`start_with`], asking `gate` before blobs are stored or served (BUD-07).
async fn launch(
    name: &str,
    config: BlossomConfig,
    retention: u64,
    gate: Option<Arc<dyn PaymentGate>>,
) -> Result<(Server, FsBlobStore), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("agigit-blossom-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let blobs = FsBlobStore::open(&dir)?.with_retention(retention)?;
    let handle = blobs.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let relay = Relay::new(
        Arc::new(SqliteEventStore::in_memory()?),
        Limits::default(),
        Info::default(),
    )
    .with_blobs(Arc::new(blobs), config);
    let relay = match gate {
        Some(g) => relay.with_payment_gate(g),
        None => relay,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, relay, async {
        let _ = stopped.await;
    }));
    Ok((
        Server {
            addr,
            dir,
            _stop: stop,
        },
        handle,
    ))
}

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One HTTP/1.1 request on its own connection.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Reply, Box<dyn std::error::Error>> {
    let mut tcp = TcpStream::connect(addr).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await?;
    // The server may refuse before reading the body (413): a write error then is expected.
    let _ = tcp.write_all(body).await;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw)).await??;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header end")?;
    let head = String::from_utf8(raw[..split].to_vec())?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .ok_or("no status")?
        .parse()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size")?;
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol])?.trim(), 16)?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).ok_or("short chunk")?);
        raw = raw.get(size + 2..).ok_or("chunk end")?;
    }
}

fn token(keys: &Keys, verb: Verb, blob: Option<BlobHash>, expires_in: i64) -> String {
    let now = Timestamp::now().as_secs();
    let expiration = Timestamp::from_secs(now.saturating_add_signed(expires_in));
    let mut auth = BlossomAuth::new(verb, expiration);
    if let Some(b) = blob {
        auth = auth.with_blob(b);
    }
    let created = Timestamp::from_secs(now.saturating_sub(1));
    Signed::sign(auth, keys, created)
        .expect("sign")
        .to_authorization_header()
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn put(
    addr: SocketAddr,
    keys: &Keys,
    data: &[u8],
) -> Result<Reply, Box<dyn std::error::Error>> {
    let hash = BlobHash::digest(data);
    http(
        addr,
        "PUT",
        "/upload",
        &[
            ("Authorization", token(keys, Verb::Upload, Some(hash), 600)),
            ("X-SHA-256", hash.to_string()),
            ("Content-Type", "application/octet-stream".into()),
        ],
        data,
    )
    .await
}

#[tokio::test]
async fn upload_download_range_list_delete() -> TestResult {
    let server = start("roundtrip", BlossomConfig::default()).await?;
    let (alice, bob) = (Keys::generate(), Keys::generate());
    // Large enough to stream in several chunks.
    let data = bytes(3 << 20, 7);
    let hash = BlobHash::digest(&data);

    let r = put(server.addr, &alice, &data).await?;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let desc: serde_json::Value = serde_json::from_slice(&r.body)?;
    assert_eq!(desc["sha256"], hash.to_string());
    assert_eq!(desc["size"], data.len());
    assert!(
        desc["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("{hash}.bin")))
    );
    // The same bytes again: 200, present.
    assert_eq!(put(server.addr, &alice, &data).await?.status, 200);
    assert_eq!(put(server.addr, &bob, &data).await?.status, 200);

    let path = format!("/{hash}");
    let r = http(server.addr, "GET", &path, &[], &[]).await?;
    assert_eq!(r.status, 200);
    assert_eq!(BlobHash::digest(&r.body), hash);
    let r = http(server.addr, "HEAD", &path, &[], &[]).await?;
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(
        r.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let r = http(
        server.addr,
        "GET",
        &format!("{path}.bin"),
        &[("Range", "bytes=1000-1999".into())],
        &[],
    )
    .await?;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, data[1000..2000]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1000-1999/{}", data.len()).as_str())
    );
    let r = http(
        server.addr,
        "GET",
        &path,
        &[("Range", "bytes=-10".into())],
        &[],
    )
    .await?;
    assert_eq!(r.body, data[data.len() - 10..]);
    let r = http(
        server.addr,
        "GET",
        &path,
        &[("Range", format!("bytes={}-", data.len()))],
        &[],
    )
    .await?;
    assert_eq!(r.status, 416);
    let missing = BlobHash::digest(b"not stored");
    assert_eq!(
        http(server.addr, "GET", &format!("/{missing}"), &[], &[])
            .await?
            .status,
        404
    );

    // BUD-12: listing per uploader.
    let r = http(
        server.addr,
        "GET",
        &format!("/list/{}", alice.public_key().to_hex()),
        &[],
        &[],
    )
    .await?;
    let list: serde_json::Value = serde_json::from_slice(&r.body)?;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["sha256"], hash.to_string());

    // Only an uploader may delete, and only its own claim: the blob stays while Bob holds it.
    let carol = Keys::generate();
    let del = |k: &Keys| token(k, Verb::Delete, Some(hash), 600);
    let r = http(
        server.addr,
        "DELETE",
        &path,
        &[("Authorization", del(&carol))],
        &[],
    )
    .await?;
    assert_eq!(r.status, 403);
    let r = http(
        server.addr,
        "DELETE",
        &path,
        &[("Authorization", del(&alice))],
        &[],
    )
    .await?;
    assert_eq!(r.status, 200);
    assert_eq!(http(server.addr, "GET", &path, &[], &[]).await?.status, 200);
    let r = http(
        server.addr,
        "DELETE",
        &path,
        &[("Authorization", del(&bob))],
        &[],
    )
    .await?;
    assert_eq!(r.status, 200);
    assert_eq!(http(server.addr, "GET", &path, &[], &[]).await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn refusals_store_nothing_and_the_server_keeps_serving() -> TestResult {
    let config = BlossomConfig {
        max_blob_bytes: 1 << 20,
        quota_bytes_per_pubkey: 3 << 18,
        ..BlossomConfig::default()
    };
    let server = start("refusals", config).await?;
    let keys = Keys::generate();
    let data = bytes(1000, 1);
    let hash = BlobHash::digest(&data);
    let up = |auth: String, declared: String, body: Vec<u8>| {
        let addr = server.addr;
        async move {
            http(
                addr,
                "PUT",
                "/upload",
                &[("Authorization", auth), ("X-SHA-256", declared)],
                &body,
            )
            .await
        }
    };

    // No token; an expired one; a wrong verb; a token for another blob.
    let r = http(server.addr, "PUT", "/upload", &[], &data).await?;
    assert_eq!(r.status, 401);
    assert!(r.header("x-reason").is_some());
    let r = up(
        token(&keys, Verb::Upload, Some(hash), -10),
        hash.to_string(),
        data.clone(),
    )
    .await?;
    assert_eq!(r.status, 401);
    assert!(
        r.header("x-reason").is_some_and(|m| m.contains("expired")),
        "{:?}",
        r.header("x-reason")
    );
    let r = up(
        token(&keys, Verb::Get, Some(hash), 600),
        hash.to_string(),
        data.clone(),
    )
    .await?;
    assert_eq!(r.status, 401);
    let other = BlobHash::digest(b"other");
    let r = up(
        token(&keys, Verb::Upload, Some(other), 600),
        hash.to_string(),
        data.clone(),
    )
    .await?;
    assert_eq!(r.status, 403);
    // Bytes that do not match the declared hash: 409 with the actual hash.
    let mut tampered = data.clone();
    tampered[0] ^= 1;
    let r = up(
        token(&keys, Verb::Upload, Some(hash), 600),
        hash.to_string(),
        tampered.clone(),
    )
    .await?;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.header("x-sha-256"),
        Some(BlobHash::digest(&tampered).to_string().as_str())
    );
    // Too large: 413 before the body is read.
    let big = bytes((1 << 20) + 1, 2);
    let big_hash = BlobHash::digest(&big);
    let r = up(
        token(&keys, Verb::Upload, Some(big_hash), 600),
        big_hash.to_string(),
        big,
    )
    .await?;
    assert_eq!(r.status, 413);
    // Nothing of the above is visible.
    for h in [hash, BlobHash::digest(&tampered), big_hash] {
        assert_eq!(
            http(server.addr, "GET", &format!("/{h}"), &[], &[])
                .await?
                .status,
            404
        );
    }
    // And no temporary file was left behind.
    assert_eq!(std::fs::read_dir(server.dir.join("tmp"))?.count(), 0);

    // BUD-06 preflight.
    let check = |len: Option<u64>, h: BlobHash, auth: bool| {
        let mut headers = vec![("X-SHA-256", h.to_string())];
        if let Some(n) = len {
            headers.push(("X-Content-Length", n.to_string()));
        }
        if auth {
            headers.push(("Authorization", token(&keys, Verb::Upload, Some(h), 600)));
        }
        let addr = server.addr;
        async move { http(addr, "HEAD", "/upload", &headers, &[]).await }
    };
    assert_eq!(check(Some(1000), hash, true).await?.status, 200);
    assert_eq!(check(None, hash, true).await?.status, 411);
    assert_eq!(check(Some(2 << 20), hash, true).await?.status, 413);
    assert_eq!(check(Some(1000), hash, false).await?.status, 401);

    // The quota (768 KiB): one 512 KiB blob fits, a second does not.
    let a = bytes(512 << 10, 3);
    assert_eq!(put(server.addr, &keys, &a).await?.status, 201);
    let b = bytes(512 << 10, 4);
    let r = put(server.addr, &keys, &b).await?;
    assert_eq!(r.status, 413);
    assert!(r.header("x-reason").is_some_and(|m| m.contains("quota")));
    assert_eq!(
        check(Some(512 << 10), BlobHash::digest(&b), true)
            .await?
            .status,
        413
    );
    // Another user is not affected, and the good upload is still served.
    assert_eq!(put(server.addr, &Keys::generate(), &b).await?.status, 201);
    let r = http(
        server.addr,
        "GET",
        &format!("/{}", BlobHash::digest(&a)),
        &[],
        &[],
    )
    .await?;
    assert_eq!(r.body, a);
    // Malformed requests.
    assert_eq!(
        http(server.addr, "GET", "/list/nothex", &[], &[])
            .await?
            .status,
        400
    );
    assert_eq!(
        http(server.addr, "GET", "/abc", &[], &[]).await?.status,
        404
    );
    let r = up("Bearer x".into(), hash.to_string(), data.clone()).await?;
    assert_eq!(r.status, 401);
    let r = up(
        token(&keys, Verb::Upload, Some(hash), 600),
        "zz".into(),
        data,
    )
    .await?;
    assert_eq!(r.status, 400);
    Ok(())
}

#[tokio::test]
async fn downloads_can_require_a_get_token() -> TestResult {
    let config = BlossomConfig {
        require_auth_for_get: true,
        ..BlossomConfig::default()
    };
    let server = start("get-auth", config).await?;
    let keys = Keys::generate();
    let data = bytes(100, 9);
    let hash = BlobHash::digest(&data);
    assert_eq!(put(server.addr, &keys, &data).await?.status, 201);
    let path = format!("/{hash}");
    assert_eq!(http(server.addr, "GET", &path, &[], &[]).await?.status, 401);
    let r = http(
        server.addr,
        "GET",
        &path,
        &[("Authorization", token(&keys, Verb::Get, Some(hash), 60))],
        &[],
    )
    .await?;
    assert_eq!((r.status, r.body), (200, data));
    Ok(())
}

/// Sends an upload's headers (and `body`, when given), then reads the answer: what a client that
/// stalls, or lies about its length, gets. `None` for the length leaves Content-Length out.
async fn raw_upload(
    addr: SocketAddr,
    auth: Option<String>,
    length: Option<u64>,
    body: &[u8],
    extra: &str,
) -> Result<Reply, Box<dyn std::error::Error>> {
    let mut tcp = TcpStream::connect(addr).await?;
    let mut head = format!("PUT /upload HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}");
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    match length {
        Some(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        None => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await?;
    let _ = tcp.write_all(body).await;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the head of the answer is in: the server answers (and closes) without waiting
    // for a body it will not take.
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .ok_or("no status")?
        .parse()
        .map_err(|_| format!("no status in {head:?}"))?;
    Ok(Reply {
        status,
        headers: HashMap::new(),
        body: Vec::new(),
    })
}

fn token_with(
    keys: &Keys,
    verb: Verb,
    blob: Option<BlobHash>,
    created_ago: u64,
    expires_in: u64,
    server: Option<String>,
) -> String {
    let now = Timestamp::now().as_secs();
    let mut auth = BlossomAuth::new(verb, Timestamp::from_secs(now + expires_in));
    if let Some(b) = blob {
        auth = auth.with_blob(b);
    }
    if let Some(s) = server {
        auth = auth.with_server(s);
    }
    Signed::sign(auth, keys, Timestamp::from_secs(now - created_ago))
        .expect("sign")
        .to_authorization_header()
}

#[tokio::test]
async fn hostile_uploads_are_refused_before_their_body_and_hold_nothing() -> TestResult {
    let config = BlossomConfig {
        quota_bytes_per_pubkey: 3 << 20,
        ..BlossomConfig::default()
    };
    let server = start("hostile-uploads", config).await?;
    let keys = Keys::generate();
    let hash = BlobHash::digest(b"whatever");
    let tmp_bytes = || support::dir_bytes(&server.dir.join("tmp"));
    let big = Some(100u64 << 20);
    // Each of these claims a 100 MB body and sends none of it: the answer comes from the headers.
    let cases = [
        ("no token", None, big, 401),
        (
            "an expired t=get token from a throw-away key",
            Some(token(&Keys::generate(), Verb::Get, None, -10)),
            big,
            401,
        ),
        (
            "a t=get token",
            Some(token(&keys, Verb::Get, Some(hash), 600)),
            big,
            401,
        ),
        (
            "an upload token naming no blob",
            Some(token(&keys, Verb::Upload, None, 600)),
            big,
            401,
        ),
        (
            "a token valid for a day",
            Some(token_with(&keys, Verb::Upload, Some(hash), 1, 86_400, None)),
            big,
            401,
        ),
        (
            "a token for the same host on another port",
            Some(token_with(
                &keys,
                Verb::Upload,
                Some(hash),
                1,
                600,
                Some("127.0.0.1:1".into()),
            )),
            big,
            401,
        ),
        (
            "no Content-Length",
            Some(token(&keys, Verb::Upload, Some(hash), 600)),
            None,
            411,
        ),
        (
            "more than the quota",
            Some(token(&keys, Verb::Upload, Some(hash), 600)),
            Some(4 << 20),
            413,
        ),
    ];
    for (what, auth, length, status) in cases {
        let started = std::time::Instant::now();
        let r = raw_upload(server.addr, auth, length, &[], "").await?;
        assert_eq!(r.status, status, "{what}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: answered at once"
        );
    }
    assert_eq!(tmp_bytes(), 0);

    // Quota is reserved when an upload starts: a second upload by the same key that would only
    // fit without the first is refused while the first is under way.
    let first = token(&keys, Verb::Upload, Some(hash), 600);
    let addr = server.addr;
    let stalled = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "PUT /upload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {first}\r\nContent-Length: {}\r\n\r\n",
            2 << 20
        );
        tcp.write_all(head.as_bytes()).await.expect("head");
        tcp.write_all(&[7u8; 1000]).await.expect("some body");
        // Then nothing: the server's body timeout ends it.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(WAIT * 3, tcp.read_to_end(&mut rest)).await;
        rest
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = token(&keys, Verb::Upload, Some(hash), 600);
    let r = raw_upload(server.addr, Some(second), Some(2 << 20), &[], "").await?;
    assert_eq!(r.status, 413, "the first upload's reservation counts");
    stalled.abort();

    // A body longer than its Content-Length is cut there (the rest is no request at all), and
    // what is left is not the blob the token names; nor is a whole body the token does not name.
    let data = bytes(5000, 3);
    let real = BlobHash::digest(&data);
    let r = raw_upload(
        server.addr,
        Some(token(&keys, Verb::Upload, Some(real), 600)),
        Some(10),
        &data,
        "",
    )
    .await?;
    assert_eq!(r.status, 403);
    let r = raw_upload(
        server.addr,
        Some(token(&keys, Verb::Upload, Some(hash), 600)),
        Some(data.len() as u64),
        &data,
        "",
    )
    .await?;
    assert_eq!(r.status, 403);
    assert_eq!(
        http(server.addr, "GET", &format!("/{real}"), &[], &[])
            .await?
            .status,
        404,
        "nothing was stored"
    );

    // An HTML page uploaded as such is served as bytes, never as a page of the relay's origin.
    let page = b"<html><script>alert(document.cookie)</script></html>".to_vec();
    let page_hash = BlobHash::digest(&page);
    let r = http(
        server.addr,
        "PUT",
        "/upload",
        &[
            (
                "Authorization",
                token(&keys, Verb::Upload, Some(page_hash), 600),
            ),
            ("Content-Type", "text/html".into()),
        ],
        &page,
    )
    .await?;
    assert_eq!(r.status, 201);
    let r = http(server.addr, "GET", &format!("/{page_hash}"), &[], &[]).await?;
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|c| c.contains("sandbox")),
        "{:?}",
        r.headers
    );
    Ok(())
}

#[tokio::test]
async fn a_blob_whose_last_claim_goes_is_kept_for_the_retention_then_swept() -> TestResult {
    let (server, store) = start_with("retention", BlossomConfig::default(), 3600).await?;
    let (alice, bob) = (Keys::generate(), Keys::generate());
    let data = bytes(10_000, 3);
    let hash = BlobHash::digest(&data);
    let path = format!("/{hash}");
    let del = |k: &Keys| token(k, Verb::Delete, Some(hash), 600);
    let status = |method: &'static str| {
        let path = path.clone();
        let addr = server.addr;
        async move {
            Ok::<_, Box<dyn std::error::Error>>(http(addr, method, &path, &[], &[]).await?.status)
        }
    };
    assert_eq!(put(server.addr, &alice, &data).await?.status, 201);
    let r = http(
        server.addr,
        "DELETE",
        &path,
        &[("Authorization", del(&alice))],
        &[],
    )
    .await?;
    assert_eq!(r.status, 200);
    // Unclaimed: still served to a reader, but not claimed, listed or counted.
    assert_eq!(status("GET").await?, 200);
    assert_eq!(status("HEAD").await?, 404);
    let list = http(
        server.addr,
        "GET",
        &format!("/list/{}", alice.public_key().to_hex()),
        &[],
        &[],
    )
    .await?;
    assert_eq!(list.body, b"[]");
    // Claimed again by an upload: kept.
    assert_eq!(put(server.addr, &bob, &data).await?.status, 200);
    assert_eq!(status("HEAD").await?, 200);
    assert_eq!(store.sweep(u64::MAX)?, 0, "a claimed blob is never swept");
    let r = http(
        server.addr,
        "DELETE",
        &path,
        &[("Authorization", del(&bob))],
        &[],
    )
    .await?;
    assert_eq!(r.status, 200);
    // Within the retention nothing goes; past it, the bytes do.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    assert_eq!(store.sweep(now)?, 0);
    assert_eq!(status("GET").await?, 200);
    assert_eq!(store.sweep(now + 3601)?, 1);
    assert_eq!(status("GET").await?, 404);
    let file = server.dir.join(&hash.to_hex()[..2]).join(hash.to_hex());
    assert!(!file.exists());
    Ok(())
}

/// An upload refused from its headers while the client is still sending the body: the client
/// reads the 401 (the relay closes gently, reading and dropping what is still in flight, so no
/// reset destroys the answer), and a client that never stops sending is cut off soon after.
#[tokio::test]
async fn a_refused_upload_still_sending_its_body_reads_the_refusal() -> TestResult {
    let server = start("linger", BlossomConfig::default()).await?;
    for _ in 0..3 {
        // More than the socket buffers hold: without the gentle close, the body's write fails
        // with a reset, and a client such as Node's fetch reports a network error, never the
        // answer.
        let body = vec![7u8; 6 << 20];
        let mut tcp = TcpStream::connect(server.addr).await?;
        let head = format!(
            "PUT /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await?;
        tokio::time::timeout(WAIT, tcp.write_all(&body))
            .await?
            .map_err(|e| format!("the body's write failed: {e}"))?;
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await??;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    // A client that sends without end: cut off within the linger's bounds.
    let mut tcp = TcpStream::connect(server.addr).await?;
    tcp.write_all(b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n")
        .await?;
    let started = std::time::Instant::now();
    let chunk = vec![0u8; 64 << 10];
    let cut = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if tcp.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "the relay kept reading an endless body");
    eprintln!("an endless body was cut off after {:?}", started.elapsed());
    Ok(())
}

/// CORS for browser clients (BUD-01): a preflight is answered with the methods and headers
/// Blossom uses, and every answer — refusals included — is readable by any origin.
#[tokio::test]
async fn bud01_cors_every_answer_allows_any_origin_and_preflights_name_the_methods() -> TestResult {
    let server = start("cors", BlossomConfig::default()).await?;
    let hash = BlobHash::digest(b"x");
    for path in ["/upload".to_owned(), format!("/{hash}"), "/".to_owned()] {
        let r = http(
            server.addr,
            "OPTIONS",
            &path,
            &[
                ("Origin", "https://app.example".into()),
                ("Access-Control-Request-Method", "PUT".into()),
                (
                    "Access-Control-Request-Headers",
                    "authorization,content-type".into(),
                ),
            ],
            &[],
        )
        .await?;
        assert!(r.status == 204 || r.status == 200, "{path}: {}", r.status);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        let methods = r.header("access-control-allow-methods").unwrap_or_default();
        for m in ["GET", "HEAD", "PUT", "DELETE"] {
            assert!(methods.contains(m), "{path}: {methods}");
        }
        let allowed = r.header("access-control-allow-headers").unwrap_or_default();
        assert!(
            allowed.contains("Authorization") && allowed.contains('*'),
            "{allowed}"
        );
    }
    for (method, path) in [
        ("GET", format!("/{hash}")),
        ("PUT", "/upload".to_owned()),
        ("GET", "/list/zz".to_owned()),
    ] {
        let r = http(
            server.addr,
            method,
            &path,
            &[("Origin", "https://app.example".into())],
            &[],
        )
        .await?;
        assert!(r.status >= 400, "{method} {path}");
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "{method} {path}"
        );
        assert!(
            r.header("access-control-expose-headers")
                .is_some_and(|h| h.contains("X-Reason")),
            "{method} {path}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The specification clause by clause (hzrd149/blossom, April 2026: BUD-01, 02, 06, 07, 11 and
// 12): a test per MUST the relay is bound by, named after the clause. (BUD-01's CORS clause is
// `bud01_cors_every_answer_allows_any_origin_and_preflights_name_the_methods` above.)
// ---------------------------------------------------------------------------------------------

/// A signed event of `kind` with `tags`, as an `Authorization` header: base64url without
/// padding, as BUD-11 says clients send it.
fn raw_token(keys: &Keys, kind: u16, created_at: u64, tags: &[&[&str]]) -> String {
    use base64::Engine as _;
    use nostr::prelude::{Kind, SignEvent, Tag, UnsignedEvent};
    let tags: Vec<Tag> = tags
        .iter()
        .map(|t| Tag::parse(t.iter().copied()).expect("tag"))
        .collect();
    let unsigned = UnsignedEvent::new(
        keys.public_key(),
        Timestamp::from_secs(created_at),
        Kind::from(kind),
        tags,
        "Upload Blob",
    );
    let event = SignEvent::sign_event(keys, unsigned).expect("sign");
    format!(
        "Nostr {}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(event.as_json())
    )
}

/// An upload of `data` with `authorization` (and its `X-SHA-256`).
async fn put_with(
    addr: SocketAddr,
    authorization: String,
    data: &[u8],
    content_type: &str,
) -> Result<Reply, Box<dyn std::error::Error>> {
    let hash = BlobHash::digest(data);
    http(
        addr,
        "PUT",
        "/upload",
        &[
            ("Authorization", authorization),
            ("X-SHA-256", hash.to_string()),
            ("Content-Type", content_type.to_owned()),
        ],
        data,
    )
    .await
}

fn now() -> u64 {
    Timestamp::now().as_secs()
}

/// The status `method path` gets, with no headers or body.
async fn status(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> Result<u16, Box<dyn std::error::Error>> {
    Ok(http(addr, method, path, &[], &[]).await?.status)
}

#[tokio::test]
async fn bud01_get_returns_the_blob_under_any_extension_with_its_type_or_octet_stream() -> TestResult
{
    let server = start("bud01-get", BlossomConfig::default()).await?;
    let alice = Keys::generate();
    let (raw, text) = (bytes(5000, 1), b"hello\n".to_vec());
    assert_eq!(put(server.addr, &alice, &raw).await?.status, 201);
    let t = put_with(
        server.addr,
        token(&alice, Verb::Upload, Some(BlobHash::digest(&text)), 600),
        &text,
        "text/plain",
    )
    .await?;
    assert_eq!(t.status, 201);
    for (data, ty) in [(&raw, "application/octet-stream"), (&text, "text/plain")] {
        let hash = BlobHash::digest(data);
        // Served from the root, with or without an extension (which does not change the type).
        for path in [
            format!("/{hash}"),
            format!("/{hash}.pdf"),
            format!("/{hash}.png"),
        ] {
            let r = http(server.addr, "GET", &path, &[], &[]).await?;
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(&r.body, data, "{path}");
            assert_eq!(r.header("content-type"), Some(ty), "{path}");
        }
    }
    let missing = format!("/{}", BlobHash::digest(b"no"));
    assert_eq!(status(server.addr, "GET", &missing).await?, 404);
    Ok(())
}

#[tokio::test]
async fn bud01_head_answers_as_get_without_the_body_under_any_extension() -> TestResult {
    let server = start("bud01-head", BlossomConfig::default()).await?;
    let alice = Keys::generate();
    let data = bytes(3000, 2);
    let hash = BlobHash::digest(&data);
    assert_eq!(put(server.addr, &alice, &data).await?.status, 201);
    let get = http(server.addr, "GET", &format!("/{hash}"), &[], &[]).await?;
    for path in [format!("/{hash}"), format!("/{hash}.safetensors")] {
        let head = http(server.addr, "HEAD", &path, &[], &[]).await?;
        assert_eq!(head.status, 200, "{path}");
        assert!(head.body.is_empty(), "{path}: no body");
        assert_eq!(head.header("content-type"), get.header("content-type"));
        assert_eq!(head.header("content-length"), Some("3000"));
        assert_eq!(head.header("accept-ranges"), Some("bytes"));
    }
    let missing = format!("/{}", BlobHash::digest(b"no"));
    assert_eq!(status(server.addr, "HEAD", &missing).await?, 404);
    Ok(())
}

#[tokio::test]
async fn bud02_upload_keeps_the_exact_bytes_201_when_new_200_when_present_no_preflight_needed()
-> TestResult {
    let server = start("bud02-upload", BlossomConfig::default()).await?;
    let alice = Keys::generate();
    // Bytes a careless server might change: line endings, NULs, a BOM, a trailing newline.
    let mut data = b"\xEF\xBB\xBFa\r\nb\n\0\0c\r".to_vec();
    data.extend(bytes(1000, 3));
    let hash = BlobHash::digest(&data);
    let first = put(server.addr, &alice, &data).await?;
    assert_eq!(first.status, 201);
    let d: serde_json::Value = serde_json::from_slice(&first.body)?;
    assert_eq!(d["sha256"], hash.to_string());
    let again = put(server.addr, &alice, &data).await?;
    assert_eq!(again.status, 200);
    let d2: serde_json::Value = serde_json::from_slice(&again.body)?;
    assert_eq!(d2["sha256"], hash.to_string());
    let got = http(server.addr, "GET", &format!("/{hash}"), &[], &[]).await?;
    assert_eq!(got.body, data);
    Ok(())
}

#[tokio::test]
async fn bud02_descriptor_has_url_with_an_extension_sha256_size_type_and_uploaded() -> TestResult {
    let server = start("bud02-descriptor", BlossomConfig::default()).await?;
    let alice = Keys::generate();
    let before = now();
    for (data, ty, ext) in [
        (bytes(700, 4), "application/octet-stream", ".bin"),
        (b"text\n".to_vec(), "text/plain; charset=utf-8", ".txt"),
        (b"<script>".to_vec(), "text/html", ".bin"),
    ] {
        let hash = BlobHash::digest(&data);
        let r = put_with(
            server.addr,
            token(&alice, Verb::Upload, Some(hash), 600),
            &data,
            ty,
        )
        .await?;
        assert_eq!(r.status, 201);
        let d: serde_json::Value = serde_json::from_slice(&r.body)?;
        let url = d["url"].as_str().ok_or("url")?;
        assert!(url.ends_with(&format!("/{hash}{ext}")), "{url}");
        assert_eq!(d["sha256"], hash.to_string());
        assert_eq!(d["size"], data.len());
        // A type the relay will not serve as given (it could run in a browser) falls back.
        let served = if ty.starts_with("text/plain") {
            "text/plain"
        } else {
            "application/octet-stream"
        };
        assert_eq!(d["type"], served);
        let uploaded = d["uploaded"].as_u64().ok_or("uploaded")?;
        assert!((before..=now()).contains(&uploaded));
        // The URL is the blob's.
        let path = &url[url.find(&hash.to_string()).ok_or("hash in url")? - 1..];
        let got = http(server.addr, "GET", path, &[], &[]).await?;
        assert_eq!(got.body, data);
    }
    Ok(())
}

#[tokio::test]
async fn bud06_head_upload_decides_from_x_sha256_x_content_length_and_x_content_type() -> TestResult
{
    let config = BlossomConfig {
        max_blob_bytes: 1 << 20,
        ..BlossomConfig::default()
    };
    let server = start("bud06", config).await?;
    let alice = Keys::generate();
    let hash = BlobHash::digest(b"planned");
    let check = |length: Option<u64>, sha: Option<String>, auth: Option<String>| {
        let mut headers = vec![("X-Content-Type", "application/octet-stream".to_owned())];
        if let Some(l) = length {
            headers.push(("X-Content-Length", l.to_string()));
        }
        if let Some(s) = sha {
            headers.push(("X-SHA-256", s));
        }
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let addr = server.addr;
        async move { http(addr, "HEAD", "/upload", &headers, &[]).await }
    };
    let good = || Some(token(&alice, Verb::Upload, Some(hash), 600));
    let ok = check(Some(7), Some(hash.to_string()), good()).await?;
    assert_eq!(ok.status, 200);
    assert!(ok.body.is_empty());
    for (length, sha, auth, status) in [
        (Some(2 << 20), Some(hash.to_string()), good(), 413),
        (None, Some(hash.to_string()), good(), 411),
        (Some(7), Some("not-a-hash".to_owned()), good(), 400),
        (Some(7), Some(hash.to_string()), None, 401),
        (
            Some(7),
            Some(BlobHash::digest(b"other").to_string()),
            good(),
            403,
        ),
    ] {
        let r = check(length, sha, auth).await?;
        assert_eq!(r.status, status);
        assert!(r.header("x-reason").is_some(), "{status}: a reason");
        assert!(r.body.is_empty());
    }
    Ok(())
}

/// A gate that wants a Cashu token (`cashuBpaid`) for every upload, and records what it saw.
#[derive(Default)]
struct UploadsPaid {
    seen: std::sync::Mutex<Vec<PaidRequest>>,
}

impl PaymentGate for UploadsPaid {
    fn check<'a>(&'a self, request: &'a PaidRequest) -> PaymentCheck<'a> {
        Box::pin(async move {
            self.seen.lock().expect("lock").push(request.clone());
            let paid = request
                .headers
                .get("x-cashu")
                .is_some_and(|v| v == "cashuBpaid");
            if request.action != PaidAction::Upload || paid {
                return Ok(());
            }
            Err(PaymentRequired {
                methods: vec![
                    ("Cashu".to_owned(), "creqAtest".to_owned()),
                    ("Lightning".to_owned(), "lnbc1test".to_owned()),
                    ("not a name".to_owned(), "dropped".to_owned()),
                ],
                reason: "uploads cost 1 sat per MiB".to_owned(),
            })
        })
    }
}

#[tokio::test]
async fn bud07_a_payment_gate_answers_402_with_its_methods_until_the_proof_comes() -> TestResult {
    let gate = Arc::new(UploadsPaid::default());
    let (server, _) = launch("bud07", BlossomConfig::default(), 0, Some(gate.clone())).await?;
    let alice = Keys::generate();
    let data = bytes(2048, 5);
    let hash = BlobHash::digest(&data);
    let auth = || token(&alice, Verb::Upload, Some(hash), 600);
    let preflight = http(
        server.addr,
        "HEAD",
        "/upload",
        &[
            ("Authorization", auth()),
            ("X-SHA-256", hash.to_string()),
            ("X-Content-Length", data.len().to_string()),
        ],
        &[],
    )
    .await?;
    let upload = put_with(server.addr, auth(), &data, "application/octet-stream").await?;
    for r in [&preflight, &upload] {
        assert_eq!(r.status, 402);
        assert_eq!(r.header("x-cashu"), Some("creqAtest"));
        assert_eq!(r.header("x-lightning"), Some("lnbc1test"));
        assert_eq!(r.header("x-reason"), Some("uploads cost 1 sat per MiB"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
    // Nothing was stored.
    assert_eq!(status(server.addr, "HEAD", &format!("/{hash}")).await?, 404);
    // With the proof, the same upload goes through; downloads are free here.
    let hash_hex = hash.to_string();
    let paid = http(
        server.addr,
        "PUT",
        "/upload",
        &[
            ("Authorization", auth()),
            ("X-SHA-256", hash_hex.clone()),
            ("X-Cashu", "cashuBpaid".to_owned()),
        ],
        &data,
    )
    .await?;
    assert_eq!(paid.status, 201);
    let got = http(server.addr, "GET", &format!("/{hash}"), &[], &[]).await?;
    assert_eq!(got.body, data);
    // The gate was told who pays, for what and how much.
    let seen = gate.seen.lock().expect("lock").clone();
    let uploads: Vec<&PaidRequest> = seen
        .iter()
        .filter(|r| r.action == PaidAction::Upload)
        .collect();
    assert_eq!(uploads.len(), 3);
    assert!(uploads.iter().all(|r| r.payer == Some(alice.public_key())
        && r.blob == Some(hash)
        && r.size == Some(data.len() as u64)));
    assert!(
        seen.iter()
            .any(|r| r.action == PaidAction::Download && r.size == Some(2048))
    );
    Ok(())
}

#[tokio::test]
async fn bud11_a_token_must_be_kind_24242_dated_in_the_past_and_expire_in_the_future() -> TestResult
{
    let server = start("bud11-dates", BlossomConfig::default()).await?;
    let alice = Keys::generate();
    let data = bytes(100, 6);
    let x = BlobHash::digest(&data).to_string();
    let later = (now() + 600).to_string();
    let earlier = (now() - 10).to_string();
    for (what, kind, created, expiration) in [
        ("another kind", 24241, now() - 1, Some(later.as_str())),
        (
            "created an hour from now",
            24242,
            now() + 3600,
            Some(later.as_str()),
        ),
        ("no expiration", 24242, now() - 1, None),
        ("expired", 24242, now() - 60, Some(earlier.as_str())),
    ] {
        let (t, xt) = (["t", "upload"], ["x", x.as_str()]);
        let exp = expiration.map(|e| ["expiration", e]);
        let mut tags: Vec<&[&str]> = vec![&t, &xt];
        if let Some(e) = &exp {
            tags.push(e);
        }
        let r = put_with(
            server.addr,
            raw_token(&alice, kind, created, &tags),
            &data,
            "application/octet-stream",
        )
        .await?;
        assert_eq!(r.status, 401, "{what}");
        assert!(r.header("x-reason").is_some(), "{what}");
    }
    // The same token, valid, sent as BUD-11 says (base64url, no padding), is taken.
    let good = raw_token(
        &alice,
        24242,
        now() - 1,
        &[
            &["t", "upload"],
            &["x", x.as_str()],
            &["expiration", later.as_str()],
        ],
    );
    assert_eq!(
        put_with(server.addr, good, &data, "application/octet-stream")
            .await?
            .status,
        201
    );
    Ok(())
}

#[tokio::test]
async fn bud11_the_t_verb_must_match_the_endpoint() -> TestResult {
    let server = start("bud11-verb", BlossomConfig::default()).await?;
    let alice = Keys::generate();
    let data = bytes(100, 7);
    let hash = BlobHash::digest(&data);
    let wrong = put_with(
        server.addr,
        token(&alice, Verb::Delete, Some(hash), 600),
        &data,
        "application/octet-stream",
    )
    .await?;
    assert_eq!(wrong.status, 401);
    assert_eq!(put(server.addr, &alice, &data).await?.status, 201);
    let delete_with_upload = http(
        server.addr,
        "DELETE",
        &format!("/{hash}"),
        &[(
            "Authorization",
            token(&alice, Verb::Upload, Some(hash), 600),
        )],
        &[],
    )
    .await?;
    assert_eq!(delete_with_upload.status, 401);
    assert_eq!(status(server.addr, "HEAD", &format!("/{hash}")).await?, 200);
    Ok(())
}

#[tokio::test]
async fn bud11_server_tags_must_name_this_servers_domain() -> TestResult {
    let server = start("bud11-server", BlossomConfig::default()).await?;
    let alice = Keys::generate();
    for (n, server_tag, status) in [
        (1u8, Some("cdn.example.com"), 401),
        (2, Some("127.0.0.1"), 201),
        (3, None, 201),
    ] {
        let data = bytes(64, 10 + n);
        let hash = BlobHash::digest(&data);
        let auth = token_with(
            &alice,
            Verb::Upload,
            Some(hash),
            1,
            600,
            server_tag.map(str::to_owned),
        );
        let r = put_with(server.addr, auth, &data, "application/octet-stream").await?;
        assert_eq!(r.status, status, "{server_tag:?}");
    }
    Ok(())
}

#[tokio::test]
async fn bud11_x_tags_are_required_for_upload_and_delete_and_optional_for_get() -> TestResult {
    let config = BlossomConfig {
        require_auth_for_get: true,
        ..BlossomConfig::default()
    };
    let server = start("bud11-x", config).await?;
    let alice = Keys::generate();
    let data = bytes(128, 8);
    let hash = BlobHash::digest(&data);
    let other = BlobHash::digest(b"other");
    // Upload: a token for another blob, or for none, does not do.
    for blob in [Some(other), None] {
        let r = put_with(
            server.addr,
            token(&alice, Verb::Upload, blob, 600),
            &data,
            "application/octet-stream",
        )
        .await?;
        assert!(r.status == 401 || r.status == 403, "{blob:?}: {}", r.status);
    }
    assert_eq!(put(server.addr, &alice, &data).await?.status, 201);
    // Get: no x tag needed.
    let got = http(
        server.addr,
        "GET",
        &format!("/{hash}"),
        &[("Authorization", token(&alice, Verb::Get, None, 600))],
        &[],
    )
    .await?;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, data);
    // Delete: only with the blob's x tag.
    for blob in [Some(other), None] {
        let r = http(
            server.addr,
            "DELETE",
            &format!("/{hash}"),
            &[("Authorization", token(&alice, Verb::Delete, blob, 600))],
            &[],
        )
        .await?;
        assert!(r.status == 401 || r.status == 403, "{blob:?}: {}", r.status);
    }
    let deleted = http(
        server.addr,
        "DELETE",
        &format!("/{hash}"),
        &[(
            "Authorization",
            token(&alice, Verb::Delete, Some(hash), 600),
        )],
        &[],
    )
    .await?;
    assert_eq!(deleted.status, 200);
    Ok(())
}

#[tokio::test]
async fn bud12_list_gives_the_keys_descriptors_newest_first_paged_by_cursor_and_limit() -> TestResult
{
    let server = start("bud12-list", BlossomConfig::default()).await?;
    let (alice, bob) = (Keys::generate(), Keys::generate());
    let mut hashes = Vec::new();
    for n in 0..5u8 {
        let data = bytes(50 + usize::from(n), 20 + n);
        hashes.push(BlobHash::digest(&data).to_string());
        assert_eq!(put(server.addr, &alice, &data).await?.status, 201);
    }
    assert_eq!(put(server.addr, &bob, b"bob's").await?.status, 201);
    let page = |query: String| {
        let addr = server.addr;
        let path = format!("/list/{}{query}", alice.public_key().to_hex());
        async move {
            let r = http(addr, "GET", &path, &[], &[]).await?;
            assert_eq!(r.status, 200);
            let v: Vec<serde_json::Value> = serde_json::from_slice(&r.body)?;
            Ok::<_, Box<dyn std::error::Error>>(v)
        }
    };
    let all = page(String::new()).await?;
    assert_eq!(all.len(), 5, "only alice's");
    let uploaded: Vec<u64> = all.iter().filter_map(|d| d["uploaded"].as_u64()).collect();
    assert!(uploaded.windows(2).all(|w| w[0] >= w[1]), "newest first");
    // Pages of two: each starts after the cursor, none repeats or skips one.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".to_owned(),
        };
        let got = page(query).await?;
        assert!(got.len() <= 2);
        if got.is_empty() {
            break;
        }
        cursor = got
            .last()
            .and_then(|d| d["sha256"].as_str())
            .map(str::to_owned);
        paged.extend(got);
    }
    assert_eq!(paged, all);
    let mut listed: Vec<String> = all
        .iter()
        .filter_map(|d| d["sha256"].as_str().map(str::to_owned))
        .collect();
    listed.sort();
    hashes.sort();
    assert_eq!(listed, hashes);
    let bad = http(
        server.addr,
        "GET",
        &format!("/list/{}?cursor=zz", alice.public_key().to_hex()),
        &[],
        &[],
    )
    .await?;
    assert_eq!(bad.status, 400);
    Ok(())
}

#[tokio::test]
async fn bud12_delete_removes_only_the_blob_in_the_url_whatever_x_tags_the_token_has() -> TestResult
{
    let server = start("bud12-delete", BlossomConfig::default()).await?;
    let alice = Keys::generate();
    let (a, b) = (bytes(90, 30), bytes(91, 31));
    let (ha, hb) = (BlobHash::digest(&a), BlobHash::digest(&b));
    assert_eq!(put(server.addr, &alice, &a).await?.status, 201);
    assert_eq!(put(server.addr, &alice, &b).await?.status, 201);
    let now = now();
    let both = Signed::sign(
        BlossomAuth::new(Verb::Delete, Timestamp::from_secs(now + 600))
            .with_blob(ha)
            .with_blob(hb),
        &alice,
        Timestamp::from_secs(now - 1),
    )?
    .to_authorization_header();
    let r = http(
        server.addr,
        "DELETE",
        &format!("/{ha}"),
        &[("Authorization", both)],
        &[],
    )
    .await?;
    assert_eq!(r.status, 200);
    assert_eq!(status(server.addr, "HEAD", &format!("/{ha}")).await?, 404);
    assert_eq!(status(server.addr, "HEAD", &format!("/{hb}")).await?, 200);
    Ok(())
}
