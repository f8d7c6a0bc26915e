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
use tokio::sync::mpsc;

use crate::blobs::{BlobInfo, BlobStore, BlobStoreError, BlobUpload, DeleteOutcome};
use crate::config::BlossomConfig;
use crate::range::ByteRange;

/// The Blossom side of a relay: a blob store and its settings.
#[derive(Clone)]
pub(crate) struct Blossom {
    pub(crate) store: Arc<dyn BlobStore>,
    pub(crate) config: BlossomConfig,
    /// The public URL's host and HTTP base, when configured.
    pub(crate) public: Option<(String, String)>,
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
    /// The host tokens must name (BUD-11 `server` tags): the public URL's, or the request's.
    fn host(&self, headers: &HeaderMap) -> String {
        if let Some((host, _)) = &self.public {
            return host.clone();
        }
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host))
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some((_, base)) = &self.public {
            return base.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    fn descriptor(&self, headers: &HeaderMap, info: &BlobInfo) -> serde_json::Value {
        serde_json::json!({
            "url": format!("{}/{}", self.base_url(headers), info.hash),
            "sha256": info.hash.to_string(),
            "size": info.size,
            "type": info.content_type,
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
        let host = self.host(headers);
        let request = AuthRequest {
            verb,
            blob,
            server: &host,
            now: Timestamp::now(),
        };
        match token.authorize(&request) {
            Ok(()) => Ok(token.author()),
            Err(e @ AuthError::BlobNotCovered { .. }) => {
                Err(refuse(StatusCode::FORBIDDEN, e.to_string()))
            }
            Err(e) => Err(refuse(StatusCode::UNAUTHORIZED, e.to_string())),
        }
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

/// BUD-02 `PUT /upload`.
async fn upload(State(b): State<Blossom>, headers: HeaderMap, body: Body) -> Response {
    let token = match Blossom::token(&headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let declared = match declared_hash(&headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let max = b.config.max_blob_bytes;
    match header_u64(&headers, header::CONTENT_LENGTH) {
        Some(Ok(n)) if n > max => return too_large(max),
        Some(Err(())) => return refuse(StatusCode::BAD_REQUEST, "Content-Length is not a number"),
        _ => {}
    }
    // Fail fast when the hash is declared; otherwise the token is checked against the bytes.
    if let Some(declared) = &declared
        && let Err(r) = b.authorize(&headers, token.as_ref(), Verb::Upload, Some(declared))
    {
        return r;
    }
    if token.is_none() {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "uploads need a kind 24242 authorization with t=upload and the blob's x tag",
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let store = b.store.clone();
    let mut upload = match blocking(move || store.begin(max)).await {
        Ok(u) => u,
        Err(e) => return internal(e),
    };
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::with_capacity(CHUNK);
    loop {
        let next = stream.next().await;
        let done = next.is_none();
        match next {
            Some(Ok(bytes)) => buffer.extend_from_slice(&bytes),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "upload body failed");
                return refuse(StatusCode::BAD_REQUEST, "the upload body was cut short");
            }
            None => {}
        }
        if buffer.len() >= CHUNK || (done && !buffer.is_empty()) {
            let chunk = std::mem::take(&mut buffer);
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
            buffer = Vec::with_capacity(CHUNK);
        }
        if done {
            break;
        }
    }
    finish_upload(b, headers, token, declared, content_type, upload).await
}

async fn finish_upload(
    b: Blossom,
    headers: HeaderMap,
    token: Option<Signed<BlossomAuth>>,
    declared: Option<BlobHash>,
    content_type: String,
    upload: Box<dyn BlobUpload>,
) -> Response {
    // The token's author owns the blob; its `x` tag is checked against the actual hash below.
    let Some(owner) = token.as_ref().map(Signed::author) else {
        return refuse(StatusCode::UNAUTHORIZED, "uploads need an authorization");
    };
    let quota = (b.config.quota_bytes_per_pubkey > 0).then_some(b.config.quota_bytes_per_pubkey);
    let checker = b.clone();
    let check_headers = headers.clone();
    let auth_token = token.clone();
    let committed = tokio::task::spawn_blocking(move || {
        commit_with(
            upload,
            &owner,
            &content_type,
            declared.as_ref(),
            quota,
            &|hash| {
                checker
                    .authorize(
                        &check_headers,
                        auth_token.as_ref(),
                        Verb::Upload,
                        Some(hash),
                    )
                    .map(|_| ())
                    .map_err(|_| ())
            },
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
                b.descriptor(&headers, &info).to_string(),
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
/// token's `x` tag, before anything is visible.
fn commit_with(
    upload: Box<dyn BlobUpload>,
    owner: &PublicKey,
    content_type: &str,
    declared: Option<&BlobHash>,
    quota: Option<u64>,
    allowed: &dyn Fn(&BlobHash) -> Result<(), ()>,
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
    allowed(&actual).map_err(|()| CommitError::NotAuthorized(actual))?;
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
    if b.config.require_auth_for_get {
        let token = match Blossom::token(&headers) {
            Ok(t) => t,
            Err(r) => return r,
        };
        if let Err(r) = b.authorize(&headers, token.as_ref(), Verb::Get, Some(&hash)) {
            return r;
        }
    }
    let store = b.store.clone();
    let opened = match blocking(move || store.open(&hash)).await {
        Ok(Some(o)) => o,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, format!("no blob {hash} here")),
        Err(e) => return internal(e),
    };
    let (mut reader, info) = opened;
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
    let mut out = HeaderMap::new();
    let content_type = HeaderValue::from_str(&info.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    out.insert(header::CONTENT_TYPE, content_type);
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
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = reader.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = end - start;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(CHUNK);
            let mut buf = vec![0u8; n];
            if let Err(e) = reader.read_exact(&mut buf) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            left -= n as u64;
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // the client went away
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
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
}

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
    let store = b.store.clone();
    match blocking(move || store.list(&owner, q.since, q.until)).await {
        Ok(blobs) => {
            let list: Vec<_> = blobs.iter().map(|i| b.descriptor(&headers, i)).collect();
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
