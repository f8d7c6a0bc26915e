//! The conformance suite every object store passes: run it with
//! [`object_store_conformance!`](crate::object_store_conformance) on a constructor.

use std::io::Read;

use agigit_hash::ObjectId;

use super::{Find, FindError, FindExt, StoreError, Write, WriteExt};
use crate::object::{
    ChunkEntry, ChunkList, Commit, EntryMode, Kind, Object, TensorObject, Tree, TreeEntry,
    compute_id,
};

/// A failed conformance check.
pub type Failure = String;

fn check(cond: bool, what: &str) -> Result<(), Failure> {
    if cond { Ok(()) } else { Err(what.to_owned()) }
}

fn err<E: std::fmt::Display>(e: E) -> Failure {
    e.to_string()
}

/// Sample objects of every kind, with their ids.
pub fn samples() -> Vec<Object> {
    let blob = Object::Blob(b"hello, model".to_vec());
    let blob_id = blob.id();
    let tensor = TensorObject {
        dtype: "BF16".into(),
        shape: vec![2, 3],
        encoding: "lossless".into(),
        params: vec![("level".into(), 3)],
        base: Some(compute_id(Kind::Tensor, b"base")),
        byte_len: 12,
        digest: agigit_hash::BlobHash::digest(b"x"),
        payload_len: 12,
        blobs: vec![blob_id],
    };
    let tree = Tree::new([
        TreeEntry::new("README.md", EntryMode::File, blob_id),
        TreeEntry::new(
            "w.weight",
            EntryMode::Tensor,
            Object::Tensor(tensor.clone()).id(),
        ),
    ])
    .unwrap_or_default();
    let commit = Commit {
        tree: Object::Tree(tree.clone()).id(),
        parents: vec![compute_id(Kind::Commit, b"parent")],
        base: None,
        author: [7; 32],
        time: 1_700_000_000,
        message: "first".into(),
        extra: vec![("run".into(), b"42".to_vec())],
    };
    // A chunked file of the blob twice, and a list of that list.
    let chunk = ChunkEntry {
        len: 12,
        id: blob_id,
    };
    let chunks = ChunkList::new(0, vec![chunk; 2]).ok().map(Object::Chunks);
    let lists = chunks.as_ref().and_then(|c| {
        let entry = ChunkEntry {
            len: 24,
            id: c.id(),
        };
        ChunkList::new(1, vec![entry]).ok().map(Object::Chunks)
    });
    let mut out = vec![
        blob,
        Object::Blob(Vec::new()),
        Object::Tensor(tensor),
        Object::Tree(tree),
        Object::Tree(Tree::default()),
        Object::Commit(commit),
    ];
    out.extend(chunks);
    out.extend(lists);
    out
}

/// A reader that yields `data` and then fails or ends early, to test partial sources.
struct Short<'a>(&'a [u8]);

impl Read for Short<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// Runs every check against `store`, which must start empty.
pub fn run<S: Find + Write>(store: &S) -> Result<(), Failure> {
    let mut buf = Vec::new();
    for o in samples() {
        let body = o.encode();
        let id = store.write_object(&o).map_err(err)?;
        check(id == o.id(), "write returns the object's id")?;
        check(store.contains(&id).map_err(err)?, "contains after write")?;
        let found = store.try_find(&id, &mut buf).map_err(err)?;
        let found = found.ok_or("written object is found")?;
        check(
            found.kind == o.kind() && found.data == body.as_slice(),
            "bytes read back",
        )?;
        check(found.decode().map_err(err)? == o, "object decodes back")?;
        let unverified = store.try_find_unverified(&id, &mut buf).map_err(err)?;
        check(
            unverified.is_some_and(|u| u.kind == o.kind() && u.data == body.as_slice()),
            "an unverified read gives the same bytes",
        )?;
        check(
            store.header_of(&id).map_err(err)? == Some((o.kind(), body.len() as u64)),
            "header_of gives the kind and body length",
        )?;
        // Writing again is not an error and changes nothing.
        check(
            store.write_buf(o.kind(), &body).map_err(err)? == id,
            "idempotent write",
        )?;
    }

    let absent = compute_id(Kind::Blob, b"never written");
    check(
        store.try_find(&absent, &mut buf).map_err(err)?.is_none(),
        "absent is None",
    )?;
    check(
        store
            .try_find_unverified(&absent, &mut buf)
            .map_err(err)?
            .is_none(),
        "absent is None unverified too",
    )?;
    check(
        !store.contains(&absent).map_err(err)?,
        "absent is not contained",
    )?;
    check(
        store.header_of(&absent).map_err(err)?.is_none(),
        "absent has no header",
    )?;
    check(
        matches!(store.find_tree(&absent), Err(FindError::NotFound { id }) if id == absent),
        "typed read of an absent object is NotFound",
    )?;
    let blob_id = store.write_buf(Kind::Blob, b"not a tree").map_err(err)?;
    check(
        matches!(
            store.find_tree(&blob_id),
            Err(FindError::Kind {
                expected: Kind::Tree,
                actual: Kind::Blob,
                ..
            })
        ),
        "typed read of the wrong kind",
    )?;
    let garbage = store.write_buf(Kind::Tree, b"\x01garbage").map_err(err)?;
    check(
        matches!(store.find_tree(&garbage), Err(FindError::Decode { .. })),
        "a tree that does not decode",
    )?;

    // A source shorter or longer than declared stores nothing.
    let body = vec![5u8; 100_000];
    let full_id = compute_id(Kind::Blob, &body);
    let short = store.write_stream(Kind::Blob, body.len() as u64, &mut Short(&body[..99_999]));
    check(
        matches!(short, Err(StoreError::SizeMismatch { .. })),
        "short source fails",
    )?;
    check(
        !store.contains(&full_id).map_err(err)?,
        "short source leaves nothing",
    )?;
    let long = store.write_stream(Kind::Blob, 99_999, &mut &body[..]);
    check(
        matches!(long, Err(StoreError::SizeMismatch { .. })),
        "long source fails",
    )?;
    check(
        !store
            .contains(&compute_id(Kind::Blob, &body[..99_999]))
            .map_err(err)?,
        "long source leaves nothing",
    )?;

    // Large blobs stream through.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let id = store
        .write_stream(Kind::Blob, big.len() as u64, &mut &big[..])
        .map_err(err)?;
    check(id == compute_id(Kind::Blob, &big), "large blob id")?;
    check(
        store.find_blob(&id, &mut buf).map_err(err)? == big.as_slice(),
        "large blob bytes",
    )?;
    let _: ObjectId = id;
    batches(store)?;
    prefixes(store)
}

/// Batches: ids in order, every object readable after, one already stored or twice in the
/// batch written once, an empty batch is nothing.
fn batches<S: Find + Write>(store: &S) -> Result<(), Failure> {
    let stored_before = store
        .write_buf(Kind::Blob, b"batch: stored before")
        .map_err(err)?;
    let bodies: Vec<Vec<u8>> = (0..40u32)
        .map(|i| {
            format!("batch object {i} ")
                .repeat(1 + i as usize * 50)
                .into_bytes()
        })
        .collect();
    let mut objects: Vec<(Kind, &[u8])> = bodies.iter().map(|b| (Kind::Blob, &b[..])).collect();
    objects.push((Kind::Blob, b"batch: stored before"));
    objects.push((Kind::Blob, &bodies[3]));
    let tree = Tree::new([TreeEntry::new("f", EntryMode::File, stored_before)])
        .map_err(err)?
        .encode();
    objects.push((Kind::Tree, &tree));
    let ids = store.write_batch(&objects).map_err(err)?;
    check(
        ids == objects
            .iter()
            .map(|(kind, body)| compute_id(*kind, body))
            .collect::<Vec<_>>(),
        "a batch gives its objects' ids in order",
    )?;
    let mut buf = Vec::new();
    for ((kind, body), id) in objects.iter().zip(&ids) {
        let found = store.try_find(id, &mut buf).map_err(err)?;
        check(
            found.is_some_and(|o| o.kind == *kind && o.data == *body),
            "every object of a batch is read back",
        )?;
    }
    check(
        store.write_batch(&[]).map_err(err)?.is_empty(),
        "an empty batch writes nothing",
    )?;
    Ok(())
}

/// Prefix listing: every object written is listed under each of its prefixes, objects that
/// share a prefix are all listed (up to the limit, in id order), an unused prefix lists none.
fn prefixes<S: Find + Write>(store: &S) -> Result<(), Failure> {
    use crate::rev::HexPrefix;
    let prefix = |hex: &str| HexPrefix::new(hex).ok_or("a prefix");
    // Blobs until two share their first four digits (a few hundred at most).
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0u32..)
        .find_map(|i| {
            let id = store.write_buf(Kind::Blob, &i.to_le_bytes()).ok()?;
            let four = id.to_hex()[..4].to_owned();
            seen.insert(four, id).map(|other| (other, id))
        })
        .ok_or("two blobs sharing a prefix")?;
    let four = &a.to_hex()[..4];
    let mut both = [a, b];
    both.sort();
    let listed = store.ids_with_prefix(&prefix(four)?, 10).map_err(err)?;
    check(
        both.iter().all(|id| listed.contains(id)),
        "objects sharing a prefix are all listed",
    )?;
    check(
        listed.iter().all(|id| id.to_hex().starts_with(four))
            && listed.windows(2).all(|w| w[0] < w[1]),
        "only ids with the prefix, in order",
    )?;
    check(
        store.ids_with_prefix(&prefix(four)?, 1).map_err(err)?.len() == 1,
        "the limit holds",
    )?;
    check(
        store
            .ids_with_prefix(&prefix(&a.to_hex())?, 10)
            .map_err(err)?
            == vec![a],
        "a full id lists itself",
    )?;
    check(
        store
            .ids_with_prefix(&prefix(&a.to_hex()[..9].to_ascii_uppercase())?, 10)
            .map_err(err)?
            == vec![a],
        "a longer prefix, in either case, lists one",
    )?;
    let absent = compute_id(Kind::Blob, b"never written");
    check(
        store
            .ids_with_prefix(&prefix(&absent.to_hex())?, 10)
            .map_err(err)?
            .is_empty(),
        "an id never written lists nothing",
    )?;
    Ok(())
}

/// Generates a `#[test]` running the conformance suite on a fresh store from `$make`.
#[macro_export]
macro_rules! object_store_conformance {
    ($name:ident, $make:expr) => {
        #[test]
        fn $name() {
            let store = $make;
            if let Err(failure) = $crate::store::conformance::run(&store) {
                panic!(
                    "{} fails the object store conformance suite: {failure}",
                    stringify!($name)
                );
            }
        }
    };
}
