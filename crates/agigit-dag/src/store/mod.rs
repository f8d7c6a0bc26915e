//! Object stores, in the shape of gitoxide's `gix-object` traits: [`Find`] reads into the
//! caller's buffer and answers `Ok(None)` when an object is absent; [`Write`] takes an object
//! from a reader; [`FindExt`] and [`WriteExt`] add typed reads and writes with structured errors.
//! [`MemoryStore`] and [`FsStore`] implement both and pass one conformance suite
//! ([`conformance`]).

use std::io;
use std::path::PathBuf;

use agigit_hash::ObjectId;

use crate::object::{
    ChunkList, Commit, DecodeError, Kind, Limits, Object, ObjectRef, TensorObject, Tree,
};

pub mod conformance;
mod fs;
pub mod io_backend;
mod memory;

pub use fs::FsStore;
pub use memory::MemoryStore;

/// A store failed to read or write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The stored bytes are not the object they are filed under.
    #[error("object {id} is corrupt in the store: {source}")]
    Corrupt {
        /// The id asked for.
        id: ObjectId,
        /// What is wrong.
        source: DecodeError,
    },
    /// The reader handed to `write_stream` gave more or fewer bytes than declared.
    #[error("object source gave {actual} bytes, {declared} were declared")]
    SizeMismatch {
        /// Bytes declared.
        declared: u64,
        /// Bytes given (at least this many, when more).
        actual: u64,
    },
    /// The reader handed to `write_stream` failed.
    #[error("reading the object source: {0}")]
    Source(io::Error),
    /// The object is larger than the store accepts.
    #[error("{kind} of {len} bytes is larger than the limit of {limit}")]
    TooLarge {
        /// Its kind.
        kind: Kind,
        /// Its length.
        len: u64,
        /// The limit.
        limit: u64,
    },
}

/// Refuses an object larger than `limits` allow for its kind.
fn check_size(limits: Limits, kind: Kind, size: u64) -> Result<(), StoreError> {
    let limit = limits.for_kind(kind);
    if size > limit {
        return Err(StoreError::TooLarge {
            kind,
            len: size,
            limit,
        });
    }
    Ok(())
}

/// Reads objects by id.
pub trait Find {
    /// The object `id`, its bytes in `buf` (which is overwritten); `Ok(None)` when the store does
    /// not hold it. A store verifies what it returns hashes to `id`.
    fn try_find<'a>(
        &self,
        id: &ObjectId,
        buf: &'a mut Vec<u8>,
    ) -> Result<Option<ObjectRef<'a>>, StoreError>;

    /// As [`try_find`](Self::try_find), but the store may skip hashing the bytes against `id`:
    /// only for a caller that checks them by a hash it already trusts that covers them — a
    /// tensor's payload blobs, whose bytes the tensor object's digest binds (the tensor object
    /// itself read with [`try_find`](Self::try_find)). Stores that cannot skip the check verify.
    fn try_find_unverified<'a>(
        &self,
        id: &ObjectId,
        buf: &'a mut Vec<u8>,
    ) -> Result<Option<ObjectRef<'a>>, StoreError> {
        self.try_find(id, buf)
    }

    /// Whether the store holds `id`.
    fn contains(&self, id: &ObjectId) -> Result<bool, StoreError> {
        Ok(self.try_find(id, &mut Vec::new())?.is_some())
    }

    /// The kind and body length of object `id`, without reading its body where the store can
    /// (so a caller can refuse an object too large for its purpose before loading it); `Ok(None)`
    /// when absent. The length is the one the stored header declares: a read of the object still
    /// verifies it.
    fn header_of(&self, id: &ObjectId) -> Result<Option<(Kind, u64)>, StoreError> {
        Ok(self
            .try_find(id, &mut Vec::new())?
            .map(|o| (o.kind, o.data.len() as u64)))
    }

    /// The ids of the objects held whose hex starts with `prefix`, at most `limit` of them (a
    /// caller resolving a prefix needs two to know it is ambiguous, a few more to list them).
    fn ids_with_prefix(
        &self,
        prefix: &crate::rev::HexPrefix,
        limit: usize,
    ) -> Result<Vec<ObjectId>, StoreError>;
}

/// Writes objects.
pub trait Write {
    /// Writes an object of `kind` whose body is the next `size` bytes of `from`; returns its id.
    /// Writing an object the store holds is not an error. On failure nothing is left under the
    /// object's name.
    fn write_stream(
        &self,
        kind: Kind,
        size: u64,
        from: &mut dyn io::Read,
    ) -> Result<ObjectId, StoreError>;

    /// Writes an object from a buffer.
    fn write_buf(&self, kind: Kind, body: &[u8]) -> Result<ObjectId, StoreError> {
        self.write_stream(kind, body.len() as u64, &mut &body[..])
    }

    /// Writes several objects; returns their ids in order. When it returns, every object is
    /// stored as [`write_buf`](Self::write_buf) would have stored it, but a store may make them
    /// durable together — [`FsStore`] syncs the batch once instead of once per object. On
    /// failure some of them may be stored, none partially.
    fn write_batch(&self, objects: &[(Kind, &[u8])]) -> Result<Vec<ObjectId>, StoreError> {
        objects
            .iter()
            .map(|(kind, body)| self.write_buf(*kind, body))
            .collect()
    }
}

macro_rules! forward {
    ($($ptr:ty),*) => {$(
        impl<T: Find + ?Sized> Find for $ptr {
            fn try_find<'a>(
                &self,
                id: &ObjectId,
                buf: &'a mut Vec<u8>,
            ) -> Result<Option<ObjectRef<'a>>, StoreError> {
                (**self).try_find(id, buf)
            }
            fn try_find_unverified<'a>(
                &self,
                id: &ObjectId,
                buf: &'a mut Vec<u8>,
            ) -> Result<Option<ObjectRef<'a>>, StoreError> {
                (**self).try_find_unverified(id, buf)
            }
            fn contains(&self, id: &ObjectId) -> Result<bool, StoreError> {
                (**self).contains(id)
            }
            fn header_of(&self, id: &ObjectId) -> Result<Option<(Kind, u64)>, StoreError> {
                (**self).header_of(id)
            }
            fn ids_with_prefix(
                &self,
                prefix: &crate::rev::HexPrefix,
                limit: usize,
            ) -> Result<Vec<ObjectId>, StoreError> {
                (**self).ids_with_prefix(prefix, limit)
            }
        }
        impl<T: Write + ?Sized> Write for $ptr {
            fn write_stream(
                &self,
                kind: Kind,
                size: u64,
                from: &mut dyn io::Read,
            ) -> Result<ObjectId, StoreError> {
                (**self).write_stream(kind, size, from)
            }
            fn write_buf(&self, kind: Kind, body: &[u8]) -> Result<ObjectId, StoreError> {
                (**self).write_buf(kind, body)
            }
            fn write_batch(
                &self,
                objects: &[(Kind, &[u8])],
            ) -> Result<Vec<ObjectId>, StoreError> {
                (**self).write_batch(objects)
            }
        }
    )*};
}
forward!(&T, Box<T>, std::sync::Arc<T>);

/// A typed read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FindError {
    /// The store does not hold the object.
    #[error("object {id} not found")]
    NotFound {
        /// The id.
        id: ObjectId,
    },
    /// The object is of another kind.
    #[error("object {id} is a {actual}, expected a {expected}")]
    Kind {
        /// The id.
        id: ObjectId,
        /// The kind wanted.
        expected: Kind,
        /// The kind found.
        actual: Kind,
    },
    /// The object's body does not decode.
    #[error("object {id} does not decode: {source}")]
    Decode {
        /// The id.
        id: ObjectId,
        /// Why.
        source: DecodeError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Typed reads for every [`Find`].
pub trait FindExt: Find {
    /// The object `id`, or [`FindError::NotFound`].
    fn find<'a>(&self, id: &ObjectId, buf: &'a mut Vec<u8>) -> Result<ObjectRef<'a>, FindError> {
        self.try_find(id, buf)?
            .ok_or(FindError::NotFound { id: *id })
    }

    /// The object `id`, which must be of `kind`.
    fn find_kind<'a>(
        &self,
        id: &ObjectId,
        kind: Kind,
        buf: &'a mut Vec<u8>,
    ) -> Result<&'a [u8], FindError> {
        let o = self.find(id, buf)?;
        if o.kind != kind {
            return Err(FindError::Kind {
                id: *id,
                expected: kind,
                actual: o.kind,
            });
        }
        Ok(o.data)
    }

    /// The blob `id`'s bytes.
    fn find_blob<'a>(&self, id: &ObjectId, buf: &'a mut Vec<u8>) -> Result<&'a [u8], FindError> {
        self.find_kind(id, Kind::Blob, buf)
    }

    /// The tree `id`.
    fn find_tree(&self, id: &ObjectId) -> Result<Tree, FindError> {
        let mut buf = Vec::new();
        let data = self.find_kind(id, Kind::Tree, &mut buf)?;
        Tree::decode(data).map_err(|source| FindError::Decode { id: *id, source })
    }

    /// The commit `id`.
    fn find_commit(&self, id: &ObjectId) -> Result<Commit, FindError> {
        let mut buf = Vec::new();
        let data = self.find_kind(id, Kind::Commit, &mut buf)?;
        Commit::decode(data).map_err(|source| FindError::Decode { id: *id, source })
    }

    /// The chunk list `id`.
    fn find_chunks(&self, id: &ObjectId) -> Result<ChunkList, FindError> {
        let mut buf = Vec::new();
        let data = self.find_kind(id, Kind::Chunks, &mut buf)?;
        ChunkList::decode(data).map_err(|source| FindError::Decode { id: *id, source })
    }

    /// The tensor object `id`.
    fn find_tensor(&self, id: &ObjectId) -> Result<TensorObject, FindError> {
        let mut buf = Vec::new();
        let data = self.find_kind(id, Kind::Tensor, &mut buf)?;
        TensorObject::decode(data).map_err(|source| FindError::Decode { id: *id, source })
    }
}

impl<T: Find + ?Sized> FindExt for T {}

/// A typed write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The object breaks a rule of the format.
    #[error("invalid {kind}: {reason}")]
    Invalid {
        /// Its kind.
        kind: Kind,
        /// Which rule.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Typed writes for every [`Write`].
pub trait WriteExt: Write {
    /// Validates and writes `object`; returns its id.
    fn write_object(&self, object: &Object) -> Result<ObjectId, WriteError> {
        let invalid = |reason| WriteError::Invalid {
            kind: object.kind(),
            reason,
        };
        match object {
            Object::Tensor(t) => t.validate().map_err(invalid)?,
            Object::Commit(c) => c.validate().map_err(invalid)?,
            Object::Blob(_) | Object::Tree(_) | Object::Chunks(_) => {}
        }
        Ok(self.write_buf(object.kind(), &object.encode())?)
    }

    /// Writes a tree.
    fn write_tree(&self, tree: &Tree) -> Result<ObjectId, WriteError> {
        Ok(self.write_buf(Kind::Tree, &tree.encode())?)
    }

    /// Validates and writes a commit.
    fn write_commit(&self, commit: &Commit) -> Result<ObjectId, WriteError> {
        commit.validate().map_err(|reason| WriteError::Invalid {
            kind: Kind::Commit,
            reason,
        })?;
        Ok(self.write_buf(Kind::Commit, &commit.encode())?)
    }

    /// Validates and writes a tensor object.
    fn write_tensor(&self, tensor: &TensorObject) -> Result<ObjectId, WriteError> {
        tensor.validate().map_err(|reason| WriteError::Invalid {
            kind: Kind::Tensor,
            reason,
        })?;
        Ok(self.write_buf(Kind::Tensor, &tensor.encode())?)
    }
}

impl<T: Write + ?Sized> WriteExt for T {}

/// A store a repository can run over: it reads and writes, and is shared between threads (a
/// transfer stores objects from a CPU pool). Every `Find + Write` store that is `Send + Sync`
/// is one: [`FsStore`] on disk, [`MemoryStore`] for tests and embedders, or the caller's own.
pub trait ObjectStore: Find + Write + Send + Sync + std::fmt::Debug {}

impl<T: Find + Write + Send + Sync + std::fmt::Debug + ?Sized> ObjectStore for T {}
