//! The explorer's pages, driven through its router (no socket) over a real repository, and its
//! WebSocket download over a real loopback listener.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agigit::delta::{DType, save_safetensors, synth};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A temporary directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("agigit-web-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const AUTHOR: [u8; 32] = [7; 32];

fn write_model(dir: &Path, b: f32) -> TestResult {
    let tensors = [
        (
            "a.weight",
            synth::tensor(DType::F32, &[16, 16], &[1.0; 256]),
        ),
        ("b.weight", synth::tensor(DType::F32, &[16, 16], &[b; 256])),
        ("c.bias", synth::tensor(DType::F32, &[16], &[0.5; 16])),
    ];
    save_safetensors(
        dir.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (*n, t.view())),
        &BTreeMap::new(),
    )?;
    Ok(())
}

/// A repository with two commits: the first with a README (whose HTML must stay text) and
/// three tensors, the second changing one tensor.
fn repository(
    root: &Path,
) -> Result<(agigit::Repository, [agigit::hash::ObjectId; 2]), Box<dyn std::error::Error>> {
    let repo = agigit::Repository::init(root)?;
    std::fs::write(
        root.join("README.md"),
        "# Tiny model\n\nA *test* model. <script>alert('readme')</script>\n",
    )?;
    write_model(root, 2.0)?;
    let first = repo.commit("first: three tensors", AUTHOR)?;
    write_model(root, 3.0)?;
    let second = repo.commit("tune b <b>bold</b>", AUTHOR)?;
    Ok((repo, [first, second]))
}

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    get_host(router, uri, "localhost:8717").await
}

async fn get_host(
    router: &axum::Router,
    uri: &str,
    host: &str,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = router
        .clone()
        .oneshot(
            Request::get(uri)
                .header("host", host)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_the_repository() -> TestResult {
    let dir = Dir::new("pages");
    let (_repo, [first, second]) = repository(&dir.0.join("tiny"))?;
    let explorer = agigit_web::Explorer::new("test");
    assert_eq!(explorer.add_repository(dir.0.join("tiny"))?, "tiny");
    let router = explorer.local_only().router();

    // The list, and a search that finds it and one that does not.
    let (status, headers, body) = get(&router, "/").await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str()?;
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let list = text(&body);
    assert!(list.contains(r#"href="/r/tiny""#), "{list}");
    assert!(list.contains("1 of 1 repositories"), "{list}");
    assert!(text(&get(&router, "/?q=TINY").await.2).contains(r#"href="/r/tiny""#));
    assert!(text(&get(&router, "/?q=nothing-like-it").await.2).contains("No repository matches"));

    // The repository: README rendered with its script shown as text, parts, branches.
    let (status, _, body) = get(&router, "/r/tiny").await;
    assert_eq!(status, StatusCode::OK);
    let page = text(&body);
    assert!(page.contains("<h1>Tiny model</h1>"), "{page}");
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("&lt;script&gt;alert"), "{page}");
    assert!(
        page.contains("params") && page.contains("data/validation"),
        "{page}"
    );
    assert!(page.contains(&format!("/r/tiny/commit/{second}")), "{page}");

    // History: both commits, newest first; the code part changed only in the first.
    let history = text(&get(&router, "/r/tiny/history").await.2);
    let (a, b) = (
        history.find(&second.to_string()[..10]),
        history.find(&first.to_string()[..10]),
    );
    assert!(a.is_some() && b.is_some() && a < b, "{history}");
    assert!(
        history.contains("tune b &lt;b&gt;bold&lt;/b&gt;"),
        "{history}"
    );
    let code = text(&get(&router, "/r/tiny/history?part=code").await.2);
    assert!(
        code.contains(&first.to_string()[..10]) && !code.contains(&second.to_string()[..10]),
        "{code}"
    );
    assert_eq!(
        get(&router, "/r/tiny/history?part=weights").await.0,
        StatusCode::BAD_REQUEST
    );

    // The second commit: b.weight changed (2 → 3 everywhere: ‖Δ‖/‖W‖ = 0.5), a and c did not.
    let (status, _, body) = get(&router, &format!("/r/tiny/commit/{second}")).await;
    assert_eq!(status, StatusCode::OK);
    let commit = text(&body);
    assert!(commit.contains(r#"data-tensor="b.weight""#), "{commit}");
    assert!(!commit.contains(r#"data-tensor="a.weight""#), "{commit}");
    assert!(commit.contains("0.5000"), "{commit}");
    assert!(commit.contains("100.0%"), "{commit}");
    assert!(commit.contains("F32[16×16]"), "{commit}");
    assert!(commit.contains("Relative change"), "{commit}");

    // A repository without a commit is shown, not refused.
    agigit::Repository::init(dir.0.join("fresh"))?;
    let fresh = agigit_web::Explorer::new("test");
    fresh.add_repository(dir.0.join("fresh"))?;
    let (status, _, body) = get(&fresh.router(), "/r/fresh").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text(&body).contains("No commits yet"));
    assert!(text(&get(&fresh.router(), "/").await.2).contains("no commits"));

    // Files, and a download by plain GET: the bytes of the file as committed.
    let files = text(&get(&router, "/r/tiny/files").await.2);
    assert!(
        files.contains("model.safetensors") && files.contains("README.md"),
        "{files}"
    );
    let (status, headers, body) = get(
        &router,
        &format!("/r/tiny/download?rev={second}&path=model.safetensors"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, std::fs::read(dir.0.join("tiny/model.safetensors"))?);
    assert!(
        headers["content-disposition"]
            .to_str()?
            .contains("model.safetensors")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused() -> TestResult {
    let dir = Dir::new("hostile");
    let (_repo, [first, _]) = repository(&dir.0.join("tiny"))?;
    std::fs::write(dir.0.join("secret.txt"), "not in the repository")?;
    let explorer = agigit_web::Explorer::new("test");
    explorer.add_repository(dir.0.join("tiny"))?;
    let router = explorer.clone().local_only().router();

    // DNS rebinding: a page elsewhere reaching the loopback server by another name.
    assert_eq!(
        get_host(&router, "/", "evil.example:8717").await.0,
        StatusCode::MISDIRECTED_REQUEST
    );
    assert_eq!(
        get_host(&router, "/", "localhost.evil.example").await.0,
        StatusCode::MISDIRECTED_REQUEST
    );
    // Without local_only (a relay's public explorer) any host is served.
    assert_eq!(
        get_host(&explorer.router(), "/", "relay.example").await.0,
        StatusCode::OK
    );

    // A path is looked up among the commit's files, never on disk.
    for path in [
        "../secret.txt",
        "/etc/passwd",
        "..%2Fsecret.txt",
        ".agigit/config.toml",
    ] {
        let (status, _, body) = get(
            &router,
            &format!("/r/tiny/download?rev={first}&path={path}"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(!text(&body).contains("not in the repository"));
    }
    assert_eq!(get(&router, "/r/nope").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&router, "/r/tiny/commit/zz%3Cscript%3E").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&router, &format!("/r/tiny/commit/{}", "0".repeat(64)))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&router, "/r/tiny/history?branch=no-such").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&router, "/no/such/page").await.0, StatusCode::NOT_FOUND);
    Ok(())
}

/// A private repository's page says how many readers it has, never who they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_repository_shows_its_readers_count_only() -> TestResult {
    let dir = Dir::new("private");
    let (repo, _) = repository(&dir.0.join("closed"))?;
    let owner = agigit::crypt::ReaderSecret::generate()?;
    let readers = [
        agigit::crypt::ReaderSecret::generate()?.public_key(),
        agigit::crypt::ReaderSecret::generate()?.public_key(),
    ];
    repo.make_private(&owner, &readers)?;
    let explorer = agigit_web::Explorer::new("test");
    explorer.add_repository(dir.0.join("closed"))?;
    let router = explorer.router();
    let (status, _, body) = get(&router, "/r/closed").await;
    assert_eq!(status, StatusCode::OK);
    let page = text(&body);
    assert!(page.contains("encrypted for 3 readers"), "{page}");
    for key in readers.iter().chain([&owner.public_key()]) {
        let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!page.contains(&hex), "a reader's key is on the page");
    }
    let (_, _, list) = get(&router, "/").await;
    assert!(text(&list).contains("private"));
    Ok(())
}

/// A host whose market holds one open order and one round (its metric a hostile string).
struct Marketplace;

impl agigit_web::Remotes for Marketplace {
    fn audit(&self, _: &Path) -> Result<agigit::AuditReport, String> {
        Err("no network here".into())
    }
    fn market(&self, _: &Path) -> Option<Result<agigit_web::market::Market, String>> {
        use agigit_web::market::{Entry, Market, OrderRow, RoundRow};
        Some(Ok(Market {
            orders: vec![
                OrderRow {
                    id: "ab".repeat(32),
                    kind: "pull".into(),
                    buyer: "cd".repeat(32),
                    amount: 320,
                    state: "taken, waiting for the buyer to fund it".into(),
                    open: true,
                    ..OrderRow::default()
                },
                OrderRow {
                    id: "ef".repeat(32),
                    open: false,
                    ..OrderRow::default()
                },
            ],
            rounds: Some(vec![RoundRow {
                id: "12".repeat(32),
                phase: "evaluation".into(),
                metric: "<script>alert(1)</script>".into(),
                foundation: "0".repeat(64),
                foundation_value: Some(8.0),
                leaderboard: vec![
                    Entry {
                        commit: "a".repeat(64),
                        value: Some(2.5),
                        ..Entry::default()
                    },
                    Entry {
                        commit: "b".repeat(64),
                        value: None,
                        ..Entry::default()
                    },
                ],
                ..RoundRow::default()
            }]),
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_market_page_shows_open_orders_and_leaderboards() -> TestResult {
    let dir = Dir::new("market");
    repository(&dir.0.join("tiny"))?;
    let explorer = agigit_web::Explorer::new("test");
    explorer.add_repository(dir.0.join("tiny"))?;
    let (status, _, body) = get(
        &explorer
            .clone()
            .with_remotes(std::sync::Arc::new(Marketplace))
            .router(),
        "/r/tiny/market",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page = text(&body);
    assert!(
        page.contains(&format!(r#"data-order="{}""#, "ab".repeat(32))),
        "{page}"
    );
    assert!(
        !page.contains(&format!(r#"data-order="{}""#, "ef".repeat(32))),
        "{page}"
    );
    assert!(page.contains("1 closed order not shown"), "{page}");
    assert!(page.contains("320 sats"), "{page}");
    // The round's own words are text, never markup.
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("&lt;script&gt;"), "{page}");
    // Evaluated first, its difference from the foundation shown; the other waits.
    let (a, b) = (
        page.find(&"a".repeat(64)).ok_or("a")?,
        page.find(&"b".repeat(64)).ok_or("b")?,
    );
    assert!(a < b);
    assert!(
        page.contains("-5.5000") && page.contains("not evaluated"),
        "{page}"
    );
    // An explorer without a market says so.
    let (_, _, plain) = get(&explorer.router(), "/r/tiny/market").await;
    assert!(text(&plain).contains("does not read the market"));
    Ok(())
}

/// A host that "fetches" by handing over a repository already on disk, counting its calls.
struct Fetching {
    dir: PathBuf,
    calls: std::sync::atomic::AtomicUsize,
}

impl agigit_web::Remotes for Fetching {
    fn audit(&self, _: &Path) -> Result<agigit::AuditReport, String> {
        Err("no network here".into())
    }
    fn fetches(&self) -> bool {
        true
    }
    fn fetch(&self, _: &agigit::event::RepoCoordinate) -> Result<PathBuf, String> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.dir.clone())
    }
}

async fn post_fetch(
    router: &axum::Router,
    coordinate: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap) {
    let mut request = Request::post("/fetch")
        .header("host", "localhost:8717")
        .header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let body = format!("coordinate={}", coordinate.replace(':', "%3A"));
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    (response.status(), response.headers().clone())
}

/// Fetching from the relays writes to the user's disk: another site's page (a cross-site form
/// post reaches `localhost` too) is refused before the host is asked anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_comes_only_from_the_explorers_own_pages() -> TestResult {
    let dir = Dir::new("fetch");
    repository(&dir.0.join("fetched"))?;
    let host = std::sync::Arc::new(Fetching {
        dir: dir.0.join("fetched"),
        calls: std::sync::atomic::AtomicUsize::new(0),
    });
    let explorer = agigit_web::Explorer::new("test");
    let router = explorer
        .clone()
        .local_only()
        .with_remotes(host.clone())
        .router();
    let coordinate = format!("30717:{}:fetched", "ab".repeat(32));
    let calls = || host.calls.load(std::sync::atomic::Ordering::SeqCst);
    for attack in [
        &[("origin", "http://evil.example")][..],
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://localhost:8717"),
        ],
        &[],
    ] {
        let (status, _) = post_fetch(&router, &coordinate, attack).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{attack:?}");
    }
    assert_eq!(calls(), 0);
    let own = [("origin", "http://localhost:8717")];
    assert_eq!(
        post_fetch(&router, "not a coordinate", &own).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(calls(), 0);
    // From its own page: fetched, listed, and the browser sent to the repository's page.
    let (status, headers) = post_fetch(&router, &coordinate, &own).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(calls(), 1);
    let to = headers.get("location").unwrap().to_str()?.to_owned();
    assert_eq!(to, "/r/fetched");
    assert_eq!(explorer.repositories().len(), 1);
    assert_eq!(get(&router, &to).await.0, StatusCode::OK);
    // An explorer whose host does not fetch refuses, and offers no button.
    let plain = agigit_web::Explorer::new("test").router();
    assert_eq!(
        post_fetch(&plain, &coordinate, &own).await.0,
        StatusCode::FORBIDDEN
    );
    Ok(())
}

/// A repository whose one commit holds a file of several frames (a chunked plain file in the
/// training data); its bytes and the commit.
fn data_repository(
    root: &Path,
) -> Result<(Vec<u8>, agigit::hash::ObjectId), Box<dyn std::error::Error>> {
    let repo = agigit::Repository::init(root)?;
    let data: Vec<u8> = (0..700_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::create_dir_all(root.join("data/train"))?;
    std::fs::write(root.join("data/train/rows.bin"), &data)?;
    Ok((data, repo.commit("data", AUTHOR)?))
}

/// Serves `explorer` (loopback only) on a free port; the server stops when the handle aborts.
async fn serve(
    explorer: agigit_web::Explorer,
) -> Result<(u16, tokio::task::JoinHandle<std::io::Result<()>>), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    Ok((
        port,
        tokio::spawn(axum::serve(listener, explorer.local_only().router()).into_future()),
    ))
}

/// What a WebSocket download sent: its messages in order (`"bytes"` for each binary frame,
/// else the JSON), and the bytes.
async fn ws_download(
    port: u16,
    query: &str,
) -> Result<(Vec<serde_json::Value>, Vec<u8>), Box<dyn std::error::Error>> {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("ws://localhost:{port}/r/tiny/download?{query}");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    let (mut messages, mut bytes) = (Vec::new(), Vec::new());
    while let Some(message) =
        tokio::time::timeout(std::time::Duration::from_secs(30), socket.next()).await?
    {
        match message? {
            Message::Binary(b) => {
                bytes.extend_from_slice(&b);
                messages.push(serde_json::json!("bytes"));
            }
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t)?;
                let done = v["type"] == "done";
                messages.push(v);
                if done {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok((messages, bytes))
}

fn kinds(messages: &[serde_json::Value]) -> Vec<&str> {
    messages.iter().filter_map(|m| m["type"].as_str()).collect()
}

/// The WebSocket download: a start message, the file's bytes, `verified` with its SHA-256
/// before the last frame, then `done` — over a real listener on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_streams_over_a_websocket_and_verifies_before_its_last_frame() -> TestResult {
    let dir = Dir::new("ws");
    let root = dir.0.join("tiny");
    let (data, commit) = data_repository(&root)?;
    let explorer = agigit_web::Explorer::new("test");
    explorer.add_repository(&root)?;
    let (port, server) = serve(explorer).await?;

    let (messages, got) =
        ws_download(port, &format!("rev={commit}&path=data/train/rows.bin")).await?;
    assert_eq!(kinds(&messages), ["start", "verified", "done"]);
    assert_eq!(messages[0]["size"], data.len());
    let verified = messages
        .iter()
        .position(|m| m["type"] == "verified")
        .ok_or("verified")?;
    assert!(messages[1..verified].iter().all(|m| *m == "bytes") && verified > 2);
    assert_eq!(
        &messages[verified + 1..],
        [
            serde_json::json!("bytes"),
            serde_json::json!({"type": "done"})
        ],
        "exactly the last frame follows the verification"
    );
    assert_eq!(messages[verified]["bytes"], data.len());
    assert_eq!(got, data);
    let mut hasher = agigit::hash::Hasher::new();
    hasher.update(&data);
    let expected: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(messages[verified]["sha256"], expected);
    server.abort();
    Ok(())
}

/// Clients that ask for a large file and never read it do not hold the transfer slots for
/// good: after the stall time each is dropped, and the next download goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_lose_their_transfer_slots() -> TestResult {
    use tokio::io::AsyncWriteExt as _;
    let dir = Dir::new("stall");
    // Named as `ws_download` asks.
    let root = dir.0.join("tiny");
    let repo = agigit::Repository::init(&root)?;
    // Larger than the queue, the socket buffers and the client's window together.
    let data: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::create_dir_all(root.join("data/train"))?;
    std::fs::write(root.join("data/train/big.bin"), &data)?;
    let commit = repo.commit("big", AUTHOR)?;
    let explorer =
        agigit_web::Explorer::new("test").transfer_stall(std::time::Duration::from_secs(1));
    explorer.add_repository(&root)?;
    let (port, server) = serve(explorer).await?;
    let request = format!(
        "GET /r/tiny/download?rev={commit}&path=data/train/big.bin HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"
    );
    // As many stalled clients as there are slots, and one more.
    let mut stalled = Vec::new();
    for _ in 0..5 {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.write_all(request.as_bytes()).await?;
        stalled.push(tcp);
    }
    let (messages, got) = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        ws_download(port, &format!("rev={commit}&path=data/train/big.bin")),
    )
    .await
    .map_err(|_| "the download waited for slots the stalled clients never gave back")??;
    assert_eq!(kinds(&messages), ["start", "verified", "done"]);
    assert!(got == data, "the bytes differ");
    drop(stalled);
    server.abort();
    Ok(())
}

/// One tensor of a safetensors file, downloaded alone: a safetensors file holding only that
/// tensor, byte-equal to it, checked before its last frame; a tensor that is not there is an
/// error, never a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tensor_downloads_as_a_safetensors_file_of_its_own() -> TestResult {
    let dir = Dir::new("tensor");
    let root = dir.0.join("tiny");
    let (_repo, [_, second]) = repository(&root)?;
    let explorer = agigit_web::Explorer::new("test");
    explorer.add_repository(&root)?;
    let plain = explorer.clone();
    let (port, server) = serve(explorer).await?;
    let (messages, got) = ws_download(
        port,
        &format!("rev={second}&path=model.safetensors&tensor=b.weight"),
    )
    .await?;
    assert_eq!(kinds(&messages), ["start", "verified", "done"]);
    assert_eq!(messages[0]["size"], got.len());
    let saved = dir.0.join("b.weight.safetensors");
    std::fs::write(&saved, &got)?;
    let file = agigit::delta::SafetensorsFile::open(&saved)?;
    assert_eq!(file.names().collect::<Vec<_>>(), ["b.weight"]);
    let original = agigit::delta::SafetensorsFile::open(root.join("model.safetensors"))?;
    let (a, b) = (
        file.tensor("b.weight").ok_or("b.weight")?,
        original.tensor("b.weight").ok_or("b.weight")?,
    );
    assert_eq!(
        (a.dtype(), a.shape(), a.data()),
        (b.dtype(), b.shape(), b.data())
    );
    // No such tensor: an error message, no bytes.
    let (messages, got) = ws_download(
        port,
        &format!("rev={second}&path=model.safetensors&tensor=no.such"),
    )
    .await?;
    assert_eq!(kinds(&messages), ["error"], "{messages:?}");
    assert!(got.is_empty());
    // A plain file has no tensors.
    let router = plain.local_only().router();
    let (status, _, _) = get(
        &router,
        &format!("/r/tiny/download?rev={second}&path=README.md&tensor=x"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.abort();
    Ok(())
}

/// Every file under `dir`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A store whose largest object was damaged on disk: the WebSocket download ends in `error`
/// without `verified` and without the whole file; the plain GET's body is cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_object_is_never_delivered_whole() -> TestResult {
    let dir = Dir::new("corrupt");
    let root = dir.0.join("tiny");
    let (data, commit) = data_repository(&root)?;
    let mut objects = Vec::new();
    walk(&root.join(".agigit/objects"), &mut objects);
    let largest = objects
        .iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .ok_or("no objects")?;
    let mut bytes = std::fs::read(largest)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(largest, &bytes)?;

    let explorer = agigit_web::Explorer::new("test");
    explorer.add_repository(&root)?;
    let router = explorer.clone().local_only().router();
    let (port, server) = serve(explorer).await?;
    let query = format!("rev={commit}&path=data/train/rows.bin");

    let (messages, received) = ws_download(port, &query).await?;
    let kinds = kinds(&messages);
    assert!(kinds.contains(&"error"), "{kinds:?}");
    assert!(
        !kinds.contains(&"verified") && !kinds.contains(&"done"),
        "{kinds:?}"
    );
    assert!(received.len() < data.len());

    let response = router
        .oneshot(
            Request::get(format!("/r/tiny/download?{query}"))
                .header("host", "localhost")
                .body(Body::empty())?,
        )
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    // Cut short (an error reading the body) is what a client sees as a failed download.
    if let Ok(body) = response.into_body().collect().await {
        assert!(
            body.to_bytes().len() < data.len(),
            "a corrupt file was served whole"
        );
    }
    server.abort();
    Ok(())
}
