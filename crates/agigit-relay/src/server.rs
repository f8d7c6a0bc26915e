//! The relay's server: NIP-01 over WebSocket and the NIP-11 information document, on one port
//! (axum on tokio). Every event goes through the [`EventStore`], which verifies it first.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use nostr::prelude::{ClientMessage, Event, Filter, RelayMessage, SubscriptionId};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use crate::store::{EventStore, EventStoreError, MAX_FILTER_VALUES, SaveOutcome};

/// Limits the relay enforces; the NIP-11 document reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message a client may send, in bytes.
    pub max_message_bytes: usize,
    /// Open subscriptions per connection.
    pub max_subscriptions: usize,
    /// Filters per REQ.
    pub max_filters: usize,
    /// Values per filter field (ids, authors, kinds, each tag).
    pub max_filter_values: usize,
    /// The most events one filter returns (a larger or missing `limit` is capped).
    pub max_limit: usize,
    /// Longest subscription id.
    pub max_subid_length: usize,
    /// Messages per minute per connection.
    pub messages_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 512 << 10,
            max_subscriptions: 32,
            max_filters: 16,
            max_filter_values: MAX_FILTER_VALUES,
            max_limit: 5000,
            max_subid_length: 64,
            messages_per_minute: 6000,
        }
    }
}

/// What the relay says about itself (NIP-11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
}

impl Default for Info {
    fn default() -> Self {
        Info {
            name: "agigit-relay".into(),
            description: "An agigit relay: model repositories' events over Nostr".into(),
        }
    }
}

/// A relay: a store, the live-event fan-out, limits and its description.
#[derive(Clone)]
pub struct Relay {
    store: Arc<dyn EventStore>,
    live: broadcast::Sender<Arc<Event>>,
    limits: Limits,
    info: Info,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("limits", &self.limits)
            .field("info", &self.info)
            .finish()
    }
}

impl Relay {
    /// A relay over `store`.
    pub fn new(store: Arc<dyn EventStore>, limits: Limits, info: Info) -> Self {
        let (live, _) = broadcast::channel(4096);
        Relay {
            store,
            live,
            limits,
            info,
        }
    }

    /// The HTTP and WebSocket routes, to mount in a larger server.
    pub fn router(self) -> Router {
        Router::new().route("/", get(root)).with_state(self)
    }

    fn nip11(&self) -> serde_json::Value {
        let l = &self.limits;
        serde_json::json!({
            "name": self.info.name,
            "description": self.info.description,
            "software": "https://github.com/agigit/agigit",
            "version": env!("CARGO_PKG_VERSION"),
            "supported_nips": [1, 9, 11, 40],
            "limitation": {
                "max_message_length": l.max_message_bytes,
                "max_subscriptions": l.max_subscriptions,
                "max_filters": l.max_filters,
                "max_limit": l.max_limit,
                "max_subid_length": l.max_subid_length,
                "auth_required": false,
                "payment_required": false,
                "restricted_writes": false
            }
        })
    }
}

/// Serves `relay` on `listener` until `shutdown` completes, then closes gracefully.
pub async fn serve(
    listener: TcpListener,
    relay: Relay,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = relay
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn root(
    State(relay): State<Relay>,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> Response {
    let (mut parts, _body) = req.into_parts();
    if let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &relay).await {
        let max = relay.limits.max_message_bytes;
        return ws
            .max_message_size(max)
            .max_frame_size(max)
            .on_upgrade(move |socket| connection(socket, relay))
            .into_response();
    }
    let wants_info = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/nostr+json"));
    if wants_info {
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/nostr+json"),
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            ],
            relay.nip11().to_string(),
        )
            .into_response();
    }
    (
        StatusCode::OK,
        "agigit relay: connect with a Nostr client over WebSocket\n",
    )
        .into_response()
}

/// A simple rate limiter: `per_minute` tokens, refilled continuously.
struct Bucket {
    tokens: f64,
    per_minute: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: u32) -> Self {
        Bucket {
            tokens: f64::from(per_minute),
            per_minute: f64::from(per_minute),
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_minute / 60.0;
        self.tokens = (self.tokens + refill).min(self.per_minute);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn encode(msg: &RelayMessage<'_>) -> Option<Message> {
    msg.try_as_json().ok().map(|s| Message::Text(s.into()))
}

async fn connection(socket: WebSocket, relay: Relay) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Message>(1024);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut live = relay.live.subscribe();
    let mut subs: HashMap<SubscriptionId, Vec<Filter>> = HashMap::new();
    let mut bucket = Bucket::new(relay.limits.messages_per_minute);
    let send = |m: RelayMessage<'static>| {
        let encoded = encode(&m);
        let out = out.clone();
        async move {
            if let Some(m) = encoded {
                let _ = out.send(m).await;
            }
        }
    };
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let Some(Ok(msg)) = incoming else { break };
                let text = match msg {
                    Message::Text(t) => t.to_string(),
                    Message::Binary(_) => {
                        send(RelayMessage::notice("invalid: binary messages are not NIP-01")).await;
                        continue;
                    }
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                if !bucket.take() {
                    send(RelayMessage::notice("rate-limited: slow down")).await;
                    continue;
                }
                handle(&relay, &text, &mut subs, &send).await;
            }
            event = live.recv() => {
                match event {
                    Ok(event) => {
                        for (id, filters) in &subs {
                            if filters.iter().any(|f| crate::store::matches(f, &event)) {
                                send(RelayMessage::event(id.clone(), (*event).clone())).await;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        send(RelayMessage::notice(format!("error: this connection fell {n} live events behind; re-query to catch up"))).await;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

async fn handle<F, Fut>(
    relay: &Relay,
    text: &str,
    subs: &mut HashMap<SubscriptionId, Vec<Filter>>,
    send: &F,
) where
    F: Fn(RelayMessage<'static>) -> Fut,
    Fut: Future<Output = ()>,
{
    let msg = match ClientMessage::from_json(text) {
        Ok(m) => m,
        Err(e) => {
            send(RelayMessage::notice(format!(
                "invalid: not a NIP-01 message ({e})"
            )))
            .await;
            return;
        }
    };
    match msg {
        ClientMessage::Event(event) => {
            let event = event.into_owned();
            let id = event.id;
            let store = relay.store.clone();
            let e = event.clone();
            let outcome = tokio::task::spawn_blocking(move || store.save(&e)).await;
            let (ok, message) = match outcome {
                Ok(Ok(o)) => match o {
                    SaveOutcome::Stored | SaveOutcome::Replaced | SaveOutcome::Ephemeral => {
                        let _ = relay.live.send(Arc::new(event));
                        (true, String::new())
                    }
                    SaveOutcome::Duplicate => (true, "duplicate: already have this event".into()),
                    SaveOutcome::Obsolete => (
                        false,
                        "duplicate: a newer version of this event is stored".into(),
                    ),
                    SaveOutcome::Deleted => (false, "blocked: deleted by its author".into()),
                    SaveOutcome::Expired => (false, "invalid: this event has expired".into()),
                },
                Ok(Err(EventStoreError::Invalid(_))) => (
                    false,
                    "invalid: event id or signature does not verify".into(),
                ),
                Ok(Err(e)) => {
                    tracing::warn!(%id, error = %e, "storing an event failed");
                    (false, "error: could not store the event".into())
                }
                Err(e) => {
                    tracing::error!(%id, error = %e, "store task failed");
                    (false, "error: could not store the event".into())
                }
            };
            send(RelayMessage::ok(id, ok, message)).await;
        }
        ClientMessage::Req {
            subscription_id,
            filters,
        } => {
            let sub = subscription_id.into_owned();
            let l = &relay.limits;
            let refuse = |reason: String| RelayMessage::closed(sub.clone(), reason);
            if sub.as_str().len() > l.max_subid_length {
                send(refuse(format!(
                    "invalid: subscription id longer than {}",
                    l.max_subid_length
                )))
                .await;
                return;
            }
            if filters.len() > l.max_filters {
                send(refuse(format!(
                    "invalid: at most {} filters per REQ",
                    l.max_filters
                )))
                .await;
                return;
            }
            if !subs.contains_key(&sub) && subs.len() >= l.max_subscriptions {
                send(refuse(format!(
                    "blocked: at most {} open subscriptions",
                    l.max_subscriptions
                )))
                .await;
                return;
            }
            let mut filters: Vec<Filter> = filters
                .into_iter()
                .map(std::borrow::Cow::into_owned)
                .collect();
            for f in &mut filters {
                f.limit = Some(f.limit.unwrap_or(l.max_limit).min(l.max_limit));
            }
            let store = relay.store.clone();
            let query = filters.clone();
            match tokio::task::spawn_blocking(move || store.query(&query)).await {
                Ok(Ok(events)) => {
                    for e in events {
                        send(RelayMessage::event(sub.clone(), e)).await;
                    }
                    send(RelayMessage::eose(sub.clone())).await;
                    // The stored limit applies to the initial query only.
                    for f in &mut filters {
                        f.limit = None;
                    }
                    subs.insert(sub, filters);
                }
                Ok(Err(EventStoreError::FilterTooLarge { count })) => {
                    send(refuse(format!(
                        "invalid: a filter names {count} values; at most {}",
                        l.max_filter_values
                    )))
                    .await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "query failed");
                    send(refuse("error: the query failed".into())).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "query task failed");
                    send(refuse("error: the query failed".into())).await;
                }
            }
        }
        ClientMessage::Close(sub) => {
            subs.remove(sub.as_ref());
        }
        ClientMessage::Auth(_) => {
            send(RelayMessage::notice(
                "restricted: this relay does not use NIP-42 AUTH yet",
            ))
            .await;
        }
        _ => {
            send(RelayMessage::notice("invalid: unsupported message type")).await;
        }
    }
}
