#![doc = include_str!("../README.md")]

mod checkpoint;
pub mod codec;
pub mod compare;
mod dtype;
pub mod merge;
#[cfg(feature = "lowrank")]
pub mod rsvd;
pub mod synth;
mod tensor;

pub use checkpoint::{
    Checkpoint, CheckpointIndex, INDEX_FILE, MAX_HEADER_LEN, SINGLE_FILE, SafetensorsError,
    SafetensorsFile, is_valid_name, save_safetensors, save_sharded, write_safetensors,
};
#[cfg(feature = "lowrank")]
pub use codec::LowRank;
pub use codec::{Band, FactorStorage, RankPolicy};
pub use codec::{
    CodecKind, DecodeError, DecodeLimits, DeltaCodec, Dense, EncodeError, Encoded, Fallback,
    Lossless, PayloadHeader, Report, SignScale, decode, decode_with_limits, inspect, output_digest,
};
pub use dtype::{DType, UnknownDType};
pub use tensor::{LayoutError, Tensor, TensorView, numel};

/// The candle device type `LowRank` runs on (re-exported so callers need not name candle).
#[cfg(feature = "lowrank")]
pub use candle_core::Device;
