//! Tensor merges, as pure functions: ours, theirs, weighted average, task arithmetic and TIES.
//!
//! Arithmetic runs in `f64` on the exact values of `F16`, `BF16`, `F32` and `F64` tensors and
//! rounds once, to nearest-even, into the inputs' dtype. `ours` and `theirs` work on any dtype.

use rayon::prelude::*;

use crate::{DType, Tensor, TensorView};

/// A merge could not be computed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// No tensors to merge.
    #[error("nothing to merge")]
    Empty,
    /// An input has another shape than the first.
    #[error("input {index} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Which input (0 is the base where there is one).
        index: usize,
        /// The first input's shape.
        expected: Vec<usize>,
        /// This input's shape.
        found: Vec<usize>,
    },
    /// An input has another dtype than the first.
    #[error("input {index} is {found}, expected {expected}")]
    DTypeMismatch {
        /// Which input.
        index: usize,
        /// The first input's dtype.
        expected: DType,
        /// This input's dtype.
        found: DType,
    },
    /// Arithmetic merges need `F16`, `BF16`, `F32` or `F64`.
    #[error("cannot average {0} tensors: arithmetic merges need F16, BF16, F32 or F64")]
    NotArithmetic(DType),
    /// Weighted-average weights must be finite, non-negative and sum to 1.
    #[error("weights {weights:?} must be finite, non-negative and sum to 1 (they sum to {sum})")]
    Weights {
        /// The weights given.
        weights: Vec<f64>,
        /// Their sum.
        sum: f64,
    },
    /// One coefficient per task vector is needed.
    #[error("{tensors} tensors but {coefficients} coefficients")]
    CoefficientCount {
        /// Tensors given.
        tensors: usize,
        /// Coefficients given.
        coefficients: usize,
    },
    /// A parameter is out of range.
    #[error("invalid merge parameter: {0}")]
    Parameter(String),
}

/// How to merge one tensor that several sides changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    /// Keep our side (the first input).
    Ours,
    /// Keep their side (the last input).
    Theirs,
    /// `Σ wᵢ tᵢ`, weights summing to 1.
    WeightedAverage(Vec<f64>),
    /// `base + Σ λᵢ (tᵢ − base)`.
    TaskArithmetic(Vec<f64>),
    /// TIES-merging (Yadav et al., 2023).
    Ties(Ties),
}

/// TIES parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ties {
    /// Share (0–1] of each task vector's entries kept, by magnitude (the paper's `k`; 0.2 is its
    /// default).
    pub density: f64,
    /// Scale of the merged task vector (the paper's `λ`; 1 is its default).
    pub lambda: f64,
}

impl Default for Ties {
    fn default() -> Self {
        Ties {
            density: 0.2,
            lambda: 1.0,
        }
    }
}

/// Merges `inputs` (`[ours, …, theirs]`) by `strategy`; `base` is needed by task arithmetic and
/// TIES and checked against the inputs' layout whenever given.
pub fn merge(
    base: Option<TensorView<'_>>,
    inputs: &[TensorView<'_>],
    strategy: &Strategy,
) -> Result<Tensor, MergeError> {
    let need_base =
        || base.ok_or_else(|| MergeError::Parameter("this strategy needs a base".into()));
    match strategy {
        Strategy::Ours => {
            check_layouts(base.iter().chain(inputs))?;
            inputs
                .first()
                .map(|t| t.to_owned())
                .ok_or(MergeError::Empty)
        }
        Strategy::Theirs => {
            check_layouts(base.iter().chain(inputs))?;
            inputs.last().map(|t| t.to_owned()).ok_or(MergeError::Empty)
        }
        Strategy::WeightedAverage(w) => {
            if let Some(b) = base {
                check_layouts(std::iter::once(&b).chain(inputs))?;
            }
            let pairs: Vec<_> = zip_coefficients(inputs, w)?;
            weighted_average(&pairs)
        }
        Strategy::TaskArithmetic(l) => task_arithmetic(need_base()?, &zip_coefficients(inputs, l)?),
        Strategy::Ties(p) => ties(need_base()?, inputs, *p),
    }
}

fn zip_coefficients<'a>(
    inputs: &[TensorView<'a>],
    c: &[f64],
) -> Result<Vec<(TensorView<'a>, f64)>, MergeError> {
    if inputs.len() != c.len() {
        return Err(MergeError::CoefficientCount {
            tensors: inputs.len(),
            coefficients: c.len(),
        });
    }
    Ok(inputs.iter().copied().zip(c.iter().copied()).collect())
}

fn check_layouts<'a, 'b: 'a>(
    tensors: impl IntoIterator<Item = &'a TensorView<'b>>,
) -> Result<(DType, &'b [usize]), MergeError> {
    let mut it = tensors.into_iter();
    let first = it.next().ok_or(MergeError::Empty)?;
    for (i, t) in it.enumerate() {
        if t.dtype() != first.dtype() {
            return Err(MergeError::DTypeMismatch {
                index: i + 1,
                expected: first.dtype(),
                found: t.dtype(),
            });
        }
        if t.shape() != first.shape() {
            return Err(MergeError::ShapeMismatch {
                index: i + 1,
                expected: first.shape().to_vec(),
                found: t.shape().to_vec(),
            });
        }
    }
    Ok((first.dtype(), first.shape()))
}

fn values(t: &TensorView<'_>) -> Result<Vec<f64>, MergeError> {
    t.to_f64().ok_or(MergeError::NotArithmetic(t.dtype()))
}

fn finish(dtype: DType, shape: &[usize], v: &[f64]) -> Result<Tensor, MergeError> {
    Tensor::from_f64(dtype, shape.to_vec(), v).ok_or(MergeError::NotArithmetic(dtype))
}

fn check_finite(name: &str, c: &[f64]) -> Result<(), MergeError> {
    match c.iter().find(|x| !x.is_finite()) {
        Some(x) => Err(MergeError::Parameter(format!("{name} {x} is not finite"))),
        None => Ok(()),
    }
}

/// `Σ wᵢ tᵢ`; the weights must be finite, non-negative and sum to 1 (within 1e-9).
pub fn weighted_average(inputs: &[(TensorView<'_>, f64)]) -> Result<Tensor, MergeError> {
    let (dtype, shape) = check_layouts(inputs.iter().map(|(t, _)| t))?;
    let weights: Vec<f64> = inputs.iter().map(|(_, w)| *w).collect();
    let sum: f64 = weights.iter().sum();
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || (sum - 1.0).abs() > 1e-9 {
        return Err(MergeError::Weights { weights, sum });
    }
    let mut acc = vec![0.0; inputs[0].0.numel()];
    for (t, w) in inputs {
        let v = values(t)?;
        acc.par_iter_mut().zip(&v).for_each(|(a, x)| *a += w * x);
    }
    finish(dtype, shape, &acc)
}

/// Task arithmetic (Ilharco et al., 2023): `base + Σ λᵢ (tᵢ − base)`.
pub fn task_arithmetic(
    base: TensorView<'_>,
    tasks: &[(TensorView<'_>, f64)],
) -> Result<Tensor, MergeError> {
    if tasks.is_empty() {
        return Err(MergeError::Empty);
    }
    let (dtype, shape) = check_layouts(std::iter::once(&base).chain(tasks.iter().map(|(t, _)| t)))?;
    check_finite(
        "coefficient",
        &tasks.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
    )?;
    let b = values(&base)?;
    let mut acc = b.clone();
    for (t, lambda) in tasks {
        let v = values(t)?;
        acc.par_iter_mut()
            .zip(&v)
            .zip(&b)
            .for_each(|((a, x), b)| *a += lambda * (x - b));
    }
    finish(dtype, shape, &acc)
}

/// TIES-merging: trim each task vector `τᵢ = tᵢ − base` to its `density` largest-magnitude
/// entries, elect each entry's sign as the sign of `Σ τᵢ` (trimmed), average the trimmed entries
/// that agree with it, and add `λ` times that to the base.
///
/// Trimming keeps every entry whose magnitude is at least the `⌈density · n⌉`-th largest, so ties
/// at the threshold are all kept and the result does not depend on input order.
pub fn ties(base: TensorView<'_>, tasks: &[TensorView<'_>], p: Ties) -> Result<Tensor, MergeError> {
    if tasks.is_empty() {
        return Err(MergeError::Empty);
    }
    if !(p.density > 0.0 && p.density <= 1.0) {
        return Err(MergeError::Parameter(format!(
            "density {} (expected (0, 1])",
            p.density
        )));
    }
    check_finite("lambda", &[p.lambda])?;
    let (dtype, shape) = check_layouts(std::iter::once(&base).chain(tasks))?;
    let b = values(&base)?;
    let n = b.len();
    let mut trimmed: Vec<Vec<f64>> = Vec::with_capacity(tasks.len());
    for t in tasks {
        let mut tau: Vec<f64> = values(t)?.iter().zip(&b).map(|(x, b)| x - b).collect();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "density ∈ (0, 1], so the count is in [0, n]"
        )]
        let keep = ((p.density * n as f64).ceil() as usize).clamp(1, n.max(1));
        if n > 0 && keep < n {
            let mut mags: Vec<f64> = tau.iter().map(|x| x.abs()).collect();
            let (_, &mut threshold, _) = mags.select_nth_unstable_by(n - keep, f64::total_cmp);
            tau.iter_mut()
                .filter(|x| x.abs() < threshold)
                .for_each(|x| *x = 0.0);
        }
        trimmed.push(tau);
    }
    let merged: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let total: f64 = trimmed.iter().map(|t| t[i]).sum();
            if total == 0.0 {
                return b[i];
            }
            let (sum, count) = trimmed
                .iter()
                .map(|t| t[i])
                .filter(|&x| x != 0.0 && (x > 0.0) == (total > 0.0))
                .fold((0.0, 0u32), |(s, c), x| (s + x, c + 1));
            b[i] + p.lambda * sum / f64::from(count.max(1))
        })
        .collect();
    finish(dtype, shape, &merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32t(v: &[f32]) -> Tensor {
        Tensor::from_f32(vec![v.len()], v).unwrap()
    }

    #[test]
    fn ties_follows_the_paper_on_a_small_case() {
        let base = f32t(&[0.0, 0.0, 0.0, 0.0]);
        let a = f32t(&[1.0, -2.0, 0.1, 3.0]);
        let b = f32t(&[1.0, 1.0, -0.1, -1.0]);
        let c = f32t(&[3.0, 1.0, 0.0, -1.0]);
        let m = ties(
            base.view(),
            &[a.view(), b.view(), c.view()],
            Ties {
                density: 1.0,
                lambda: 1.0,
            },
        )
        .unwrap();
        // Entry 0: all positive, mean 5/3. Entry 1: total 0 → base. Entry 2: total 0 → base.
        // Entry 3: total 1 > 0 → only 3.0 agrees.
        let v = m.view().to_f64().unwrap();
        assert!((v[0] - 5.0 / 3.0).abs() < 1e-6);
        assert_eq!(v[1], 0.0);
        assert_eq!(v[2], 0.0);
        assert_eq!(v[3], 3.0);
    }

    #[test]
    fn ties_trims_small_entries() {
        let base = f32t(&[0.0; 4]);
        let a = f32t(&[4.0, 0.5, -3.0, 0.1]);
        let m = ties(
            base.view(),
            &[a.view()],
            Ties {
                density: 0.5,
                lambda: 2.0,
            },
        )
        .unwrap();
        assert_eq!(m.view().to_f64().unwrap(), vec![8.0, 0.0, -6.0, 0.0]);
    }
}
