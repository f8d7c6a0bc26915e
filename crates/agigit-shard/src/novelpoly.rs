//! [`NovelPoly`]: the `reed-solomon-novelpoly` codec.

use reed_solomon_novelpoly::{CodeParams, ReedSolomon, WrappedShard};

use crate::code::{CodecKind, CodecSpec, ErasureCode, ShardError, check_params, check_slots};

/// Reed–Solomon over GF(2^16) with the additive-FFT "novel polynomial basis" of Lin, Chung and
/// Han, from the `reed-solomon-novelpoly` crate.
///
/// Its limits, which callers see through [`spec`](ErasureCode::spec):
/// - `k` is rounded **down** to a power of two (ask for 10 of 30, get 8 of 30: any 8 shards
///   rebuild), so durability is never less than asked, but shards are larger than `len / k`;
/// - a segment is cut into 2-byte symbols spread round-robin over the `k` data shards, each
///   zero-padded to the same even length; the padding never reaches the rebuilt output;
/// - rebuilding from the `k` data shards (the systematic path, taken whenever they are all
///   present) is much faster than rebuilding through parity;
/// - it checks no integrity: callers hash shards.
#[derive(Debug, Clone)]
pub struct NovelPoly {
    code: ReedSolomon,
    k: usize,
    n: usize,
}

impl NovelPoly {
    /// A code making `n` shards per segment of which `k` rounded down to a power of two suffice.
    ///
    /// # Errors
    /// [`ShardError::InvalidParams`] unless `1 ≤ k < n ≤ 32768`.
    pub fn new(k: usize, n: usize) -> Result<Self, ShardError> {
        check_params(k, n)?;
        let params = CodeParams::derive_parameters(n, k).map_err(|e| ShardError::Codec {
            codec: CodecKind::NovelPoly,
            reason: e.to_string(),
        })?;
        Ok(Self {
            code: params.make_encoder(),
            k: params.k(),
            n,
        })
    }

    fn codec_error(e: impl core::fmt::Display) -> ShardError {
        ShardError::Codec {
            codec: CodecKind::NovelPoly,
            reason: e.to_string(),
        }
    }
}

impl ErasureCode for NovelPoly {
    fn spec(&self) -> CodecSpec {
        CodecSpec {
            kind: CodecKind::NovelPoly,
            k: self.k,
            n: self.n,
        }
    }

    fn shard_len(&self, segment_len: usize) -> usize {
        if segment_len == 0 {
            0
        } else {
            self.code.shard_len(segment_len)
        }
    }

    fn encode(&self, segment: &[u8]) -> Result<Vec<Vec<u8>>, ShardError> {
        if segment.is_empty() {
            return Ok(vec![Vec::new(); self.n]);
        }
        let shards = self
            .code
            .encode::<WrappedShard>(segment)
            .map_err(Self::codec_error)?;
        Ok(shards.into_iter().map(WrappedShard::into_inner).collect())
    }

    fn rebuild(&self, shards: &[Option<&[u8]>], segment_len: usize) -> Result<Vec<u8>, ShardError> {
        let present = check_slots(shards, self.n, self.shard_len(segment_len))?;
        if present < self.k {
            return Err(ShardError::NotEnoughShards {
                segment: 0,
                good: present,
                needed: self.k,
            });
        }
        if segment_len == 0 {
            return Ok(Vec::new());
        }
        let systematic: Option<Vec<WrappedShard>> = shards[..self.k]
            .iter()
            .map(|s| s.map(|s| WrappedShard::new(s.to_vec())))
            .collect();
        let mut out = match systematic {
            Some(data) => self.code.reconstruct_from_systematic(data),
            None => {
                // Give the decoder exactly k shards: more only costs time.
                let mut taken = 0;
                let received = shards
                    .iter()
                    .map(|s| {
                        let keep = s.is_some() && taken < self.k;
                        taken += usize::from(keep);
                        s.filter(|_| keep).map(|s| WrappedShard::new(s.to_vec()))
                    })
                    .collect();
                self.code.reconstruct(received)
            }
        }
        .map_err(Self::codec_error)?;
        if out.len() < segment_len {
            return Err(Self::codec_error(
                "the rebuilt segment is shorter than recorded",
            ));
        }
        out.truncate(segment_len);
        Ok(out)
    }
}
