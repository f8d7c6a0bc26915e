//! Reading a low-rank payload: every header field checked and every vector present before
//! anything large is allocated.

use half::{bf16, f16};

use super::{
    Band, FactorStorage, Factors, STORE_BANDED, STORE_BF16, STORE_F16, STORE_F32, dequantize,
    reconstruct,
};
use crate::TensorView;
use crate::codec::{CodecKind, DecodeError, PayloadHeader, Reader, lossy};

pub(in crate::codec) fn decode_body(
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

pub(super) fn unpack(src: &[u8], bits: u8, len: usize) -> Vec<u8> {
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
