//! Streaming: a reader in, shards out; shards in, a writer out. Memory stays bounded by
//! segment size × segments in flight, whatever the object's size; segments in flight are coded
//! in parallel on rayon's pool.

use std::io::{self, Read, Write};

use agigit_hash::BlobHash;
use rayon::prelude::*;

use crate::code::{ErasureCode, ShardError};
use crate::manifest::{MAX_SEGMENT_SIZE, ShardManifest};
use crate::transfer::{EncodedSegment, SegmentEncoder, SegmentRebuilder};

/// Why a streaming encode or rebuild failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Reading the input or writing the output failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// Encoding or rebuilding a segment failed.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// The shard sink refused a segment (a failed upload, a full disk).
    #[error("the shard sink failed at segment {segment}: {source}")]
    Sink {
        /// The segment it refused.
        segment: usize,
        /// Its error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The codec or segment size cannot be recorded in a manifest.
    #[error(transparent)]
    Manifest(#[from] crate::ManifestError),
    /// Invalid streaming options.
    #[error("invalid options: {reason}")]
    Options {
        /// What is wrong.
        reason: &'static str,
    },
}

/// How to cut and how much to hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Bytes per segment (the last may be shorter). At least 1, at most 1 GiB.
    pub segment_size: usize,
    /// Segments read, coded and held at once. Memory ≈ `segment_size × in_flight × (1 + n/k)`.
    pub in_flight: usize,
}

impl StreamOptions {
    /// Segments of `segment_size` bytes, as many in flight as rayon has threads.
    pub fn new(segment_size: usize) -> Self {
        Self {
            segment_size,
            in_flight: rayon::current_num_threads().max(1),
        }
    }

    fn check(&self) -> Result<(), StreamError> {
        if self.segment_size == 0 || self.segment_size as u64 > MAX_SEGMENT_SIZE {
            return Err(StreamError::Options {
                reason: "segment_size must be 1 byte to 1 GiB",
            });
        }
        if self.in_flight == 0 {
            return Err(StreamError::Options {
                reason: "in_flight must be at least 1",
            });
        }
        Ok(())
    }
}

/// Reads `reader` to its end, cuts it into segments, erasure-codes them and hands each
/// [`EncodedSegment`] to `sink` in order; returns the object's manifest.
///
/// # Errors
/// [`StreamError`] from reading, coding or the sink; nothing after the failing segment is sent.
pub fn encode_stream<R, F, E>(
    code: &dyn ErasureCode,
    options: StreamOptions,
    mut reader: R,
    mut sink: F,
) -> Result<ShardManifest, StreamError>
where
    R: Read,
    F: FnMut(EncodedSegment) -> Result<(), E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    options.check()?;
    let mut hashes = Vec::new();
    let mut total: u64 = 0;
    let mut next_index = 0;
    loop {
        let mut batch = Vec::with_capacity(options.in_flight);
        for _ in 0..options.in_flight {
            let segment = read_segment(&mut reader, options.segment_size)?;
            if segment.is_empty() {
                break;
            }
            let full = segment.len() == options.segment_size;
            batch.push(segment);
            if !full {
                break;
            }
        }
        if batch.is_empty() {
            break;
        }
        let done = batch.last().is_some_and(|s| s.len() < options.segment_size);
        let coded: Vec<Result<EncodedSegment, ShardError>> = batch
            .into_par_iter()
            .enumerate()
            .map(|(offset, segment)| {
                SegmentEncoder::new(code).encode(next_index + offset, &segment)
            })
            .collect();
        for segment in coded {
            let segment = segment?;
            total += segment.len as u64;
            hashes.push(segment.hashes.clone());
            let index = segment.index;
            sink(segment).map_err(|e| StreamError::Sink {
                segment: index,
                source: e.into(),
            })?;
            next_index += 1;
        }
        if done {
            break;
        }
    }
    Ok(ShardManifest::new(
        code.spec(),
        options.segment_size as u64,
        total,
        hashes,
    )?)
}

/// Reads up to `size` bytes: fewer only at the end of the input.
fn read_segment<R: Read>(reader: &mut R, size: usize) -> io::Result<Vec<u8>> {
    let mut segment = Vec::with_capacity(size);
    reader.take(size as u64).read_to_end(&mut segment)?;
    Ok(segment)
}

/// Where shards come from when rebuilding: a local store, a pool of servers.
///
/// Called from several threads at once (one per segment in flight). Returning `None` means
/// "not available"; returning wrong bytes is harmless, they are hashed and skipped.
pub trait ShardSource: Sync {
    /// Shard `index` of segment `segment`, whose SHA-256 should be `hash`.
    fn fetch(&self, segment: usize, index: usize, hash: &BlobHash) -> Option<Vec<u8>>;
}

impl<F> ShardSource for F
where
    F: Fn(usize, usize, &BlobHash) -> Option<Vec<u8>> + Sync,
{
    fn fetch(&self, segment: usize, index: usize, hash: &BlobHash) -> Option<Vec<u8>> {
        self(segment, index, hash)
    }
}

/// Rebuilds one segment, fetching shards in index order (data shards first, so the fast path is
/// taken when they are all there) and stopping as soon as `k` of them have the right hash.
///
/// # Errors
/// [`ShardError::NotEnoughShards`] naming the segment, the good shards found and `k`.
pub fn fetch_segment(
    manifest: &ShardManifest,
    code: &dyn ErasureCode,
    source: &dyn ShardSource,
    segment: usize,
) -> Result<Vec<u8>, ShardError> {
    let mut rebuild = SegmentRebuilder::new(manifest, code, segment)?;
    loop {
        let wanted = rebuild.wants();
        if wanted.is_empty() {
            break;
        }
        for index in wanted {
            let hash = *rebuild.hash(index).ok_or(ShardError::IndexOutOfRange {
                index,
                n: manifest.codec().n,
            })?;
            match source.fetch(segment, index, &hash) {
                Some(bytes) => {
                    rebuild.offer(index, bytes)?;
                }
                None => rebuild.failed(index),
            }
        }
    }
    rebuild.finish(code)
}

/// Rebuilds the whole object into `writer`, segments in order, `in_flight` of them fetched and
/// rebuilt in parallel. Returns the number of bytes written (the manifest's length).
///
/// # Errors
/// [`StreamError::Shard`] for a segment that cannot be rebuilt (nothing after it is written),
/// [`StreamError::Io`] when writing fails.
pub fn decode_stream<W: Write>(
    manifest: &ShardManifest,
    code: &dyn ErasureCode,
    source: &dyn ShardSource,
    in_flight: usize,
    mut writer: W,
) -> Result<u64, StreamError> {
    if code.spec() != manifest.codec() {
        return Err(StreamError::Options {
            reason: "the codec does not match the manifest's",
        });
    }
    if in_flight == 0 {
        return Err(StreamError::Options {
            reason: "in_flight must be at least 1",
        });
    }
    let count = manifest.segment_count();
    let mut written = 0u64;
    for start in (0..count).step_by(in_flight) {
        let end = (start + in_flight).min(count);
        let segments: Vec<Result<Vec<u8>, ShardError>> = (start..end)
            .into_par_iter()
            .map(|segment| fetch_segment(manifest, code, source, segment))
            .collect();
        for segment in segments {
            let segment = segment?;
            writer.write_all(&segment)?;
            written += segment.len() as u64;
        }
    }
    writer.flush()?;
    Ok(written)
}
