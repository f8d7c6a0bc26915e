//! `/r/{slug}/download?rev=…&path=…`: a file streamed to the browser over a WebSocket.
//!
//! The server reads the file from its store the way a checkout writes it — every blob, chunk
//! and tensor checked against its hash as it is read — and sends it in binary frames of at most
//! [`FRAME`] bytes after a `start` message (`{"type":"start","path","size","commit"}`). It holds
//! the last frame back until the whole file has been read and checked, then sends `verified`
//! (`{"type":"verified","bytes","sha256"}`: the SHA-256 of the whole file, which the page
//! compares with its own), the last frame, and `done`. On any failure it sends `error` instead
//! and never the last frame, so the browser never saves a file that did not verify.
//!
//! Memory is bounded whatever the file's size and however slowly the browser reads: the reader
//! blocks when [`QUEUE`] frames wait to be sent, and a browser or HTTP client that takes
//! nothing for the stall time ([`Explorer::transfer_stall`](crate::Explorer::transfer_stall),
//! 60 s by default) is dropped, its transfer slot freed. A plain GET (no WebSocket) gets the
//! same bytes as an attachment, checked the same way (a failure cuts the body short).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt as _;

use crate::Site;
use crate::pages::{PageError, open};

/// The largest binary frame sent.
pub(crate) const FRAME: usize = 256 * 1024;
/// Frames read ahead of the browser at most.
const QUEUE: usize = 8;
/// A browser that takes no frame for this long is dropped (it holds one of the few transfer
/// slots): the default of [`Explorer::transfer_stall`](crate::Explorer::transfer_stall).
pub(crate) const STALL: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, serde::Deserialize)]
pub(crate) struct DownloadQuery {
    rev: String,
    path: String,
    /// One tensor of the safetensors file `path`, sent as a safetensors file of its own.
    tensor: Option<String>,
}

/// What the reader hands the sender.
enum Piece {
    Start { size: u64, commit: String },
    Data(Vec<u8>),
    Verified { bytes: u64, sha256: String },
    Failed(String),
}

pub(crate) async fn handler(
    State(site): State<Arc<Site>>,
    Path(slug): Path<String>,
    Query(query): Query<DownloadQuery>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &site).await;
    // Refused before anything is read: an unknown repository, revision or file.
    let check = {
        let site = site.clone();
        let (slug, rev, path) = (slug.clone(), query.rev.clone(), query.path.clone());
        let tensor = query.tensor.is_some();
        tokio::task::spawn_blocking(move || -> Result<Option<u64>, PageError> {
            let (_, repo) = open(&site, &slug)?;
            let file = repo
                .file_at(&rev, &path)?
                .ok_or_else(|| PageError::NotFound(format!("no file {path:?} at {rev}")))?;
            if !tensor {
                return Ok(Some(file.bytes));
            }
            if file.kind != agigit::FileKind::Safetensors {
                return Err(PageError::NotFound(format!(
                    "{path:?} is not a safetensors file"
                )));
            }
            // A tensor's file is as long as its header makes it: told when it starts.
            Ok(None)
        })
        .await
    };
    let size = match check {
        Ok(Ok(size)) => size,
        Ok(Err(e)) => return e.into_page(&site),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let name = match &query.tensor {
        Some(t) => format!("{t}.safetensors"),
        None => query.path.rsplit('/').next().unwrap_or("file").to_owned(),
    };
    let rx = start_reader(
        site.clone(),
        slug,
        query.rev,
        query.path.clone(),
        query.tensor,
    );
    match upgrade {
        Ok(ws) => ws
            .max_message_size(64 * 1024)
            .on_upgrade(move |socket| send(socket, rx, query.path, site.stall))
            .into_response(),
        Err(_) => attachment(rx, &name, size),
    }
}

/// Starts reading the file on the blocking pool once a transfer slot is free; its pieces come
/// through the returned channel, which holds at most [`QUEUE`] of them.
fn start_reader(
    site: Arc<Site>,
    slug: String,
    rev: String,
    path: String,
    tensor: Option<String>,
) -> tokio::sync::mpsc::Receiver<Piece> {
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let Ok(permit) = site.transfers.clone().acquire_owned().await else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let failed = tx.clone();
            if let Err(e) = read(&site, &slug, &rev, &path, tensor.as_deref(), &tx) {
                let _ = hand_over(&failed, Piece::Failed(e), site.stall);
            }
        })
        .await;
    });
    rx
}

/// Reads and checks the file, handing its bytes over in frames.
fn read(
    site: &Site,
    slug: &str,
    rev: &str,
    path: &str,
    tensor: Option<&str>,
    tx: &tokio::sync::mpsc::Sender<Piece>,
) -> Result<(), String> {
    let gone = || agigit::Error::Internal("the browser went away or stopped reading");
    let (_, repo) = open(site, slug).map_err(|e| format!("{e:?}"))?;
    let commit = repo.resolve(rev).map_err(|e| e.to_string())?;
    let mut hasher = agigit::hash::Hasher::new();
    let start = |size: u64| {
        hand_over(
            tx,
            Piece::Start {
                size,
                commit: commit.to_string(),
            },
            site.stall,
        )
        .map_err(|()| gone())
    };
    let sink = |data: &[u8]| {
        hasher.update(data);
        for frame in data.chunks(FRAME) {
            hand_over(tx, Piece::Data(frame.to_vec()), site.stall).map_err(|()| gone())?;
        }
        Ok(())
    };
    let at = commit.to_string();
    let result = match tensor {
        Some(name) => repo.read_tensor_with(&at, path, name, start, sink),
        None => repo.read_file_with(&at, path, |entry| start(entry.bytes), sink),
    };
    match result {
        Ok(Some(bytes)) => {
            let sha256: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            hand_over(tx, Piece::Verified { bytes, sha256 }, site.stall)
                .map_err(|()| "the browser went away or stopped reading".to_owned())
        }
        Ok(None) => Err(match tensor {
            Some(name) => format!("no tensor {name:?} in {path:?} at {rev}"),
            None => format!("no file {path:?} at {rev}"),
        }),
        Err(e) => Err(e.to_string()),
    }
}

/// Hands `piece` to the sender from the blocking pool, giving up when the browser takes
/// nothing for `stall` (a WebSocket or an HTTP body alike: a reader that waits forever
/// would hold one of the few transfer slots for good).
fn hand_over(
    tx: &tokio::sync::mpsc::Sender<Piece>,
    piece: Piece,
    stall: std::time::Duration,
) -> Result<(), ()> {
    match tx.try_send(piece) {
        Ok(()) => Ok(()),
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Err(()),
        Err(tokio::sync::mpsc::error::TrySendError::Full(piece)) => {
            tokio::runtime::Handle::current()
                .block_on(tokio::time::timeout(stall, tx.send(piece)))
                .map_err(|_| ())?
                .map_err(|_| ())
        }
    }
}

fn json(value: &serde_json::Value) -> Message {
    Message::Text(value.to_string().into())
}

/// Sends `message`, giving up on a browser that does not read for `stall`.
async fn deliver(
    socket: &mut WebSocket,
    message: Message,
    stall: std::time::Duration,
) -> Result<(), ()> {
    match tokio::time::timeout(stall, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Sends the pieces over the WebSocket, the last frame held back until the file verified.
async fn send(
    mut socket: WebSocket,
    mut rx: tokio::sync::mpsc::Receiver<Piece>,
    path: String,
    stall: std::time::Duration,
) {
    let mut held: Option<Vec<u8>> = None;
    while let Some(piece) = rx.recv().await {
        let message = match piece {
            Piece::Start { size, commit } => json(&serde_json::json!({
                "type": "start", "path": path, "size": size, "commit": commit,
            })),
            Piece::Data(frame) => match held.replace(frame) {
                Some(previous) => Message::Binary(previous.into()),
                None => continue,
            },
            Piece::Verified { bytes, sha256 } => {
                let verified = json(&serde_json::json!({
                    "type": "verified", "bytes": bytes, "sha256": sha256,
                }));
                if deliver(&mut socket, verified, stall).await.is_err() {
                    return;
                }
                if let Some(last) = held.take()
                    && deliver(&mut socket, Message::Binary(last.into()), stall)
                        .await
                        .is_err()
                {
                    return;
                }
                json(&serde_json::json!({ "type": "done" }))
            }
            Piece::Failed(why) => {
                held = None;
                json(&serde_json::json!({ "type": "error", "message": why }))
            }
        };
        if deliver(&mut socket, message, stall).await.is_err() {
            return;
        }
    }
    let _ = tokio::time::timeout(stall, socket.close()).await;
}

/// The same bytes as an HTTP attachment (for scripts and browsers without WebSocket).
fn attachment(rx: tokio::sync::mpsc::Receiver<Piece>, name: &str, size: Option<u64>) -> Response {
    let stream =
        futures_util::stream::unfold((rx, None::<Vec<u8>>), |(mut rx, mut held)| async move {
            loop {
                match rx.recv().await? {
                    Piece::Start { .. } => {}
                    Piece::Data(frame) => {
                        if let Some(previous) = held.replace(frame) {
                            return Some((Ok::<_, std::io::Error>(previous), (rx, held)));
                        }
                    }
                    Piece::Verified { .. } => {
                        let last = held.take()?;
                        return Some((Ok(last), (rx, None)));
                    }
                    Piece::Failed(why) => {
                        return Some((Err(std::io::Error::other(why)), (rx, None)));
                    }
                }
            }
        });
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut response = (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    if let Some(size) = size {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(size));
    }
    response
}
