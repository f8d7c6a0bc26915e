#![doc = include_str!("../README.md")]

mod hasher;
mod hex;
mod id;
pub mod merkle;

pub use hasher::{Hasher, HashingReader, HashingWriter};
pub use hex::ParseIdError;
pub use id::{BlobHash, ObjectId, Short};

/// Length in bytes of every SHA-256 identifier in agigit.
pub const HASH_LEN: usize = 32;

/// Length in characters of the hexadecimal form of an identifier.
pub const HEX_LEN: usize = 2 * HASH_LEN;
