//! Packs: the objects a push sends, as one byte stream that is erasure-coded into shards.
//!
//! A pack is `"AGPK" ‖ version (1) ‖ count (u32 LE)` followed by `count` loose objects
//! (`agigit <kind> <len>\0<body>`), each self-delimiting. Reading a pack checks every object
//! against its id before it is stored; a pack is untrusted input.

use std::collections::HashSet;

use agigit_hash::ObjectId;

use crate::model::Part;
use crate::object::{DecodeError, EntryMode, Kind, Limits, parse_header};

use crate::store::{FindError, FindExt, StoreError, Write, WriteError};

/// Why a pack could not be written or read. A pack is untrusted input: every way it can be
/// wrong is a typed error, and nothing from a bad object on is stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// The pack is malformed: bad magic or version, a truncated or bad object header, bytes
    /// after the last object.
    #[error("pack: {0}")]
    Corrupt(String),
    /// An object breaks the format's rules (a tree entry name above all).
    #[error("{what}: {source}")]
    Decode {
        /// Which object.
        what: String,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// The stream failed for a reason that is not about its content.
    #[error("the pack stream: {0}")]
    Io(#[source] std::io::Error),
    /// More objects than one pack can count.
    #[error("more than 2^32 objects in one pack")]
    TooManyObjects,
    /// An object to pack is missing or unreadable.
    #[error(transparent)]
    Find(#[from] FindError),
    /// Storing a read object failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Error = PackError;

/// The pack magic.
pub const PACK_MAGIC: &[u8; 4] = b"AGPK";
/// The pack version this crate writes and reads.
pub const PACK_VERSION: u8 = 1;

/// Every object reachable from `tips` (commits, parents, trees, files, tensors, their blobs and
/// base tensors) that is not reachable from `have`.
///
/// # Errors
/// Store errors: a missing object means the local repository is incomplete.
pub fn objects_between<S: FindExt + ?Sized>(
    store: &S,
    tips: &[ObjectId],
    have: &[ObjectId],
) -> Result<Vec<(Kind, ObjectId)>, Error> {
    let mut known = HashSet::new();
    let mut ignore = Vec::new();
    walk(store, commits(have), &mut known, &mut ignore, true)?;
    let mut out = Vec::new();
    walk(store, commits(tips), &mut known, &mut out, false)?;
    Ok(out)
}

/// Objects of one part (`None`: the commits and the trees above the parts), as a push sends them.
pub type PartGroup = (Option<Part>, Vec<(Kind, ObjectId)>);

/// [`objects_between`], grouped so that a reader can fetch some parts only: first the commits and
/// the trees above the parts (`None`), then each part's objects (`Some(part)`), each object once.
/// Empty groups are left out.
///
/// # Errors
/// As [`objects_between`].
pub fn objects_by_part<S: FindExt + ?Sized>(
    store: &S,
    tips: &[ObjectId],
    have: &[ObjectId],
) -> Result<Vec<PartGroup>, Error> {
    use crate::model::{DATA, ModelParts};
    let mut known = HashSet::new();
    let mut ignore = Vec::new();
    walk(store, commits(have), &mut known, &mut ignore, true)?;
    // The commits, and above each part the model tree and the data tree.
    let mut meta = Vec::new();
    let mut history = Vec::new();
    let mut stack: Vec<ObjectId> = tips.to_vec();
    while let Some(id) = stack.pop() {
        if !known.insert(id) {
            continue;
        }
        let commit = store.find_commit(&id)?;
        meta.push((Kind::Commit, id));
        history.push(commit.tree);
        stack.extend(commit.parents);
    }
    let mut parts: Vec<(Part, Vec<(Kind, ObjectId)>)> =
        Part::ALL.into_iter().map(|p| (p, Vec::new())).collect();
    for model in history {
        if known.insert(model) {
            meta.push((Kind::Tree, model));
        }
        if let Some(data) = store.find_tree(&model)?.get(DATA)
            && data.mode == EntryMode::Tree
            && known.insert(data.id)
        {
            meta.push((Kind::Tree, data.id));
        }
        let model_parts = ModelParts::read(store, &model)?;
        for (part, out) in &mut parts {
            if let Some(tree) = part.get(&model_parts) {
                walk(store, vec![(Kind::Tree, tree)], &mut known, out, false)?;
            }
        }
    }
    let mut groups = vec![(None, meta)];
    groups.extend(parts.into_iter().map(|(p, objects)| (Some(p), objects)));
    groups.retain(|(_, objects)| !objects.is_empty());
    Ok(groups)
}

fn commits(ids: &[ObjectId]) -> Vec<(Kind, ObjectId)> {
    ids.iter().map(|id| (Kind::Commit, *id)).collect()
}

/// Walks from `roots`, adding every object not yet `seen` to `out`. With `partial`, an object
/// that is not in the store ends the walk there (what a partial clone lacks is on the remote);
/// without, it is an error.
fn walk<S: FindExt + ?Sized>(
    store: &S,
    roots: Vec<(Kind, ObjectId)>,
    seen: &mut HashSet<ObjectId>,
    out: &mut Vec<(Kind, ObjectId)>,
    partial: bool,
) -> Result<(), Error> {
    let mut stack = roots;
    while let Some((kind, id)) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if partial && !store.contains(&id)? {
            continue;
        }
        out.push((kind, id));
        stack.extend(links(store, kind, &id)?);
    }
    Ok(())
}

/// The objects object `id` (of `kind`) names: a commit's tree and parents, a tree's entries, a
/// tensor's blobs and base, a chunk list's entries; a blob names none. Every walk of the object
/// graph (a pack's, a partial fetch's) follows these.
///
/// # Errors
/// Store errors: the object missing or not of `kind`.
pub fn links<S: FindExt + ?Sized>(
    store: &S,
    kind: Kind,
    id: &ObjectId,
) -> Result<Vec<(Kind, ObjectId)>, FindError> {
    Ok(match kind {
        Kind::Commit => {
            let c = store.find_commit(id)?;
            let mut out = vec![(Kind::Tree, c.tree)];
            out.extend(c.parents.iter().map(|p| (Kind::Commit, *p)));
            out
        }
        Kind::Tree => store
            .find_tree(id)?
            .entries()
            .iter()
            .map(|e| (e.mode.object_kind(), e.id))
            .collect(),
        Kind::Tensor => {
            let t = store.find_tensor(id)?;
            let mut out: Vec<_> = t.blobs.iter().map(|b| (Kind::Blob, *b)).collect();
            out.extend(t.base.map(|b| (Kind::Tensor, b)));
            out
        }
        Kind::Chunks => {
            let list = store.find_chunks(id)?;
            let kind = list.entry_kind();
            list.entries().iter().map(|e| (kind, e.id)).collect()
        }
        Kind::Blob => Vec::new(),
    })
}

/// Writes the pack of `objects` (read from `store`) into memory.
///
/// # Errors
/// Store errors.
pub fn write_pack<S: FindExt + ?Sized>(
    store: &S,
    objects: &[(Kind, ObjectId)],
) -> Result<Vec<u8>, Error> {
    let mut pack = Vec::new();
    write_pack_to(store, objects, &mut pack)?;
    Ok(pack)
}

/// Streams the pack of `objects` (read from `store`) into `out`, one object in memory at a time;
/// returns the bytes written.
///
/// # Errors
/// Store errors; [`PackError::Io`] when `out` fails.
pub fn write_pack_to<S: FindExt + ?Sized, W: std::io::Write>(
    store: &S,
    objects: &[(Kind, ObjectId)],
    mut out: W,
) -> Result<u64, Error> {
    let io = PackError::Io;
    let count = u32::try_from(objects.len()).map_err(|_| PackError::TooManyObjects)?;
    let mut header = PACK_MAGIC.to_vec();
    header.push(PACK_VERSION);
    header.extend_from_slice(&count.to_le_bytes());
    out.write_all(&header).map_err(io)?;
    let mut written = header.len() as u64;
    let mut buf = Vec::new();
    for (_, id) in objects {
        let object = store.find(id, &mut buf)?;
        let header = crate::object::header(object.kind, object.data.len() as u64);
        out.write_all(&header).map_err(io)?;
        out.write_all(object.data).map_err(io)?;
        written += (header.len() + object.data.len()) as u64;
    }
    out.flush().map_err(io)?;
    Ok(written)
}

/// The magic of a pack index (a pack manifest's annex).
pub const PACK_INDEX_MAGIC: &[u8; 4] = b"AGPI";
/// The pack index version this crate writes and reads.
pub const PACK_INDEX_VERSION: u8 = 1;
/// Bytes of one index entry: kind, id, body length.
const INDEX_ENTRY: usize = 1 + 32 + 8;

/// One object of a pack: its kind, id and body length (`docs/format.md` §6.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PackEntry {
    /// The object's kind.
    pub kind: Kind,
    /// Its id.
    pub id: ObjectId,
    /// Its body's length (the header's `<len>`).
    pub len: u64,
}

impl PackEntry {
    /// Bytes it takes in the pack: its header and body.
    pub fn packed_len(&self) -> u64 {
        crate::object::header(self.kind, self.len).len() as u64 + self.len
    }
}

/// Where each object of a pack is: its entries in pack order, from which every object's byte
/// range in the pack follows (the pack is its 9-byte header, then each object's header and body
/// end to end). Published as the pack manifest's annex, so that a reader fetches only the
/// segments holding the objects it wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackIndex {
    entries: Vec<PackEntry>,
}

fn kind_tag(kind: Kind) -> u8 {
    match kind {
        Kind::Blob => 1,
        Kind::Chunks => 2,
        Kind::Tensor => 3,
        Kind::Tree => 4,
        Kind::Commit => 5,
    }
}

fn tag_kind(tag: u8) -> Option<Kind> {
    Some(match tag {
        1 => Kind::Blob,
        2 => Kind::Chunks,
        3 => Kind::Tensor,
        4 => Kind::Tree,
        5 => Kind::Commit,
        _ => return None,
    })
}

impl PackIndex {
    /// The index of a pack of `entries`, in pack order.
    pub fn new(entries: Vec<PackEntry>) -> Self {
        PackIndex { entries }
    }

    /// The entries, in pack order.
    pub fn entries(&self) -> &[PackEntry] {
        &self.entries
    }

    /// The pack's length: its header and every object.
    pub fn pack_len(&self) -> u64 {
        let objects: u64 = self.entries.iter().map(PackEntry::packed_len).sum();
        9 + objects
    }

    /// Every entry with the byte range (header and body) it takes in the pack.
    pub fn ranges(&self) -> impl Iterator<Item = (&PackEntry, std::ops::Range<u64>)> {
        let mut at = 9u64;
        self.entries.iter().map(move |e| {
            let start = at;
            at += e.packed_len();
            (e, start..at)
        })
    }

    /// The canonical bytes: magic, version, entry count, then each entry's kind, id and body
    /// length.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + INDEX_ENTRY * self.entries.len());
        out.extend_from_slice(PACK_INDEX_MAGIC);
        out.push(PACK_INDEX_VERSION);
        #[allow(
            clippy::cast_possible_truncation,
            reason = "a pack counts its objects in a u32: its index has as many"
        )]
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.push(kind_tag(e.kind));
            out.extend_from_slice(e.id.as_bytes());
            out.extend_from_slice(&e.len.to_le_bytes());
        }
        out
    }

    /// Reads an index, checking each entry's kind and its length against `limits`.
    ///
    /// # Errors
    /// [`PackError::Corrupt`] naming the first problem.
    pub fn decode(bytes: &[u8], limits: Limits) -> Result<Self, Error> {
        let corrupt = |why: String| Error::Corrupt(format!("pack index: {why}"));
        let (head, body) = bytes
            .split_first_chunk::<9>()
            .ok_or_else(|| corrupt(format!("{} bytes, shorter than its header", bytes.len())))?;
        if &head[..4] != PACK_INDEX_MAGIC {
            return Err(corrupt("not a pack index (bad magic)".into()));
        }
        if head[4] != PACK_INDEX_VERSION {
            return Err(corrupt(format!(
                "version {}; this build reads version {PACK_INDEX_VERSION}: upgrade agigit",
                head[4]
            )));
        }
        let count = u32::from_le_bytes([head[5], head[6], head[7], head[8]]) as usize;
        // The count must be what the bytes hold, before anything is allocated for it.
        if body.len() % INDEX_ENTRY != 0 || body.len() / INDEX_ENTRY != count {
            return Err(corrupt(format!(
                "{count} entries announced, {} bytes of entries",
                body.len()
            )));
        }
        let mut entries = Vec::with_capacity(count);
        for (i, e) in body.chunks_exact(INDEX_ENTRY).enumerate() {
            let kind =
                tag_kind(e[0]).ok_or_else(|| corrupt(format!("entry {i}: kind {}", e[0])))?;
            let mut id = [0u8; 32];
            id.copy_from_slice(&e[1..33]);
            let mut len = [0u8; 8];
            len.copy_from_slice(&e[33..41]);
            let len = u64::from_le_bytes(len);
            if len > limits.for_kind(kind) {
                return Err(corrupt(format!(
                    "entry {i}: a {kind} of {len} bytes, over the limit of {}",
                    limits.for_kind(kind)
                )));
            }
            entries.push(PackEntry {
                kind,
                id: ObjectId::from_bytes(id),
                len,
            });
        }
        Ok(PackIndex { entries })
    }
}

/// The index of the pack [`write_pack_to`] writes of `objects`: each object's kind and length
/// from the store's headers (nothing else is read).
///
/// # Errors
/// [`PackError::Find`] for an object the store lacks; store errors.
pub fn index_of<S: FindExt + ?Sized>(
    store: &S,
    objects: &[(Kind, ObjectId)],
) -> Result<PackIndex, Error> {
    let entries = objects
        .iter()
        .map(|(_, id)| match store.header_of(id)? {
            Some((kind, len)) => Ok(PackEntry { kind, id: *id, len }),
            None => Err(Error::Find(FindError::NotFound { id: *id })),
        })
        .collect::<Result<_, Error>>()?;
    Ok(PackIndex { entries })
}

/// Reads a pack, verifying every object against its id, and writes the objects to `store`.
/// Returns the ids read.
///
/// # Errors
/// [`PackError::Corrupt`] for a malformed pack, [`PackError::Decode`] for an object that breaks the format's
/// rules (nothing from the bad object on is stored; what was stored before it is valid,
/// content-addressed and harmless).
pub fn read_pack<S: Write + Sync + ?Sized>(store: &S, pack: &[u8]) -> Result<Vec<ObjectId>, Error> {
    read_pack_from(store, pack)
}

/// [`read_pack`] from a stream, whatever the pack's size: memory holds the objects being read
/// and stored, at most 64 MiB of batches of 8 MiB being stored and one being read (an object
/// larger than a batch is a batch of its own, at most the store's object size limit, 1 GiB for
/// a blob: then two such objects at most). Batches are stored on threads of their own, beside
/// each other and the reading (a store write waits on the disk's sync).
///
/// # Errors
/// As [`read_pack`]; an I/O error of `input` that is not about its content is [`PackError::Io`].
pub fn read_pack_from<S: Write + Sync + ?Sized, R: std::io::Read>(
    store: &S,
    input: R,
) -> Result<Vec<ObjectId>, Error> {
    use std::io::{BufRead as _, Read as _};
    let corrupt = |why: String| Error::Corrupt(format!("pack: {why}"));
    let io = |what: &str, e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => corrupt(format!("{what} is truncated")),
        std::io::ErrorKind::InvalidData => corrupt(format!("{what}: {e}")),
        _ => PackError::Io(e),
    };
    let mut input = std::io::BufReader::new(input);
    let mut head = [0u8; 9];
    input
        .read_exact(&mut head)
        .map_err(|e| io("the header", e))?;
    if &head[..4] != PACK_MAGIC.as_slice() {
        return Err(corrupt("not an agigit pack (bad magic)".into()));
    }
    if head[4] != PACK_VERSION {
        return Err(corrupt(format!(
            "version {}; this build reads version {PACK_VERSION}: upgrade agigit",
            head[4]
        )));
    }
    let count = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
    let limits = Limits::default();
    let mut header = Vec::with_capacity(MAX_HEADER);
    // Objects are checked as they are read, then stored a batch at a time (hashing and syncing
    // each is most of the work), batches beside each other and beside the reading of the next:
    // memory holds the batch being read and at most STORING_BYTES being stored (or one batch
    // larger than that: an object up to the store's limit).
    let mut stored = Storing::new();
    let ids = std::thread::scope(|scope| -> Result<Vec<ObjectId>, Error> {
        let mut batch: Vec<(Kind, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0usize;
        for i in 0..count {
            header.clear();
            (&mut input)
                .take(MAX_HEADER as u64)
                .read_until(0, &mut header)
                .map_err(|e| io(&format!("object {i}"), e))?;
            if header.is_empty() {
                return Err(corrupt(format!("object {i} is truncated")));
            }
            let (kind, len, at) =
                parse_header(&header, limits).map_err(|e| corrupt(format!("object {i}: {e}")))?;
            if at != header.len() {
                return Err(corrupt(format!("object {i}: bad header")));
            }
            // The header's length passed the store's limit for its kind; the buffer grows as
            // bytes arrive, from at most a batch's worth (never from the peer's number alone).
            let mut body = Vec::with_capacity(
                usize::try_from(len).map_or(BATCH_BYTES, |l| l.min(BATCH_BYTES)),
            );
            let read = (&mut input)
                .take(len)
                .read_to_end(&mut body)
                .map_err(|e| io(&format!("object {i}"), e))?;
            if read as u64 != len {
                return Err(corrupt(format!("object {i} is truncated")));
            }
            // Every object but a blob has rules beyond its id (a tree's entry names above all):
            // one that breaks them is refused before it is stored.
            if kind != Kind::Blob {
                crate::object::Object::decode(kind, &body).map_err(|source| Error::Decode {
                    what: format!("pack object {i} ({kind})"),
                    source,
                })?;
            }
            batch_bytes += body.len();
            batch.push((kind, body));
            if batch_bytes >= BATCH_BYTES || batch.len() >= BATCH_OBJECTS {
                stored.start(scope, store, std::mem::take(&mut batch))?;
                batch_bytes = 0;
            }
        }
        stored.start(scope, store, batch)?;
        stored.finish()
    })?;
    let extra = std::io::copy(&mut input, &mut std::io::sink())
        .map_err(|e| io("the end of the pack", e))?;
    if extra > 0 {
        return Err(corrupt(format!("{extra} bytes after the last object")));
    }
    Ok(ids)
}

/// The longest object header: `agigit tensor <20 digits>\0`.
const MAX_HEADER: usize = 36;

/// Bytes of checked objects held before they are stored (one object larger than this is a
/// batch of its own).
const BATCH_BYTES: usize = 8 << 20;
/// Batches being stored while the next one is read, each on a thread of its own (a store
/// write waits on the disk for its sync: not work for the CPU pool), at most this many.
const STORING: usize = 8;
/// Bytes of batches being stored at once, at most (one larger batch is stored alone): memory
/// holds at most this and the batch being read, whatever the cores.
const STORING_BYTES: usize = 64 << 20;

/// How many batches store at once on this machine: one per core, between 2 and [`STORING`].
fn storing() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, STORING))
}

/// A batch's stored ids, or why not.
type Stored = std::sync::mpsc::Receiver<Result<Vec<ObjectId>, Error>>;

/// The batches of a pack being stored (with their bytes), oldest first, the bytes they hold,
/// how many may store at once, and the ids of those done.
struct Storing {
    pending: std::collections::VecDeque<(Stored, usize)>,
    bytes: usize,
    limit: usize,
    ids: Vec<ObjectId>,
}

impl Storing {
    fn new() -> Self {
        Self {
            pending: std::collections::VecDeque::new(),
            bytes: 0,
            limit: storing(),
            ids: Vec::new(),
        }
    }

    /// Starts storing `batch` on a thread of its own, first waiting for the oldest batches
    /// while [`storing`] are under way or they hold too many bytes with it
    /// ([`STORING_BYTES`]); fails with a batch's error, if one failed.
    fn start<'s, 'e, S: Write + Sync + ?Sized>(
        &mut self,
        scope: &'s std::thread::Scope<'s, 'e>,
        store: &'e S,
        batch: Vec<(Kind, Vec<u8>)>,
    ) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let bytes: usize = batch.iter().map(|(_, body)| body.len()).sum();
        while !self.pending.is_empty()
            && (self.pending.len() >= self.limit || self.bytes + bytes > STORING_BYTES)
        {
            self.wait_oldest()?;
        }
        let (done, result) = std::sync::mpsc::channel();
        scope.spawn(move || {
            let objects: Vec<(Kind, &[u8])> = batch
                .iter()
                .map(|(kind, body)| (*kind, body.as_slice()))
                .collect();
            let ids = store.write_batch(&objects).map_err(Error::from);
            // The receiver is gone only when reading failed: nobody wants this result.
            let _ = done.send(ids);
        });
        self.pending.push_back((result, bytes));
        self.bytes += bytes;
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<(), Error> {
        if let Some((result, bytes)) = self.pending.pop_front() {
            self.bytes -= bytes;
            // A thread that panicked drops its sender; the scope resumes the panic on return.
            if let Ok(ids) = result.recv() {
                self.ids.extend(ids?);
            }
        }
        Ok(())
    }

    /// Waits for every batch; the ids stored, in pack order.
    fn finish(mut self) -> Result<Vec<ObjectId>, Error> {
        while !self.pending.is_empty() {
            self.wait_oldest()?;
        }
        Ok(self.ids)
    }
}
/// Objects held before they are stored.
const BATCH_OBJECTS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Find as _;
    use crate::{MemoryStore, Tree, TreeEntry, WriteExt};
    use proptest::prelude::*;

    fn sample() -> (MemoryStore, ObjectId) {
        let store = MemoryStore::new();
        let blob = store.write_buf(Kind::Blob, b"weights").expect("blob");
        let tree = Tree::new([TreeEntry::new("w.bin", EntryMode::File, blob)]).expect("tree");
        let tree = store.write_tree(&tree).expect("tree");
        let commit = crate::Commit {
            tree,
            parents: Vec::new(),
            base: None,
            author: [1; 32],
            time: 1,
            message: "m".into(),
            extra: Vec::new(),
        };
        let c = store.write_commit(&commit).expect("commit");
        (store, c)
    }

    #[test]
    fn round_trip_and_nothing_twice() {
        let (store, tip) = sample();
        let objects = objects_between(&store, &[tip], &[]).expect("walk");
        assert_eq!(objects.len(), 3);
        assert!(
            objects_between(&store, &[tip], &[tip])
                .expect("walk")
                .is_empty()
        );
        let pack = write_pack(&store, &objects).expect("pack");
        let other = MemoryStore::new();
        let ids = read_pack(&other, &pack).expect("read");
        assert_eq!(ids.len(), 3);
        assert!(other.find_commit(&tip).is_ok());
    }

    #[test]
    fn a_pack_of_many_batches_is_stored_in_order_and_a_late_bad_object_stops_it() {
        // More batches than may store at once, and blobs larger than a batch: batches
        // are stored while the next is read, and the ids come back in pack order.
        let store = MemoryStore::new();
        let mut objects = Vec::new();
        for i in 0..(BATCH_OBJECTS * (STORING + 2) + 7) {
            let id = store
                .write_buf(Kind::Blob, format!("blob {i}").as_bytes())
                .expect("blob");
            objects.push((Kind::Blob, id));
        }
        for fill in [1u8, 2] {
            let big = vec![fill; BATCH_BYTES + 1];
            objects.push((Kind::Blob, store.write_buf(Kind::Blob, &big).expect("big")));
        }
        let pack = write_pack(&store, &objects).expect("pack");
        let other = MemoryStore::new();
        let ids = read_pack(&other, &pack).expect("read");
        let expected: Vec<ObjectId> = objects.iter().map(|(_, id)| *id).collect();
        assert_eq!(ids, expected);
        for id in &expected {
            assert!(other.contains(id).expect("contains"), "{id}");
        }
        // The pack cut one byte short: the last object is truncated, the read fails with
        // batches still being stored, and the last object is not stored.
        let other = MemoryStore::new();
        let err = read_pack(&other, &pack[..pack.len() - 1]).expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(
            !other
                .contains(&expected[expected.len() - 1])
                .expect("contains")
        );
    }

    #[test]
    fn corruption_is_refused() {
        let (store, tip) = sample();
        let objects = objects_between(&store, &[tip], &[]).expect("walk");
        let pack = write_pack(&store, &objects).expect("pack");
        for cut in [0, 3, 8, pack.len() - 1] {
            assert!(
                read_pack(&MemoryStore::new(), &pack[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut extra = pack.clone();
        extra.push(0);
        assert!(read_pack(&MemoryStore::new(), &extra).is_err());
        let mut wrong_version = pack;
        wrong_version[4] = 9;
        let err = read_pack(&MemoryStore::new(), &wrong_version).expect_err("version");
        assert!(err.to_string().contains("upgrade"), "{err}");
    }

    #[test]
    fn the_index_gives_every_objects_place_in_the_pack() {
        let (store, tip) = sample();
        let objects = objects_between(&store, &[tip], &[]).expect("walk");
        let pack = write_pack(&store, &objects).expect("pack");
        let index = index_of(&store, &objects).expect("index");
        assert_eq!(index.pack_len(), pack.len() as u64);
        for (entry, range) in index.ranges() {
            let bytes = &pack[usize::try_from(range.start).expect("fits")
                ..usize::try_from(range.end).expect("fits")];
            let (kind, body) =
                crate::object::parse_loose(bytes, Limits::default()).expect("one object");
            assert_eq!((kind, body.len() as u64), (entry.kind, entry.len));
            assert_eq!(crate::object::compute_id(kind, body), entry.id);
        }
        let bytes = index.encode();
        assert_eq!(
            PackIndex::decode(&bytes, Limits::default()).ok(),
            Some(index.clone())
        );
        // Refusals: a count the bytes do not hold, an unknown kind, a length over the limit.
        let mut count = bytes.clone();
        count[5] = 200;
        assert!(PackIndex::decode(&count, Limits::default()).is_err());
        let mut kind = bytes.clone();
        kind[9] = 0;
        assert!(PackIndex::decode(&kind, Limits::default()).is_err());
        let small = Limits {
            max_blob: 3,
            max_meta: 1 << 20,
        };
        let err = PackIndex::decode(&bytes, small).expect_err("a blob over the limit");
        assert!(err.to_string().contains("over the limit"), "{err}");
        assert!(index_of(&store, &[(Kind::Blob, ObjectId::from_bytes([9; 32]))]).is_err());
    }

    fn arb_entry() -> impl Strategy<Value = PackEntry> {
        (1u8..=5, any::<[u8; 32]>(), 0u64..1 << 20).prop_map(|(tag, id, len)| PackEntry {
            kind: tag_kind(tag).expect("known tag"),
            id: ObjectId::from_bytes(id),
            len,
        })
    }

    proptest! {
        #[test]
        fn index_round_trips(entries in proptest::collection::vec(arb_entry(), 0..40)) {
            let index = PackIndex::new(entries);
            prop_assert_eq!(PackIndex::decode(&index.encode(), Limits::default()).ok(), Some(index));
        }

        /// A changed or cut index is refused or decodes to an index that encodes to exactly the
        /// bytes given.
        #[test]
        fn index_corruption_is_refused_or_canonical(
            entries in proptest::collection::vec(arb_entry(), 1..20),
            at in any::<prop::sample::Index>(),
            flip in 1u8..,
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes = PackIndex::new(entries).encode();
            let mut bad = bytes.clone();
            let i = at.index(bad.len());
            bad[i] ^= flip;
            if let Ok(index) = PackIndex::decode(&bad, Limits::default()) {
                prop_assert_eq!(index.encode(), bad);
            }
            prop_assert!(PackIndex::decode(&bytes[..cut.index(bytes.len())], Limits::default()).is_err());
        }

        /// Arbitrary bytes never panic the reader, and whatever it accepts re-packs identically.
        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut input = PACK_MAGIC.to_vec();
            input.push(PACK_VERSION);
            input.extend_from_slice(&bytes);
            let store = MemoryStore::new();
            if let Ok(ids) = read_pack(&store, &input) {
                let kinds: Vec<(Kind, ObjectId)> = ids
                    .iter()
                    .map(|id| {
                        let mut buf = Vec::new();
                        (store.find(id, &mut buf).expect("stored").kind, *id)
                    })
                    .collect();
                prop_assert_eq!(write_pack(&store, &kinds).expect("pack"), input);
            }
        }
    }
}
