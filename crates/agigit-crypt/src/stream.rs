//! Segmented AES-256-GCM in the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015),
//! as age and Tink use it.
//!
//! Sealed layout (see `docs/format.md`, "Sealed object"):
//!
//! ```text
//! header (48 bytes): "AGSE" | version 1 | segment_size u32 LE | salt (32) | nonce prefix (7)
//! body: segment 0 ciphertext ‖ tag, segment 1 ‖ tag, …, last segment ‖ tag
//! ```
//!
//! Each object gets its own key, `HKDF-SHA256(salt, content key, label ‖ len(ad) ‖ ad)`, so the
//! associated data (which object this is) is bound in and a segment moved to another object does
//! not open. Segment `i` is sealed under the nonce `prefix ‖ i (u32 BE) ‖ last (0 or 1)`, so
//! reordering, duplicating, dropping, truncating or extending the sequence fails too.

use std::io::{self, Read, Write};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hkdf::Hkdf;
use rayon::prelude::*;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::CryptError;
use crate::key::{ContentKey, random};

/// Magic bytes of a sealed object.
pub const SEALED_MAGIC: [u8; 4] = *b"AGSE";
/// The sealed-object format version.
pub const SEALED_VERSION: u8 = 1;
/// Length of the header before the first segment.
pub const HEADER_LEN: usize = 4 + 1 + 4 + SALT_LEN + PREFIX_LEN;
/// Bytes of authentication tag per segment.
pub const TAG_LEN: usize = 16;
/// Default plaintext bytes per segment: 64 KiB, as age uses (0.02% of tag overhead).
pub const DEFAULT_SEGMENT_SIZE: usize = 64 * 1024;
/// Largest segment size a header may name (16 MiB): bounds what a reader buffers.
pub const MAX_SEGMENT_SIZE: usize = 16 << 20;

const SALT_LEN: usize = 32;
const PREFIX_LEN: usize = 7;
const KEY_LABEL: &[u8] = b"agigit-crypt v1 segment key";
const MAX_SEGMENTS: u64 = 1 << 32;
/// Segments handed to a rayon task at once, so task overhead stays small next to the work.
const MIN_SEGMENTS_PER_TASK: usize = 16;

/// Encrypts and decrypts whole objects under a content key.
///
/// Object-safe, so another scheme can plug in. `associated_data` names the object (e.g. its
/// repository and id); opening with other associated data fails.
pub trait SegmentCipher: Send + Sync {
    /// Encrypts `plaintext` with fresh randomness.
    ///
    /// # Errors
    /// [`CryptError::Random`] when no randomness is available.
    fn seal(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptError>;

    /// Decrypts what [`seal`](Self::seal) produced.
    ///
    /// # Errors
    /// [`CryptError::Format`] when the framing is wrong; the opaque [`CryptError::Open`] when
    /// authentication fails for any reason.
    fn open(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptError>;

    /// The sealed length of `plaintext_len` bytes.
    fn sealed_len(&self, plaintext_len: u64) -> u64;

    /// Plaintext bytes per segment of the objects it seals as a stream.
    fn stream_segment_size(&self) -> usize;

    /// The segment AEAD of one object, keyed for it from the content key, the object's
    /// associated data and the per-object randomness its header carries: what
    /// [`SealingWriter`], [`OpeningReader`] and [`SegmentOpener`] frame (the header, the
    /// segments and their order, the last one marked) whatever the cipher. A segment sealed
    /// under one object's keying must not open under another's, nor under another index or
    /// `last` flag.
    fn keyed(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        material: &NonceMaterial,
    ) -> Box<dyn SegmentAead>;

    /// As [`seal`](Self::seal), into `out` (replacing its contents, reusing its allocation).
    ///
    /// # Errors
    /// As [`seal`](Self::seal).
    fn seal_into(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptError> {
        *out = self.seal(key, associated_data, plaintext)?;
        Ok(())
    }

    /// As [`open`](Self::open), into `out` (replacing its contents, reusing its allocation).
    /// On failure `out` is left empty.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    fn open_into(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptError> {
        out.clear();
        *out = self.open(key, associated_data, sealed)?;
        Ok(())
    }
}

/// One object's segment AEAD (see [`SegmentCipher::keyed`]): seals and opens segment `index`
/// of it, `last` when it ends the object, with a [`TAG_LEN`]-byte tag after each.
pub trait SegmentAead: Send + Sync {
    /// Seals `plain` into `sealed` (`plain.len() + TAG_LEN` bytes).
    fn seal(&self, index: usize, last: bool, plain: &[u8], sealed: &mut [u8]);

    /// Opens `sealed` into `plain` (`sealed.len() − TAG_LEN` bytes).
    ///
    /// # Errors
    /// The opaque [`CryptError::Open`] when authentication fails.
    fn open(
        &self,
        index: usize,
        last: bool,
        sealed: &[u8],
        plain: &mut [u8],
    ) -> Result<(), CryptError>;
}

/// AES-256-GCM keyed for one object: [`AesGcmStream`]'s segments.
struct AesGcmSegments {
    cipher: Aes256Gcm,
    prefix: [u8; PREFIX_LEN],
}

impl SegmentAead for AesGcmSegments {
    fn seal(&self, index: usize, last: bool, plain: &[u8], sealed: &mut [u8]) {
        seal_segment(&self.cipher, &self.prefix, index, last, plain, sealed);
    }

    fn open(
        &self,
        index: usize,
        last: bool,
        sealed: &[u8],
        plain: &mut [u8],
    ) -> Result<(), CryptError> {
        open_segment(&self.cipher, &self.prefix, index, last, sealed, plain)
    }
}

/// Makes `out` exactly `len` bytes long without rewriting bytes it already has (every byte is
/// overwritten by the caller), so a reused buffer costs no extra pass over memory.
fn set_len(out: &mut Vec<u8>, len: usize) {
    if out.capacity() < len {
        // A fresh zeroed allocation: large ones come zeroed from the OS, with no pass to fill.
        *out = vec![0; len];
    } else if out.len() < len {
        out.resize(len, 0);
    } else {
        out.truncate(len);
    }
}

/// The default [`SegmentCipher`]: AES-256-GCM in STREAM, segments sealed in parallel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AesGcmStream {
    segment_size: usize,
}

impl Default for AesGcmStream {
    fn default() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// The per-object randomness in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceMaterial {
    /// Salt for the per-object key.
    pub salt: [u8; SALT_LEN],
    /// First 7 bytes of every segment nonce.
    pub prefix: [u8; PREFIX_LEN],
}

impl NonceMaterial {
    /// Fresh random material.
    ///
    /// # Errors
    /// [`CryptError::Random`] when no randomness is available.
    pub fn generate() -> Result<Self, CryptError> {
        let mut material = Self {
            salt: [0; SALT_LEN],
            prefix: [0; PREFIX_LEN],
        };
        random(&mut material.salt)?;
        random(&mut material.prefix)?;
        Ok(material)
    }
}

impl AesGcmStream {
    /// A cipher cutting plaintext into segments of `segment_size` bytes.
    ///
    /// # Errors
    /// [`CryptError::Params`] unless `1 ≤ segment_size ≤ 16 MiB`.
    pub fn new(segment_size: usize) -> Result<Self, CryptError> {
        if segment_size == 0 || segment_size > MAX_SEGMENT_SIZE {
            return Err(CryptError::Params {
                reason: "segment size must be 1 byte to 16 MiB",
            });
        }
        Ok(Self { segment_size })
    }

    /// Plaintext bytes per segment.
    pub fn segment_size(&self) -> usize {
        self.segment_size
    }

    /// Seals with the given randomness. **Never reuse `material` with the same key and
    /// associated data**; this exists for known-answer tests and for callers with their own
    /// randomness source.
    pub fn seal_with(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        plaintext: &[u8],
        material: &NonceMaterial,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        self.seal_with_into(key, associated_data, plaintext, material, &mut out);
        out
    }

    /// As [`seal_with`](Self::seal_with), into `out`, reusing its allocation.
    pub fn seal_with_into(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        plaintext: &[u8],
        material: &NonceMaterial,
        out: &mut Vec<u8>,
    ) {
        let header = Header {
            segment_size: self.segment_size,
            material: *material,
        };
        let cipher = header.cipher(key, associated_data);
        let count = segment_count(plaintext.len(), self.segment_size);
        set_len(out, HEADER_LEN + plaintext.len() + count * TAG_LEN);
        header.write(&mut out[..HEADER_LEN]);
        let body = &mut out[HEADER_LEN..];
        if plaintext.is_empty() {
            // One empty, final segment: its tag alone proves nothing was cut off.
            seal_segment(&cipher, &header.material.prefix, 0, true, &[], body);
            return;
        }
        body.par_chunks_mut(self.segment_size + TAG_LEN)
            .zip(plaintext.par_chunks(self.segment_size))
            .enumerate()
            .with_min_len(MIN_SEGMENTS_PER_TASK)
            .for_each(|(i, (sealed, segment))| {
                let last = i + 1 == count;
                seal_segment(&cipher, &header.material.prefix, i, last, segment, sealed);
            });
    }
}

impl SegmentCipher for AesGcmStream {
    fn seal(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptError> {
        Ok(self.seal_with(key, associated_data, plaintext, &NonceMaterial::generate()?))
    }

    fn open(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptError> {
        let mut out = Vec::new();
        self.open_into(key, associated_data, sealed, &mut out)?;
        Ok(out)
    }

    fn seal_into(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptError> {
        let material = NonceMaterial::generate()?;
        self.seal_with_into(key, associated_data, plaintext, &material, out);
        Ok(())
    }

    fn open_into(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptError> {
        out.clear();
        // The header says how the object was cut: any segment size this build accepts opens.
        let header = Header::read(sealed)?;
        let body = &sealed[HEADER_LEN..];
        let chunk = header.segment_size + TAG_LEN;
        let count =
            usize::try_from(layout(body.len() as u64, header.segment_size)?.0).map_err(|_| {
                CryptError::Format {
                    reason: "more than 2^32 segments",
                }
            })?;
        let cipher = header.cipher(key, associated_data);
        let len = body.len() - count * TAG_LEN;
        if len == 0 {
            // A single segment holding only a tag: the empty object.
            return open_segment(&cipher, &header.material.prefix, 0, true, body, &mut []);
        }
        set_len(out, len);
        debug_assert_eq!(len.div_ceil(header.segment_size), count);
        let failed = out
            .par_chunks_mut(header.segment_size)
            .zip(body.par_chunks(chunk))
            .enumerate()
            .with_min_len(MIN_SEGMENTS_PER_TASK)
            .map(|(i, (plain, sealed))| {
                let last = i + 1 == count;
                open_segment(&cipher, &header.material.prefix, i, last, sealed, plain).is_err()
            })
            .reduce(|| false, |a, b| a || b);
        if failed {
            // Never hand out a partly decrypted object.
            out.fill(0);
            out.clear();
            return Err(CryptError::Open);
        }
        Ok(())
    }

    fn sealed_len(&self, plaintext_len: u64) -> u64 {
        let segment = self.segment_size as u64;
        let count = plaintext_len.div_ceil(segment).max(1);
        HEADER_LEN as u64 + plaintext_len + count * TAG_LEN as u64
    }

    fn stream_segment_size(&self) -> usize {
        self.segment_size
    }

    fn keyed(
        &self,
        key: &ContentKey,
        associated_data: &[u8],
        material: &NonceMaterial,
    ) -> Box<dyn SegmentAead> {
        let header = Header {
            segment_size: self.segment_size,
            material: *material,
        };
        Box::new(AesGcmSegments {
            cipher: header.cipher(key, associated_data),
            prefix: material.prefix,
        })
    }
}

/// Segments of a plaintext: at least one (the empty object has one empty segment).
fn segment_count(len: usize, segment_size: usize) -> usize {
    len.div_ceil(segment_size).max(1)
}

/// How a sealed body of `body_len` bytes is cut into segments of `segment_size`: the count and
/// the last one's sealed length. Fails for a body no sealer writes.
fn layout(body_len: u64, segment_size: usize) -> Result<(u64, u64), CryptError> {
    let chunk = segment_size as u64 + TAG_LEN as u64;
    let last_len = match body_len % chunk {
        0 if body_len != 0 => chunk,
        rest => rest,
    };
    if last_len < TAG_LEN as u64 {
        return Err(CryptError::Format {
            reason: "the last segment is shorter than its tag",
        });
    }
    let count = body_len.div_ceil(chunk);
    if count > 1 && last_len == TAG_LEN as u64 {
        // Only the empty object has an empty segment: a longer one ends with a non-empty
        // segment (a full one when the length is a multiple of the segment size).
        return Err(CryptError::Format {
            reason: "an empty segment after the first",
        });
    }
    if count > MAX_SEGMENTS {
        return Err(CryptError::Format {
            reason: "more than 2^32 segments",
        });
    }
    Ok((count, last_len))
}

/// Opens the segments of a sealed object one at a time, in any order, knowing only its header
/// and its sealed length: a reader that wants a few bytes of a large object fetches and opens
/// just the segments holding them ([`segments_of`](Self::segments_of),
/// [`sealed_range`](Self::sealed_range)). Every segment is authenticated on its own, under its
/// index and whether it is the last, so a segment moved, swapped or taken from another object,
/// and a length that lies about where the object ends, fail to open.
pub struct SegmentOpener {
    aead: Box<dyn SegmentAead>,
    segment_size: usize,
    count: u64,
    sealed_len: u64,
}

impl std::fmt::Debug for SegmentOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentOpener")
            .field("segment_size", &self.segment_size)
            .field("count", &self.count)
            .field("sealed_len", &self.sealed_len)
            .finish_non_exhaustive()
    }
}

impl SegmentOpener {
    /// An opener for the object whose first bytes (at least [`HEADER_LEN`]) are `header` and
    /// whose sealed length is `sealed_len`.
    ///
    /// # Errors
    /// [`CryptError::Format`] for a bad header or a length no sealer writes with it.
    pub fn new(
        key: &ContentKey,
        associated_data: &[u8],
        header: &[u8],
        sealed_len: u64,
    ) -> Result<Self, CryptError> {
        Self::with_cipher(
            key,
            associated_data,
            header,
            sealed_len,
            &AesGcmStream::default(),
        )
    }

    /// As [`new`](Self::new), for an object sealed by `cipher`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_cipher(
        key: &ContentKey,
        associated_data: &[u8],
        header: &[u8],
        sealed_len: u64,
        cipher: &dyn SegmentCipher,
    ) -> Result<Self, CryptError> {
        let parsed = Header::read(header)?;
        let body = sealed_len
            .checked_sub(HEADER_LEN as u64)
            .ok_or(CryptError::Format {
                reason: "shorter than the 48-byte header",
            })?;
        let (count, _) = layout(body, parsed.segment_size)?;
        Ok(Self {
            aead: cipher.keyed(key, associated_data, &parsed.material),
            segment_size: parsed.segment_size,
            count,
            sealed_len,
        })
    }

    /// Plaintext bytes per segment (the last may hold fewer).
    pub fn segment_size(&self) -> usize {
        self.segment_size
    }

    /// Segments in the object (at least one).
    pub fn segments(&self) -> u64 {
        self.count
    }

    /// The object's plaintext length.
    pub fn plaintext_len(&self) -> u64 {
        self.sealed_len - HEADER_LEN as u64 - self.count * TAG_LEN as u64
    }

    /// The segments holding plaintext bytes `range` (empty for an empty range); the range is
    /// clamped to the object.
    pub fn segments_of(&self, range: std::ops::Range<u64>) -> std::ops::Range<u64> {
        let end = range.end.min(self.plaintext_len());
        if range.start >= end {
            return 0..0;
        }
        let size = self.segment_size as u64;
        range.start / size..(end - 1) / size + 1
    }

    /// Where segment `index` (below [`segments`](Self::segments)) is in the sealed object.
    pub fn sealed_range(&self, index: u64) -> std::ops::Range<u64> {
        let chunk = self.segment_size as u64 + TAG_LEN as u64;
        let start = (HEADER_LEN as u64).saturating_add(index.saturating_mul(chunk));
        start.min(self.sealed_len)..start.saturating_add(chunk).min(self.sealed_len)
    }

    /// Where segment `index`'s plaintext is in the object.
    pub fn plaintext_range(&self, index: u64) -> std::ops::Range<u64> {
        let size = self.segment_size as u64;
        let start = index.saturating_mul(size).min(self.plaintext_len());
        start..start.saturating_add(size).min(self.plaintext_len())
    }

    /// Opens segment `index` from its sealed bytes (exactly [`sealed_range`](Self::sealed_range)
    /// of them).
    ///
    /// # Errors
    /// [`CryptError::Format`] for an index past the end or bytes of the wrong length; the opaque
    /// [`CryptError::Open`] when authentication fails.
    pub fn open(&self, index: u64, sealed: &[u8]) -> Result<Vec<u8>, CryptError> {
        if index >= self.count {
            return Err(CryptError::Format {
                reason: "a segment past the object's end",
            });
        }
        let range = self.sealed_range(index);
        if sealed.len() as u64 != range.end - range.start {
            return Err(CryptError::Format {
                reason: "a sealed segment of the wrong length",
            });
        }
        let mut plain = vec![0u8; sealed.len() - TAG_LEN];
        let at = usize::try_from(index).map_err(|_| CryptError::Format {
            reason: "more than 2^32 segments",
        })?;
        let last = index + 1 == self.count;
        if let Err(e) = self.aead.open(at, last, sealed, &mut plain) {
            plain.fill(0);
            return Err(e);
        }
        Ok(plain)
    }
}

#[derive(Debug, Clone, Copy)]
struct Header {
    segment_size: usize,
    material: NonceMaterial,
}

impl Header {
    fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&SEALED_MAGIC);
        out[4] = SEALED_VERSION;
        let size = u32::try_from(self.segment_size).unwrap_or(u32::MAX);
        out[5..9].copy_from_slice(&size.to_le_bytes());
        out[9..9 + SALT_LEN].copy_from_slice(&self.material.salt);
        out[9 + SALT_LEN..HEADER_LEN].copy_from_slice(&self.material.prefix);
    }

    fn read(sealed: &[u8]) -> Result<Self, CryptError> {
        let header = sealed.get(..HEADER_LEN).ok_or(CryptError::Format {
            reason: "shorter than the 48-byte header",
        })?;
        if header[..4] != SEALED_MAGIC {
            return Err(CryptError::Format {
                reason: "the magic bytes are not \"AGSE\"",
            });
        }
        if header[4] != SEALED_VERSION {
            return Err(CryptError::Format {
                reason: "unsupported version (this build reads 1)",
            });
        }
        let size = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
        let segment_size = usize::try_from(size).unwrap_or(usize::MAX);
        if segment_size == 0 || segment_size > MAX_SEGMENT_SIZE {
            return Err(CryptError::Format {
                reason: "segment size out of range (1 byte to 16 MiB)",
            });
        }
        let mut material = NonceMaterial {
            salt: [0; SALT_LEN],
            prefix: [0; PREFIX_LEN],
        };
        material.salt.copy_from_slice(&header[9..9 + SALT_LEN]);
        material
            .prefix
            .copy_from_slice(&header[9 + SALT_LEN..HEADER_LEN]);
        Ok(Self {
            segment_size,
            material,
        })
    }

    /// The per-object AES-256-GCM instance.
    fn cipher(&self, key: &ContentKey, associated_data: &[u8]) -> Aes256Gcm {
        let hkdf = Hkdf::<Sha256>::new(Some(&self.material.salt), key.as_bytes());
        let mut subkey = Zeroizing::new([0u8; 32]);
        let ad_len = (associated_data.len() as u64).to_le_bytes();
        // 32 bytes is far below HKDF-SHA256's limit of 8160: expansion cannot fail.
        let _ = hkdf.expand_multi_info(&[KEY_LABEL, &ad_len, associated_data], &mut *subkey);
        Aes256Gcm::new(&(*subkey).into())
    }
}

fn nonce(prefix: &[u8; PREFIX_LEN], index: usize, last: bool) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    // Callers keep index < 2^32 (checked on open, and a 16 MiB segment limit on seal).
    n[PREFIX_LEN..11].copy_from_slice(&u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes());
    n[11] = u8::from(last);
    n.into()
}

/// Seals `plain` into `sealed` (`plain.len() + TAG_LEN` bytes).
fn seal_segment(
    cipher: &Aes256Gcm,
    prefix: &[u8; PREFIX_LEN],
    index: usize,
    last: bool,
    plain: &[u8],
    sealed: &mut [u8],
) {
    let (body, tag) = sealed.split_at_mut(plain.len());
    body.copy_from_slice(plain);
    // Encryption fails only for messages over 64 GiB, far above MAX_SEGMENT_SIZE.
    if let Ok(t) = cipher.encrypt_inout_detached(&nonce(prefix, index, last), &[], body.into()) {
        tag.copy_from_slice(&t);
    }
}

/// Opens `sealed` into `plain` (`sealed.len() − TAG_LEN` bytes).
fn open_segment(
    cipher: &Aes256Gcm,
    prefix: &[u8; PREFIX_LEN],
    index: usize,
    last: bool,
    sealed: &[u8],
    plain: &mut [u8],
) -> Result<(), CryptError> {
    let (body, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    plain.copy_from_slice(body);
    let tag = Tag::try_from(tag).map_err(|_| CryptError::Open)?;
    cipher
        .decrypt_inout_detached(&nonce(prefix, index, last), &[], plain.into(), &tag)
        .map_err(|_| CryptError::Open)
}

/// Seals a stream: write plaintext in, sealed bytes go to the inner writer. Holds at most one
/// segment. Call [`finish`](Self::finish): without it the last segment is never written and a
/// reader rejects the object as truncated.
pub struct SealingWriter<W: Write> {
    inner: W,
    aead: Box<dyn SegmentAead>,
    segment_size: usize,
    buffer: Vec<u8>,
    sealed: Vec<u8>,
    index: usize,
}

impl<W: Write> SealingWriter<W> {
    /// Starts a sealed object on `inner` (the header is written at once).
    ///
    /// # Errors
    /// [`CryptError::Params`] for a bad segment size, [`CryptError::Random`], or an I/O error
    /// writing the header (as [`CryptError::Format`] is not apt, it is returned as io).
    pub fn new(
        mut inner: W,
        key: &ContentKey,
        associated_data: &[u8],
        cipher: &dyn SegmentCipher,
    ) -> io::Result<Self> {
        let segment_size = cipher.stream_segment_size();
        if segment_size == 0 || segment_size > MAX_SEGMENT_SIZE {
            return Err(io::Error::other(CryptError::Params {
                reason: "segment size must be 1 byte to 16 MiB",
            }));
        }
        let material = NonceMaterial::generate().map_err(io::Error::other)?;
        let header = Header {
            segment_size,
            material,
        };
        let mut bytes = [0u8; HEADER_LEN];
        header.write(&mut bytes);
        inner.write_all(&bytes)?;
        Ok(Self {
            inner,
            aead: cipher.keyed(key, associated_data, &material),
            segment_size,
            buffer: Vec::with_capacity(segment_size),
            sealed: vec![0u8; segment_size + TAG_LEN],
            index: 0,
        })
    }

    fn flush_segment(&mut self, last: bool) -> io::Result<()> {
        if self.index as u64 >= MAX_SEGMENTS {
            return Err(io::Error::other(CryptError::Params {
                reason: "more than 2^32 segments",
            }));
        }
        let len = self.buffer.len() + TAG_LEN;
        self.aead
            .seal(self.index, last, &self.buffer, &mut self.sealed[..len]);
        self.inner.write_all(&self.sealed[..len])?;
        self.buffer.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the last segment, flushes, and returns the inner writer.
    ///
    /// # Errors
    /// I/O errors of the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_segment(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // A full segment is sealed only when more data arrives: until then it may be the last.
        if self.buffer.len() == self.segment_size {
            self.flush_segment(false)?;
        }
        let n = buf.len().min(self.segment_size - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens a stream: sealed bytes from the inner reader, plaintext out. Holds at most two sealed
/// segments (one to know whether the other is the last). Every byte it returns has been
/// authenticated; an error leaves the stream unusable.
pub struct OpeningReader<R: Read> {
    inner: R,
    aead: Box<dyn SegmentAead>,
    chunk: usize,
    next: Vec<u8>,
    plain: Vec<u8>,
    pos: usize,
    index: usize,
    done: bool,
}

impl<R: Read> OpeningReader<R> {
    /// Reads the header from `inner` and prepares to open.
    ///
    /// # Errors
    /// `InvalidData` wrapping [`CryptError::Format`] for a bad header; other I/O errors.
    pub fn new(inner: R, key: &ContentKey, associated_data: &[u8]) -> io::Result<Self> {
        Self::with_cipher(inner, key, associated_data, &AesGcmStream::default())
    }

    /// As [`new`](Self::new), for an object sealed by `cipher`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_cipher(
        mut inner: R,
        key: &ContentKey,
        associated_data: &[u8],
        cipher: &dyn SegmentCipher,
    ) -> io::Result<Self> {
        let mut bytes = [0u8; HEADER_LEN];
        inner.read_exact(&mut bytes).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => invalid(CryptError::Format {
                reason: "shorter than the 48-byte header",
            }),
            _ => e,
        })?;
        let header = Header::read(&bytes).map_err(invalid)?;
        let chunk = header.segment_size + TAG_LEN;
        let mut reader = Self {
            inner,
            aead: cipher.keyed(key, associated_data, &header.material),
            chunk,
            next: Vec::with_capacity(chunk),
            plain: Vec::with_capacity(header.segment_size),
            pos: 0,
            index: 0,
            done: false,
        };
        reader.next = reader.read_chunk()?;
        Ok(reader)
    }

    /// Up to one sealed segment from the inner reader (shorter only at its end).
    fn read_chunk(&mut self) -> io::Result<Vec<u8>> {
        let mut chunk = Vec::with_capacity(self.chunk);
        (&mut self.inner)
            .take(self.chunk as u64)
            .read_to_end(&mut chunk)?;
        Ok(chunk)
    }

    fn open_next(&mut self) -> io::Result<()> {
        let current = std::mem::take(&mut self.next);
        if current.len() < TAG_LEN {
            return Err(invalid(if self.index == 0 && current.is_empty() {
                CryptError::Format {
                    reason: "no segments after the header",
                }
            } else {
                CryptError::Open
            }));
        }
        if self.index > 0 && current.len() == TAG_LEN {
            return Err(invalid(CryptError::Format {
                reason: "an empty segment after the first",
            }));
        }
        self.next = if current.len() == self.chunk {
            self.read_chunk()?
        } else {
            Vec::new()
        };
        let last = self.next.is_empty();
        if self.index as u64 >= MAX_SEGMENTS {
            return Err(invalid(CryptError::Format {
                reason: "more than 2^32 segments",
            }));
        }
        self.plain.resize(current.len() - TAG_LEN, 0);
        self.aead
            .open(self.index, last, &current, &mut self.plain)
            .map_err(invalid)?;
        self.pos = 0;
        self.index += 1;
        self.done = last;
        Ok(())
    }
}

fn invalid(e: CryptError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<R: Read> Read for OpeningReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.open_next()?;
        }
        let n = buf.len().min(self.plain.len() - self.pos);
        buf[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
