//! Blob storage for Blossom: the [`BlobStore`] trait and the filesystem default, [`FsBlobStore`].
//!
//! An upload streams into a temporary file while it is hashed; only [`BlobUpload::commit`] makes
//! it visible, after the hash, the expected hash and the uploader's quota are checked, so a
//! reader never sees a partial or unverified blob.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use agigit_hash::{BlobHash, Hasher};
use nostr::prelude::PublicKey;
use rusqlite::{Connection, OptionalExtension, params};

/// A stored blob's description (the BUD-02 blob descriptor, less its URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// SHA-256 of the bytes.
    pub hash: BlobHash,
    /// Length in bytes.
    pub size: u64,
    /// MIME type given at upload (`application/octet-stream` when none was).
    pub content_type: String,
    /// When it was uploaded (for a listing: when this owner uploaded it), unix seconds.
    pub uploaded: u64,
}

/// What a delete did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// No such blob.
    NotFound,
    /// The blob exists, but this pubkey did not upload it.
    NotOwner,
    /// This pubkey no longer owns it; other uploaders keep it stored.
    Released,
    /// Its last owner deleted it: the bytes are gone, or go when the store's retention for
    /// unclaimed blobs is over.
    Removed,
}

/// A blob store failed or refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobStoreError {
    /// The bytes do not hash to what the uploader declared.
    #[error("the body hashes to {actual}, not the declared {expected}")]
    HashMismatch {
        /// What the uploader declared.
        expected: BlobHash,
        /// What the bytes hash to.
        actual: BlobHash,
    },
    /// The blob is larger than allowed.
    #[error("the blob is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The uploader's quota would be exceeded.
    #[error("storing {size} more bytes would exceed the quota of {quota} bytes (in use: {used})")]
    Quota {
        /// The blob's size.
        size: u64,
        /// Bytes the uploader already stores.
        used: u64,
        /// The quota.
        quota: u64,
    },
    /// The filesystem failed.
    #[error("blob storage I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The index failed.
    #[error("blob index: {0}")]
    Index(#[from] rusqlite::Error),
    /// A lock was poisoned by a panicking thread.
    #[error("the blob store's lock is poisoned")]
    Poisoned,
}

/// Bytes that can be read and seeked (for Range requests).
pub trait BlobReader: Read + Seek + Send {}
impl<T: Read + Seek + Send> BlobReader for T {}

/// An opened blob: its bytes and its description.
pub type OpenedBlob = (Box<dyn BlobReader>, BlobInfo);

/// An upload in progress. Dropping it without [`commit`](BlobUpload::commit) discards it.
pub trait BlobUpload: Send {
    /// Appends bytes.
    ///
    /// # Errors
    /// [`BlobStoreError::TooLarge`] past the store's limit; I/O errors.
    fn write(&mut self, chunk: &[u8]) -> Result<(), BlobStoreError>;

    /// Bytes written so far.
    fn len(&self) -> u64;

    /// SHA-256 of the bytes written so far.
    fn hash(&self) -> BlobHash;

    /// Whether nothing was written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes the blob visible, owned by `owner`, after checking `expected` (if given) and the
    /// owner's `quota` (if given). Returns its description and whether it is new to the store.
    ///
    /// # Errors
    /// [`BlobStoreError::HashMismatch`], [`BlobStoreError::Quota`], I/O and index errors; nothing
    /// becomes visible then.
    fn commit(
        self: Box<Self>,
        owner: &PublicKey,
        content_type: &str,
        expected: Option<&BlobHash>,
        quota: Option<u64>,
    ) -> Result<(BlobInfo, bool), BlobStoreError>;
}

/// Where Blossom blobs live.
pub trait BlobStore: Send + Sync {
    /// Starts an upload of at most `max_bytes`.
    ///
    /// # Errors
    /// I/O errors.
    fn begin(&self, max_bytes: u64) -> Result<Box<dyn BlobUpload>, BlobStoreError>;

    /// The blob's description, if stored.
    ///
    /// # Errors
    /// Index errors.
    fn info(&self, hash: &BlobHash) -> Result<Option<BlobInfo>, BlobStoreError>;

    /// Opens a stored blob.
    ///
    /// # Errors
    /// I/O and index errors.
    fn open(&self, hash: &BlobHash) -> Result<Option<OpenedBlob>, BlobStoreError>;

    /// The blobs `owner` uploaded, newest first, uploaded within `[since, until]`.
    ///
    /// # Errors
    /// Index errors.
    fn list(
        &self,
        owner: &PublicKey,
        since: Option<u64>,
        until: Option<u64>,
    ) -> Result<Vec<BlobInfo>, BlobStoreError>;

    /// Removes `owner`'s claim on the blob; the bytes go when no owner is left.
    ///
    /// # Errors
    /// I/O and index errors.
    fn delete(&self, hash: &BlobHash, owner: &PublicKey) -> Result<DeleteOutcome, BlobStoreError>;

    /// Bytes `owner` stores (each blob it uploaded counted once).
    ///
    /// # Errors
    /// Index errors.
    fn usage(&self, owner: &PublicKey) -> Result<u64, BlobStoreError>;

    /// Whether some uploader still claims the blob (one kept past its last claim for the
    /// retention period is stored, and not claimed).
    ///
    /// # Errors
    /// Index errors.
    fn is_claimed(&self, hash: &BlobHash) -> Result<bool, BlobStoreError> {
        Ok(self.info(hash)?.is_some())
    }
}

/// Blobs as files under `root/ab/<hash>`, with an SQLite index of owners in `root/index.sqlite`.
#[derive(Clone, Debug)]
pub struct FsBlobStore {
    inner: Arc<FsInner>,
}

#[derive(Debug)]
struct FsInner {
    root: PathBuf,
    index: Mutex<Connection>,
    counter: AtomicU64,
    /// Seconds a blob stays after its last claim goes (0: it goes at once).
    retention: AtomicU64,
}

const OCTET_STREAM: &str = "application/octet-stream";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl FsBlobStore {
    /// Opens (creating if needed) a store in `root`, removing temporary files a crash left.
    ///
    /// # Errors
    /// I/O and index errors.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, BlobStoreError> {
        let root = root.as_ref().to_owned();
        std::fs::create_dir_all(root.join("tmp"))?;
        for entry in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        let index = Connection::open(root.join("index.sqlite"))?;
        index.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS blobs (
                 hash TEXT PRIMARY KEY,
                 size INTEGER NOT NULL,
                 type TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS owners (
                 hash TEXT NOT NULL REFERENCES blobs(hash),
                 pubkey TEXT NOT NULL,
                 uploaded INTEGER NOT NULL,
                 PRIMARY KEY (pubkey, hash)
             );
             CREATE INDEX IF NOT EXISTS owners_by_hash ON owners(hash);
             CREATE TABLE IF NOT EXISTS unclaimed (
                 hash TEXT PRIMARY KEY REFERENCES blobs(hash),
                 since INTEGER NOT NULL
             );",
        )?;
        Ok(FsBlobStore {
            inner: Arc::new(FsInner {
                root,
                index: Mutex::new(index),
                counter: AtomicU64::new(0),
                retention: AtomicU64::new(0),
            }),
        })
    }

    /// Keeps a blob whose last claim was deleted for `secs` seconds more (served to readers,
    /// but answered 404 to `HEAD`, so that a writer uploads it again and claims it), then
    /// deletes it; removes the blobs already past it.
    ///
    /// # Errors
    /// I/O and index errors of the sweep.
    pub fn with_retention(self, secs: u64) -> Result<Self, BlobStoreError> {
        self.inner.retention.store(secs, Ordering::Relaxed);
        self.sweep(now_secs())?;
        Ok(self)
    }

    /// Deletes the blobs unclaimed for longer than the retention at time `now` (Unix seconds);
    /// returns how many. Runs at start and with every delete.
    ///
    /// # Errors
    /// I/O and index errors.
    pub fn sweep(&self, now: u64) -> Result<usize, BlobStoreError> {
        let retention = self.inner.retention.load(Ordering::Relaxed);
        let mut index = self.index()?;
        let tx = index.transaction()?;
        let expired: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT u.hash FROM unclaimed u
                 WHERE u.since <= ?1 AND NOT EXISTS (SELECT 1 FROM owners o WHERE o.hash = u.hash)",
            )?;
            let rows =
                stmt.query_map(params![to_i64(now.saturating_sub(retention))], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for hex in &expired {
            tx.execute("DELETE FROM unclaimed WHERE hash = ?1", params![hex])?;
            tx.execute("DELETE FROM blobs WHERE hash = ?1", params![hex])?;
            if let Ok(hash) = hex.parse::<BlobHash>() {
                match std::fs::remove_file(self.path(&hash)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        tx.commit()?;
        Ok(expired.len())
    }

    fn path(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.inner.root.join(&hex[..2]).join(hex)
    }

    fn index(&self) -> Result<std::sync::MutexGuard<'_, Connection>, BlobStoreError> {
        self.inner
            .index
            .lock()
            .map_err(|_| BlobStoreError::Poisoned)
    }
}

fn row_info(hash: &BlobHash, size: i64, content_type: String, uploaded: i64) -> BlobInfo {
    BlobInfo {
        hash: *hash,
        size: to_u64(size),
        content_type,
        uploaded: to_u64(uploaded),
    }
}

struct FsUpload {
    store: FsBlobStore,
    temp: PathBuf,
    file: Option<File>,
    hasher: Hasher,
    max: u64,
}

impl Drop for FsUpload {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

impl BlobUpload for FsUpload {
    fn write(&mut self, chunk: &[u8]) -> Result<(), BlobStoreError> {
        let len = self.hasher.len().saturating_add(chunk.len() as u64);
        if len > self.max {
            return Err(BlobStoreError::TooLarge { limit: self.max });
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("upload already finished"))?;
        file.write_all(chunk)?;
        self.hasher.update(chunk);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.hasher.len()
    }

    fn hash(&self) -> BlobHash {
        BlobHash::from_hasher(self.hasher.clone())
    }

    fn commit(
        mut self: Box<Self>,
        owner: &PublicKey,
        content_type: &str,
        expected: Option<&BlobHash>,
        quota: Option<u64>,
    ) -> Result<(BlobInfo, bool), BlobStoreError> {
        let size = self.hasher.len();
        let actual = BlobHash::from_hasher(std::mem::take(&mut self.hasher));
        if let Some(expected) = expected
            && *expected != actual
        {
            return Err(BlobStoreError::HashMismatch {
                expected: *expected,
                actual,
            });
        }
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("upload already finished"))?;
        file.sync_all()?;
        let content_type = if content_type.is_empty() {
            OCTET_STREAM
        } else {
            content_type
        };
        let hex = actual.to_hex();
        let owner_hex = owner.to_hex();
        let now = now_secs();
        let store = self.store.clone();
        let mut index = store.index()?;
        let tx = index.transaction()?;
        let owned: bool = tx
            .query_row(
                "SELECT 1 FROM owners WHERE pubkey = ?1 AND hash = ?2",
                params![owner_hex, hex],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if let Some(quota) = quota
            && !owned
        {
            let used: i64 = tx.query_row(
                "SELECT COALESCE(SUM(b.size), 0) FROM owners o JOIN blobs b ON b.hash = o.hash
                 WHERE o.pubkey = ?1",
                params![owner_hex],
                |r| r.get(0),
            )?;
            let used = to_u64(used);
            if used.saturating_add(size) > quota {
                return Err(BlobStoreError::Quota { size, used, quota });
            }
        }
        let existing: Option<String> = tx
            .query_row(
                "SELECT type FROM blobs WHERE hash = ?1",
                params![hex],
                |r| r.get(0),
            )
            .optional()?;
        let is_new = existing.is_none();
        let final_path = store.path(&actual);
        if is_new {
            tx.execute(
                "INSERT INTO blobs (hash, size, type) VALUES (?1, ?2, ?3)",
                params![hex, to_i64(size), content_type],
            )?;
        }
        if !owned {
            tx.execute(
                "INSERT INTO owners (hash, pubkey, uploaded) VALUES (?1, ?2, ?3)",
                params![hex, owner_hex, to_i64(now)],
            )?;
        }
        // Claimed again: no longer on its way out.
        tx.execute("DELETE FROM unclaimed WHERE hash = ?1", params![hex])?;
        if is_new || !final_path.exists() {
            if let Some(dir) = final_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::rename(&self.temp, &final_path)?;
            self.file = None;
        }
        tx.commit()?;
        let info = BlobInfo {
            hash: actual,
            size,
            content_type: existing.unwrap_or_else(|| content_type.to_owned()),
            uploaded: now,
        };
        Ok((info, is_new))
    }
}

impl BlobStore for FsBlobStore {
    fn begin(&self, max_bytes: u64) -> Result<Box<dyn BlobUpload>, BlobStoreError> {
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .inner
            .root
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        Ok(Box::new(FsUpload {
            store: self.clone(),
            temp,
            file: Some(file),
            hasher: Hasher::new(),
            max: max_bytes,
        }))
    }

    fn info(&self, hash: &BlobHash) -> Result<Option<BlobInfo>, BlobStoreError> {
        let index = self.index()?;
        Ok(index
            .query_row(
                "SELECT b.size, b.type, COALESCE(MIN(o.uploaded), 0) FROM blobs b
                 LEFT JOIN owners o ON o.hash = b.hash WHERE b.hash = ?1 GROUP BY b.hash",
                params![hash.to_hex()],
                |r| Ok(row_info(hash, r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    fn open(&self, hash: &BlobHash) -> Result<Option<OpenedBlob>, BlobStoreError> {
        let Some(info) = self.info(hash)? else {
            return Ok(None);
        };
        match File::open(self.path(hash)) {
            Ok(f) => Ok(Some((Box::new(f), info))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn list(
        &self,
        owner: &PublicKey,
        since: Option<u64>,
        until: Option<u64>,
    ) -> Result<Vec<BlobInfo>, BlobStoreError> {
        let index = self.index()?;
        let mut stmt = index.prepare(
            "SELECT o.hash, b.size, b.type, o.uploaded FROM owners o JOIN blobs b ON b.hash = o.hash
             WHERE o.pubkey = ?1 AND o.uploaded >= ?2 AND o.uploaded <= ?3
             ORDER BY o.uploaded DESC, o.hash",
        )?;
        let rows = stmt.query_map(
            params![
                owner.to_hex(),
                to_i64(since.unwrap_or(0)),
                to_i64(until.unwrap_or(u64::MAX))
            ],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (hex, size, ty, uploaded) = row?;
            // The index only holds hashes it wrote; skip anything else rather than fail a list.
            if let Ok(hash) = hex.parse::<BlobHash>() {
                out.push(row_info(&hash, size, ty, uploaded));
            }
        }
        Ok(out)
    }

    fn delete(&self, hash: &BlobHash, owner: &PublicKey) -> Result<DeleteOutcome, BlobStoreError> {
        let hex = hash.to_hex();
        let mut index = self.index()?;
        let tx = index.transaction()?;
        let exists = tx
            .query_row("SELECT 1 FROM blobs WHERE hash = ?1", params![hex], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        if !exists {
            return Ok(DeleteOutcome::NotFound);
        }
        let removed = tx.execute(
            "DELETE FROM owners WHERE hash = ?1 AND pubkey = ?2",
            params![hex, owner.to_hex()],
        )?;
        if removed == 0 {
            return Ok(DeleteOutcome::NotOwner);
        }
        let left: i64 = tx.query_row(
            "SELECT COUNT(*) FROM owners WHERE hash = ?1",
            params![hex],
            |r| r.get(0),
        )?;
        let retention = self.inner.retention.load(Ordering::Relaxed);
        let outcome = if left == 0 && retention > 0 {
            tx.execute(
                "INSERT OR REPLACE INTO unclaimed (hash, since) VALUES (?1, ?2)",
                params![hex, to_i64(now_secs())],
            )?;
            DeleteOutcome::Removed
        } else if left == 0 {
            tx.execute("DELETE FROM blobs WHERE hash = ?1", params![hex])?;
            match std::fs::remove_file(self.path(hash)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            DeleteOutcome::Removed
        } else {
            DeleteOutcome::Released
        };
        tx.commit()?;
        drop(index);
        if retention > 0 {
            self.sweep(now_secs())?;
        }
        Ok(outcome)
    }

    fn is_claimed(&self, hash: &BlobHash) -> Result<bool, BlobStoreError> {
        let index = self.index()?;
        Ok(index
            .query_row(
                "SELECT 1 FROM owners WHERE hash = ?1 LIMIT 1",
                params![hash.to_hex()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn usage(&self, owner: &PublicKey) -> Result<u64, BlobStoreError> {
        let index = self.index()?;
        let used: i64 = index.query_row(
            "SELECT COALESCE(SUM(b.size), 0) FROM owners o JOIN blobs b ON b.hash = o.hash
             WHERE o.pubkey = ?1",
            params![owner.to_hex()],
            |r| r.get(0),
        )?;
        Ok(to_u64(used))
    }
}
