//! [`Leopard`]: the `reed-solomon-simd` codec.

use std::cell::RefCell;
use std::sync::OnceLock;

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::code::{CodecKind, CodecSpec, ErasureCode, ShardError, check_params, check_slots};

mod matrix;

/// Bytes of each shard encoded per call of the underlying library: its SIMD kernels are fastest
/// when a call's working set (`N` × stripe) stays in cache. Part of the shard layout: changing
/// it changes the parity bytes, so it is fixed for the `leopard-gf16` name.
pub const LEOPARD_STRIPE: usize = 32 * 1024;

/// The working space a rebuild through the library's FFT may use per stripe (about `N` rounded
/// up to a power of two, times the stripe), for codes too wide for the matrix rebuild. Each
/// decode call pays a fixed cost (the erasure locator over the whole field) whatever its width,
/// so rebuilds take stripes as wide as this allows.
const DECODE_WORK: usize = 8 << 20;

/// Reed–Solomon over GF(2^16) in the Leopard-RS style (Lin–Han–Chung FFT with fast
/// Walsh–Hadamard error locators), from the `reed-solomon-simd` crate, using AVX2/SSSE3/NEON when
/// the CPU has them.
///
/// Any `1 ≤ k < n ≤ 32768` the library supports. Layout: the segment, zero-padded to `k ×
/// shard_len`, is cut into `k` contiguous data shards (so a data shard is a plain slice of the
/// segment); parity is computed in stripes of [`LEOPARD_STRIPE`] bytes per shard. Rebuilding from
/// the data shards is a copy; through parity, for `k` up to 64, each missing data shard is
/// computed directly as a combination of the shards at hand (the code's matrix, applied with the
/// library's SIMD multiply: bit-for-bit the library's own rebuild, 4.7–14× faster at 4 of 10), and
/// through the library's FFT decoder when that is the less work (see `matrix::MAX_WORK`).
#[derive(Debug, Clone)]
pub struct Leopard {
    k: usize,
    n: usize,
    /// The code's generator, read off the library's encoder on first use (`None` when it could
    /// not be read: the FFT decoder is used).
    generator: OnceLock<Option<matrix::Generator>>,
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
        Ok(Self {
            k,
            n,
            generator: OnceLock::new(),
        })
    }

    /// The code's generator, made on first use; only asked for where [`by_matrix`](Self::by_matrix)
    /// allows, so its size is bounded by `MAX_K` and `MAX_N`.
    fn generator(&self) -> Option<&matrix::Generator> {
        self.generator
            .get_or_init(|| matrix::Generator::of(self.k, self.n).ok())
            .as_ref()
    }

    /// Whether `missing` data shards are rebuilt through the code's matrix (else the FFT).
    fn by_matrix(&self, missing: usize) -> bool {
        self.k <= matrix::MAX_K && self.n <= matrix::MAX_N && missing * self.k <= matrix::MAX_WORK
    }

    /// Rebuilds the data shards `missing` into `out` through the code's matrix; `false` (nothing
    /// written) when this code is rebuilt through the FFT decoder instead.
    fn rebuild_by_matrix(
        &self,
        shards: &[Option<&[u8]>],
        missing: &[usize],
        shard_len: usize,
        out: &mut [u8],
    ) -> bool {
        if !self.by_matrix(missing.len()) {
            return false;
        }
        let Some(generator) = self.generator() else {
            return false;
        };
        let parity: Vec<usize> = (0..self.n - self.k)
            .filter(|&j| shards[self.k + j].is_some())
            .take(missing.len())
            .collect();
        if parity.len() != missing.len() {
            // Too few shards: the FFT path says so.
            return false;
        }
        let known: Vec<usize> = (0..self.k).filter(|&i| shards[i].is_some()).collect();
        let Some(coefficients) = generator.recovery(missing, &parity, &known) else {
            return false;
        };
        let at_hand: Vec<&[u8]> = parity
            .iter()
            .map(|&j| shards[self.k + j])
            .chain(known.iter().map(|&i| shards[i]))
            .map(Option::unwrap_or_default)
            .collect();
        for (&m, row) in missing.iter().zip(&coefficients) {
            let terms: Vec<(&[u8], u16)> =
                at_hand.iter().copied().zip(row.iter().copied()).collect();
            matrix::combine(&mut out[m * shard_len..(m + 1) * shard_len], &terms);
        }
        true
    }

    /// Rebuilds the data shards `missing` into `out` through the library's FFT decoder, in
    /// stripes as wide as [`DECODE_WORK`] allows.
    fn rebuild_by_fft(
        &self,
        shards: &[Option<&[u8]>],
        missing: &[usize],
        shard_len: usize,
        out: &mut [u8],
    ) -> Result<(), ShardError> {
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
                for &i in missing {
                    let restored = result.restored_original(i).ok_or_else(|| {
                        Self::codec_error("a missing data shard was not restored")
                    })?;
                    let start = i * shard_len + offset;
                    out[start..start + width].copy_from_slice(restored);
                }
            }
            Ok(())
        })
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
        if !missing.is_empty()
            && shard_len > 0
            && !self.rebuild_by_matrix(shards, &missing, shard_len, out)
        {
            self.rebuild_by_fft(shards, &missing, shard_len, out)?;
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A segment of `k` data shards of `shard_len` bytes and which of its `n` shards are lost.
    fn case() -> impl Strategy<Value = (usize, usize, usize, Vec<u8>, Vec<usize>)> {
        (1usize..=matrix::MAX_K + 4, 1usize..=12, 0usize..=600).prop_flat_map(
            |(k, extra, symbols)| {
                let n = k + extra;
                // Lengths around the 64-byte chunks and the 4 KiB blocks, tails included.
                let shard_len = 2 * symbols + if symbols % 3 == 0 { 4096 } else { 0 };
                (
                    Just(k),
                    Just(n),
                    Just(shard_len),
                    proptest::collection::vec(any::<u8>(), k * shard_len),
                    // Up to N − k shards lost, data shards likely among them.
                    proptest::sample::subsequence((0..n).collect::<Vec<_>>(), 0..=extra),
                )
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The matrix rebuild is the library's FFT rebuild, byte for byte, for every code, length
        /// and erasure pattern (past `MAX_K` the matrix declines and the FFT rebuilds).
        #[test]
        fn the_matrix_rebuild_is_the_librarys((k, n, shard_len, segment, lost) in case()) {
            let code = Leopard::new(k, n).expect("code");
            let shards = code.encode(&segment).expect("encode");
            let slots: Vec<Option<&[u8]>> = shards
                .iter()
                .enumerate()
                .map(|(i, s)| (!lost.contains(&i)).then_some(s.as_slice()))
                .collect();
            let missing: Vec<usize> = (0..k).filter(|i| lost.contains(i)).collect();
            prop_assume!(!missing.is_empty() && shard_len > 0);
            let mut by_matrix = segment.clone();
            let mut by_fft = segment.clone();
            for &m in &missing {
                by_matrix[m * shard_len..(m + 1) * shard_len].fill(0x5A);
                by_fft[m * shard_len..(m + 1) * shard_len].fill(0xA5);
            }
            let used_matrix = code.rebuild_by_matrix(&slots, &missing, shard_len, &mut by_matrix);
            prop_assert_eq!(used_matrix, code.by_matrix(missing.len()));
            code.rebuild_by_fft(&slots, &missing, shard_len, &mut by_fft).expect("fft");
            prop_assert_eq!(&by_fft, &segment);
            if used_matrix {
                prop_assert_eq!(&by_matrix, &segment);
            }
            prop_assert_eq!(code.rebuild(&slots, segment.len()).expect("rebuild"), segment);
        }
    }
}
