//! Packs: the objects a push sends, as one byte stream that is erasure-coded into shards.
//!
//! A pack is `"AGPK" ‖ version (1) ‖ count (u32 LE)` followed by `count` loose objects
//! (`agigit <kind> <len>\0<body>`), each self-delimiting. Reading a pack checks every object
//! against its id before it is stored; a pack is untrusted input.

use std::collections::HashSet;

use agigit_hash::ObjectId;

use crate::model::Part;
use crate::object::{DecodeError, EntryMode, Kind, Limits, parse_header};
use rayon::prelude::*;

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
        match kind {
            Kind::Commit => {
                let c = store.find_commit(&id)?;
                stack.push((Kind::Tree, c.tree));
                stack.extend(c.parents.iter().map(|p| (Kind::Commit, *p)));
            }
            Kind::Tree => {
                for e in store.find_tree(&id)?.entries() {
                    stack.push((e.mode.object_kind(), e.id));
                }
            }
            Kind::Tensor => {
                let t = store.find_tensor(&id)?;
                stack.extend(t.blobs.iter().map(|b| (Kind::Blob, *b)));
                if let Some(base) = t.base {
                    stack.push((Kind::Tensor, base));
                }
            }
            Kind::Chunks => {
                let list = store.find_chunks(&id)?;
                let kind = list.entry_kind();
                stack.extend(list.entries().iter().map(|e| (kind, e.id)));
            }
            Kind::Blob => {}
        }
    }
    Ok(())
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

/// [`read_pack`] from a stream: one object in memory at a time (at most the store's object size
/// limit, 1 GiB for a blob), whatever the pack's size.
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
    let mut ids = Vec::new();
    let mut header = Vec::with_capacity(MAX_HEADER);
    // Objects are checked as they are read, then stored a batch at a time, the batch's objects
    // in parallel (hashing and syncing each is most of the work): memory holds one batch.
    let mut batch: Vec<(Kind, Vec<u8>)> = Vec::new();
    let mut batch_bytes = 0usize;
    let flush = |batch: &mut Vec<(Kind, Vec<u8>)>, ids: &mut Vec<ObjectId>| -> Result<(), Error> {
        let stored: Vec<ObjectId> = batch
            .par_iter()
            .map(|(kind, body)| store.write_buf(*kind, body))
            .collect::<Result<_, _>>()?;
        ids.extend(stored);
        batch.clear();
        Ok(())
    };
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
        // The header's length passed the store's limit for its kind: it fits in memory.
        let mut body = Vec::new();
        let read = (&mut input)
            .take(len)
            .read_to_end(&mut body)
            .map_err(|e| io(&format!("object {i}"), e))?;
        if read as u64 != len {
            return Err(corrupt(format!("object {i} is truncated")));
        }
        // Every object but a blob has rules beyond its id (a tree's entry names above all): one
        // that breaks them is refused before it is stored.
        if kind != Kind::Blob {
            crate::object::Object::decode(kind, &body).map_err(|source| Error::Decode {
                what: format!("pack object {i} ({kind})"),
                source,
            })?;
        }
        batch_bytes += body.len();
        batch.push((kind, body));
        if batch_bytes >= BATCH_BYTES || batch.len() >= BATCH_OBJECTS {
            flush(&mut batch, &mut ids)?;
            batch_bytes = 0;
        }
    }
    flush(&mut batch, &mut ids)?;
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
const BATCH_BYTES: usize = 32 << 20;
/// Objects held before they are stored.
const BATCH_OBJECTS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
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

    proptest! {
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
