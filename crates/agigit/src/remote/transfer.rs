//! Moving segments: shards uploaded by placement (re-routed when a server fails) and downloaded
//! from any servers until a segment can be rebuilt. The CPU work — reading and coding segments,
//! hashing shards, rebuilding — runs on rayon's pool through [`cpu`], so the async threads only
//! move bytes and every core codes while the network is busy.

use std::sync::{Arc, Mutex};

use agigit_hash::BlobHash;
use agigit_net::{NetError, Transport};
use agigit_shard::{
    CodecSpec, ErasureCode, Holdings, Locator, Placement, SegmentRebuilder, ShardManifest,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use super::*;
use crate::error::Error;

/// Runs `job` on rayon's pool and waits for it without holding an async thread: coding,
/// hashing, sealing and store writes go through here. A panic in `job` resumes in the caller.
///
/// How many jobs are in flight is bounded by the caller (the segments a transfer keeps in
/// flight); the pool runs as many at once as there are cores.
pub(super) async fn cpu<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    let (done, result) = futures_channel::oneshot::channel();
    rayon::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        // The receiver is gone when the transfer was dropped: nobody wants the result.
        let _ = done.send(outcome);
    });
    match result.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(futures_channel::oneshot::Canceled) => Err(Error::Internal(
            "the CPU pool dropped a job without running it",
        )),
    }
}

/// One shard's upload: the server the placement names, where it was stored (server index,
/// bytes sent: 0 when the server had it already), and the errors on the way.
pub(super) struct Upload {
    pub(super) first: usize,
    pub(super) stored: Option<(usize, u64)>,
    pub(super) errors: Vec<String>,
}

/// Where a pack's shards are going, and which servers failed during its push. It starts as the
/// placement's plan for every segment, so that a shard moved off a failed server goes where the
/// whole segment's plan leaves the most room, not only the shards booked so far.
pub(super) struct Book {
    pub(super) holdings: Holdings,
    down: Vec<bool>,
}

impl Book {
    pub(super) fn new(placement: &Placement, segments: usize, spec: &CodecSpec) -> Self {
        let mut holdings = Holdings::new(placement.servers(), segments, spec.k);
        for segment in 0..segments {
            for shard in 0..spec.n {
                holdings.add(segment, placement.server_of(segment, shard));
            }
        }
        Self {
            holdings,
            down: vec![false; placement.servers()],
        }
    }

    /// Where a shard of `segment` planned on `first` goes: `first` unless it failed during
    /// this push, else the working server holding the fewest shards of the segment's plan (ties
    /// in the order after `first`). `failed` (a server that just refused this shard) is marked
    /// down and the shard moved off it. `None` when no server is left.
    fn book(&mut self, segment: usize, first: usize, failed: Option<usize>) -> Option<usize> {
        let from = match failed {
            Some(f) => {
                self.down[f] = true;
                f
            }
            None if self.down[first] => first,
            None => return Some(first),
        };
        self.holdings.remove(segment, from);
        let down = &self.down;
        let next = self.holdings.least_loaded(segment, first, |s| !down[s])?;
        self.holdings.add(segment, next);
        Some(next)
    }
}

/// Uploads shards, each to its placement's server or, when that one fails, to the working
/// server that holds the fewest shards of its segment.
pub(super) struct ShardUpload<'a> {
    pub(super) transport: &'a dyn Transport,
    pub(super) servers: &'a [String],
    pub(super) progress: Option<&'a dyn Progress>,
    /// A resumed push: ask the server whether it has the shard before sending it.
    pub(super) resume: bool,
    pub(super) book: Mutex<Book>,
}

impl ShardUpload<'_> {
    fn booked(&self, segment: usize, first: usize, failed: Option<usize>) -> Option<usize> {
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .book(segment, first, failed)
    }

    /// Uploads shard `data` (whose hash is `hash`) of `segment`, to server `first` or where the
    /// book says when that one fails.
    pub(super) async fn upload(
        &self,
        segment: usize,
        first: usize,
        hash: &BlobHash,
        data: Bytes,
    ) -> Upload {
        let mut upload = Upload {
            first,
            stored: None,
            errors: Vec::new(),
        };
        let mut target = self.booked(segment, first, None);
        while let Some(server) = target {
            let url = &self.servers[server];
            let sent = if self.resume {
                match self.transport.has_blob(url, hash).await {
                    Ok(true) => Ok(0),
                    Ok(false) => self.send(url, hash, &data).await,
                    Err(e) => Err(e),
                }
            } else {
                self.send(url, hash, &data).await
            };
            match sent {
                Ok(sent) => {
                    upload.stored = Some((server, sent));
                    if let Some(p) = self.progress {
                        p.advance(data.len() as u64);
                    }
                    break;
                }
                Err(e) => {
                    tracing_failure(url, &e);
                    upload.errors.push(e.to_string());
                    target = self.booked(segment, first, Some(server));
                }
            }
        }
        upload
    }

    async fn send(&self, server: &str, hash: &BlobHash, data: &Bytes) -> Result<u64, NetError> {
        self.transport
            .put_blob_hashed(server, hash, data.clone())
            .await
            .map(|_| data.len() as u64)
    }
}

/// What fetching one segment needs.
pub(super) struct SegmentFetch<'a> {
    pub(super) transport: &'a dyn Transport,
    pub(super) servers: &'a [String],
    pub(super) manifest: &'a ShardManifest,
    pub(super) code: Arc<dyn ErasureCode>,
    /// Where the pusher put the shards, learned from the answers of all segments' downloads.
    pub(super) locator: &'a Mutex<Locator>,
}

/// A segment's shards, downloaded: the rebuilder holding them, the shards received and the
/// bytes downloaded.
pub(super) struct Downloaded {
    pub(super) rebuilder: SegmentRebuilder,
    pub(super) shards: usize,
    pub(super) downloaded: u64,
}

impl Downloaded {
    /// Rebuilds the segment on the CPU pool; returns it and how long the rebuild took.
    pub(super) async fn rebuild(
        self,
        code: Arc<dyn ErasureCode>,
    ) -> Result<(Vec<u8>, Duration), Error> {
        let rebuilder = self.rebuilder;
        let (bytes, took) = cpu(move || timed(|| rebuilder.finish(code.as_ref()))).await?;
        let bytes = bytes.map_err(|e| match e {
            agigit_shard::ShardError::NotEnoughShards {
                segment,
                good,
                needed,
            } => Error::Network(format!(
                "segment {segment}: {good} good shards found, {needed} needed; bring more servers back"
            )),
            e => Error::BadShards(e),
        })?;
        Ok((bytes, took))
    }
}

impl SegmentFetch<'_> {
    /// What the locator says, under its lock (never held across an await).
    fn locate<T>(&self, f: impl FnOnce(&mut Locator) -> T) -> T {
        f(&mut self
            .locator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Tells the locator what server `server` said about shard `index` of `segment`.
    fn learn(&self, segment: usize, index: usize, server: usize, got: &Result<Bytes, NetError>) {
        self.locate(|l| match got {
            Ok(_) => l.found(segment, index, server),
            Err(NetError::NotFound { .. }) => l.missing(segment, index, server),
            Err(NetError::Connection { .. }) => l.unreachable(server),
            // A server that erred otherwise (busy, lying) says nothing about placement.
            Err(_) => {}
        });
    }

    /// Shard `index` of `segment` (`len` bytes) from the server the locator guesses, else from
    /// all the others at once, the first good answer kept (the transport checks each blob
    /// against its hash). Once the locator has learned where the pusher put its shards (it
    /// starts from this client's own placement), a shard costs one round trip.
    async fn shard(
        &self,
        segment: usize,
        index: usize,
        hash: &BlobHash,
        len: u64,
    ) -> Option<Bytes> {
        // (The server list may have changed since the locator was made: a guess past it is
        // dropped.)
        let first = self
            .locate(|l| l.guess(segment, index))
            .filter(|&s| s < self.servers.len());
        if let Some(server) = first {
            let got = self
                .transport
                .get_blob(&self.servers[server], hash, len)
                .await;
            self.learn(segment, index, server, &got);
            match got {
                Ok(bytes) => return Some(bytes),
                Err(e) => {
                    tracing::debug!(server = %self.servers[server], error = %e, "shard not where guessed; asking the others");
                }
            }
        }
        let mut others: FuturesUnordered<_> = self
            .locate(|l| l.search(first))
            .into_iter()
            .filter(|&s| s < self.servers.len())
            .map(|server| async move {
                let got = self
                    .transport
                    .get_blob(&self.servers[server], hash, len)
                    .await;
                (server, got)
            })
            .collect();
        while let Some((server, got)) = others.next().await {
            self.learn(segment, index, server, &got);
            match got {
                Ok(bytes) => return Some(bytes),
                Err(e) => {
                    tracing::debug!(server = %self.servers[server], error = %e, "shard unavailable here");
                }
            }
        }
        None
    }

    /// Downloads the shards of `segment` that a [`SegmentRebuilder`] wants: data shards first
    /// (for the systematic path), all at once, each failed one replaced by another as soon as it
    /// fails, until `k` good ones are in or none is left to try.
    pub(super) async fn fetch(&self, segment: usize) -> Result<Downloaded, Error> {
        let mut rebuilder = SegmentRebuilder::new(self.manifest, self.code.as_ref(), segment)
            .map_err(Error::BadShards)?;
        // The manifest says how long every shard of this segment is: nothing longer is taken.
        let len = rebuilder.shard_len() as u64;
        let (mut shards, mut downloaded) = (0, 0u64);
        let mut pending = FuturesUnordered::new();
        while !rebuilder.is_ready() {
            let ranked = self.locate(|l| rebuilder.wants_by(|index| l.rank(segment, index)));
            for index in ranked {
                let Some(hash) = rebuilder.hash(index).copied() else {
                    continue;
                };
                pending.push(async move { (index, self.shard(segment, index, &hash, len).await) });
            }
            let Some((index, got)) = pending.next().await else {
                break;
            };
            match got {
                Some(bytes) => {
                    downloaded += bytes.len() as u64;
                    shards += 1;
                    rebuilder
                        .offer_verified(index, Vec::from(bytes))
                        .map_err(Error::BadShards)?;
                }
                None => rebuilder.failed(index),
            }
        }
        Ok(Downloaded {
            rebuilder,
            shards,
            downloaded,
        })
    }
}

pub(super) fn tracing_failure(server: &str, e: &NetError) {
    tracing::warn!(%server, error = %e, "upload failed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use agigit_shard::CodecKind;

    #[test]
    fn shards_moved_off_a_failed_server_keep_the_margin_the_code_gives() {
        // 4 of 9 over 6 servers: 2, 2, 2, 1, 1, 1 per segment, two servers may be lost. With
        // one server refusing every shard, the other five hold 2, 2, 2, 2, 1 and any two may
        // still be lost, for every rotation of the placement. (Moving a shard to the server
        // least loaded among those booked *so far* piled 3 and 3 on two servers for one
        // rotation, and lost one server of margin.)
        let spec = CodecSpec {
            kind: CodecKind::Leopard,
            k: 4,
            n: 9,
        };
        let placement = Placement::new(6, &spec).expect("placement");
        let mut book = Book::new(&placement, 6, &spec);
        assert_eq!(book.holdings.margin(), Some(2));
        for segment in 0..6 {
            for shard in 0..spec.n {
                let first = placement.server_of(segment, shard);
                let mut at = book.book(segment, first, None);
                if at == Some(5) {
                    at = book.book(segment, first, Some(5));
                }
                assert_ne!(at, Some(5));
                assert!(at.is_some());
            }
            assert_eq!(book.holdings.held(segment), 9);
            assert_eq!(book.holdings.count(segment, 5), 0);
            assert_eq!(
                book.holdings.segment_margin(segment),
                Some(2),
                "segment {segment}"
            );
        }
        // Every server failing: nowhere to go, and the shard is off the books.
        let mut book = Book::new(&placement, 1, &spec);
        for s in 0..6 {
            book.down[s] = true;
        }
        assert_eq!(book.book(0, 0, None), None);
        assert_eq!(book.holdings.held(0), 8);
    }
}
