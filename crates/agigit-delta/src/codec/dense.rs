//! `Dense`: the tensor's bytes as they are.

use super::{
    CodecKind, DecodeError, DeltaCodec, EncodeError, Encoded, Reader, check_inputs, header_for,
    output_digest,
};
use crate::TensorView;

/// Stores the tensor as it is; the base, if given, is ignored (and not recorded).
///
/// For tensors with no useful base, or where nothing else would be smaller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dense;

impl DeltaCodec for Dense {
    fn kind(&self) -> CodecKind {
        CodecKind::Dense
    }

    fn encode(
        &self,
        target: TensorView<'_>,
        base: Option<TensorView<'_>>,
    ) -> Result<Encoded, EncodeError> {
        check_inputs(&target, base.as_ref())?;
        Ok(encode_dense(&target))
    }
}

pub(crate) fn encode_dense(target: &TensorView<'_>) -> Encoded {
    let mut payload = Vec::with_capacity(target.data().len() + 128);
    header_for(
        CodecKind::Dense,
        target,
        None,
        output_digest(target.dtype(), target.shape(), target.data()),
    )
    .write(&mut payload);
    payload.extend_from_slice(target.data());
    Encoded::exact(CodecKind::Dense, target, payload)
}

pub(super) fn decode_body(r: &mut Reader<'_>, bytes: usize) -> Result<Vec<u8>, DecodeError> {
    Ok(r.bytes(bytes, "tensor data")?.to_vec())
}
