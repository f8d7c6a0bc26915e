//! The [`ErasureCode`] trait, codec descriptions and the errors of encoding and rebuilding.

use core::fmt;

/// Largest number of shards per segment any codec here supports (GF(2^16) limits).
pub const MAX_SHARDS: usize = 32_768;

/// Which algorithm a codec runs. The name is recorded in every manifest and never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CodecKind {
    /// `reed-solomon-novelpoly`: GF(2^16) additive FFT, `k` rounded down to a power of two,
    /// symbols interleaved across shards.
    NovelPoly,
    /// `reed-solomon-simd` (Leopard-style GF(2^16)): any `k` and `N`, contiguous data shards,
    /// encoded in stripes of [`LEOPARD_STRIPE`](crate::LEOPARD_STRIPE) bytes per shard.
    Leopard,
}

impl CodecKind {
    /// The stable name written in manifests.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NovelPoly => "novelpoly-gf16",
            Self::Leopard => "leopard-gf16",
        }
    }

    /// The kind with this stable name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "novelpoly-gf16" => Some(Self::NovelPoly),
            "leopard-gf16" => Some(Self::Leopard),
            _ => None,
        }
    }

    /// The byte that stands for this kind in a manifest.
    pub(crate) const fn tag(self) -> u8 {
        match self {
            Self::NovelPoly => 1,
            Self::Leopard => 2,
        }
    }

    pub(crate) const fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(Self::NovelPoly),
            2 => Some(Self::Leopard),
            _ => None,
        }
    }
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Exactly which code shards were made with: enough to rebuild them anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CodecSpec {
    /// The algorithm.
    pub kind: CodecKind,
    /// Shards needed to rebuild a segment (the effective `k`, after any rounding).
    pub k: usize,
    /// Shards made per segment.
    pub n: usize,
}

impl fmt::Display for CodecSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} k={} n={}", self.kind, self.k, self.n)
    }
}

/// Why an erasure code could not be built, or a segment encoded or rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// `k` and `N` do not make a code.
    #[error("invalid code parameters k={k}, n={n}: {reason}")]
    InvalidParams {
        /// Requested shards needed.
        k: usize,
        /// Requested shards made.
        n: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A rebuild was given a slot list of another length than `N`.
    #[error("expected {expected} shard slots (one per shard index), got {found}")]
    SlotCount {
        /// `N`.
        expected: usize,
        /// Slots given.
        found: usize,
    },
    /// A shard has the wrong length for the segment.
    #[error("shard {index} is {found} bytes long; shards of this segment are {expected} bytes")]
    ShardLength {
        /// The shard's index.
        index: usize,
        /// The length it must have.
        expected: usize,
        /// Its length.
        found: usize,
    },
    /// The same shard index was given twice.
    #[error("shard index {index} was given more than once")]
    DuplicateIndex {
        /// The index.
        index: usize,
    },
    /// A shard index is not below `N`.
    #[error("shard index {index} is out of range: this code has {n} shards per segment")]
    IndexOutOfRange {
        /// The index.
        index: usize,
        /// `N`.
        n: usize,
    },
    /// Fewer than `k` usable shards for a segment.
    #[error(
        "segment {segment} cannot be rebuilt: {good} good shard(s), {needed} needed — \
         reach more servers or wait for them to come back"
    )]
    NotEnoughShards {
        /// The segment's index in the object.
        segment: usize,
        /// Shards present whose hash matched.
        good: usize,
        /// `k`.
        needed: usize,
    },
    /// The underlying library refused (which the checks above should prevent).
    #[error("the {codec} codec failed: {reason}")]
    Codec {
        /// Which codec.
        codec: CodecKind,
        /// What the library said.
        reason: String,
    },
}

/// An erasure code: one segment in, `N` shards out; any `k` of them back to the segment.
///
/// Object-safe, so a caller can choose a codec at run time (`Box<dyn ErasureCode>`). Every
/// implementation passes the crate's conformance suite ([`conformance`](crate::conformance)).
/// Implementations check no integrity: callers hash shards (the manifest does).
pub trait ErasureCode: Send + Sync {
    /// The algorithm and its effective parameters.
    fn spec(&self) -> CodecSpec;

    /// The length of every shard of a segment of `segment_len` bytes (0 for an empty segment).
    fn shard_len(&self, segment_len: usize) -> usize;

    /// Encodes a segment into `N` shards of [`shard_len`](Self::shard_len) bytes; shard `i` is
    /// `shards[i]`. Deterministic: the same segment always gives the same shards.
    ///
    /// # Errors
    /// [`ShardError::Codec`] only if the underlying library fails.
    fn encode(&self, segment: &[u8]) -> Result<Vec<Vec<u8>>, ShardError>;

    /// Rebuilds a segment of `segment_len` bytes from `shards`, which has one slot per shard
    /// index, `None` where the shard is missing. At least `k` must be present.
    ///
    /// # Errors
    /// [`ShardError::SlotCount`], [`ShardError::ShardLength`], or
    /// [`ShardError::NotEnoughShards`] (with segment 0; stream APIs fill in the real index).
    fn rebuild(&self, shards: &[Option<&[u8]>], segment_len: usize) -> Result<Vec<u8>, ShardError>;

    /// As [`encode`](Self::encode), into `shards`, reusing its buffers (it ends with `N` shards).
    /// Codecs that can work in place override this; hot loops call it to avoid allocating.
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    fn encode_into(&self, segment: &[u8], shards: &mut Vec<Vec<u8>>) -> Result<(), ShardError> {
        *shards = self.encode(segment)?;
        Ok(())
    }

    /// As [`rebuild`](Self::rebuild), into `out`, reusing its buffer.
    ///
    /// # Errors
    /// As [`rebuild`](Self::rebuild).
    fn rebuild_into(
        &self,
        shards: &[Option<&[u8]>],
        segment_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ShardError> {
        *out = self.rebuild(shards, segment_len)?;
        Ok(())
    }
}

/// Forwards every method to the codec behind a pointer type.
macro_rules! forward_erasure_code {
    ($($pointer:ty),+) => {$(
        impl<C: ErasureCode + ?Sized> ErasureCode for $pointer {
            fn spec(&self) -> CodecSpec {
                (**self).spec()
            }
            fn shard_len(&self, segment_len: usize) -> usize {
                (**self).shard_len(segment_len)
            }
            fn encode(&self, segment: &[u8]) -> Result<Vec<Vec<u8>>, ShardError> {
                (**self).encode(segment)
            }
            fn rebuild(
                &self,
                shards: &[Option<&[u8]>],
                segment_len: usize,
            ) -> Result<Vec<u8>, ShardError> {
                (**self).rebuild(shards, segment_len)
            }
            fn encode_into(
                &self,
                segment: &[u8],
                shards: &mut Vec<Vec<u8>>,
            ) -> Result<(), ShardError> {
                (**self).encode_into(segment, shards)
            }
            fn rebuild_into(
                &self,
                shards: &[Option<&[u8]>],
                segment_len: usize,
                out: &mut Vec<u8>,
            ) -> Result<(), ShardError> {
                (**self).rebuild_into(shards, segment_len, out)
            }
        }
    )+};
}

forward_erasure_code!(&C, Box<C>, std::sync::Arc<C>);

/// Builds the codec a spec names, with exactly the spec's parameters.
///
/// # Errors
/// [`ShardError::InvalidParams`] when the spec's `k` and `n` are not ones the codec produces
/// (for NovelPoly, `k` must be a power of two).
pub fn codec_for(spec: &CodecSpec) -> Result<Box<dyn ErasureCode>, ShardError> {
    match spec.kind {
        CodecKind::NovelPoly => {
            let codec = crate::NovelPoly::new(spec.k, spec.n)?;
            if codec.spec() != *spec {
                return Err(ShardError::InvalidParams {
                    k: spec.k,
                    n: spec.n,
                    reason: "novelpoly-gf16 needs k to be a power of two",
                });
            }
            Ok(Box::new(codec))
        }
        CodecKind::Leopard => Ok(Box::new(crate::Leopard::new(spec.k, spec.n)?)),
    }
}

/// Turns `(index, shard)` pairs into the slot list [`ErasureCode::rebuild`] takes.
///
/// # Errors
/// [`ShardError::IndexOutOfRange`] for an index ≥ `n`, [`ShardError::DuplicateIndex`] for an
/// index given twice.
pub fn slots<'a>(
    n: usize,
    shards: impl IntoIterator<Item = (usize, &'a [u8])>,
) -> Result<Vec<Option<&'a [u8]>>, ShardError> {
    let mut slots = vec![None; n];
    for (index, shard) in shards {
        let slot = slots
            .get_mut(index)
            .ok_or(ShardError::IndexOutOfRange { index, n })?;
        if slot.replace(shard).is_some() {
            return Err(ShardError::DuplicateIndex { index });
        }
    }
    Ok(slots)
}

/// Checks `1 ≤ k < n ≤ MAX_SHARDS`.
pub(crate) fn check_params(k: usize, n: usize) -> Result<(), ShardError> {
    let fail = |reason| Err(ShardError::InvalidParams { k, n, reason });
    if k == 0 {
        return fail("k must be at least 1");
    }
    if k >= n {
        return fail("k must be smaller than n (some shards must be redundant)");
    }
    if n > MAX_SHARDS {
        return fail("n must be at most 32768");
    }
    Ok(())
}

/// Checks the slot count and every present shard's length; returns how many are present.
pub(crate) fn check_slots(
    shards: &[Option<&[u8]>],
    n: usize,
    shard_len: usize,
) -> Result<usize, ShardError> {
    if shards.len() != n {
        return Err(ShardError::SlotCount {
            expected: n,
            found: shards.len(),
        });
    }
    let mut present = 0;
    for (index, shard) in shards.iter().enumerate() {
        if let Some(shard) = shard {
            if shard.len() != shard_len {
                return Err(ShardError::ShardLength {
                    index,
                    expected: shard_len,
                    found: shard.len(),
                });
            }
            present += 1;
        }
    }
    Ok(present)
}
