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
use axum::serve::ListenerExt as _;
use futures_util::{SinkExt, StreamExt};
use nostr::prelude::{
    ClientMessage, Event, Filter, Kind, PublicKey, RelayMessage, SubscriptionId, Timestamp,
};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use crate::blobs::{BlobStore, BlobStoreError, FsBlobStore};
use crate::blossom::Blossom;
use crate::config::{AuthPolicy, BlossomConfig, Config};
use crate::store::{EventStore, EventStoreError, MAX_FILTER_VALUES, SaveOutcome, SqliteEventStore};

/// A relay could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The data directory cannot be created.
    #[error("cannot create the data directory {path}: {source}")]
    Data {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The event store cannot be opened.
    #[error("event store: {0}")]
    Events(#[from] EventStoreError),
    /// The blob store cannot be opened.
    #[error("blob store: {0}")]
    Blobs(#[from] BlobStoreError),
    /// The public URL is malformed.
    #[error("public_url {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A PostgreSQL URL is configured, but this build has no PostgreSQL support.
    #[error(
        "a PostgreSQL URL is configured, but agigit-relay was built without the `postgres` feature"
    )]
    NoPostgres,
}

/// The host (lowercase, no port) and the HTTP base URL of a `ws://` / `wss://` URL.
fn public_parts(url: &str) -> Result<(String, String), ServeError> {
    let bad = |reason| ServeError::Url {
        url: url.to_owned(),
        reason,
    };
    let (scheme, rest) = if let Some(r) = url.strip_prefix("wss://") {
        ("https", r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        ("http", r)
    } else {
        return Err(bad("must start with ws:// or wss://"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    Ok((host, format!("{scheme}://{authority}")))
}

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

/// A relay: an event store, the live-event fan-out, limits, its NIP-42 policy, its description,
/// and optionally a blob store served as Blossom on the same port.
#[derive(Clone)]
pub struct Relay {
    store: Arc<dyn EventStore>,
    live: broadcast::Sender<Arc<Event>>,
    /// Events to store, with where to say how it went: the ingest thread batches them.
    ingest: mpsc::Sender<Ingest>,
    /// Set when the server shuts down: open WebSockets close too.
    closing: tokio::sync::watch::Sender<bool>,
    limits: Limits,
    info: Info,
    auth: AuthPolicy,
    public_url: Option<String>,
    blossom: Option<Blossom>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("limits", &self.limits)
            .field("info", &self.info)
            .field("auth", &self.auth)
            .field("public_url", &self.public_url)
            .field("blossom", &self.blossom.as_ref().map(|b| &b.config))
            .finish()
    }
}

impl Relay {
    /// A relay over `store`, with NIP-42 off and no Blossom.
    pub fn new(store: Arc<dyn EventStore>, limits: Limits, info: Info) -> Self {
        let (live, _) = broadcast::channel(4096);
        let (closing, _) = tokio::sync::watch::channel(false);
        let ingest = start_ingest(store.clone());
        Relay {
            store,
            live,
            ingest,
            closing,
            limits,
            info,
            auth: AuthPolicy::Off,
            public_url: None,
            blossom: None,
        }
    }

    /// Requires NIP-42 AUTH as `policy` says.
    #[must_use]
    pub fn with_auth(mut self, policy: AuthPolicy) -> Self {
        self.auth = policy;
        self
    }

    /// The relay's public URL (`ws://host[:port]` or `wss://…`): NIP-42 `relay` tags must name
    /// its host, Blossom tokens' `server` tags too, and blob descriptors use it.
    ///
    /// # Errors
    /// [`ServeError::Url`] when it is not a `ws://` or `wss://` URL with a host.
    pub fn with_public_url(mut self, url: &str) -> Result<Self, ServeError> {
        public_parts(url)?;
        self.public_url = Some(url.to_owned());
        if let Some(b) = &mut self.blossom {
            b.public = Some(public_parts(url)?);
        }
        Ok(self)
    }

    /// Serves `blobs` as Blossom on the same port, with `config`'s limits.
    #[must_use]
    pub fn with_blobs(mut self, blobs: Arc<dyn BlobStore>, config: BlossomConfig) -> Self {
        let public = self
            .public_url
            .as_deref()
            .and_then(|u| public_parts(u).ok());
        self.blossom = config.enabled.then(|| Blossom {
            store: blobs,
            config,
            public,
        });
        self
    }

    /// A relay as `config` says: SQLite in `config.data` (or PostgreSQL when a URL is set) and
    /// blobs in `config.data/blobs`.
    ///
    /// # Errors
    /// [`ServeError`] when a store cannot be opened or the public URL is malformed.
    pub fn from_config(config: &Config) -> Result<Self, ServeError> {
        std::fs::create_dir_all(&config.data).map_err(|source| ServeError::Data {
            path: config.data.clone(),
            source,
        })?;
        let store: Arc<dyn EventStore> = match &config.postgres {
            #[cfg(feature = "postgres")]
            Some(url) => Arc::new(crate::store::PostgresEventStore::connect(url)?),
            #[cfg(not(feature = "postgres"))]
            Some(_) => return Err(ServeError::NoPostgres),
            None => Arc::new(SqliteEventStore::open(config.data.join("events.sqlite"))?),
        };
        let mut relay =
            Relay::new(store, config.limits.clone(), Info::default()).with_auth(config.auth);
        if let Some(url) = &config.public_url {
            relay = relay.with_public_url(url)?;
        }
        if config.blossom.enabled {
            let blobs = FsBlobStore::open(config.data.join("blobs"))?;
            relay = relay.with_blobs(Arc::new(blobs), config.blossom.clone());
        }
        Ok(relay)
    }

    /// The HTTP and WebSocket routes, to mount in a larger server.
    pub fn router(self) -> Router {
        let blossom = self.blossom.clone();
        let nostr = Router::new().route("/", get(root)).with_state(self);
        match blossom {
            Some(b) => nostr.merge(crate::blossom::routes(b)),
            None => nostr,
        }
    }

    fn nip11(&self) -> serde_json::Value {
        let l = &self.limits;
        serde_json::json!({
            "name": self.info.name,
            "description": self.info.description,
            "software": "https://github.com/agigit/agigit",
            "version": env!("CARGO_PKG_VERSION"),
            "supported_nips": [1, 9, 11, 40, 42],
            "limitation": {
                "max_message_length": l.max_message_bytes,
                "max_subscriptions": l.max_subscriptions,
                "max_filters": l.max_filters,
                "max_limit": l.max_limit,
                "max_subid_length": l.max_subid_length,
                "auth_required": self.auth.for_reads(),
                "payment_required": false,
                "restricted_writes": self.auth.for_writes()
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
    let closing = relay.closing.clone();
    let shutdown = async move {
        shutdown.await;
        // Upgraded WebSockets outlive axum's graceful shutdown unless told to close.
        let _ = closing.send(true);
    };
    let app = relay
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    // Small frames (OK, EVENT, EOSE) must not wait for Nagle's algorithm and delayed ACKs.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
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

/// An event to store and the channel for its outcome.
type Ingest = (
    Event,
    tokio::sync::oneshot::Sender<Result<SaveOutcome, EventStoreError>>,
);

/// The most events committed together.
const INGEST_BATCH: usize = 256;

/// Starts the thread that stores events: it takes whatever is queued (up to [`INGEST_BATCH`]),
/// saves it with [`EventStore::save_batch`] (one transaction on SQLite) and answers each. It
/// ends when the last [`Relay`] clone is dropped.
fn start_ingest(store: Arc<dyn EventStore>) -> mpsc::Sender<Ingest> {
    let (tx, mut rx) = mpsc::channel::<Ingest>(4 * INGEST_BATCH);
    let spawned = std::thread::Builder::new()
        .name("agigit-relay-ingest".into())
        .spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < INGEST_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (events, replies): (Vec<Event>, Vec<_>) = batch.into_iter().unzip();
                let outcomes = store.save_batch(&events);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
        });
    if let Err(e) = spawned {
        // Without the thread every save answers "error:"; the relay still serves reads.
        tracing::error!(error = %e, "cannot start the ingest thread");
    }
    tx
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
        // Queue what is ready, then flush once: one write for a burst of OKs or EVENTs.
        'outer: while let Some(m) = out_rx.recv().await {
            if sink.feed(m).await.is_err() {
                break;
            }
            while let Ok(m) = out_rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    break 'outer;
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut live = relay.live.subscribe();
    let mut closing = relay.closing.subscribe();
    let mut session = Session {
        subs: HashMap::new(),
        challenge: new_challenge(),
        authed: Vec::new(),
    };
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
    // NIP-42: where AUTH is required, every connection gets its challenge up front.
    if relay.auth != AuthPolicy::Off {
        send(RelayMessage::auth(session.challenge.clone())).await;
    }
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
                handle(&relay, &text, &mut session, &out, &send).await;
            }
            _ = closing.changed() => break,
            event = live.recv() => {
                match event {
                    Ok(event) => {
                        for (id, filters) in &session.subs {
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

/// One connection's state.
struct Session {
    subs: HashMap<SubscriptionId, Vec<Filter>>,
    /// The NIP-42 challenge sent to this connection.
    challenge: String,
    /// The keys this connection authenticated as.
    authed: Vec<PublicKey>,
}

/// 16 random bytes, hex.
fn new_challenge() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness, fall back to the clock: a challenge must differ per connection, and
    // it is only ever compared for equality.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How far a NIP-42 event's `created_at` may be from now.
const AUTH_WINDOW_SECS: u64 = 600;

/// Checks a NIP-42 authentication event; the reason (with its prefix) when it does not pass.
fn check_auth(relay: &Relay, challenge: &str, event: &Event) -> Result<(), String> {
    if event.kind != Kind::Authentication {
        return Err(format!(
            "invalid: AUTH takes a kind 22242 event, not kind {}",
            event.kind
        ));
    }
    if event.verify().is_err() {
        return Err("invalid: event id or signature does not verify".into());
    }
    let now = Timestamp::now().as_secs();
    if event.created_at.as_secs().abs_diff(now) > AUTH_WINDOW_SECS {
        return Err(format!(
            "invalid: the AUTH event must be dated within {AUTH_WINDOW_SECS} s of now"
        ));
    }
    let tag = |name: &str| {
        event
            .tags
            .iter()
            .find(|t| t.kind() == name)
            .and_then(|t| t.content().map(str::to_owned))
    };
    if tag("challenge").as_deref() != Some(challenge) {
        return Err("invalid: the AUTH event does not carry this connection's challenge".into());
    }
    let Some(relay_tag) = tag("relay") else {
        return Err("invalid: the AUTH event has no relay tag".into());
    };
    if let Some(public) = &relay.public_url {
        let ours = public_parts(public).map(|(host, _)| host).ok();
        let theirs = public_parts(&relay_tag).map(|(host, _)| host).ok();
        if ours.is_none() || ours != theirs {
            return Err(format!(
                "invalid: the AUTH event is for {relay_tag}, not this relay ({public})"
            ));
        }
    }
    Ok(())
}

async fn handle<F, Fut>(
    relay: &Relay,
    text: &str,
    session: &mut Session,
    out: &mpsc::Sender<Message>,
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
            if relay.auth.for_writes() && session.authed.is_empty() {
                send(RelayMessage::ok(
                    id,
                    false,
                    "auth-required: this relay accepts events only from authenticated clients (NIP-42)",
                ))
                .await;
                send(RelayMessage::auth(session.challenge.clone())).await;
                return;
            }
            // The ingest thread commits events in batches; the OK goes out when this one is
            // stored, while this connection reads on (pipelined clients are not serialized).
            let (reply, stored) = tokio::sync::oneshot::channel();
            if relay.ingest.send((event.clone(), reply)).await.is_err() {
                send(RelayMessage::ok(
                    id,
                    false,
                    "error: the relay is shutting down",
                ))
                .await;
                return;
            }
            let (relay, out) = (relay.clone(), out.clone());
            tokio::spawn(async move {
                let (ok, message) = match stored.await {
                    Ok(Ok(o)) => match o {
                        SaveOutcome::Stored | SaveOutcome::Replaced | SaveOutcome::Ephemeral => {
                            let _ = relay.live.send(Arc::new(event));
                            (true, String::new())
                        }
                        SaveOutcome::Duplicate => {
                            (true, "duplicate: already have this event".into())
                        }
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
                    Err(_) => {
                        tracing::error!(%id, "the ingest thread stopped");
                        (false, "error: could not store the event".into())
                    }
                };
                if let Some(m) = encode(&RelayMessage::ok(id, ok, message)) {
                    let _ = out.send(m).await;
                }
            });
        }
        ClientMessage::Req {
            subscription_id,
            filters,
        } => {
            let sub = subscription_id.into_owned();
            let l = &relay.limits;
            let refuse = |reason: String| RelayMessage::closed(sub.clone(), reason);
            if relay.auth.for_reads() && session.authed.is_empty() {
                send(refuse(
                    "auth-required: this relay serves subscriptions only to authenticated clients (NIP-42)".into(),
                ))
                .await;
                send(RelayMessage::auth(session.challenge.clone())).await;
                return;
            }
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
            if !session.subs.contains_key(&sub) && session.subs.len() >= l.max_subscriptions {
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
                    session.subs.insert(sub, filters);
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
            session.subs.remove(sub.as_ref());
        }
        ClientMessage::Auth(event) => {
            let event = event.into_owned();
            match check_auth(relay, &session.challenge, &event) {
                Ok(()) => {
                    tracing::debug!(pubkey = %event.pubkey, "client authenticated");
                    if !session.authed.contains(&event.pubkey) {
                        session.authed.push(event.pubkey);
                    }
                    send(RelayMessage::ok(event.id, true, "")).await;
                }
                Err(reason) => send(RelayMessage::ok(event.id, false, reason)).await,
            }
        }
        _ => {
            send(RelayMessage::notice("invalid: unsupported message type")).await;
        }
    }
}
