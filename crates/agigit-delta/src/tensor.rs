//! Tensors as dtype, shape and little-endian bytes, borrowed ([`TensorView`]) or owned
//! ([`Tensor`]), and the exact conversions the numeric code needs.

use agigit_hash::BlobHash;
use half::{bf16, f16};

use crate::DType;

/// A tensor's bytes do not match its dtype and shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The element count overflows `usize` or the bit count does not fill whole bytes.
    #[error("shape {shape:?} of {dtype} has no whole-byte size")]
    BadShape {
        /// The dtype.
        dtype: DType,
        /// The shape.
        shape: Vec<usize>,
    },
    /// The data is longer or shorter than dtype and shape say.
    #[error("{dtype} tensor of shape {shape:?} needs {expected} bytes, got {actual}")]
    Length {
        /// The dtype.
        dtype: DType,
        /// The shape.
        shape: Vec<usize>,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
}

/// The element count of `shape`, if it fits in `usize`.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

fn check_layout(dtype: DType, shape: &[usize], len: usize) -> Result<(), LayoutError> {
    let expected = numel(shape)
        .and_then(|n| dtype.byte_len(n))
        .ok_or_else(|| LayoutError::BadShape {
            dtype,
            shape: shape.to_vec(),
        })?;
    if expected != len {
        return Err(LayoutError::Length {
            dtype,
            shape: shape.to_vec(),
            expected,
            actual: len,
        });
    }
    Ok(())
}

/// A borrowed tensor: dtype, shape and its bytes in safetensors layout (row-major,
/// little-endian). Construction checks that the bytes fit the dtype and shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorView<'a> {
    dtype: DType,
    shape: &'a [usize],
    data: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// A view of `data` as a `dtype` tensor of `shape`.
    pub fn new(dtype: DType, shape: &'a [usize], data: &'a [u8]) -> Result<Self, LayoutError> {
        check_layout(dtype, shape, data.len())?;
        Ok(TensorView { dtype, shape, data })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape (empty for a scalar).
    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }

    /// The raw bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        // Checked in `new`.
        numel(self.shape).unwrap_or(0)
    }

    /// SHA-256 of the bytes: what a tensor object records as the hash of its materialized data.
    pub fn hash(&self) -> BlobHash {
        BlobHash::digest(self.data)
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Tensor {
        Tensor {
            dtype: self.dtype,
            shape: self.shape.to_vec(),
            data: self.data.to_vec(),
        }
    }

    /// The view as a matrix: rows = the first dimension, columns = the product of the rest.
    /// `None` for scalars and 1-D tensors.
    pub fn matrix_dims(&self) -> Option<(usize, usize)> {
        match self.shape {
            [] | [_] => None,
            [rows, rest @ ..] => Some((*rows, numel(rest)?)),
        }
    }

    /// The values as `f64`, exactly, for the arithmetic dtypes (`F16`, `BF16`, `F32`, `F64`);
    /// `None` for any other dtype.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        let d = self.data;
        Some(match self.dtype {
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| f64::from(f16::from_le_bytes([c[0], c[1]])))
                .collect(),
            DType::BF16 => d
                .chunks_exact(2)
                .map(|c| f64::from(bf16::from_le_bytes([c[0], c[1]])))
                .collect(),
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            DType::F64 => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            _ => return None,
        })
    }
}

impl AsRef<[u8]> for TensorView<'_> {
    fn as_ref(&self) -> &[u8] {
        self.data
    }
}

/// An owned tensor: dtype, shape and bytes in safetensors layout.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Tensor {
    /// A tensor from its parts, checked like [`TensorView::new`].
    pub fn new(dtype: DType, shape: Vec<usize>, data: Vec<u8>) -> Result<Self, LayoutError> {
        check_layout(dtype, &shape, data.len())?;
        Ok(Tensor { dtype, shape, data })
    }

    /// A tensor of `values` rounded (to nearest, ties to even) into an arithmetic `dtype`.
    ///
    /// # Panics
    /// Never; a non-arithmetic `dtype` gives `None`.
    pub fn from_f64(dtype: DType, shape: Vec<usize>, values: &[f64]) -> Option<Self> {
        let data = f64_to_bytes(dtype, values)?;
        Tensor::new(dtype, shape, data).ok()
    }

    /// A `F32` tensor of `values`.
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Result<Self, LayoutError> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::new(DType::F32, shape, data)
    }

    /// A borrowed view.
    pub fn view(&self) -> TensorView<'_> {
        TensorView {
            dtype: self.dtype,
            shape: &self.shape,
            data: &self.data,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The raw bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The parts: dtype, shape, bytes.
    pub fn into_parts(self) -> (DType, Vec<usize>, Vec<u8>) {
        (self.dtype, self.shape, self.data)
    }
}

impl<'a> From<&'a Tensor> for TensorView<'a> {
    fn from(t: &'a Tensor) -> Self {
        t.view()
    }
}

/// `values` rounded to nearest-even into an arithmetic dtype's bytes; `None` for other dtypes.
pub(crate) fn f64_to_bytes(dtype: DType, values: &[f64]) -> Option<Vec<u8>> {
    Some(match dtype {
        DType::F16 => values
            .iter()
            .flat_map(|&v| f16::from_f64(v).to_le_bytes())
            .collect(),
        DType::BF16 => values
            .iter()
            .flat_map(|&v| bf16::from_f64(v).to_le_bytes())
            .collect(),
        #[allow(
            clippy::cast_possible_truncation,
            reason = "rounding f64 to f32 is the point"
        )]
        DType::F32 => values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect(),
        DType::F64 => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_checked() {
        assert!(TensorView::new(DType::F32, &[2, 3], &[0; 24]).is_ok());
        assert!(matches!(
            TensorView::new(DType::F32, &[2, 3], &[0; 23]),
            Err(LayoutError::Length {
                expected: 24,
                actual: 23,
                ..
            })
        ));
        assert!(matches!(
            TensorView::new(DType::F4, &[3], &[0; 2]),
            Err(LayoutError::BadShape { .. })
        ));
        assert!(matches!(
            TensorView::new(DType::U8, &[usize::MAX, 2], &[]),
            Err(LayoutError::BadShape { .. })
        ));
        // A scalar has one element; a zero dimension none.
        assert!(TensorView::new(DType::F64, &[], &[0; 8]).is_ok());
        assert!(TensorView::new(DType::F64, &[0, 5], &[]).is_ok());
    }

    #[test]
    fn f64_round_trips_every_arithmetic_dtype() {
        let values = [
            0.0,
            -0.0,
            1.5,
            -2.25,
            f64::INFINITY,
            f64::NEG_INFINITY,
            65504.0,
        ];
        for dtype in [DType::F16, DType::BF16, DType::F32, DType::F64] {
            let t = Tensor::from_f64(dtype, vec![values.len()], &values).unwrap();
            let back = t.view().to_f64().unwrap();
            for (a, b) in values.iter().zip(&back) {
                assert_eq!(
                    a.to_bits() >> 63,
                    b.to_bits() >> 63,
                    "sign kept for {dtype}"
                );
                if dtype != DType::BF16 || a.abs() != 65504.0 {
                    assert_eq!(a, b, "{dtype}");
                }
            }
        }
        assert!(Tensor::from_f64(DType::I32, vec![1], &[1.0]).is_none());
    }

    #[test]
    fn matrix_dims() {
        let t = Tensor::new(DType::U8, vec![2, 3, 4], vec![0; 24]).unwrap();
        assert_eq!(t.view().matrix_dims(), Some((2, 12)));
        let t = Tensor::new(DType::U8, vec![5], vec![0; 5]).unwrap();
        assert_eq!(t.view().matrix_dims(), None);
    }
}
