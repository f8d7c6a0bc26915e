//! Blob storage for Blossom: the [`BlobStore`] trait and the filesystem default, [`FsBlobStore`].
//!
//! An upload streams into a temporary file while it is hashed; only [`BlobUpload::commit`] makes
//! it visible, after the hash, the expected hash and the uploader's quota are checked, so a
//! reader never sees a partial or unverified blob.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agigit_hash::{BlobHash, Hasher};
use nostr::prelude::PublicKey;

pub use crate::blob_index::IndexDb;
use crate::blob_index::{BlobIndex, now_secs};

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
    /// The object storage behind the store failed or refused (an S3 request, its
    /// configuration).
    #[error("object storage: {0}")]
    Backend(String),
    /// The index in PostgreSQL failed, or read something it did not write.
    #[error("blob index database: {0}")]
    IndexDb(String),
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

/// An upload streaming into a temporary file while it is hashed: what every store that keeps
/// its bytes elsewhere (a filesystem, object storage) writes first. Dropped unfinished, the
/// file goes.
#[derive(Debug)]
pub(crate) struct Spool {
    pub(crate) temp: PathBuf,
    file: Option<File>,
    hasher: Hasher,
    max: u64,
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

impl Spool {
    /// A new spool file at `temp` (which must not exist) for at most `max` bytes.
    pub(crate) fn create(temp: PathBuf, max: u64) -> Result<Self, BlobStoreError> {
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&temp)?;
        Ok(Spool {
            temp,
            file: Some(file),
            hasher: Hasher::new(),
            max,
        })
    }

    pub(crate) fn write(&mut self, chunk: &[u8]) -> Result<(), BlobStoreError> {
        let len = self.hasher.len().saturating_add(chunk.len() as u64);
        if len > self.max {
            return Err(BlobStoreError::TooLarge { limit: self.max });
        }
        self.file_mut()?.write_all(chunk)?;
        self.hasher.update(chunk);
        Ok(())
    }

    pub(crate) fn len(&self) -> u64 {
        self.hasher.len()
    }

    pub(crate) fn hash(&self) -> BlobHash {
        BlobHash::from_hasher(self.hasher.clone())
    }

    fn file_mut(&mut self) -> Result<&mut File, BlobStoreError> {
        Ok(self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("upload already finished"))?)
    }

    /// The bytes' hash and length, checked against `expected`; the file synced and rewound.
    pub(crate) fn finish(
        &mut self,
        expected: Option<&BlobHash>,
    ) -> Result<(BlobHash, u64), BlobStoreError> {
        let size = self.hasher.len();
        let actual = BlobHash::from_hasher(self.hasher.clone());
        if let Some(expected) = expected
            && *expected != actual
        {
            return Err(BlobStoreError::HashMismatch {
                expected: *expected,
                actual,
            });
        }
        let file = self.file_mut()?;
        file.sync_all()?;
        file.rewind()?;
        Ok((actual, size))
    }

    /// The spooled file, to read back.
    #[cfg_attr(not(feature = "s3"), allow(dead_code, reason = "the S3 store's"))]
    pub(crate) fn file(&mut self) -> Result<&mut File, BlobStoreError> {
        self.file_mut()
    }

    /// The temporary file is no longer the spool's to remove (renamed into place).
    fn release(&mut self) {
        self.file = None;
    }
}

/// Blobs as files under `root/ab/<hash>`, with an index of owners in `root/index.sqlite` (or in
/// PostgreSQL, see [`IndexDb`]).
#[derive(Clone, Debug)]
pub struct FsBlobStore {
    inner: Arc<FsInner>,
}

#[derive(Debug)]
struct FsInner {
    root: PathBuf,
    index: BlobIndex,
    counter: AtomicU64,
}

impl FsBlobStore {
    /// Opens (creating if needed) a store in `root`, removing temporary files a crash left.
    ///
    /// # Errors
    /// I/O and index errors.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, BlobStoreError> {
        Self::open_with(root, &IndexDb::Local)
    }

    /// As [`open`](Self::open), with the owner index where `index` says.
    ///
    /// # Errors
    /// I/O errors; [`BlobStoreError::IndexDb`] when the index database cannot be reached.
    pub fn open_with(root: impl AsRef<Path>, index: &IndexDb) -> Result<Self, BlobStoreError> {
        let root = root.as_ref().to_owned();
        std::fs::create_dir_all(root.join("tmp"))?;
        for entry in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        let index = BlobIndex::open(index, &root.join("index.sqlite"))?;
        Ok(FsBlobStore {
            inner: Arc::new(FsInner {
                root,
                index,
                counter: AtomicU64::new(0),
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
        self.inner.index.set_retention(secs);
        self.sweep(now_secs())?;
        Ok(self)
    }

    /// Deletes the blobs unclaimed for longer than the retention at time `now` (Unix seconds);
    /// returns how many. Runs at start and with every delete.
    ///
    /// # Errors
    /// I/O and index errors.
    pub fn sweep(&self, now: u64) -> Result<usize, BlobStoreError> {
        self.inner.index.sweep(now, &|hash| self.remove(hash))
    }

    fn path(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.inner.root.join(&hex[..2]).join(hex)
    }

    fn remove(&self, hash: &BlobHash) -> Result<(), BlobStoreError> {
        match std::fs::remove_file(self.path(hash)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

struct FsUpload {
    store: FsBlobStore,
    spool: Spool,
}

impl BlobUpload for FsUpload {
    fn write(&mut self, chunk: &[u8]) -> Result<(), BlobStoreError> {
        self.spool.write(chunk)
    }

    fn len(&self) -> u64 {
        self.spool.len()
    }

    fn hash(&self) -> BlobHash {
        self.spool.hash()
    }

    fn commit(
        mut self: Box<Self>,
        owner: &PublicKey,
        content_type: &str,
        expected: Option<&BlobHash>,
        quota: Option<u64>,
    ) -> Result<(BlobInfo, bool), BlobStoreError> {
        let (actual, size) = self.spool.finish(expected)?;
        let final_path = self.store.path(&actual);
        let mut renamed = false;
        let claimed =
            self.store
                .inner
                .index
                .claim(&actual, size, content_type, owner, quota, |is_new| {
                    if is_new || !final_path.exists() {
                        if let Some(dir) = final_path.parent() {
                            std::fs::create_dir_all(dir)?;
                        }
                        std::fs::rename(&self.spool.temp, &final_path)?;
                        renamed = true;
                    }
                    Ok(())
                });
        if renamed {
            self.spool.release();
        }
        claimed
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
        Ok(Box::new(FsUpload {
            store: self.clone(),
            spool: Spool::create(temp, max_bytes)?,
        }))
    }

    fn info(&self, hash: &BlobHash) -> Result<Option<BlobInfo>, BlobStoreError> {
        self.inner.index.info(hash)
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
        self.inner.index.list(owner, since, until)
    }

    fn delete(&self, hash: &BlobHash, owner: &PublicKey) -> Result<DeleteOutcome, BlobStoreError> {
        self.inner
            .index
            .delete(hash, owner, &|hash| self.remove(hash))
    }

    fn is_claimed(&self, hash: &BlobHash) -> Result<bool, BlobStoreError> {
        self.inner.index.is_claimed(hash)
    }

    fn usage(&self, owner: &PublicKey) -> Result<u64, BlobStoreError> {
        self.inner.index.usage(owner)
    }
}
