//! A Blossom client: authorized uploads (BUD-02, BUD-11), downloads verified against the blob's
//! SHA-256 while they stream, resumed by `Range` after a cut, retries with backoff, concurrency
//! limits per server and overall, and per-server health so fetches prefer fast servers.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agigit_event::{BlossomAuth, Signed, Verb};
use agigit_hash::{BlobHash, Hasher};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nostr::prelude::Timestamp;
use tokio::sync::Semaphore;

use crate::SharedSigner;
use crate::error::NetError;

/// Limits, retries and timeouts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobClientOptions {
    /// Requests in flight per server.
    pub per_server: usize,
    /// Requests in flight overall.
    pub total: usize,
    /// Attempts per request (transient failures only: timeouts, connection errors, 5xx, 429).
    pub attempts: u32,
    /// First wait between attempts (doubled each time).
    pub backoff: Duration,
    /// Waiting for response headers.
    pub response_timeout: Duration,
    /// Waiting for the next piece of a body.
    pub idle_timeout: Duration,
    /// How long a signed authorization is valid.
    pub token_ttl: Duration,
    /// The slowest a download may be, in bytes per second, once its length is known: a server
    /// that drips bytes is cut off after `response_timeout` plus the length at this rate.
    pub min_rate: u64,
    /// What `https://` servers must prove (Mozilla's roots and any extra CA).
    pub tls: crate::tls::TlsConfig,
}

impl Default for BlobClientOptions {
    fn default() -> Self {
        BlobClientOptions {
            per_server: 4,
            total: 32,
            attempts: 3,
            backoff: Duration::from_millis(200),
            response_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            token_ttl: Duration::from_secs(300),
            min_rate: 16 << 10,
            tls: crate::tls::TlsConfig::default(),
        }
    }
}

/// What a server said about a stored blob (BUD-02 blob descriptor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobDescriptor {
    /// Where to download it.
    pub url: String,
    /// Its hash.
    pub hash: BlobHash,
    /// Its size.
    pub size: u64,
    /// Whether the server stored it just now (201) rather than already having it (200).
    pub created: bool,
}

/// A server's record, as [`BlobClient::health`] reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    /// Requests that succeeded.
    pub successes: u64,
    /// Requests that failed (after their retries).
    pub failures: u64,
    /// Smoothed time to first byte, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Bytes moved.
    pub bytes: u64,
    /// The last error.
    pub last_error: Option<String>,
}

impl Health {
    /// Lower is better: latency, with failures weighing like slow answers. Unknown servers score
    /// as average so that they get tried.
    fn score(&self) -> f64 {
        let latency = self.latency_ms.unwrap_or(50.0);
        let total = (self.successes + self.failures).max(1) as f64;
        latency * (1.0 + 4.0 * self.failures as f64 / total)
    }
}

struct ServerState {
    slots: Semaphore,
    health: Mutex<Health>,
}

type Body = BoxBody<Bytes, std::convert::Infallible>;

/// Pays blob servers that answer a download `402 Payment Required` (BUD-07, NUT-24): given
/// the server and the payment request it sent in `X-Cashu` (NUT-18, `creqA…`), the proof to
/// retry with (a Cashu token, `cashuB…`), or why not (over budget, no wallet). Each request
/// is paid on its own, when asked: a server is trusted with one request's price at a time.
pub trait BlobPayer: Send + Sync + std::fmt::Debug {
    /// The `X-Cashu` value that pays `request` at `server`.
    fn pay<'a>(
        &'a self,
        server: &'a str,
        request: &'a str,
    ) -> crate::BoxFuture<'a, Result<String, String>>;
}

/// A Blossom client for any number of servers. Cheap to clone.
#[derive(Clone)]
pub struct BlobClient {
    http: Client<HttpsConnector<HttpConnector>, Body>,
    signer: Option<SharedSigner>,
    payer: Option<Arc<dyn BlobPayer>>,
    options: BlobClientOptions,
    total: Arc<Semaphore>,
    servers: Arc<Mutex<HashMap<String, Arc<ServerState>>>>,
}

impl std::fmt::Debug for BlobClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobClient")
            .field("options", &self.options)
            .field("health", &self.health())
            .finish()
    }
}

/// Checks a blob server URL: `https://host[:port]` (or `http://…` on this machine), no path. A
/// plain `http://` server off this machine is used with a warning.
///
/// # Errors
/// [`NetError::Url`] for another scheme or a path.
pub fn check_server_url(url: &str) -> Result<(), NetError> {
    let bad = |reason: &str| NetError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(bad(
            "a blob server URL starts with https:// (or http:// on this machine)",
        ));
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(bad("give the server's root: https://host[:port]"));
    }
    if crate::tls::plaintext_off_machine(url) {
        tracing::warn!(server = %url, "a blob server without TLS (http://) off this machine: use https://");
    }
    Ok(())
}

/// The name a token gives `server` in its BUD-11 `server` tag: `host:port` (lowercase), so that a
/// token for one server is not valid on another of the same host; the bare host when the URL
/// gives no port (a server on the scheme's default port accepts that).
fn host_of(server: &str) -> String {
    server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// A failure inside one attempt, before retries decide.
struct Attempt {
    error: NetError,
    /// Bytes of a download received before it failed (resume from there).
    received: Option<(Hasher, Vec<u8>)>,
}

impl From<NetError> for Attempt {
    fn from(error: NetError) -> Self {
        Attempt {
            error,
            received: None,
        }
    }
}

impl BlobClient {
    /// A client; `signer` signs upload and delete authorizations (downloads need none).
    pub fn new(signer: Option<SharedSigner>, options: BlobClientOptions) -> Self {
        let connector = crate::tls::https_connector(&options.tls, Duration::from_secs(10));
        let http = Client::builder(TokioExecutor::new()).build(connector);
        BlobClient {
            http,
            signer,
            payer: None,
            total: Arc::new(Semaphore::new(options.total.max(1))),
            options,
            servers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// This client, paying downloads that servers answer `402 Payment Required` with `payer`.
    #[must_use]
    pub fn with_payer(mut self, payer: Arc<dyn BlobPayer>) -> Self {
        self.payer = Some(payer);
        self
    }

    fn state(&self, server: &str) -> Arc<ServerState> {
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        servers
            .entry(server.to_owned())
            .or_insert_with(|| {
                Arc::new(ServerState {
                    slots: Semaphore::new(self.options.per_server.max(1)),
                    health: Mutex::new(Health::default()),
                })
            })
            .clone()
    }

    /// Every server's record so far.
    pub fn health(&self) -> Vec<(String, Health)> {
        let servers = self
            .servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<_> = servers
            .iter()
            .filter_map(|(k, v)| v.health.lock().ok().map(|h| (k.clone(), h.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// `servers` sorted best first by their record.
    pub fn rank(&self, servers: &[String]) -> Vec<String> {
        let mut scored: Vec<(f64, usize, String)> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let score = self.state(s).health.lock().map_or(f64::MAX, |h| h.score());
                (score, i, s.clone())
            })
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        scored.into_iter().map(|(_, _, s)| s).collect()
    }

    fn record(&self, server: &str, outcome: Result<(Duration, u64), &NetError>) {
        let state = self.state(server);
        let Ok(mut h) = state.health.lock() else {
            return;
        };
        match outcome {
            Ok((latency, bytes)) => {
                h.successes += 1;
                h.bytes += bytes;
                let ms = latency.as_secs_f64() * 1000.0;
                h.latency_ms = Some(h.latency_ms.map_or(ms, |old| 0.7 * old + 0.3 * ms));
            }
            Err(e) => {
                h.failures += 1;
                h.last_error = Some(e.to_string());
            }
        }
    }

    /// A BUD-11 token for `verb` on `hash` at `server`, signed off the async threads (a remote
    /// signer may block); [`Signed::sign`] verifies what the signer returns.
    async fn token(&self, verb: Verb, hash: &BlobHash, server: &str) -> Result<String, NetError> {
        let signer = Arc::clone(self.signer.as_ref().ok_or_else(|| {
            NetError::Sign(format!(
                "a {} needs a key to sign its authorization",
                verb.as_str()
            ))
        })?);
        let now = Timestamp::now();
        let ttl = self.options.token_ttl.as_secs().max(1);
        let auth = BlossomAuth::new(
            verb,
            Timestamp::from_secs(now.as_secs().saturating_add(ttl)),
        )
        .with_blob(*hash)
        .with_server(host_of(server))
        .with_description(format!("agigit {}", verb.as_str()));
        // Dated a second back, so a server whose clock is slightly behind accepts it.
        let created = Timestamp::from_secs(now.as_secs().saturating_sub(1));
        tokio::task::spawn_blocking(move || Signed::sign(auth, signer.as_ref(), created))
            .await
            .map_err(|e| NetError::Sign(format!("the signer panicked: {e}")))?
            .map(|s| s.to_authorization_header())
            .map_err(|e| NetError::Sign(e.to_string()))
    }

    fn uri(server: &str, path: &str) -> Result<Uri, NetError> {
        check_server_url(server)?;
        format!("{}{path}", server.trim_end_matches('/'))
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| NetError::Url {
                url: server.to_owned(),
                reason: e.to_string(),
            })
    }

    async fn send(
        &self,
        server: &str,
        req: Request<Body>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, NetError> {
        match tokio::time::timeout(self.options.response_timeout, self.http.request(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(match crate::tls::explain(&e) {
                Some(why) => NetError::Tls {
                    reason: format!("{server}: {why}"),
                },
                None => NetError::Connection {
                    server: server.to_owned(),
                    reason: e.to_string(),
                },
            }),
            Err(_) => Err(NetError::Timeout {
                what: format!("{server}: waiting for a response"),
                secs: self.options.response_timeout.as_secs(),
            }),
        }
    }

    /// Runs `attempt` with the server's and the overall limits, retrying transient failures with
    /// backoff, and records the outcome.
    async fn with_retries<T, F, Fut>(&self, server: &str, mut attempt: F) -> Result<T, NetError>
    where
        F: FnMut(Option<(Hasher, Vec<u8>)>) -> Fut,
        Fut: Future<Output = Result<(T, u64), Attempt>>,
    {
        let state = self.state(server);
        let mut backoff = self.options.backoff;
        let mut carried = None;
        let mut tries = 0;
        loop {
            tries += 1;
            let started = Instant::now();
            let result = {
                let _all = self.total.acquire().await;
                let _one = state.slots.acquire().await;
                attempt(carried.take()).await
            };
            match result {
                Ok((value, bytes)) => {
                    self.record(server, Ok((started.elapsed(), bytes)));
                    return Ok(value);
                }
                Err(Attempt { error, received }) => {
                    if !error.is_transient() || tries >= self.options.attempts {
                        self.record(server, Err(&error));
                        return Err(error);
                    }
                    tracing::debug!(%server, %error, tries, "retrying");
                    carried = received;
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
    }

    /// Uploads `data` to `server` with a signed `upload` authorization.
    ///
    /// # Errors
    /// [`NetError::Http`] when the server refuses (its `X-Reason` included), connection errors
    /// after retries, [`NetError::Sign`] without a key.
    pub async fn upload(&self, server: &str, data: Bytes) -> Result<BlobDescriptor, NetError> {
        let hash = BlobHash::digest(&data);
        self.upload_hashed(server, hash, data).await
    }

    /// [`upload`](Self::upload) of `data` whose hash the caller computed already: it is not
    /// hashed again here. The server stores the blob under the hash of what arrives and refuses
    /// an upload whose bytes are not the `hash` it was authorized for, so a wrong `hash` is an
    /// error, never a blob under the wrong name.
    ///
    /// # Errors
    /// As [`upload`](Self::upload).
    pub async fn upload_hashed(
        &self,
        server: &str,
        hash: BlobHash,
        data: Bytes,
    ) -> Result<BlobDescriptor, NetError> {
        let uri = Self::uri(server, "/upload")?;
        let size = data.len() as u64;
        self.with_retries(server, |_| {
            let (uri, data) = (uri.clone(), data.clone());
            async move {
                let token = self.token(Verb::Upload, &hash, server).await?;
                let req = Request::builder()
                    .method(Method::PUT)
                    .uri(uri)
                    .header(header::AUTHORIZATION, token)
                    .header("x-sha-256", hash.to_string())
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_LENGTH, size)
                    .body(Full::new(data).boxed())
                    .map_err(|e| NetError::Url {
                        url: server.to_owned(),
                        reason: e.to_string(),
                    })?;
                let resp = self.send(server, req).await?;
                let status = resp.status();
                if !status.is_success() {
                    return Err(http_error(server, &resp).into());
                }
                let body = read_small(server, resp, &self.options).await?;
                let desc: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| NetError::Connection {
                        server: server.to_owned(),
                        reason: format!("the blob descriptor is not JSON: {e}"),
                    })?;
                if desc["sha256"].as_str() != Some(hash.to_string().as_str()) {
                    return Err(NetError::Connection {
                        server: server.to_owned(),
                        reason: format!("the server describes another blob than {hash}"),
                    }
                    .into());
                }
                let url = desc["url"].as_str().unwrap_or_default().to_owned();
                Ok((
                    BlobDescriptor {
                        url,
                        hash,
                        size,
                        created: status == StatusCode::CREATED,
                    },
                    size,
                ))
            }
        })
        .await
    }

    /// Whether `server` has blob `hash` (BUD-01 `HEAD`).
    ///
    /// # Errors
    /// Connection errors after retries, or an unexpected status.
    pub async fn exists(&self, server: &str, hash: &BlobHash) -> Result<bool, NetError> {
        let uri = Self::uri(server, &format!("/{hash}"))?;
        self.with_retries(server, |_| {
            let uri = uri.clone();
            async move {
                let req = request(Method::HEAD, uri, server)?;
                let resp = self.send(server, req).await?;
                match resp.status() {
                    StatusCode::OK => Ok((true, 0)),
                    StatusCode::NOT_FOUND => Ok((false, 0)),
                    _ => Err(http_error(server, &resp).into()),
                }
            }
        })
        .await
    }

    /// The blobs this client's key owns on `server` (BUD-12 `GET /list/<pubkey>`), at most
    /// [`MAX_LIST_BYTES`](crate::MAX_LIST_BYTES) of listing; entries that do not parse make
    /// the whole listing [`NetError::Malformed`].
    ///
    /// # Errors
    /// [`NetError::Sign`] without a key; [`NetError::Http`] when refused; connection errors
    /// after retries; [`NetError::TooLarge`], [`NetError::Malformed`].
    pub async fn list(&self, server: &str) -> Result<Vec<crate::ListedBlob>, NetError> {
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| NetError::Sign("listing a key's blobs needs the key".to_owned()))?;
        let owner = signer.public_key().to_hex();
        let uri = Self::uri(server, &format!("/list/{owner}"))?;
        self.with_retries(server, |_| {
            let uri = uri.clone();
            async move {
                let req = request(Method::GET, uri, server)?;
                let resp = self.send(server, req).await?;
                if !resp.status().is_success() {
                    return Err(http_error(server, &resp).into());
                }
                let limited = http_body_util::Limited::new(resp.into_body(), crate::MAX_LIST_BYTES);
                let body =
                    match tokio::time::timeout(self.options.response_timeout, limited.collect())
                        .await
                    {
                        Ok(Ok(c)) => c.to_bytes(),
                        Ok(Err(e))
                            if e.downcast_ref::<http_body_util::LengthLimitError>()
                                .is_some() =>
                        {
                            return Err(NetError::TooLarge {
                                server: server.to_owned(),
                                what: "a blob listing".to_owned(),
                                limit: crate::MAX_LIST_BYTES as u64,
                                unit: "bytes",
                            }
                            .into());
                        }
                        Ok(Err(e)) => {
                            return Err(NetError::Connection {
                                server: server.to_owned(),
                                reason: format!("reading the listing: {e}"),
                            }
                            .into());
                        }
                        Err(_) => {
                            return Err(NetError::Timeout {
                                what: format!("{server}: reading the listing"),
                                secs: self.options.response_timeout.as_secs(),
                            }
                            .into());
                        }
                    };
                let n = body.len() as u64;
                Ok((parse_listing(server, &body)?, n))
            }
        })
        .await
    }

    /// Deletes this key's claim on blob `hash` at `server` (BUD-12).
    ///
    /// # Errors
    /// [`NetError::Http`] when refused; connection errors after retries.
    pub async fn delete(&self, server: &str, hash: &BlobHash) -> Result<(), NetError> {
        let uri = Self::uri(server, &format!("/{hash}"))?;
        self.with_retries(server, |_| {
            let uri = uri.clone();
            async move {
                let mut req = request(Method::DELETE, uri, server)?;
                let token = self.token(Verb::Delete, hash, server).await?;
                let value =
                    HeaderValue::from_str(&token).map_err(|e| NetError::Sign(e.to_string()))?;
                req.headers_mut().insert(header::AUTHORIZATION, value);
                let resp = self.send(server, req).await?;
                if resp.status().is_success() {
                    Ok(((), 0))
                } else {
                    Err(http_error(server, &resp).into())
                }
            }
        })
        .await
    }

    /// Downloads blob `hash` from `server` into memory, verified, taking at most `max_len` bytes
    /// (what the caller knows the blob's length to be, or a cap when it does not): a server that
    /// says or sends more is cut off there. A transfer cut short is resumed with `Range` from the
    /// bytes already received.
    ///
    /// # Errors
    /// [`NetError::NotFound`], [`NetError::Corrupt`] (bytes that do not match: discarded),
    /// [`NetError::TooLarge`] past `max_len`, connection errors after retries.
    pub async fn download(
        &self,
        server: &str,
        hash: &BlobHash,
        max_len: u64,
    ) -> Result<Bytes, NetError> {
        let uri = Self::uri(server, &format!("/{hash}"))?;
        self.with_retries(server, |carried| {
            let uri = uri.clone();
            async move {
                let (hasher, buffer) = carried.unwrap_or_default();
                let (hasher, buffer) = self
                    .fetch_into(
                        server,
                        uri,
                        (hash, max_len),
                        hasher,
                        buffer,
                        |buf: &mut Vec<u8>, chunk: &[u8]| {
                            buf.extend_from_slice(chunk);
                            Ok(())
                        },
                    )
                    .await?;
                let n = buffer.len() as u64;
                verify(server, hash, hasher)?;
                Ok((Bytes::from(buffer), n))
            }
        })
        .await
    }

    /// Downloads blob `hash` (at most `max_len` bytes) from `server` into the file `path`,
    /// verified, through `path` + `.part`: a part left by an earlier attempt (or run) is hashed
    /// and continued with `Range`. The file appears only when complete and verified.
    ///
    /// # Errors
    /// As [`download`](Self::download), plus [`NetError::Io`].
    pub async fn download_to(
        &self,
        server: &str,
        hash: &BlobHash,
        max_len: u64,
        path: &Path,
    ) -> Result<u64, NetError> {
        let uri = Self::uri(server, &format!("/{hash}"))?;
        let part = part_path(path);
        let io = |source| NetError::Io {
            path: part.clone(),
            source,
        };
        self.with_retries(server, |_| {
            let (uri, part) = (uri.clone(), part.clone());
            async move {
                // What is already on disk counts as received.
                let mut hasher = Hasher::new();
                let mut file = match std::fs::File::open(&part) {
                    Ok(f) => {
                        let mut reader = agigit_hash::HashingReader::new(f);
                        std::io::copy(&mut reader, &mut std::io::sink()).map_err(io)?;
                        hasher = reader.into_parts().1;
                        std::fs::OpenOptions::new()
                            .append(true)
                            .open(&part)
                            .map_err(io)?
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        std::fs::File::create(&part).map_err(io)?
                    }
                    Err(e) => return Err(io(e).into()),
                };
                let (hasher, ()) = self
                    .fetch_into(
                        server,
                        uri,
                        (hash, max_len),
                        hasher,
                        (),
                        |(): &mut (), chunk: &[u8]| file.write_all(chunk).map_err(io),
                    )
                    .await?;
                let n = hasher.len();
                if let Err(e) = verify(server, hash, hasher) {
                    let _ = std::fs::remove_file(&part);
                    return Err(e.into());
                }
                file.sync_all().map_err(io)?;
                std::fs::rename(&part, path).map_err(|source| NetError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                Ok((n, n))
            }
        })
        .await
    }

    /// GETs the blob from where `hasher` left off, feeding each chunk to `sink`, never past
    /// `max_len` bytes in all and never slower, overall, than `min_rate`.
    async fn fetch_into<S>(
        &self,
        server: &str,
        uri: Uri,
        (hash, max_len): (&BlobHash, u64),
        mut hasher: Hasher,
        mut state: S,
        mut sink: impl FnMut(&mut S, &[u8]) -> Result<(), NetError>,
    ) -> Result<(Hasher, S), Attempt>
    where
        S: Default + HasBuffer,
    {
        let too_large = || NetError::blob_too_large(server, hash, max_len);
        let offset = hasher.len();
        if offset > max_len {
            return Err(too_large().into());
        }
        let get = |paid: Option<HeaderValue>| -> Result<Request<Body>, NetError> {
            let mut req = request(Method::GET, uri.clone(), server)?;
            if offset > 0 {
                let range = HeaderValue::from_str(&format!("bytes={offset}-"))
                    .map_err(|e| NetError::Sign(e.to_string()))?;
                req.headers_mut().insert(header::RANGE, range);
            }
            if let Some(proof) = paid {
                req.headers_mut().insert("x-cashu", proof);
            }
            Ok(req)
        };
        let mut resp = self
            .send(server, get(None)?)
            .await
            .map_err(|error| Attempt {
                error,
                received: state.carry(&hasher),
            })?;
        // BUD-07: a price, paid (when this client has a payer) and the request sent again once.
        let asked = resp
            .headers()
            .get("x-cashu")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let (StatusCode::PAYMENT_REQUIRED, Some(payer), Some(asked)) =
            (resp.status(), &self.payer, asked)
        {
            let refused = |reason: String| NetError::Http {
                server: server.to_owned(),
                status: 402,
                reason,
            };
            let proof = payer
                .pay(server, &asked)
                .await
                .map_err(|why| refused(format!("payment required, not paid: {why}")))?;
            let proof = HeaderValue::from_str(&proof)
                .map_err(|_| refused("the payment is no header value".to_owned()))?;
            resp = self
                .send(server, get(Some(proof))?)
                .await
                .map_err(|error| Attempt {
                    error,
                    received: state.carry(&hasher),
                })?;
        }
        match resp.status() {
            StatusCode::OK if offset > 0 => {
                // The server ignored Range: start over.
                hasher = Hasher::new();
                state = S::default();
            }
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
            StatusCode::NOT_FOUND => {
                return Err(NetError::NotFound {
                    server: server.to_owned(),
                    hash: *hash,
                }
                .into());
            }
            _ => return Err(http_error(server, &resp).into()),
        }
        // A declared length past what is expected is refused before a byte is read.
        let declared = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n.saturating_add(hasher.len()) > max_len => return Err(too_large().into()),
            // Within the caller's bound: room for it at once.
            Some(n) => state.expect(n),
            None => {}
        }
        // However the bytes trickle in, the whole transfer has a deadline.
        let rate = self.options.min_rate.max(1);
        let budget = self.options.response_timeout
            + Duration::from_secs((max_len - hasher.len()).div_ceil(rate));
        let deadline = tokio::time::Instant::now() + budget;
        let mut body = resp.into_body();
        loop {
            let wait = self
                .options
                .idle_timeout
                .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            let frame = match tokio::time::timeout(wait, body.frame()).await {
                Ok(Some(Ok(f))) => f,
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Attempt {
                        error: NetError::Connection {
                            server: server.to_owned(),
                            reason: format!("the download was cut short: {e}"),
                        },
                        received: state.carry(&hasher),
                    });
                }
                Err(_) => {
                    return Err(Attempt {
                        error: NetError::Timeout {
                            what: format!("{server}: the download stalled or crawled"),
                            secs: self.options.idle_timeout.as_secs(),
                        },
                        received: state.carry(&hasher),
                    });
                }
            };
            if let Ok(chunk) = frame.into_data() {
                if hasher.len().saturating_add(chunk.len() as u64) > max_len {
                    // An endless or oversized body: nothing of it is kept.
                    return Err(too_large().into());
                }
                hasher.update(&chunk);
                sink(&mut state, &chunk)?;
            }
        }
        Ok((hasher, state))
    }

    /// Downloads blob `hash` (at most `max_len` bytes) from the best of `servers` that has it,
    /// trying the next on any failure (a corrupt or oversized copy included). Returns the bytes
    /// and the server that gave them.
    ///
    /// # Errors
    /// [`NetError::Unavailable`] with every server's reason.
    pub async fn fetch_any(
        &self,
        servers: &[String],
        hash: &BlobHash,
        max_len: u64,
    ) -> Result<(Bytes, String), NetError> {
        let mut errors = Vec::new();
        for server in self.rank(servers) {
            match self.download(&server, hash, max_len).await {
                Ok(bytes) => return Ok((bytes, server)),
                Err(e) => {
                    if matches!(e, NetError::Corrupt { .. }) {
                        tracing::warn!(%server, error = %e, "discarding a corrupt blob");
                    }
                    errors.push(e.to_string());
                }
            }
        }
        Err(NetError::Unavailable {
            hash: *hash,
            errors,
        })
    }
}

/// Download state that can be carried into a resumed attempt.
trait HasBuffer {
    fn carry(&mut self, hasher: &Hasher) -> Option<(Hasher, Vec<u8>)>;

    /// `more` bytes are coming (a declared length already checked against the caller's
    /// bound): room for them, so that the buffer is not grown and copied again and again.
    fn expect(&mut self, more: u64) {
        let _ = more;
    }
}

impl HasBuffer for Vec<u8> {
    fn carry(&mut self, hasher: &Hasher) -> Option<(Hasher, Vec<u8>)> {
        Some((hasher.clone(), std::mem::take(self)))
    }

    fn expect(&mut self, more: u64) {
        self.reserve_exact(usize::try_from(more).unwrap_or(0));
    }
}

impl HasBuffer for () {
    // A file download resumes from the part file itself.
    fn carry(&mut self, _: &Hasher) -> Option<(Hasher, Vec<u8>)> {
        None
    }
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

fn verify(server: &str, expected: &BlobHash, hasher: Hasher) -> Result<(), NetError> {
    let actual = BlobHash::from_hasher(hasher);
    if actual == *expected {
        Ok(())
    } else {
        Err(NetError::Corrupt {
            server: server.to_owned(),
            expected: *expected,
            actual,
        })
    }
}

fn request(method: Method, uri: Uri, server: &str) -> Result<Request<Body>, NetError> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Empty::new().boxed())
        .map_err(|e| NetError::Url {
            url: server.to_owned(),
            reason: e.to_string(),
        })
}

fn http_error<B>(server: &str, resp: &hyper::Response<B>) -> NetError {
    let reason = resp
        .headers()
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .map_or_else(
            || {
                resp.status()
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_owned()
            },
            str::to_owned,
        );
    NetError::Http {
        server: server.to_owned(),
        status: resp.status().as_u16(),
        reason,
    }
}

/// A BUD-12 listing as `server` sent it: a JSON array of blob descriptors (`sha256`, `size`,
/// `uploaded`; other fields ignored).
///
/// # Errors
/// [`NetError::Malformed`] for anything else, naming what is wrong.
pub fn parse_listing(server: &str, body: &[u8]) -> Result<Vec<crate::ListedBlob>, NetError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        sha256: String,
        size: u64,
        #[serde(default)]
        uploaded: u64,
    }
    let malformed = |reason: String| NetError::Malformed {
        server: server.to_owned(),
        what: "blob listing",
        reason,
    };
    let entries: Vec<Entry> = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    entries
        .into_iter()
        .map(|e| {
            Ok(crate::ListedBlob {
                hash: e
                    .sha256
                    .parse()
                    .map_err(|_| malformed(format!("{:?} is not a SHA-256", e.sha256)))?,
                size: e.size,
                uploaded: e.uploaded,
            })
        })
        .collect()
}

/// A BUD-12 listing of `blobs` (what [`parse_listing`] reads).
pub fn listing_json(blobs: &[crate::ListedBlob]) -> String {
    serde_json::Value::Array(
        blobs
            .iter()
            .map(|b| serde_json::json!({"sha256": b.hash.to_string(), "size": b.size, "uploaded": b.uploaded}))
            .collect(),
    )
    .to_string()
}

/// Reads a small response body (a descriptor), bounded in size and time.
async fn read_small(
    server: &str,
    resp: hyper::Response<hyper::body::Incoming>,
    options: &BlobClientOptions,
) -> Result<Bytes, NetError> {
    const MAX: usize = 64 << 10;
    let limited = http_body_util::Limited::new(resp.into_body(), MAX);
    match tokio::time::timeout(options.idle_timeout, limited.collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) => Err(NetError::Connection {
            server: server.to_owned(),
            reason: format!("reading the response: {e}"),
        }),
        Err(_) => Err(NetError::Timeout {
            what: format!("{server}: reading the response"),
            secs: options.idle_timeout.as_secs(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ListedBlob;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_listing_reads_back_what_was_written(
            blobs in proptest::collection::vec((any::<[u8; 32]>(), any::<u64>(), any::<u64>()), 0..20)
        ) {
            let blobs: Vec<ListedBlob> = blobs
                .into_iter()
                .map(|(h, size, uploaded)| ListedBlob { hash: BlobHash::from_bytes(h), size, uploaded })
                .collect();
            let text = listing_json(&blobs);
            prop_assert_eq!(parse_listing("s", text.as_bytes()).unwrap(), blobs);
        }
    }

    #[test]
    fn a_bad_listing_is_malformed_and_says_why() {
        let good = format!(
            r#"[{{"sha256":"{}","size":3,"uploaded":9,"type":"x"}}]"#,
            "ab".repeat(32)
        );
        assert_eq!(parse_listing("s", good.as_bytes()).unwrap().len(), 1);
        for (bad, why) in [
            (b"not json".as_slice(), "expected"),
            (br#"{"sha256":"00"}"#.as_slice(), "invalid type"),
            (
                br#"[{"sha256":"zz","size":1}]"#.as_slice(),
                "is not a SHA-256",
            ),
            (br#"[{"size":1}]"#.as_slice(), "missing field"),
            (
                br#"[{"sha256":"00","size":-1}]"#.as_slice(),
                "invalid value",
            ),
        ] {
            match parse_listing("s", bad) {
                Err(NetError::Malformed { reason, .. }) => {
                    assert!(reason.contains(why), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
