//! Materializing a tensor from its objects, which may have come from anyone (DESIGN §7,
//! invariant 8): every number an object or payload states is checked against what is already
//! known before anything is allocated for it.
//!
//! - The object's `byte_len` must be its shape's element count times its dtype's size, and at
//!   most [`TensorLimits::max_tensor_bytes`].
//! - Its blobs must be distinct (a blob listed many times would let a few bytes on the wire stand
//!   for any number in memory) and add up to `payload_len`, read from the stored headers before a
//!   byte is loaded; a dense payload is exactly `byte_len`, a delta's at most that. So a tensor
//!   never takes more memory than the bytes that were actually received for it and its bases.
//! - A delta's base must have the same dtype and shape; the chain of bases is walked without
//!   recursion, at most [`TensorLimits::max_delta_chain`] deep.
//! - A delta payload's header must describe the object's dtype and shape, and it decodes with its
//!   limit set to the object's own `byte_len` (zstd planes decompress into buffers of the known
//!   size and fail past them).
//! - The result must hash to the digest the object records.

use agigit_dag::{FindExt, Kind, ObjectId, TensorObject};
use agigit_delta::codec::{DecodeLimits, output_digest};
use agigit_delta::{DType, Tensor};
use agigit_hash::BlobHash;

use crate::display::Escaped;
use crate::error::Error;
use crate::repository::Repository;

/// Limits on materializing a tensor (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorLimits {
    /// The largest tensor materialized, in bytes.
    pub max_tensor_bytes: u64,
    /// The most deltas between a tensor and the dense tensor at the root of its bases.
    pub max_delta_chain: usize,
}

impl Default for TensorLimits {
    /// 16 GiB (four times the largest tensor of today's open models: Llama 3.1 405B's 4.2 GB
    /// embedding), and 64 deltas (a fork of a fork of a fork… adds one each).
    fn default() -> Self {
        TensorLimits {
            max_tensor_bytes: 16 << 30,
            max_delta_chain: 64,
        }
    }
}

/// A tensor object whose numbers were checked.
struct Checked {
    object: TensorObject,
    dtype: DType,
    shape: Vec<usize>,
    byte_len: usize,
    payload_len: usize,
}

const DIGEST_MISMATCH: &str = "the bytes do not match the digest its object records";

fn corrupt(name: &str, what: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("tensor {}: {what}", Escaped(name)))
}

impl Repository {
    /// Checks `object`'s numbers against each other, the limits and the stored blobs' sizes.
    fn check_tensor(&self, name: &str, object: TensorObject) -> Result<Checked, Error> {
        let dtype: DType = object
            .dtype
            .parse()
            .map_err(|_| corrupt(name, format!("unknown dtype {}", object.dtype)))?;
        let shape = object
            .shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<usize>, _>>()
            .map_err(|_| corrupt(name, "a dimension larger than this machine's address space"))?;
        let expected = agigit_delta::numel(&shape)
            .and_then(|n| dtype.byte_len(n))
            .ok_or_else(|| corrupt(name, format!("shape {shape:?} overflows")))?;
        if expected as u64 != object.byte_len {
            return Err(corrupt(
                name,
                format!(
                    "{} {shape:?} takes {expected} bytes, its object says {}",
                    object.dtype, object.byte_len
                ),
            ));
        }
        let limit = self.tensor_limits().max_tensor_bytes;
        if object.byte_len > limit {
            return Err(Error::Limit {
                what: format!("tensor {} ({} {shape:?})", Escaped(name), object.dtype),
                size: object.byte_len,
                limit,
            });
        }
        let dense = object.encoding == "dense";
        if dense && (object.payload_len != object.byte_len || object.base.is_some()) {
            return Err(corrupt(
                name,
                "a dense tensor's payload must be its bytes, with no base",
            ));
        }
        if !dense && (object.payload_len > object.byte_len || object.base.is_none()) {
            return Err(corrupt(
                name,
                format!(
                    "a {} delta must have a base and a payload no larger than the tensor",
                    Escaped(&object.encoding)
                ),
            ));
        }
        // A blob listed twice would let a few bytes on the wire stand for any number in memory
        // (writers never list one twice).
        let mut distinct = std::collections::HashSet::with_capacity(object.blobs.len());
        if let Some(blob) = object.blobs.iter().find(|b| !distinct.insert(**b)) {
            return Err(corrupt(name, format!("it lists blob {blob} twice")));
        }
        // The blobs' sizes from their stored headers, before any is read.
        let mut total = 0u64;
        for blob in &object.blobs {
            let size = match self.store().header_of(blob)? {
                Some((Kind::Blob, size)) => size,
                Some((kind, _)) => {
                    return Err(corrupt(
                        name,
                        format!("object {blob} is a {kind}, not a blob"),
                    ));
                }
                None => return Err(agigit_dag::FindError::NotFound { id: *blob }.into()),
            };
            total = total
                .checked_add(size)
                .filter(|&t| t <= object.payload_len)
                .ok_or_else(|| {
                    corrupt(
                        name,
                        format!(
                            "its blobs hold more than its {} payload bytes",
                            object.payload_len
                        ),
                    )
                })?;
        }
        if total != object.payload_len {
            return Err(corrupt(
                name,
                format!(
                    "its blobs hold {total} bytes, its payload is {}",
                    object.payload_len
                ),
            ));
        }
        let payload_len = usize::try_from(object.payload_len)
            .map_err(|_| corrupt(name, "a payload larger than this machine's address space"))?;
        Ok(Checked {
            dtype,
            shape,
            byte_len: expected,
            payload_len,
            object,
        })
    }

    /// The bytes of `checked`'s blobs, in order (their total was checked).
    fn payload(&self, checked: &Checked) -> Result<Vec<u8>, Error> {
        let mut payload = Vec::with_capacity(checked.payload_len);
        let mut buf = Vec::new();
        for blob in &checked.object.blobs {
            // Not hashed against the blob's id: every caller checks the payload against the
            // digest the (verified) tensor object records — a dense tensor's bytes directly, a
            // delta's through the digest its decoding checks — which binds these bytes just as
            // well, and a second hash over every byte of a model was a third of a checkout.
            let bytes = match self.store().try_find_unverified(blob, &mut buf)? {
                Some(o) if o.kind == Kind::Blob => o.data,
                Some(o) => {
                    return Err(Error::Corrupt(format!(
                        "tensor payload {blob} is a {}, not a blob",
                        o.kind
                    )));
                }
                None => {
                    return Err(agigit_dag::FindError::NotFound { id: *blob }.into());
                }
            };
            if payload.len() + bytes.len() > checked.payload_len {
                // The store's header said otherwise: it changed under us, or lies.
                return Err(Error::Corrupt(format!(
                    "blob {blob} is larger than its header"
                )));
            }
            payload.extend_from_slice(bytes);
        }
        Ok(payload)
    }

    /// Tensor `id`'s bytes for a writer that checks them beside writing them: a dense
    /// tensor's bytes read but not yet hashed ([`Loaded::verify`] does that), any other
    /// materialized and checked as [`tensor`](Self::tensor) does. `name` is only for messages.
    ///
    /// # Errors
    /// As [`tensor`](Self::tensor), but a dense tensor's digest is [`Loaded::verify`]'s to check.
    pub(crate) fn load_tensor(&self, name: &str, id: &ObjectId) -> Result<Loaded, Error> {
        let checked = self.check_tensor(name, self.store().find_tensor(id)?)?;
        if checked.object.base.is_some() {
            return Ok(Loaded::Checked(
                self.materialize(name, checked)?.into_parts().2,
            ));
        }
        let data = self.payload(&checked)?;
        Ok(Loaded::Unchecked {
            name: name.to_owned(),
            dtype: checked.dtype,
            shape: checked.shape,
            byte_len: checked.byte_len,
            digest: checked.object.digest,
            data,
        })
    }

    /// A tensor, materialized (a delta decoded against its base, and that against its own, down
    /// to a dense tensor) and checked against the digest its object records. `name` is only for
    /// messages.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for objects whose numbers disagree or bytes that do not match;
    /// [`Error::Limit`] past [`TensorLimits`]; store errors for a missing object or base.
    pub fn tensor(&self, name: &str, id: &ObjectId) -> Result<Tensor, Error> {
        let top = self.check_tensor(name, self.store().find_tensor(id)?)?;
        self.materialize(name, top)
    }

    /// The tensor whose object is `top` (checked), materialized as [`tensor`](Self::tensor)
    /// says.
    fn materialize(&self, name: &str, top: Checked) -> Result<Tensor, Error> {
        let max_chain = self.tensor_limits().max_delta_chain;
        // The chain of bases, from `top` down to a dense tensor, each checked before any bytes.
        let mut next = top.object.base;
        let mut chain: Vec<Checked> = vec![top];
        while let Some(at) = next {
            if chain.len() > max_chain {
                return Err(Error::Limit {
                    what: format!("tensor {}: deltas on deltas", Escaped(name)),
                    size: chain.len() as u64,
                    limit: max_chain as u64,
                });
            }
            let checked = self.check_tensor(name, self.store().find_tensor(&at)?)?;
            if let Some(above) = chain.last()
                && (above.dtype != checked.dtype || above.shape != checked.shape)
            {
                return Err(corrupt(
                    name,
                    format!(
                        "a delta of {} {:?} on a base of {} {:?}",
                        above.dtype, above.shape, checked.dtype, checked.shape
                    ),
                ));
            }
            next = checked.object.base;
            chain.push(checked);
        }
        let mut tensor: Option<Tensor> = None;
        while let Some(checked) = chain.pop() {
            let payload = self.payload(&checked)?;
            let decoded = match tensor.take() {
                None => {
                    // The dense tensor at the bottom of a chain is checked only when it is
                    // the tensor asked for: under a delta, the delta's decoding checks its own
                    // output, which is then exactly what its writer produced whatever these
                    // bytes are (and a lossless decode that fails names a wrong base).
                    if chain.is_empty()
                        && output_digest(checked.dtype, &checked.shape, &payload)
                            != checked.object.digest
                    {
                        return Err(corrupt(name, DIGEST_MISMATCH));
                    }
                    Tensor::new(checked.dtype, checked.shape.clone(), payload).map_err(
                        Error::corrupt_data(format_args!("tensor {}", Escaped(name))),
                    )?
                }
                Some(base) => {
                    let header = agigit_delta::codec::inspect(&payload).map_err(
                        Error::corrupt_data(format_args!("tensor {}", Escaped(name))),
                    )?;
                    if header.dtype != checked.dtype
                        || header.shape != checked.shape
                        || header.codec.name() != checked.object.encoding
                    {
                        return Err(corrupt(
                            name,
                            format!(
                                "its payload describes a {} {} {:?}, its object a {} {} {:?}",
                                header.codec.name(),
                                header.dtype,
                                header.shape,
                                Escaped(&checked.object.encoding),
                                checked.dtype,
                                checked.shape
                            ),
                        ));
                    }
                    // Decoding checks its result against the payload's digest, so the object's
                    // must be that one: then the tensor is not hashed a second time.
                    if header.output != checked.object.digest {
                        return Err(corrupt(name, DIGEST_MISMATCH));
                    }
                    let limits = DecodeLimits {
                        max_tensor_bytes: checked.byte_len,
                    };
                    agigit_delta::codec::decode_with_limits(&payload, Some(base.view()), limits)
                        .map_err(Error::corrupt_data(format_args!(
                            "tensor {}",
                            Escaped(name)
                        )))?
                }
            };
            tensor = Some(decoded);
        }
        tensor.ok_or_else(|| corrupt(name, "no tensor"))
    }
}

/// A tensor's bytes as [`Repository::load_tensor`] read them.
pub(crate) enum Loaded {
    /// Checked against its object's digest.
    Checked(Vec<u8>),
    /// A dense tensor's bytes, still to be checked against `digest`.
    Unchecked {
        name: String,
        dtype: DType,
        shape: Vec<usize>,
        /// What its shape and dtype take (checked against the object).
        byte_len: usize,
        digest: BlobHash,
        data: Vec<u8>,
    },
}

impl Loaded {
    /// The bytes (checked or not yet).
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Loaded::Checked(data) | Loaded::Unchecked { data, .. } => data,
        }
    }

    /// Checks the bytes against the digest their object records (at once for checked ones).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when they do not match.
    pub(crate) fn verify(&self) -> Result<(), Error> {
        match self {
            Loaded::Checked(_) => Ok(()),
            Loaded::Unchecked {
                name,
                dtype,
                shape,
                byte_len,
                digest,
                data,
            } => {
                // The length first: a blob shorter than its header said reads short.
                if data.len() != *byte_len || output_digest(*dtype, shape, data) != *digest {
                    return Err(corrupt(name, DIGEST_MISMATCH));
                }
                Ok(())
            }
        }
    }
}
