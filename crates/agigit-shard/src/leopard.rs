//! [`Leopard`]: the `reed-solomon-simd` codec.

use std::cell::RefCell;

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::code::{CodecKind, CodecSpec, ErasureCode, ShardError, check_params, check_slots};

/// Bytes of each shard encoded per call of the underlying library: its SIMD kernels are fastest
/// when a call's working set (`N` × stripe) stays in cache. Part of the shard layout: changing
/// it changes the parity bytes, so it is fixed for the `leopard-gf16` name.
pub const LEOPARD_STRIPE: usize = 32 * 1024;

/// The working space a rebuild through parity may use per stripe (about `N` rounded up to a
/// power of two, times the stripe). Each decode call pays a fixed cost (the erasure locator over
/// the whole field) whatever its width, so rebuilds take stripes as wide as this allows: at
/// 4 of 10 with 1 MiB segments, one 256 KiB stripe per segment rebuilds 3.4× faster than eight
/// of 32 KiB (`cargo bench -p agigit-benches --bench erasure`).
const DECODE_WORK: usize = 8 << 20;

/// Reed–Solomon over GF(2^16) in the Leopard-RS style (Lin–Han–Chung FFT with fast
/// Walsh–Hadamard error locators), from the `reed-solomon-simd` crate, using AVX2/SSSE3/NEON when
/// the CPU has them.
///
/// Any `1 ≤ k < n ≤ 32768` the library supports. Layout: the segment, zero-padded to `k ×
/// shard_len`, is cut into `k` contiguous data shards (so a data shard is a plain slice of the
/// segment); parity is computed in stripes of [`LEOPARD_STRIPE`] bytes per shard. Rebuilding from
/// the data shards is a copy.
#[derive(Debug, Clone)]
pub struct Leopard {
    k: usize,
    n: usize,
}

impl Leopard {
    /// A code making `n` shards per segment of which any `k` suffice.
    ///
    /// # Errors
    /// [`ShardError::InvalidParams`] unless `1 ≤ k < n ≤ 32768` and the library supports the
    /// combination.
    pub fn new(k: usize, n: usize) -> Result<Self, ShardError> {
        check_params(k, n)?;
        if !ReedSolomonEncoder::supports(k, n - k) {
            return Err(ShardError::InvalidParams {
                k,
                n,
                reason: "reed-solomon-simd does not support this k and n",
            });
        }
        Ok(Self { k, n })
    }

    fn codec_error(e: impl core::fmt::Display) -> ShardError {
        ShardError::Codec {
            codec: CodecKind::Leopard,
            reason: e.to_string(),
        }
    }

    /// The stripes of a shard: `(offset, width)`, widths even and at most [`LEOPARD_STRIPE`].
    fn stripes(shard_len: usize) -> impl Iterator<Item = (usize, usize)> {
        Self::stripes_of(shard_len, LEOPARD_STRIPE)
    }

    fn stripes_of(shard_len: usize, stripe: usize) -> impl Iterator<Item = (usize, usize)> {
        (0..shard_len)
            .step_by(stripe)
            .map(move |offset| (offset, stripe.min(shard_len - offset)))
    }
}

impl ErasureCode for Leopard {
    fn spec(&self) -> CodecSpec {
        CodecSpec {
            kind: CodecKind::Leopard,
            k: self.k,
            n: self.n,
        }
    }

    fn shard_len(&self, segment_len: usize) -> usize {
        // The library works on 2-byte symbols: round up to an even length.
        segment_len.div_ceil(self.k).next_multiple_of(2)
    }

    fn encode(&self, segment: &[u8]) -> Result<Vec<Vec<u8>>, ShardError> {
        let mut shards = Vec::new();
        self.encode_into(segment, &mut shards)?;
        Ok(shards)
    }

    fn encode_into(&self, segment: &[u8], shards: &mut Vec<Vec<u8>>) -> Result<(), ShardError> {
        let shard_len = self.shard_len(segment.len());
        shards.resize_with(self.n, Vec::new);
        for (i, shard) in shards[..self.k].iter_mut().enumerate() {
            let start = (i * shard_len).min(segment.len());
            let end = ((i + 1) * shard_len).min(segment.len());
            shard.clear();
            shard.extend_from_slice(&segment[start..end]);
            shard.resize(shard_len, 0);
        }
        for shard in &mut shards[self.k..] {
            // Every byte is overwritten stripe by stripe below.
            shard.resize(shard_len, 0);
        }
        if shard_len == 0 {
            return Ok(());
        }
        let recovery = self.n - self.k;
        with_cached(&ENCODER, |cached: &mut Option<ReedSolomonEncoder>| {
            for (offset, width) in Self::stripes(shard_len) {
                let encoder = reuse_or_make(
                    cached,
                    |e: &mut ReedSolomonEncoder| e.reset(self.k, recovery, width),
                    || ReedSolomonEncoder::new(self.k, recovery, width),
                )?;
                for shard in &shards[..self.k] {
                    encoder
                        .add_original_shard(&shard[offset..offset + width])
                        .map_err(Self::codec_error)?;
                }
                let result = encoder.encode().map_err(Self::codec_error)?;
                for (shard, parity) in shards[self.k..].iter_mut().zip(result.recovery_iter()) {
                    shard[offset..offset + width].copy_from_slice(parity);
                }
            }
            Ok(())
        })
    }

    fn rebuild(&self, shards: &[Option<&[u8]>], segment_len: usize) -> Result<Vec<u8>, ShardError> {
        let mut out = Vec::new();
        self.rebuild_into(shards, segment_len, &mut out)?;
        Ok(out)
    }

    fn rebuild_into(
        &self,
        shards: &[Option<&[u8]>],
        segment_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ShardError> {
        let shard_len = self.shard_len(segment_len);
        let present = check_slots(shards, self.n, shard_len)?;
        if present < self.k {
            return Err(ShardError::NotEnoughShards {
                segment: 0,
                good: present,
                needed: self.k,
            });
        }
        out.clear();
        out.resize(self.k * shard_len, 0);
        let missing: Vec<usize> = (0..self.k).filter(|&i| shards[i].is_none()).collect();
        for (i, shard) in shards[..self.k].iter().enumerate() {
            if let Some(shard) = shard {
                out[i * shard_len..(i + 1) * shard_len].copy_from_slice(shard);
            }
        }
        if !missing.is_empty() && shard_len > 0 {
            // Exactly as many parity shards as data shards are missing.
            let parity: Vec<(usize, &[u8])> = shards[self.k..]
                .iter()
                .enumerate()
                .filter_map(|(j, s)| s.map(|s| (j, s)))
                .take(missing.len())
                .collect();
            let recovery = self.n - self.k;
            with_cached(&DECODER, |cached: &mut Option<ReedSolomonDecoder>| {
                let stripe = (DECODE_WORK / self.n.next_power_of_two()).max(LEOPARD_STRIPE) & !1;
                for (offset, width) in Self::stripes_of(shard_len, stripe) {
                    let decoder = reuse_or_make(
                        cached,
                        |d: &mut ReedSolomonDecoder| d.reset(self.k, recovery, width),
                        || ReedSolomonDecoder::new(self.k, recovery, width),
                    )?;
                    for (i, shard) in shards[..self.k].iter().enumerate() {
                        if let Some(shard) = shard {
                            decoder
                                .add_original_shard(i, &shard[offset..offset + width])
                                .map_err(Self::codec_error)?;
                        }
                    }
                    for (j, shard) in &parity {
                        decoder
                            .add_recovery_shard(*j, &shard[offset..offset + width])
                            .map_err(Self::codec_error)?;
                    }
                    let result = decoder.decode().map_err(Self::codec_error)?;
                    for &i in &missing {
                        let restored = result.restored_original(i).ok_or_else(|| {
                            Self::codec_error("a missing data shard was not restored")
                        })?;
                        let start = i * shard_len + offset;
                        out[start..start + width].copy_from_slice(restored);
                    }
                }
                Ok(())
            })?;
        }
        out.truncate(segment_len);
        Ok(())
    }
}

thread_local! {
    // One encoder and one decoder per thread, reset for each stripe: their working space (N ×
    // stripe bytes) is allocated once instead of on every call.
    static ENCODER: RefCell<Option<ReedSolomonEncoder>> = const { RefCell::new(None) };
    static DECODER: RefCell<Option<ReedSolomonDecoder>> = const { RefCell::new(None) };
}

/// The cached coder reset for the next stripe, or a new one when there is none yet.
fn reuse_or_make<C>(
    cached: &mut Option<C>,
    reset: impl FnOnce(&mut C) -> Result<(), reed_solomon_simd::Error>,
    make: impl FnOnce() -> Result<C, reed_solomon_simd::Error>,
) -> Result<&mut C, ShardError> {
    match cached {
        Some(coder) => {
            reset(coder).map_err(Leopard::codec_error)?;
            Ok(coder)
        }
        None => Ok(cached.insert(make().map_err(Leopard::codec_error)?)),
    }
}

/// Runs `f` with this thread's cached coder; a re-entrant call gets a fresh one instead.
fn with_cached<C: 'static, T>(
    key: &'static std::thread::LocalKey<RefCell<Option<C>>>,
    f: impl FnOnce(&mut Option<C>) -> Result<T, ShardError>,
) -> Result<T, ShardError> {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut cached) => f(&mut cached),
        Err(_) => f(&mut None),
    })
}
