//! A pool of Nostr relays (NIP-01 over WebSocket) with fetch and push roles.
//!
//! Each relay has a task of its own that connects, reconnects with exponential backoff,
//! re-sends open subscriptions and unanswered events after a reconnect, and answers NIP-42
//! challenges when the pool has a signer. Every incoming event is verified (id, signature) and
//! checked against the subscription's filters; anything else is dropped with a logged reason.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nostr::prelude::{
    ClientMessage, Event, EventId, Filter, Kind, MatchEventOptions, PublicKey, RelayMessage,
    SubscriptionId, Tag, Timestamp, UnsignedEvent,
};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::SharedSigner;
use crate::error::{NetError, PublishReport, RelayOutcome};
use crate::transport::dedup_newest_first;

/// What a relay is used for (the seed's `relay add --fetch/--push`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// Read events from it.
    pub fetch: bool,
    /// Publish events to it.
    pub push: bool,
}

impl Roles {
    /// Both fetch and push.
    pub const BOTH: Roles = Roles {
        fetch: true,
        push: true,
    };
    /// Fetch only.
    pub const FETCH: Roles = Roles {
        fetch: true,
        push: false,
    };
    /// Push only.
    pub const PUSH: Roles = Roles {
        fetch: false,
        push: true,
    };
}

/// Timeouts and backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    /// Opening a WebSocket.
    pub connect_timeout: Duration,
    /// Waiting for a relay's `OK`.
    pub publish_timeout: Duration,
    /// Waiting for a relay's `EOSE`.
    pub query_timeout: Duration,
    /// Once one relay has sent `EOSE`, how much longer a query waits for the others.
    pub eose_grace: Duration,
    /// First wait before reconnecting.
    pub backoff_min: Duration,
    /// Longest wait between reconnects.
    pub backoff_max: Duration,
    /// The largest WebSocket message (and frame) a relay may send; a longer one closes the
    /// connection.
    pub max_message_bytes: usize,
    /// The most events one relay may return for one query.
    pub max_query_events: usize,
    /// The most bytes (of event JSON) one relay may return for one query.
    pub max_query_bytes: usize,
    /// What `wss://` relays must prove (Mozilla's roots and any extra CA).
    pub tls: crate::tls::TlsConfig,
}

impl Default for PoolOptions {
    /// Relays' own limits are far lower: agigit-relay takes messages of at most 512 KiB and
    /// returns at most 5000 events per filter.
    fn default() -> Self {
        PoolOptions {
            connect_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(15),
            query_timeout: Duration::from_secs(15),
            eose_grace: Duration::from_secs(3),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            max_message_bytes: 2 << 20,
            max_query_events: 100_000,
            max_query_bytes: 128 << 20,
            tls: crate::tls::TlsConfig::default(),
        }
    }
}

/// A relay's state, as [`RelayPool::relays`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayStatus {
    /// Its URL.
    pub url: String,
    /// Its roles.
    pub roles: Roles,
    /// Whether a WebSocket is open now.
    pub connected: bool,
    /// Successful connections so far.
    pub connects: u64,
    /// The last connection error, if any.
    pub last_error: Option<String>,
    /// Events dropped because they did not verify or match.
    pub dropped_events: u64,
    /// The key the relay is pinned to ([`RelayPool::add_pinned_relay`]): before every
    /// connection its NIP-11 document must name it.
    pub key: Option<PublicKey>,
}

enum Command {
    Publish {
        event: Event,
        reply: oneshot::Sender<Result<String, String>>,
    },
    Req {
        id: String,
        filters: Vec<Filter>,
        events: mpsc::Sender<SubMsg>,
    },
    Close {
        id: String,
    },
}

#[derive(Debug)]
enum SubMsg {
    Event(Box<Event>),
    Eose,
    Closed(String),
}

struct RelayHandle {
    url: String,
    roles: Roles,
    commands: mpsc::Sender<Command>,
    status: Arc<Mutex<RelayStatus>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A set of relays, each with fetch and/or push roles.
///
/// Cheap to clone; the relays' tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct RelayPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    relays: RwLock<Vec<RelayHandle>>,
    options: PoolOptions,
    signer: Option<SharedSigner>,
    next_sub: AtomicU64,
}

impl std::fmt::Debug for RelayPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayPool")
            .field("relays", &self.relays())
            .field("options", &self.inner.options)
            .finish()
    }
}

/// Checks a relay URL: `ws://host[:port][/path]` or `wss://…`. A `ws://` relay that is not on
/// this machine is used with a warning: what goes to it can be read and changed on the way
/// (events stay signed, blobs stay hashed, but a private repository's envelope and timing do
/// not hide).
///
/// # Errors
/// [`NetError::Url`] for another scheme or no host.
pub fn check_relay_url(url: &str) -> Result<(), NetError> {
    let bad = |reason: &str| NetError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if !url.starts_with("ws://") && !url.starts_with("wss://") {
        return Err(bad(
            "a relay URL starts with wss:// (or ws:// on this machine)",
        ));
    }
    if crate::tls::endpoint(url).is_none() {
        return Err(bad("no host, or a port that is not a number"));
    }
    if crate::tls::plaintext_off_machine(url) {
        tracing::warn!(relay = %url, "a relay without TLS (ws://) off this machine: use wss://");
    }
    Ok(())
}

impl RelayPool {
    /// An empty pool; `signer` (if any) answers NIP-42 challenges. It may be a key held
    /// elsewhere (a NIP-46 bunker, a hardware device): it is called off the async threads, and
    /// what it returns is verified before it is sent.
    pub fn new(options: PoolOptions, signer: Option<SharedSigner>) -> Self {
        RelayPool {
            inner: Arc::new(PoolInner {
                relays: RwLock::new(Vec::new()),
                options,
                signer,
                next_sub: AtomicU64::new(0),
            }),
        }
    }

    /// Adds a relay (or widens a known relay's roles) and starts connecting to it, on the tokio
    /// runtime of the caller.
    ///
    /// # Errors
    /// [`NetError::Url`] for a URL the pool cannot use; [`NetError::Connection`] when called
    /// outside a tokio runtime (enter one first: `runtime.enter()` or inside `block_on`).
    pub fn add_relay(&self, url: &str, roles: Roles) -> Result<(), NetError> {
        self.add_pinned_relay(url, roles, None)
    }

    /// As [`add_relay`](Self::add_relay), pinned to `key` when given: before every connection
    /// the pool asks the relay for its NIP-11 document and connects only when it names `key`
    /// (`self`, else `pubkey`). A relay that names another key is not used: what is published
    /// to it fails at once with [`NetError::KeyChanged`]'s message, and queries go to the
    /// others. A known relay keeps its first pin.
    ///
    /// # Errors
    /// As [`add_relay`](Self::add_relay).
    pub fn add_pinned_relay(
        &self,
        url: &str,
        roles: Roles,
        key: Option<PublicKey>,
    ) -> Result<(), NetError> {
        check_relay_url(url)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NetError::Connection {
            server: url.to_owned(),
            reason: "the relay pool needs a tokio runtime: call add_relay inside one".to_owned(),
        })?;
        let url = url.trim_end_matches('/').to_owned();
        let mut relays = self
            .inner
            .relays
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = relays.iter_mut().find(|r| r.url == url) {
            r.roles.fetch |= roles.fetch;
            r.roles.push |= roles.push;
            if let Ok(mut s) = r.status.lock() {
                s.roles = r.roles;
            }
            return Ok(());
        }
        let (commands, rx) = mpsc::channel(256);
        let status = Arc::new(Mutex::new(RelayStatus {
            url: url.clone(),
            roles,
            connected: false,
            connects: 0,
            last_error: None,
            dropped_events: 0,
            key,
        }));
        let task = runtime.spawn(relay_task(
            url.clone(),
            rx,
            status.clone(),
            self.inner.options.clone(),
            self.inner.signer.clone(),
        ));
        relays.push(RelayHandle {
            url,
            roles,
            commands,
            status,
            task,
        });
        Ok(())
    }

    /// Removes a relay (or only some of its roles); returns whether it was known.
    pub fn remove_relay(&self, url: &str, roles: Roles) -> bool {
        let url = url.trim_end_matches('/');
        let mut relays = self
            .inner
            .relays
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(i) = relays.iter().position(|r| r.url == url) else {
            return false;
        };
        let r = &mut relays[i];
        r.roles.fetch &= !roles.fetch;
        r.roles.push &= !roles.push;
        if !r.roles.fetch && !r.roles.push {
            relays.remove(i);
        } else if let Ok(mut s) = r.status.lock() {
            s.roles = r.roles;
        }
        true
    }

    /// Every relay's state.
    pub fn relays(&self) -> Vec<RelayStatus> {
        self.inner
            .relays
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(|r| r.status.lock().ok().map(|s| s.clone()))
            .collect()
    }

    fn with_role(&self, pick: fn(Roles) -> bool) -> Vec<(String, mpsc::Sender<Command>)> {
        self.inner
            .relays
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|r| pick(r.roles))
            .map(|r| (r.url.clone(), r.commands.clone()))
            .collect()
    }

    /// Publishes `event` to every push relay and waits (bounded) for each one's `OK`.
    ///
    /// # Errors
    /// [`NetError::NoServers`] without push relays; [`NetError::NotEnoughAccepted`], with the
    /// per-relay report, when fewer than `min_accepted` accept.
    pub async fn publish(
        &self,
        event: &Event,
        min_accepted: usize,
    ) -> Result<PublishReport, NetError> {
        let targets = self.with_role(|r| r.push);
        if targets.is_empty() {
            return Err(NetError::NoServers { role: "push" });
        }
        let timeout = self.inner.options.publish_timeout;
        let attempts = targets.into_iter().map(|(url, commands)| {
            let event = event.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                let sent = commands.send(Command::Publish { event, reply }).await;
                let result = match sent {
                    Err(_) => Err("the relay's connection task stopped".to_owned()),
                    Ok(()) => match tokio::time::timeout(timeout, answer).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(_)) => Err("the relay's connection task stopped".to_owned()),
                        Err(_) => Err(format!("no OK within {} s", timeout.as_secs())),
                    },
                };
                RelayOutcome { relay: url, result }
            }
        });
        let outcomes = futures_util::future::join_all(attempts).await;
        PublishReport { outcomes }.require(min_accepted)
    }

    fn new_sub_id(&self) -> String {
        format!(
            "agigit-{}",
            self.inner.next_sub.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Stored events matching `filters` on every fetch relay, verified, each once, newest first.
    /// Waits for each relay's `EOSE` (bounded by the query timeout).
    ///
    /// # Errors
    /// [`NetError::NoServers`] without fetch relays; [`NetError::Connection`] when no relay
    /// finished the query.
    pub async fn query(&self, filters: &[Filter]) -> Result<Vec<Event>, NetError> {
        self.query_role(filters, |r| r.fetch, "fetch").await
    }

    /// [`query`](Self::query) on the push relays: what a push builds on is the newest state any
    /// of them holds, not only what the fetch relays say.
    ///
    /// # Errors
    /// As [`query`](Self::query), for push relays.
    pub async fn query_push(&self, filters: &[Filter]) -> Result<Vec<Event>, NetError> {
        self.query_role(filters, |r| r.push, "push").await
    }

    async fn query_role(
        &self,
        filters: &[Filter],
        pick: fn(Roles) -> bool,
        role: &'static str,
    ) -> Result<Vec<Event>, NetError> {
        let targets = self.with_role(pick);
        if targets.is_empty() {
            return Err(NetError::NoServers { role });
        }
        let id = self.new_sub_id();
        let timeout = self.inner.options.query_timeout;
        let (max_events, max_bytes) = (
            self.inner.options.max_query_events,
            self.inner.options.max_query_bytes,
        );
        // Once one relay has answered in full, the others have a grace period more: a relay that
        // is down (or never answers) does not hold every query for the whole timeout.
        let grace = self.inner.options.eose_grace;
        let (first_done, first_rx) =
            tokio::sync::watch::channel::<Option<tokio::time::Instant>>(None);
        let first_done = &first_done;
        let runs = targets.into_iter().map(|(url, commands)| {
            let (id, filters) = (id.clone(), filters.to_vec());
            let mut first = first_rx.clone();
            async move {
                let (tx, mut rx) = mpsc::channel(1024);
                let req = Command::Req {
                    id: id.clone(),
                    filters,
                    events: tx,
                };
                if commands.send(req).await.is_err() {
                    return (url, Vec::new(), Err("connection task stopped".to_owned()));
                }
                let mut events = Vec::new();
                let mut bytes = 0usize;
                let deadline = tokio::time::Instant::now() + timeout;
                let end = loop {
                    let cutoff = match *first.borrow() {
                        Some(at) => deadline.min(at + grace),
                        None => deadline,
                    };
                    let next = tokio::select! {
                        next = tokio::time::timeout_at(cutoff, rx.recv()) => next,
                        _ = first.changed() => continue,
                    };
                    match next {
                        Ok(Some(SubMsg::Event(e))) => {
                            // A relay that floods a query is cut off at the caps: what it sent
                            // so far (verified events) is kept, the rest never read.
                            bytes = bytes.saturating_add(event_size(&e));
                            if events.len() >= max_events || bytes > max_bytes {
                                break Err(format!(
                                    "more than {max_events} events or {max_bytes} bytes for one query: cut off"
                                ));
                            }
                            events.push(*e);
                        }
                        Ok(Some(SubMsg::Eose)) => {
                            first_done.send_if_modified(|at| {
                                at.is_none()
                                    .then(|| *at = Some(tokio::time::Instant::now()))
                                    .is_some()
                            });
                            break Ok(());
                        }
                        Ok(Some(SubMsg::Closed(why))) => break Err(why),
                        Ok(None) => break Err("connection task stopped".to_owned()),
                        Err(_) if cutoff < deadline => {
                            break Err(format!(
                                "no EOSE within {} s of another relay's",
                                grace.as_secs_f64()
                            ));
                        }
                        Err(_) => break Err(format!("no EOSE within {} s", timeout.as_secs())),
                    }
                };
                let _ = commands.send(Command::Close { id }).await;
                (url, events, end)
            }
        });
        let results = futures_util::future::join_all(runs).await;
        let mut errors = Vec::new();
        let mut finished = 0;
        let mut all = Vec::new();
        for (url, events, end) in results {
            match end {
                Ok(()) => finished += 1,
                Err(why) => {
                    tracing::debug!(relay = %url, reason = %why, "query incomplete");
                    errors.push(format!("{url}: {why}"));
                }
            }
            all.extend(events);
        }
        if finished == 0 && all.is_empty() {
            return Err(NetError::Connection {
                server: format!("every {role} relay"),
                reason: errors.join("; "),
            });
        }
        Ok(dedup_newest_first(all))
    }

    /// The URL of the relay whose key is `key`, found through this pool's fetch relays: the
    /// newest relay list (NIP-65, kind 10002) signed by that key names its URLs — an
    /// agigit-relay publishes one describing itself — and the first of them whose NIP-11
    /// document names `key` is the answer (a list alone proves nothing about the server at a
    /// URL: only the server's own document does).
    ///
    /// # Errors
    /// [`NetError::UnknownRelay`] when no fetch relay has such a list or no URL in it answers
    /// with that key (each URL's failure is in the message); [`NetError::NoServers`] without
    /// fetch relays.
    pub async fn locate_relay(&self, key: &PublicKey) -> Result<String, NetError> {
        let filter = Filter::new().kind(Kind::RelayList).author(*key).limit(4);
        let events = self.query(&[filter]).await.map_err(|e| match e {
            NetError::NoServers { .. } => e,
            other => NetError::UnknownRelay {
                key: key.to_hex(),
                reason: other.to_string(),
            },
        })?;
        // Newest first; the pool has verified every signature.
        let Some(list) = events
            .iter()
            .find(|e| e.kind == Kind::RelayList && e.pubkey == *key)
        else {
            return Err(NetError::UnknownRelay {
                key: key.to_hex(),
                reason: "none of the known relays has a relay list (NIP-65) signed by it"
                    .to_owned(),
            });
        };
        let urls = crate::info::listed_relays(list, key);
        let mut tried = Vec::new();
        for url in &urls {
            match crate::info::fetch_relay_info_with(
                url,
                self.inner.options.connect_timeout,
                &self.inner.options.tls,
            )
            .await
            {
                Ok(info) if info.key() == Some(*key) => return Ok(url.clone()),
                Ok(info) => tried.push(format!(
                    "{url} identifies as {}",
                    info.key()
                        .map_or_else(|| "no key".to_owned(), |k| k.to_hex())
                )),
                Err(e) => tried.push(e.to_string()),
            }
        }
        Err(NetError::UnknownRelay {
            key: key.to_hex(),
            reason: if urls.is_empty() {
                "its relay list names no ws:// or wss:// URL".to_owned()
            } else {
                tried.join("; ")
            },
        })
    }

    /// A live subscription on every fetch relay: stored events first, then new ones, verified and
    /// each delivered once. Dropping the [`Subscription`] closes it everywhere.
    ///
    /// # Errors
    /// [`NetError::NoServers`] without fetch relays.
    pub async fn subscribe(&self, filters: &[Filter]) -> Result<Subscription, NetError> {
        let targets = self.with_role(|r| r.fetch);
        if targets.is_empty() {
            return Err(NetError::NoServers { role: "fetch" });
        }
        let id = self.new_sub_id();
        let mut streams = Vec::new();
        for (_, commands) in targets {
            let (tx, rx) = mpsc::channel(1024);
            let req = Command::Req {
                id: id.clone(),
                filters: filters.to_vec(),
                events: tx,
            };
            if commands.send(req).await.is_ok() {
                streams.push(
                    futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|m| (m, rx))
                    })
                    .boxed(),
                );
            }
        }
        let (out, events) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut merged = futures_util::stream::select_all(streams);
            let mut seen = HashSet::new();
            while let Some(msg) = merged.next().await {
                if let SubMsg::Event(e) = msg
                    && seen.insert(e.id)
                    && out.send(*e).await.is_err()
                {
                    break;
                }
            }
        });
        Ok(Subscription { events })
    }
}

/// About how many bytes an event takes (its JSON's variable parts).
fn event_size(e: &Event) -> usize {
    let tags: usize = e
        .tags
        .iter()
        .map(|t| t.as_slice().iter().map(|v| v.len() + 4).sum::<usize>())
        .sum();
    e.content.len() + tags + 300
}

/// Events from a live subscription.
#[derive(Debug)]
pub struct Subscription {
    events: mpsc::Receiver<Event>,
}

impl Subscription {
    /// The next event; `None` when every relay's stream ended.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }
}

struct Pending {
    event: Event,
    reply: oneshot::Sender<Result<String, String>>,
    /// Refused with `auth-required:`; re-sent once our AUTH is accepted.
    awaiting_auth: Option<String>,
}

struct ActiveSub {
    filters: Vec<Filter>,
    events: mpsc::Sender<SubMsg>,
    /// Closed with `auth-required:`; re-sent once our AUTH is accepted.
    awaiting_auth: Option<String>,
}

/// One relay's connection, for as long as the pool holds it.
async fn relay_task(
    url: String,
    mut commands: mpsc::Receiver<Command>,
    status: Arc<Mutex<RelayStatus>>,
    options: PoolOptions,
    signer: Option<SharedSigner>,
) {
    let mut pending: HashMap<EventId, Pending> = HashMap::new();
    let mut subs: HashMap<String, ActiveSub> = HashMap::new();
    let mut backoff = options.backoff_min;
    let set_status = |connected: bool, error: Option<String>| {
        if let Ok(mut s) = status.lock() {
            s.connected = connected;
            if connected {
                s.connects += 1;
            }
            if error.is_some() {
                s.last_error = error;
            }
        }
    };
    let pinned = status.lock().ok().and_then(|s| s.key);
    loop {
        if let Some(pin) = pinned {
            // The relay must still hold the key it was added with, or it is not used.
            let refusal = match crate::info::fetch_relay_info_with(
                &url,
                options.connect_timeout,
                &options.tls,
            )
            .await
            {
                Ok(info) if info.key() == Some(pin) => None,
                Ok(info) => Some(
                    NetError::KeyChanged {
                        relay: url.clone(),
                        pinned: pin.to_hex(),
                        found: info.key().map(|k| k.to_hex()),
                    }
                    .to_string(),
                ),
                Err(e) => {
                    set_status(false, Some(e.to_string()));
                    if !wait_backoff(&mut commands, &mut pending, &mut subs, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(options.backoff_max);
                    continue;
                }
            };
            if let Some(reason) = refusal {
                tracing::warn!(relay = %url, "{reason}");
                set_status(false, Some(reason.clone()));
                if !refuse_for(
                    &mut commands,
                    &mut pending,
                    &mut subs,
                    &reason,
                    options.backoff_max,
                )
                .await
                {
                    return;
                }
                continue;
            }
        }
        // No Nagle: EVENT and REQ frames are small and must not wait for delayed ACKs. A relay's
        // message or frame past the limit closes the connection before it is buffered whole.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(options.max_message_bytes))
            .max_frame_size(Some(options.max_message_bytes));
        let connect = async {
            let stream = crate::tls::Stream::connect(&url, &options.tls).await?;
            tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config))
                .await
                .map_err(|e| e.to_string())
        };
        let connected = tokio::time::timeout(options.connect_timeout, connect).await;
        let ws = match connected {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                set_status(false, Some(e));
                if !wait_backoff(&mut commands, &mut pending, &mut subs, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(options.backoff_max);
                continue;
            }
            Err(_) => {
                set_status(false, Some("connect timed out".to_owned()));
                if !wait_backoff(&mut commands, &mut pending, &mut subs, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(options.backoff_max);
                continue;
            }
        };
        set_status(true, None);
        backoff = options.backoff_min;
        tracing::debug!(relay = %url, "connected");
        let (mut sink, mut stream) = ws.split();
        let mut auth_id: Option<EventId> = None;
        // After a reconnect: re-send what is still waiting.
        let mut resend: Vec<ClientMessage<'static>> = subs
            .iter()
            .map(|(id, s)| ClientMessage::req(SubscriptionId::new(id), s.filters.clone()))
            .collect();
        pending.retain(|_, p| !p.reply.is_closed());
        resend.extend(
            pending
                .values()
                .map(|p| ClientMessage::event(p.event.clone())),
        );
        let mut alive = true;
        for m in resend {
            alive &= send(&mut sink, &m).await;
        }
        while alive {
            tokio::select! {
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else {
                        let _ = sink.close().await;
                        return;
                    };
                    let msg = accept_command(cmd, &mut pending, &mut subs);
                    if let Some(m) = msg {
                        alive = send(&mut sink, &m).await;
                    }
                }
                incoming = stream.next() => {
                    let text = match incoming {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) | None => { alive = false; continue; }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            set_status(false, Some(e.to_string()));
                            alive = false;
                            continue;
                        }
                    };
                    let msg = match RelayMessage::from_json(text.as_str()) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::debug!(relay = %url, error = %e, "unparsable relay message");
                            continue;
                        }
                    };
                    for reply in on_message(&url, msg, &mut pending, &mut subs, &mut auth_id, signer.as_ref(), &status).await {
                        alive &= send(&mut sink, &reply).await;
                    }
                }
            }
        }
        set_status(false, None);
        tracing::debug!(relay = %url, "disconnected; reconnecting");
        if !wait_backoff(&mut commands, &mut pending, &mut subs, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(options.backoff_max);
    }
}

/// Sleeps `backoff` while still accepting commands (kept for the next connection). Returns
/// false when the pool dropped this relay.
async fn wait_backoff(
    commands: &mut mpsc::Receiver<Command>,
    pending: &mut HashMap<EventId, Pending>,
    subs: &mut HashMap<String, ActiveSub>,
    backoff: Duration,
) -> bool {
    sleep_serving(commands, backoff, |cmd| {
        let _ = accept_command(cmd, pending, subs);
    })
    .await
}

/// Sleeps `period`, handing each command that comes meanwhile to `serve`. Returns false when
/// the pool dropped this relay.
async fn sleep_serving(
    commands: &mut mpsc::Receiver<Command>,
    period: Duration,
    mut serve: impl FnMut(Command),
) -> bool {
    let sleep = tokio::time::sleep(period);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            cmd = commands.recv() => match cmd {
                None => return false,
                Some(cmd) => serve(cmd),
            }
        }
    }
}

/// For `period`, answers every command with `reason` (a relay that is not the one added): what
/// waits and what comes fails at once rather than at its timeout. Returns false when the pool
/// dropped this relay.
async fn refuse_for(
    commands: &mut mpsc::Receiver<Command>,
    pending: &mut HashMap<EventId, Pending>,
    subs: &mut HashMap<String, ActiveSub>,
    reason: &str,
    period: Duration,
) -> bool {
    for (_, p) in pending.drain() {
        let _ = p.reply.send(Err(reason.to_owned()));
    }
    for (_, sub) in subs.drain() {
        let _ = sub.events.try_send(SubMsg::Closed(reason.to_owned()));
    }
    sleep_serving(commands, period, |cmd| match cmd {
        Command::Publish { reply, .. } => {
            let _ = reply.send(Err(reason.to_owned()));
        }
        Command::Req { events, .. } => {
            let _ = events.try_send(SubMsg::Closed(reason.to_owned()));
        }
        Command::Close { .. } => {}
    })
    .await
}

/// Records a command; returns the message to send if connected.
fn accept_command(
    cmd: Command,
    pending: &mut HashMap<EventId, Pending>,
    subs: &mut HashMap<String, ActiveSub>,
) -> Option<ClientMessage<'static>> {
    match cmd {
        Command::Publish { event, reply } => {
            let msg = ClientMessage::event(event.clone());
            pending.insert(
                event.id,
                Pending {
                    event,
                    reply,
                    awaiting_auth: None,
                },
            );
            Some(msg)
        }
        Command::Req {
            id,
            filters,
            events,
        } => {
            let msg = ClientMessage::req(SubscriptionId::new(&id), filters.clone());
            subs.insert(
                id,
                ActiveSub {
                    filters,
                    events,
                    awaiting_auth: None,
                },
            );
            Some(msg)
        }
        Command::Close { id } => subs
            .remove(&id)
            .map(|_| ClientMessage::close(SubscriptionId::new(id))),
    }
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<crate::tls::Stream>,
    Message,
>;

async fn send(sink: &mut Sink, msg: &ClientMessage<'_>) -> bool {
    match msg.try_as_json() {
        Ok(json) => sink.send(Message::Text(json.into())).await.is_ok(),
        Err(_) => true,
    }
}

/// The NIP-42 answer to `challenge`, signed off the async threads (a remote signer may block) and
/// verified: an event that is not the one asked for, or does not verify, is not sent.
async fn auth_event(signer: &SharedSigner, url: &str, challenge: &str) -> Option<Event> {
    let tags = [
        Tag::parse(["challenge", challenge]).ok()?,
        Tag::parse(["relay", url]).ok()?,
    ];
    let unsigned = UnsignedEvent::new(
        signer.public_key(),
        Timestamp::now(),
        Kind::Authentication,
        tags,
        "",
    );
    let (signer, asked) = (Arc::clone(signer), unsigned.clone());
    let event = match tokio::task::spawn_blocking(move || signer.sign_event(asked)).await {
        Ok(Ok(event)) => event,
        Ok(Err(e)) => {
            tracing::warn!(relay = %url, error = %e, "the signer did not sign our NIP-42 answer");
            return None;
        }
        Err(_) => return None,
    };
    let same = event.pubkey == unsigned.pubkey
        && event.kind == unsigned.kind
        && event.created_at == unsigned.created_at
        && event.tags == unsigned.tags
        && event.content == unsigned.content;
    if same && event.verify().is_ok() {
        Some(event)
    } else {
        tracing::warn!(relay = %url, "the signer returned another event than our NIP-42 answer");
        None
    }
}

/// Handles one relay message; returns what to send back.
async fn on_message(
    url: &str,
    msg: RelayMessage<'_>,
    pending: &mut HashMap<EventId, Pending>,
    subs: &mut HashMap<String, ActiveSub>,
    auth_id: &mut Option<EventId>,
    signer: Option<&SharedSigner>,
    status: &Mutex<RelayStatus>,
) -> Vec<ClientMessage<'static>> {
    let mut out = Vec::new();
    match msg {
        RelayMessage::Ok {
            event_id,
            status: accepted,
            message,
        } => {
            if *auth_id == Some(event_id) {
                *auth_id = None;
                if accepted {
                    // Re-send what waited for authentication.
                    for p in pending.values_mut() {
                        if p.awaiting_auth.take().is_some() {
                            out.push(ClientMessage::event(p.event.clone()));
                        }
                    }
                    for (id, sub) in subs.iter_mut() {
                        if sub.awaiting_auth.take().is_some() {
                            out.push(ClientMessage::req(
                                SubscriptionId::new(id),
                                sub.filters.clone(),
                            ));
                        }
                    }
                } else {
                    tracing::warn!(relay = %url, reason = %message, "NIP-42 authentication refused");
                    let waiting: Vec<EventId> = pending
                        .iter()
                        .filter(|(_, p)| p.awaiting_auth.is_some())
                        .map(|(id, _)| *id)
                        .collect();
                    for id in waiting {
                        if let Some(p) = pending.remove(&id) {
                            let why = p.awaiting_auth.unwrap_or_default();
                            let _ = p
                                .reply
                                .send(Err(format!("{why} (our AUTH was refused: {message})")));
                        }
                    }
                    let waiting: Vec<String> = subs
                        .iter()
                        .filter(|(_, s)| s.awaiting_auth.is_some())
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in waiting {
                        if let Some(sub) = subs.remove(&id) {
                            let why = sub.awaiting_auth.unwrap_or_default();
                            let _ = sub.events.send(SubMsg::Closed(why)).await;
                        }
                    }
                }
                return out;
            }
            let Some(mut p) = pending.remove(&event_id) else {
                return out;
            };
            if !accepted
                && message.starts_with("auth-required:")
                && signer.is_some()
                && p.awaiting_auth.is_none()
            {
                // The relay sends its challenge with the refusal; once our answer is accepted,
                // the event goes again.
                p.awaiting_auth = Some(message.into_owned());
                pending.insert(event_id, p);
                return out;
            }
            let _ = p.reply.send(if accepted {
                Ok(message.into_owned())
            } else {
                Err(message.into_owned())
            });
        }
        RelayMessage::Auth { challenge } => {
            if let Some(signer) = signer
                && let Some(event) = auth_event(signer, url, &challenge).await
            {
                *auth_id = Some(event.id);
                out.push(ClientMessage::auth(event));
            }
        }
        RelayMessage::Event {
            subscription_id,
            event,
        } => {
            let Some(sub) = subs.get(subscription_id.as_str()) else {
                return out;
            };
            let event = event.into_owned();
            let reason = if event.verify().is_err() {
                Some("bad id or signature")
            } else if !sub
                .filters
                .iter()
                // A NIP-50 `search` is the relay's to interpret (words in tags, stemming):
                // the other fields are checked here, the words by the caller.
                .any(|f| f.match_event(&event, MatchEventOptions::new().nip50(false)))
            {
                Some("does not match the subscription's filters")
            } else {
                None
            };
            if let Some(reason) = reason {
                tracing::warn!(relay = %url, id = %event.id, reason, "dropping an event from a relay");
                if let Ok(mut s) = status.lock() {
                    s.dropped_events += 1;
                }
                return out;
            }
            if sub
                .events
                .send(SubMsg::Event(Box::new(event)))
                .await
                .is_err()
            {
                subs.remove(subscription_id.as_str());
                out.push(ClientMessage::close(subscription_id.into_owned()));
            }
        }
        RelayMessage::EndOfStoredEvents(id) => {
            if let Some(sub) = subs.get(id.as_str())
                && sub.events.send(SubMsg::Eose).await.is_err()
            {
                subs.remove(id.as_str());
                out.push(ClientMessage::close(id.into_owned()));
            }
        }
        RelayMessage::Closed {
            subscription_id,
            message,
        } => {
            let key = subscription_id.as_str().to_owned();
            if let Some(mut sub) = subs.remove(&key) {
                if message.starts_with("auth-required:")
                    && signer.is_some()
                    && sub.awaiting_auth.is_none()
                {
                    sub.awaiting_auth = Some(message.into_owned());
                    subs.insert(key, sub);
                } else {
                    let _ = sub.events.send(SubMsg::Closed(message.into_owned())).await;
                }
            }
        }
        RelayMessage::Notice(text) => {
            tracing::debug!(relay = %url, notice = %text, "relay notice");
        }
        _ => {}
    }
    out
}
