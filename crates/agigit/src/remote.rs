//! Push and pull through a [`Transport`] (DESIGN §3): data first, pointers last.
//!
//! Push: the objects the remote lacks → one pack → (private: sealed) → erasure-coded segments →
//! each shard a blob on the server the placement names (another server when that one fails) →
//! the pack manifest (a blob, sealed when private) on every push server → one commit event per
//! new commit → the repository state event. Each step needs at least `m` acceptances before the
//! next starts, so a state event never points at data that is missing. Pushing again after a
//! failure resumes: blobs are content-addressed, so what is stored already is stored again in
//! place, and nothing after the failed step was published.
//!
//! Pull: the newest valid state event signed by the owner → (private: the content key from the
//! envelope it carries) → the commit events of the repository, each checked against its id →
//! for each pack the local store lacks, the manifest from any server, then for each segment shards
//! from any servers, in parallel, until `k` with the right hashes are in → rebuild → (private:
//! open) → every object checked against its id → the remote-tracking ref, then the branch
//! (fast-forward only).
//!
//! A private repository publishes opaque names in place of commit ids (see [`crate::private`]).

use std::collections::{BTreeMap, BTreeSet};

use agigit_crypt::ReaderSecret;
use agigit_dag::refs::{Expected, RefKey, RefName, Target, Transaction};
use agigit_dag::{Find, FindExt, ForkBase, ObjectId, is_ancestor};
use agigit_event::nostr::prelude::{Filter, Kind, SingleLetterTag, Timestamp};
use agigit_event::{CommitEvent, RepoCoordinate, RepoId, RepoState, Signed, Signer, resolve_state};
use agigit_hash::BlobHash;
use agigit_net::{NetError, Transport};
use agigit_shard::{ErasureCode, Placement, ShardManifest, codec_for};
use bytes::Bytes;
use futures_util::{StreamExt as _, stream};

use crate::error::Error;
use crate::pack;
use crate::private::{PrivateKeys, Sealed};
use crate::repo::Repository;
use crate::worktree::Part;

/// Transfers in flight at once when none is chosen.
pub const DEFAULT_PARALLEL: usize = 16;

/// The largest pack manifest fetched (a manifest's length is not known before it arrives): an
/// 800 GB pack in 4 MiB segments of 10 shards needs 64 MiB (a push makes one pack per part).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// The largest segment a fetch accepts from a manifest (pushes use 1–4 MiB).
pub const MAX_FETCH_SEGMENT: u64 = 256 << 20;

/// About how many bytes of segments a fetch keeps in flight at most.
const FETCH_MEMORY: u64 = 256 << 20;

/// Reports progress of long transfers (a progress bar, a log). Called from the task doing the
/// transfer; every method has a do-nothing default.
pub trait Progress: Send + Sync {
    /// A step starts: `what` it is and how many bytes it will move.
    fn begin(&self, what: &str, total_bytes: u64) {
        let _ = (what, total_bytes);
    }
    /// `bytes` more moved.
    fn advance(&self, bytes: u64) {
        let _ = bytes;
    }
    /// The step is over.
    fn end(&self) {}
}

/// How to push.
#[derive(Clone, Copy)]
pub struct PushOptions<'a> {
    /// The erasure code every segment is coded with.
    pub code: &'a dyn ErasureCode,
    /// Bytes per segment.
    pub segment_size: usize,
    /// Acceptances each event and each shard needs (relays, servers).
    pub min_accepted: usize,
    /// A private repository's keys (see [`Repository::private_keys`]): required when the
    /// repository is private, refused when it is not.
    pub keys: Option<&'a PrivateKeys>,
    /// Uploads in flight at once.
    pub parallel: usize,
    /// Where to report progress.
    pub progress: Option<&'a dyn Progress>,
}

impl<'a> PushOptions<'a> {
    /// Options for `code`: 4 MiB segments, one acceptance per step, public,
    /// [`DEFAULT_PARALLEL`] uploads at once.
    pub fn new(code: &'a dyn ErasureCode) -> Self {
        Self {
            code,
            segment_size: 4 << 20,
            min_accepted: 1,
            keys: None,
            parallel: DEFAULT_PARALLEL,
            progress: None,
        }
    }
}

impl std::fmt::Debug for PushOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("code", &self.code.spec())
            .field("segment_size", &self.segment_size)
            .field("min_accepted", &self.min_accepted)
            .field("private", &self.keys.is_some())
            .field("parallel", &self.parallel)
            .finish_non_exhaustive()
    }
}

/// How to fetch.
#[derive(Clone, Copy)]
pub struct FetchOptions<'a> {
    /// The user's secret key, to open a private repository's envelope (and a private
    /// foundation's).
    pub secret: Option<&'a ReaderSecret>,
    /// Downloads in flight at once.
    pub parallel: usize,
    /// Where to report progress.
    pub progress: Option<&'a dyn Progress>,
    /// Fetch only these parts (a partial clone: see [`Repository::parts`]); `None` keeps what the
    /// repository holds (everything, for a full one). A repository can widen its parts, not
    /// drop some.
    pub parts: Option<&'a [Part]>,
    /// Let a pull overwrite or delete uncommitted and untracked files in its way (without it, a
    /// pull that would refuses with [`Error::LocalChanges`] and changes nothing).
    pub force: bool,
}

impl std::fmt::Debug for FetchOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("secret", &self.secret.is_some())
            .field("parallel", &self.parallel)
            .field("parts", &self.parts)
            .field("force", &self.force)
            .finish_non_exhaustive()
    }
}

impl Default for FetchOptions<'_> {
    fn default() -> Self {
        Self {
            secret: None,
            parallel: DEFAULT_PARALLEL,
            progress: None,
            parts: None,
            force: false,
        }
    }
}

impl<'a> FetchOptions<'a> {
    /// Default options with `secret` to open private repositories.
    pub fn with_secret(secret: &'a ReaderSecret) -> Self {
        Self {
            secret: Some(secret),
            ..Self::default()
        }
    }
}

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    /// The commit pushed.
    pub tip: Option<ObjectId>,
    /// Objects sent.
    pub objects: usize,
    /// The pack's size (sealed, for a private repository).
    pub pack_bytes: u64,
    /// Shards uploaded (each once).
    pub shards: usize,
    /// Shards stored on another server than the placement's, because that one failed.
    pub rerouted: usize,
    /// Shards no server took (the push still succeeds while every segment keeps `k`).
    pub lost: usize,
    /// Bytes uploaded per server (shards and manifests).
    pub bytes_per_server: BTreeMap<String, u64>,
    /// The pack manifest's blob hash.
    pub manifest: Option<BlobHash>,
    /// Whether the content was encrypted.
    pub private: bool,
    /// Nothing to send: the remote already has the tip.
    pub up_to_date: bool,
}

/// What a pull did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullReport {
    /// The remote branch's commit.
    pub tip: Option<ObjectId>,
    /// Packs fetched.
    pub packs: usize,
    /// Objects received.
    pub objects: usize,
    /// Shards downloaded.
    pub shards: usize,
    /// Bytes downloaded (shards and manifests).
    pub bytes: u64,
    /// For a private repository, its key envelope (see [`Repository::save_envelope`]).
    pub envelope: Option<Vec<u8>>,
    /// The remote branch no longer descends from where it was before this fetch (the owner
    /// rewrote it): where it was.
    pub forced_from: Option<ObjectId>,
    /// The newest state does not build on the one this clone accepted before (its `prev` is
    /// another state): the repository's state history forked.
    pub state_forked: bool,
}

fn net(e: NetError) -> Error {
    Error::Network(e.to_string())
}

fn tag(letter: char) -> Result<SingleLetterTag, Error> {
    SingleLetterTag::from_char(letter).map_err(|e| Error::Invalid(e.to_string()))
}

/// One shard's upload: the server the placement names, where it was stored (server index,
/// bytes), and the errors on the way.
struct Upload {
    first: usize,
    stored: Option<(usize, u64)>,
    errors: Vec<String>,
}

/// One segment's shards: their hashes (for the manifest) and their uploads.
struct SegmentUpload {
    hashes: Vec<BlobHash>,
    uploads: Vec<Upload>,
}

/// Uploads shards, each to its placement's server or, when that fails, the next that works.
struct ShardUpload<'a> {
    transport: &'a dyn Transport,
    servers: &'a [String],
    progress: Option<&'a dyn Progress>,
}

impl ShardUpload<'_> {
    async fn upload(&self, first: usize, data: Bytes) -> Upload {
        let mut upload = Upload {
            first,
            stored: None,
            errors: Vec::new(),
        };
        let n = self.servers.len();
        for server in (0..n).map(|j| (first + j) % n) {
            match self
                .transport
                .put_blob(&self.servers[server], data.clone())
                .await
            {
                Ok(_) => {
                    upload.stored = Some((server, data.len() as u64));
                    if let Some(p) = self.progress {
                        p.advance(data.len() as u64);
                    }
                    break;
                }
                Err(e) => {
                    tracing_failure(&self.servers[server], &e);
                    upload.errors.push(e.to_string());
                }
            }
        }
        upload
    }
}

/// A file under `.agigit/tmp`, removed when dropped.
struct TempFile {
    path: std::path::PathBuf,
}

impl TempFile {
    fn new(repo: &Repository, what: &str) -> Result<Self, Error> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = repo.root().join(crate::worktree::DOT_DIR).join("tmp");
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(TempFile {
            path: dir.join(format!("{what}-{}-{n}.pack", std::process::id())),
        })
    }

    /// Fills the file through `fill` (buffered); returns its length.
    fn write_with(
        &self,
        fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        let file = std::fs::File::create(&self.path).map_err(Error::io(&self.path))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        fill(&mut out)?;
        std::io::Write::flush(&mut out).map_err(Error::io(&self.path))?;
        drop(out);
        Ok(std::fs::metadata(&self.path)
            .map_err(Error::io(&self.path))?
            .len())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `len` bytes of `path` from `offset`.
fn read_at(path: &std::path::Path, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::File::open(path).map_err(Error::io(path))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .map_err(Error::io(path))?;
    let mut data = vec![0u8; len];
    file.read_exact(&mut data).map_err(Error::io(path))?;
    Ok(data)
}

/// A commit the relays list, checked: its id, the name it is published under, its packs.
struct Listed {
    id: ObjectId,
    published: ObjectId,
    /// The parents (commit ids, from the commit itself).
    parents: Vec<ObjectId>,
    /// The key epoch its event and packs are sealed in (0 for a public repository).
    epoch: u32,
    packs: Vec<BlobHash>,
    /// What the labelled packs hold.
    parts: BTreeMap<BlobHash, String>,
}

/// Which packs a fetch wants: those of new commits in the parts `wanted`; and, for commits
/// already local, those of the parts `wanted` that the repository does not hold yet.
struct Want {
    wanted: BTreeSet<Part>,
    held: BTreeSet<Part>,
}

impl Want {
    fn wants(&self, commit_is_local: bool, label: Option<&String>) -> bool {
        // An unlabelled pack, or one labelled with a part this build does not know, holds what
        // every checkout needs.
        let Some(part) = label.and_then(|l| Part::from_name(l)) else {
            return !commit_is_local;
        };
        self.wanted.contains(&part) && (!commit_is_local || !self.held.contains(&part))
    }
}

impl Repository {
    /// Pushes `branch` to the repository `repo_id` owned by `signer`, through `transport`.
    ///
    /// # Errors
    /// [`Error::Network`] when fewer than `min_accepted` servers or relays take a step (nothing
    /// after that step is published: push again to resume); [`Error::NeedsKey`] for a private
    /// repository without its keys; [`Error::Invalid`] when the remote branch has commits this
    /// repository lacks, or the remote's privacy differs from the local one; store errors.
    pub async fn push<S: Signer + Sync>(
        &self,
        transport: &dyn Transport,
        signer: &S,
        repo_id: &RepoId,
        branch: &str,
        options: PushOptions<'_>,
    ) -> Result<PushReport, Error> {
        let keys = options.keys;
        if keys.is_none() && self.is_private()? {
            return Err(Error::NeedsKey(
                "this repository is private: push with its keys (unwrapped with your secret key), so nothing leaves the machine unencrypted".to_owned(),
            ));
        }
        if keys.is_some() && !self.is_private()? {
            return Err(Error::Invalid(
                "keys given for a public repository: make it private first".to_owned(),
            ));
        }
        let name = RefName::branch(branch).map_err(|e| Error::Invalid(e.to_string()))?;
        let tip = self
            .refs()
            .resolve(&RefKey::Name(name.clone()))?
            .ok_or_else(|| Error::UnknownRevision(branch.to_owned()))?;
        let tracking =
            RefName::remote("origin", branch).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut report = PushReport {
            tip: Some(tip),
            private: keys.is_some(),
            ..PushReport::default()
        };
        let publish_name = |id: &ObjectId| keys.map_or(*id, |k| k.commit_name(id));
        // What the relays say the branch is now: never move it backwards or sideways.
        let coordinate = RepoCoordinate::new(signer.public_key(), repo_id.clone());
        let current = self.remote_state(transport, &coordinate, true).await?;
        // Build on nothing older than what this clone accepted: a relay replaying an old state
        // (or having lost it) must not make this push drop the branches added since.
        if let Some((at, id)) = self.accepted_state(&coordinate)? {
            let offered = current
                .as_ref()
                .map(|s| (s.created_at().as_secs(), std::cmp::Reverse(s.id())));
            if offered.is_none_or(|o| o < (at, std::cmp::Reverse(id))) {
                return Err(Error::StaleState {
                    repo: coordinate.to_string(),
                    offered: offered.map_or(0, |o| o.0),
                    accepted: at,
                });
            }
        }
        if let Some(state) = &current {
            match (state.body().keys.is_some(), keys.is_some()) {
                (true, false) => {
                    return Err(Error::Invalid(format!(
                        "{coordinate} is private on the relays and this repository is public: push it under another repository id"
                    )));
                }
                (false, true) if !state.body().refs.is_empty() => {
                    return Err(Error::Invalid(format!(
                        "{coordinate} is public on the relays and this repository is private: push it under another repository id"
                    )));
                }
                _ => {}
            }
        }
        // The remote branch, under its plain name, or (private) under an opaque name of any
        // key epoch.
        let published_refs = match keys {
            Some(k) => k.branch_refs(branch)?,
            None => vec![name.clone()],
        };
        let remote_tip = current.as_ref().and_then(|s| {
            published_refs
                .iter()
                .find_map(|r| s.body().refs.get(r).copied())
        });
        let is_published_as = |id: &ObjectId, r: &ObjectId| match keys {
            Some(k) => k.is_name_of(id, r),
            None => id == r,
        };
        // What the remote has: the history of its tip, which must be part of the local one
        // (found by its published name), and, for a fork, the foundation's objects (fetched from
        // the foundation's own repository). Not the tracking ref: it may come from another
        // repository or from relays that lost the data since.
        let mut have: Vec<ObjectId> = Vec::new();
        if let Some(r) = remote_tip {
            if is_published_as(&tip, &r) {
                // The data is there; a private repository whose readers changed still needs a
                // new state event to carry the new envelope.
                let envelope = keys.map(PrivateKeys::envelope_bytes);
                let stale = current.as_ref().is_some_and(|s| s.body().keys != envelope);
                if stale {
                    let published = publish_state(
                        transport,
                        signer,
                        current.as_ref(),
                        repo_id,
                        (branch, r),
                        keys,
                        options.min_accepted,
                    )
                    .await?;
                    self.record_state(&coordinate, &published)?;
                } else {
                    report.up_to_date = true;
                }
                self.set_ref(tracking, tip)?;
                return Ok(report);
            }
            let history =
                agigit_dag::log(self.store(), &[tip], agigit_dag::Order::Topological, false)
                    .map_err(|e| Error::Invalid(e.to_string()))?;
            let Some(remote_commit) = history.into_iter().find(|id| is_published_as(id, &r)) else {
                return Err(Error::Invalid(format!(
                    "the remote branch {branch} has commits this repository does not: pull, merge, then push"
                )));
            };
            have.push(remote_commit);
        }
        let store = self.store();
        if let Some(base) = self.fork_base()? {
            have.push(base.commit);
        }
        // One pack per part (and one for the commits and the trees above the parts), so that a
        // reader can fetch only the parts it wants.
        let groups = pack::objects_by_part(store, &[tip], &have)?;
        let new_commits: Vec<ObjectId> = groups
            .iter()
            .filter(|(part, _)| part.is_none())
            .flat_map(|(_, objects)| objects.iter())
            .filter(|(k, _)| *k == agigit_dag::Kind::Commit)
            .map(|(_, id)| *id)
            .collect();
        let servers = transport.push_servers();
        if servers.is_empty() {
            return Err(net(NetError::NoServers { role: "push" }));
        }
        let mut packs = Vec::new();
        let mut pack_parts = BTreeMap::new();
        for (part, objects) in &groups {
            let manifest = self
                .send_pack(transport, &servers, objects, options, &mut report)
                .await?;
            packs.push(manifest);
            if let Some(part) = part {
                pack_parts.insert(manifest, part.name().to_owned());
            }
        }
        report.manifest = packs.first().copied();

        // 3. Commit events, oldest first; 4. the state event.
        // Newer than the state it replaces, even within the same second.
        let now = after(current.as_ref());
        for id in new_commits.iter().rev() {
            let commit = store.find_commit(id)?;
            let mut buf = Vec::new();
            let body = store.find(id, &mut buf)?.data.to_vec();
            let published = publish_name(id);
            let payload = match keys {
                Some(k) => k.seal(Sealed::Commit(&published), &body)?,
                None => body,
            };
            let event = CommitEvent {
                repo: coordinate.clone(),
                commit: published,
                parents: commit.parents.iter().map(publish_name).collect(),
                packs: packs.clone(),
                pack_parts: pack_parts.clone(),
                encryption: keys.map(PrivateKeys::scheme),
                payload,
            };
            let signed =
                Signed::sign(event, signer, now).map_err(|e| Error::Invalid(e.to_string()))?;
            transport
                .publish(signed.event(), options.min_accepted)
                .await
                .map_err(net)?;
        }
        let published = publish_state(
            transport,
            signer,
            current.as_ref(),
            repo_id,
            (branch, publish_name(&tip)),
            keys,
            options.min_accepted,
        )
        .await?;
        self.record_state(&coordinate, &published)?;
        self.set_ref(tracking, tip)?;
        Ok(report)
    }

    /// Sends one pack of `objects`: written to a temporary file (sealed when private), cut into
    /// segments, each erasure-coded and its shards uploaded by placement; then the manifest (sealed
    /// when private) on every server. Returns the manifest's blob hash.
    async fn send_pack(
        &self,
        transport: &dyn Transport,
        servers: &[String],
        objects: &[(agigit_dag::Kind, ObjectId)],
        options: PushOptions<'_>,
        report: &mut PushReport,
    ) -> Result<BlobHash, Error> {
        let (store, keys) = (self.store(), options.keys);
        // The pack goes to a temporary file (sealed on the way when private), so memory holds
        // one object while it is written and a few segments while it is sent.
        let pack_file = TempFile::new(self, "push")?;
        let pack_len = pack_file.write_with(|out| match keys {
            Some(k) => {
                let mut sealer = k.sealing_writer(Sealed::Pack, out)?;
                pack::write_pack_to(store, objects, &mut sealer)?;
                sealer.finish().map_err(Error::io(&pack_file.path))?;
                Ok(())
            }
            None => pack::write_pack_to(store, objects, out).map(|_| ()),
        })?;
        report.objects += objects.len();
        report.pack_bytes += pack_len;

        // 1. Shards: a few segments at a time, read, coded and sent; each shard to the server
        //    the placement names, to the next one that works when that one fails.
        let segment_size = options.segment_size;
        if segment_size == 0 || segment_size as u64 > agigit_shard::MAX_SEGMENT_SIZE {
            return Err(Error::Invalid(format!(
                "segment size {segment_size}: use 1 byte to 1 GiB"
            )));
        }
        let spec = options.code.spec();
        let placement =
            Placement::new(servers.len(), &spec).map_err(|e| Error::Invalid(e.to_string()))?;
        let count = usize::try_from(pack_len.div_ceil(segment_size as u64))
            .map_err(|_| Error::Invalid("the pack has too many segments".into()))?;
        let progress = options.progress;
        if let Some(p) = progress {
            let shard_len = options.code.shard_len(segment_size) as u64;
            p.begin("upload shards", shard_len * spec.n as u64 * count as u64);
        }
        let uploader = ShardUpload {
            transport,
            servers,
            progress,
        };
        let (code, placement, path) = (options.code, &placement, &pack_file.path);
        let segments: Vec<Result<SegmentUpload, Error>> = stream::iter(0..count)
            .map(|index| {
                let uploader = &uploader;
                async move {
                    let offset = index as u64 * segment_size as u64;
                    let len = usize::try_from((pack_len - offset).min(segment_size as u64))
                        .unwrap_or(segment_size);
                    let data = read_at(path, offset, len)?;
                    let shards = code
                        .encode(&data)
                        .map_err(|e| Error::Invalid(format!("erasure coding: {e}")))?;
                    drop(data);
                    let hashes: Vec<BlobHash> = shards.iter().map(BlobHash::digest).collect();
                    let uploads = futures_util::future::join_all(
                        shards.into_iter().enumerate().map(|(i, shard)| {
                            uploader.upload(placement.server_of(index, i), Bytes::from(shard))
                        }),
                    )
                    .await;
                    Ok(SegmentUpload { hashes, uploads })
                }
            })
            .buffered(options.parallel.div_ceil(spec.n).max(1))
            .collect()
            .await;
        if let Some(p) = progress {
            p.end();
        }
        drop(pack_file);
        let mut hashes = Vec::with_capacity(count);
        let mut failures = BTreeSet::new();
        for (index, segment) in segments.into_iter().enumerate() {
            let segment = segment?;
            let mut stored = 0;
            for upload in segment.uploads {
                failures.extend(upload.errors);
                match upload.stored {
                    Some((server, len)) => {
                        stored += 1;
                        report.shards += 1;
                        report.rerouted += usize::from(server != upload.first);
                        *report
                            .bytes_per_server
                            .entry(servers[server].clone())
                            .or_default() += len;
                    }
                    None => report.lost += 1,
                }
            }
            // Every segment must still be rebuildable from what was stored.
            if stored < spec.k {
                return Err(Error::Network(format!(
                    "segment {index} has only {stored} of the {} shards it needs stored: {}; push again when the servers are back",
                    spec.k,
                    failures.into_iter().collect::<Vec<_>>().join("; ")
                )));
            }
            hashes.push(segment.hashes);
        }
        let manifest = ShardManifest::new(spec, segment_size as u64, pack_len, hashes)
            .map_err(|e| Error::Invalid(e.to_string()))?;

        // 2. The manifest (sealed when private), on every push server.
        let mut manifest_bytes = manifest.encode();
        if let Some(k) = keys {
            manifest_bytes = k.seal(Sealed::Manifest, &manifest_bytes)?;
        }
        let manifest_bytes = Bytes::from(manifest_bytes);
        let manifest_hash = BlobHash::digest(&manifest_bytes);
        let results = futures_util::future::join_all(
            servers
                .iter()
                .map(|s| transport.put_blob(s, manifest_bytes.clone())),
        )
        .await;
        let mut stored = 0;
        let mut errors = Vec::new();
        for (server, result) in servers.iter().zip(results) {
            match result {
                Ok(_) => {
                    stored += 1;
                    *report.bytes_per_server.entry(server.clone()).or_default() +=
                        manifest_bytes.len() as u64;
                }
                Err(e) => {
                    tracing_failure(server, &e);
                    errors.push(e.to_string());
                }
            }
        }
        if stored < options.min_accepted.min(servers.len()) {
            return Err(Error::Network(format!(
                "the pack manifest is stored on {stored} servers, {} required: {}; push again when the servers are back",
                options.min_accepted,
                errors.join("; ")
            )));
        }
        Ok(manifest_hash)
    }

    /// Points `name` at `id`, whatever it held.
    fn set_ref(&self, name: RefName, id: ObjectId) -> Result<(), Error> {
        self.refs().commit(Transaction::new().edit(
            RefKey::Name(name),
            Expected::Any,
            Some(Target::Id(id)),
        ))?;
        Ok(())
    }

    /// Fetches branch `branch` of `repo` into `refs/remotes/origin/<branch>`, then fast-forwards
    /// the local branch and (when it is checked out) the working directory.
    ///
    /// # Errors
    /// [`Error::Network`] when no valid state is found or a pack cannot be rebuilt from the
    /// servers that answer; [`Error::Corrupt`] for data that does not match its hashes;
    /// [`Error::Invalid`] when the local branch has diverged; [`Error::NeedsKey`] or
    /// [`Error::NotAReader`] for a private repository the given secret cannot open.
    pub async fn pull(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        branch: &str,
        options: FetchOptions<'_>,
    ) -> Result<PullReport, Error> {
        let before = self.parts()?;
        let report = self.fetch(transport, repo, branch, options).await?;
        let Some(tip) = report.tip else {
            return Ok(report);
        };
        if let Err(e) = self.fast_forward(branch, tip, before.as_ref(), options.force) {
            // The files of parts the fetch added are not checked out: a later pull must still
            // see them as new.
            self.set_parts(before.as_ref())?;
            return Err(e);
        }
        Ok(report)
    }

    /// Moves `branch` forward to `tip` (and the files, when it is checked out); `before` is the
    /// parts held before the fetch, whose files are already checked out.
    fn fast_forward(
        &self,
        branch: &str,
        tip: ObjectId,
        before: Option<&BTreeSet<Part>>,
        force: bool,
    ) -> Result<(), Error> {
        let name = RefName::branch(branch).map_err(|e| Error::Invalid(e.to_string()))?;
        let local = self.refs().resolve(&RefKey::Name(name.clone()))?;
        let checked_out = self.current_branch()? == Some(name.clone());
        if let Some(l) = local {
            if l == tip || is_ancestor(self.store(), &tip, &l).unwrap_or(false) {
                // A partial clone that now holds more parts: check out their files.
                if checked_out && self.parts()?.as_ref() != before {
                    let tree = self.store().find_commit(&l)?.tree;
                    let previous = crate::worktree::files_in(self.store(), &tree, before)?;
                    self.update_worktree("pull", &previous, &l, force)?;
                }
                return Ok(());
            }
            if !is_ancestor(self.store(), &l, &tip).map_err(|e| Error::Invalid(e.to_string()))? {
                return Err(Error::Invalid(format!(
                    "branch {branch} has diverged from the remote: merge origin/{branch} into it"
                )));
            }
        }
        if checked_out {
            let previous = match local {
                Some(l) => crate::worktree::files_in(
                    self.store(),
                    &self.store().find_commit(&l)?.tree,
                    before,
                )?,
                None => BTreeMap::new(),
            };
            self.update_worktree("pull", &previous, &tip, force)?;
        }
        // A clone of a fork is a fork of the same foundation: its own commits stay deltas.
        if self.fork_base()?.is_none()
            && let Some(base) = self.store().find_commit(&tip)?.base
        {
            self.set_fork_base(&base.repo, base.commit)?;
        }
        let expected = local.map_or(Expected::Absent, |l| Expected::Value(Target::Id(l)));
        self.refs().commit(Transaction::new().edit(
            RefKey::Name(name),
            expected,
            Some(Target::Id(tip)),
        ))?;
        Ok(())
    }

    /// Fetches branch `branch` of `repo` into `refs/remotes/origin/<branch>` without touching
    /// local branches or files. Packs whose objects are all local are not fetched again.
    ///
    /// # Errors
    /// As [`pull`](Self::pull).
    pub async fn fetch(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        branch: &str,
        options: FetchOptions<'_>,
    ) -> Result<PullReport, Error> {
        let name = RefName::branch(branch).map_err(|e| Error::Invalid(e.to_string()))?;
        let Some(state) = self.remote_state(transport, repo, false).await? else {
            return Err(Error::Network(format!(
                "no valid state event for {repo} on the fetch relays"
            )));
        };
        // Never back to a state older than one this clone accepted: a relay replaying an old
        // (validly signed) state cannot roll the clone back.
        let mut state_forked = false;
        if let Some((at, id)) = self.accepted_state(repo)? {
            let offered = (state.created_at().as_secs(), state.id());
            if (offered.0, std::cmp::Reverse(offered.1)) < (at, std::cmp::Reverse(id)) {
                return Err(Error::StaleState {
                    repo: repo.to_string(),
                    offered: offered.0,
                    accepted: at,
                });
            }
            // A newer state that does not build on the one accepted: the history forked.
            if offered.1 != id && state.body().prev != Some(id) {
                tracing::warn!(%repo, "the repository's state history forked: the newest state does not build on the one this clone accepted");
                state_forked = true;
            }
        }
        let keys = open_keys(repo, state.body(), options.secret)?;
        let published_refs = match &keys {
            Some(k) => k.branch_refs(branch)?,
            None => vec![name.clone()],
        };
        let Some(published_tip) = published_refs
            .iter()
            .find_map(|r| state.body().refs.get(r).copied())
        else {
            return Err(Error::UnknownRevision(format!("origin/{branch}")));
        };
        let mut report = PullReport {
            envelope: state.body().keys.clone(),
            state_forked,
            ..PullReport::default()
        };
        let held: BTreeSet<Part> = self
            .parts()?
            .unwrap_or_else(|| Part::ALL.into_iter().collect());
        let want = Want {
            wanted: match options.parts {
                Some(parts) => {
                    let wanted: BTreeSet<Part> = parts.iter().copied().collect();
                    if self.head()?.is_some() && !wanted.is_superset(&held) {
                        return Err(Error::Invalid(
                            "a repository can fetch more parts, not drop some it holds: clone again with the parts you want".to_owned(),
                        ));
                    }
                    wanted
                }
                None => held.clone(),
            },
            held,
        };
        let widening = !want.held.is_superset(&want.wanted);
        let tip = match &keys {
            // Public: the state names the commit, and nothing is fetched when it is local.
            None if !widening && self.store().contains(&published_tip)? => published_tip,
            _ => {
                let listed = self.list_commits(transport, repo, keys.as_ref()).await?;
                let tip = match &keys {
                    None => published_tip,
                    Some(_) => listed
                        .iter()
                        .find(|l| l.published == published_tip)
                        .map(|l| l.id)
                        .ok_or_else(|| {
                            Error::Network(format!(
                                "the remote's tip is in no commit event the relays list for {repo}"
                            ))
                        })?,
                };
                self.fetch_packs(
                    transport,
                    &listed,
                    &[tip],
                    keys.as_ref(),
                    &want,
                    options,
                    &mut report,
                )
                .await?;
                tip
            }
        };
        report.tip = Some(tip);
        if !self.store().contains(&tip)? {
            return Err(Error::Network(format!(
                "the remote's tip {tip} is in no pack the relays list"
            )));
        }
        // A fork's commits name their foundation (and its first commit descends from it): fetch
        // the foundation too, from its own repository, then check the history is complete.
        let (foundations, missing) = self.walk_history(&tip)?;
        for base in foundations {
            if !self.store().contains(&base.commit)? {
                let coordinate: RepoCoordinate = base.repo.parse().map_err(|e| {
                    Error::Corrupt(format!(
                        "a fork names a bad foundation {:?}: {e}",
                        base.repo
                    ))
                })?;
                let base_keys = match self.remote_state(transport, &coordinate, false).await? {
                    Some(s) => open_keys(&coordinate, s.body(), options.secret)?,
                    None => None,
                };
                let listed = self
                    .list_commits(transport, &coordinate, base_keys.as_ref())
                    .await?;
                self.fetch_packs(
                    transport,
                    &listed,
                    &[base.commit],
                    base_keys.as_ref(),
                    &want,
                    options,
                    &mut report,
                )
                .await?;
            }
        }
        if !missing.is_empty() {
            let (_, still) = self.walk_history(&tip)?;
            if let Some(m) = still.first() {
                return Err(Error::Network(format!(
                    "commit {m} of the remote's history is in no pack the relays list"
                )));
            }
        }
        self.set_parts(Some(&want.wanted))?;
        let tracking =
            RefName::remote("origin", branch).map_err(|e| Error::Invalid(e.to_string()))?;
        // A remote branch that moves to a commit not descending from where it was is reported,
        // never followed silently.
        if let Some(old) = self.refs().resolve(&RefKey::Name(tracking.clone()))?
            && old != tip
            && !is_ancestor(self.store(), &old, &tip).unwrap_or(false)
        {
            tracing::warn!(%old, new = %tip, "origin/{branch} was rewritten: it no longer descends from where it was");
            report.forced_from = Some(old);
        }
        self.set_ref(tracking, tip)?;
        self.record_state(repo, &state)?;
        Ok(report)
    }

    /// The state of `repo` that counts on the fetch relays (and, with `push`, the push relays
    /// too: a push builds on the newest state any relay it writes to holds), if any.
    async fn remote_state(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        push: bool,
    ) -> Result<Option<Signed<RepoState>>, Error> {
        let filter = [Filter::new()
            .kind(Kind::Custom(agigit_event::kinds::REPO_STATE))
            .author(repo.owner)
            .custom_tag(tag('d')?, repo.id.as_str())];
        let mut states = transport.query(&filter).await.map_err(net)?;
        if push {
            states.extend(transport.query_push(&filter).await.map_err(net)?);
        }
        Ok(resolve_state(repo, &[], states).current)
    }

    /// The newest state of `repo` this clone has accepted: its time and event id.
    fn accepted_state(
        &self,
        repo: &RepoCoordinate,
    ) -> Result<Option<(u64, agigit_event::nostr::prelude::EventId)>, Error> {
        let path = self.root().join(crate::worktree::DOT_DIR).join("states");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        let key = repo.to_string();
        for line in text.lines() {
            let mut fields = line.split(' ');
            if fields.next() != Some(key.as_str()) {
                continue;
            }
            let parsed = (|| {
                let at = fields.next()?.parse().ok()?;
                let id = agigit_event::nostr::prelude::EventId::from_hex(fields.next()?).ok()?;
                Some((at, id))
            })();
            return parsed
                .map(Some)
                .ok_or_else(|| Error::Corrupt(format!("{}: bad line {line:?}", path.display())));
        }
        Ok(None)
    }

    /// Records `state` as the newest state of `repo` this clone has accepted.
    fn record_state(&self, repo: &RepoCoordinate, state: &Signed<RepoState>) -> Result<(), Error> {
        let path = self.root().join(crate::worktree::DOT_DIR).join("states");
        let key = repo.to_string();
        let old = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        let mut text: String = old
            .lines()
            .filter(|l| l.split(' ').next() != Some(key.as_str()))
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(&format!(
            "{key} {} {}\n",
            state.created_at().as_secs(),
            state.id().to_hex()
        ));
        crate::worktree::write_atomic(&path, false, |f| {
            std::io::Write::write_all(f, text.as_bytes()).map_err(Error::io(&path))
        })
    }

    /// The fork bases named by the local part of `tip`'s history, and the commits it lacks.
    fn walk_history(&self, tip: &ObjectId) -> Result<(Vec<ForkBase>, Vec<ObjectId>), Error> {
        let (mut bases, mut missing) = (Vec::new(), Vec::new());
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![*tip];
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            if !self.store().contains(&id)? {
                missing.push(id);
                continue;
            }
            let commit = self.store().find_commit(&id)?;
            if let Some(base) = commit.base
                && !bases.contains(&base)
            {
                bases.push(base);
            }
            stack.extend(commit.parents);
        }
        Ok((bases, missing))
    }

    /// The commit events of `repo`, each verified (signature, then its payload against the id
    /// it claims; for a private repository, opened with `keys` and its opaque name checked).
    /// Events that fail are left out.
    async fn list_commits(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        keys: Option<&PrivateKeys>,
    ) -> Result<Vec<Listed>, Error> {
        let events = transport
            .query(&[Filter::new()
                .kind(Kind::Custom(agigit_event::kinds::COMMIT))
                .author(repo.owner)
                .custom_tag(tag('a')?, repo.to_string())])
            .await
            .map_err(net)?;
        let mut listed = Vec::new();
        for event in events {
            // Every event is verified again here: the transport's word is not enough.
            let Ok(commit) = Signed::<CommitEvent>::from_event(event) else {
                continue;
            };
            let body = commit.body();
            // Only the owner writes a repository's history, whatever a transport's filter let
            // through.
            if body.repo != *repo || commit.author() != repo.owner {
                tracing::warn!(commit = %body.commit, author = %commit.author(), "ignoring a commit event not signed by the repository's owner");
                continue;
            }
            let (id, epoch, plain) = match (keys, &body.encryption) {
                (None, None) => (
                    agigit_dag::object::compute_id(agigit_dag::Kind::Commit, &body.payload),
                    0,
                    body.payload.clone(),
                ),
                (Some(k), Some(scheme)) => {
                    let Some(epoch) = crate::private::epoch_of(scheme) else {
                        continue;
                    };
                    let Ok(plain) =
                        k.open_sealed(Sealed::Commit(&body.commit), epoch, &body.payload)
                    else {
                        tracing::warn!(commit = %body.commit, epoch, "a commit event does not open with this keyring");
                        continue;
                    };
                    let id = agigit_dag::object::compute_id(agigit_dag::Kind::Commit, &plain);
                    if k.commit_name_in(epoch, &id)? != body.commit {
                        continue;
                    }
                    (id, epoch, plain)
                }
                _ => continue,
            };
            if keys.is_none() && id != body.commit {
                tracing::warn!(commit = %body.commit, "a commit event's payload is another commit");
                continue;
            }
            // The parents the commit itself names (plain ids, whatever epoch they were published
            // in): what the walk from a tip follows.
            let Ok(decoded) = agigit_dag::Commit::decode(&plain) else {
                tracing::warn!(commit = %body.commit, "a commit event's payload is not a commit");
                continue;
            };
            listed.push(Listed {
                id,
                published: body.commit,
                parents: decoded.parents,
                epoch,
                packs: body.packs.clone(),
                parts: body.pack_parts.clone(),
            });
        }
        Ok(listed)
    }

    /// Fetches the packs that `want` asks for of the commits of `listed` reachable from `tips`
    /// (commit ids): a commit already local ends the walk there unless parts are being added.
    /// Packs of listed commits that no tip reaches are never downloaded.
    #[allow(
        clippy::too_many_arguments,
        reason = "one private helper of fetch; issue 15 splits this module"
    )]
    async fn fetch_packs(
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
            let local = self.store().contains(&l.id)?;
            for p in &l.packs {
                if want.wants(local, l.parts.get(p)) && !packs.iter().any(|(q, _)| q == p) {
                    packs.push((*p, l.epoch));
                }
            }
            if !local || widening {
                stack.extend(l.parents.iter().filter_map(|p| by_id.get(p).copied()));
            }
        }
        for (manifest, epoch) in packs {
            let sealed = keys.map(|k| (k, epoch));
            self.fetch_pack(transport, &manifest, sealed, options, report)
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
        options: FetchOptions<'_>,
        report: &mut PullReport,
    ) -> Result<(), Error> {
        let servers = transport.fetch_servers();
        let mut errors = Vec::new();
        let mut manifest = None;
        for s in &servers {
            let decoded = match transport
                .get_blob(s, manifest_hash, MAX_MANIFEST_BYTES)
                .await
            {
                Ok(bytes) => {
                    report.bytes += bytes.len() as u64;
                    let plain = match keys {
                        Some((k, epoch)) => k.open_sealed(Sealed::Manifest, epoch, &bytes),
                        None => Ok(bytes.to_vec()),
                    };
                    plain.and_then(|p| {
                        ShardManifest::decode(&p).map_err(|e| Error::Corrupt(e.to_string()))
                    })
                }
                Err(e) => Err(net(e)),
            };
            match decoded {
                Ok(m) => {
                    manifest = Some(m);
                    break;
                }
                Err(e) => errors.push(format!("{s}: {e}")),
            }
        }
        let manifest = manifest.ok_or_else(|| {
            Error::Network(format!(
                "no server has pack manifest {manifest_hash}: {}",
                errors.join("; ")
            ))
        })?;
        // Memory holds the segments in flight: the manifest's segment size, which its author
        // chose, is bounded here, and fewer segments fly at once when they are large.
        if manifest.segment_size() > MAX_FETCH_SEGMENT {
            return Err(Error::Limit {
                what: format!("the segment size of pack {manifest_hash}"),
                size: manifest.segment_size(),
                limit: MAX_FETCH_SEGMENT,
            });
        }
        let code = codec_for(&manifest.codec()).map_err(|e| Error::Corrupt(e.to_string()))?;
        // Where the pusher put each shard, if these are its servers in its order; others after.
        let placement = Placement::new(servers.len().max(1), &manifest.codec())
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        let context = SegmentFetch {
            transport,
            servers: &servers,
            manifest: &manifest,
            code: code.as_ref(),
            placement: &placement,
        };
        // Segments in order, several at once; within a segment, k shards at once.
        let by_memory = usize::try_from(FETCH_MEMORY / manifest.segment_size().max(1))
            .unwrap_or(usize::MAX)
            .max(1);
        let in_flight = options
            .parallel
            .div_ceil(manifest.codec().k)
            .clamp(1, by_memory);
        let mut segments = stream::iter(0..manifest.segment_count())
            .map(|segment| context.fetch(segment))
            .buffered(in_flight);
        // Segments arrive in order and go to a temporary file: memory holds the segments in
        // flight, not the pack.
        let pack_file = TempFile::new(self, "fetch")?;
        let path = &pack_file.path;
        let mut out = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(path).map_err(Error::io(path))?,
        );
        if let Some(p) = options.progress {
            p.begin("download pack", manifest.total_len());
        }
        while let Some(result) = segments.next().await {
            let (bytes, shards, downloaded) = result?;
            if let Some(p) = options.progress {
                p.advance(bytes.len() as u64);
            }
            std::io::Write::write_all(&mut out, &bytes).map_err(Error::io(path))?;
            report.shards += shards;
            report.bytes += downloaded;
        }
        drop(segments);
        std::io::Write::flush(&mut out).map_err(Error::io(path))?;
        drop(out);
        if let Some(p) = options.progress {
            p.end();
        }
        let input = std::fs::File::open(path).map_err(Error::io(path))?;
        let ids = match keys {
            Some((k, epoch)) => {
                pack::read_pack_from(self.store(), k.opening_reader(Sealed::Pack, epoch, input)?)?
            }
            None => pack::read_pack_from(self.store(), input)?,
        };
        report.objects += ids.len();
        Ok(())
    }

    /// Records a private repository's key envelope (from [`PullReport::envelope`]) in
    /// `.agigit/keys`, so this clone is private too and pushes encrypted for the same readers.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for bytes that are not an envelope; I/O errors.
    pub fn save_envelope(&self, envelope: &[u8]) -> Result<(), Error> {
        agigit_crypt::Keyring::decode_public(envelope, &agigit_crypt::EcdhWrap)
            .map_err(|e| Error::Corrupt(format!("the repository's keyring: {e}")))?;
        crate::private::write_envelope(self.root(), envelope)
    }
}

/// The content key of a private repository `repo` (from its state's envelope), `None` for a
/// public one.
fn open_keys(
    repo: &RepoCoordinate,
    state: &RepoState,
    secret: Option<&ReaderSecret>,
) -> Result<Option<PrivateKeys>, Error> {
    let Some(envelope) = &state.keys else {
        return Ok(None);
    };
    let secret = secret.ok_or_else(|| {
        Error::NeedsKey(format!(
            "{repo} is private: fetch it with your secret key (set AGIGIT_NSEC or run `agigit key import`)"
        ))
    })?;
    PrivateKeys::open(envelope, secret).map(Some)
}

/// A time strictly after `current`'s (and not before now): a state event must be newer than the
/// one it replaces, even within the same second.
fn after(current: Option<&Signed<RepoState>>) -> Timestamp {
    Timestamp::from_secs(
        current
            .map_or(0, |s| s.created_at().as_secs().saturating_add(1))
            .max(Timestamp::now().as_secs()),
    )
}

/// Publishes the state that replaces `current`: `branch` at its published commit name (under an
/// opaque branch name for a private repository, replacing those of earlier key epochs), `HEAD`
/// on it, and (private) the keyring of `keys`.
async fn publish_state<S: Signer + Sync>(
    transport: &dyn Transport,
    signer: &S,
    current: Option<&Signed<RepoState>>,
    repo_id: &RepoId,
    (branch, published): (&str, ObjectId),
    keys: Option<&PrivateKeys>,
    min_accepted: usize,
) -> Result<Signed<RepoState>, Error> {
    let mut state = current.map_or_else(|| RepoState::new(repo_id.clone()), |s| s.body().clone());
    let name = match keys {
        Some(k) => {
            for old in k.branch_refs(branch)? {
                state.refs.remove(&old);
            }
            k.branch_ref(branch)?
        }
        None => RefName::branch(branch).map_err(|e| Error::Invalid(e.to_string()))?,
    };
    state.refs.insert(name.clone(), published);
    state.head = Some(name);
    state.keys = keys.map(PrivateKeys::envelope_bytes);
    state.prev = current.map(Signed::id);
    let signed =
        Signed::sign(state, signer, after(current)).map_err(|e| Error::Invalid(e.to_string()))?;
    transport
        .publish(signed.event(), min_accepted)
        .await
        .map_err(net)?;
    Ok(signed)
}

/// What fetching one segment needs.
struct SegmentFetch<'a> {
    transport: &'a dyn Transport,
    servers: &'a [String],
    manifest: &'a ShardManifest,
    code: &'a dyn ErasureCode,
    placement: &'a Placement,
}

impl SegmentFetch<'_> {
    /// Shard `index` of `segment` from its placement's server, else from the others in turn
    /// (the transport checks each blob against its hash).
    async fn shard(&self, segment: usize, index: usize, hash: &BlobHash) -> Option<Bytes> {
        let first = self.placement.server_of(segment, index) % self.servers.len().max(1);
        let order = self
            .servers
            .iter()
            .skip(first)
            .chain(self.servers.iter().take(first));
        // The manifest says how long every shard of this segment is: nothing longer is taken.
        let segment_len = usize::try_from(self.manifest.segment_len(segment)).unwrap_or(0);
        let len = self.code.shard_len(segment_len) as u64;
        for server in order {
            match self.transport.get_blob(server, hash, len).await {
                Ok(bytes) => return Some(bytes),
                Err(e) => {
                    tracing::debug!(%server, error = %e, "shard unavailable here; trying another server");
                }
            }
        }
        None
    }

    /// Rebuilds `segment`: asks for `k` shards at once (data shards first, for the fast path),
    /// then for more while fewer than `k` good ones are in. Returns the bytes, the shards
    /// received and the bytes downloaded.
    async fn fetch(&self, segment: usize) -> Result<(Vec<u8>, usize, u64), Error> {
        let hashes = self
            .manifest
            .shard_hashes(segment)
            .ok_or_else(|| Error::Corrupt(format!("manifest lacks segment {segment}")))?;
        let k = self.manifest.codec().k;
        let mut slots: Vec<Option<Bytes>> = vec![None; hashes.len()];
        let mut next = 0;
        let mut good = 0;
        let mut downloaded = 0u64;
        while good < k && next < hashes.len() {
            let wave: Vec<usize> = (next..hashes.len()).take(k - good).collect();
            next += wave.len();
            let got = futures_util::future::join_all(
                wave.iter().map(|&i| self.shard(segment, i, &hashes[i])),
            )
            .await;
            for (i, bytes) in wave.into_iter().zip(got) {
                if let Some(b) = bytes {
                    downloaded += b.len() as u64;
                    slots[i] = Some(b);
                    good += 1;
                }
            }
        }
        if good < k {
            return Err(Error::Network(format!(
                "segment {segment}: {good} good shards found, {k} needed; bring more servers back"
            )));
        }
        let refs: Vec<Option<&[u8]>> = slots.iter().map(|s| s.as_deref()).collect();
        let bytes = self
            .manifest
            .rebuild_segment(self.code, segment, &refs)
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        Ok((bytes, good, downloaded))
    }
}

fn tracing_failure(server: &str, e: &NetError) {
    tracing::warn!(%server, error = %e, "upload failed");
}
