//! BUD-07 paid storage, as an extension point: a [`PaymentGate`] the relay asks before it
//! stores or serves a blob. It answers "go on" or "pay first" with the payment methods it takes
//! (`X-Cashu` with a NUT-24 payment request, `X-Lightning` with a BOLT-11 invoice, …); the relay
//! then answers `402 Payment Required` with those headers and does nothing else. The proof a
//! client sends back when it retries (the same `X-{method}` header) is in
//! [`PaidRequest::headers`] for the gate to check.
//!
//! The relay implements no payment method itself: the market (issue 19) plugs one in with
//! [`Relay::with_payment_gate`](crate::Relay::with_payment_gate). Without a gate nothing is
//! charged.

use std::future::Future;
use std::pin::Pin;

use agigit_hash::BlobHash;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nostr::prelude::PublicKey;

/// What a request asks of the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PaidAction {
    /// `PUT /upload`, or its `HEAD /upload` preflight (BUD-06).
    Upload,
    /// `GET /<sha256>`.
    Download,
    /// `HEAD /<sha256>`: whether a blob is here, and its size; nothing of it is sent.
    Head,
    /// `GET /list/<pubkey>`.
    List,
    /// `DELETE /<sha256>`.
    Delete,
}

/// A request the relay is about to serve, as far as a gate needs to price it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PaidRequest {
    /// What it asks.
    pub action: PaidAction,
    /// The blob it is about, when it names one.
    pub blob: Option<BlobHash>,
    /// The bytes it would store or send (`Content-Length` or `X-Content-Length` of an upload;
    /// the blob's, or the range's, size for a download).
    pub size: Option<u64>,
    /// The key its authorization names, when it carries a valid one.
    pub payer: Option<PublicKey>,
    /// Its headers: where a payment proof (`X-Cashu: cashuB…`) is.
    pub headers: HeaderMap,
}

impl PaidRequest {
    /// A request for `action` with `headers`, naming no blob, size or payer yet.
    pub fn new(action: PaidAction, headers: HeaderMap) -> Self {
        PaidRequest {
            action,
            blob: None,
            size: None,
            payer: None,
            headers,
        }
    }
}

/// "Pay first": the methods a client may pay with, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRequired {
    /// `(method, payload)`: sent as `X-{method}: {payload}` (`("Cashu", "creqA…")`). A method
    /// name must be letters, digits and `-`; a payload must be a valid header value (an entry
    /// that is not is left out, and logged).
    pub methods: Vec<(String, String)>,
    /// A message for the user (`X-Reason`).
    pub reason: String,
}

/// The future a [`PaymentGate`] answers with.
pub type PaymentCheck<'a> = Pin<Box<dyn Future<Output = Result<(), PaymentRequired>> + Send + 'a>>;

/// Decides whether a request must be paid for first (BUD-07). Called after the request's
/// authorization is checked and before anything is stored or sent; for an upload, before its
/// body is read. It may take its time (ask a mint whether a token is spent): the relay awaits
/// it on the request's own task.
pub trait PaymentGate: Send + Sync + 'static {
    /// `Ok(())` to serve `request`; `Err` to answer `402 Payment Required`.
    fn check<'a>(&'a self, request: &'a PaidRequest) -> PaymentCheck<'a>;
}

/// The `402 Payment Required` answer for `required`.
pub(crate) fn payment_required(required: &PaymentRequired) -> Response {
    let mut headers = HeaderMap::new();
    for (method, payload) in &required.methods {
        let name = (!method.is_empty()
            && method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then(|| HeaderName::from_bytes(format!("x-{method}").to_ascii_lowercase().as_bytes()).ok())
        .flatten();
        match (name, HeaderValue::from_str(payload)) {
            (Some(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(%method, "a payment gate gave a method that cannot be a header"),
        }
    }
    let reason = required.reason.replace(['\r', '\n'], " ");
    if let Ok(v) = HeaderValue::from_str(&reason) {
        headers.insert("x-reason", v);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    (StatusCode::PAYMENT_REQUIRED, headers, reason).into_response()
}
