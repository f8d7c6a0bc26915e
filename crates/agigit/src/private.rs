//! Private repositories (DESIGN §5): everything a server or relay sees is ciphertext or an opaque
//! name.
//!
//! A private repository has one content key, wrapped for each reader's Nostr key in an
//! [`Envelope`] (the owner is always a reader). With it the client:
//! - seals every pack and every pack manifest before erasure coding ([`SealingWriter`], one
//!   AES-256-GCM stream per blob, bound to what the blob is by its associated data);
//! - seals each commit event's payload (the canonical commit), bound to the commit's opaque name;
//! - publishes opaque names ([`ContentKey::opaque_name`]) in place of commit ids in commit and
//!   state events, so a guess of a commit id cannot be confirmed by looking at the relays;
//! - publishes the envelope in the state event, so a reader needs only the repository's
//!   coordinate and their own key.
//!
//! Locally the envelope lives in `.agigit/keys`; the content key is never written to disk, it is
//! unwrapped with the user's secret key when needed.

use std::io::{Read as _, Write as _};
use std::path::Path;

use agigit_crypt::{
    AesGcmStream, ContentKey, DEFAULT_SEGMENT_SIZE, EcdhWrap, Envelope, KeyWrap, OpeningReader,
    ReaderKey, ReaderSecret, SealingWriter,
};
use agigit_event::nostr::prelude::{Keys, PublicKey};
use agigit_hash::ObjectId;

use crate::error::Error;
use crate::worktree;

/// The name of the encryption scheme in commit events: AES-256-GCM streams under one content
/// key, keys wrapped by ECDH on secp256k1 (`agigit-crypt` v1).
pub const SCHEME: &str = "agigit-crypt-v1";

/// What a sealed blob is, bound into its associated data so that one cannot stand in for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sealed<'a> {
    /// A pack.
    Pack,
    /// A pack manifest.
    Manifest,
    /// The payload of the commit event with this opaque name.
    Commit(&'a ObjectId),
}

impl Sealed<'_> {
    fn associated_data(self) -> Vec<u8> {
        match self {
            Sealed::Pack => b"agigit pack".to_vec(),
            Sealed::Manifest => b"agigit manifest".to_vec(),
            Sealed::Commit(name) => {
                let mut ad = b"agigit commit ".to_vec();
                ad.extend_from_slice(name.as_bytes());
                ad
            }
        }
    }
}

/// A private repository's keys as a client holds them: the content key, unwrapped, and the
/// envelope that wraps it for every reader.
///
/// `Debug` does not print the key.
pub struct PrivateKeys {
    key: ContentKey,
    envelope: Envelope,
    wrap: Box<dyn KeyWrap>,
}

impl std::fmt::Debug for PrivateKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKeys")
            .field("readers", &self.envelope.readers().count())
            .finish_non_exhaustive()
    }
}

fn crypt(e: agigit_crypt::CryptError) -> Error {
    Error::Invalid(e.to_string())
}

/// The reader's key of a Nostr public key (its x-only bytes).
///
/// # Errors
/// [`Error::Invalid`] for bytes that are not a point's x coordinate.
pub fn reader_key(key: &PublicKey) -> Result<ReaderKey, Error> {
    ReaderKey::from_bytes(key.to_bytes()).map_err(crypt)
}

/// The reader's secret of Nostr keys (to open the envelopes wrapped for their public key).
///
/// # Errors
/// [`Error::Invalid`] for a secret not below the group order.
pub fn reader_secret(keys: &Keys) -> Result<ReaderSecret, Error> {
    let bytes = zeroize::Zeroizing::new(keys.secret_key().secret_bytes());
    ReaderSecret::from_bytes(&bytes).map_err(crypt)
}

impl PrivateKeys {
    /// A fresh content key, wrapped with the default [`EcdhWrap`] for `owner` and `readers`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when no randomness is available.
    pub fn generate(owner: &ReaderSecret, readers: &[ReaderKey]) -> Result<Self, Error> {
        Self::generate_with(Box::new(EcdhWrap), owner, readers)
    }

    /// As [`generate`](Self::generate), with another key wrap.
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn generate_with(
        wrap: Box<dyn KeyWrap>,
        owner: &ReaderSecret,
        readers: &[ReaderKey],
    ) -> Result<Self, Error> {
        let key = ContentKey::generate().map_err(crypt)?;
        let owner_key = owner.public_key();
        let envelope = Envelope::for_readers(
            wrap.as_ref(),
            &key,
            std::iter::once(&owner_key).chain(readers),
        )
        .map_err(crypt)?;
        Ok(Self {
            key,
            envelope,
            wrap,
        })
    }

    /// Opens an encoded envelope with `secret`, using the default [`EcdhWrap`].
    ///
    /// # Errors
    /// [`Error::NotAReader`] when `secret` has no entry or its entry does not open;
    /// [`Error::Corrupt`] for malformed envelope bytes.
    pub fn open(envelope: &[u8], secret: &ReaderSecret) -> Result<Self, Error> {
        Self::open_with(Box::new(EcdhWrap), envelope, secret)
    }

    /// As [`open`](Self::open), with another key wrap.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(
        wrap: Box<dyn KeyWrap>,
        envelope: &[u8],
        secret: &ReaderSecret,
    ) -> Result<Self, Error> {
        let envelope = Envelope::decode(envelope, wrap.as_ref())
            .map_err(|e| Error::Corrupt(format!("the repository's key envelope: {e}")))?;
        let key = envelope
            .open(wrap.as_ref(), secret)
            .map_err(|_| Error::NotAReader)?;
        Ok(Self {
            key,
            envelope,
            wrap,
        })
    }

    /// Wraps the content key for `reader` too. It reaches the relays with the next push; it
    /// opens everything pushed with this key, earlier content included.
    ///
    /// # Errors
    /// [`Error::Invalid`] when no randomness is available.
    pub fn add_reader(&mut self, reader: &ReaderKey) -> Result<(), Error> {
        self.envelope
            .add_reader(self.wrap.as_ref(), &self.key, reader)
            .map_err(crypt)
    }

    /// Removes `reader`'s entry; whether there was one. This does not revoke what the reader
    /// could already fetch.
    pub fn remove_reader(&mut self, reader: &ReaderKey) -> bool {
        self.envelope.remove_reader(reader)
    }

    /// The readers' keys.
    pub fn readers(&self) -> impl Iterator<Item = &ReaderKey> {
        self.envelope.readers()
    }

    /// The envelope's canonical bytes (what the state event carries).
    pub fn envelope_bytes(&self) -> Vec<u8> {
        self.envelope.encode()
    }

    /// The opaque name published in place of commit `id`.
    pub fn commit_name(&self, id: &ObjectId) -> ObjectId {
        ObjectId::from_bytes(self.key.opaque_name(b"commit", id.as_bytes()))
    }

    /// A writer that seals what is written into it as `what`, into `inner`; call
    /// [`SealingWriter::finish`].
    pub(crate) fn sealing_writer<W: std::io::Write>(
        &self,
        what: Sealed<'_>,
        inner: W,
    ) -> Result<SealingWriter<W>, Error> {
        let cipher = AesGcmStream::new(DEFAULT_SEGMENT_SIZE).map_err(crypt)?;
        SealingWriter::new(inner, &self.key, &what.associated_data(), cipher)
            .map_err(|e| Error::Invalid(format!("sealing: {e}")))
    }

    /// A reader of the plaintext of `inner`, sealed as `what`; every byte it returns is
    /// authenticated, and a failure is an `InvalidData` I/O error.
    pub(crate) fn opening_reader<R: std::io::Read>(
        &self,
        what: Sealed<'_>,
        inner: R,
    ) -> Result<OpeningReader<R>, Error> {
        OpeningReader::new(inner, &self.key, &what.associated_data())
            .map_err(|e| open_failed(what, &e))
    }

    /// Seals `plain` as `what`.
    pub(crate) fn seal(&self, what: Sealed<'_>, plain: &[u8]) -> Result<Vec<u8>, Error> {
        let out = Vec::with_capacity(plain.len() + plain.len() / DEFAULT_SEGMENT_SIZE * 16 + 64);
        let mut writer = self.sealing_writer(what, out)?;
        writer
            .write_all(plain)
            .map_err(|e| Error::Invalid(format!("sealing: {e}")))?;
        writer
            .finish()
            .map_err(|e| Error::Invalid(format!("sealing: {e}")))
    }

    /// Opens `sealed` as `what`; every byte returned is authenticated.
    pub(crate) fn open_sealed(&self, what: Sealed<'_>, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let mut reader = self.opening_reader(what, sealed)?;
        let mut plain = Vec::with_capacity(sealed.len());
        reader
            .read_to_end(&mut plain)
            .map_err(|e| open_failed(what, &e))?;
        Ok(plain)
    }
}

fn open_failed(what: Sealed<'_>, e: &std::io::Error) -> Error {
    Error::Corrupt(format!(
        "a sealed {} does not open with this repository's key (altered, or sealed under another key): {e}",
        match what {
            Sealed::Pack => "pack",
            Sealed::Manifest => "pack manifest",
            Sealed::Commit(_) => "commit",
        }
    ))
}

/// Where a repository keeps its envelope.
fn keys_path(root: &Path) -> std::path::PathBuf {
    root.join(worktree::DOT_DIR).join("keys")
}

/// Reads `.agigit/keys` if present.
pub(crate) fn read_envelope(root: &Path) -> Result<Option<Vec<u8>>, Error> {
    let path = keys_path(root);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path)(e)),
    }
}

/// Writes an encoded envelope to `.agigit/keys` atomically.
pub(crate) fn write_envelope(root: &Path, envelope: &[u8]) -> Result<(), Error> {
    let path = keys_path(root);
    worktree::write_atomic(&path, false, |f| {
        f.write_all(envelope).map_err(Error::io(&path))
    })
}
