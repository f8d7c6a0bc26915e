//! Moving segments: shards uploaded by placement (re-routed when a server fails) and downloaded
//! from any servers until a segment can be rebuilt.

use agigit_hash::BlobHash;
use agigit_net::{NetError, Transport};
use agigit_shard::{ErasureCode, Placement, ShardManifest};
use bytes::Bytes;

use super::*;
use crate::error::Error;

/// One shard's upload: the server the placement names, where it was stored (server index,
/// bytes), and the errors on the way.
pub(super) struct Upload {
    pub(super) first: usize,
    pub(super) stored: Option<(usize, u64)>,
    pub(super) errors: Vec<String>,
}

/// One segment's shards: their hashes (for the manifest) and their uploads.
pub(super) struct SegmentUpload {
    pub(super) hashes: Vec<BlobHash>,
    pub(super) uploads: Vec<Upload>,
}

/// Uploads shards, each to its placement's server or, when that fails, the next that works.
pub(super) struct ShardUpload<'a> {
    pub(super) transport: &'a dyn Transport,
    pub(super) servers: &'a [String],
    pub(super) progress: Option<&'a dyn Progress>,
}

impl ShardUpload<'_> {
    pub(super) async fn upload(&self, first: usize, data: Bytes) -> Upload {
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

/// `len` bytes of `path` from `offset`.
pub(super) fn read_at(path: &std::path::Path, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::File::open(path).map_err(Error::io(path))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .map_err(Error::io(path))?;
    let mut data = vec![0u8; len];
    file.read_exact(&mut data).map_err(Error::io(path))?;
    Ok(data)
}

/// What fetching one segment needs.
pub(super) struct SegmentFetch<'a> {
    pub(super) transport: &'a dyn Transport,
    pub(super) servers: &'a [String],
    pub(super) manifest: &'a ShardManifest,
    pub(super) code: &'a dyn ErasureCode,
    pub(super) placement: &'a Placement,
}

impl SegmentFetch<'_> {
    /// Shard `index` of `segment` from its placement's server, else from the others in turn
    /// (the transport checks each blob against its hash).
    pub(super) async fn shard(
        &self,
        segment: usize,
        index: usize,
        hash: &BlobHash,
    ) -> Option<Bytes> {
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
    pub(super) async fn fetch(&self, segment: usize) -> Result<(Vec<u8>, usize, u64), Error> {
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
pub(super) fn tracing_failure(server: &str, e: &NetError) {
    tracing::warn!(%server, error = %e, "upload failed");
}
