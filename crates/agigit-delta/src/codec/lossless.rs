//! `Lossless`: XOR against the base in the tensor's own dtype, bytes split into planes, each plane
//! compressed with zstd.
//!
//! Why it works: a fine-tuned weight shares its sign, exponent and top mantissa bits with the base
//! weight, so the XOR is mostly zero in the high bytes. Even without a base, the exponent byte of
//! trained weights takes few values. Rotating each element left by one bit moves the sign next to
//! the low mantissa bits, so for `BF16`, `F32` (and nearly for `F64`) one plane holds exactly the
//! exponent, which is what ZipNN exploits.

use rayon::prelude::*;

use super::{
    CodecKind, DecodeError, DeltaCodec, EncodeError, Encoded, PayloadHeader, Reader, Report,
    check_inputs, header_for,
};
use crate::{DType, TensorView};

/// Bit-exact delta compression; the default codec for a fork.
///
/// Round-trips every bit pattern, NaN payloads, infinities, −0 and subnormals included: it never
/// does arithmetic on the values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lossless {
    /// zstd level for each plane (1–22; 3 is zstd's default).
    pub level: i32,
}

impl Default for Lossless {
    fn default() -> Self {
        Lossless { level: 3 }
    }
}

const MODE_PLAIN: u8 = 0;
const MODE_XOR: u8 = 1;
const LAYOUT_BYTES: u8 = 0;
const LAYOUT_ROTL1: u8 = 1;
const PLANE_STORED: u8 = 0;
const PLANE_ZSTD: u8 = 1;

/// The element width used for planes: whole bytes, else one plane of raw bytes.
fn plane_count(dtype: DType) -> usize {
    dtype.size().unwrap_or(1)
}

/// Whether rotating by one bit puts the exponent in one byte.
fn rotates(dtype: DType) -> bool {
    matches!(dtype, DType::BF16 | DType::F32 | DType::F64 | DType::C64)
}

fn rotl1(element: &mut [u8]) {
    match element.len() {
        2 => {
            let v = u16::from_le_bytes([element[0], element[1]]).rotate_left(1);
            element.copy_from_slice(&v.to_le_bytes());
        }
        4 => {
            let mut a = [0; 4];
            a.copy_from_slice(element);
            element.copy_from_slice(&u32::from_le_bytes(a).rotate_left(1).to_le_bytes());
        }
        8 => {
            let mut a = [0; 8];
            a.copy_from_slice(element);
            element.copy_from_slice(&u64::from_le_bytes(a).rotate_left(1).to_le_bytes());
        }
        _ => {}
    }
}

fn rotr1(element: &mut [u8]) {
    match element.len() {
        2 => {
            let v = u16::from_le_bytes([element[0], element[1]]).rotate_right(1);
            element.copy_from_slice(&v.to_le_bytes());
        }
        4 => {
            let mut a = [0; 4];
            a.copy_from_slice(element);
            element.copy_from_slice(&u32::from_le_bytes(a).rotate_right(1).to_le_bytes());
        }
        8 => {
            let mut a = [0; 8];
            a.copy_from_slice(element);
            element.copy_from_slice(&u64::from_le_bytes(a).rotate_right(1).to_le_bytes());
        }
        _ => {}
    }
}

/// For `C64` the rotation works on each `f32` half.
fn element_width_for_rotation(dtype: DType) -> usize {
    if dtype == DType::C64 {
        4
    } else {
        plane_count(dtype)
    }
}

impl DeltaCodec for Lossless {
    fn kind(&self) -> CodecKind {
        CodecKind::Lossless
    }

    fn encode(
        &self,
        target: TensorView<'_>,
        base: Option<TensorView<'_>>,
    ) -> Result<Encoded, EncodeError> {
        check_inputs(&target, base.as_ref())?;
        if !(1..=22).contains(&self.level) {
            return Err(EncodeError::Parameter(format!(
                "zstd level {} (expected 1–22)",
                self.level
            )));
        }
        let dtype = target.dtype();
        let planes = plane_count(dtype);
        let rotate = rotates(dtype);
        // The transformed elements: XOR with the base, then rotated.
        let mut x = target.data().to_vec();
        if let Some(b) = &base {
            x.par_chunks_mut(1 << 16)
                .zip(b.data().par_chunks(1 << 16))
                .for_each(|(x, b)| x.iter_mut().zip(b).for_each(|(x, b)| *x ^= b));
        }
        if rotate {
            let w = element_width_for_rotation(dtype);
            x.par_chunks_mut(w << 14)
                .for_each(|c| c.chunks_exact_mut(w).for_each(rotl1));
        }
        let split = split_planes(&x, planes);
        drop(x);
        let level = self.level;
        let compressed: Vec<(u8, Vec<u8>)> = split
            .into_par_iter()
            .map(|plane| -> Result<(u8, Vec<u8>), EncodeError> {
                let z = zstd::bulk::compress(&plane, level).map_err(EncodeError::Zstd)?;
                Ok(if z.len() < plane.len() {
                    (PLANE_ZSTD, z)
                } else {
                    (PLANE_STORED, plane)
                })
            })
            .collect::<Result<_, _>>()?;

        let body: usize = compressed.iter().map(|(_, p)| p.len() + 9).sum();
        let mut payload = Vec::with_capacity(body + 160);
        header_for(
            CodecKind::Lossless,
            &target,
            base.as_ref(),
            super::output_digest(target.dtype(), target.shape(), target.data()),
        )
        .write(&mut payload);
        payload.push(if base.is_some() { MODE_XOR } else { MODE_PLAIN });
        payload.push(if rotate { LAYOUT_ROTL1 } else { LAYOUT_BYTES });
        #[allow(clippy::cast_possible_truncation, reason = "at most 8 planes")]
        payload.push(planes as u8);
        for (method, bytes) in &compressed {
            payload.push(*method);
            payload.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            payload.extend_from_slice(bytes);
        }
        Ok(Encoded {
            report: Report {
                codec: CodecKind::Lossless,
                fallback: None,
                dense_bytes: target.data().len() as u64,
                payload_bytes: payload.len() as u64,
                rel_error: 0.0,
                rank: None,
            },
            payload,
        })
    }
}

/// Splits elements of `planes` bytes into `planes` byte planes (plane `p` holds byte `p` of
/// every element).
fn split_planes(x: &[u8], planes: usize) -> Vec<Vec<u8>> {
    if planes == 1 {
        return vec![x.to_vec()];
    }
    let n = x.len() / planes;
    (0..planes)
        .into_par_iter()
        .map(|p| {
            x.iter()
                .skip(p)
                .step_by(planes)
                .copied()
                .collect::<Vec<u8>>()
        })
        .map(|v| {
            debug_assert_eq!(v.len(), n);
            v
        })
        .collect()
}

pub(super) fn decode_body(
    r: &mut Reader<'_>,
    h: &PayloadHeader,
    numel: usize,
    bytes: usize,
    base: Option<TensorView<'_>>,
) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |reason: String| DecodeError::Corrupt {
        codec: CodecKind::Lossless,
        reason,
    };
    let mode = r.u8("lossless mode")?;
    let layout = r.u8("lossless layout")?;
    let planes = usize::from(r.u8("plane count")?);
    match (mode, h.base.is_some()) {
        (MODE_PLAIN, false) | (MODE_XOR, true) => {}
        (MODE_PLAIN | MODE_XOR, _) => {
            return Err(corrupt(format!("mode {mode} disagrees with the base flag")));
        }
        _ => return Err(corrupt(format!("unknown mode {mode}"))),
    }
    let expected_layout = if rotates(h.dtype) {
        LAYOUT_ROTL1
    } else {
        LAYOUT_BYTES
    };
    if layout != expected_layout {
        return Err(corrupt(format!("layout {layout} for {}", h.dtype)));
    }
    if planes != plane_count(h.dtype) {
        return Err(corrupt(format!("{planes} planes for {}", h.dtype)));
    }
    let plane_len = if planes == 1 { bytes } else { numel };
    let mut split = Vec::with_capacity(planes);
    for _ in 0..planes {
        let method = r.u8("plane method")?;
        let len = r.len("plane length")?;
        let src = r.bytes(len, "plane bytes")?;
        split.push((method, src));
    }
    let planes_out: Vec<Vec<u8>> = split
        .into_par_iter()
        .map(|(method, src)| match method {
            PLANE_STORED if src.len() == plane_len => Ok(src.to_vec()),
            PLANE_STORED => Err(corrupt(format!(
                "stored plane of {} bytes, expected {plane_len}",
                src.len()
            ))),
            PLANE_ZSTD => {
                let mut out = vec![0u8; plane_len];
                let mut z =
                    zstd::bulk::Decompressor::new().map_err(|e| corrupt(format!("zstd: {e}")))?;
                let n = z
                    .decompress_to_buffer(src, &mut out[..])
                    .map_err(|e| corrupt(format!("zstd plane: {e}")))?;
                if n != plane_len {
                    return Err(corrupt(format!(
                        "zstd plane of {n} bytes, expected {plane_len}"
                    )));
                }
                Ok(out)
            }
            other => Err(corrupt(format!("unknown plane method {other}"))),
        })
        .collect::<Result<_, _>>()?;

    let mut x = vec![0u8; bytes];
    if planes == 1 {
        x.copy_from_slice(&planes_out[0]);
    } else {
        x.par_chunks_mut(planes << 14)
            .enumerate()
            .for_each(|(chunk, out)| {
                let first = chunk << 14;
                for (i, e) in out.chunks_exact_mut(planes).enumerate() {
                    for (p, b) in e.iter_mut().enumerate() {
                        *b = planes_out[p][first + i];
                    }
                }
            });
    }
    if layout == LAYOUT_ROTL1 {
        let w = element_width_for_rotation(h.dtype);
        x.par_chunks_mut(w << 14)
            .for_each(|c| c.chunks_exact_mut(w).for_each(rotr1));
    }
    if let Some(b) = base {
        x.par_chunks_mut(1 << 16)
            .zip(b.data().par_chunks(1 << 16))
            .for_each(|(x, b)| x.iter_mut().zip(b).for_each(|(x, b)| *x ^= b));
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_puts_the_bf16_exponent_in_one_byte() {
        // bf16 1.0 = 0x3F80: sign 0, exponent 0x7F, mantissa 0.
        let mut e = 0x3F80u16.to_le_bytes();
        rotl1(&mut e);
        assert_eq!(e[1], 0x7F);
        rotr1(&mut e);
        assert_eq!(u16::from_le_bytes(e), 0x3F80);
        // f32 -2.0 = 0xC0000000: sign 1, exponent 0x80.
        let mut e = 0xC000_0000u32.to_le_bytes();
        rotl1(&mut e);
        assert_eq!(e[3], 0x80);
        assert_eq!(e[0] & 1, 1);
    }

    #[test]
    fn planes_split_bytes_by_position() {
        let p = split_planes(&[1, 2, 3, 4, 5, 6], 2);
        assert_eq!(p, vec![vec![1, 3, 5], vec![2, 4, 6]]);
    }
}
