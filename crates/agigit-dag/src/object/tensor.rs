//! Tensor objects: what a tensor is and where its bytes are, not the numbers.

use agigit_hash::{BlobHash, ObjectId};

use super::codec::{Reader, put_str};
use super::{BODY_VERSION, DecodeError, Kind};

/// Most dimensions a tensor object describes.
pub const MAX_NDIM: usize = 16;
/// Most encoding parameters.
pub const MAX_PARAMS: usize = 32;

/// A tensor: dtype, shape, how its payload is encoded (a codec name and integer parameters, as
/// `agigit-delta` reports them), the tensor it is a delta against, the blobs holding its payload
/// in order, and the length and digest of the materialized bytes.
///
/// The dag never does the numbers: it records what the codec said, and the one that materializes
/// the tensor checks the result against `digest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorObject {
    /// The safetensors dtype name (`BF16`, `F32`, …): 1–16 characters of `A-Z 0-9 _`.
    pub dtype: String,
    /// The shape.
    pub shape: Vec<u64>,
    /// The encoding's name (`dense`, `lossless`, `lowrank`, …): 1–32 characters of `a-z 0-9 -`.
    pub encoding: String,
    /// The encoding's parameters (`rank`, …), sorted by key; keys as for `encoding` plus `_`.
    pub params: Vec<(String, u64)>,
    /// The tensor object this one is a delta against.
    pub base: Option<ObjectId>,
    /// Bytes of the materialized tensor.
    pub byte_len: u64,
    /// Digest of the materialized tensor, as the codec defines it.
    pub digest: BlobHash,
    /// Total bytes of the encoded payload.
    pub payload_len: u64,
    /// The blobs holding the payload, in order.
    pub blobs: Vec<ObjectId>,
}

fn check_word(s: &str, max: usize, allowed: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(allowed)
}

impl TensorObject {
    /// Checks every field against the format's rules; `encode` assumes this holds.
    pub fn validate(&self) -> Result<(), String> {
        if !check_word(&self.dtype, 16, |b| {
            b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
        }) {
            return Err(format!("dtype {:?}", self.dtype));
        }
        if self.shape.len() > MAX_NDIM {
            return Err(format!(
                "{} dimensions (at most {MAX_NDIM})",
                self.shape.len()
            ));
        }
        // The element count must be a number: whoever materializes the tensor checks it against
        // the dtype's size and `byte_len` (the dag does not know dtypes).
        if self
            .shape
            .iter()
            .try_fold(1u64, |n, d| n.checked_mul(*d))
            .is_none()
        {
            return Err(format!(
                "shape {:?} has more than 2^64 elements",
                self.shape
            ));
        }
        let word = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        if !check_word(&self.encoding, 32, word) {
            return Err(format!("encoding {:?}", self.encoding));
        }
        if self.params.len() > MAX_PARAMS {
            return Err(format!(
                "{} parameters (at most {MAX_PARAMS})",
                self.params.len()
            ));
        }
        for (k, _) in &self.params {
            if !check_word(k, 32, |b| word(b) || b == b'_') {
                return Err(format!("parameter name {k:?}"));
            }
        }
        if self.params.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("parameters must be sorted by name, each once".into());
        }
        if u32::try_from(self.blobs.len()).is_err() {
            return Err("too many blobs".into());
        }
        Ok(())
    }

    /// The canonical body. Call [`validate`](Self::validate) first; an invalid object encodes to
    /// bytes that do not decode.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + 32 * self.blobs.len());
        out.push(BODY_VERSION);
        put_str(&mut out, 1, &self.dtype);
        #[allow(clippy::cast_possible_truncation, reason = "validated: at most 16")]
        out.push(self.shape.len() as u8);
        for d in &self.shape {
            out.extend_from_slice(&d.to_le_bytes());
        }
        put_str(&mut out, 1, &self.encoding);
        #[allow(clippy::cast_possible_truncation, reason = "validated: at most 32")]
        out.push(self.params.len() as u8);
        for (k, v) in &self.params {
            put_str(&mut out, 1, k);
            out.extend_from_slice(&v.to_le_bytes());
        }
        match &self.base {
            None => out.push(0),
            Some(id) => {
                out.push(1);
                out.extend_from_slice(id.as_bytes());
            }
        }
        out.extend_from_slice(&self.byte_len.to_le_bytes());
        out.extend_from_slice(self.digest.as_bytes());
        out.extend_from_slice(&self.payload_len.to_le_bytes());
        #[allow(clippy::cast_possible_truncation, reason = "validated")]
        out.extend_from_slice(&(self.blobs.len() as u32).to_le_bytes());
        for b in &self.blobs {
            out.extend_from_slice(b.as_bytes());
        }
        out
    }

    /// Decodes a canonical body.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Kind::Tensor, body)?;
        let dtype = r.str(1, "dtype")?.to_owned();
        let ndim = usize::from(r.u8("dimension count")?);
        if ndim > MAX_NDIM {
            return Err(r.invalid(format!("{ndim} dimensions")));
        }
        let shape = (0..ndim)
            .map(|_| r.u64("shape"))
            .collect::<Result<_, _>>()?;
        let encoding = r.str(1, "encoding")?.to_owned();
        let nparams = usize::from(r.u8("parameter count")?);
        let mut params = Vec::with_capacity(nparams.min(MAX_PARAMS));
        for _ in 0..nparams {
            let k = r.str(1, "parameter name")?.to_owned();
            params.push((k, r.u64("parameter value")?));
        }
        let base = if r.flag("base")? {
            Some(r.id("base id")?)
        } else {
            None
        };
        let byte_len = r.u64("byte length")?;
        let digest = BlobHash::from_bytes(*r.id("digest")?.as_bytes());
        let payload_len = r.u64("payload length")?;
        let nblobs = r.u32("blob count")? as usize;
        if nblobs > body.len() / 32 {
            return Err(DecodeError::Truncated {
                kind: Kind::Tensor,
                what: "blob ids",
            });
        }
        let blobs = (0..nblobs)
            .map(|_| r.id("blob id"))
            .collect::<Result<_, _>>()?;
        let t = TensorObject {
            dtype,
            shape,
            encoding,
            params,
            base,
            byte_len,
            digest,
            payload_len,
            blobs,
        };
        t.validate().map_err(|reason| r.invalid(reason))?;
        r.finish()?;
        Ok(t)
    }

    /// The parameter called `key`.
    pub fn param(&self, key: &str) -> Option<u64> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_whose_element_count_overflows_does_not_decode() {
        let t = TensorObject {
            dtype: "BF16".into(),
            shape: vec![1 << 32, 1 << 32],
            encoding: "dense".into(),
            params: Vec::new(),
            base: None,
            byte_len: 0,
            digest: BlobHash::digest(b""),
            payload_len: 0,
            blobs: Vec::new(),
        };
        assert!(t.validate().is_err());
        assert!(TensorObject::decode(&t.encode()).is_err());
        let fine = TensorObject {
            shape: vec![1 << 31, 1 << 32],
            ..t
        };
        assert!(TensorObject::decode(&fine.encode()).is_ok());
    }
}
