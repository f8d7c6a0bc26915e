//! Blobs in S3-compatible object storage (AWS S3, Cloudflare R2, MinIO, Garage, …), for a relay
//! whose blobs outgrow one disk: [`S3BlobStore`], on the `object_store` crate's S3 client.
//!
//! The bytes live in the bucket under `<prefix><hash hex>`; the owner index (who claims which
//! blob, since when, what waits out the retention) stays in SQLite in the relay's data
//! directory, as for the filesystem store. An upload streams into a local spool file while it
//! is hashed — nothing reaches the bucket before its hash and the uploader's quota are checked —
//! then goes up in one PUT, or in 16 MiB parts above that. Downloads read ranges of 4 MiB as the
//! reader asks (Blossom's `Range` requests seek). The store runs its own small runtime for the
//! S3 client, so its blocking calls work from any thread that is not an async worker (the relay
//! calls every blob store from `spawn_blocking`).

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agigit_hash::BlobHash;
use bytes::Bytes;
use nostr::prelude::PublicKey;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt as _, PutPayload};

use crate::blob_index::{BlobIndex, IndexDb, now_secs};
use crate::blobs::{
    BlobInfo, BlobStore, BlobStoreError, BlobUpload, DeleteOutcome, OpenedBlob, Spool,
};
use crate::config::S3Config;

/// Bytes one ranged GET reads ahead.
const READ_BLOCK: u64 = 4 << 20;
/// Above this, an upload goes in parts of this size (S3 wants at least 5 MiB but the last).
const PART: usize = 16 << 20;

/// A Blossom blob store in an S3-compatible bucket, with its owner index in SQLite.
#[derive(Clone, Debug)]
pub struct S3BlobStore {
    inner: Arc<S3Inner>,
}

#[derive(Debug)]
struct S3Inner {
    s3: AmazonS3,
    prefix: String,
    index: BlobIndex,
    spool: PathBuf,
    counter: AtomicU64,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for S3Inner {
    fn drop(&mut self) {
        // A runtime dropped in an async context panics; this one may go down anywhere.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn remote(what: &str, e: object_store::Error) -> BlobStoreError {
    BlobStoreError::Backend(format!("{what}: {e}"))
}

impl S3BlobStore {
    /// Opens a store in the bucket `config` names, its index and upload spool in `local`
    /// (created if needed; spool files a crash left are removed). Credentials not in `config`
    /// come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, …). Nothing is sent to the bucket until a blob is.
    ///
    /// # Errors
    /// [`BlobStoreError::Backend`] for a configuration the S3 client refuses; I/O and index
    /// errors.
    pub fn open(
        config: &S3Config,
        local: impl AsRef<std::path::Path>,
    ) -> Result<Self, BlobStoreError> {
        Self::open_with(config, local, &IndexDb::Local)
    }

    /// As [`open`](Self::open), with the owner index where `index` says: relay processes that
    /// share one bucket (and prefix) share one index in PostgreSQL.
    ///
    /// # Errors
    /// As [`open`](Self::open); [`BlobStoreError::IndexDb`] when the index database cannot be
    /// reached.
    pub fn open_with(
        config: &S3Config,
        local: impl AsRef<std::path::Path>,
        index: &IndexDb,
    ) -> Result<Self, BlobStoreError> {
        // The HTTPS client's TLS: rustls with ring (another provider already installed is fine).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let local = local.as_ref().to_owned();
        let spool = local.join("tmp");
        std::fs::create_dir_all(&spool)?;
        for entry in std::fs::read_dir(&spool)? {
            let _ = std::fs::remove_file(entry?.path());
        }
        let index = BlobIndex::open(index, &local.join("index.sqlite"))?;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http)
            .with_virtual_hosted_style_request(config.virtual_hosted_style);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(id) = &config.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let s3 = builder
            .build()
            .map_err(|e| remote("the S3 configuration", e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("agigit-s3")
            .enable_all()
            .build()?;
        Ok(S3BlobStore {
            inner: Arc::new(S3Inner {
                s3,
                prefix: config.prefix.clone(),
                index,
                spool,
                counter: AtomicU64::new(0),
                runtime: Some(runtime),
            }),
        })
    }

    /// Keeps a blob whose last claim was deleted for `secs` seconds more, then deletes it;
    /// removes the blobs already past it (see [`FsBlobStore::with_retention`](crate::FsBlobStore::with_retention)).
    ///
    /// # Errors
    /// Bucket and index errors of the sweep.
    pub fn with_retention(self, secs: u64) -> Result<Self, BlobStoreError> {
        self.inner.index.set_retention(secs);
        self.sweep(now_secs())?;
        Ok(self)
    }

    /// Deletes the blobs unclaimed for longer than the retention at time `now` (Unix seconds);
    /// returns how many.
    ///
    /// # Errors
    /// Bucket and index errors.
    pub fn sweep(&self, now: u64) -> Result<usize, BlobStoreError> {
        self.inner.index.sweep(now, &|hash| self.inner.remove(hash))
    }
}

impl S3Inner {
    fn key(&self, hash: &BlobHash) -> ObjectPath {
        ObjectPath::from(format!("{}{}", self.prefix, hash.to_hex()))
    }

    /// Runs `fut` on the store's runtime and waits for it (from a thread that may block).
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, BlobStoreError> {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| BlobStoreError::Backend("the S3 client is shut down".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| BlobStoreError::Backend("the S3 client stopped mid-request".into()))
    }

    fn remove(&self, hash: &BlobHash) -> Result<(), BlobStoreError> {
        let (s3, key) = (self.s3.clone(), self.key(hash));
        match self.run(async move { s3.delete(&key).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote("delete", e)),
        }
    }

    fn exists(&self, hash: &BlobHash) -> Result<bool, BlobStoreError> {
        let (s3, key) = (self.s3.clone(), self.key(hash));
        match self.run(async move { s3.head(&key).await })? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(remote("head", e)),
        }
    }

    /// Sends the spooled bytes to the blob's key: one PUT, or parts of [`PART`] bytes.
    fn upload(
        &self,
        hash: &BlobHash,
        size: u64,
        file: &mut std::fs::File,
    ) -> Result<(), BlobStoreError> {
        let key = self.key(hash);
        let s3 = self.s3.clone();
        if size <= PART as u64 {
            let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(PART));
            file.read_to_end(&mut body)?;
            return self
                .run(async move { s3.put(&key, PutPayload::from(body)).await })?
                .map(|_| ())
                .map_err(|e| remote("put", e));
        }
        let mut upload = self
            .run(async move { s3.put_multipart(&key).await })?
            .map_err(|e| remote("start a multipart upload", e))?;
        let sent = (|| -> Result<(), BlobStoreError> {
            loop {
                let mut part = Vec::with_capacity(PART);
                file.by_ref().take(PART as u64).read_to_end(&mut part)?;
                if part.is_empty() {
                    return Ok(());
                }
                let put = upload.put_part(PutPayload::from(part));
                self.run(put)?.map_err(|e| remote("put a part", e))?;
            }
        })();
        match sent {
            Ok(()) => {
                let (done, _) = self.run(async move {
                    let done = upload.complete().await;
                    (done, upload)
                })?;
                done.map(|_| ())
                    .map_err(|e| remote("complete a multipart upload", e))
            }
            Err(e) => {
                let _ = self.run(async move { upload.abort().await });
                Err(e)
            }
        }
    }
}

struct S3Upload {
    store: S3BlobStore,
    spool: Spool,
}

impl BlobUpload for S3Upload {
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
        let inner = Arc::clone(&self.store.inner);
        // The bytes go up before the index names them (a blob listed is a blob stored), and
        // only once the quota allows them; the claim checks the quota again, atomically.
        if !inner.index.contains(&actual)? || !inner.exists(&actual)? {
            inner.index.check_quota(&actual, owner, size, quota)?;
            inner.upload(&actual, size, self.spool.file()?)?;
        }
        inner
            .index
            .claim(&actual, size, content_type, owner, quota, |_| Ok(()))
    }
}

/// A stored blob, read a ranged GET at a time.
struct S3Reader {
    store: Arc<S3Inner>,
    key: ObjectPath,
    size: u64,
    pos: u64,
    block: Bytes,
    block_at: u64,
}

impl S3Reader {
    /// Reads the block at the position; `false` when the bucket has no such object.
    fn fetch(&mut self) -> Result<bool, BlobStoreError> {
        let end = self.pos.saturating_add(READ_BLOCK).min(self.size);
        let (s3, key, start) = (self.store.s3.clone(), self.key.clone(), self.pos);
        let bytes = match self
            .store
            .run(async move { s3.get_range(&key, start..end).await })?
        {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(remote("get", e)),
        };
        if bytes.len() as u64 != end - start {
            return Err(BlobStoreError::Backend(format!(
                "get {start}..{end} of {} returned {} bytes",
                self.key,
                bytes.len()
            )));
        }
        self.block = bytes;
        self.block_at = start;
        Ok(true)
    }
}

impl Read for S3Reader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let in_block =
            self.pos >= self.block_at && self.pos < self.block_at + self.block.len() as u64;
        if !in_block && !self.fetch().map_err(std::io::Error::other)? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is gone from the bucket", self.key),
            ));
        }
        let offset = usize::try_from(self.pos - self.block_at).map_err(std::io::Error::other)?;
        let n = out.len().min(self.block.len() - offset);
        out[..n].copy_from_slice(&self.block[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for S3Reader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the blob",
            )
        })?;
        Ok(self.pos)
    }
}

impl BlobStore for S3BlobStore {
    fn begin(&self, max_bytes: u64) -> Result<Box<dyn BlobUpload>, BlobStoreError> {
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let temp = self.inner.spool.join(format!("{}-{n}", std::process::id()));
        Ok(Box::new(S3Upload {
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
        let mut reader = S3Reader {
            store: Arc::clone(&self.inner),
            key: self.inner.key(hash),
            size: info.size,
            pos: 0,
            block: Bytes::new(),
            block_at: 0,
        };
        // The first block now: a blob the bucket lost is absent, as a missing file is.
        let found = if info.size > 0 {
            reader.fetch()?
        } else {
            self.inner.exists(hash)?
        };
        if !found {
            return Ok(None);
        }
        Ok(Some((Box::new(reader), info)))
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
            .delete(hash, owner, &|hash| self.inner.remove(hash))
    }

    fn is_claimed(&self, hash: &BlobHash) -> Result<bool, BlobStoreError> {
        self.inner.index.is_claimed(hash)
    }

    fn usage(&self, owner: &PublicKey) -> Result<u64, BlobStoreError> {
        self.inner.index.usage(owner)
    }
}
