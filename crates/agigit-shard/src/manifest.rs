//! [`ShardManifest`]: how one object was cut and coded, and the hash of every shard.

use agigit_hash::BlobHash;

use crate::code::{CodecKind, CodecSpec, ErasureCode, ShardError, codec_for};

/// Magic bytes at the start of an encoded manifest.
pub const MANIFEST_MAGIC: [u8; 4] = *b"AGSM";
/// The manifest encoding version of a manifest without an annex.
pub const MANIFEST_VERSION: u8 = 1;
/// The manifest encoding version of a manifest with an annex (version 1's fields, then the
/// annex): what the application knows about the object, such as agigit's index of a pack's
/// objects. This crate reads and writes both versions.
pub const MANIFEST_VERSION_ANNEX: u8 = 2;
/// The largest annex (64 MiB, the most a reader fetches for a whole manifest).
pub const MAX_ANNEX_LEN: usize = 64 << 20;
/// Largest segment size a manifest may name (1 GiB): a reader allocates one segment at a time
/// per worker, so this bounds what a hostile manifest can make it allocate.
pub const MAX_SEGMENT_SIZE: u64 = 1 << 30;

const HEADER_LEN: usize = 32;

/// Why bytes are not a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Shorter than the fixed header.
    #[error("a shard manifest is at least {HEADER_LEN} bytes; got {len}")]
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// Does not start with `AGSM`.
    #[error("not a shard manifest (the magic bytes are not \"AGSM\")")]
    BadMagic,
    /// A version this crate does not read.
    #[error(
        "shard manifest version {version} is not supported (this build reads versions 1 and 2); upgrade agigit"
    )]
    UnsupportedVersion {
        /// The version byte.
        version: u8,
    },
    /// An unknown codec tag.
    #[error("unknown erasure codec tag {tag}; upgrade agigit")]
    UnknownCodec {
        /// The codec byte.
        tag: u8,
    },
    /// Reserved bytes are not zero.
    #[error("reserved manifest bytes must be zero")]
    Reserved,
    /// The codec parameters are not valid for the codec.
    #[error("invalid codec parameters: {0}")]
    Codec(#[source] ShardError),
    /// The segment size is 0 or above [`MAX_SEGMENT_SIZE`].
    #[error("segment size {size} is out of range (1 to 1 GiB)")]
    SegmentSize {
        /// The recorded size.
        size: u64,
    },
    /// The hash table does not have one hash per shard of every segment.
    #[error("expected {expected} bytes of shard hashes for the recorded length, found {found}")]
    HashTable {
        /// Bytes the header implies.
        expected: u128,
        /// Bytes present.
        found: usize,
    },
    /// The annex is empty (a manifest without one is version 1), longer than
    /// [`MAX_ANNEX_LEN`], or not the length its prefix says.
    #[error(
        "a manifest annex must be 1 to {MAX_ANNEX_LEN} bytes and as long as its prefix says; got {len}"
    )]
    Annex {
        /// Its length, or the bytes left for it.
        len: u64,
    },
    /// A segment list does not match the recorded length or codec.
    #[error("expected {expected} segment(s) of {n} shard hashes each")]
    Segments {
        /// Segments the length implies.
        expected: u64,
        /// Shards per segment.
        n: usize,
    },
}

/// How one object was erasure-coded: the codec and its exact parameters, the segment size, the
/// object's length, and the SHA-256 of every shard of every segment.
///
/// Encoded canonically (see `docs/format.md`, "Shard manifest"): equal manifests have equal
/// bytes, and [`decode`](Self::decode) accepts only what [`encode`](Self::encode) writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardManifest {
    codec: CodecSpec,
    segment_size: u64,
    total_len: u64,
    /// `segments[j][i]` is the hash of shard `i` of segment `j`.
    segments: Vec<Vec<BlobHash>>,
    /// The application's bytes about the object (version 2), never empty.
    annex: Option<Vec<u8>>,
}

impl ShardManifest {
    /// A manifest, checked for consistency: the codec's parameters are valid, the segment size
    /// is in range, and there is one list of `n` hashes per segment the length implies.
    ///
    /// # Errors
    /// [`ManifestError`] naming the inconsistency.
    pub fn new(
        codec: CodecSpec,
        segment_size: u64,
        total_len: u64,
        segments: Vec<Vec<BlobHash>>,
    ) -> Result<Self, ManifestError> {
        codec_for(&codec).map_err(ManifestError::Codec)?;
        if segment_size == 0 || segment_size > MAX_SEGMENT_SIZE {
            return Err(ManifestError::SegmentSize { size: segment_size });
        }
        let expected = total_len.div_ceil(segment_size);
        if segments.len() as u64 != expected || segments.iter().any(|s| s.len() != codec.n) {
            return Err(ManifestError::Segments {
                expected,
                n: codec.n,
            });
        }
        Ok(Self {
            codec,
            segment_size,
            total_len,
            segments,
            annex: None,
        })
    }

    /// The manifest with `annex`, the application's bytes about the object (agigit puts its
    /// index of a pack's objects there), encoded as version 2; an empty annex removes it.
    ///
    /// # Errors
    /// [`ManifestError::Annex`] for an annex longer than [`MAX_ANNEX_LEN`].
    pub fn with_annex(mut self, annex: Vec<u8>) -> Result<Self, ManifestError> {
        if annex.len() > MAX_ANNEX_LEN {
            return Err(ManifestError::Annex {
                len: annex.len() as u64,
            });
        }
        self.annex = (!annex.is_empty()).then_some(annex);
        Ok(self)
    }

    /// The annex, when the manifest has one (version 2).
    pub fn annex(&self) -> Option<&[u8]> {
        self.annex.as_deref()
    }

    /// The codec and its parameters.
    pub fn codec(&self) -> CodecSpec {
        self.codec
    }

    /// Bytes per segment (the last may be shorter).
    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// The object's length in bytes.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Length of segment `index` in bytes (0 past the end).
    pub fn segment_len(&self, index: usize) -> u64 {
        let start = (index as u64).saturating_mul(self.segment_size);
        self.total_len.saturating_sub(start).min(self.segment_size)
    }

    /// The shard hashes of segment `index`, in shard order.
    pub fn shard_hashes(&self, index: usize) -> Option<&[BlobHash]> {
        self.segments.get(index).map(Vec::as_slice)
    }

    /// Every distinct shard hash, for uploading or listing.
    pub fn all_shard_hashes(&self) -> impl Iterator<Item = (usize, usize, &BlobHash)> {
        self.segments
            .iter()
            .enumerate()
            .flat_map(|(j, s)| s.iter().enumerate().map(move |(i, h)| (j, i, h)))
    }

    /// Rebuilds segment `index` from whatever shards are at hand, one slot per shard index.
    ///
    /// Every present shard is checked against its recorded hash (and length) first; bad ones are
    /// skipped as if absent.
    ///
    /// # Errors
    /// [`ShardError::NotEnoughShards`] naming the segment, how many good shards it had and how
    /// many it needs; [`ShardError::SlotCount`] for a slot list of the wrong length;
    /// [`ShardError::IndexOutOfRange`] for a segment index past the end.
    pub fn rebuild_segment(
        &self,
        code: &dyn ErasureCode,
        index: usize,
        shards: &[Option<&[u8]>],
    ) -> Result<Vec<u8>, ShardError> {
        let hashes = self
            .shard_hashes(index)
            .ok_or(ShardError::IndexOutOfRange {
                index,
                n: self.segment_count(),
            })?;
        if shards.len() != hashes.len() {
            return Err(ShardError::SlotCount {
                expected: hashes.len(),
                found: shards.len(),
            });
        }
        let segment_len = self.segment_len_usize(index);
        let shard_len = code.shard_len(segment_len);
        let good: Vec<Option<&[u8]>> = shards
            .iter()
            .zip(hashes)
            .map(|(shard, hash)| {
                shard.filter(|s| s.len() == shard_len && BlobHash::digest(s) == *hash)
            })
            .collect();
        self.rebuild_checked(code, index, &good)
    }

    /// Rebuilds segment `index` from shards already checked against their hashes.
    pub(crate) fn rebuild_checked(
        &self,
        code: &dyn ErasureCode,
        index: usize,
        good: &[Option<&[u8]>],
    ) -> Result<Vec<u8>, ShardError> {
        let count = good.iter().flatten().count();
        if count < self.codec.k {
            return Err(ShardError::NotEnoughShards {
                segment: index,
                good: count,
                needed: self.codec.k,
            });
        }
        code.rebuild(good, self.segment_len_usize(index))
            .map_err(|e| match e {
                ShardError::NotEnoughShards { good, needed, .. } => ShardError::NotEnoughShards {
                    segment: index,
                    good,
                    needed,
                },
                other => other,
            })
    }

    /// The segment length as a `usize` (segment sizes are at most 1 GiB, so it always fits).
    pub(crate) fn segment_len_usize(&self, index: usize) -> usize {
        usize::try_from(self.segment_len(index)).unwrap_or(usize::MAX)
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let annex = self.annex.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(
            HEADER_LEN + self.segments.len() * self.codec.n * 32 + 4 + annex.len(),
        );
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.push(if self.annex.is_some() {
            MANIFEST_VERSION_ANNEX
        } else {
            MANIFEST_VERSION
        });
        out.push(self.codec.kind.tag());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&u32_le(self.codec.k));
        out.extend_from_slice(&u32_le(self.codec.n));
        out.extend_from_slice(&self.segment_size.to_le_bytes());
        out.extend_from_slice(&self.total_len.to_le_bytes());
        for hash in self.segments.iter().flatten() {
            out.extend_from_slice(hash.as_bytes());
        }
        if self.annex.is_some() {
            out.extend_from_slice(&u32_le(annex.len()));
            out.extend_from_slice(annex);
        }
        out
    }

    /// Reads canonical bytes, checking everything [`new`](Self::new) checks.
    ///
    /// # Errors
    /// [`ManifestError`] naming the first problem.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let header: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(ManifestError::TooShort { len: bytes.len() })?;
        if header[..4] != MANIFEST_MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let has_annex = match header[4] {
            MANIFEST_VERSION => false,
            MANIFEST_VERSION_ANNEX => true,
            version => return Err(ManifestError::UnsupportedVersion { version }),
        };
        let kind =
            CodecKind::from_tag(header[5]).ok_or(ManifestError::UnknownCodec { tag: header[5] })?;
        if header[6..8] != [0, 0] {
            return Err(ManifestError::Reserved);
        }
        let word = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let dword = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let codec = CodecSpec {
            kind,
            k: word(8) as usize,
            n: word(12) as usize,
        };
        codec_for(&codec).map_err(ManifestError::Codec)?;
        let segment_size = dword(16);
        let total_len = dword(24);
        if segment_size == 0 || segment_size > MAX_SEGMENT_SIZE {
            return Err(ManifestError::SegmentSize { size: segment_size });
        }
        let count = total_len.div_ceil(segment_size);
        let rest = &bytes[HEADER_LEN..];
        let expected = u128::from(count) * codec.n as u128 * 32;
        let (table, annex) = if has_annex {
            // The table's length comes from the header; the annex's prefix must then account
            // for every byte left.
            let table_len = usize::try_from(expected)
                .ok()
                .filter(|&t| t <= rest.len())
                .ok_or(ManifestError::HashTable {
                    expected,
                    found: rest.len(),
                })?;
            let (table, tail) = rest.split_at(table_len);
            let annex = match tail.split_first_chunk::<4>() {
                Some((len, annex))
                    if u32::from_le_bytes(*len) as usize == annex.len()
                        && !annex.is_empty()
                        && annex.len() <= MAX_ANNEX_LEN =>
                {
                    annex.to_vec()
                }
                _ => {
                    return Err(ManifestError::Annex {
                        len: tail.len() as u64,
                    });
                }
            };
            (table, Some(annex))
        } else {
            (rest, None)
        };
        if expected != table.len() as u128 {
            return Err(ManifestError::HashTable {
                expected,
                found: table.len(),
            });
        }
        let segments = table
            .chunks_exact(codec.n * 32)
            .map(|seg| {
                seg.chunks_exact(32)
                    .map(|h| BlobHash::from_slice(h).unwrap_or_default())
                    .collect()
            })
            .collect();
        let manifest = Self::new(codec, segment_size, total_len, segments)?;
        Ok(Self { annex, ..manifest })
    }
}

/// `k` and `n` are at most 32768 (checked by every codec), so they fit in a `u32`.
fn u32_le(value: usize) -> [u8; 4] {
    u32::try_from(value).unwrap_or(u32::MAX).to_le_bytes()
}
