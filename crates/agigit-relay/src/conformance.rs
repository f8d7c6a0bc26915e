//! The conformance suite every [`BlobStore`] passes: what Blossom's handlers rely on, checked
//! the same way for the filesystem store and for any other (an object-storage backend, an
//! embedder's own). Each check takes a fresh, empty store that deletes unclaimed blobs at once
//! (no retention) and returns `Err` describing the first violation.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("agigit-conformance-doc-{}", std::process::id()));
//! let store = agigit_relay::FsBlobStore::open(&dir)?;
//! agigit_relay::conformance::check_round_trip(&store)?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

use std::io::Read as _;

use agigit_hash::BlobHash;
use nostr::prelude::{Keys, PublicKey};

use crate::blobs::{BlobInfo, BlobStore, BlobStoreError, DeleteOutcome};

/// One check: a fresh store in, the first violation out.
pub type Check = fn(&dyn BlobStore) -> Result<(), String>;

/// Every check, by name, in order.
pub const CHECKS: [(&str, Check); 6] = [
    ("round trip", check_round_trip),
    ("owners and repeats", check_owners),
    ("refusals store nothing", check_refusals),
    ("listing", check_listing),
    ("deleting", check_delete),
    ("usage", check_usage),
];

/// Deterministic bytes, different at every position.
pub fn test_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let i = i as u64;
            (i.wrapping_mul(0x9e37_79b9).wrapping_add(u64::from(seed)) >> 7).to_le_bytes()[0]
        })
        .collect()
}

fn owner() -> PublicKey {
    Keys::generate().public_key()
}

fn err(what: impl std::fmt::Display) -> String {
    what.to_string()
}

/// Uploads `data` in uneven chunks, as `owner`.
fn put(
    store: &dyn BlobStore,
    data: &[u8],
    owner: &PublicKey,
    expected: Option<&BlobHash>,
    quota: Option<u64>,
) -> Result<(BlobInfo, bool), BlobStoreError> {
    let mut upload = store.begin(1 << 30)?;
    for chunk in data.chunks(7_777) {
        upload.write(chunk)?;
    }
    upload.commit(owner, "", expected, quota)
}

fn read_all(store: &dyn BlobStore, hash: &BlobHash) -> Result<Option<Vec<u8>>, String> {
    let Some((mut reader, _)) = store.open(hash).map_err(err)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(err)?;
    Ok(Some(out))
}

fn expect(cond: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(message()) }
}

/// An upload reads back byte for byte once committed, with its hash, size and the default
/// content type; nothing is visible before the commit, or after an upload dropped uncommitted.
///
/// # Errors
/// The first violation.
pub fn check_round_trip(store: &dyn BlobStore) -> Result<(), String> {
    let alice = owner();
    for len in [0usize, 1, 7_777, 100_003] {
        let data = test_bytes(len, 1);
        let hash = BlobHash::digest(&data);
        let mut upload = store.begin(1 << 30).map_err(err)?;
        upload.write(&data).map_err(err)?;
        expect(upload.len() == len as u64, || {
            format!("len() is {} after {len} bytes", upload.len())
        })?;
        expect(upload.hash() == hash, || {
            "hash() is not the bytes' SHA-256".into()
        })?;
        expect(store.info(&hash).map_err(err)?.is_none(), || {
            format!("a {len}-byte blob is visible before its commit")
        })?;
        let (info, new) = upload.commit(&alice, "", Some(&hash), None).map_err(err)?;
        expect(new, || format!("a first upload of {len} bytes is not new"))?;
        expect(info.hash == hash && info.size == len as u64, || {
            format!("{info:?}")
        })?;
        expect(info.content_type == "application/octet-stream", || {
            format!("default content type {:?}", info.content_type)
        })?;
        expect(
            read_all(store, &hash)?.as_deref() == Some(data.as_slice()),
            || format!("a {len}-byte blob reads back different"),
        )?;
        expect(store.is_claimed(&hash).map_err(err)?, || {
            "an uploaded blob is unclaimed".into()
        })?;
    }
    let dropped = test_bytes(5_000, 9);
    let mut upload = store.begin(1 << 30).map_err(err)?;
    upload.write(&dropped).map_err(err)?;
    drop(upload);
    expect(
        store
            .info(&BlobHash::digest(&dropped))
            .map_err(err)?
            .is_none(),
        || "an upload dropped without commit is visible".into(),
    )
}

/// The same bytes again are not new; another owner's upload of them claims them too; a content
/// type given first is kept.
///
/// # Errors
/// The first violation.
pub fn check_owners(store: &dyn BlobStore) -> Result<(), String> {
    let (alice, bob) = (owner(), owner());
    let data = test_bytes(20_000, 2);
    let hash = BlobHash::digest(&data);
    let mut upload = store.begin(1 << 30).map_err(err)?;
    upload.write(&data).map_err(err)?;
    let (first, new) = upload.commit(&alice, "text/csv", None, None).map_err(err)?;
    expect(new && first.content_type == "text/csv", || {
        format!("{first:?}")
    })?;
    let (again, new) = put(store, &data, &alice, None, None).map_err(err)?;
    expect(!new, || "the same bytes again are new".into())?;
    expect(again.content_type == "text/csv", || format!("{again:?}"))?;
    let (_, new) = put(store, &data, &bob, Some(&hash), None).map_err(err)?;
    expect(!new, || "another owner's copy is new".into())?;
    for who in [&alice, &bob] {
        let listed = store.list(who, None, None).map_err(err)?;
        expect(listed.iter().any(|i| i.hash == hash), || {
            "each owner lists the blob".into()
        })?;
    }
    Ok(())
}

/// A wrong expected hash, a blob past the upload's limit and an upload past the owner's quota
/// are refused with their typed errors, and leave nothing visible or counted.
///
/// # Errors
/// The first violation.
pub fn check_refusals(store: &dyn BlobStore) -> Result<(), String> {
    let alice = owner();
    let data = test_bytes(10_000, 3);
    let hash = BlobHash::digest(&data);
    let wrong = BlobHash::digest(b"something else");
    match put(store, &data, &alice, Some(&wrong), None) {
        Err(BlobStoreError::HashMismatch { expected, actual }) => {
            expect(expected == wrong && actual == hash, || {
                "mismatch names the wrong hashes".into()
            })?;
        }
        other => return Err(format!("a wrong expected hash gave {other:?}")),
    }
    let mut upload = store.begin(100).map_err(err)?;
    match upload.write(&data) {
        Err(BlobStoreError::TooLarge { limit: 100 }) => {}
        other => {
            return Err(format!(
                "10,000 bytes into a 100-byte upload gave {other:?}"
            ));
        }
    }
    drop(upload);
    put(store, &test_bytes(6_000, 4), &alice, None, Some(8_000)).map_err(err)?;
    match put(store, &data, &alice, None, Some(8_000)) {
        Err(BlobStoreError::Quota { size, used, quota }) => {
            expect(size == 10_000 && used == 6_000 && quota == 8_000, || {
                format!("quota error says size {size}, used {used}, quota {quota}")
            })?;
        }
        other => return Err(format!("an upload past the quota gave {other:?}")),
    }
    expect(store.info(&hash).map_err(err)?.is_none(), || {
        "a refused blob is visible".into()
    })?;
    expect(store.usage(&alice).map_err(err)? == 6_000, || {
        "a refused blob is counted".into()
    })
}

/// An owner's listing names its blobs, newest first, within `[since, until]`, and no one
/// else's.
///
/// # Errors
/// The first violation.
pub fn check_listing(store: &dyn BlobStore) -> Result<(), String> {
    let (alice, bob) = (owner(), owner());
    let mine: Vec<BlobHash> = (0..3)
        .map(|i| put(store, &test_bytes(1_000 + i, 5), &alice, None, None).map(|(b, _)| b.hash))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    put(store, &test_bytes(3_000, 6), &bob, None, None).map_err(err)?;
    let listed = store.list(&alice, None, None).map_err(err)?;
    expect(listed.len() == 3, || {
        format!("{} listed of 3", listed.len())
    })?;
    expect(listed.iter().all(|i| mine.contains(&i.hash)), || {
        "another owner's blob listed".into()
    })?;
    expect(
        listed.windows(2).all(|w| w[0].uploaded >= w[1].uploaded),
        || "not newest first".into(),
    )?;
    let at = listed.first().map_or(0, |i| i.uploaded);
    expect(
        store
            .list(&alice, Some(at + 1), None)
            .map_err(err)?
            .is_empty(),
        || "`since` after every upload lists some".into(),
    )?;
    expect(
        store
            .list(&alice, None, Some(at.saturating_sub(100_000)))
            .map_err(err)?
            .is_empty(),
        || "`until` before every upload lists some".into(),
    )
}

/// Deleting: unknown blob, not the owner's, one owner of two (the bytes stay), the last owner
/// (the bytes go, without retention).
///
/// # Errors
/// The first violation.
pub fn check_delete(store: &dyn BlobStore) -> Result<(), String> {
    let (alice, bob, carol) = (owner(), owner(), owner());
    let data = test_bytes(4_000, 7);
    let hash = BlobHash::digest(&data);
    let missing = BlobHash::digest(b"never stored");
    let outcome = |who: &PublicKey, h: &BlobHash| store.delete(h, who).map_err(err);
    expect(
        outcome(&alice, &missing)? == DeleteOutcome::NotFound,
        || "unknown blob".into(),
    )?;
    put(store, &data, &alice, None, None).map_err(err)?;
    put(store, &data, &bob, None, None).map_err(err)?;
    expect(outcome(&carol, &hash)? == DeleteOutcome::NotOwner, || {
        "not the owner's".into()
    })?;
    expect(outcome(&alice, &hash)? == DeleteOutcome::Released, || {
        "one owner of two".into()
    })?;
    expect(
        read_all(store, &hash)?.as_deref() == Some(data.as_slice()),
        || "the bytes went while an owner was left".into(),
    )?;
    expect(
        store.list(&alice, None, None).map_err(err)?.is_empty(),
        || "a released blob is still listed".into(),
    )?;
    expect(outcome(&bob, &hash)? == DeleteOutcome::Removed, || {
        "the last owner".into()
    })?;
    expect(read_all(store, &hash)?.is_none(), || {
        "the bytes stayed after the last owner".into()
    })?;
    expect(!store.is_claimed(&hash).map_err(err)?, || {
        "a deleted blob is claimed".into()
    })
}

/// Usage counts each blob an owner stores once, whatever others store.
///
/// # Errors
/// The first violation.
pub fn check_usage(store: &dyn BlobStore) -> Result<(), String> {
    let (alice, bob) = (owner(), owner());
    let a = test_bytes(3_000, 8);
    put(store, &a, &alice, None, None).map_err(err)?;
    put(store, &a, &alice, None, None).map_err(err)?;
    put(store, &test_bytes(500, 9), &alice, None, None).map_err(err)?;
    put(store, &a, &bob, None, None).map_err(err)?;
    let used = store.usage(&alice).map_err(err)?;
    expect(used == 3_500, || format!("alice uses {used}, not 3500"))?;
    let used = store.usage(&bob).map_err(err)?;
    expect(used == 3_000, || format!("bob uses {used}, not 3000"))
}
