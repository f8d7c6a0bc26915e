//! The `DeltaCodec` trait, the self-describing payload every codec writes, and decoding.
//!
//! A payload (`docs/format.md` §7) records everything needed to decode it: the codec, the
//! dtype and shape, the SHA-256 of the base it was computed against (if any), and the SHA-256 of
//! the bytes decoding must give. [`decode`] needs no codec object; it checks the base it is handed
//! and the bytes it produces against those hashes.

use std::fmt;

use agigit_hash::{BlobHash, Hasher};

use crate::tensor::{LayoutError, numel};
use crate::{DType, Tensor, TensorView};

mod dense;
mod lossless;
mod lossy;
pub(crate) mod lowrank;
mod rans;
mod signscale;

pub use dense::Dense;
pub use lossless::Lossless;
#[cfg(feature = "lowrank")]
pub use lowrank::LowRank;
pub use lowrank::{Band, FactorStorage, RankPolicy};
pub use signscale::SignScale;

/// The payload magic.
pub const PAYLOAD_MAGIC: [u8; 4] = *b"AGDT";
/// The payload format version this crate writes and reads.
pub const PAYLOAD_VERSION: u8 = 1;
/// The most dimensions a payload may describe.
pub const MAX_NDIM: usize = 16;

/// Which codec wrote a payload; its byte is part of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CodecKind {
    /// The bytes as they are.
    Dense,
    /// Exact: XOR against the base, byte planes, zstd.
    Lossless,
    /// Lossy: truncated SVD of the delta.
    LowRank,
    /// Lossy: one sign bit per value and one scale.
    SignScale,
}

impl CodecKind {
    const fn code(self) -> u8 {
        match self {
            CodecKind::Dense => 0,
            CodecKind::Lossless => 1,
            CodecKind::LowRank => 2,
            CodecKind::SignScale => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => CodecKind::Dense,
            1 => CodecKind::Lossless,
            2 => CodecKind::LowRank,
            3 => CodecKind::SignScale,
            _ => return None,
        })
    }

    /// The codec's name as the tensor object records it: `dense`, `lossless`, `lowrank`,
    /// `signscale`.
    pub const fn name(self) -> &'static str {
        match self {
            CodecKind::Dense => "dense",
            CodecKind::Lossless => "lossless",
            CodecKind::LowRank => "lowrank",
            CodecKind::SignScale => "signscale",
        }
    }

    /// Whether decoding gives back the input bit for bit.
    pub const fn is_exact(self) -> bool {
        matches!(self, CodecKind::Dense | CodecKind::Lossless)
    }
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a lossy codec stored a tensor losslessly instead.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Fallback {
    /// Scalars and 1-D tensors (biases, norms) are never stored lossily.
    NotAMatrix,
    /// Only `F16`, `BF16`, `F32` and `F64` tensors are stored lossily.
    NotArithmetic(DType),
    /// The delta holds NaN or an infinity.
    NonFinite,
    /// The lossy encoding would take at least as many bytes as the dense tensor.
    NotSmaller {
        /// Bytes the lossy payload would take (or at least take).
        lossy_bytes: u64,
        /// Bytes of the dense tensor.
        dense_bytes: u64,
    },
    /// The exact (`Lossless`) encoding is no larger than the lossy one: exact wins.
    LosslessSmaller {
        /// Bytes the lossy payload took.
        lossy_bytes: u64,
        /// Bytes the lossless payload takes.
        lossless_bytes: u64,
    },
    /// No rank the sketch could reach meets the requested error bound.
    BoundNotMet {
        /// The requested relative error.
        bound: f64,
        /// The best relative error reached.
        best: f64,
    },
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fallback::NotAMatrix => f.write_str("scalars and 1-D tensors are stored exactly"),
            Fallback::NotArithmetic(d) => write!(f, "{d} tensors are stored exactly"),
            Fallback::NonFinite => f.write_str("the delta holds NaN or infinity"),
            Fallback::NotSmaller {
                lossy_bytes,
                dense_bytes,
            } => write!(
                f,
                "low rank would take {lossy_bytes} bytes, the dense tensor {dense_bytes}"
            ),
            Fallback::LosslessSmaller {
                lossy_bytes,
                lossless_bytes,
            } => write!(
                f,
                "the exact encoding takes {lossless_bytes} bytes, the lossy one {lossy_bytes}"
            ),
            Fallback::BoundNotMet { bound, best } => {
                write!(f, "relative error bound {bound:e} not met (best {best:e})")
            }
        }
    }
}

/// What an encoding did.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The codec that wrote the payload (differs from the one asked for after a fallback).
    pub codec: CodecKind,
    /// Why the requested codec was not used, if it was not.
    pub fallback: Option<Fallback>,
    /// Bytes of the dense target tensor.
    pub dense_bytes: u64,
    /// Bytes of the payload.
    pub payload_bytes: u64,
    /// ‖decoded − target‖_F / ‖target − base‖_F, measured on what decoding gives (0 when exact;
    /// the denominator is ‖target‖_F without a base).
    pub rel_error: f64,
    /// The rank kept, for `LowRank`.
    pub rank: Option<usize>,
}

impl Report {
    /// `dense_bytes / payload_bytes`.
    pub fn ratio(&self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "a ratio for people")]
        let r = self.dense_bytes as f64 / self.payload_bytes.max(1) as f64;
        r
    }
}

/// A payload and what its encoding did.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// The self-describing payload; [`decode`] reads it.
    pub payload: Vec<u8>,
    /// What the encoding did.
    pub report: Report,
}

impl Encoded {
    /// The result of an exact codec: no fallback, no error, no rank.
    pub(crate) fn exact(codec: CodecKind, target: &TensorView<'_>, payload: Vec<u8>) -> Self {
        Encoded {
            report: Report {
                codec,
                fallback: None,
                dense_bytes: target.data().len() as u64,
                payload_bytes: payload.len() as u64,
                rel_error: 0.0,
                rank: None,
            },
            payload,
        }
    }
}

/// Encoding a tensor failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The base has another shape than the target.
    #[error("base has shape {base:?}, target {target:?}")]
    ShapeMismatch {
        /// The target's shape.
        target: Vec<usize>,
        /// The base's shape.
        base: Vec<usize>,
    },
    /// The base has another dtype than the target.
    #[error("base is {base}, target {target}")]
    DTypeMismatch {
        /// The target's dtype.
        target: DType,
        /// The base's dtype.
        base: DType,
    },
    /// The tensor has more dimensions than a payload can describe.
    #[error("{ndim} dimensions; payloads describe at most {MAX_NDIM}")]
    TooManyDims {
        /// The tensor's dimension count.
        ndim: usize,
    },
    /// A codec parameter is out of range.
    #[error("invalid codec parameter: {0}")]
    Parameter(String),
    /// The compressor failed.
    #[error("zstd: {0}")]
    Zstd(std::io::Error),
    /// A candle operation failed (device out of memory, CUDA error, …).
    #[cfg(feature = "lowrank")]
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// The randomized SVD failed (a candle error on the device, or no convergence).
    #[cfg(feature = "lowrank")]
    #[error("randomized SVD: {0}")]
    Rsvd(#[from] crate::rsvd::RsvdError),
}

/// Decoding a payload failed. Every variant means the payload is not what the writer produced,
/// or the base is not the one it was computed against.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload ends early.
    #[error("payload truncated while reading {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
    },
    /// Not a delta payload.
    #[error("not a delta payload (magic {found:02x?}, expected \"AGDT\")")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A format version this crate does not read.
    #[error("payload version {0}; this build reads version {PAYLOAD_VERSION}")]
    Version(u8),
    /// An unknown codec byte.
    #[error("unknown codec {0}")]
    UnknownCodec(u8),
    /// An unknown dtype byte.
    #[error("unknown dtype code {0}")]
    UnknownDType(u8),
    /// Dtype and shape do not describe whole bytes, or there are too many dimensions.
    #[error("invalid tensor layout: {0}")]
    Layout(#[from] LayoutError),
    /// More dimensions than payloads allow.
    #[error("{0} dimensions; payloads describe at most {MAX_NDIM}")]
    TooManyDims(u8),
    /// Decoding would produce more bytes than the caller allows.
    #[error("decoded tensor would take {bytes} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Bytes the payload describes.
        bytes: u128,
        /// The limit in force.
        limit: usize,
    },
    /// The payload is a delta and no base was given.
    #[error("payload is a delta against base {expected}; no base was given")]
    BaseRequired {
        /// Hash of the base the payload needs.
        expected: BlobHash,
    },
    /// The base given is not the one the payload was computed against.
    #[error("payload needs base {expected}, was given {actual}")]
    BaseMismatch {
        /// Hash of the base the payload needs.
        expected: BlobHash,
        /// Hash of the base given.
        actual: BlobHash,
    },
    /// The base's dtype or shape differs from the payload's.
    #[error("base layout differs from the payload's ({0})")]
    BaseLayout(String),
    /// The codec's body is malformed.
    #[error("corrupt {codec} payload: {reason}")]
    Corrupt {
        /// The codec.
        codec: CodecKind,
        /// What is wrong.
        reason: String,
    },
    /// The decoded bytes do not hash to what the payload records.
    #[error("decoded tensor hashes to {actual}, payload records {expected}")]
    OutputMismatch {
        /// The recorded hash.
        expected: BlobHash,
        /// The hash of what decoding gave.
        actual: BlobHash,
    },
    /// Bytes follow the codec body.
    #[error("{0} bytes after the end of the payload")]
    TrailingBytes(usize),
}

/// Limits on what decoding may allocate, for payloads from untrusted sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest decoded tensor, in bytes.
    pub max_tensor_bytes: usize,
}

impl Default for DecodeLimits {
    /// 64 GiB on 64-bit targets (larger than any single tensor of today's open models).
    fn default() -> Self {
        DecodeLimits {
            max_tensor_bytes: usize::try_from(1u64 << 36).unwrap_or(usize::MAX),
        }
    }
}

/// A delta codec: encodes a target tensor, optionally against a base of the same dtype and
/// shape, into a self-describing payload.
///
/// Implementations are small value types holding their parameters. Decoding does not depend on
/// the codec value: [`decode`] reads any payload, and [`DeltaCodec::decode`] is provided as a
/// convenience.
pub trait DeltaCodec {
    /// The codec this value encodes with (before any fallback).
    fn kind(&self) -> CodecKind;

    /// Encodes `target`, as a delta against `base` when one is given.
    fn encode(
        &self,
        target: TensorView<'_>,
        base: Option<TensorView<'_>>,
    ) -> Result<Encoded, EncodeError>;

    /// Decodes a payload (written by any codec) with default limits.
    fn decode(&self, payload: &[u8], base: Option<TensorView<'_>>) -> Result<Tensor, DecodeError> {
        decode(payload, base)
    }
}

macro_rules! forward_codec {
    ($($ptr:ty),*) => {$(
        impl<C: DeltaCodec + ?Sized> DeltaCodec for $ptr {
            fn kind(&self) -> CodecKind {
                (**self).kind()
            }
            fn encode(
                &self,
                target: TensorView<'_>,
                base: Option<TensorView<'_>>,
            ) -> Result<Encoded, EncodeError> {
                (**self).encode(target, base)
            }
        }
    )*};
}
forward_codec!(&C, Box<C>, std::sync::Arc<C>);

/// Decodes any payload with [`DecodeLimits::default`].
pub fn decode(payload: &[u8], base: Option<TensorView<'_>>) -> Result<Tensor, DecodeError> {
    decode_with_limits(payload, base, DecodeLimits::default())
}

/// Reads only a payload's header: codec, dtype, shape, base hash, output hash.
pub fn inspect(payload: &[u8]) -> Result<PayloadHeader, DecodeError> {
    Reader::new(payload).header()
}

/// Decodes any payload, refusing to produce a tensor larger than `limits` allows.
///
/// Checks that the result hashes to the value the payload records — so a decoded tensor is
/// always exactly what the encoder produced, whichever base it was given — and, when decoding
/// fails, whether `base` is the tensor the payload was computed against (by hash), to say so:
/// [`DecodeError::BaseMismatch`].
pub fn decode_with_limits(
    payload: &[u8],
    base: Option<TensorView<'_>>,
    limits: DecodeLimits,
) -> Result<Tensor, DecodeError> {
    let mut r = Reader::new(payload);
    let h = r.header()?;
    let n = numel(&h.shape).ok_or_else(|| LayoutError::BadShape {
        dtype: h.dtype,
        shape: h.shape.clone(),
    })?;
    let bytes = h.dtype.byte_len(n).ok_or_else(|| LayoutError::BadShape {
        dtype: h.dtype,
        shape: h.shape.clone(),
    })?;
    if bytes > limits.max_tensor_bytes {
        return Err(DecodeError::TooLarge {
            bytes: bytes as u128,
            limit: limits.max_tensor_bytes,
        });
    }
    let base = match (h.base, base) {
        (None, _) => None,
        (Some(expected), None) => return Err(DecodeError::BaseRequired { expected }),
        (Some(expected), Some(b)) => {
            if b.dtype() != h.dtype || b.shape() != h.shape.as_slice() {
                return Err(DecodeError::BaseLayout(format!(
                    "payload {} {:?}, base {} {:?}",
                    h.dtype,
                    h.shape,
                    b.dtype(),
                    b.shape()
                )));
            }
            Some((b, expected))
        }
    };
    // The output's digest is what binds the result to the encoder's: a wrong base decodes to
    // other bytes, so it is caught there too. The base's own hash is computed only when
    // something failed, to say which of the two was wrong — a whole pass over the base saved
    // on every good decode.
    let decoded = decode_checked(&mut r, &h, n, bytes, base.map(|(b, _)| b));
    if decoded.is_err()
        && let Some((b, expected)) = base
    {
        let actual = b.hash();
        if actual != expected {
            return Err(DecodeError::BaseMismatch { expected, actual });
        }
    }
    decoded
}

/// Decodes the body after the header and checks the result against the digest the header
/// records.
fn decode_checked(
    r: &mut Reader<'_>,
    h: &PayloadHeader,
    numel: usize,
    bytes: usize,
    base: Option<TensorView<'_>>,
) -> Result<Tensor, DecodeError> {
    let mut digest = output_hasher(h.dtype, &h.shape);
    let hashed = |data: Vec<u8>, digest: &mut Hasher| {
        digest.update(&data);
        data
    };
    let data = match h.codec {
        // `Lossless` feeds the digest as it goes, beside its own work.
        CodecKind::Lossless => lossless::decode_body(r, h, numel, bytes, base, &mut digest)?,
        CodecKind::Dense => hashed(dense::decode_body(r, bytes)?, &mut digest),
        CodecKind::LowRank => hashed(lowrank::decode_body(r, h, base)?, &mut digest),
        CodecKind::SignScale => hashed(signscale::decode_body(r, h, base)?, &mut digest),
    };
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes(r.remaining()));
    }
    let actual = BlobHash::from_hasher(digest);
    if actual != h.output {
        return Err(DecodeError::OutputMismatch {
            expected: h.output,
            actual,
        });
    }
    Ok(Tensor::new(h.dtype, h.shape.clone(), data)?)
}

/// A payload's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadHeader {
    /// The codec that wrote it.
    pub codec: CodecKind,
    /// The decoded tensor's dtype.
    pub dtype: DType,
    /// The decoded tensor's shape.
    pub shape: Vec<usize>,
    /// SHA-256 of the base's bytes, for a delta.
    pub base: Option<BlobHash>,
    /// [`output_digest`] of the decoded tensor: its dtype, shape and bytes.
    pub output: BlobHash,
}

/// What a payload records of the tensor decoding must give, binding dtype and shape to the bytes:
/// SHA-256 of `"agigit-delta-output\0"`, the dtype code, the dimension count (one byte), each
/// dimension (`u64` LE), then the bytes.
pub fn output_digest(dtype: DType, shape: &[usize], data: &[u8]) -> BlobHash {
    let mut h = output_hasher(dtype, shape);
    h.update(data);
    BlobHash::from_hasher(h)
}

/// A hasher that has taken [`output_digest`]'s prefix: the bytes come next.
fn output_hasher(dtype: DType, shape: &[usize]) -> Hasher {
    let mut h = Hasher::new();
    h.update(b"agigit-delta-output\0");
    #[allow(
        clippy::cast_possible_truncation,
        reason = "at most MAX_NDIM dimensions"
    )]
    h.update(&[dtype.code(), shape.len() as u8]);
    for &d in shape {
        h.update(&(d as u64).to_le_bytes());
    }
    h
}

impl PayloadHeader {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&PAYLOAD_MAGIC);
        out.push(PAYLOAD_VERSION);
        out.push(self.codec.code());
        out.push(self.dtype.code());
        #[allow(
            clippy::cast_possible_truncation,
            reason = "checked ≤ MAX_NDIM by callers"
        )]
        out.push(self.shape.len() as u8);
        for &d in &self.shape {
            out.extend_from_slice(&(d as u64).to_le_bytes());
        }
        match self.base {
            None => out.push(0),
            Some(b) => {
                out.push(1);
                out.extend_from_slice(b.as_bytes());
            }
        }
        out.extend_from_slice(self.output.as_bytes());
    }
}

/// Checks what every encoder checks: base layout and dimension count.
pub(crate) fn check_inputs(
    target: &TensorView<'_>,
    base: Option<&TensorView<'_>>,
) -> Result<(), EncodeError> {
    if target.shape().len() > MAX_NDIM {
        return Err(EncodeError::TooManyDims {
            ndim: target.shape().len(),
        });
    }
    if let Some(b) = base {
        if b.dtype() != target.dtype() {
            return Err(EncodeError::DTypeMismatch {
                target: target.dtype(),
                base: b.dtype(),
            });
        }
        if b.shape() != target.shape() {
            return Err(EncodeError::ShapeMismatch {
                target: target.shape().to_vec(),
                base: b.shape().to_vec(),
            });
        }
    }
    Ok(())
}

/// The header for encoding `target` against `base`, decoding to bytes with digest `output`.
pub(crate) fn header_for(
    codec: CodecKind,
    target: &TensorView<'_>,
    base: Option<&TensorView<'_>>,
    output: BlobHash,
) -> PayloadHeader {
    PayloadHeader {
        codec,
        dtype: target.dtype(),
        shape: target.shape().to_vec(),
        base: base.map(TensorView::hash),
        output,
    }
}

/// A bounds-checked little-endian reader over a payload.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(DecodeError::Truncated { what })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.bytes(N, what)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn f32(&mut self, what: &'static str) -> Result<f32, DecodeError> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// A `u64` that must fit in `usize`.
    pub(crate) fn len(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let v = u64::from_le_bytes(self.array(what)?);
        usize::try_from(v).map_err(|_| DecodeError::TooLarge {
            bytes: u128::from(v),
            limit: usize::MAX,
        })
    }

    fn header(&mut self) -> Result<PayloadHeader, DecodeError> {
        let magic = self.array::<4>("magic")?;
        if magic != PAYLOAD_MAGIC {
            return Err(DecodeError::BadMagic { found: magic });
        }
        let version = self.u8("version")?;
        if version != PAYLOAD_VERSION {
            return Err(DecodeError::Version(version));
        }
        let c = self.u8("codec")?;
        let codec = CodecKind::from_code(c).ok_or(DecodeError::UnknownCodec(c))?;
        let d = self.u8("dtype")?;
        let dtype = DType::from_code(d).ok_or(DecodeError::UnknownDType(d))?;
        let ndim = self.u8("dimension count")?;
        if usize::from(ndim) > MAX_NDIM {
            return Err(DecodeError::TooManyDims(ndim));
        }
        let shape = (0..ndim)
            .map(|_| self.len("shape"))
            .collect::<Result<Vec<_>, _>>()?;
        let base = match self.u8("base flag")? {
            0 => None,
            1 => Some(BlobHash::from_bytes(self.array("base hash")?)),
            other => {
                return Err(DecodeError::Corrupt {
                    codec,
                    reason: format!("base flag {other}, expected 0 or 1"),
                });
            }
        };
        let output = BlobHash::from_bytes(self.array("output hash")?);
        Ok(PayloadHeader {
            codec,
            dtype,
            shape,
            base,
            output,
        })
    }
}

/// ‖decoded − target‖_F / ‖target − base‖_F over the arithmetic dtypes (0 when both are zero).
pub(crate) fn relative_error(
    decoded: &TensorView<'_>,
    target: &TensorView<'_>,
    base: Option<&TensorView<'_>>,
) -> f64 {
    let (Some(d), Some(t)) = (decoded.to_f64(), target.to_f64()) else {
        return if decoded.data() == target.data() {
            0.0
        } else {
            f64::NAN
        };
    };
    let b = base.and_then(TensorView::to_f64);
    let mut err = 0.0f64;
    let mut norm = 0.0f64;
    for (i, (&d, &t)) in d.iter().zip(&t).enumerate() {
        let delta = t - b.as_ref().map_or(0.0, |b| b[i]);
        err += (d - t) * (d - t);
        norm += delta * delta;
    }
    if err == 0.0 { 0.0 } else { (err / norm).sqrt() }
}
