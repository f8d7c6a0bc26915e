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
            .is_some_and(|u| u.ends_with(&hash.to_string()))
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
async fn browsers_get_their_preflight_and_every_answer() -> TestResult {
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
