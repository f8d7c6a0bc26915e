//! How much one tensor differs from another of the same dtype and shape: the share of elements
//! that changed and, for the arithmetic dtypes, ‖new − old‖ / ‖old‖ — what a model diff shows.

use crate::tensor::TensorView;

/// Elements compared at a time (bounds the `f64` scratch to 512 KiB per side).
const CHUNK: usize = 1 << 16;

/// What [`compare`] found.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Comparison {
    /// Elements (bytes for the sub-byte dtypes, which pack several per byte).
    pub elements: usize,
    /// Elements whose bytes differ.
    pub changed: usize,
    /// ‖old‖₂, for the arithmetic dtypes (`F16`, `BF16`, `F32`, `F64`).
    pub old_norm: Option<f64>,
    /// ‖new − old‖₂, for the arithmetic dtypes.
    pub delta_norm: Option<f64>,
}

impl Comparison {
    /// The share of elements that changed, in `[0, 1]` (0 for an empty tensor).
    pub fn changed_share(&self) -> f64 {
        if self.elements == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss, reason = "a share, not a count")]
            let share = self.changed as f64 / self.elements as f64;
            share
        }
    }

    /// ‖new − old‖ / ‖old‖: `None` for other dtypes, infinite when `old` is zero and `new` is
    /// not, 0 when both are zero.
    pub fn relative_change(&self) -> Option<f64> {
        let (old, delta) = (self.old_norm?, self.delta_norm?);
        Some(if delta == 0.0 {
            0.0
        } else if old == 0.0 {
            f64::INFINITY
        } else {
            delta / old
        })
    }
}

/// Compares `new` with `old`: `None` when their dtypes or shapes differ (there is no
/// element-wise change to speak of). Streams over the tensors; no copy of either is made.
pub fn compare(old: TensorView<'_>, new: TensorView<'_>) -> Option<Comparison> {
    if old.dtype() != new.dtype() || old.shape() != new.shape() {
        return None;
    }
    let dtype = old.dtype();
    // Bytes per element; the sub-byte dtypes are compared byte by byte.
    let size = dtype.byte_len(1).unwrap_or(1);
    let (a, b) = (old.data(), new.data());
    let changed = a
        .chunks_exact(size)
        .zip(b.chunks_exact(size))
        .filter(|(x, y)| x != y)
        .count();
    let elements = a.len() / size;
    let arithmetic = dtype.is_arithmetic();
    let (mut old_sq, mut delta_sq) = (0.0f64, 0.0f64);
    if arithmetic {
        for (x, y) in a.chunks(CHUNK * size).zip(b.chunks(CHUNK * size)) {
            let n = [x.len() / size];
            let (Ok(xv), Ok(yv)) = (TensorView::new(dtype, &n, x), TensorView::new(dtype, &n, y))
            else {
                return None;
            };
            let (Some(xs), Some(ys)) = (xv.to_f64(), yv.to_f64()) else {
                return None;
            };
            for (p, q) in xs.iter().zip(&ys) {
                old_sq += p * p;
                delta_sq += (q - p) * (q - p);
            }
        }
    }
    Some(Comparison {
        elements,
        changed,
        old_norm: arithmetic.then(|| old_sq.sqrt()),
        delta_norm: arithmetic.then(|| delta_sq.sqrt()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::float_cmp, reason = "tests")]
    use super::*;
    use crate::{DType, synth};

    #[test]
    fn counts_changed_elements_and_the_relative_change() {
        let old = synth::tensor(DType::F32, &[2, 4], &[1.0; 8]);
        let mut values = [1.0f32; 8];
        values[3] = 3.0;
        let new = synth::tensor(DType::F32, &[2, 4], &values);
        let c = compare(old.view(), new.view()).unwrap();
        assert_eq!((c.elements, c.changed), (8, 1));
        assert_eq!(c.changed_share(), 0.125);
        // ‖Δ‖ = 2, ‖W‖ = √8.
        assert!((c.relative_change().unwrap() - 2.0 / 8f64.sqrt()).abs() < 1e-12);
        let same = compare(old.view(), old.view()).unwrap();
        assert_eq!((same.changed, same.relative_change()), (0, Some(0.0)));
    }

    #[test]
    fn other_dtypes_have_no_norm_and_other_shapes_no_comparison() {
        let a = crate::Tensor::new(DType::U8, vec![4], vec![1, 2, 3, 4]).unwrap();
        let b = crate::Tensor::new(DType::U8, vec![4], vec![1, 9, 3, 4]).unwrap();
        let c = compare(a.view(), b.view()).unwrap();
        assert_eq!((c.changed, c.relative_change()), (1, None));
        let wide = crate::Tensor::new(DType::U8, vec![2, 2], vec![1, 2, 3, 4]).unwrap();
        assert!(compare(a.view(), wide.view()).is_none());
    }

    #[test]
    fn spans_more_than_one_chunk() {
        let n = CHUNK * 2 + 5;
        let old = synth::tensor(DType::BF16, &[n, 1], &vec![0.5; n]);
        let mut values = vec![0.5f32; n];
        values[n - 1] = 1.5;
        let new = synth::tensor(DType::BF16, &[n, 1], &values);
        let c = compare(old.view(), new.view()).unwrap();
        assert_eq!(c.changed, 1);
        #[allow(clippy::cast_precision_loss, reason = "a test's small count")]
        let expected = 1.0 / (0.25 * n as f64).sqrt();
        assert!((c.relative_change().unwrap() - expected).abs() < 1e-9);
    }
}
