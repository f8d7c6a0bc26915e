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

mod announce;
mod audit;
mod directory;
pub(crate) mod receipts;
#[cfg(feature = "eval")]
pub(crate) mod rounds;
pub use directory::{RefDirectory, TagEntry};
mod fetch;
mod gc;
mod handle;
mod orders;
mod packs;
mod partial;
mod pending;
mod push;
mod repair;
mod state;
mod transfer;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agigit_crypt::ReaderSecret;
use agigit_dag::ObjectId;
use agigit_dag::refs::{Expected, RefKey, RefName, Target, Transaction};
use agigit_event::nostr::prelude::SingleLetterTag;
use agigit_hash::BlobHash;
use agigit_net::NetError;
use agigit_shard::{Durability, ErasureCode, RebuildOdds};

use crate::error::Error;
use crate::private::PrivateKeys;
use crate::repository::Repository;
use crate::worktree::Part;

pub use audit::{AuditOptions, AuditReport, HeldBlob, PackAudit, RepairReport, SegmentHolding};
pub use gc::{GcOptions, GcReport, ServerGc};
pub use handle::Remote;
pub use partial::{PartialReport, PartialWant};

/// Transfers in flight at once when none is chosen.
pub const DEFAULT_PARALLEL: usize = crate::config::defaults::PARALLEL;

/// The largest pack manifest fetched (a manifest's length is not known before it arrives): an
/// 800 GB pack in 4 MiB segments of 10 shards needs 64 MiB (a push makes one pack per part).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// The largest segment a fetch accepts from a manifest (pushes use 1–4 MiB).
pub const MAX_FETCH_SEGMENT: u64 = 256 << 20;

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
    /// Relays that must accept each event (at least `durability`'s servers lost + 1 are
    /// asked for unless `accept_weaker`), and servers each pack manifest must be on.
    pub min_accepted: usize,
    /// How many push servers may be lost, whichever they are, with every pack still
    /// rebuildable from the others; `None` for the most the code gives on the push servers
    /// ([`Durability::best`]). A push whose stored shards fall short fails with
    /// [`push::Error::Weaker`](crate::push::Error::Weaker) and publishes nothing.
    pub durability: Option<Durability>,
    /// Take what was stored when it falls short of `durability` (the report says what it is).
    pub accept_weaker: bool,
    /// The probability that each server is up, for the report's rebuild odds.
    pub availability: f64,
    /// A private repository's keys (see [`Repository::private_keys`]): required when the
    /// repository is private, refused when it is not.
    pub keys: Option<&'a PrivateKeys>,
    /// Uploads in flight at once.
    pub parallel: usize,
    /// Where to report progress.
    pub progress: Option<&'a dyn Progress>,
}

impl<'a> PushOptions<'a> {
    /// Options for `code` with the [defaults](crate::config::defaults): 4 MiB segments, one
    /// acceptance per step, public, [`DEFAULT_PARALLEL`] uploads at once.
    pub fn new(code: &'a dyn ErasureCode) -> Self {
        Self {
            code,
            segment_size: crate::config::defaults::SEGMENT_SIZE,
            min_accepted: crate::config::defaults::MIN_ACCEPTED,
            durability: None,
            accept_weaker: false,
            availability: crate::config::defaults::AVAILABILITY,
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
            .field("durability", &self.durability)
            .field("accept_weaker", &self.accept_weaker)
            .field("availability", &self.availability)
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
    /// The key wrap a private repository's envelope is opened with; `None` for the default
    /// `EcdhWrap` (see [`Repository::make_private_with`]).
    pub key_wrap: Option<&'a std::sync::Arc<dyn agigit_crypt::KeyWrap>>,
    /// The cipher a private repository's content is opened with; `None` for the default
    /// AES-256-GCM stream (see [`PrivateKeys::with_cipher`]).
    pub cipher: Option<&'a std::sync::Arc<dyn agigit_crypt::SegmentCipher>>,
    /// The name remote branches are kept under: `refs/remotes/<remote_name>/<branch>`
    /// (`origin` by default; a fork fetches its foundation as `foundation`).
    pub remote_name: &'a str,
    /// Packs of at least this many bytes keep their rebuilt segments under `.agigit/fetch/`
    /// until all of the pack is stored, so that a fetch cut short resumes without downloading
    /// them again (each is checked again before it is used).
    pub resume_over: u64,
}

impl std::fmt::Debug for FetchOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("secret", &self.secret.is_some())
            .field("parallel", &self.parallel)
            .field("parts", &self.parts)
            .field("force", &self.force)
            .field("key_wrap", &self.key_wrap.is_some())
            .field("cipher", &self.cipher.is_some())
            .field("remote_name", &self.remote_name)
            .field("resume_over", &self.resume_over)
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
            key_wrap: None,
            cipher: None,
            remote_name: "origin",
            resume_over: crate::config::defaults::RESUME_PACK_BYTES,
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
#[derive(Clone, Debug, Default, PartialEq)]
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
    /// Shards no server took (the push still succeeds when the durability target holds).
    pub lost: usize,
    /// Shards a resumed push found on their server already, and did not send again.
    pub resumed: usize,
    /// The durability target the packs were held to.
    pub durability: Option<Durability>,
    /// Each pack sent: where its shards are and what that guarantees.
    pub packs: Vec<PackDurability>,
    /// Bytes uploaded per server (shards and manifests).
    pub bytes_per_server: BTreeMap<String, u64>,
    /// The pack manifest's blob hash.
    pub manifest: Option<BlobHash>,
    /// Whether the content was encrypted.
    pub private: bool,
    /// Nothing to send: the remote already has the tip.
    pub up_to_date: bool,
    /// Tags published with the state (those on the pushed history the remote lacked).
    pub tags: Vec<String>,
    /// Local tags the remote has at another commit or with another message: left as they are
    /// there.
    pub tags_rejected: Vec<String>,
    /// Where the time went.
    pub stages: StageTimes,
}

/// Where one pack's shards are, and what that guarantees.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PackDurability {
    /// The pack manifest's blob hash.
    pub manifest: BlobHash,
    /// The part it holds, or `None` for the commits and the trees above the parts.
    pub part: Option<String>,
    /// `k` and `n` of its code.
    pub code: (usize, usize),
    /// Segments.
    pub segments: usize,
    /// Shards (of all segments) and whether the manifest is there, per push server.
    pub servers: Vec<ServerHolding>,
    /// Servers that may be lost, whichever they are, with the pack still rebuildable.
    pub survives: usize,
    /// `m`: any this many servers rebuild it.
    pub servers_needed: usize,
    /// The odds of a rebuild when each server is up with probability `availability`.
    pub rebuild: RebuildOdds,
    /// The availability the odds assume.
    pub availability: f64,
}

/// One server's share of a pack.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerHolding {
    /// The server.
    pub server: String,
    /// Shards of the pack it holds.
    pub shards: usize,
    /// Whether it holds the pack manifest.
    pub manifest: bool,
}

/// A remote's branches and default branch ([`Repository::remote_refs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteRefs {
    /// The default branch: the one the remote's `HEAD` names.
    pub head: Option<String>,
    /// Each branch and the commit it is published at.
    pub branches: BTreeMap<String, ObjectId>,
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
    /// Segments an earlier, interrupted fetch had kept, used instead of downloaded.
    pub resumed_segments: usize,
    /// For a private repository, its key envelope (see [`Repository::save_envelope`]).
    pub envelope: Option<Vec<u8>>,
    /// The remote branch no longer descends from where it was before this fetch (the owner
    /// rewrote it): where it was.
    pub forced_from: Option<ObjectId>,
    /// The newest state does not build on the one this clone accepted before (its `prev` is
    /// another state): the repository's state history forked.
    pub state_forked: bool,
    /// Remote tags taken in (those whose commits are now local and that no local tag names).
    pub tags: Vec<String>,
    /// State events for the repository the relays hold that did not count for something other
    /// than being older: a stranger's (neither the owner nor a maintainer), another
    /// repository's, or one that does not verify.
    pub ignored_states: Vec<agigit_event::Ignored>,
    /// Where the time went.
    pub stages: StageTimes,
}

/// Where a transfer's time went: the time each stage of CPU work took on the pool (summed over
/// the jobs, which run in parallel and overlap the network), and the wall time of moving the
/// data. Stages a transfer does not have stay zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Push: writing packs from the store (reading and checking each object, sealing them
    /// when private, hashing and writing the pending file), on a thread beside the coding and
    /// the uploads.
    pub pack: Duration,
    /// Push: coding segments into shards and hashing every shard.
    pub encode: Duration,
    /// Pull: rebuilding segments from the shards received (through parity when data shards
    /// were missing).
    pub rebuild: Duration,
    /// Pull: storing the packs' objects as their segments arrive: hashing each against its id,
    /// writing and syncing it.
    pub store: Duration,
    /// Pull: reading the packs' segments as they arrive, opening them when private, and
    /// checking the objects' framing.
    pub open: Duration,
    /// Pull: writing the files of the new commit into the working directory (reading,
    /// checking and decoding every object written).
    pub checkout: Duration,
    /// Wall time from the first shard to the last: uploads (push) or downloads and rebuilds
    /// (pull), with the CPU work above overlapped.
    pub transfer: Duration,
}

impl StageTimes {
    /// The CPU stages' total.
    pub fn cpu(&self) -> Duration {
        self.pack + self.encode + self.rebuild + self.store + self.open + self.checkout
    }
}

/// Runs `f`, returning its result and how long it took.
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn net(e: NetError) -> Error {
    Error::Network(e.to_string())
}

fn tag(letter: char) -> Result<SingleLetterTag, Error> {
    SingleLetterTag::from_char(letter)
        .map_err(Error::invalid_input(format_args!("tag letter {letter:?}")))
}

impl Repository {
    /// Points `name` at `id`, whatever it held.
    fn set_ref(&self, name: RefName, id: ObjectId) -> Result<(), Error> {
        self.refs().commit(Transaction::new().edit(
            RefKey::Name(name),
            Expected::Any,
            Some(Target::Id(id)),
        ))?;
        Ok(())
    }
}
