//! A repository's content keys across key epochs: what lets the owner revoke a reader.
//!
//! Removing a reader from an [`Envelope`] alone revokes nothing: the content key stays the same,
//! and the removed reader opens everything written after. A [`Keyring`] rotates instead: removing
//! a reader starts a new epoch with a fresh content key, wrapped for the remaining readers only;
//! the earlier epochs' keys travel sealed under the new one, so every current reader still opens
//! the whole history. Content sealed in an epoch names it (the caller records which), and opens
//! with that epoch's key.
//!
//! What revocation does not do: content written before the removal stays readable to a key that
//! already held its epoch's key (a removed reader who kept it, or the bytes).
//!
//! # Format
//! Epoch 0 with no earlier keys encodes as its plain [`Envelope`] (`AGKE…`), as before epochs
//! existed. Otherwise:
//!
//! ```text
//! "AGKB" ‖ version (1) ‖ epoch (u32 LE) ‖ envelope length (u32 LE) ‖ envelope (wraps the
//! current key) ‖ nonce (12) ‖ AES-256-GCM(ring key, nonce, AD = the 9 bytes before the envelope
//! length, plaintext = count (u16 LE) ‖ count × (epoch (u32 LE) ‖ key (32))) ‖ tag (16)
//! ```
//!
//! The ring key is `opaque_name(current key, label "keyring", epoch (u32 LE))`. Earlier epochs
//! are listed once each, in increasing order, all below the current one.

use std::collections::BTreeMap;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Tag};
use zeroize::Zeroizing;

use crate::error::CryptError;
use crate::key::{ContentKey, ReaderKey, ReaderSecret};
use crate::wrap::{ENVELOPE_MAGIC, Envelope, KeyWrap};

/// The magic of an encoded keyring with epochs.
pub const KEYRING_MAGIC: [u8; 4] = *b"AGKB";
/// The keyring format's version.
pub const KEYRING_VERSION: u8 = 1;
/// The most key epochs a keyring holds.
pub const MAX_EPOCHS: u32 = 65_535;

const HEAD: usize = 4 + 1 + 4;
const NONCE: usize = 12;
const TAG: usize = 16;
const ENTRY: usize = 4 + 32;

/// Content keys by epoch, the current one wrapped for every current reader.
///
/// `Debug` prints no key.
#[derive(Clone)]
pub struct Keyring {
    epoch: u32,
    keys: BTreeMap<u32, ContentKey>,
    envelope: Envelope,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("epoch", &self.epoch)
            .field("readers", &self.envelope.readers().count())
            .finish_non_exhaustive()
    }
}

fn bad(reason: &'static str) -> CryptError {
    CryptError::Envelope { reason }
}

fn ring_cipher(current: &ContentKey, epoch: u32) -> Aes256Gcm {
    let key = Zeroizing::new(current.opaque_name(b"keyring", &epoch.to_le_bytes()));
    Aes256Gcm::new(&(*key).into())
}

impl Keyring {
    /// Epoch 0: a fresh content key wrapped for `readers`.
    ///
    /// # Errors
    /// [`CryptError::Random`] when no randomness is available.
    pub fn generate<'a>(
        wrap: &dyn KeyWrap,
        readers: impl IntoIterator<Item = &'a ReaderKey>,
    ) -> Result<Self, CryptError> {
        let key = ContentKey::generate()?;
        let envelope = Envelope::for_readers(wrap, &key, readers)?;
        Ok(Keyring {
            epoch: 0,
            keys: BTreeMap::from([(0, key)]),
            envelope,
        })
    }

    /// The current epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The current epoch's key: what new content is sealed with.
    pub fn current(&self) -> &ContentKey {
        // The current epoch's key is always present (every constructor puts it there).
        &self.keys[&self.epoch]
    }

    /// The key of `epoch`, if this keyring holds it.
    pub fn key(&self, epoch: u32) -> Option<&ContentKey> {
        self.keys.get(&epoch)
    }

    /// Every epoch's key, newest first.
    pub fn keys(&self) -> impl Iterator<Item = (u32, &ContentKey)> {
        self.keys.iter().rev().map(|(e, k)| (*e, k))
    }

    /// The current readers.
    pub fn readers(&self) -> impl Iterator<Item = &ReaderKey> {
        self.envelope.readers()
    }

    /// Wraps the current key for `reader` too: they open every epoch from now on.
    ///
    /// # Errors
    /// As [`Envelope::add_reader`].
    pub fn add_reader(&mut self, wrap: &dyn KeyWrap, reader: &ReaderKey) -> Result<(), CryptError> {
        let key = &self.keys[&self.epoch];
        self.envelope.add_reader(wrap, key, reader)
    }

    /// Removes `reader` and starts a new epoch: a fresh key wrapped for the remaining readers,
    /// which the removed one cannot open. Returns whether `reader` was a reader (nothing changes
    /// when it was not).
    ///
    /// # Errors
    /// [`CryptError::Random`]; [`CryptError::Params`] past [`MAX_EPOCHS`].
    pub fn remove_reader(
        &mut self,
        wrap: &dyn KeyWrap,
        reader: &ReaderKey,
    ) -> Result<bool, CryptError> {
        if !self.envelope.readers().any(|r| r == reader) {
            return Ok(false);
        }
        let epoch = self
            .epoch
            .checked_add(1)
            .filter(|e| *e <= MAX_EPOCHS)
            .ok_or(CryptError::Params {
                reason: "no key epoch is left",
            })?;
        let key = ContentKey::generate()?;
        let remaining: Vec<ReaderKey> = self
            .envelope
            .readers()
            .filter(|r| *r != reader)
            .copied()
            .collect();
        self.envelope = Envelope::for_readers(wrap, &key, &remaining)?;
        self.keys.insert(epoch, key);
        self.epoch = epoch;
        Ok(true)
    }

    /// The encoded keyring (see the module docs). Deterministic: the same keyring encodes to
    /// the same bytes, so a client can tell whether the one published is current.
    pub fn encode(&self) -> Vec<u8> {
        let envelope = self.envelope.encode();
        if self.epoch == 0 && self.keys.len() == 1 {
            return envelope;
        }
        let older: Vec<(&u32, &ContentKey)> = self.keys.range(..self.epoch).collect();
        // At most `MAX_EPOCHS` (checked when an epoch starts).
        let count = u16::try_from(older.len()).unwrap_or(u16::MAX);
        let mut out =
            Vec::with_capacity(HEAD + 4 + envelope.len() + NONCE + 2 + older.len() * ENTRY + TAG);
        out.extend_from_slice(&KEYRING_MAGIC);
        out.push(KEYRING_VERSION);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        let ad = out.clone();
        // An envelope holds at most 65535 readers of 113 bytes: far below 4 GiB.
        let len = u32::try_from(envelope.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&envelope);
        // The nonce is derived, not drawn: one ring key (one per current key and epoch) only ever
        // seals one plaintext (the earlier epochs' keys never change within an epoch).
        let mut nonce = [0u8; NONCE];
        nonce.copy_from_slice(
            &self
                .current()
                .opaque_name(b"keyring nonce", &self.epoch.to_le_bytes())[..NONCE],
        );
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(&count.to_le_bytes());
        for (epoch, key) in older {
            out.extend_from_slice(&epoch.to_le_bytes());
            out.extend_from_slice(key.as_bytes());
        }
        match ring_cipher(self.current(), self.epoch).encrypt_inout_detached(
            &nonce.into(),
            &ad,
            (&mut out[start..]).into(),
        ) {
            Ok(tag) => out.extend_from_slice(&tag),
            // AES-GCM refuses only plaintexts of more than 64 GiB; this one is under 3 MB.
            Err(_) => unreachable!("a keyring is far below AES-GCM's plaintext limit"),
        }
        out
    }

    /// The epoch and envelope of encoded bytes, their structure checked, without any secret:
    /// what a client can say of a keyring it cannot open.
    ///
    /// # Errors
    /// [`CryptError::Envelope`] (or another framing error of the envelope inside).
    pub fn decode_public(bytes: &[u8], wrap: &dyn KeyWrap) -> Result<(u32, Envelope), CryptError> {
        if bytes.starts_with(&ENVELOPE_MAGIC) {
            return Ok((0, Envelope::decode(bytes, wrap)?));
        }
        let (epoch, envelope, _) = split(bytes)?;
        let envelope = Envelope::decode(envelope, wrap)?;
        Ok((epoch, envelope))
    }

    /// Opens encoded bytes with `secret`: the current key from the envelope, the earlier ones
    /// from the sealed list.
    ///
    /// # Errors
    /// [`CryptError::NotARecipient`] when `secret` is not a current reader; the opaque
    /// [`CryptError::Open`] when anything fails to authenticate; framing errors.
    pub fn open(
        bytes: &[u8],
        wrap: &dyn KeyWrap,
        secret: &ReaderSecret,
    ) -> Result<Self, CryptError> {
        if bytes.starts_with(&ENVELOPE_MAGIC) {
            let envelope = Envelope::decode(bytes, wrap)?;
            let key = envelope.open(wrap, secret)?;
            return Ok(Keyring {
                epoch: 0,
                keys: BTreeMap::from([(0, key)]),
                envelope,
            });
        }
        let (epoch, envelope, sealed) = split(bytes)?;
        let envelope = Envelope::decode(envelope, wrap)?;
        let current = envelope.open(wrap, secret)?;
        let (nonce, rest) = sealed.split_at(NONCE);
        let (body, tag) = rest.split_at(rest.len() - TAG);
        let mut plain = Zeroizing::new(body.to_vec());
        let tag = Tag::try_from(tag).map_err(|_| CryptError::Open)?;
        let nonce: [u8; NONCE] = nonce.try_into().map_err(|_| CryptError::Open)?;
        ring_cipher(&current, epoch)
            .decrypt_inout_detached(&nonce.into(), &bytes[..HEAD], (&mut plain[..]).into(), &tag)
            .map_err(|_| CryptError::Open)?;
        let count = usize::from(u16::from_le_bytes([plain[0], plain[1]]));
        if plain.len() != 2 + count * ENTRY {
            return Err(bad("the sealed key list's length does not match its count"));
        }
        let mut keys = BTreeMap::new();
        for entry in plain[2..].chunks_exact(ENTRY) {
            let e = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
            if e >= epoch || keys.last_key_value().is_some_and(|(last, _)| *last >= e) {
                return Err(bad("earlier epochs out of order, repeated or not earlier"));
            }
            let mut key = Zeroizing::new([0u8; 32]);
            key.copy_from_slice(&entry[4..]);
            keys.insert(e, ContentKey::from_bytes(*key));
        }
        keys.insert(epoch, current);
        Ok(Keyring {
            epoch,
            keys,
            envelope,
        })
    }
}

/// Splits a keyring with epochs into its epoch, envelope bytes and sealed list (nonce, body,
/// tag), checking the framing.
fn split(bytes: &[u8]) -> Result<(u32, &[u8], &[u8]), CryptError> {
    let head = bytes
        .get(..HEAD + 4)
        .ok_or(bad("shorter than a keyring's header"))?;
    if head[..4] != KEYRING_MAGIC {
        return Err(bad(
            "neither an envelope (\"AGKE\") nor a keyring (\"AGKB\")",
        ));
    }
    if head[4] != KEYRING_VERSION {
        return Err(bad("unsupported keyring version (this build reads 1)"));
    }
    let epoch = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
    if epoch == 0 {
        return Err(bad("a keyring of epoch 0 is a plain envelope"));
    }
    let len = u32::from_le_bytes([head[9], head[10], head[11], head[12]]) as usize;
    let rest = &bytes[HEAD + 4..];
    if rest.len() < len {
        return Err(bad("the envelope is cut short"));
    }
    let (envelope, sealed) = rest.split_at(len);
    if sealed.len() < NONCE + 2 + TAG || !(sealed.len() - NONCE - 2 - TAG).is_multiple_of(ENTRY) {
        return Err(bad("the sealed key list has a wrong length"));
    }
    Ok((epoch, envelope, sealed))
}
