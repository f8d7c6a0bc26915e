//! Objects: canonical bytes and the ids over them (`docs/format.md` §6).
//!
//! An object's id is SHA-256 of `agigit <kind> <len>\0<body>`: the typed header makes a blob
//! whose bytes happen to be a valid tree a different object from that tree.

use core::fmt;
use core::str::FromStr;

use agigit_hash::{Hasher, ObjectId};

mod chunks;
mod codec;
mod commit;
pub mod name;
mod tensor;
mod tree;

pub use chunks::{ChunkEntry, ChunkList, MAX_CHUNK_ENTRIES, MAX_CHUNK_LEVEL};
pub use commit::{Commit, ForkBase, MAX_EXTRA, MAX_PARENTS};
pub use name::{
    MAX_NAME_LEN, NameError, check_entry_name, check_name, check_tensor_name, windows_hazard,
};
pub use tensor::{MAX_NDIM, MAX_PARAMS, TensorObject};
pub use tree::{EntryMode, Tree, TreeEntry};

/// The format version of chunk list, tree, tensor and commit bodies (their first byte).
pub const BODY_VERSION: u8 = 1;
/// The largest header: `agigit commit 18446744073709551615\0`.
pub const MAX_HEADER_LEN: usize = 36;

/// The kinds of object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Raw bytes: a small file, one chunk of a large one, or one segment of a tensor's payload.
    Blob,
    /// A large file as its content-defined chunks in order (or a list of such lists).
    Chunks,
    /// A tensor's description: dtype, shape, encoding, base, data blobs, digest.
    Tensor,
    /// A directory: sorted named entries.
    Tree,
    /// A point in history: a tree, parents, author, time, message.
    Commit,
}

impl Kind {
    /// The kind's name in headers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Blob => "blob",
            Kind::Chunks => "chunks",
            Kind::Tensor => "tensor",
            Kind::Tree => "tree",
            Kind::Commit => "commit",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "blob" => Kind::Blob,
            "chunks" => Kind::Chunks,
            "tensor" => Kind::Tensor,
            "tree" => Kind::Tree,
            "commit" => Kind::Commit,
            _ => {
                return Err(DecodeError::Header {
                    reason: format!("unknown kind {s:?}"),
                });
            }
        })
    }
}

/// Bytes that are not a valid object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The `agigit <kind> <len>\0` header is malformed.
    #[error("bad object header: {reason}")]
    Header {
        /// What is wrong.
        reason: String,
    },
    /// The header's length disagrees with the bytes that follow.
    #[error("header says {declared} bytes of body, {actual} follow")]
    Length {
        /// The length in the header.
        declared: u64,
        /// The bytes present.
        actual: u64,
    },
    /// The object is larger than the limit in force.
    #[error("{kind} of {len} bytes is larger than the limit of {limit}")]
    TooLarge {
        /// Its kind.
        kind: Kind,
        /// Its declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A body version this build does not read.
    #[error("{kind} body version {version}; this build reads version {BODY_VERSION}")]
    Version {
        /// The kind.
        kind: Kind,
        /// The version byte found.
        version: u8,
    },
    /// The body ends early.
    #[error("{kind} truncated while reading {what}")]
    Truncated {
        /// The kind.
        kind: Kind,
        /// The field being read.
        what: &'static str,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {kind}: {reason}")]
    Invalid {
        /// The kind.
        kind: Kind,
        /// What is wrong.
        reason: String,
    },
    /// Bytes follow the last field.
    #[error("{kind} has {count} bytes after its last field")]
    Trailing {
        /// The kind.
        kind: Kind,
        /// How many.
        count: usize,
    },
    /// A tree entry's name breaks the name rules (see [`name`]): it names the entry.
    #[error("tree entry rejected: {0}")]
    Name(NameError),
    /// The bytes hash to another id than the one asked for.
    #[error("object {expected} hashes to {actual}")]
    IdMismatch {
        /// The id the object was asked for by.
        expected: ObjectId,
        /// The id of the bytes.
        actual: ObjectId,
    },
}

/// Limits on the objects a decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest blob body.
    pub max_blob: u64,
    /// Largest tensor, tree or commit body.
    pub max_meta: u64,
}

impl Default for Limits {
    /// Blobs up to 1 GiB (segments are far smaller), other objects up to 64 MiB.
    fn default() -> Self {
        Limits {
            max_blob: 1 << 30,
            max_meta: 64 << 20,
        }
    }
}

impl Limits {
    /// The limit for `kind`.
    pub fn for_kind(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Blob => self.max_blob,
            _ => self.max_meta,
        }
    }
}

/// The header `agigit <kind> <len>\0`.
pub fn header(kind: Kind, len: u64) -> Vec<u8> {
    format!("agigit {kind} {len}\0").into_bytes()
}

/// The id of an object of `kind` with `body`.
pub fn compute_id(kind: Kind, body: &[u8]) -> ObjectId {
    let mut h = Hasher::new();
    h.update(&header(kind, body.len() as u64));
    h.update(body);
    ObjectId::from_hasher(h)
}

/// Parses a header at the start of `bytes`: the kind, the body length, and the header's length.
pub fn parse_header(bytes: &[u8], limits: Limits) -> Result<(Kind, u64, usize), DecodeError> {
    let bad = |reason: &str| DecodeError::Header {
        reason: reason.to_owned(),
    };
    let window = &bytes[..bytes.len().min(MAX_HEADER_LEN)];
    let nul = window
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| bad("no NUL within 36 bytes"))?;
    let text = std::str::from_utf8(&window[..nul]).map_err(|_| bad("not ASCII"))?;
    let rest = text
        .strip_prefix("agigit ")
        .ok_or_else(|| bad("does not start with \"agigit \""))?;
    let (kind, len) = rest.split_once(' ').ok_or_else(|| bad("no length"))?;
    let kind: Kind = kind.parse()?;
    let canonical = !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
        && (len == "0" || !len.starts_with('0'));
    if !canonical {
        return Err(bad("length is not a decimal number without leading zeros"));
    }
    let len: u64 = len.parse().map_err(|_| bad("length overflows u64"))?;
    let limit = limits.for_kind(kind);
    if len > limit {
        return Err(DecodeError::TooLarge { kind, len, limit });
    }
    Ok((kind, len, nul + 1))
}

/// Splits a loose object (header and body) into its kind and body.
pub fn parse_loose(bytes: &[u8], limits: Limits) -> Result<(Kind, &[u8]), DecodeError> {
    let (kind, len, at) = parse_header(bytes, limits)?;
    let body = &bytes[at..];
    if body.len() as u64 != len {
        return Err(DecodeError::Length {
            declared: len,
            actual: body.len() as u64,
        });
    }
    Ok((kind, body))
}

/// A borrowed object: its kind and body bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectRef<'a> {
    /// The kind.
    pub kind: Kind,
    /// The body (without header).
    pub data: &'a [u8],
}

impl<'a> ObjectRef<'a> {
    /// Its id.
    pub fn id(&self) -> ObjectId {
        compute_id(self.kind, self.data)
    }

    /// Decodes the body into an [`Object`].
    pub fn decode(&self) -> Result<Object, DecodeError> {
        Object::decode(self.kind, self.data)
    }
}

/// A decoded object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// Raw bytes.
    Blob(Vec<u8>),
    /// A large file's chunks.
    Chunks(ChunkList),
    /// A tensor description.
    Tensor(TensorObject),
    /// A directory.
    Tree(Tree),
    /// A commit.
    Commit(Commit),
}

impl Object {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Blob(_) => Kind::Blob,
            Object::Chunks(_) => Kind::Chunks,
            Object::Tensor(_) => Kind::Tensor,
            Object::Tree(_) => Kind::Tree,
            Object::Commit(_) => Kind::Commit,
        }
    }

    /// Its canonical body.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Object::Blob(b) => b.clone(),
            Object::Chunks(c) => c.encode(),
            Object::Tensor(t) => t.encode(),
            Object::Tree(t) => t.encode(),
            Object::Commit(c) => c.encode(),
        }
    }

    /// Its id.
    pub fn id(&self) -> ObjectId {
        compute_id(self.kind(), &self.encode())
    }

    /// Decodes a body of `kind`. Only canonical bodies decode: encoding the result gives the
    /// same bytes back.
    pub fn decode(kind: Kind, body: &[u8]) -> Result<Object, DecodeError> {
        Ok(match kind {
            Kind::Blob => Object::Blob(body.to_vec()),
            Kind::Chunks => Object::Chunks(ChunkList::decode(body)?),
            Kind::Tensor => Object::Tensor(TensorObject::decode(body)?),
            Kind::Tree => Object::Tree(Tree::decode(body)?),
            Kind::Commit => Object::Commit(Commit::decode(body)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let l = Limits::default();
        assert_eq!(parse_header(b"agigit blob 0\0", l), Ok((Kind::Blob, 0, 14)));
        assert_eq!(
            parse_header(b"agigit tree 12\0xx", l),
            Ok((Kind::Tree, 12, 15))
        );
        for bad in [
            &b"agigit blob 01\0"[..],
            b"agigit blob \0",
            b"agigit blob -1\0",
            b"agigit blob +1\0",
            b"agigit Blob 1\0",
            b"git blob 1\0",
            b"agigit blob 1",
            b"agigit blob 99999999999999999999\0",
            b"agigit blob 1 \0",
        ] {
            assert!(
                parse_header(bad, l).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            parse_header(b"agigit tree 67108865\0", l),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_loose(b"agigit blob 3\0ab", l),
            Err(DecodeError::Length {
                declared: 3,
                actual: 2
            })
        ));
    }

    #[test]
    fn kinds_separate_ids() {
        assert_ne!(compute_id(Kind::Blob, b""), compute_id(Kind::Tree, b""));
    }
}
