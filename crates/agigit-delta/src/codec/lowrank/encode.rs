//! Writing a low-rank payload (feature `lowrank`): the randomized SVD of the delta, the rank
//! chosen by policy, the singular vectors stored or quantized by band.

use candle_core::Device;
use half::{bf16, f16};
use rayon::prelude::*;

use super::{FactorStorage, Factors, RankPolicy, dequantize, reconstruct};
use crate::TensorView;
use crate::codec::{CodecKind, DeltaCodec, EncodeError, Encoded, Fallback, lossy};
use crate::rsvd::{RsvdParams, Svd, randomized_svd};

/// Lossy, opt-in: the delta's truncated SVD by randomized SVD, the products as candle matmuls
/// on `device`.
///
/// Scalars, 1-D tensors, non-float tensors and deltas holding NaN or infinity are stored
/// losslessly instead, as is any tensor for which low rank would not save bytes; the
/// [`Report`](crate::Report) says which and why.
#[derive(Clone, Debug)]
pub struct LowRank {
    /// Where the large products run.
    pub device: Device,
    /// How to choose the rank.
    pub rank: RankPolicy,
    /// How to store the singular vectors.
    pub storage: FactorStorage,
    /// Extra sketch columns beyond the rank (HMT's `p`; 10 is their default).
    pub oversample: usize,
    /// Power iterations (HMT's `q`).
    pub power_iters: usize,
    /// Seed of the random test matrix; the same seed gives the same payload.
    pub seed: u64,
}

impl LowRank {
    /// A codec with `rank` on `device`: `f16` factors, oversampling 10, 2 power iterations,
    /// seed 0.
    pub fn new(device: Device, rank: RankPolicy) -> Self {
        LowRank {
            device,
            rank,
            storage: FactorStorage::F16,
            oversample: 10,
            power_iters: 2,
            seed: 0,
        }
    }

    fn svd(
        &self,
        values: &[f32],
        rows: usize,
        cols: usize,
        sketch: usize,
    ) -> Result<Svd, EncodeError> {
        randomized_svd(
            values,
            rows,
            cols,
            RsvdParams {
                sketch,
                power_iters: self.power_iters,
                seed: self.seed,
            },
            &self.device,
        )
        .map_err(EncodeError::from)
    }

    fn payload_bytes(&self, rank: usize, rows: usize, cols: usize) -> usize {
        (0..rank)
            .map(|t| 4 + self.storage.vector_bytes(t, rows) + self.storage.vector_bytes(t, cols))
            .sum()
    }
}

impl DeltaCodec for LowRank {
    fn kind(&self) -> CodecKind {
        CodecKind::LowRank
    }

    fn encode(
        &self,
        target: TensorView<'_>,
        base: Option<TensorView<'_>>,
    ) -> Result<Encoded, EncodeError> {
        crate::codec::check_inputs(&target, base.as_ref())?;
        self.storage.validate().map_err(EncodeError::Parameter)?;
        match self.rank {
            RankPolicy::Energy(e) if !(0.0..=1.0).contains(&e) => {
                return Err(EncodeError::Parameter(format!(
                    "energy share {e} (expected 0–1)"
                )));
            }
            RankPolicy::RelError(b) if b.is_nan() || b < 0.0 => {
                return Err(EncodeError::Parameter(format!("relative error bound {b}")));
            }
            _ => {}
        }
        let values = match lossy::delta(&target, base.as_ref()) {
            Ok(d) => d,
            Err(reason) => return lossy::fall_back(target, base, reason),
        };
        let Some((rows, cols)) = target.matrix_dims() else {
            return lossy::fall_back(target, base, Fallback::NotAMatrix);
        };
        // ‖Δ‖²_F in f64, what the energy and error policies are measured against.
        let norm2: f64 = values
            .par_iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum();
        // What rounding to the target's dtype put into Δ, which no rank captures and no reader
        // sees: an error bound is never asked to go below it.
        let floor2 = match self.rank {
            RankPolicy::RelError(_) if base.is_some() => lossy::rounding_floor2(&target, &values),
            _ => 0.0,
        };
        let full = rows.min(cols);
        let dense_bytes = target.data().len() as u64;
        let not_smaller = |rank: usize| Fallback::NotSmaller {
            lossy_bytes: self.payload_bytes(rank, rows, cols) as u64,
            dense_bytes,
        };
        let saves = |rank: usize| (self.payload_bytes(rank, rows, cols) as u64) < dense_bytes;

        let emit = |svd: &Svd, k: usize| -> Result<Encoded, EncodeError> {
            let (body, factors) = write_body(
                &self.storage,
                k,
                svd.singular_values(),
                |t| svd.u(t).to_vec(),
                |t| svd.v(t).to_vec(),
                rows,
                cols,
            );
            let delta_hat = reconstruct(rows, cols, &factors);
            let decoded = lossy::materialize(target.dtype(), base.as_ref(), &delta_hat)
                .ok_or_else(|| {
                    EncodeError::Parameter(format!("{} is not arithmetic", target.dtype()))
                })?;
            Ok(lossy::finish(
                CodecKind::LowRank,
                &target,
                base.as_ref(),
                &body,
                &decoded,
                Some(k),
            ))
        };

        let (svd, mut k) = match self.rank {
            RankPolicy::Fixed(r) => {
                let k = r.min(full);
                if !saves(k) {
                    return lossy::fall_back(target, base, not_smaller(k));
                }
                (self.svd(&values, rows, cols, k + self.oversample)?, k)
            }
            RankPolicy::Energy(_) | RankPolicy::RelError(_) => {
                let allowed = match self.rank {
                    RankPolicy::Energy(e) => (1.0 - e) * norm2,
                    RankPolicy::RelError(b) => b * b * norm2 + floor2,
                    RankPolicy::Fixed(_) => 0.0,
                };
                let mut sketch = (32 + self.oversample).min(full);
                loop {
                    let svd = self.svd(&values, rows, cols, sketch)?;
                    let mut captured = 0.0;
                    let mut k = None;
                    if norm2 <= allowed {
                        k = Some(0);
                    }
                    for (i, s) in svd.singular_values().iter().enumerate() {
                        if k.is_some() {
                            break;
                        }
                        captured += s * s;
                        if norm2 - captured <= allowed {
                            k = Some(i + 1);
                        }
                    }
                    let margin = self.oversample / 2;
                    match k {
                        Some(k) if k + margin <= sketch || sketch == full => break (svd, k),
                        None if sketch == full => break (svd, full),
                        _ => {}
                    }
                    if !saves(sketch) {
                        return lossy::fall_back(target, base, not_smaller(sketch));
                    }
                    sketch = (sketch * 2).min(full);
                }
            }
        };
        if !saves(k) {
            return lossy::fall_back(target, base, not_smaller(k));
        }
        let mut encoded = emit(&svd, k)?;
        if let RankPolicy::RelError(bound) = self.rank {
            // Quantization and rounding add error the singular values do not show: widen the
            // rank until the measured error meets the bound (or the rounding floor, relative to
            // ‖Δ‖, when that is higher), within the sketch.
            let bound = if norm2 > 0.0 {
                (bound * bound + floor2 / norm2).sqrt()
            } else {
                bound
            };
            while encoded.report.rel_error > bound && k < svd.len() {
                k = (k + k.div_ceil(4)).min(svd.len());
                if !saves(k) {
                    return lossy::fall_back(target, base, not_smaller(k));
                }
                encoded = emit(&svd, k)?;
            }
            if encoded.report.rel_error > bound {
                let best = encoded.report.rel_error;
                return lossy::fall_back(target, base, Fallback::BoundNotMet { bound, best });
            }
        }
        if encoded.report.payload_bytes >= dense_bytes {
            return lossy::fall_back(
                target,
                base,
                Fallback::NotSmaller {
                    lossy_bytes: encoded.report.payload_bytes,
                    dense_bytes,
                },
            );
        }
        lossy::unless_lossless_smaller(encoded, target, base)
    }
}

impl FactorStorage {
    fn code(&self) -> u8 {
        match self {
            FactorStorage::F32 => 0,
            FactorStorage::F16 => 1,
            FactorStorage::BF16 => 2,
            FactorStorage::Banded(_) => 3,
        }
    }
}

/// Quantizes `x` to `bits` with the scale (a fraction of max |x|) that minimizes the squared
/// error; returns the scale and the codes `q + qmax ∈ [0, 2·qmax]`.
fn quantize(x: &[f32], bits: u8) -> (f32, Vec<u8>) {
    let qmax = (1i32 << (bits - 1)) - 1;
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 {
        return (0.0, vec![u8::try_from(qmax).unwrap_or(0); x.len()]);
    }
    #[allow(clippy::cast_precision_loss, reason = "small integers")]
    let qmaxf = qmax as f32;
    let codes_for = |scale: f32| -> Vec<u8> {
        x.iter()
            .map(|v| {
                #[allow(clippy::cast_possible_truncation, reason = "clamped to ±qmax")]
                let q = (v / scale).round().clamp(-qmaxf, qmaxf) as i32;
                u8::try_from(q + qmax).unwrap_or(0)
            })
            .collect()
    };
    let err = |scale: f32, codes: &[u8]| -> f64 {
        x.iter()
            .zip(codes)
            .map(|(v, &c)| {
                let d = f64::from(*v) - f64::from(scale) * f64::from(i32::from(c) - qmax);
                d * d
            })
            .sum()
    };
    let mut best = (f64::INFINITY, 0f32, Vec::new());
    for step in 0..20u8 {
        // Clipping fractions 1.0, 0.965, … 0.335 of the largest value.
        let frac = 1.0 - 0.035 * f32::from(step);
        let scale = amax * frac / qmaxf;
        let codes = codes_for(scale);
        let e = err(scale, &codes);
        if e < best.0 {
            best = (e, scale, codes);
        }
    }
    (best.1, best.2)
}

fn pack(codes: &[u8], bits: u8, out: &mut Vec<u8>) {
    let mut acc = 0u64;
    let mut n = 0u32;
    for &c in codes {
        acc |= u64::from(c) << n;
        n += u32::from(bits);
        while n >= 8 {
            out.push(acc.to_le_bytes()[0]);
            acc >>= 8;
            n -= 8;
        }
    }
    if n > 0 {
        out.push(acc.to_le_bytes()[0]);
    }
}

/// Appends one stored vector; returns the values decoding will see.
fn store_vector(storage: &FactorStorage, t: usize, x: &[f32], out: &mut Vec<u8>) -> Vec<f32> {
    match storage {
        FactorStorage::F32 => {
            out.extend(x.iter().flat_map(|v| v.to_le_bytes()));
            x.to_vec()
        }
        FactorStorage::F16 => {
            let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
            out.extend(h.iter().flat_map(|v| v.to_le_bytes()));
            h.iter().map(|v| v.to_f32()).collect()
        }
        FactorStorage::BF16 => {
            let h: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
            out.extend(h.iter().flat_map(|v| v.to_le_bytes()));
            h.iter().map(|v| v.to_f32()).collect()
        }
        FactorStorage::Banded(_) => {
            let bits = storage.bits_for(t);
            let (scale, codes) = quantize(x, bits);
            out.extend_from_slice(&scale.to_le_bytes());
            pack(&codes, bits, out);
            dequantize(scale, &codes, bits)
        }
    }
}

/// Writes the body for the first `rank` triplets; returns it with the factors decoding sees.
fn write_body(
    storage: &FactorStorage,
    rank: usize,
    s: &[f64],
    u: impl Fn(usize) -> Vec<f32>,
    v: impl Fn(usize) -> Vec<f32>,
    rows: usize,
    cols: usize,
) -> (Vec<u8>, Factors) {
    let mut body = Vec::new();
    #[allow(
        clippy::cast_possible_truncation,
        reason = "rank ≤ min(rows, cols) and checked"
    )]
    body.extend_from_slice(&(rank as u32).to_le_bytes());
    body.push(storage.code());
    if let FactorStorage::Banded(bands) = storage {
        #[allow(clippy::cast_possible_truncation, reason = "validated: ≤ 16 bands")]
        body.push(bands.len() as u8);
        for b in bands {
            let end = u32::try_from(b.end).unwrap_or(u32::MAX);
            body.extend_from_slice(&end.to_le_bytes());
            body.push(b.bits);
        }
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "singular values are kept in f32"
    )]
    let s32: Vec<f32> = s[..rank].iter().map(|&x| x as f32).collect();
    for x in &s32 {
        body.extend_from_slice(&x.to_le_bytes());
    }
    let mut us = Vec::with_capacity(rank * rows);
    let mut vs = Vec::with_capacity(rank * cols);
    for (t, &st) in s32.iter().enumerate() {
        let ut = store_vector(storage, t, &u(t), &mut body);
        us.extend(ut.iter().map(|x| x * st));
        vs.extend(store_vector(storage, t, &v(t), &mut body));
    }
    (body, Factors { rank, us, v: vs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::lowrank::decode::unpack;

    #[test]
    fn pack_round_trips_every_width() {
        for bits in 2..=8u8 {
            let codes: Vec<u8> = (0..37u32)
                .map(|i| u8::try_from(i * 7 % (1 << bits)).unwrap())
                .collect();
            let mut out = Vec::new();
            pack(&codes, bits, &mut out);
            assert_eq!(out.len(), (codes.len() * usize::from(bits)).div_ceil(8));
            assert_eq!(unpack(&out, bits, codes.len()), codes);
        }
    }

    #[test]
    fn quantization_error_shrinks_with_bits() {
        let x: Vec<f32> = (0..256).map(|i| ((i as f32) * 0.37).sin()).collect();
        let mut last = f64::INFINITY;
        for bits in 2..=8u8 {
            let (scale, codes) = quantize(&x, bits);
            let y = dequantize(scale, &codes, bits);
            let err: f64 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum();
            assert!(err < last, "{bits} bits: {err} ≥ {last}");
            last = err;
        }
        // 8 bits: step 1/127, so about 256 · step² / 12 ≈ 1.3e-3 in all.
        assert!(last < 3e-3, "{last}");
    }
}

#[cfg(test)]
mod floor_tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use crate::codec::{DeltaCodec, RankPolicy};
    use crate::{DType, LowRank, synth};

    /// ‖decoded − (w + update)‖ / ‖update‖: how far what a reader gets is from the fine-tune
    /// before it was rounded to bf16 — the loss that matters.
    fn from_truth(decoded: &crate::Tensor, w: &[f32], update: &[f32]) -> f64 {
        let v = decoded.view().to_f64().unwrap();
        let err: f64 = v
            .iter()
            .zip(w.iter().zip(update))
            .map(|(d, (a, u))| (d - (f64::from(*a) + f64::from(*u))).powi(2))
            .sum();
        let norm: f64 = update.iter().map(|u| f64::from(*u).powi(2)).sum();
        (err / norm).sqrt()
    }

    /// bf16 fine-tunes whose true update is rank 8 and a fraction of a unit in the last place
    /// of the weights, or about one: after rounding, the stored delta is that update plus
    /// rounding noise no rank captures — the regime real bf16 fine-tunes are in. Counting that
    /// noise against the bound drove the rank up to fit it (37 for the smaller update, at this
    /// size; on larger matrices, past the size where low rank pays, so the tensor fell back to
    /// lossless); counted as the floor it is, the rank stays lower, and a reader's weights are
    /// nearly as close to the fine-tune as a rank that fits the noise would make them.
    #[test]
    fn an_error_bound_on_a_bf16_fine_tune_counts_the_rounding_floor() {
        let (rows, cols) = (256, 192);
        let w = synth::gaussian(1, rows * cols, 0.02);
        let base = synth::tensor(DType::BF16, &[rows, cols], &w);
        let bounded = LowRank::new(crate::Device::Cpu, RankPolicy::RelError(0.5));
        let high = LowRank::new(crate::Device::Cpu, RankPolicy::Fixed(48));
        // Under a unit in the last place, and about one.
        for rms in [6e-5, 1.5e-4] {
            let update = synth::low_rank(2, rows, cols, 8, rms);
            let tuned = synth::tensor(DType::BF16, &[rows, cols], &synth::add(&w, &update));
            let e = bounded.encode(tuned.view(), Some(base.view())).unwrap();
            let r = &e.report;
            // Under a unit in the last place most weights round back to the base's: at this
            // size the exact encoding of that sparse delta is smaller than the rank the bound
            // needs, and is what is stored — exact, and said so.
            if let Some(crate::Fallback::LosslessSmaller {
                lossy_bytes,
                lossless_bytes,
            }) = r.fallback
            {
                assert!(
                    rms < 1e-4,
                    "{rms}: {lossless_bytes} B exact, {lossy_bytes} B lossy"
                );
                assert!(lossless_bytes <= lossy_bytes);
                let decoded = crate::codec::decode(&e.payload, Some(base.view())).unwrap();
                assert_eq!(decoded, tuned);
                continue;
            }
            assert!(r.fallback.is_none(), "{rms}: {:?}", r.fallback);
            let rank = r.rank.unwrap();
            assert!((6..=32).contains(&rank), "{rms}: rank {rank}");
            let ours = from_truth(
                &crate::codec::decode(&e.payload, Some(base.view())).unwrap(),
                &w,
                &update,
            );
            // Against rank 48 — or, where its factors would take more bytes than the exact
            // delta, the exact bf16 weights themselves (their distance is the rounding).
            let h = high.encode(tuned.view(), Some(base.view())).unwrap();
            let theirs = from_truth(
                &crate::codec::decode(&h.payload, Some(base.view())).unwrap(),
                &w,
                &update,
            );
            let slack = if h.report.fallback.is_some() {
                1.5
            } else {
                1.3
            };
            assert!(
                ours <= slack * theirs && r.payload_bytes * 3 < h.report.payload_bytes * 2,
                "{rms}: rank {rank} is {ours:.3} from the fine-tune in {} B, rank 48 ({:?}) {theirs:.3} in {} B",
                r.payload_bytes,
                h.report.fallback,
                h.report.payload_bytes
            );
        }
    }

    #[test]
    fn the_floor_is_what_rounding_puts_in() {
        // bf16 values in [1, 2) have ulp 2^-7; f32 in [1, 2) 2^-23.
        // Only the changed elements count.
        let t = synth::tensor(DType::BF16, &[2, 2], &[1.0, 1.5, 1.25, 1.75]);
        let expected = 3.0 * 2f64.powi(-14) / 12.0;
        let delta = [0.1, 0.0, 0.2, -0.3];
        assert!((super::lossy::rounding_floor2(&t.view(), &delta) - expected).abs() < 1e-18);
        let f = synth::tensor(DType::F32, &[2, 2], &[1.0, 1.5, 1.25, 1.75]);
        assert!(super::lossy::rounding_floor2(&f.view(), &delta) < 1e-13);
    }
}
