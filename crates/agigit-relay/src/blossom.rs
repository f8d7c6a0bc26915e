//! Blossom on the relay's port: BUD-01 (`GET`/`HEAD /<sha256>`, with Range), BUD-02
//! (`PUT /upload`), BUD-06 (`HEAD /upload`), BUD-11 authorization (kind 24242) and BUD-12 (`GET
//! /list/<pubkey>`, `DELETE /<sha256>`).
//!
//! Uploads stream to a temporary file while they are hashed; the blob becomes visible only after
//! its hash, the declared `X-SHA-256`, the token's `x` tag and the uploader's quota all check out.

#![allow(
    clippy::result_large_err,
    reason = "helpers return the refusal a handler sends; that path is cold"
)]

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use agigit_event::{AuthError, AuthRequest, BlossomAuth, Signed, Verb};
use agigit_hash::BlobHash;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use futures_util::StreamExt;
use nostr::prelude::{PublicKey, Timestamp};
use serde::Deserialize;

use crate::blobs::{BlobInfo, BlobStore, BlobStoreError, BlobUpload, DeleteOutcome};
use crate::config::BlossomConfig;
use crate::payment::{PaidAction, PaidRequest, PaymentGate, payment_required};
use crate::range::ByteRange;
use crate::server::ConnectionLimits;

/// The Blossom side of a relay: a blob store, its settings, and what uploads in progress hold.
#[derive(Clone)]
pub(crate) struct Blossom {
    pub(crate) store: Arc<dyn BlobStore>,
    pub(crate) config: BlossomConfig,
    /// The public URL's host and HTTP base, when configured.
    pub(crate) public: Option<(String, String)>,
    pub(crate) connections: ConnectionLimits,
    /// Whether the relay serves TLS itself (blob URLs are then `https://`).
    pub(crate) secure: bool,
    /// Asked before a blob is stored or served (BUD-07), when set.
    pub(crate) payment: Option<Arc<dyn PaymentGate>>,
    uploads: Arc<Uploads>,
}

/// What uploads in progress hold: a slot each, their declared bytes in the temporary directory,
/// and the quota they have reserved per uploader.
struct Uploads {
    slots: tokio::sync::Semaphore,
    temp_bytes: std::sync::Mutex<u64>,
    reserved: std::sync::Mutex<std::collections::HashMap<PublicKey, u64>>,
}

/// What one upload holds, given back when it ends (whatever way).
struct Held {
    uploads: Arc<Uploads>,
    owner: PublicKey,
    bytes: u64,
    reserved: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut t) = self.uploads.temp_bytes.lock() {
            *t = t.saturating_sub(self.bytes);
        }
        if self.reserved > 0
            && let Ok(mut r) = self.uploads.reserved.lock()
            && let Some(v) = r.get_mut(&self.owner)
        {
            *v = v.saturating_sub(self.reserved);
            if *v == 0 {
                r.remove(&self.owner);
            }
        }
    }
}

/// Content types a blob is served with as given at upload; any other is served as
/// `application/octet-stream`. None of these runs script in a browser (with `nosniff`).
const SAFE_CONTENT_TYPES: [&str; 12] = [
    "application/octet-stream",
    "application/json",
    "application/gzip",
    "application/zstd",
    "application/x-tar",
    "text/plain",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "audio/mpeg",
    "video/mp4",
];

/// The content type a blob is stored and served with: `given` (parameters dropped, lowercase)
/// when it is on the allow-list, `application/octet-stream` otherwise.
pub(crate) fn safe_content_type(given: &str) -> &'static str {
    let essence = given
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    SAFE_CONTENT_TYPES
        .iter()
        .find(|t| **t == essence)
        .copied()
        .unwrap_or("application/octet-stream")
}

/// The file extension a blob's URL carries for its (allow-listed) content type: BUD-02 wants
/// one in every descriptor's `url`, and BUD-01 serves a blob under any.
fn extension(content_type: &str) -> &'static str {
    match content_type {
        "application/json" => "json",
        "application/gzip" => "gz",
        "application/zstd" => "zst",
        "application/x-tar" => "tar",
        "text/plain" => "txt",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "audio/mpeg" => "mp3",
        "video/mp4" => "mp4",
        _ => "bin",
    }
}

/// How many bytes a download reads per step, and an upload buffers before writing.
const CHUNK: usize = 256 << 10;

pub(crate) fn routes(blossom: Blossom) -> Router {
    Router::new()
        .route("/upload", put(upload).head(upload_check))
        .route("/list/{pubkey}", get(list))
        .route("/{name}", get(download).delete(delete))
        .with_state(blossom)
}

/// A refusal: the status and an `X-Reason` a user can act on (BUD-01).
fn refuse(status: StatusCode, reason: impl Into<String>) -> Response {
    let reason = reason.into();
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&reason.replace(['\r', '\n'], " ")) {
        headers.insert("x-reason", v);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    (status, headers, reason).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "blossom request failed");
    refuse(StatusCode::INTERNAL_SERVER_ERROR, "the blob store failed")
}

/// `<64 hex>` or `<64 hex>.<ext>`.
fn parse_name(name: &str) -> Option<BlobHash> {
    let hex = name.split_once('.').map_or(name, |(h, _)| h);
    if hex.len() != 64 {
        return None;
    }
    hex.to_ascii_lowercase().parse().ok()
}

impl Blossom {
    pub(crate) fn new(
        store: Arc<dyn BlobStore>,
        config: BlossomConfig,
        public: Option<(String, String)>,
        connections: ConnectionLimits,
    ) -> Self {
        let uploads = Arc::new(Uploads {
            slots: tokio::sync::Semaphore::new(config.max_concurrent_uploads.max(1)),
            temp_bytes: std::sync::Mutex::new(0),
            reserved: std::sync::Mutex::new(std::collections::HashMap::new()),
        });
        Blossom {
            store,
            config,
            public,
            connections,
            secure: false,
            payment: None,
            uploads,
        }
    }

    /// Asks the payment gate, if any, whether this request must be paid for first: `Err` is
    /// the `402 Payment Required` to send.
    async fn charge(
        &self,
        action: PaidAction,
        blob: Option<BlobHash>,
        size: Option<u64>,
        payer: Option<PublicKey>,
        headers: &HeaderMap,
    ) -> Result<(), Response> {
        let Some(gate) = &self.payment else {
            return Ok(());
        };
        let mut request = PaidRequest::new(action, headers.clone());
        request.blob = blob;
        request.size = size;
        request.payer = payer;
        gate.check(&request)
            .await
            .map_err(|required| payment_required(&required))
    }

    /// The names tokens may give this server in BUD-11 `server` tags: its domain (BUD-11 names a
    /// server by domain alone), and `host:port`. From the public URL, or the request's `Host`.
    fn server_names(&self, headers: &HeaderMap) -> Vec<String> {
        let url = match &self.public {
            Some((_, base)) => base.clone(),
            None => format!(
                "{}://{}",
                if self.secure { "https" } else { "http" },
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default()
            ),
        };
        let Some((_, host, port)) = crate::server::endpoint(&url) else {
            return Vec::new();
        };
        vec![format!("{host}:{port}"), host]
    }

    fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some((_, base)) = &self.public {
            return base.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("{}://{host}", if self.secure { "https" } else { "http" })
    }

    fn descriptor(&self, headers: &HeaderMap, info: &BlobInfo) -> serde_json::Value {
        let content_type = safe_content_type(&info.content_type);
        serde_json::json!({
            "url": format!("{}/{}.{}", self.base_url(headers), info.hash, extension(content_type)),
            "sha256": info.hash.to_string(),
            "size": info.size,
            "type": content_type,
            "uploaded": info.uploaded,
        })
    }

    /// Reads the token in `Authorization`, if any.
    fn token(headers: &HeaderMap) -> Result<Option<Signed<BlossomAuth>>, Response> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value.to_str().map_err(|_| {
            refuse(
                StatusCode::UNAUTHORIZED,
                "the Authorization header is not text",
            )
        })?;
        Signed::<BlossomAuth>::from_authorization_header(value)
            .map(Some)
            .map_err(|e| refuse(StatusCode::UNAUTHORIZED, e.to_string()))
    }

    /// Checks a token (which must be present) for `verb` on `blob`; returns its author.
    fn authorize(
        &self,
        headers: &HeaderMap,
        token: Option<&Signed<BlossomAuth>>,
        verb: Verb,
        blob: Option<&BlobHash>,
    ) -> Result<PublicKey, Response> {
        let Some(token) = token else {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                format!(
                    "this request needs a kind 24242 authorization with t={}",
                    verb.as_str()
                ),
            ));
        };
        self.check_lifetime(token)?;
        let result = self.for_each_name(headers, |server| {
            token.authorize(&AuthRequest {
                verb,
                blob,
                server,
                now: Timestamp::now(),
            })
        });
        match result {
            Ok(()) => Ok(token.author()),
            Err(e @ AuthError::BlobNotCovered { .. }) => {
                Err(refuse(StatusCode::FORBIDDEN, e.to_string()))
            }
            Err(e) => Err(refuse(StatusCode::UNAUTHORIZED, e.to_string())),
        }
    }

    /// Runs a token check with each name this server goes by, until one passes (a token names
    /// at most some of them).
    fn for_each_name(
        &self,
        headers: &HeaderMap,
        check: impl Fn(&str) -> Result<(), AuthError>,
    ) -> Result<(), AuthError> {
        let mut names = self.server_names(headers);
        if names.is_empty() {
            // No Host to go by: only a token that names no server passes.
            names.push(String::new());
        }
        let mut last = Err(AuthError::WrongServer {
            server: String::new(),
        });
        for name in &names {
            last = check(name);
            if !matches!(last, Err(AuthError::WrongServer { .. })) {
                return last;
            }
        }
        last
    }

    /// A token may not be valid for longer than the configured maximum.
    fn check_lifetime(&self, token: &Signed<BlossomAuth>) -> Result<(), Response> {
        let max = self.config.max_token_lifetime_secs;
        let expiration = token.body().expiration.as_secs();
        let lifetime = expiration.saturating_sub(token.created_at().as_secs());
        let left = expiration.saturating_sub(Timestamp::now().as_secs());
        if lifetime > max || left > max {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                format!("the authorization is valid for longer than this server's {max} s"),
            ));
        }
        Ok(())
    }
}

fn declared_hash(headers: &HeaderMap) -> Result<Option<BlobHash>, Response> {
    match headers.get("x-sha-256") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(parse_name)
            .map(Some)
            .ok_or_else(|| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "X-SHA-256 must be 64 hexadecimal digits",
                )
            }),
    }
}

fn header_u64(headers: &HeaderMap, name: header::HeaderName) -> Option<Result<u64, ()>> {
    headers
        .get(name)
        .map(|v| v.to_str().ok().and_then(|s| s.parse().ok()).ok_or(()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobStoreError> + Send + 'static,
) -> Result<T, BlobStoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(BlobStoreError::Io(std::io::Error::other(e.to_string()))))
}

fn too_large(limit: u64) -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("blobs larger than {limit} bytes are not accepted here"),
    )
}

fn unavailable(reason: &str) -> Response {
    let mut r = refuse(StatusCode::SERVICE_UNAVAILABLE, reason);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// BUD-02 `PUT /upload`; a refusal closes the connection, so that a body the relay did not take
/// is not read either.
async fn upload(state: State<Blossom>, headers: HeaderMap, body: Body) -> Response {
    let mut response = receive_upload(state, headers, body).await;
    if !response.status().is_success() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Receives an upload. Everything that can be checked before the body is: the whole token
/// (signature, verb, dates, lifetime, server; its `x` tags and a declared `X-SHA-256`), a
/// `Content-Length` within the size limit, the uploader's quota (reserved now, with the uploads
/// it already has in progress), a free upload slot and room in the temporary directory. The
/// body then streams to a temporary file, each chunk within the body timeout, the whole at the
/// minimum rate; it must be exactly `Content-Length` bytes and hash to a blob the token names.
async fn receive_upload(State(b): State<Blossom>, headers: HeaderMap, body: Body) -> Response {
    let token = match Blossom::token(&headers) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "uploads need a kind 24242 authorization with t=upload and the blob's x tag",
            );
        }
        Err(r) => return r,
    };
    let declared = match declared_hash(&headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let max = b.config.max_blob_bytes;
    let length = match header_u64(&headers, header::CONTENT_LENGTH) {
        Some(Ok(n)) if n > max => return too_large(max),
        Some(Ok(n)) => n,
        Some(Err(())) => return refuse(StatusCode::BAD_REQUEST, "Content-Length is not a number"),
        None => {
            return refuse(StatusCode::LENGTH_REQUIRED, "uploads need a Content-Length");
        }
    };
    if let Err(r) = b.check_lifetime(&token) {
        return r;
    }
    let now = Timestamp::now();
    let checked = b.for_each_name(&headers, |server| {
        let request = AuthRequest {
            verb: Verb::Upload,
            blob: declared.as_ref(),
            server,
            now,
        };
        match &declared {
            Some(_) => token.authorize(&request),
            None => token.authorize_before_blob(&request),
        }
    });
    match checked {
        Ok(()) => {}
        Err(e @ AuthError::BlobNotCovered { .. }) => {
            return refuse(StatusCode::FORBIDDEN, e.to_string());
        }
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, e.to_string()),
    }
    let owner = token.author();
    if let Err(r) = b
        .charge(
            PaidAction::Upload,
            declared,
            Some(length),
            Some(owner),
            &headers,
        )
        .await
    {
        return r;
    }
    let Ok(_slot) = b.uploads.slots.try_acquire() else {
        return unavailable("too many uploads in progress: try again shortly");
    };
    let held = match b.hold(owner, length).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let content_type = safe_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let store = b.store.clone();
    let mut upload = match blocking(move || store.begin(length)).await {
        Ok(u) => u,
        Err(e) => return internal(e),
    };
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::with_capacity(CHUNK);
    let mut received = 0u64;
    let rate = b.config.min_upload_rate.max(1);
    let deadline = tokio::time::Instant::now()
        + b.connections.body_timeout
        + std::time::Duration::from_secs(length / rate);
    loop {
        let wait = b
            .connections
            .body_timeout
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let next = match tokio::time::timeout(wait, stream.next()).await {
            Ok(next) => next,
            Err(_) => {
                return refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    "the upload body stalled or came too slowly",
                );
            }
        };
        let done = next.is_none();
        match next {
            Some(Ok(bytes)) => {
                received += bytes.len() as u64;
                if received > length {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "the body is longer than its Content-Length",
                    );
                }
                buffer.extend_from_slice(&bytes);
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "upload body failed");
                return refuse(StatusCode::BAD_REQUEST, "the upload body was cut short");
            }
            None => {}
        }
        if buffer.len() >= CHUNK || (done && !buffer.is_empty()) {
            let chunk = std::mem::replace(&mut buffer, Vec::with_capacity(CHUNK));
            let written = tokio::task::spawn_blocking(move || {
                let r = upload.write(&chunk);
                (upload, r)
            })
            .await;
            match written {
                Ok((u, Ok(()))) => upload = u,
                Ok((_, Err(BlobStoreError::TooLarge { limit }))) => return too_large(limit),
                Ok((_, Err(e))) => return internal(e),
                Err(e) => return internal(e),
            }
        }
        if done {
            break;
        }
    }
    if received != length {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("the body has {received} bytes, its Content-Length says {length}"),
        );
    }
    let response = finish_upload(&b, &headers, &token, declared, content_type, upload).await;
    drop(held);
    response
}

impl Blossom {
    /// Reserves `length` bytes of the temporary directory and of `owner`'s quota for an upload.
    async fn hold(&self, owner: PublicKey, length: u64) -> Result<Held, Response> {
        let budget = self.config.max_upload_bytes_in_flight;
        {
            let mut temp = self
                .uploads
                .temp_bytes
                .lock()
                .map_err(|_| internal("poisoned"))?;
            if temp.saturating_add(length) > budget {
                return Err(unavailable(
                    "the server is receiving too many bytes at once: try again shortly",
                ));
            }
            *temp += length;
        }
        let mut held = Held {
            uploads: self.uploads.clone(),
            owner,
            bytes: length,
            reserved: 0,
        };
        let quota = self.config.quota_bytes_per_pubkey;
        if quota > 0 {
            let store = self.store.clone();
            let used = blocking(move || store.usage(&owner))
                .await
                .map_err(internal)?;
            let mut reserved = self
                .uploads
                .reserved
                .lock()
                .map_err(|_| internal("poisoned"))?;
            let pending = reserved.get(&owner).copied().unwrap_or(0);
            if used.saturating_add(pending).saturating_add(length) > quota {
                return Err(refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "storing {length} more bytes would exceed the quota of {quota} bytes (in use: {used}, in uploads under way: {pending})"
                    ),
                ));
            }
            *reserved.entry(owner).or_default() += length;
            held.reserved = length;
        }
        Ok(held)
    }
}

async fn finish_upload(
    b: &Blossom,
    headers: &HeaderMap,
    token: &Signed<BlossomAuth>,
    declared: Option<BlobHash>,
    content_type: &'static str,
    upload: Box<dyn BlobUpload>,
) -> Response {
    // The token's author owns the blob; the actual hash must be one its `x` tags name.
    let owner = token.author();
    let quota = (b.config.quota_bytes_per_pubkey > 0).then_some(b.config.quota_bytes_per_pubkey);
    let covering = token.clone();
    let committed = tokio::task::spawn_blocking(move || {
        commit_with(
            upload,
            &owner,
            content_type,
            declared.as_ref(),
            quota,
            &|hash| covering.covers(Verb::Upload, hash),
        )
    })
    .await;
    match committed {
        Ok(Ok((info, is_new))) => {
            let status = if is_new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            tracing::info!(blob = %info.hash, size = info.size, %owner, is_new, "blob stored");
            (
                status,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                ],
                b.descriptor(headers, &info).to_string(),
            )
                .into_response()
        }
        Ok(Err(CommitError::Store(BlobStoreError::HashMismatch { expected, actual }))) => {
            let mut r = refuse(
                StatusCode::CONFLICT,
                format!("the body hashes to {actual}, not the X-SHA-256 {expected}"),
            );
            if let Ok(v) = HeaderValue::from_str(&actual.to_string()) {
                r.headers_mut().insert("x-sha-256", v);
            }
            r
        }
        Ok(Err(CommitError::Store(e @ BlobStoreError::Quota { .. }))) => {
            refuse(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        Ok(Err(CommitError::NotAuthorized(hash))) => refuse(
            StatusCode::FORBIDDEN,
            format!("the authorization does not cover blob {hash}"),
        ),
        Ok(Err(CommitError::Store(e))) => internal(e),
        Err(e) => internal(e),
    }
}

/// Why an upload was not committed.
enum CommitError {
    Store(BlobStoreError),
    NotAuthorized(BlobHash),
}

/// Commits `upload` after a last check of its actual hash against the declared one and the
/// token's `x` tags, before anything is visible.
fn commit_with(
    upload: Box<dyn BlobUpload>,
    owner: &PublicKey,
    content_type: &str,
    declared: Option<&BlobHash>,
    quota: Option<u64>,
    allowed: &dyn Fn(&BlobHash) -> bool,
) -> Result<(BlobInfo, bool), CommitError> {
    let actual = upload.hash();
    if let Some(d) = declared
        && *d != actual
    {
        return Err(CommitError::Store(BlobStoreError::HashMismatch {
            expected: *d,
            actual,
        }));
    }
    if !allowed(&actual) {
        return Err(CommitError::NotAuthorized(actual));
    }
    upload
        .commit(owner, content_type, Some(&actual), quota)
        .map_err(CommitError::Store)
}

/// BUD-06 `HEAD /upload`: would an upload be accepted?
async fn upload_check(State(b): State<Blossom>, headers: HeaderMap) -> Response {
    let token = match Blossom::token(&headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let declared = match declared_hash(&headers) {
        Ok(Some(d)) => d,
        Ok(None) => return refuse(StatusCode::BAD_REQUEST, "X-SHA-256 is required"),
        Err(r) => return r,
    };
    let size = match header_u64(
        &headers,
        header::HeaderName::from_static("x-content-length"),
    ) {
        Some(Ok(n)) => n,
        Some(Err(())) => {
            return refuse(StatusCode::BAD_REQUEST, "X-Content-Length is not a number");
        }
        None => return refuse(StatusCode::LENGTH_REQUIRED, "X-Content-Length is required"),
    };
    if size > b.config.max_blob_bytes {
        return too_large(b.config.max_blob_bytes);
    }
    let owner = match b.authorize(&headers, token.as_ref(), Verb::Upload, Some(&declared)) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if let Err(r) = b
        .charge(
            PaidAction::Upload,
            Some(declared),
            Some(size),
            Some(owner),
            &headers,
        )
        .await
    {
        return r;
    }
    let quota = b.config.quota_bytes_per_pubkey;
    if quota > 0 {
        let store = b.store.clone();
        match blocking(move || store.usage(&owner)).await {
            Ok(used) if used.saturating_add(size) > quota => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "storing {size} more bytes would exceed the quota of {quota} bytes (in use: {used})"
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => return internal(e),
        }
    }
    (StatusCode::OK, [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")]).into_response()
}

/// BUD-01 `GET`/`HEAD /<sha256>`.
async fn download(
    State(b): State<Blossom>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(hash) = parse_name(&name) else {
        return refuse(StatusCode::NOT_FOUND, "not a blob address: /<sha256>");
    };
    let mut reader_key = None;
    if b.config.require_auth_for_get {
        let token = match Blossom::token(&headers) {
            Ok(t) => t,
            Err(r) => return r,
        };
        match b.authorize(&headers, token.as_ref(), Verb::Get, Some(&hash)) {
            Ok(k) => reader_key = Some(k),
            Err(r) => return r,
        }
    }
    if method == Method::HEAD {
        // A blob kept past its last claim is served to readers, but a writer asking whether
        // it is here is told no, so that it uploads and claims it again.
        let store = b.store.clone();
        match blocking(move || store.is_claimed(&hash)).await {
            Ok(true) => {}
            Ok(false) => return refuse(StatusCode::NOT_FOUND, format!("no blob {hash} here")),
            Err(e) => return internal(e),
        }
    }
    let store = b.store.clone();
    let opened = match blocking(move || store.open(&hash)).await {
        Ok(Some(o)) => o,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, format!("no blob {hash} here")),
        Err(e) => return internal(e),
    };
    let (reader, info) = opened;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(ByteRange::Full, |v| ByteRange::parse(v, info.size));
    let (status, start, end) = match range {
        ByteRange::Full => (StatusCode::OK, 0, info.size),
        ByteRange::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        ByteRange::Unsatisfiable => {
            let mut r = refuse(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the blob is {} bytes", info.size),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", info.size)) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let action = if method == Method::HEAD {
        PaidAction::Head
    } else {
        PaidAction::Download
    };
    if let Err(r) = b
        .charge(action, Some(hash), Some(end - start), reader_key, &headers)
        .await
    {
        return r;
    }
    let mut out = HeaderMap::new();
    // An uploaded page must never run as a page of this origin: a type from the allow-list,
    // no sniffing, and a sandbox should a browser render it anyway.
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(safe_content_type(&info.content_type)),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        out.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{}", end - 1, info.size))
    {
        out.insert(header::CONTENT_RANGE, v);
    }
    if method == Method::HEAD {
        return (status, out).into_response();
    }
    // One chunk is read (off the async threads) each time the connection asks for the next: a
    // client that does not read holds a file handle, never a thread or a growing buffer.
    let state = (Some(reader), start, end - start);
    let stream = futures_util::stream::unfold(state, |(reader, at, left)| async move {
        let mut reader = reader?;
        if left == 0 {
            return None;
        }
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(CHUNK);
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; n];
            let r = reader
                .seek(SeekFrom::Start(at))
                .and_then(|_| reader.read_exact(&mut buf));
            (reader, r.map(|()| Bytes::from(buf)))
        })
        .await;
        match read {
            Ok((reader, Ok(bytes))) => {
                Some((Ok(bytes), (Some(reader), at + n as u64, left - n as u64)))
            }
            Ok((_, Err(e))) => Some((Err(e), (None, at, 0))),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), (None, at, 0))),
        }
    });
    (status, out, Body::from_stream(stream)).into_response()
}

/// BUD-12 `DELETE /<sha256>`: only an uploader may, and only its own claim goes.
async fn delete(
    State(b): State<Blossom>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(hash) = parse_name(&name) else {
        return refuse(StatusCode::NOT_FOUND, "not a blob address: /<sha256>");
    };
    let token = match Blossom::token(&headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let owner = match b.authorize(&headers, token.as_ref(), Verb::Delete, Some(&hash)) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if let Err(r) = b
        .charge(PaidAction::Delete, Some(hash), None, Some(owner), &headers)
        .await
    {
        return r;
    }
    let store = b.store.clone();
    match blocking(move || store.delete(&hash, &owner)).await {
        Ok(DeleteOutcome::NotFound) => {
            refuse(StatusCode::NOT_FOUND, format!("no blob {hash} here"))
        }
        Ok(DeleteOutcome::NotOwner) => refuse(
            StatusCode::FORBIDDEN,
            "only an uploader of this blob may delete it",
        ),
        Ok(DeleteOutcome::Released | DeleteOutcome::Removed) => {
            tracing::info!(blob = %hash, %owner, "blob deleted");
            (StatusCode::OK, [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")]).into_response()
        }
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    since: Option<u64>,
    until: Option<u64>,
    /// The last blob of the previous page (BUD-12): the page starts after it.
    cursor: Option<String>,
    limit: Option<usize>,
}

/// The most descriptors one `GET /list` answers with (a `limit` above it is lowered to it).
pub(crate) const MAX_LIST: usize = 10_000;

/// BUD-12 `GET /list/<pubkey>`.
async fn list(
    State(b): State<Blossom>,
    Path(pubkey): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let Ok(owner) = PublicKey::from_hex(&pubkey) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the list path takes a hex public key: /list/<64 hex>",
        );
    };
    let cursor = match q.cursor.as_deref().map(parse_name) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "cursor takes the sha256 of the last blob of the previous page",
            );
        }
    };
    let limit = q.limit.unwrap_or(MAX_LIST).min(MAX_LIST);
    if let Err(r) = b.charge(PaidAction::List, None, None, None, &headers).await {
        return r;
    }
    let store = b.store.clone();
    match blocking(move || store.list(&owner, q.since, q.until)).await {
        Ok(mut blobs) => {
            // Newest upload first (ties by hash, so that pages never overlap or skip), from
            // after the cursor.
            blobs.sort_by(|x, y| {
                y.uploaded
                    .cmp(&x.uploaded)
                    .then_with(|| x.hash.cmp(&y.hash))
            });
            let start = cursor.map_or(0, |c| {
                blobs
                    .iter()
                    .position(|i| i.hash == c)
                    .map_or(blobs.len(), |at| at + 1)
            });
            let list: Vec<_> = blobs
                .iter()
                .skip(start)
                .take(limit)
                .map(|i| b.descriptor(&headers, i))
                .collect();
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                ],
                serde_json::Value::Array(list).to_string(),
            )
                .into_response()
        }
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_take_an_optional_extension() {
        let hex = "a".repeat(64);
        assert!(parse_name(&hex).is_some());
        assert!(parse_name(&format!("{hex}.safetensors")).is_some());
        assert!(parse_name(&hex[1..]).is_none());
        assert!(parse_name("upload").is_none());
    }
}
