//! The [`Transport`] trait the facade depends on (publish, query, put blob, get blob), and
//! [`MemoryTransport`], an in-process implementation with switchable failures for tests.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use agigit_hash::BlobHash;
use bytes::Bytes;
use nostr::prelude::{Event, Filter, MatchEventOptions};

use crate::error::{NetError, PublishReport, RelayOutcome};

/// A boxed, sendable future (keeps [`Transport`] usable as `dyn Transport`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The most bytes of a server's blob listing read (about 300,000 blobs).
pub const MAX_LIST_BYTES: usize = 64 << 20;

/// A blob as a server lists it (BUD-12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedBlob {
    /// Its hash.
    pub hash: BlobHash,
    /// Its size in bytes, as the server says.
    pub size: u64,
    /// When this key uploaded it (Unix seconds), as the server says.
    pub uploaded: u64,
}

/// How agigit talks to the network: events to and from relays, blobs to and from servers.
///
/// Every implementation verifies what it returns: events by id and signature, blobs by SHA-256.
pub trait Transport: Send + Sync {
    /// Publishes `event` to every push relay; succeeds when at least `min_accepted` accept it.
    ///
    /// # Errors
    /// [`NetError::NotEnoughAccepted`] (with the per-relay report) or [`NetError::NoServers`].
    fn publish<'a>(
        &'a self,
        event: &'a Event,
        min_accepted: usize,
    ) -> BoxFuture<'a, Result<PublishReport, NetError>>;

    /// The verified events matching any of `filters` on the fetch relays, each once, newest first.
    ///
    /// # Errors
    /// [`NetError`] when no fetch relay answers.
    fn query<'a>(&'a self, filters: &'a [Filter]) -> BoxFuture<'a, Result<Vec<Event>, NetError>>;

    /// [`query`](Transport::query) on the push relays (the same relays unless the transport
    /// distinguishes them): a push builds on the newest state any of them holds.
    ///
    /// # Errors
    /// As [`query`](Transport::query).
    fn query_push<'a>(
        &'a self,
        filters: &'a [Filter],
    ) -> BoxFuture<'a, Result<Vec<Event>, NetError>> {
        self.query(filters)
    }

    /// The blob servers to upload to, in a stable order (placement indexes into it).
    fn push_servers(&self) -> Vec<String>;

    /// The blob servers to download from.
    fn fetch_servers(&self) -> Vec<String>;

    /// Uploads `data` to `server`; returns its hash.
    ///
    /// # Errors
    /// [`NetError`] when the server refuses or cannot be reached.
    fn put_blob<'a>(
        &'a self,
        server: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<BlobHash, NetError>>;

    /// [`put_blob`](Self::put_blob) for `data` whose hash the caller computed already (a shard
    /// hashed for its manifest): a transport can skip hashing it again. The blob is stored under
    /// the hash of what was sent whatever `hash` says; a `hash` that is not it is an error.
    ///
    /// # Errors
    /// As [`put_blob`](Self::put_blob); [`NetError::Corrupt`] when `hash` is not `data`'s.
    fn put_blob_hashed<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
        data: Bytes,
    ) -> BoxFuture<'a, Result<BlobHash, NetError>> {
        Box::pin(async move {
            let stored = self.put_blob(server, data).await?;
            if stored == *hash {
                Ok(stored)
            } else {
                Err(NetError::Corrupt {
                    server: server.to_owned(),
                    expected: *hash,
                    actual: stored,
                })
            }
        })
    }

    /// Whether `server` holds blob `hash` (BUD-01 `HEAD`): what an audit asks, and what a
    /// resumed push asks before sending a shard again. The server's word, not a proof: only a
    /// download verifies.
    ///
    /// # Errors
    /// [`NetError`] when the server cannot be reached or answers neither yes nor no.
    fn has_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<bool, NetError>>;

    /// The blobs this transport's key owns on `server` (BUD-12 `GET /list/<pubkey>`). What a
    /// server lists is its word: a garbage collector deletes only what nothing references.
    ///
    /// # Errors
    /// [`NetError::Unsupported`] for a transport without it (the default); connection and
    /// HTTP errors; [`NetError::TooLarge`] or [`NetError::Malformed`] for a listing past
    /// [`MAX_LIST_BYTES`] or one that does not parse.
    fn list_blobs<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ListedBlob>, NetError>> {
        let _ = server;
        Box::pin(std::future::ready(Err(NetError::Unsupported {
            what: "list a server's blobs (BUD-12)",
        })))
    }

    /// Drops this transport's key's claim on blob `hash` at `server` (BUD-12 `DELETE`); the
    /// server deletes the blob when no claim is left.
    ///
    /// # Errors
    /// [`NetError::Unsupported`] for a transport without it (the default); connection and
    /// HTTP errors (a blob this key does not own is refused).
    fn delete_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<(), NetError>> {
        let _ = (server, hash);
        Box::pin(std::future::ready(Err(NetError::Unsupported {
            what: "delete blobs (BUD-12)",
        })))
    }

    /// Downloads blob `hash` from `server`, verified against its hash, taking at most `max_len`
    /// bytes: what the caller knows the blob's length to be (a shard's length from its manifest),
    /// or a cap when it does not. Past it the download is cut off and nothing of it kept, so a
    /// server's answer never costs more memory than the caller allowed.
    ///
    /// # Errors
    /// [`NetError::NotFound`], [`NetError::Corrupt`], [`NetError::TooLarge`] or a connection
    /// error.
    fn get_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
        max_len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NetError>>;
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn publish<'a>(
        &'a self,
        event: &'a Event,
        min_accepted: usize,
    ) -> BoxFuture<'a, Result<PublishReport, NetError>> {
        (**self).publish(event, min_accepted)
    }
    fn query<'a>(&'a self, filters: &'a [Filter]) -> BoxFuture<'a, Result<Vec<Event>, NetError>> {
        (**self).query(filters)
    }
    fn query_push<'a>(
        &'a self,
        filters: &'a [Filter],
    ) -> BoxFuture<'a, Result<Vec<Event>, NetError>> {
        (**self).query_push(filters)
    }
    fn push_servers(&self) -> Vec<String> {
        (**self).push_servers()
    }
    fn fetch_servers(&self) -> Vec<String> {
        (**self).fetch_servers()
    }
    fn put_blob<'a>(
        &'a self,
        server: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<BlobHash, NetError>> {
        (**self).put_blob(server, data)
    }
    fn put_blob_hashed<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
        data: Bytes,
    ) -> BoxFuture<'a, Result<BlobHash, NetError>> {
        (**self).put_blob_hashed(server, hash, data)
    }
    fn has_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<bool, NetError>> {
        (**self).has_blob(server, hash)
    }
    fn list_blobs<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ListedBlob>, NetError>> {
        (**self).list_blobs(server)
    }
    fn delete_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<(), NetError>> {
        (**self).delete_blob(server, hash)
    }
    fn get_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
        max_len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NetError>> {
        (**self).get_blob(server, hash, max_len)
    }
}

/// Sorts newest first (ties: lowest id) and drops repeats: how every transport returns events.
pub(crate) fn dedup_newest_first(events: impl IntoIterator<Item = Event>) -> Vec<Event> {
    let mut seen = BTreeSet::new();
    let mut out: Vec<Event> = events.into_iter().filter(|e| seen.insert(e.id)).collect();
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    out
}

#[derive(Debug, Default)]
struct Server {
    events: Vec<Event>,
    blobs: HashMap<BlobHash, Bytes>,
}

#[derive(Debug, Default)]
struct MemoryState {
    servers: Vec<(String, Server)>,
    down: HashSet<String>,
    /// Downloads a down server failed, per server, when [`MemoryTransport::rank_by_failures`]
    /// is on (`None` when off).
    failures: Option<HashMap<String, u32>>,
}

/// An in-process network of named servers, each both a relay and a blob server.
///
/// Servers can be taken down and blobs corrupted, to test m-of-n behaviour without sockets.
/// Events are verified on publish; a server keeps every event it accepts (no replaceable
/// semantics: readers resolve state themselves, as over real relays).
#[derive(Clone, Debug, Default)]
pub struct MemoryTransport {
    state: Arc<Mutex<MemoryState>>,
}

impl MemoryTransport {
    /// A network of servers named `names`.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        let servers = names
            .into_iter()
            .map(|n| (n.into(), Server::default()))
            .collect();
        MemoryTransport {
            state: Arc::new(Mutex::new(MemoryState {
                servers,
                down: HashSet::new(),
                failures: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes `server` down (`true`) or brings it back.
    pub fn set_down(&self, server: &str, down: bool) {
        let mut s = self.lock();
        if down {
            s.down.insert(server.to_owned());
        } else {
            s.down.remove(server);
        }
    }

    /// Lists fetch servers as [`Network`](crate::Network) does, best first: here, those with
    /// fewer failed downloads (a down server sinks as it fails), so that the order changes
    /// while a fetch runs, as over real servers.
    pub fn rank_by_failures(&self) {
        self.lock().failures.get_or_insert_with(HashMap::new);
    }

    /// Replaces the stored bytes of `hash` on `server` with `bytes` (a test's bit rot). Returns
    /// whether the server held the blob.
    pub fn corrupt_blob(&self, server: &str, hash: &BlobHash, bytes: Bytes) -> bool {
        let mut s = self.lock();
        s.servers
            .iter_mut()
            .find(|(n, _)| n == server)
            .and_then(|(_, srv)| srv.blobs.get_mut(hash))
            .map(|b| *b = bytes)
            .is_some()
    }

    /// Deletes blob `hash` from `server` (a test's lost disk). Returns whether it was there.
    pub fn remove_blob(&self, server: &str, hash: &BlobHash) -> bool {
        self.lock()
            .servers
            .iter_mut()
            .find(|(n, _)| n == server)
            .is_some_and(|(_, srv)| srv.blobs.remove(hash).is_some())
    }

    /// Bytes of blobs `server` stores.
    pub fn stored_bytes(&self, server: &str) -> u64 {
        self.lock()
            .servers
            .iter()
            .find(|(n, _)| n == server)
            .map_or(0, |(_, s)| s.blobs.values().map(|b| b.len() as u64).sum())
    }

    /// How many blobs `server` stores.
    pub fn blob_count(&self, server: &str) -> usize {
        self.lock()
            .servers
            .iter()
            .find(|(n, _)| n == server)
            .map_or(0, |(_, s)| s.blobs.len())
    }

    /// Everything `server` holds: its events and its blobs (what an operator, or an attacker
    /// who took the server, would see).
    pub fn contents(&self, server: &str) -> (Vec<Event>, Vec<(BlobHash, Bytes)>) {
        self.lock()
            .servers
            .iter()
            .find(|(n, _)| n == server)
            .map(|(_, s)| {
                (
                    s.events.clone(),
                    s.blobs.iter().map(|(h, b)| (*h, b.clone())).collect(),
                )
            })
            .unwrap_or_default()
    }

    fn names(&self) -> Vec<String> {
        self.lock().servers.iter().map(|(n, _)| n.clone()).collect()
    }
}

impl MemoryTransport {
    /// `look` at `server`'s blobs (`None` when the network has no such server), or the
    /// connection error of a server that is down.
    fn blobs_of<T>(
        &self,
        server: &str,
        look: impl FnOnce(Option<&mut HashMap<BlobHash, Bytes>>) -> T,
    ) -> Result<T, NetError> {
        let mut s = self.lock();
        if s.down.contains(server) {
            return Err(down(server));
        }
        Ok(look(
            s.servers
                .iter_mut()
                .find(|(n, _)| n == server)
                .map(|(_, srv)| &mut srv.blobs),
        ))
    }
}

fn down(server: &str) -> NetError {
    NetError::Connection {
        server: server.to_owned(),
        reason: "connection refused (server is down)".to_owned(),
    }
}

impl Transport for MemoryTransport {
    fn publish<'a>(
        &'a self,
        event: &'a Event,
        min_accepted: usize,
    ) -> BoxFuture<'a, Result<PublishReport, NetError>> {
        Box::pin(async move {
            let valid = event.verify().is_ok();
            let mut s = self.lock();
            let MemoryState {
                servers, down: d, ..
            } = &mut *s;
            if servers.is_empty() {
                return Err(NetError::NoServers { role: "push" });
            }
            let outcomes = servers
                .iter_mut()
                .map(|(name, srv)| {
                    let result = if d.contains(name) {
                        Err("connection refused (server is down)".to_owned())
                    } else if !valid {
                        Err("invalid: event id or signature does not verify".to_owned())
                    } else if srv.events.iter().any(|e| e.id == event.id) {
                        Ok("duplicate: already have this event".to_owned())
                    } else {
                        srv.events.push(event.clone());
                        Ok(String::new())
                    };
                    RelayOutcome {
                        relay: name.clone(),
                        result,
                    }
                })
                .collect();
            PublishReport { outcomes }.require(min_accepted)
        })
    }

    fn query<'a>(&'a self, filters: &'a [Filter]) -> BoxFuture<'a, Result<Vec<Event>, NetError>> {
        Box::pin(async move {
            let s = self.lock();
            let up: Vec<&Server> = s
                .servers
                .iter()
                .filter(|(n, _)| !s.down.contains(n))
                .map(|(_, srv)| srv)
                .collect();
            if up.is_empty() {
                return Err(NetError::NoServers { role: "fetch" });
            }
            let hits = up.iter().flat_map(|srv| srv.events.iter()).filter(|e| {
                filters
                    .iter()
                    .any(|f| f.match_event(e, MatchEventOptions::new().nip50(false)))
            });
            Ok(dedup_newest_first(hits.cloned()))
        })
    }

    fn push_servers(&self) -> Vec<String> {
        self.names()
    }

    fn fetch_servers(&self) -> Vec<String> {
        let mut names = self.names();
        if let Some(failures) = &self.lock().failures {
            names.sort_by_key(|n| failures.get(n).copied().unwrap_or(0));
        }
        names
    }

    fn put_blob<'a>(
        &'a self,
        server: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<BlobHash, NetError>> {
        Box::pin(async move {
            let hash = BlobHash::digest(&data);
            let mut s = self.lock();
            if s.down.contains(server) {
                return Err(down(server));
            }
            let srv = s
                .servers
                .iter_mut()
                .find(|(n, _)| n == server)
                .map(|(_, srv)| srv)
                .ok_or_else(|| NetError::Url {
                    url: server.to_owned(),
                    reason: "no such server in this network".to_owned(),
                })?;
            srv.blobs.insert(hash, data);
            Ok(hash)
        })
    }

    /// Every blob the server holds (this in-process network keeps no owners and no upload
    /// times: each reads as this key's, uploaded at time 0).
    fn list_blobs<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ListedBlob>, NetError>> {
        Box::pin(async move {
            self.blobs_of(server, |blobs| {
                blobs.map_or_else(Vec::new, |blobs| {
                    blobs
                        .iter()
                        .map(|(hash, bytes)| ListedBlob {
                            hash: *hash,
                            size: bytes.len() as u64,
                            uploaded: 0,
                        })
                        .collect()
                })
            })
        })
    }

    fn delete_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(async move {
            if self.blobs_of(server, |blobs| blobs.and_then(|b| b.remove(hash)).is_some())? {
                Ok(())
            } else {
                Err(NetError::NotFound {
                    server: server.to_owned(),
                    hash: *hash,
                })
            }
        })
    }

    fn has_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<bool, NetError>> {
        Box::pin(async move {
            self.blobs_of(server, |blobs| blobs.is_some_and(|b| b.contains_key(hash)))
        })
    }

    fn get_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
        max_len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NetError>> {
        Box::pin(async move {
            let mut s = self.lock();
            if s.down.contains(server) {
                if let Some(f) = &mut s.failures {
                    *f.entry(server.to_owned()).or_default() += 1;
                }
                return Err(down(server));
            }
            let bytes = s
                .servers
                .iter()
                .find(|(n, _)| n == server)
                .and_then(|(_, srv)| srv.blobs.get(hash))
                .cloned()
                .ok_or_else(|| NetError::NotFound {
                    server: server.to_owned(),
                    hash: *hash,
                })?;
            if bytes.len() as u64 > max_len {
                return Err(NetError::blob_too_large(server, hash, max_len));
            }
            let actual = BlobHash::digest(&bytes);
            if actual != *hash {
                return Err(NetError::Corrupt {
                    server: server.to_owned(),
                    expected: *hash,
                    actual,
                });
            }
            Ok(bytes)
        })
    }
}
