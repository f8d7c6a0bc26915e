//! Streaming SHA-256.

use std::io::{self, Read, Write};

use sha2::Digest as _;

use crate::HASH_LEN;

/// Incremental SHA-256.
///
/// Uses the CPU's SHA extensions (x86 SHA-NI, ARMv8 SHA2) when present, detected at run time by
/// the `sha2` crate, so binaries stay portable.
///
/// ```
/// use agigit_hash::{Hasher, ObjectId};
///
/// let mut hasher = Hasher::new();
/// hasher.update(b"te");
/// hasher.update(b"st");
/// assert_eq!(ObjectId::from_hasher(hasher), ObjectId::digest(b"test"));
/// ```
#[derive(Clone, Default)]
pub struct Hasher {
    inner: sha2::Sha256,
    len: u64,
}

impl Hasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len = self.len.saturating_add(data.len() as u64);
    }

    /// Number of bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte has been fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finalize(self) -> [u8; HASH_LEN] {
        self.inner.finalize().into()
    }
}

impl core::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hasher")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes every byte it hands out.
///
/// Check the digest only after the inner reader reported end of file.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// The hasher so far, and the inner reader.
    pub fn into_parts(self) -> (R, Hasher) {
        (self.inner, self.hasher)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes every byte the inner writer accepted.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// The hasher so far, and the inner writer.
    pub fn into_parts(self) -> (W, Hasher) {
        (self.inner, self.hasher)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectId;
    use proptest::prelude::*;

    /// A writer that accepts at most 3 bytes per call, to check partial writes are hashed exactly.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    proptest! {
        #[test]
        fn streaming_equals_one_shot(data in proptest::collection::vec(any::<u8>(), 0..2000), cut in 0usize..2000) {
            let cut = cut.min(data.len());
            let mut h = Hasher::new();
            h.update(&data[..cut]);
            h.update(&data[cut..]);
            prop_assert_eq!(h.len(), data.len() as u64);
            let expected = ObjectId::digest(&data);
            prop_assert_eq!(ObjectId::from_hasher(h), expected);

            let mut reader = HashingReader::new(&data[..]);
            let mut sink = Vec::new();
            reader.read_to_end(&mut sink)?;
            prop_assert_eq!(ObjectId::from_hasher(reader.into_parts().1), expected);

            let mut writer = HashingWriter::new(Trickle(Vec::new()));
            writer.write_all(&data)?;
            let (inner, hasher) = writer.into_parts();
            prop_assert_eq!(&inner.0, &data);
            prop_assert_eq!(ObjectId::from_hasher(hasher), expected);
        }
    }
}
