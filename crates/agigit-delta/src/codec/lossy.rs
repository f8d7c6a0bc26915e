//! What the lossy codecs share: computing the delta, falling back, materializing, reporting.

use rayon::prelude::*;

use super::{
    CodecKind, DecodeError, DeltaCodec, EncodeError, Encoded, Fallback, Lossless, PayloadHeader,
    Report, header_for, relative_error,
};
use crate::tensor::f64_to_bytes;
use crate::{DType, TensorView};

/// The delta a lossy codec works on — row-major `target − base` (or `target`) rounded to `f32`,
/// the tensor viewed as a matrix ([`TensorView::matrix_dims`]) — or the reason a lossy codec
/// must not be used.
pub(crate) fn delta(
    target: &TensorView<'_>,
    base: Option<&TensorView<'_>>,
) -> Result<Vec<f32>, Fallback> {
    let dtype = target.dtype();
    if !dtype.is_arithmetic() {
        return Err(Fallback::NotArithmetic(dtype));
    }
    target.matrix_dims().ok_or(Fallback::NotAMatrix)?;
    let t = target.to_f64().ok_or(Fallback::NotArithmetic(dtype))?;
    let b = base.and_then(TensorView::to_f64);
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the delta is kept in f32 on purpose"
    )]
    let values: Vec<f32> = match &b {
        Some(b) => t.par_iter().zip(b).map(|(t, b)| (t - b) as f32).collect(),
        None => t.par_iter().map(|&t| t as f32).collect(),
    };
    if values.par_iter().any(|v| !v.is_finite()) {
        return Err(Fallback::NonFinite);
    }
    Ok(values)
}

/// The delta's own rounding floor, squared: `Σ ulp(targetᵢ)² / 12` over the elements the
/// fine-tune changed (`changed`: `Δᵢ ≠ 0`), the expected energy of the noise that rounding the
/// fine-tuned weights to `target`'s dtype put into the delta. No rank captures it (it is as
/// full-rank as noise gets), and a reader never sees it (rounding `base + Δ̂` into the same dtype
/// absorbs errors under half a unit in the last place), so an error bound that counts it against
/// the approximation drives a bf16 or f16 fine-tune whose update is a few units in the last place
/// to a rank that fits the noise, or to no low rank at all. `f32` and `f64`: about 0.
#[cfg(feature = "lowrank")]
pub(crate) fn rounding_floor2(target: &TensorView<'_>, delta: &[f32]) -> f64 {
    // (bytes, exponent shift, exponent mask, bias, mantissa bits) of each format that rounds.
    let (size, shift, mask, bias, mantissa) = match target.dtype() {
        DType::BF16 => (2, 7, 0xFF, 127, 7),
        DType::F16 => (2, 10, 0x1F, 15, 10),
        DType::F32 => (4, 23, 0xFF, 127, 23),
        _ => return 0.0,
    };
    // ulp = 2^(max(e, 1) − bias − mantissa bits); subnormals share the smallest exponent.
    let sum: f64 = target
        .data()
        .par_chunks_exact(size)
        .zip(delta)
        .filter(|(_, v)| **v != 0.0)
        .map(|(c, _)| {
            let bits = c
                .iter()
                .rev()
                .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            let exp = i32::try_from(((bits >> shift) & mask).max(1)).unwrap_or(1);
            2f64.powi(2 * (exp - bias - mantissa))
        })
        .sum();
    sum / 12.0
}

/// Stores `target` losslessly, recording why.
pub(crate) fn fall_back(
    target: TensorView<'_>,
    base: Option<TensorView<'_>>,
    reason: Fallback,
) -> Result<Encoded, EncodeError> {
    let mut e = Lossless::default().encode(target, base)?;
    e.report.fallback = Some(reason);
    Ok(e)
}

/// `lossy`, unless the exact encoding of the same tensor is no larger: then that, with the
/// reason (a delta with no low-rank structure, a bf16 delta that is mostly rounding: a lossy
/// codec must never store more bytes for less fidelity).
pub(crate) fn unless_lossless_smaller(
    lossy: Encoded,
    target: TensorView<'_>,
    base: Option<TensorView<'_>>,
) -> Result<Encoded, EncodeError> {
    let mut exact = Lossless::default().encode(target, base)?;
    if exact.report.payload_bytes > lossy.report.payload_bytes {
        return Ok(lossy);
    }
    exact.report.fallback = Some(Fallback::LosslessSmaller {
        lossy_bytes: lossy.report.payload_bytes,
        lossless_bytes: exact.report.payload_bytes,
    });
    Ok(exact)
}

/// The materialized tensor bytes: `base + delta_hat` (or `delta_hat`), rounded into `dtype`.
pub(crate) fn materialize(
    dtype: DType,
    base: Option<&TensorView<'_>>,
    delta_hat: &[f32],
) -> Option<Vec<u8>> {
    let values: Vec<f64> = match base {
        Some(b) => {
            let b = b.to_f64()?;
            b.par_iter()
                .zip(delta_hat)
                .map(|(b, &d)| b + f64::from(d))
                .collect()
        }
        None => delta_hat.iter().map(|&d| f64::from(d)).collect(),
    };
    f64_to_bytes(dtype, &values)
}

/// The decoder's side of [`materialize`]: checks the header describes an arithmetic matrix.
pub(crate) fn materialize_decoded(
    codec: CodecKind,
    h: &PayloadHeader,
    base: Option<TensorView<'_>>,
    delta_hat: &[f32],
) -> Result<Vec<u8>, DecodeError> {
    materialize(h.dtype, base.as_ref(), delta_hat).ok_or_else(|| DecodeError::Corrupt {
        codec,
        reason: format!("lossy payload for a {} tensor", h.dtype),
    })
}

/// The `rows × cols` a lossy payload's header implies.
pub(crate) fn matrix_dims(
    codec: CodecKind,
    h: &PayloadHeader,
) -> Result<(usize, usize), DecodeError> {
    let corrupt = |reason: String| DecodeError::Corrupt { codec, reason };
    if !h.dtype.is_arithmetic() {
        return Err(corrupt(format!("lossy payload for a {} tensor", h.dtype)));
    }
    match h.shape.as_slice() {
        [] | [_] => Err(corrupt(format!("lossy payload for shape {:?}", h.shape))),
        [rows, rest @ ..] => {
            let cols = crate::tensor::numel(rest)
                .ok_or_else(|| corrupt(format!("shape {:?} overflows", h.shape)))?;
            Ok((*rows, cols))
        }
    }
}

/// Assembles a lossy payload from its body and the bytes decoding it gives, and measures the
/// error those bytes have.
pub(crate) fn finish(
    codec: CodecKind,
    target: &TensorView<'_>,
    base: Option<&TensorView<'_>>,
    body: &[u8],
    decoded: &[u8],
    rank: Option<usize>,
) -> Encoded {
    let output = super::output_digest(target.dtype(), target.shape(), decoded);
    let mut payload = Vec::with_capacity(body.len() + 160);
    header_for(codec, target, base, output).write(&mut payload);
    payload.extend_from_slice(body);
    let rel_error = TensorView::new(target.dtype(), target.shape(), decoded)
        .map(|d| relative_error(&d, target, base))
        .unwrap_or(f64::NAN);
    Encoded {
        report: Report {
            codec,
            fallback: None,
            dense_bytes: target.data().len() as u64,
            payload_bytes: payload.len() as u64,
            rel_error,
            rank,
        },
        payload,
    }
}
