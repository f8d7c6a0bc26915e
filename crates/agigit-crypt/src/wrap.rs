//! Wrapping a content key for a reader's Nostr key, and the envelope that holds one wrapped key
//! per reader.

use std::collections::BTreeMap;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Tag};
use hkdf::Hkdf;
use k256::elliptic_curve::sec1::ToSec1Point as _;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::CryptError;
use crate::key::{ContentKey, ReaderKey, ReaderSecret};

/// Wraps content keys for readers. Object-safe, so another scheme can plug in; each scheme has a
/// number recorded in the envelope.
pub trait KeyWrap: Send + Sync {
    /// The scheme's number in an envelope.
    fn scheme(&self) -> u8;

    /// Length of one wrapped key in bytes.
    fn wrapped_len(&self) -> usize;

    /// Wraps `key` so that only the holder of `reader`'s secret can unwrap it.
    ///
    /// # Errors
    /// [`CryptError::Random`] when no randomness is available.
    fn wrap(&self, key: &ContentKey, reader: &ReaderKey) -> Result<Vec<u8>, CryptError>;

    /// Unwraps a key wrapped for `secret`'s public key.
    ///
    /// # Errors
    /// The opaque [`CryptError::Open`] for a wrong key or altered bytes;
    /// [`CryptError::InvalidPublicKey`] for a malformed ephemeral key.
    fn unwrap(&self, wrapped: &[u8], secret: &ReaderSecret) -> Result<ContentKey, CryptError>;

    /// Checks the structure of a wrapped key without any secret (for envelope decoding).
    ///
    /// # Errors
    /// [`CryptError::InvalidPublicKey`] or [`CryptError::Envelope`].
    fn check(&self, wrapped: &[u8]) -> Result<(), CryptError>;
}

/// The default [`KeyWrap`] (scheme 1): ECDH on secp256k1 between a fresh ephemeral key and the
/// reader's key (lifted to even y, as BIP-340 does), HKDF-SHA256 with a protocol label and both
/// public keys in the info, then AES-256-GCM of the content key under the derived key.
///
/// Wrapped key: ephemeral public key (33 bytes, compressed SEC1) ‖ encrypted content key (32) ‖
/// tag (16). The nonce is all zeros: every derived key is used exactly once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EcdhWrap;

const WRAP_LABEL: &[u8] = b"agigit-crypt v1 key wrap";
const EPHEMERAL_LEN: usize = 33;
const WRAPPED_LEN: usize = EPHEMERAL_LEN + 32 + 16;

impl EcdhWrap {
    /// AES-256-GCM keyed by HKDF of the shared x coordinate, with both public keys in the info.
    fn kek(shared_x: &[u8], ephemeral: &[u8], reader: &ReaderKey) -> Aes256Gcm {
        let hkdf = Hkdf::<Sha256>::new(None, shared_x);
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit: expansion cannot fail.
        let _ = hkdf.expand_multi_info(&[WRAP_LABEL, ephemeral, &reader.to_bytes()], &mut *key);
        Aes256Gcm::new(&(*key).into())
    }

    fn associated_data(ephemeral: &[u8], reader: &ReaderKey) -> Vec<u8> {
        let mut ad = Vec::with_capacity(EPHEMERAL_LEN + 32);
        ad.extend_from_slice(ephemeral);
        ad.extend_from_slice(&reader.to_bytes());
        ad
    }
}

impl KeyWrap for EcdhWrap {
    fn scheme(&self) -> u8 {
        1
    }

    fn wrapped_len(&self) -> usize {
        WRAPPED_LEN
    }

    fn wrap(&self, key: &ContentKey, reader: &ReaderKey) -> Result<Vec<u8>, CryptError> {
        let ephemeral = ReaderSecret::generate()?;
        let ephemeral_point = ephemeral.inner().public_key().to_sec1_point(true);
        let ephemeral_bytes = ephemeral_point.as_bytes();
        let shared = k256::ecdh::diffie_hellman(
            ephemeral.inner().to_nonzero_scalar(),
            reader.point()?.as_affine(),
        );
        let cipher = Self::kek(shared.raw_secret_bytes(), ephemeral_bytes, reader);
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(ephemeral_bytes);
        out.extend_from_slice(key.as_bytes());
        let ad = Self::associated_data(ephemeral_bytes, reader);
        let body = &mut out[EPHEMERAL_LEN..];
        let tag = cipher
            .encrypt_inout_detached(&[0u8; 12].into(), &ad, body.into())
            .map_err(|_| CryptError::Open)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], secret: &ReaderSecret) -> Result<ContentKey, CryptError> {
        self.check(wrapped)?;
        let (ephemeral_bytes, rest) = wrapped.split_at(EPHEMERAL_LEN);
        let ephemeral = k256::PublicKey::from_sec1_bytes(ephemeral_bytes)
            .map_err(|_| CryptError::InvalidPublicKey)?;
        let reader = secret.public_key();
        let shared =
            k256::ecdh::diffie_hellman(secret.inner().to_nonzero_scalar(), ephemeral.as_affine());
        let cipher = Self::kek(shared.raw_secret_bytes(), ephemeral_bytes, &reader);
        let (body, tag) = rest.split_at(32);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(body);
        let tag = Tag::try_from(tag).map_err(|_| CryptError::Open)?;
        let ad = Self::associated_data(ephemeral_bytes, &reader);
        cipher
            .decrypt_inout_detached(&[0u8; 12].into(), &ad, (&mut key[..]).into(), &tag)
            .map_err(|_| CryptError::Open)?;
        Ok(ContentKey::from_bytes(*key))
    }

    fn check(&self, wrapped: &[u8]) -> Result<(), CryptError> {
        if wrapped.len() != WRAPPED_LEN {
            return Err(CryptError::Envelope {
                reason: "a wrapped key has the wrong length",
            });
        }
        if !matches!(wrapped[0], 0x02 | 0x03) {
            return Err(CryptError::InvalidPublicKey);
        }
        k256::PublicKey::from_sec1_bytes(&wrapped[..EPHEMERAL_LEN])
            .map(|_| ())
            .map_err(|_| CryptError::InvalidPublicKey)
    }
}

/// Magic bytes of an envelope.
pub const ENVELOPE_MAGIC: [u8; 4] = *b"AGKE";
/// The envelope format version.
pub const ENVELOPE_VERSION: u8 = 1;
const ENVELOPE_HEADER: usize = 8;

/// A content key wrapped once per reader. Readers are listed in the clear (their public keys);
/// the key is not.
///
/// Adding a reader wraps for that reader alone. Removing one does not revoke anything the reader
/// already fetched: rotate the content key for content written after the removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    scheme: u8,
    entries: BTreeMap<ReaderKey, Vec<u8>>,
}

impl Envelope {
    /// An envelope with no readers, for keys wrapped by `wrap`.
    pub fn new(wrap: &dyn KeyWrap) -> Self {
        Self {
            scheme: wrap.scheme(),
            entries: BTreeMap::new(),
        }
    }

    /// An envelope of `key` for each of `readers`.
    ///
    /// # Errors
    /// As [`KeyWrap::wrap`].
    pub fn for_readers<'a>(
        wrap: &dyn KeyWrap,
        key: &ContentKey,
        readers: impl IntoIterator<Item = &'a ReaderKey>,
    ) -> Result<Self, CryptError> {
        let mut envelope = Self::new(wrap);
        for reader in readers {
            envelope.add_reader(wrap, key, reader)?;
        }
        Ok(envelope)
    }

    /// Wraps `key` for `reader` (replacing any earlier entry for that reader).
    ///
    /// # Errors
    /// [`CryptError::Envelope`] when `wrap` is another scheme than the envelope's; as
    /// [`KeyWrap::wrap`].
    pub fn add_reader(
        &mut self,
        wrap: &dyn KeyWrap,
        key: &ContentKey,
        reader: &ReaderKey,
    ) -> Result<(), CryptError> {
        if wrap.scheme() != self.scheme {
            return Err(CryptError::Envelope {
                reason: "the key wrap is another scheme than the envelope's",
            });
        }
        self.entries.insert(*reader, wrap.wrap(key, reader)?);
        Ok(())
    }

    /// Removes `reader`'s entry; whether there was one.
    pub fn remove_reader(&mut self, reader: &ReaderKey) -> bool {
        self.entries.remove(reader).is_some()
    }

    /// The readers, in key order.
    pub fn readers(&self) -> impl Iterator<Item = &ReaderKey> {
        self.entries.keys()
    }

    /// Finds `secret`'s entry and unwraps the content key.
    ///
    /// # Errors
    /// [`CryptError::NotARecipient`] when `secret`'s public key has no entry; the opaque
    /// [`CryptError::Open`] when its entry does not open.
    pub fn open(
        &self,
        wrap: &dyn KeyWrap,
        secret: &ReaderSecret,
    ) -> Result<ContentKey, CryptError> {
        if wrap.scheme() != self.scheme {
            return Err(CryptError::Envelope {
                reason: "the key wrap is another scheme than the envelope's",
            });
        }
        let wrapped = self
            .entries
            .get(&secret.public_key())
            .ok_or(CryptError::NotARecipient)?;
        wrap.unwrap(wrapped, secret)
    }

    /// The canonical bytes: `AGKE`, version, scheme, reserved 0, reader count (u16 LE), then per
    /// reader in increasing key order its x-only key (32) and wrapped key.
    pub fn encode(&self) -> Vec<u8> {
        let entry_len = self.entries.values().next().map_or(0, |w| 32 + w.len());
        let mut out = Vec::with_capacity(ENVELOPE_HEADER + self.entries.len() * entry_len);
        out.extend_from_slice(&ENVELOPE_MAGIC);
        out.push(ENVELOPE_VERSION);
        out.push(self.scheme);
        let count = u16::try_from(self.entries.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for (reader, wrapped) in self.entries.iter().take(usize::from(u16::MAX)) {
            out.extend_from_slice(&reader.to_bytes());
            out.extend_from_slice(wrapped);
        }
        out
    }

    /// Reads canonical bytes, checking every reader key and every wrapped key's structure.
    ///
    /// # Errors
    /// [`CryptError::Envelope`] for framing problems, [`CryptError::InvalidPublicKey`] for a
    /// reader or ephemeral key that is not on the curve.
    pub fn decode(bytes: &[u8], wrap: &dyn KeyWrap) -> Result<Self, CryptError> {
        let fail = |reason| Err(CryptError::Envelope { reason });
        let Some(header) = bytes.get(..ENVELOPE_HEADER) else {
            return fail("shorter than its 8-byte header");
        };
        if header[..4] != ENVELOPE_MAGIC {
            return fail("the magic bytes are not \"AGKE\"");
        }
        if header[4] != ENVELOPE_VERSION {
            return fail("unsupported version (this build reads 1)");
        }
        if header[5] != wrap.scheme() {
            return fail("the envelope uses another key-wrap scheme");
        }
        let count = usize::from(u16::from_le_bytes([header[6], header[7]]));
        let entry_len = 32 + wrap.wrapped_len();
        let body = &bytes[ENVELOPE_HEADER..];
        if body.len() != count * entry_len {
            return fail("its length does not match its reader count");
        }
        let mut entries = BTreeMap::new();
        let mut previous: Option<ReaderKey> = None;
        for entry in body.chunks_exact(entry_len) {
            let mut x = [0u8; 32];
            x.copy_from_slice(&entry[..32]);
            let reader = ReaderKey::from_bytes(x)?;
            if previous.is_some_and(|p| p >= reader) {
                return fail("readers are not in strictly increasing order");
            }
            previous = Some(reader);
            wrap.check(&entry[32..])?;
            entries.insert(reader, entry[32..].to_vec());
        }
        Ok(Self {
            scheme: wrap.scheme(),
            entries,
        })
    }
}
