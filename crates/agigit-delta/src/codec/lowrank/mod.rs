//! `LowRank`: the delta as a truncated SVD, `Δ ≈ U · diag(s) · Vᵀ`, with the singular vectors
//! stored in `f32`, `f16`, `bf16`, or quantized by singular-value band (more bits for the
//! largest, as Delta-CoMe does).
//!
//! The payload's types and the reconstruction live here; `decode` reads a payload (always built,
//! so every reader can open a low-rank fork) and `encode` writes one (feature `lowrank`: the
//! randomized SVD in [`crate::rsvd`] on candle). Decoding is plain
//! Rust with a fixed order of summation, so every machine materializes the same bytes and the
//! payload's output hash holds everywhere, whatever device encoded it.

use rayon::prelude::*;

mod decode;
#[cfg(feature = "lowrank")]
mod encode;

pub(super) use decode::decode_body;
#[cfg(feature = "lowrank")]
pub use encode::LowRank;

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

#[cfg(test)]
mod tests {
    use super::*;

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
