//! `SignScale`: BitDelta's 1-bit baseline — the sign of every delta value and one scale per
//! matrix, the mean absolute delta (the scale that minimizes the Frobenius error for fixed signs).

use rayon::prelude::*;

use super::lossy;
use super::{CodecKind, DecodeError, DeltaCodec, EncodeError, Encoded, PayloadHeader, Reader};
use crate::TensorView;

/// One bit per value plus one `f32` scale: about 16× smaller than `BF16`, 32× than `F32`, and
/// lossy. Opt-in.
///
/// Tensors that are not float matrices are stored losslessly (see [`Fallback`](super::Fallback)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignScale;

impl DeltaCodec for SignScale {
    fn kind(&self) -> CodecKind {
        CodecKind::SignScale
    }

    fn encode(
        &self,
        target: TensorView<'_>,
        base: Option<TensorView<'_>>,
    ) -> Result<Encoded, EncodeError> {
        super::check_inputs(&target, base.as_ref())?;
        let values = match lossy::delta(&target, base.as_ref()) {
            Ok(d) => d,
            Err(reason) => return lossy::fall_back(target, base, reason),
        };
        #[allow(clippy::cast_precision_loss, reason = "a mean")]
        let n = values.len().max(1) as f64;
        let mean_abs = values.par_iter().map(|v| f64::from(v.abs())).sum::<f64>() / n;
        #[allow(
            clippy::cast_possible_truncation,
            reason = "the scale is stored as f32"
        )]
        let scale = mean_abs as f32;
        let mut body = Vec::with_capacity(4 + values.len().div_ceil(8));
        body.extend_from_slice(&scale.to_le_bytes());
        body.extend(values.chunks(8).map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, v)| b | (u8::from(v.is_sign_negative()) << i))
        }));
        let dense_bytes = target.data().len() as u64;
        if body.len() as u64 + 160 >= dense_bytes {
            return lossy::fall_back(
                target,
                base,
                super::Fallback::NotSmaller {
                    lossy_bytes: body.len() as u64,
                    dense_bytes,
                },
            );
        }
        let delta_hat = expand(scale, &body[4..], values.len());
        let decoded =
            lossy::materialize(target.dtype(), base.as_ref(), &delta_hat).ok_or_else(|| {
                EncodeError::Parameter(format!("{} is not arithmetic", target.dtype()))
            })?;
        let encoded = lossy::finish(
            CodecKind::SignScale,
            &target,
            base.as_ref(),
            &body,
            &decoded,
            None,
        );
        lossy::unless_lossless_smaller(encoded, target, base)
    }
}

fn expand(scale: f32, bits: &[u8], n: usize) -> Vec<f32> {
    (0..n)
        .into_par_iter()
        .map(|i| {
            if bits[i / 8] >> (i % 8) & 1 == 1 {
                -scale
            } else {
                scale
            }
        })
        .collect()
}

pub(super) fn decode_body(
    r: &mut Reader<'_>,
    h: &PayloadHeader,
    base: Option<TensorView<'_>>,
) -> Result<Vec<u8>, DecodeError> {
    let (rows, cols) = lossy::matrix_dims(CodecKind::SignScale, h)?;
    let n = rows
        .checked_mul(cols)
        .ok_or(DecodeError::Truncated { what: "sign bits" })?;
    let scale = r.f32("scale")?;
    if !scale.is_finite() || scale < 0.0 {
        return Err(DecodeError::Corrupt {
            codec: CodecKind::SignScale,
            reason: format!("scale {scale}"),
        });
    }
    let bits = r.bytes(n.div_ceil(8), "sign bits")?;
    let delta_hat = expand(scale, bits, n);
    lossy::materialize_decoded(CodecKind::SignScale, h, base, &delta_hat)
}
