//! The relay's server: NIP-01 over WebSocket and the NIP-11 information document, on one port
//! (axum on tokio). Every event goes through the [`EventStore`], which verifies it first.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use nostr::prelude::{
    ClientMessage, Event, Filter, Kind, PublicKey, RelayMessage, SubscriptionId, Timestamp,
};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use crate::blobs::{BlobStore, BlobStoreError, FsBlobStore};
use crate::blossom::Blossom;
use crate::config::{AuthPolicy, BlossomConfig, Config};
pub use crate::config::{ConnectionLimits, Limits};
use crate::store::{EventStore, EventStoreError, SaveOutcome, SqliteEventStore};

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
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
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
    /// `[payment]` is configured, but this build cannot take payments, or the wallet cannot
    /// be opened.
    #[error("[payment]: {0}")]
    Payment(String),
    /// The relay's key cannot be loaded or made, or its self-description signed.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
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
    live: Live,
    /// Events to store, with where to say how it went: the ingest thread batches them.
    ingest: mpsc::Sender<Ingest>,
    /// The relay-wide budget of bytes waiting to be stored ([`INGEST_BYTES`]).
    ingest_budget: Arc<tokio::sync::Semaphore>,
    /// Numbers connections, for the ingest thread's round-robin.
    next_connection: Arc<std::sync::atomic::AtomicU64>,
    /// Set when the server shuts down: open WebSockets close too.
    closing: tokio::sync::watch::Sender<bool>,
    limits: Limits,
    connections: ConnectionLimits,
    info: Info,
    auth: AuthPolicy,
    public_url: Option<String>,
    blossom: Option<Blossom>,
    /// The relay's own key (NIP-11 `pubkey` and `self`).
    identity: Option<PublicKey>,
    /// Its signed self-description, stored by [`Relay::from_config`].
    description: Option<Arc<Event>>,
    /// TLS on the listener, when configured.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Asked before blobs are stored or served (BUD-07).
    payment: Option<Arc<dyn crate::payment::PaymentGate>>,
    /// Answers the storage audits of the orders the relay's key took ([`crate::audits`]).
    audits: Option<crate::audits::AuditSettings>,
    /// Web pages: `/` for a browser and the paths no other route takes.
    pages: Option<Router>,
}

/// The largest event that goes to the ring of small live events.
const SMALL_LIVE_EVENT: usize = 8 << 10;

/// Live events on their way to subscribers, bounded in bytes: small events in one ring, large
/// ones in another, each holding at most half of [`Limits::live_buffer_bytes`].
#[derive(Clone)]
struct Live {
    small: broadcast::Sender<Arc<Event>>,
    large: broadcast::Sender<Arc<Event>>,
}

impl Live {
    fn new(limits: &Limits) -> Self {
        let half = limits.live_buffer_bytes / 2;
        let (small, _) = broadcast::channel((half / SMALL_LIVE_EVENT).clamp(16, 1 << 16));
        let (large, _) =
            broadcast::channel((half / limits.max_message_bytes.max(SMALL_LIVE_EVENT)).max(4));
        Live { small, large }
    }

    fn send(&self, event: Event) {
        let ring = if crate::store::json_len(&event) <= SMALL_LIVE_EVENT {
            &self.small
        } else {
            &self.large
        };
        let _ = ring.send(Arc::new(event));
    }
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
        let live = Live::new(&limits);
        let (closing, _) = tokio::sync::watch::channel(false);
        let ingest = start_ingest(store.clone());
        Relay {
            store,
            live,
            ingest,
            ingest_budget: Arc::new(tokio::sync::Semaphore::new(INGEST_BYTES)),
            next_connection: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            closing,
            limits,
            connections: ConnectionLimits::default(),
            info,
            auth: AuthPolicy::Off,
            public_url: None,
            tls: None,
            blossom: None,
            identity: None,
            description: None,
            payment: None,
            audits: None,
            pages: None,
        }
    }

    /// Answers the storage audits of every order `settings.keys` took, from this relay's blob
    /// store, while [`serve`] runs (see [`crate::audits`]). Without Blossom there are no
    /// shards to answer from, and nothing runs.
    #[must_use]
    pub fn with_audits(mut self, settings: crate::audits::AuditSettings) -> Self {
        self.audits = Some(settings);
        self
    }

    /// The auditor [`with_audits`](Self::with_audits) asked for, over this relay's stores,
    /// with its sweep interval; `None` without it or without Blossom. [`serve`] runs it; an
    /// embedder mounting [`router`](Self::router) in a server of its own can call
    /// [`Auditor::answer`](crate::audits::Auditor::answer) and
    /// [`Auditor::sweep`](crate::audits::Auditor::sweep) itself.
    pub fn auditor(&self) -> Option<(crate::audits::Auditor, Duration)> {
        let settings = self.audits.as_ref()?;
        let blobs = self.blossom.as_ref()?.store.clone();
        Some((
            crate::audits::Auditor::new(settings.keys.clone(), self.store.clone(), blobs),
            settings.sweep,
        ))
    }

    /// Asks `gate` before a blob is stored, served, listed or deleted: what it refuses is
    /// answered with `402 Payment Required` and the payment methods it names (BUD-07). See
    /// [`crate::payment`].
    #[must_use]
    pub fn with_payment_gate(mut self, gate: Arc<dyn crate::payment::PaymentGate>) -> Self {
        self.payment = Some(gate);
        self
    }

    /// The relay's signed self-description, when [`from_config`](Self::from_config) made one:
    /// what the binary publishes to the relays of `announce_to`.
    pub fn self_description(&self) -> Option<&Event> {
        self.description.as_deref()
    }

    /// The relay's own key, advertised in NIP-11 (`pubkey` and `self`): clients name the relay
    /// by it and pin it.
    #[must_use]
    pub fn with_identity(mut self, key: PublicKey) -> Self {
        self.identity = Some(key);
        self
    }

    /// Stores `event` (the relay's signed self-description, from
    /// [`identity::self_description`](crate::identity::self_description)) so that clients
    /// asking this relay for its key's relay list find it.
    ///
    /// # Errors
    /// [`ServeError::Events`] when the store refuses it.
    pub fn store_event(&self, event: &Event) -> Result<(), ServeError> {
        self.store.save(event)?;
        Ok(())
    }

    /// Applies `limits` to connections.
    #[must_use]
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> Self {
        if let Some(b) = &mut self.blossom {
            b.connections = limits.clone();
        }
        self.connections = limits;
        self
    }

    /// Requires NIP-42 AUTH as `policy` says.
    #[must_use]
    pub fn with_auth(mut self, policy: AuthPolicy) -> Self {
        self.auth = policy;
        self
    }

    /// Serves TLS (`wss://`, `https://`) with the certificate chain in PEM file `cert_file` and
    /// its private key in `key_file`.
    ///
    /// # Errors
    /// [`ServeError::Tls`] for a file that cannot be read, holds no certificate or key, or a key
    /// that does not match the certificate.
    pub fn with_tls(
        mut self,
        cert_file: &std::path::Path,
        key_file: &std::path::Path,
    ) -> Result<Self, ServeError> {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let fail = |path: &std::path::Path, e: &dyn std::fmt::Display| {
            ServeError::Tls(format!("{}: {e}", path.display()))
        };
        let chain = CertificateDer::pem_file_iter(cert_file)
            .map_err(|e| fail(cert_file, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(cert_file, &e))?;
        if chain.is_empty() {
            return Err(fail(cert_file, &"no PEM certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| fail(key_file, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServeError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| fail(key_file, &e))?;
        self.tls = Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        if let Some(b) = self.blossom.as_mut() {
            b.secure = true;
        }
        Ok(self)
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

    /// Serves `pages` beside the protocols on the same port: `GET /` from a browser (an
    /// `Accept` that names `text/html`, no WebSocket upgrade, not NIP-11's
    /// `application/nostr+json`) and every path no Nostr or Blossom route takes — a web explorer
    /// (`agigit-web`), say. The relay library knows nothing of what they show.
    #[must_use]
    pub fn with_pages(mut self, pages: Router) -> Self {
        self.pages = Some(pages);
        self
    }

    /// Serves `blobs` as Blossom on the same port, with `config`'s limits.
    #[must_use]
    pub fn with_blobs(mut self, blobs: Arc<dyn BlobStore>, config: BlossomConfig) -> Self {
        let public = self
            .public_url
            .as_deref()
            .and_then(|u| public_parts(u).ok());
        let connections = self.connections.clone();
        self.blossom = config.enabled.then(|| {
            let mut b = Blossom::new(blobs, config, public, connections);
            b.secure = self.tls.is_some();
            b
        });
        self
    }

    /// A relay as `config` says: SQLite in `config.data` (or PostgreSQL when a URL is set) and
    /// blobs in `config.data/blobs` (or the S3 bucket of `[blossom.s3]`), their owner index
    /// beside the events.
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
            Some(url) => Arc::new(crate::store::PostgresEventStore::connect_in_schema(
                url,
                config.postgres_schema.as_deref(),
            )?),
            #[cfg(not(feature = "postgres"))]
            Some(_) => return Err(ServeError::NoPostgres),
            None => Arc::new(SqliteEventStore::open(config.data.join("events.sqlite"))?),
        };
        let keys = crate::identity::load_or_create(&config.key_path())?;
        let mut relay = Relay::new(store, config.limits.clone(), Info::default())
            .with_auth(config.auth)
            .with_connection_limits(config.connections.clone())
            .with_identity(keys.public_key());
        let description =
            crate::identity::self_description(&keys, &config.advertised_urls(), Timestamp::now())?;
        relay.store_event(&description)?;
        relay.description = Some(Arc::new(description));
        if let Some(url) = &config.public_url {
            relay = relay.with_public_url(url)?;
        }
        if let Some(tls) = &config.tls {
            relay = relay.with_tls(&tls.cert_file, &tls.key_file)?;
        }
        if config.blossom.enabled {
            let retention = config.blossom.unclaimed_retention_secs;
            let local = config.data.join("blobs");
            // The owner index goes where the events are.
            let index = match &config.postgres {
                Some(url) => crate::blobs::IndexDb::Postgres {
                    url: url.clone(),
                    schema: config.postgres_schema.clone(),
                },
                None => crate::blobs::IndexDb::Local,
            };
            let blobs: Arc<dyn BlobStore> = match &config.blossom.s3 {
                None => {
                    Arc::new(FsBlobStore::open_with(&local, &index)?.with_retention(retention)?)
                }
                #[cfg(feature = "s3")]
                Some(s3) => Arc::new(
                    crate::s3::S3BlobStore::open_with(s3, &local, &index)?
                        .with_retention(retention)?,
                ),
                #[cfg(not(feature = "s3"))]
                Some(_) => {
                    return Err(BlobStoreError::Backend(
                        "[blossom.s3] is set, but this build has no S3 support: build agigit-relay with the `s3` feature".into(),
                    )
                    .into());
                }
            };
            relay = relay.with_blobs(blobs, config.blossom.clone());
        }
        if config.audits.answer {
            relay = relay.with_audits(crate::audits::AuditSettings {
                keys: keys.clone(),
                sweep: config.audits.sweep,
            });
        }
        if let Some(payment) = &config.payment {
            #[cfg(feature = "cashu")]
            {
                let gate = crate::cashu::CashuGate::open(
                    payment,
                    &config.data.join("wallet"),
                    keys.clone(),
                )?;
                relay = relay.with_payment_gate(Arc::new(gate));
            }
            #[cfg(not(feature = "cashu"))]
            {
                let _ = payment;
                return Err(ServeError::Payment(
                    "this build takes no payments: build agigit-relay with the `cashu` feature"
                        .into(),
                ));
            }
        }
        Ok(relay)
    }

    /// The HTTP and WebSocket routes, to mount in a larger server. Every answer may be read by
    /// any origin, and CORS preflights are answered (BUD-01, NIP-11), so that Blossom and Nostr
    /// clients in a browser can use the relay.
    pub fn router(self) -> Router {
        let blossom = self.blossom.clone().map(|mut b| {
            b.payment.clone_from(&self.payment);
            b
        });
        let pages = self.pages.clone();
        let nostr = Router::new().route("/", get(root)).with_state(self);
        let routes = match blossom {
            Some(b) => nostr.merge(crate::blossom::routes(b)),
            None => nostr,
        };
        let routes = match pages {
            Some(p) => routes.fallback_service(p),
            None => routes,
        };
        routes.layer(axum::middleware::from_fn(cors))
    }

    fn nip11(&self) -> serde_json::Value {
        let l = &self.limits;
        let key = self.identity.map(|k| k.to_hex());
        serde_json::json!({
            "name": self.info.name,
            "description": self.info.description,
            "pubkey": key,
            "self": key,
            "software": "https://github.com/agigit/agigit",
            "version": env!("CARGO_PKG_VERSION"),
            "supported_nips": [1, 9, 11, 40, 42, 50],
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

/// CORS: a preflight (`OPTIONS`) is answered for the methods and headers Blossom and NIP-11
/// use; every other answer is readable by any origin, with the headers a client needs exposed.
async fn cors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::{HeaderValue, Method};
    if request.method() == Method::OPTIONS {
        return (
            StatusCode::NO_CONTENT,
            [
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                (header::ACCESS_CONTROL_ALLOW_HEADERS, "Authorization, *"),
                (
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    "GET, HEAD, PUT, DELETE, OPTIONS",
                ),
                (header::ACCESS_CONTROL_MAX_AGE, "86400"),
            ],
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "X-Reason, Content-Range, Content-Length, ETag, Accept-Ranges, X-Cashu, X-Lightning",
        ),
    );
    response
}

/// Per-IP connection counts; a slot is given back when its guard drops.
#[derive(Clone, Default)]
struct PerIp(Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>);

struct IpSlot {
    table: PerIp,
    ip: std::net::IpAddr,
}

impl PerIp {
    fn acquire(&self, ip: std::net::IpAddr, max: usize) -> Option<IpSlot> {
        let mut table = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = table.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut table = self
            .table
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = table.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                table.remove(&self.ip);
            }
        }
    }
}

/// Serves `relay` on `listener` until `shutdown` completes, then closes gracefully: every open
/// connection is asked to finish (WebSockets are closed) and waited for, at most 10 s.
///
/// Each connection counts against [`ConnectionLimits::max_per_ip`] and
/// [`ConnectionLimits::max_total`] (one over is closed at once), and must send its request headers
/// within [`ConnectionLimits::header_timeout`].
pub async fn serve(
    listener: TcpListener,
    relay: Relay,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let limits = relay.connections.clone();
    let closing = relay.closing.clone();
    let tls = relay.tls.clone();
    if let Some((auditor, sweep)) = relay.auditor() {
        let live = relay.live.clone();
        tokio::spawn(crate::audits::run(
            Arc::new(auditor),
            sweep,
            relay.live.small.subscribe(),
            move |answer| live.send(answer),
            closing.subscribe(),
        ));
    }
    let app = relay.router();
    let per_ip = PerIp::default();
    let total = Arc::new(tokio::sync::Semaphore::new(limits.max_total.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let Some(slot) = per_ip.acquire(peer.ip(), limits.max_per_ip) else {
            tracing::debug!(%peer, "too many connections from this address");
            continue;
        };
        let Ok(permit) = total.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many connections");
            continue;
        };
        // Small frames (OK, EVENT, EOSE) must not wait for Nagle's algorithm and delayed ACKs.
        let _ = tcp.set_nodelay(true);
        let (tcp, linger) = match crate::linger::watch(tcp) {
            Ok(split) => split,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "could not prepare the connection");
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Some(limits.header_timeout));
        let mut stop = closing.subscribe();
        let tls = tls.clone();
        let handshake_timeout = limits.header_timeout;
        tasks.spawn(async move {
            let _held = (slot, permit);
            let io: Box<dyn crate::linger::Io> = match tls {
                None => Box::new(tcp),
                // The handshake, like request headers, must come within the header timeout.
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => Box::new(stream),
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let mut conn = Box::pin(
                builder
                    .serve_connection(TokioIo::new(io), service)
                    .with_upgrades(),
            );
            let stopped = async move {
                let _ = stop.wait_for(|closing| *closing).await;
            };
            let ended = tokio::select! {
                _ = conn.as_mut() => true,
                () = stopped => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
                    false
                }
            };
            // The connection (and its socket) dropped; one refused before its body was read
            // closes gently, so that the client reads why.
            drop(conn);
            if ended {
                linger.close().await;
            }
        });
    }
    drop(listener);
    // Upgraded WebSockets outlive their HTTP connection unless told to close.
    let _ = closing.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

async fn root(
    State(relay): State<Relay>,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> Response {
    let (mut parts, body) = req.into_parts();
    if let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &relay).await {
        let max = relay.limits.max_message_bytes;
        // NIP-42: without a configured public URL, AUTH events must name the address the client
        // reached this relay on.
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return ws
            .max_message_size(max)
            .max_frame_size(max)
            .on_upgrade(move |socket| connection(socket, relay, host))
            .into_response();
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let wants_info = accept.contains("application/nostr+json");
    if !wants_info
        && accept.contains("text/html")
        && let Some(pages) = relay.pages.clone()
    {
        use tower::ServiceExt as _;
        let request = axum::extract::Request::from_parts(parts, body);
        return match pages.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
    }
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

/// An event to store: the connection it came on, the event, the channel for its outcome, and its
/// share of the relay-wide budget of bytes waiting to be stored (given back once it is).
struct Ingest {
    connection: u64,
    event: Event,
    reply: tokio::sync::oneshot::Sender<Result<SaveOutcome, EventStoreError>>,
    _budget: tokio::sync::OwnedSemaphorePermit,
}

/// The most events committed together, and about the most bytes: a batch stays short, so that
/// an event waits for little more than one batch whatever others send.
const INGEST_BATCH: usize = 256;
const INGEST_BATCH_BYTES: usize = 1 << 20;

/// Bytes of events waiting to be stored, relay-wide: a connection waits for its share before
/// its EVENT is queued (and stops reading meanwhile).
const INGEST_BYTES: usize = 32 << 20;

/// Starts the thread that stores events. It takes whatever is queued and builds batches of up to
/// [`INGEST_BATCH`] events round-robin across connections — one from each in turn — so that a
/// connection that floods never makes another wait for all of its backlog; saves each batch with
/// [`EventStore::save_batch`] (one transaction on SQLite) and answers each event. It ends when
/// the last [`Relay`] clone is dropped.
fn start_ingest(store: Arc<dyn EventStore>) -> mpsc::Sender<Ingest> {
    let (tx, mut rx) = mpsc::channel::<Ingest>(4 * INGEST_BATCH);
    let spawned = std::thread::Builder::new()
        .name("agigit-relay-ingest".into())
        .spawn(move || {
            let mut queues: std::collections::BTreeMap<u64, std::collections::VecDeque<Ingest>> =
                std::collections::BTreeMap::new();
            loop {
                if queues.is_empty() {
                    let Some(first) = rx.blocking_recv() else {
                        return;
                    };
                    queues.entry(first.connection).or_default().push_back(first);
                }
                while let Ok(next) = rx.try_recv() {
                    queues.entry(next.connection).or_default().push_back(next);
                }
                let mut batch = Vec::with_capacity(INGEST_BATCH);
                let mut bytes = 0;
                let full = |batch: &Vec<Ingest>, bytes: usize| {
                    batch.len() == INGEST_BATCH || bytes >= INGEST_BATCH_BYTES
                };
                while !full(&batch, bytes) && !queues.is_empty() {
                    for queue in queues.values_mut() {
                        if full(&batch, bytes) {
                            break;
                        }
                        if let Some(item) = queue.pop_front() {
                            bytes += crate::store::json_len(&item.event);
                            batch.push(item);
                        }
                    }
                    queues.retain(|_, q| !q.is_empty());
                }
                let events: Vec<Event> = batch.iter().map(|i| i.event.clone()).collect();
                let outcomes = store.save_batch(&events);
                for (item, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = item.reply.send(outcome);
                }
            }
        });
    if let Err(e) = spawned {
        // Without the thread every save answers "error:"; the relay still serves reads.
        tracing::error!(error = %e, "cannot start the ingest thread");
    }
    tx
}

/// A rate limiter: `per_minute` tokens, refilled continuously; a connection over its rate is
/// made to wait.
struct Bucket {
    tokens: f64,
    per_minute: f64,
    last: Instant,
}

impl Bucket {
    /// A bucket holding a tenth of a minute's tokens to begin with: a new connection may burst
    /// that much, not a whole minute's worth at once.
    fn new(per_minute: u32) -> Self {
        Bucket {
            tokens: f64::from(per_minute) / 10.0,
            per_minute: f64::from(per_minute),
            last: Instant::now(),
        }
    }

    /// Takes `n` tokens; how long to wait before they would have been there (zero when they
    /// were). Tokens may go negative: the wait pays the debt.
    fn wait(&mut self, n: f64) -> Duration {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_minute / 60.0;
        self.tokens = (self.tokens + refill).min(self.per_minute);
        self.last = now;
        self.tokens -= n;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens * 60.0 / self.per_minute.max(1.0))
        }
    }
}

fn encode(msg: &RelayMessage<'_>) -> Option<Message> {
    msg.try_as_json().ok().map(|s| Message::Text(s.into()))
}

/// Bytes of messages one connection may have queued for its client and not yet written.
const OUT_BUFFER_BYTES: usize = 2 << 20;
/// Bytes of events one connection may have waiting to be stored.
const PENDING_BYTES: usize = 2 << 20;
/// Events per page of a subscription's stored events, and the page's byte cap.
const PAGE_EVENTS: usize = 256;
const PAGE_BYTES: usize = 1 << 20;

/// The way to a connection's client: a queue bounded in bytes, which the writer task drains. A
/// message waits at most the write timeout for room; a client that does not read is dropped.
#[derive(Clone)]
struct Outbox {
    queue: mpsc::Sender<(Message, tokio::sync::OwnedSemaphorePermit)>,
    room: Arc<tokio::sync::Semaphore>,
    timeout: Duration,
}

impl Outbox {
    /// Queues `message`; false when the client stopped reading (or went away).
    async fn send_raw(&self, message: Message) -> bool {
        let size = match &message {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 16,
        };
        let weight = u32::try_from(size.clamp(1, OUT_BUFFER_BYTES)).unwrap_or(u32::MAX);
        let queued = async {
            let permit = self.room.clone().acquire_many_owned(weight).await.ok()?;
            self.queue.send((message, permit)).await.ok()
        };
        matches!(
            tokio::time::timeout(self.timeout, queued).await,
            Ok(Some(()))
        )
    }

    async fn send(&self, message: RelayMessage<'_>) -> bool {
        match encode(&message) {
            Some(m) => self.send_raw(m).await,
            None => true,
        }
    }
}

/// An EVENT on its way to the store: its id, the store's answer, the event.
type Pending = std::pin::Pin<
    Box<
        dyn Future<
                Output = (
                    nostr::prelude::EventId,
                    Result<
                        Result<SaveOutcome, EventStoreError>,
                        tokio::sync::oneshot::error::RecvError,
                    >,
                    Event,
                    usize,
                ),
            > + Send,
    >,
>;

/// What the store's answer to an EVENT makes of its OK message (and whether it goes live).
fn ok_message(
    id: nostr::prelude::EventId,
    outcome: Result<Result<SaveOutcome, EventStoreError>, tokio::sync::oneshot::error::RecvError>,
) -> (bool, bool, String) {
    match outcome {
        Ok(Ok(o)) => match o {
            SaveOutcome::Stored | SaveOutcome::Replaced | SaveOutcome::Ephemeral => {
                (true, true, String::new())
            }
            SaveOutcome::Duplicate => (true, false, "duplicate: already have this event".into()),
            SaveOutcome::Obsolete => (
                false,
                false,
                "duplicate: a newer version of this event is stored".into(),
            ),
            SaveOutcome::Deleted => (false, false, "blocked: deleted by its author".into()),
            SaveOutcome::Expired => (false, false, "invalid: this event has expired".into()),
        },
        Ok(Err(EventStoreError::Invalid(_))) => (
            false,
            false,
            "invalid: event id or signature does not verify".into(),
        ),
        Ok(Err(e)) => {
            tracing::warn!(%id, error = %e, "storing an event failed");
            (false, false, "error: could not store the event".into())
        }
        Err(_) => {
            tracing::error!(%id, "the ingest thread stopped");
            (false, false, "error: could not store the event".into())
        }
    }
}

/// Sends a live event to the subscriptions it matches; false when the client stopped reading.
async fn deliver(
    event: Result<Arc<Event>, broadcast::error::RecvError>,
    session: &Session,
    out: &Outbox,
) -> Option<bool> {
    match event {
        Ok(event) => {
            for (id, filters) in &session.subs {
                if filters.iter().any(|f| crate::store::matches(f, &event))
                    && !out
                        .send(RelayMessage::event(id.clone(), (*event).clone()))
                        .await
                {
                    return Some(false);
                }
            }
            Some(true)
        }
        // Only a connection with subscriptions missed anything.
        Err(broadcast::error::RecvError::Lagged(_)) if session.subs.is_empty() => Some(true),
        Err(broadcast::error::RecvError::Lagged(n)) => Some(
            out.send(RelayMessage::notice(format!(
                "error: this connection fell {n} live events behind; re-query to catch up"
            )))
            .await,
        ),
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

async fn connection(socket: WebSocket, relay: Relay, host: Option<String>) {
    let limits = relay.connections.clone();
    let (mut sink, mut stream) = socket.split();
    let (queue, mut queued) = mpsc::channel::<(Message, tokio::sync::OwnedSemaphorePermit)>(1024);
    let out = Outbox {
        queue,
        room: Arc::new(tokio::sync::Semaphore::new(OUT_BUFFER_BYTES)),
        timeout: limits.write_timeout,
    };
    let write_timeout = limits.write_timeout;
    let writer = tokio::spawn(async move {
        let step = |r: Result<Result<(), axum::Error>, tokio::time::error::Elapsed>| {
            matches!(r, Ok(Ok(())))
        };
        // Queue what is ready, then flush once: one write for a burst of OKs or EVENTs. Each
        // write must finish within the timeout: a client that does not read is dropped.
        'outer: while let Some((m, _room)) = queued.recv().await {
            if !step(tokio::time::timeout(write_timeout, sink.feed(m)).await) {
                break;
            }
            while let Ok((m, _room)) = queued.try_recv() {
                if !step(tokio::time::timeout(write_timeout, sink.feed(m)).await) {
                    break 'outer;
                }
            }
            if !step(tokio::time::timeout(write_timeout, sink.flush()).await) {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    });
    let mut live_small = relay.live.small.subscribe();
    let mut live_large = relay.live.large.subscribe();
    let mut closing = relay.closing.subscribe();
    let mut session = Session {
        subs: HashMap::new(),
        challenge: new_challenge(),
        authed: Vec::new(),
        host,
        id: relay
            .next_connection
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    };
    let mut bucket = Bucket::new(relay.limits.messages_per_minute);
    let mut bytes = Bucket::new(relay.limits.bytes_per_minute);
    let mut pending = futures_util::stream::FuturesUnordered::<Pending>::new();
    let mut pending_bytes = 0usize;
    let mut ping = tokio::time::interval(limits.ping_interval.max(Duration::from_millis(10)));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut heard = Instant::now();
    // NIP-42: where AUTH is required, every connection gets its challenge up front.
    let mut alive = relay.auth == AuthPolicy::Off
        || out
            .send(RelayMessage::auth(session.challenge.clone()))
            .await;
    while alive {
        let room = pending.len() < relay.limits.max_pending_events && pending_bytes < PENDING_BYTES;
        tokio::select! {
            incoming = stream.next(), if room => {
                let Some(Ok(msg)) = incoming else { break };
                heard = Instant::now();
                let text = match msg {
                    Message::Text(t) => t.to_string(),
                    Message::Binary(_) => {
                        alive = out.send(RelayMessage::notice("invalid: binary messages are not NIP-01")).await;
                        continue;
                    }
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                // Over its rate, a connection is read more slowly (it waits here, and its
                // socket fills): throttled, not served and dropped.
                let wait = bucket.wait(1.0).max(bytes.wait(text.len() as f64));
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                alive = handle(&relay, &text, &mut session, &out, &mut pending, &mut pending_bytes).await;
            }
            Some((id, outcome, event, size)) = pending.next(), if !pending.is_empty() => {
                pending_bytes -= size;
                let (ok, live, message) = ok_message(id, outcome);
                if live {
                    relay.live.send(event);
                }
                alive = out.send(RelayMessage::ok(id, ok, message)).await;
            }
            _ = ping.tick() => {
                // A client that has sent nothing, not even a pong, for two intervals is gone.
                if heard.elapsed() > 2 * limits.ping_interval {
                    tracing::debug!("closing an unresponsive connection");
                    break;
                }
                alive = out.send_raw(Message::Ping(Vec::new().into())).await;
            }
            _ = closing.changed() => break,
            event = live_small.recv() => match deliver(event, &session, &out).await {
                Some(ok) => alive = ok,
                None => break,
            },
            event = live_large.recv() => match deliver(event, &session, &out).await {
                Some(ok) => alive = ok,
                None => break,
            },
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
    /// The `Host` the client reached the relay on.
    host: Option<String>,
    /// This connection's number.
    id: u64,
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
/// The scheme (`ws` or `wss`; `http`/`https` map to them), lowercase host and port of a URL,
/// the port defaulting to the scheme's.
pub(crate) fn endpoint(url: &str) -> Option<(&'static str, String, u16)> {
    let (scheme, rest, default) = if let Some(r) = url.strip_prefix("wss://") {
        ("wss", r, 443)
    } else if let Some(r) = url.strip_prefix("ws://") {
        ("ws", r, 80)
    } else if let Some(r) = url.strip_prefix("https://") {
        ("wss", r, 443)
    } else if let Some(r) = url.strip_prefix("http://") {
        ("ws", r, 80)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = split_authority(authority)?;
    Some((scheme, host, port.unwrap_or(default)))
}

/// `host[:port]` (an IPv6 host in brackets) as its lowercase host and its port, if any.
pub(crate) fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (format!("[{host}]"), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains('@') {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Checks a NIP-42 authentication event; the reason (with its prefix) when it does not pass.
/// Its `relay` tag must name this relay: its public URL when one is configured, else the
/// address (`Host`) the client reached it on — scheme, host and port.
fn check_auth(
    relay: &Relay,
    challenge: &str,
    event: &Event,
    host: Option<&str>,
) -> Result<(), String> {
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
    let ours = match (&relay.public_url, host) {
        (Some(public), _) => public.clone(),
        (None, Some(host)) if relay.tls.is_some() => format!("wss://{host}"),
        (None, Some(host)) => format!("ws://{host}"),
        (None, None) => {
            return Err("invalid: the request named no Host to check the relay tag against".into());
        }
    };
    let expected = endpoint(&ours);
    if expected.is_none() || expected != endpoint(&relay_tag) {
        return Err(format!(
            "invalid: the AUTH event is for {relay_tag}, not this relay ({ours})"
        ));
    }
    Ok(())
}

/// Handles one client message; false when the client stopped reading.
async fn handle(
    relay: &Relay,
    text: &str,
    session: &mut Session,
    out: &Outbox,
    pending: &mut futures_util::stream::FuturesUnordered<Pending>,
    pending_bytes: &mut usize,
) -> bool {
    let msg = match ClientMessage::from_json(text) {
        Ok(m) => m,
        Err(e) => {
            return out
                .send(RelayMessage::notice(format!(
                    "invalid: not a NIP-01 message ({e})"
                )))
                .await;
        }
    };
    match msg {
        ClientMessage::Event(event) => {
            let event = event.into_owned();
            let id = event.id;
            if relay.auth.for_writes() && session.authed.is_empty() {
                return out
                    .send(RelayMessage::ok(
                        id,
                        false,
                        "auth-required: this relay accepts events only from authenticated clients (NIP-42)",
                    ))
                    .await
                    && out
                        .send(RelayMessage::auth(session.challenge.clone()))
                        .await;
            }
            // The ingest thread commits events in batches; the OK goes out when this one is
            // stored, while this connection reads on (pipelined clients are not serialized) —
            // up to the pending caps, past which the connection stops reading.
            let size = text.len();
            let weight = u32::try_from(size.clamp(1, INGEST_BYTES)).unwrap_or(u32::MAX);
            let Ok(budget) = relay.ingest_budget.clone().acquire_many_owned(weight).await else {
                return false;
            };
            let (reply, stored) = tokio::sync::oneshot::channel();
            let item = Ingest {
                connection: session.id,
                event: event.clone(),
                reply,
                _budget: budget,
            };
            if relay.ingest.send(item).await.is_err() {
                return out
                    .send(RelayMessage::ok(
                        id,
                        false,
                        "error: the relay is shutting down",
                    ))
                    .await;
            }
            *pending_bytes += size;
            pending.push(Box::pin(async move { (id, stored.await, event, size) }));
            true
        }
        ClientMessage::Req {
            subscription_id,
            filters,
        } => {
            let sub = subscription_id.into_owned();
            let l = &relay.limits;
            let refuse = |reason: String| RelayMessage::closed(sub.clone(), reason);
            if relay.auth.for_reads() && session.authed.is_empty() {
                return out
                    .send(refuse(
                        "auth-required: this relay serves subscriptions only to authenticated clients (NIP-42)".into(),
                    ))
                    .await
                    && out
                        .send(RelayMessage::auth(session.challenge.clone()))
                        .await;
            }
            if sub.as_str().len() > l.max_subid_length {
                return out
                    .send(refuse(format!(
                        "invalid: subscription id longer than {}",
                        l.max_subid_length
                    )))
                    .await;
            }
            if filters.len() > l.max_filters {
                return out
                    .send(refuse(format!(
                        "invalid: at most {} filters per REQ",
                        l.max_filters
                    )))
                    .await;
            }
            if !session.subs.contains_key(&sub) && session.subs.len() >= l.max_subscriptions {
                return out
                    .send(refuse(format!(
                        "blocked: at most {} open subscriptions",
                        l.max_subscriptions
                    )))
                    .await;
            }
            let mut filters: Vec<Filter> = filters
                .into_iter()
                .map(std::borrow::Cow::into_owned)
                .collect();
            if let Err(e) = crate::store::check_filters(&filters) {
                let EventStoreError::FilterTooLarge { count } = e else {
                    return out.send(refuse("error: the query failed".into())).await;
                };
                return out
                    .send(refuse(format!(
                        "invalid: a filter names {count} values; at most {}",
                        l.max_filter_values
                    )))
                    .await;
            }
            match stream_stored(relay, &sub, &filters, out).await {
                Ok(true) => {}
                Ok(false) => return false,
                Err(e) => {
                    tracing::warn!(error = %e, "query failed");
                    return out.send(refuse("error: the query failed".into())).await;
                }
            }
            if !out.send(RelayMessage::eose(sub.clone())).await {
                return false;
            }
            // The stored limit applies to the initial query only.
            for f in &mut filters {
                f.limit = None;
            }
            session.subs.insert(sub, filters);
            true
        }
        ClientMessage::Close(sub) => {
            session.subs.remove(sub.as_ref());
            true
        }
        ClientMessage::Auth(event) => {
            let event = event.into_owned();
            match check_auth(relay, &session.challenge, &event, session.host.as_deref()) {
                Ok(()) => {
                    tracing::debug!(pubkey = %event.pubkey, "client authenticated");
                    if !session.authed.contains(&event.pubkey) {
                        session.authed.push(event.pubkey);
                    }
                    out.send(RelayMessage::ok(event.id, true, "")).await
                }
                Err(reason) => out.send(RelayMessage::ok(event.id, false, reason)).await,
            }
        }
        _ => {
            out.send(RelayMessage::notice("invalid: unsupported message type"))
                .await
        }
    }
}

/// Streams the stored events matching `filters` to the client, page by page (each page read off
/// the async threads), each event once, each filter's `limit` (capped by the relay's) its own:
/// memory holds one page, whatever the result's size. `Ok(false)` when the client stopped
/// reading. [`crate::store::stored_for_req`] collects the same sequence.
async fn stream_stored(
    relay: &Relay,
    sub: &SubscriptionId,
    filters: &[Filter],
    out: &Outbox,
) -> Result<bool, EventStoreError> {
    let mut sent = std::collections::HashSet::new();
    for filter in filters {
        let mut pages = crate::store::Pages::new(
            relay.store.clone(),
            filter.clone(),
            relay.limits.max_limit,
            PAGE_EVENTS,
            PAGE_BYTES,
        );
        loop {
            let (back, page) = tokio::task::spawn_blocking(move || {
                let page = pages.next_page();
                (pages, page)
            })
            .await
            .map_err(|e| EventStoreError::Batch(format!("the query task failed: {e}")))?;
            pages = back;
            let Some(page) = page? else { break };
            for e in page {
                if sent.insert(e.id) && !out.send(RelayMessage::event(sub.clone(), e)).await {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}
