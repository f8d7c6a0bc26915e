//! Packs a push has written and not finished sending, kept under `.agigit/push/` until the push
//! that made them has published its state. Pushing again after an interruption (a crash, a
//! kill, servers that went away) finds its pack there and sends the same shards — a private
//! pack's sealing is random, so writing it again would change every shard — asking each server
//! first whether it has the shard already, so that what landed is not sent again.
//!
//! A pending pack is named by what it holds (the object ids, and for a private repository its
//! keyring), written as `<key>.partial` and renamed to `<key>.pack` when whole, with
//! `<key>.sum` beside it giving its length and SHA-256: a pack that does not match its sum (a
//! crash of the machine before the page cache reached the disk) is written again.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use agigit_dag::ObjectId;
use agigit_hash::{BlobHash, Hasher, HashingWriter};

use super::transfer::cpu;
use crate::error::Error;
use crate::private::PrivateKeys;
use crate::repository::Repository;

/// Pending packs no push has touched for this long are removed by the next push that
/// completes.
const STALE_AFTER: Duration = Duration::from_secs(14 * 24 * 3600);

/// A pack on disk, ready to send.
#[derive(Debug)]
pub(super) struct PendingPack {
    /// The file.
    pub(super) path: PathBuf,
    /// Its length.
    pub(super) len: u64,
    /// An interrupted push left it: ask the servers before sending each shard.
    pub(super) resumed: bool,
}

impl PendingPack {
    /// The file and its sum.
    fn files(&self) -> [PathBuf; 2] {
        [self.path.clone(), self.path.with_extension("sum")]
    }
}

/// Writes a pack into a writer on the file at the path given (for its errors).
pub(super) type WritePack = dyn FnOnce(&mut dyn std::io::Write, &Path) -> Result<(), Error> + Send;

impl Repository {
    fn pending_dir(&self) -> PathBuf {
        self.root().join(crate::worktree::DOT_DIR).join("push")
    }

    /// The pending pack of `objects` (sealed under `keys`): the whole one an interrupted push
    /// left, or a new one that `write` fills. Reading, hashing and writing run on the CPU pool.
    pub(super) async fn pending_pack(
        &self,
        objects: &[(agigit_dag::Kind, ObjectId)],
        keys: Option<&PrivateKeys>,
        write: Box<WritePack>,
    ) -> Result<PendingPack, Error> {
        let dir = self.pending_dir();
        let key = pending_key(objects, keys);
        let path = dir.join(format!("{key}.pack"));
        cpu(move || {
            std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
            if let Some(len) = whole(&path) {
                return Ok(PendingPack {
                    path,
                    len,
                    resumed: true,
                });
            }
            let partial = path.with_extension("partial");
            let file = std::fs::File::create(&partial).map_err(Error::io(&partial))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, HashingWriter::new(file));
            write(&mut out, &partial)?;
            out.flush().map_err(Error::io(&partial))?;
            let (_, hasher) = out
                .into_inner()
                .map_err(|e| Error::io(&partial)(e.into_error()))?
                .into_parts();
            let len = hasher.len();
            let sum = BlobHash::from_bytes(hasher.finalize());
            std::fs::rename(&partial, &path).map_err(Error::io(&path))?;
            let sum_path = path.with_extension("sum");
            let tmp = path.with_extension("sum.partial");
            std::fs::write(&tmp, format!("{len} {sum}\n")).map_err(Error::io(&tmp))?;
            std::fs::rename(&tmp, &sum_path).map_err(Error::io(&sum_path))?;
            Ok(PendingPack {
                path,
                len,
                resumed: false,
            })
        })
        .await?
    }

    /// The push that sent `packs` has published its state: they are no longer pending, nor are
    /// packs no push has touched for two weeks.
    pub(super) fn finish_pending(&self, packs: &[PendingPack]) {
        for file in packs.iter().flat_map(PendingPack::files) {
            let _ = std::fs::remove_file(file);
        }
        let Ok(entries) = std::fs::read_dir(self.pending_dir()) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_AFTER);
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// What names a pending pack: its objects in order and, for a private repository, its keyring
/// (readers added since make another pack).
fn pending_key(objects: &[(agigit_dag::Kind, ObjectId)], keys: Option<&PrivateKeys>) -> BlobHash {
    let mut h = Hasher::new();
    h.update(b"agigit pending pack 1\n");
    for (kind, id) in objects {
        h.update(kind.as_str().as_bytes());
        h.update(id.as_bytes());
    }
    if let Some(k) = keys {
        h.update(b"sealed\n");
        h.update(&k.envelope_bytes());
    }
    BlobHash::from_bytes(h.finalize())
}

/// The length of the pack at `path` when it is whole (its length and SHA-256 match its sum
/// file); otherwise it and its sum are removed.
fn whole(path: &Path) -> Option<u64> {
    let sum_path = path.with_extension("sum");
    let check = || -> Option<u64> {
        let text = std::fs::read_to_string(&sum_path).ok()?;
        let (len, sum) = text.trim().split_once(' ')?;
        let (len, sum): (u64, BlobHash) = (len.parse().ok()?, sum.parse().ok()?);
        let mut file = std::fs::File::open(path).ok()?;
        if file.metadata().ok()?.len() != len {
            return None;
        }
        let mut h = Hasher::new();
        std::io::copy(&mut file, &mut h).ok()?;
        (BlobHash::from_bytes(h.finalize()) == sum).then_some(len)
    };
    let found = check();
    if found.is_none() {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(&sum_path);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_that_does_not_match_its_sum_is_not_used() {
        let dir = std::env::temp_dir().join(format!("agigit-pending-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.pack");
        std::fs::write(&path, b"a whole pack").unwrap();
        let sum = BlobHash::digest(b"a whole pack");
        std::fs::write(path.with_extension("sum"), format!("12 {sum}\n")).unwrap();
        assert_eq!(whole(&path), Some(12));
        // The same length, other bytes (what a crash of the machine can leave).
        std::fs::write(&path, b"a whale pack").unwrap();
        assert_eq!(whole(&path), None);
        assert!(!path.exists() && !path.with_extension("sum").exists());
        // No sum: never finished.
        std::fs::write(&path, b"a whole pack").unwrap();
        assert_eq!(whole(&path), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
