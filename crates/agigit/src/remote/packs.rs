//! Fetching packs: for each pack a fetch wants, its manifest from any server, then its segments
//! rebuilt by [`super::transfer`] from shards of any servers, then every object checked against
//! its id and stored.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use agigit_dag::ObjectId;
use agigit_hash::BlobHash;
use agigit_net::Transport;
use agigit_shard::{Locator, ShardManifest, codec_for};
use futures_util::{StreamExt as _, stream};

use super::fetch::{Listed, Want};
use super::transfer::{SegmentFetch, cpu};
use super::*;
use crate::error::Error;
use crate::pack;
use crate::private::{PrivateKeys, Sealed};
use crate::repository::Repository;

/// About how many bytes of segments a fetch keeps in flight at most.
const FETCH_MEMORY: u64 = 256 << 20;

/// Where a fetch's packs come from: its servers, in the one order the locator's answers
/// refer to.
#[derive(Clone, Copy)]
struct Sources<'a> {
    servers: &'a [String],
    locator: &'a std::sync::Mutex<Locator>,
}

/// Pack manifest `hash` from the first of `servers` that has it, opened (with `keys` and its
/// epoch, when private) and decoded: as stored, and as read.
///
/// The transport checks what a server sends against `hash`, so every server that has the
/// manifest has the same bytes: one that does not open or decode was written so by whoever
/// published it, and no other server is asked.
///
/// # Errors
/// [`Error::Network`] naming what each server said when none has it; [`Error::BadManifest`]
/// when it does not decode; a key error when it does not open.
pub(super) async fn fetch_manifest(
    transport: &dyn Transport,
    servers: &[String],
    hash: &BlobHash,
    keys: Option<(&PrivateKeys, u32)>,
) -> Result<(bytes::Bytes, ShardManifest), Error> {
    let mut errors = Vec::new();
    for s in servers {
        match transport.get_blob(s, hash, MAX_MANIFEST_BYTES).await {
            Ok(bytes) => return open_manifest(&bytes, keys).map(|m| (bytes, m)),
            Err(e) => errors.push(format!("{s}: {}", net(e))),
        }
    }
    Err(Error::Network(format!(
        "no server has pack manifest {hash}: {}",
        errors.join("; ")
    )))
}

/// The erasure code of pack `hash`'s `manifest`, after checking its segment size: memory holds
/// the segments in flight, and the size its author chose is bounded here (fewer segments fly at
/// once when they are large).
///
/// # Errors
/// [`Error::Limit`] for segments over [`MAX_FETCH_SEGMENT`]; [`Error::BadShards`] for a codec
/// this build does not have.
pub(super) fn pack_code(
    manifest: &ShardManifest,
    hash: &BlobHash,
) -> Result<Arc<dyn ErasureCode>, Error> {
    if manifest.segment_size() > MAX_FETCH_SEGMENT {
        return Err(Error::Limit {
            what: format!("the segment size of pack {hash}"),
            size: manifest.segment_size(),
            limit: MAX_FETCH_SEGMENT,
        });
    }
    Ok(Arc::from(
        codec_for(&manifest.codec()).map_err(Error::BadShards)?,
    ))
}

/// A pack manifest as a server stored it: opened with `keys` (and the epoch it was sealed in)
/// when private, then decoded.
pub(super) fn open_manifest(
    bytes: &[u8],
    keys: Option<(&PrivateKeys, u32)>,
) -> Result<ShardManifest, Error> {
    let plain = match keys {
        Some((k, epoch)) => k.open_sealed(Sealed::Manifest, epoch, bytes)?,
        None => bytes.to_vec(),
    };
    ShardManifest::decode(&plain).map_err(Error::BadManifest)
}

impl Repository {
    /// Fetches the packs that `want` asks for of the commits of `listed` reachable from `tips`
    /// (commit ids): a commit already local ends the walk there unless parts are being added.
    /// Packs of listed commits that no tip reaches are never downloaded.
    #[allow(
        clippy::too_many_arguments,
        reason = "one private helper of fetch, called once"
    )]
    pub(super) async fn fetch_packs(
        &self,
        transport: &dyn Transport,
        listed: &[Listed],
        tips: &[ObjectId],
        keys: Option<&PrivateKeys>,
        want: &Want,
        options: FetchOptions<'_>,
        report: &mut PullReport,
    ) -> Result<(), Error> {
        let by_id: std::collections::HashMap<ObjectId, &Listed> =
            listed.iter().map(|l| (l.id, l)).collect();
        let widening = !want.held.is_superset(&want.wanted);
        let mut packs: Vec<(BlobHash, u32)> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&Listed> = tips.iter().filter_map(|t| by_id.get(t).copied()).collect();
        while let Some(l) = stack.pop() {
            if !seen.insert(l.id) {
                continue;
            }
            let local = want.complete.contains(&l.id);
            for p in &l.packs {
                if want.wants(local, l.parts.get(p)) && !packs.iter().any(|(q, _)| q == p) {
                    packs.push((*p, l.epoch));
                }
            }
            if !local || widening {
                stack.extend(l.parents.iter().filter_map(|p| by_id.get(p).copied()));
            }
        }
        // Where the pusher put each shard: first guessed to be where this client would have,
        // then learned from where shards turn up, pack after pack.
        // One list of servers for the whole fetch: the locator's answers name servers by their
        // place in it, and the transport ranks its servers anew (by health) each time it is
        // asked — a list taken per pack would give a server another's verdict (one found down
        // would make another never asked).
        let servers = transport.fetch_servers();
        let locator = std::sync::Mutex::new(Locator::new(servers.len()));
        for (manifest, epoch) in packs {
            let sealed = keys.map(|k| (k, epoch));
            let at = Sources {
                servers: &servers,
                locator: &locator,
            };
            self.fetch_pack(transport, &manifest, sealed, at, options, report)
                .await?;
            report.packs += 1;
        }
        Ok(())
    }

    /// Downloads pack `manifest_hash` from any servers and stores its objects.
    async fn fetch_pack(
        &self,
        transport: &dyn Transport,
        manifest_hash: &BlobHash,
        keys: Option<(&PrivateKeys, u32)>,
        Sources { servers, locator }: Sources<'_>,
        options: FetchOptions<'_>,
        report: &mut PullReport,
    ) -> Result<(), Error> {
        let (stored, manifest) = fetch_manifest(transport, servers, manifest_hash, keys).await?;
        report.bytes += stored.len() as u64;
        let code = pack_code(&manifest, manifest_hash)?;
        let context = SegmentFetch {
            transport,
            servers,
            manifest: &manifest,
            code: Arc::clone(&code),
            locator,
        };
        // Two stages: segments downloading, `k` shards each, about `parallel` shards at once;
        // and segments rebuilding on the CPU pool, one per core and one waiting. Memory holds
        // the segments in both, bounded by FETCH_MEMORY.
        let by_memory = usize::try_from(FETCH_MEMORY / manifest.segment_size().max(1))
            .unwrap_or(usize::MAX)
            .max(2);
        let rebuilding = (rayon::current_num_threads() + 1).min(by_memory / 2);
        let downloading = options
            .parallel
            .div_ceil(manifest.codec().k)
            .clamp(1, by_memory - rebuilding);
        // A large pack keeps its rebuilt segments on disk until all of it is stored, so that a
        // fetch cut short resumes from them: each is checked again (coded anew, every shard
        // against the manifest's hash) before it is used.
        let kept = (manifest.total_len() >= options.resume_over)
            .then(|| Arc::new(self.partial_dir(manifest_hash)));
        let mut segments = stream::iter(0..manifest.segment_count())
            .map(|segment| {
                let (context, kept, code) = (&context, kept.clone(), Arc::clone(&code));
                async move {
                    if let Some(dir) = kept {
                        let expected = context
                            .manifest
                            .shard_hashes(segment)
                            .unwrap_or_default()
                            .to_vec();
                        let len = context.manifest.segment_len(segment);
                        let saved =
                            cpu(move || load_segment(&dir, segment, len, &expected, code.as_ref()))
                                .await?;
                        if let Some(bytes) = saved {
                            return Ok(Segment::Kept(bytes));
                        }
                    }
                    context.fetch(segment).await.map(Segment::Downloaded)
                }
            })
            .buffered(downloading)
            .enumerate()
            .map(|(index, got)| {
                let (code, kept) = (Arc::clone(&code), kept.clone());
                async move {
                    match got? {
                        Segment::Kept(bytes) => Ok((bytes, 0, 0, Duration::ZERO, true)),
                        Segment::Downloaded(downloaded) => {
                            let (shards, bytes) = (downloaded.shards, downloaded.downloaded);
                            let (segment, took) = downloaded.rebuild(code).await?;
                            let segment = match kept {
                                Some(dir) => {
                                    cpu(move || save_segment(&dir, index, segment)).await?
                                }
                                None => segment,
                            };
                            Ok::<_, Error>((segment, shards, bytes, took, false))
                        }
                    }
                }
            })
            .buffered(rebuilding.max(1));
        // Segments arrive in order and go to a thread that checks and stores the pack's objects
        // as they come, while the download goes on: memory holds the segments in flight and a
        // few waiting for that thread, not the pack.
        let keys = keys.map(|(k, e)| (k.clone(), e));
        let mut sink = PackSink::start(self.shared_store(), keys, rebuilding.max(2))?;
        if let Some(p) = options.progress {
            p.begin("download pack", manifest.total_len());
        }
        let started = Instant::now();
        while let Some(result) = segments.next().await {
            let (segment, shards, downloaded, took, resumed) = result?;
            report.stages.rebuild += took;
            report.resumed_segments += usize::from(resumed);
            if let Some(p) = options.progress {
                p.advance(segment.len() as u64);
            }
            report.shards += shards;
            report.bytes += downloaded;
            sink.send(segment).await;
        }
        drop(segments);
        let (ids, took, opened) = sink.finish().await?;
        report.stages.transfer += started.elapsed();
        report.stages.store += took;
        report.stages.open += opened;
        if let Some(p) = options.progress {
            p.end();
        }
        report.objects += ids.len();
        if let Some(dir) = kept {
            let _ = std::fs::remove_dir_all(&*dir);
        }
        Ok(())
    }

    /// Where a fetch keeps the rebuilt segments of pack `manifest` until all of it is stored.
    fn partial_dir(&self, manifest: &BlobHash) -> std::path::PathBuf {
        self.root()
            .join(crate::worktree::DOT_DIR)
            .join("fetch")
            .join(manifest.to_string())
    }
}

/// A segment of a pack being fetched: kept on disk by an earlier fetch, or its shards just
/// downloaded.
enum Segment {
    Kept(Vec<u8>),
    Downloaded(transfer::Downloaded),
}

/// Segment `index` as an earlier fetch kept it in `dir`, when it is there and is what the
/// manifest says: `len` bytes that code into shards with the `expected` hashes. A file that is
/// not is removed.
fn load_segment(
    dir: &std::path::Path,
    index: usize,
    len: u64,
    expected: &[BlobHash],
    code: &dyn ErasureCode,
) -> Option<Vec<u8>> {
    let path = dir.join(format!("{index}.segment"));
    let bytes = std::fs::read(&path).ok()?;
    let good = bytes.len() as u64 == len
        && agigit_shard::SegmentEncoder::new(code)
            .encode(index, &bytes)
            .is_ok_and(|e| e.hashes.as_slice() == expected);
    if good {
        Some(bytes)
    } else {
        let _ = std::fs::remove_file(&path);
        None
    }
}

/// Keeps segment `index` in `dir` (written whole, then renamed into place); gives it back.
/// A segment that cannot be kept is only not resumable: the fetch goes on.
fn save_segment(dir: &std::path::Path, index: usize, segment: Vec<u8>) -> Vec<u8> {
    let path = dir.join(format!("{index}.segment"));
    let tmp = dir.join(format!("{index}.partial"));
    let saved = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, &segment))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = saved {
        tracing::debug!(path = %path.display(), error = %e, "a segment could not be kept for resuming");
    }
    segment
}

/// A pack's objects checked and stored as its segments arrive: a thread of its own reads the
/// segments, in order, from a channel (opening them when private) and stores every object
/// whose id checks out ([`pack::read_pack_from`], which stores batches of them in parallel).
/// At most `limit` segments wait for it; [`send`](Self::send) waits for room, so a slow store
/// slows the download instead of filling memory. Dropped before [`finish`](Self::finish) (a
/// failed or cancelled fetch), the thread sees the pack end early and stops.
struct PackSink {
    segments: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    taken: futures_channel::mpsc::UnboundedReceiver<()>,
    waiting: usize,
    limit: usize,
    done: futures_channel::oneshot::Receiver<std::thread::Result<StoreOutcome>>,
}

/// What the store thread gives back: the objects stored (or why not), the time the stores took
/// (hashing, writing, syncing each object) and the time the thread spent reading the segments
/// (opening them when private), not counting its waits for them.
type StoreOutcome = (Result<Vec<ObjectId>, Error>, Duration, Duration);

impl PackSink {
    fn start(
        store: Arc<dyn agigit_dag::ObjectStore>,
        keys: Option<(PrivateKeys, u32)>,
        limit: usize,
    ) -> Result<Self, Error> {
        let (segments, received) = std::sync::mpsc::channel::<Vec<u8>>();
        let (took, taken) = futures_channel::mpsc::unbounded();
        let (finished, done) = futures_channel::oneshot::channel();
        std::thread::Builder::new()
            .name("agigit-store".into())
            .spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let store = TimedWrites {
                        store,
                        nanos: std::sync::atomic::AtomicU64::new(0),
                    };
                    let mut input = SegmentReader {
                        received,
                        took,
                        current: Vec::new(),
                        at: 0,
                        waited: Duration::ZERO,
                    };
                    let mut reading = Duration::ZERO;
                    let ids = match keys {
                        Some((k, epoch)) => k
                            .opening_reader(Sealed::Pack, epoch, &mut input)
                            .and_then(|r| {
                                let mut r = TimedRead::new(r, &mut reading);
                                Ok(pack::read_pack_from(&store, &mut r)?)
                            }),
                        None => {
                            let mut r = TimedRead::new(&mut input, &mut reading);
                            pack::read_pack_from(&store, &mut r).map_err(Error::from)
                        }
                    };
                    // The stores' time (hashing, writing and syncing each object), and the
                    // reading's without its waits for segments (the waits for the stores are
                    // outside both).
                    let writes = Duration::from_nanos(
                        store.nanos.load(std::sync::atomic::Ordering::Relaxed),
                    );
                    (ids, writes, reading.saturating_sub(input.waited))
                }));
                // Nobody listens when the fetch was dropped.
                let _ = finished.send(outcome);
            })
            .map_err(|e| Error::Io {
                path: "agigit-store thread".into(),
                source: e,
            })?;
        Ok(PackSink {
            segments: Some(segments),
            taken,
            waiting: 0,
            limit: limit.max(1),
            done,
        })
    }

    /// Hands the next segment to the store thread, first waiting until fewer than `limit` wait
    /// for it. A thread that stopped (a bad pack) takes nothing more: [`finish`](Self::finish)
    /// says why.
    async fn send(&mut self, segment: Vec<u8>) {
        while self.waiting >= self.limit {
            match self.taken.next().await {
                Some(()) => self.waiting -= 1,
                None => break,
            }
        }
        let sent = self
            .segments
            .as_ref()
            .is_some_and(|s| s.send(segment).is_ok());
        if sent {
            self.waiting += 1;
        } else {
            self.segments = None;
        }
    }

    /// Ends the pack and waits for the thread: the ids stored, how long the stores took and
    /// how long the reading (and opening) of the segments.
    async fn finish(mut self) -> Result<(Vec<ObjectId>, Duration, Duration), Error> {
        self.segments = None;
        match (&mut self.done).await {
            Ok(Ok((ids, stored, read))) => Ok((ids?, stored, read)),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(futures_channel::oneshot::Canceled) => Err(Error::Internal(
                "the store thread stopped without an answer",
            )),
        }
    }
}

/// A reader adding up the time its reads take into `took`.
struct TimedRead<'t, R> {
    inner: R,
    took: &'t mut Duration,
}

impl<'t, R> TimedRead<'t, R> {
    fn new(inner: R, took: &'t mut Duration) -> Self {
        Self { inner, took }
    }
}

impl<R: std::io::Read> std::io::Read for TimedRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (n, took) = timed(|| self.inner.read(buf));
        *self.took += took;
        n
    }
}

/// A store whose writes add up the time they take (they run on threads beside the store
/// thread): the fetch reports it as the store stage.
struct TimedWrites {
    store: Arc<dyn agigit_dag::ObjectStore>,
    nanos: std::sync::atomic::AtomicU64,
}

impl agigit_dag::Write for TimedWrites {
    fn write_stream(
        &self,
        kind: agigit_dag::Kind,
        size: u64,
        from: &mut dyn std::io::Read,
    ) -> Result<ObjectId, agigit_dag::StoreError> {
        self.timed(|| self.store.write_stream(kind, size, from))
    }

    fn write_batch(
        &self,
        objects: &[(agigit_dag::Kind, &[u8])],
    ) -> Result<Vec<ObjectId>, agigit_dag::StoreError> {
        self.timed(|| self.store.write_batch(objects))
    }
}

impl TimedWrites {
    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let (result, took) = timed(f);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.nanos
            .fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
        result
    }
}

/// The store thread's view of the pack: the segments from the channel, one after another; the
/// end of the pack when the sender is gone.
struct SegmentReader {
    received: std::sync::mpsc::Receiver<Vec<u8>>,
    took: futures_channel::mpsc::UnboundedSender<()>,
    current: Vec<u8>,
    at: usize,
    /// How long it waited for segments.
    waited: Duration,
}

impl std::io::Read for SegmentReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            let asked = Instant::now();
            let next = self.received.recv();
            self.waited += asked.elapsed();
            match next {
                Ok(segment) => {
                    // Room for another: the sender may go on.
                    let _ = self.took.unbounded_send(());
                    (self.current, self.at) = (segment, 0);
                }
                Err(std::sync::mpsc::RecvError) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
