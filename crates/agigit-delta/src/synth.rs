//! Reproducible synthetic weights and deltas, for tests, benches and examples: Gaussian
//! "trained" matrices, fine-tune-like perturbations and low-rank (LoRA-like) updates.
//!
//! The generator is SplitMix64 with Box–Muller, written out here so the numbers never change
//! with a dependency's version.

use crate::{DType, Tensor};

/// A seeded source of uniform and Gaussian numbers.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits (SplitMix64).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn uniform(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "53 random bits")]
        let u = ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        u
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// `n` values drawn from N(0, std²).
#[allow(clippy::cast_possible_truncation, reason = "f32 weights")]
pub fn gaussian(seed: u64, n: usize, std: f64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| (rng.normal() * std) as f32).collect()
}

/// `base` plus N(0, (`rel` · rms(base))²) noise on every value: what a full fine-tune does to a
/// weight matrix, to a first approximation.
#[allow(clippy::cast_possible_truncation, reason = "f32 weights")]
pub fn perturb(base: &[f32], seed: u64, rel: f64) -> Vec<f32> {
    let rms = rms(base);
    let mut rng = Rng::new(seed);
    base.iter()
        .map(|&b| (f64::from(b) + rng.normal() * rel * rms) as f32)
        .collect()
}

/// A `rows × cols` matrix of rank `rank` (row-major), `Σ_i a_i b_iᵀ` with Gaussian factors, scaled
/// so its RMS value is `rms`: what a LoRA fine-tune adds.
#[allow(clippy::cast_possible_truncation, reason = "f32 weights")]
pub fn low_rank(seed: u64, rows: usize, cols: usize, rank: usize, rms_target: f64) -> Vec<f32> {
    let a = gaussian(seed, rows * rank, 1.0);
    let b = gaussian(seed ^ 0x5555_5555, rank * cols, 1.0);
    let mut out = vec![0f64; rows * cols];
    for i in 0..rows {
        for t in 0..rank {
            let ai = f64::from(a[i * rank + t]);
            for j in 0..cols {
                out[i * cols + j] += ai * f64::from(b[t * cols + j]);
            }
        }
    }
    let r = rms_f64(&out).max(f64::MIN_POSITIVE);
    out.iter().map(|&x| (x / r * rms_target) as f32).collect()
}

/// Element-wise `a + b`.
pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Root mean square.
pub fn rms(x: &[f32]) -> f64 {
    rms_f64(&x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>())
}

fn rms_f64(x: &[f64]) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "a mean")]
    let n = x.len().max(1) as f64;
    (x.iter().map(|v| v * v).sum::<f64>() / n).sqrt()
}

/// `values` rounded into an arithmetic `dtype` as a tensor of `shape`.
///
/// # Panics
/// If `dtype` is not `F16`, `BF16`, `F32` or `F64`, or `shape` does not hold `values.len()`
/// values. These are fixtures: a wrong call is a bug in the test.
#[allow(clippy::panic, reason = "fixture helper; documented")]
pub fn tensor(dtype: DType, shape: &[usize], values: &[f32]) -> Tensor {
    let v: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
    Tensor::from_f64(dtype, shape.to_vec(), &v)
        .unwrap_or_else(|| panic!("{dtype} tensor of shape {shape:?} from {} values", v.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_has_the_right_moments() {
        let x = gaussian(7, 100_000, 2.0);
        let mean: f64 = x.iter().map(|&v| f64::from(v)).sum::<f64>() / 1e5;
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((rms(&x) - 2.0).abs() < 0.03);
        assert_eq!(gaussian(7, 3, 1.0), gaussian(7, 3, 1.0));
    }

    #[test]
    fn low_rank_has_its_rms() {
        let m = low_rank(1, 20, 30, 3, 0.5);
        assert!((rms(&m) - 0.5).abs() < 1e-6);
    }
}
