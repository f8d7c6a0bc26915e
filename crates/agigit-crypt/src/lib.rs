#![doc = include_str!("../README.md")]

mod error;
mod key;
mod keyring;
mod stream;
mod wrap;

pub use error::CryptError;
pub use key::{ContentKey, ReaderKey, ReaderSecret};
pub use keyring::{KEYRING_MAGIC, KEYRING_VERSION, Keyring, MAX_EPOCHS};
pub use stream::{
    AesGcmStream, DEFAULT_SEGMENT_SIZE, HEADER_LEN, MAX_SEGMENT_SIZE, NonceMaterial, OpeningReader,
    SEALED_MAGIC, SEALED_VERSION, SealingWriter, SegmentAead, SegmentCipher, SegmentOpener,
    TAG_LEN,
};
pub use wrap::{ENVELOPE_MAGIC, ENVELOPE_VERSION, EcdhWrap, Envelope, KeyWrap};
