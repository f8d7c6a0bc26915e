//! `LowRank`: the delta as a truncated SVD, `Δ ≈ U · diag(s) · Vᵀ`, with the singular vectors
//! stored in `f32`, `f16`, `bf16`, or quantized by singular-value band (more bits for the
//! largest, as Delta-CoMe does).
//!
//! Encoding (feature `lowrank`) uses the randomized SVD in [`crate::rsvd`]. Decoding is plain
//! Rust with a fixed order of summation, so every machine materializes the same bytes and the
//! payload's output hash holds everywhere, whatever device encoded it.

use half::{bf16, f16};
use rayon::prelude::*;

use super::{CodecKind, DecodeError, PayloadHeader, Reader, lossy};
use crate::TensorView;

/// How `LowRank` picks the rank.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RankPolicy {
    /// Exactly this rank (clamped to the matrix's smaller side).
    Fixed(usize),
    /// The smallest rank that keeps this share (0–1) of ‖Δ‖²_F.
    Energy(f64),
    /// The smallest rank whose materialized tensor is within this relative Frobenius error of the
    /// target: ‖decoded − target‖_F ≤ bound · ‖Δ‖_F, measured after quantization and rounding.
    RelError(f64),
}

/// One band of singular vectors quantized with the same number of bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    /// Singular vectors `[previous band's end, end)` use this band (the last band also takes any
    /// beyond its end).
    pub end: usize,
    /// Bits per value, 2–8.
    pub bits: u8,
}

/// How `LowRank` stores its singular vectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FactorStorage {
    /// 32-bit floats.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// Symmetric uniform quantization, one `f32` scale per vector, bits by band.
    Banded(Vec<Band>),
}

impl FactorStorage {
    /// Delta-CoMe's mixed precision: 8 bits for the top 2 singular vectors, 3 bits for the next
    /// 32, 2 bits for the rest.
    pub fn delta_come() -> Self {
        FactorStorage::Banded(vec![
            Band { end: 2, bits: 8 },
            Band { end: 34, bits: 3 },
            Band {
                end: usize::MAX,
                bits: 2,
            },
        ])
    }

    #[cfg_attr(
        not(feature = "lowrank"),
        allow(dead_code, reason = "the encoder's half")
    )]
    fn code(&self) -> u8 {
        match self {
            FactorStorage::F32 => 0,
            FactorStorage::F16 => 1,
            FactorStorage::BF16 => 2,
            FactorStorage::Banded(_) => 3,
        }
    }

    /// The width of the `t`-th singular vectors in bits (floats) or quantized bits.
    fn bits_for(&self, t: usize) -> u8 {
        match self {
            FactorStorage::F32 => 32,
            FactorStorage::F16 | FactorStorage::BF16 => 16,
            FactorStorage::Banded(bands) => bands
                .iter()
                .find(|b| t < b.end)
                .or(bands.last())
                .map_or(8, |b| b.bits),
        }
    }

    /// Bytes one stored vector of `len` values takes.
    pub(crate) fn vector_bytes(&self, t: usize, len: usize) -> usize {
        match self {
            FactorStorage::Banded(_) => 4 + (len * usize::from(self.bits_for(t))).div_ceil(8),
            _ => len * usize::from(self.bits_for(t)) / 8,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if let FactorStorage::Banded(bands) = self {
            if bands.is_empty() || bands.len() > 16 {
                return Err(format!("{} bands (expected 1–16)", bands.len()));
            }
            if let Some(b) = bands.iter().find(|b| !(2..=8).contains(&b.bits)) {
                return Err(format!("{} bits (expected 2–8)", b.bits));
            }
            if bands.windows(2).any(|w| w[0].end >= w[1].end) || bands[0].end == 0 {
                return Err("band ends must be positive and increasing".into());
            }
        }
        Ok(())
    }
}

const STORE_F32: u8 = 0;
const STORE_F16: u8 = 1;
const STORE_BF16: u8 = 2;
const STORE_BANDED: u8 = 3;

/// Quantizes `x` to `bits` with the scale (a fraction of max |x|) that minimizes the squared
/// error; returns the scale and the codes `q + qmax ∈ [0, 2·qmax]`.
#[cfg_attr(
    not(feature = "lowrank"),
    allow(dead_code, reason = "the encoder's half")
)]
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

#[cfg_attr(
    not(feature = "lowrank"),
    allow(dead_code, reason = "the encoder's half")
)]
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

fn unpack(src: &[u8], bits: u8, len: usize) -> Vec<u8> {
    let mask = (1u64 << bits) - 1;
    let mut out = Vec::with_capacity(len);
    let mut acc = 0u64;
    let mut n = 0u32;
    let mut bytes = src.iter();
    while out.len() < len {
        while n < u32::from(bits) {
            acc |= u64::from(bytes.next().copied().unwrap_or(0)) << n;
            n += 8;
        }
        out.push((acc & mask).to_le_bytes()[0]);
        acc >>= bits;
        n -= u32::from(bits);
    }
    out
}

/// Appends one stored vector; returns the values decoding will see.
#[cfg_attr(
    not(feature = "lowrank"),
    allow(dead_code, reason = "the encoder's half")
)]
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

fn dequantize(scale: f32, codes: &[u8], bits: u8) -> Vec<f32> {
    let qmax = (1i32 << (bits - 1)) - 1;
    #[allow(clippy::cast_precision_loss, reason = "small integers")]
    let deq = |c: u8| scale * (i32::from(c) - qmax) as f32;
    codes.iter().map(|&c| deq(c)).collect()
}

/// The factors as stored, ready to multiply out.
struct Factors {
    rank: usize,
    /// `s_t · u_t`, vector-major (`rank × rows`).
    us: Vec<f32>,
    /// `v_t`, vector-major (`rank × cols`).
    v: Vec<f32>,
}

/// `Δ̂ = Σ_t (s_t u_t) v_tᵀ`, row-major, summed over `t` in increasing order for every element —
/// the same bytes on every machine and thread count.
#[cfg_attr(
    not(feature = "lowrank"),
    allow(dead_code, reason = "the encoder's half")
)]
fn reconstruct(rows: usize, cols: usize, f: &Factors) -> Vec<f32> {
    const ROW_BLOCK: usize = 16;
    const COL_TILE: usize = 512;
    // An empty matrix may have a huge other side ([0, 2^60] has no elements): stop before any
    // arithmetic on it.
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    let mut out = vec![0f32; rows * cols];
    out.par_chunks_mut(ROW_BLOCK * cols)
        .enumerate()
        .for_each(|(block, chunk)| {
            let row0 = block * ROW_BLOCK;
            let nrows = chunk.len() / cols;
            for c0 in (0..cols).step_by(COL_TILE) {
                let c1 = (c0 + COL_TILE).min(cols);
                for t in 0..f.rank {
                    let vt = &f.v[t * cols + c0..t * cols + c1];
                    for r in 0..nrows {
                        let coef = f.us[t * rows + row0 + r];
                        let row = &mut chunk[r * cols + c0..r * cols + c1];
                        for (o, &x) in row.iter_mut().zip(vt) {
                            *o += coef * x;
                        }
                    }
                }
            }
        });
    out
}

/// Writes the body for the first `rank` triplets; returns it with the factors decoding sees.
#[cfg_attr(
    not(feature = "lowrank"),
    allow(dead_code, reason = "the encoder's half")
)]
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

pub(super) fn decode_body(
    r: &mut Reader<'_>,
    h: &PayloadHeader,
    base: Option<TensorView<'_>>,
) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |reason: String| DecodeError::Corrupt {
        codec: CodecKind::LowRank,
        reason,
    };
    let (rows, cols) = lossy::matrix_dims(CodecKind::LowRank, h)?;
    let rank = r.u32("rank")? as usize;
    if rank > rows.min(cols) {
        return Err(corrupt(format!("rank {rank} of a {rows} × {cols} matrix")));
    }
    let storage = match r.u8("factor storage")? {
        STORE_F32 => FactorStorage::F32,
        STORE_F16 => FactorStorage::F16,
        STORE_BF16 => FactorStorage::BF16,
        STORE_BANDED => {
            let n = r.u8("band count")?;
            let mut bands = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                let end = r.u32("band end")? as usize;
                let bits = r.u8("band bits")?;
                bands.push(Band { end, bits });
            }
            let s = FactorStorage::Banded(bands);
            s.validate().map_err(corrupt)?;
            s
        }
        other => return Err(corrupt(format!("unknown factor storage {other}"))),
    };
    // Every vector must be present before anything large is allocated.
    let needed: usize = (0..rank)
        .map(|t| storage.vector_bytes(t, rows) + storage.vector_bytes(t, cols))
        .sum::<usize>()
        + 4 * rank;
    if r.remaining() < needed {
        return Err(DecodeError::Truncated {
            what: "singular vectors",
        });
    }
    let mut s = Vec::with_capacity(rank);
    for _ in 0..rank {
        let x = r.f32("singular value")?;
        if !x.is_finite() || x < 0.0 {
            return Err(corrupt(format!("singular value {x}")));
        }
        s.push(x);
    }
    let mut read_vector = |t: usize, len: usize| -> Result<Vec<f32>, DecodeError> {
        let values: Vec<f32> = match &storage {
            FactorStorage::F32 => r
                .bytes(len * 4, "vector")?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            FactorStorage::F16 => r
                .bytes(len * 2, "vector")?
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            FactorStorage::BF16 => r
                .bytes(len * 2, "vector")?
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            FactorStorage::Banded(_) => {
                let bits = storage.bits_for(t);
                let scale = r.f32("vector scale")?;
                if !scale.is_finite() || scale < 0.0 {
                    return Err(corrupt(format!("vector scale {scale}")));
                }
                let codes = unpack(
                    r.bytes((len * usize::from(bits)).div_ceil(8), "vector")?,
                    bits,
                    len,
                );
                let qmax = (1u8 << (bits - 1)) - 1;
                if codes.iter().any(|&c| c > 2 * qmax) {
                    return Err(corrupt(format!("{bits}-bit code out of range")));
                }
                dequantize(scale, &codes, bits)
            }
        };
        if values.iter().any(|v| !v.is_finite()) {
            return Err(corrupt("non-finite value in a singular vector".into()));
        }
        Ok(values)
    };
    let mut us = Vec::with_capacity(rank * rows);
    let mut v = Vec::with_capacity(rank * cols);
    for (t, &st) in s.iter().enumerate() {
        us.extend(read_vector(t, rows)?.into_iter().map(|x| x * st));
        v.extend(read_vector(t, cols)?);
    }
    let delta_hat = reconstruct(rows, cols, &Factors { rank, us, v });
    lossy::materialize_decoded(CodecKind::LowRank, h, base, &delta_hat)
}

#[cfg(feature = "lowrank")]
pub use encode::LowRank;

#[cfg(feature = "lowrank")]
mod encode {
    use candle_core::Device;

    use super::*;
    use crate::codec::{DeltaCodec, EncodeError, Encoded, Fallback};
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
        }

        fn payload_bytes(&self, rank: usize, rows: usize, cols: usize) -> usize {
            (0..rank)
                .map(|t| {
                    4 + self.storage.vector_bytes(t, rows) + self.storage.vector_bytes(t, cols)
                })
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
            let delta = match lossy::delta(&target, base.as_ref()) {
                Ok(d) => d,
                Err(reason) => return lossy::fall_back(target, base, reason),
            };
            let (rows, cols) = (delta.rows, delta.cols);
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
                    (self.svd(&delta.values, rows, cols, k + self.oversample)?, k)
                }
                RankPolicy::Energy(_) | RankPolicy::RelError(_) => {
                    let allowed = match self.rank {
                        RankPolicy::Energy(e) => (1.0 - e) * delta.norm2,
                        RankPolicy::RelError(b) => b * b * delta.norm2,
                        RankPolicy::Fixed(_) => 0.0,
                    };
                    let mut sketch = (32 + self.oversample).min(full);
                    loop {
                        let svd = self.svd(&delta.values, rows, cols, sketch)?;
                        let mut captured = 0.0;
                        let mut k = None;
                        if delta.norm2 <= allowed {
                            k = Some(0);
                        }
                        for (i, s) in svd.singular_values().iter().enumerate() {
                            if k.is_some() {
                                break;
                            }
                            captured += s * s;
                            if delta.norm2 - captured <= allowed {
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
                // rank until the measured error meets the bound, within the sketch.
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
            Ok(encoded)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn reconstruct_matches_the_naive_sum() {
        let (rows, cols, rank) = (37, 1030, 3);
        let us: Vec<f32> = (0..rank * rows).map(|i| (i as f32 * 0.1).cos()).collect();
        let v: Vec<f32> = (0..rank * cols).map(|i| (i as f32 * 0.01).sin()).collect();
        let out = reconstruct(
            rows,
            cols,
            &Factors {
                rank,
                us: us.clone(),
                v: v.clone(),
            },
        );
        for i in 0..rows {
            for j in 0..cols {
                let mut e = 0f32;
                for t in 0..rank {
                    e += us[t * rows + i] * v[t * cols + j];
                }
                assert_eq!(out[i * cols + j].to_bits(), e.to_bits());
            }
        }
    }
}
