//! `Lossless`: XOR against the base in the tensor's own dtype, bytes split into planes, each plane
//! coded on its own: order-0 rANS at its entropy (zstd too when the plane is so skewed that runs
//! may beat order 0; the smaller wins), or stored when it is noise.
//!
//! Why it works: a fine-tuned weight shares its sign, exponent and top mantissa bits with the base
//! weight, so the XOR is mostly zero in the high bytes. Even without a base, the exponent byte of
//! trained weights takes few values. Rotating each element left by one bit moves the sign next to
//! the low mantissa bits, so for `BF16`, `F32` (and nearly for `F64`) one plane holds exactly the
//! exponent, which is what ZipNN exploits.

use rayon::prelude::*;

use agigit_hash::Hasher;

use super::{
    CodecKind, DecodeError, DeltaCodec, EncodeError, Encoded, PayloadHeader, Reader, check_inputs,
    rans,
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
const PLANE_RANS: u8 = 2;

/// Below this order-0 entropy (bits per byte) a plane is mostly one byte, and zstd's matches
/// may code its runs below the order-0 bound: both are tried, the smaller kept.
const TRY_ZSTD_BITS: f64 = 1.0;

/// The share of the order-0 bound a payload may spend to store noise planes as they are rather
/// than code them: low mantissa bytes are nearly random, and coding one costs as much time as
/// coding an exponent plane for a saving of a few percent of it. The planes cheapest to store
/// (closest to 8 bits per byte) are stored while the total overhead stays within this share,
/// so a payload is never more than 1% over the bound (plus the tables) on that account.
const STORE_SLACK: f64 = 0.01;

/// The element width used for planes: whole bytes, else one plane of raw bytes.
fn plane_count(dtype: DType) -> usize {
    dtype.size().unwrap_or(1)
}

/// Whether rotating by one bit puts the exponent in one byte.
fn rotates(dtype: DType) -> bool {
    matches!(dtype, DType::BF16 | DType::F32 | DType::F64 | DType::C64)
}

/// Bit 0 and the top bit of each `W`-byte word of a `P`-byte element held in a `u64`.
#[inline(always)]
fn word_ends<const P: usize, const W: usize>() -> (u64, u64) {
    (0..P / W).fold((0u64, 0u64), |(low, top), w| {
        (low | 1 << (8 * W * w), top | 1 << (8 * W * w + 8 * W - 1))
    })
}

/// Rotates each `W`-byte word of a `P`-byte element left by one bit: two shifts, two masks.
#[inline(always)]
fn rotl1<const P: usize, const W: usize>(v: u64) -> u64 {
    let (low, top) = word_ends::<P, W>();
    let width = if P == 8 { u64::MAX } else { (1 << (8 * P)) - 1 };
    ((v << 1) & width & !low) | ((v & top) >> (8 * W - 1))
}

/// The inverse of [`rotl1`].
#[inline(always)]
fn rotr1<const P: usize, const W: usize>(v: u64) -> u64 {
    let (low, top) = word_ends::<P, W>();
    ((v >> 1) & !top) | ((v & low) << (8 * W - 1))
}

/// A little-endian element of `P` ≤ 8 bytes as a `u64`.
#[inline(always)]
fn load<const P: usize>(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word[..P].copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

/// Calls `$f::<P, W, ROTATE>(first, base, last)` with the rotation flag as a constant and no
/// base as an empty one, so the element loop has no branch but its own.
macro_rules! with_flags {
    ($f:ident::<$p:ident, $w:ident>($first:expr, $rotate:expr, $base:expr, $last:expr)) => {
        match ($rotate, $base) {
            (true, Some(b)) => $f::<$p, $w, true>($first, b, $last),
            (false, Some(b)) => $f::<$p, $w, false>($first, b, $last),
            (true, None) => $f::<$p, $w, true>($first, &[], $last),
            (false, None) => $f::<$p, $w, false>($first, &[], $last),
        }
    };
}

/// Elements per parallel task in [`split`] and [`join`].
const CHUNK: usize = 1 << 14;

/// All byte planes of the transformed elements, in one pass over the input: plane `p` holds
/// byte `p` of every element. Chunks of elements are done in parallel, each writing its slice of
/// every plane.
fn split<const P: usize, const W: usize>(
    target: &[u8],
    base: Option<&[u8]>,
    rotate: bool,
) -> Vec<Vec<u8>> {
    let n = target.len() / P;
    let mut planes: Vec<Vec<u8>> = (0..P).map(|_| vec![0u8; n]).collect();
    let mut chunks: Vec<_> = planes.iter_mut().map(|p| p.chunks_mut(CHUNK)).collect();
    let tasks: Vec<(usize, [&mut [u8]; P])> = (0..n.div_ceil(CHUNK))
        .map(|c| {
            let outs: [&mut [u8]; P] =
                std::array::from_fn(|p| chunks[p].next().unwrap_or_default());
            (c, outs)
        })
        .collect();
    tasks.into_par_iter().for_each(|(c, mut outs)| {
        let first = c * CHUNK;
        let count = outs[0].len();
        let t = &target[first * P..(first + count) * P];
        let b = base.map(|b| &b[first * P..(first + count) * P]);
        with_flags!(scatter::<P, W>(t, rotate, b, &mut outs));
    });
    planes
}

/// One run of [`split`]: element `i` of `t` (XOR the base's when `base` is not empty, rotated
/// left by one bit within each `W`-byte word when `ROTATE`) goes byte by byte to `outs`.
#[inline(always)]
fn scatter<const P: usize, const W: usize, const ROTATE: bool>(
    t: &[u8],
    base: &[u8],
    outs: &mut [&mut [u8]; P],
) {
    let count = t.len() / P;
    for out in outs.iter() {
        assert_eq!(out.len(), count, "a plane per element byte");
    }
    let mut put = |i: usize, mut v: u64| {
        if ROTATE {
            v = rotl1::<P, W>(v);
        }
        for (p, out) in outs.iter_mut().enumerate() {
            #[allow(clippy::cast_possible_truncation, reason = "one byte")]
            let byte = (v >> (8 * p)) as u8;
            out[i] = byte;
        }
    };
    if base.is_empty() {
        for (i, e) in t.chunks_exact(P).enumerate() {
            put(i, load::<P>(e));
        }
    } else {
        assert_eq!(base.len(), t.len(), "a base element per element");
        for (i, (e, b)) in t.chunks_exact(P).zip(base.chunks_exact(P)).enumerate() {
            put(i, load::<P>(e) ^ load::<P>(b));
        }
    }
}

/// The inverse of [`split`]: gathers the planes into `out`, un-rotates and XORs the base back,
/// chunks of elements in parallel.
fn join<const P: usize, const W: usize>(
    planes: &[&[u8]],
    base: Option<&[u8]>,
    rotate: bool,
    out: &mut [u8],
) {
    out.par_chunks_mut(P * CHUNK)
        .enumerate()
        .for_each(|(chunk, out)| {
            let first = chunk * CHUNK;
            let count = out.len() / P;
            let mut src = [&[][..]; P];
            for (s, plane) in src.iter_mut().zip(planes) {
                *s = &plane[first..first + count];
            }
            let base = base.map(|b| &b[first * P..(first + count) * P]);
            with_flags!(gather::<P, W>(&src, rotate, base, out));
        });
}

/// One run of [`join`]: element `i` is byte `i` of each plane (plane `p` the element's byte
/// `p`), rotated right by one bit within each `W`-byte word when `ROTATE`, XOR the base's
/// element when `base` is not empty. Elements are handled as `u64`s, so the rotation is two
/// shifts and two masks whatever the width.
#[inline(always)]
fn gather<const P: usize, const W: usize, const ROTATE: bool>(
    src: &[&[u8]; P],
    base: &[u8],
    out: &mut [u8],
) {
    let count = out.len() / P;
    for s in src {
        assert_eq!(s.len(), count, "a plane per element byte");
    }
    let element = |i: usize| {
        let mut v = 0u64;
        for (p, s) in src.iter().enumerate() {
            v |= u64::from(s[i]) << (8 * p);
        }
        if ROTATE { rotr1::<P, W>(v) } else { v }
    };
    if base.is_empty() {
        for (i, dst) in out.chunks_exact_mut(P).enumerate() {
            dst.copy_from_slice(&element(i).to_le_bytes()[..P]);
        }
    } else {
        assert_eq!(base.len(), out.len(), "a base element per element");
        for (i, (dst, b)) in out
            .chunks_exact_mut(P)
            .zip(base.chunks_exact(P))
            .enumerate()
        {
            let v = element(i) ^ load::<P>(b);
            dst.copy_from_slice(&v.to_le_bytes()[..P]);
        }
    }
}

/// Dispatches on plane count and rotation word width.
macro_rules! by_width {
    ($dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match (plane_count($dtype), rotation_word($dtype)) {
            (2, _) => $f::<2, 2>($($arg),*),
            (4, _) => $f::<4, 4>($($arg),*),
            (8, 4) => $f::<8, 4>($($arg),*),
            (8, _) => $f::<8, 8>($($arg),*),
            _ => $f::<1, 1>($($arg),*),
        }
    };
}

/// The word the rotation works on: each `f32` half of a `C64`, else the element.
fn rotation_word(dtype: DType) -> usize {
    if dtype == DType::C64 {
        4
    } else {
        plane_count(dtype)
    }
}

impl Lossless {
    /// Byte planes of the transformed elements, each zstd-compressed or stored, whichever is
    /// smaller.
    fn planes(
        &self,
        target: &[u8],
        base: Option<&[u8]>,
        dtype: DType,
    ) -> Result<Vec<(u8, Vec<u8>)>, EncodeError> {
        let rotate = rotates(dtype);
        let split = by_width!(dtype, split(target, base, rotate));
        let level = self.level;
        let counts: Vec<[u64; 256]> = split.par_iter().map(|p| rans::histogram(p)).collect();
        let bits: Vec<f64> = counts.iter().map(rans::entropy_bits).collect();
        // Which planes to store: cheapest first, within the slack.
        #[allow(clippy::cast_precision_loss, reason = "an estimate")]
        let overhead = |i: usize| 8.0 * split[i].len() as f64 - bits[i];
        let mut order: Vec<usize> = (0..split.len()).collect();
        order.sort_by(|&a, &b| overhead(a).total_cmp(&overhead(b)));
        let mut slack = STORE_SLACK * bits.iter().sum::<f64>();
        let mut store = vec![false; split.len()];
        for i in order {
            if overhead(i) <= slack {
                slack -= overhead(i);
                store[i] = true;
            }
        }
        split
            .into_par_iter()
            .zip(counts)
            .zip(bits)
            .zip(store)
            .map(
                |(((plane, counts), bits), store)| -> Result<(u8, Vec<u8>), EncodeError> {
                    if store {
                        return Ok((PLANE_STORED, plane));
                    }
                    let mut best = (PLANE_RANS, rans::encode(&plane, &counts));
                    #[allow(clippy::cast_precision_loss, reason = "an estimate")]
                    if bits < TRY_ZSTD_BITS * plane.len() as f64 {
                        let z = zstd::bulk::compress(&plane, level).map_err(EncodeError::Zstd)?;
                        if z.len() < best.1.len() {
                            best = (PLANE_ZSTD, z);
                        }
                    }
                    Ok(if best.1.len() < plane.len() {
                        best
                    } else {
                        (PLANE_STORED, plane)
                    })
                },
            )
            .collect()
    }

    /// The order-0 entropy bound of `target`'s transformed byte planes (XOR `base` when given,
    /// rotated as this codec does), in bytes: what a coder of each plane on its own, with no
    /// context, cannot beat. A payload's size over this is the codec's overhead. A `base` of
    /// another length than `target` is ignored.
    pub fn order0_bound(target: &TensorView<'_>, base: Option<&TensorView<'_>>) -> f64 {
        let dtype = target.dtype();
        let base = base
            .map(TensorView::data)
            .filter(|b| b.len() == target.data().len());
        let planes = by_width!(dtype, split(target.data(), base, rotates(dtype)));
        planes
            .par_iter()
            .map(|p| rans::entropy_bits(&rans::histogram(p)) / 8.0)
            .sum()
    }

    /// Whether XOR against `base` codes `target` smaller than `target` alone, judged by the
    /// order-0 bound (which the planes' coder reaches) on up to 16 evenly spaced runs of 16 Ki
    /// elements (the whole tensor when it is smaller).
    fn base_helps(target: &TensorView<'_>, base: &TensorView<'_>) -> bool {
        const RUN: usize = 1 << 14;
        const RUNS: usize = 16;
        let dtype = target.dtype();
        let w = plane_count(dtype);
        let (t, b) = (target.data(), base.data());
        let n = t.len() / w;
        let (ts, bs): (Vec<u8>, Vec<u8>) = if n <= RUN * RUNS {
            (t.to_vec(), b.to_vec())
        } else {
            let stride = n / RUNS;
            (0..RUNS)
                .flat_map(|i| i * stride * w..(i * stride + RUN) * w)
                .map(|j| (t[j], b[j]))
                .unzip()
        };
        let bound = |base: Option<&[u8]>| -> f64 {
            by_width!(dtype, split(&ts, base, rotates(dtype)))
                .iter()
                .map(|p| rans::entropy_bits(&rans::histogram(p)))
                .sum()
        };
        bound(Some(&bs)) < bound(None)
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
        // XOR against the base helps only when the two are related; an unrelated "base" makes
        // the exponent plane noisier. Decide on a sample and drop the base when it does not help
        // (the payload then does not depend on it).
        let base = base.filter(|b| Self::base_helps(&target, b));
        // The two hashes the header records run beside the coding, not after it.
        // The two hashes the header records run beside the coding, and beside each other.
        let (compressed, (output, base_hash)) = rayon::join(
            || self.planes(target.data(), base.as_ref().map(TensorView::data), dtype),
            || {
                rayon::join(
                    || super::output_digest(target.dtype(), target.shape(), target.data()),
                    || base.as_ref().map(TensorView::hash),
                )
            },
        );
        let compressed = compressed?;
        let header = PayloadHeader {
            codec: CodecKind::Lossless,
            dtype,
            shape: target.shape().to_vec(),
            base: base_hash,
            output,
        };
        let mut head = Vec::with_capacity(160);
        header.write(&mut head);
        head.push(if base.is_some() { MODE_XOR } else { MODE_PLAIN });
        head.push(if rotate { LAYOUT_ROTL1 } else { LAYOUT_BYTES });
        #[allow(clippy::cast_possible_truncation, reason = "at most 8 planes")]
        head.push(planes as u8);
        // The planes are copied into place in parallel: most of a payload is stored planes.
        let body: usize = compressed.iter().map(|(_, p)| p.len() + 9).sum();
        let mut payload = vec![0u8; head.len() + body];
        let (first, mut rest) = payload.split_at_mut(head.len());
        first.copy_from_slice(&head);
        let mut places = Vec::with_capacity(compressed.len());
        for (method, bytes) in &compressed {
            let (place, after) = rest.split_at_mut(9 + bytes.len());
            place[0] = *method;
            place[1..9].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            places.push((&mut place[9..], bytes));
            rest = after;
        }
        places
            .into_par_iter()
            .for_each(|(place, bytes)| place.copy_from_slice(bytes));
        Ok(Encoded::exact(CodecKind::Lossless, &target, payload))
    }
}

/// A plane's bytes as the payload gives them: stored (borrowed, never copied), zstd (inflated
/// up front: rare, and not block by block) or rANS (decoded a block at a time).
enum Plane<'a> {
    Bytes(&'a [u8]),
    Inflated(Vec<u8>),
    Rans(Box<rans::Coded<'a>>),
}

/// Decodes a `Lossless` body into the tensor's bytes, feeding `digest` with them in order.
///
/// The work goes by waves of one rANS block of elements: the coded planes' blocks are decoded
/// (in parallel) into buffers that stay in cache, gathered into the output, and the previous
/// wave is hashed meanwhile on another core — so the digest, which is sequential, costs little
/// more than the decoding it runs beside.
pub(super) fn decode_body(
    r: &mut Reader<'_>,
    h: &PayloadHeader,
    numel: usize,
    bytes: usize,
    base: Option<TensorView<'_>>,
    digest: &mut Hasher,
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
    let sources: Vec<Plane<'_>> = split
        .into_par_iter()
        .map(|(method, src)| match method {
            PLANE_STORED if src.len() == plane_len => Ok(Plane::Bytes(src)),
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
                Ok(Plane::Inflated(out))
            }
            PLANE_RANS => rans::Coded::parse(src, plane_len)
                .map(|coded| Plane::Rans(Box::new(coded)))
                .map_err(|e| corrupt(format!("rANS plane: {}", e.0))),
            other => Err(corrupt(format!("unknown plane method {other}"))),
        })
        .collect::<Result<_, _>>()?;

    let rotate = layout == LAYOUT_ROTL1;
    let base = base.as_ref().map(TensorView::data);
    // One buffer a coded plane, reused by every wave.
    let mut scratch: Vec<Vec<u8>> = sources
        .iter()
        .map(|p| match p {
            Plane::Rans(_) => vec![0u8; plane_len.min(rans::BLOCK)],
            Plane::Bytes(_) | Plane::Inflated(_) => Vec::new(),
        })
        .collect();
    let mut x = vec![0u8; bytes];
    let mut hashed: Option<&[u8]> = None;
    for (wave, out) in x.chunks_mut(rans::BLOCK * planes).enumerate() {
        let first = wave * rans::BLOCK;
        let count = out.len() / planes;
        let ((), done) = rayon::join(
            || {
                if let Some(previous) = hashed {
                    digest.update(previous);
                }
            },
            || -> Result<(), DecodeError> {
                scratch.par_iter_mut().zip(&sources).try_for_each(
                    |(buf, source)| match source {
                        Plane::Rans(coded) => coded
                            .block(wave, &mut buf[..count])
                            .map_err(|e| corrupt(format!("rANS plane: {}", e.0))),
                        Plane::Bytes(_) | Plane::Inflated(_) => Ok(()),
                    },
                )?;
                let from: Vec<&[u8]> = sources
                    .iter()
                    .zip(&scratch)
                    .map(|(source, buf)| match source {
                        Plane::Bytes(b) => &b[first..first + count],
                        Plane::Inflated(b) => &b[first..first + count],
                        Plane::Rans(_) => &buf[..count],
                    })
                    .collect();
                let base = base.map(|b| &b[first * planes..(first + count) * planes]);
                by_width!(h.dtype, join(&from, base, rotate, &mut *out));
                Ok(())
            },
        );
        done?;
        hashed = Some(out);
    }
    if let Some(last) = hashed {
        digest.update(last);
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fine_tunes_of_every_float_dtype_round_trip_through_the_coded_planes() {
        // Large enough for several rANS blocks and every state range: what a fork commits.
        let n = 768;
        let base = crate::synth::gaussian(1, n * n, 0.02);
        let full = crate::synth::perturb(&base, 2, 0.01);
        let lora = crate::synth::add(&base, &crate::synth::low_rank(3, n, n, 16, 0.002));
        for dtype in [DType::BF16, DType::F16, DType::F32] {
            let b = crate::synth::tensor(dtype, &[n, n], &base);
            for target in [&full, &lora, &base] {
                let t = crate::synth::tensor(dtype, &[n, n], target);
                for with in [Some(b.view()), None] {
                    let e = Lossless::default().encode(t.view(), with).expect("encode");
                    let back = crate::decode(&e.payload, with).expect("decode");
                    assert_eq!(back.data(), t.data(), "{dtype}");
                }
            }
        }
    }

    #[test]
    fn rotation_puts_the_exponent_in_one_byte() {
        // bf16 1.0 = 0x3F80: sign 0, exponent 0x7F, mantissa 0.
        assert_eq!(rotl1::<2, 2>(0x3F80) >> 8, 0x7F);
        // f32 -2.0 = 0xC0000000: sign 1, exponent 0x80; the sign lands in bit 0.
        let e = rotl1::<4, 4>(0xC000_0000);
        assert_eq!(e >> 24, 0x80);
        assert_eq!(e & 1, 1);
        // Each f32 half of a c64 on its own: the sign of the high half does not reach the low.
        assert_eq!(rotl1::<8, 4>(0x8000_0000_0000_0001), 0x0000_0001_0000_0002);
        for v in [0u64, 1, 0x8000_0000, 0xDEAD_BEEF, u64::MAX >> 16] {
            assert_eq!(rotr1::<2, 2>(rotl1::<2, 2>(v & 0xFFFF)), v & 0xFFFF);
            assert_eq!(
                rotr1::<4, 4>(rotl1::<4, 4>(v & 0xFFFF_FFFF)),
                v & 0xFFFF_FFFF
            );
            assert_eq!(rotr1::<8, 4>(rotl1::<8, 4>(v)), v);
            assert_eq!(rotr1::<8, 8>(rotl1::<8, 8>(v)), v);
        }
    }

    #[test]
    fn split_and_join_are_inverse() {
        let t: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
        let b: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(11)).collect();
        for rotate in [false, true] {
            for base in [None, Some(b.as_slice())] {
                let planes = split::<8, 4>(&t, base, rotate);
                assert_eq!(planes.len(), 8);
                assert_eq!(planes[0].len(), 8);
                let mut out = vec![0; 64];
                let planes: Vec<&[u8]> = planes.iter().map(Vec::as_slice).collect();
                join::<8, 4>(&planes, base, rotate, &mut out);
                assert_eq!(out, t);
            }
        }
        let planes = split::<2, 2>(&[1, 2, 3, 4, 5, 6], None, false);
        assert_eq!(planes, vec![vec![1, 3, 5], vec![2, 4, 6]]);
    }
}
