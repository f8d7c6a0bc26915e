//! Private repositories (DESIGN §5): everything a server or relay sees is ciphertext or an opaque
//! name.
//!
//! A private repository's content keys form a [`Keyring`]: one key per key epoch, the current
//! one wrapped for each reader's Nostr key (the owner is always a reader), the earlier ones
//! sealed under it. With them the client:
//! - seals every pack and every pack manifest before erasure coding ([`SealingWriter`], one
//!   AES-256-GCM stream per blob, bound to what the blob is by its associated data), under the
//!   current epoch's key;
//! - seals each commit event's payload (the canonical commit), bound to the commit's opaque name,
//!   and names the epoch in the event's `encryption` tag, so a reader knows which key opens it and
//!   the packs it lists;
//! - publishes opaque names ([`ContentKey::opaque_name`]) in place of commit ids in commit and
//!   state events, and in place of branch names in state events, so a guess of a commit id or a
//!   branch name cannot be confirmed by looking at the relays;
//! - publishes the keyring in the state event, so a reader needs only the repository's
//!   coordinate and their own key.
//!
//! Removing a reader starts a new epoch ([`PrivateKeys::remove_reader`]): what is pushed after
//! it is sealed under a key the removed reader never had. What was pushed before stays readable
//! to anyone who kept its epoch's key: revocation cannot take back what was already given.
//!
//! Locally the keyring lives in `.agigit/keys`; content keys are never written to disk in the
//! clear, they are unwrapped with the user's secret key when needed.

use std::io::{Read as _, Write as _};
use std::path::Path;

use agigit_crypt::{
    AesGcmStream, ContentKey, DEFAULT_SEGMENT_SIZE, EcdhWrap, KeyWrap, Keyring, OpeningReader,
    ReaderKey, ReaderSecret, SealingWriter, SegmentCipher, SegmentOpener,
};
use agigit_dag::refs::RefName;
use agigit_event::nostr::prelude::{Keys, PublicKey};
use agigit_hash::ObjectId;

use crate::error::Error;
use crate::worktree;

/// The name of the encryption scheme in commit events: AES-256-GCM streams under one content
/// key, keys wrapped by ECDH on secp256k1 (`agigit-crypt` v1). Content sealed in key epoch 0
/// names it as is; epoch `n` > 0 as `agigit-crypt-v1/e<n>`.
pub const SCHEME: &str = "agigit-crypt-v1";

/// The `encryption` tag of content sealed in `epoch`.
pub fn scheme_of(epoch: u32) -> String {
    if epoch == 0 {
        SCHEME.to_owned()
    } else {
        format!("{SCHEME}/e{epoch}")
    }
}

/// The key epoch an `encryption` tag names; `None` for another scheme.
pub fn epoch_of(scheme: &str) -> Option<u32> {
    let rest = scheme.strip_prefix(SCHEME)?;
    if rest.is_empty() {
        return Some(0);
    }
    let digits = rest.strip_prefix("/e")?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    canonical.then(|| digits.parse().ok()).flatten()
}

/// What a sealed blob is, bound into its associated data so that one cannot stand in for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sealed<'a> {
    /// A pack.
    Pack,
    /// A pack manifest.
    Manifest,
    /// The payload of the commit event with this opaque name.
    Commit(&'a ObjectId),
    /// The ref directory in a state of this repository.
    Refs(&'a agigit_event::RepoId),
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
            Sealed::Refs(repo) => {
                let mut ad = b"agigit refs ".to_vec();
                ad.extend_from_slice(repo.as_str().as_bytes());
                ad
            }
        }
    }
}

/// A private repository's keys as a client holds them: the keyring (every epoch's content key,
/// unwrapped), the key wrap it uses, and the cipher that seals packs, manifests and commits
/// under them ([`AesGcmStream`] in 64 KiB segments unless [`with_cipher`](Self::with_cipher)
/// says otherwise).
///
/// `Debug` does not print a key. Cloning copies the keys: it is how sealing and opening are
/// handed to the CPU pool.
#[derive(Clone)]
pub struct PrivateKeys {
    ring: Keyring,
    wrap: std::sync::Arc<dyn KeyWrap>,
    cipher: std::sync::Arc<dyn SegmentCipher>,
}

/// The cipher a repository's content is sealed with unless its keys say otherwise.
fn default_cipher() -> std::sync::Arc<dyn SegmentCipher> {
    std::sync::Arc::new(AesGcmStream::default())
}

impl std::fmt::Debug for PrivateKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKeys")
            .field("epoch", &self.ring.epoch())
            .field("readers", &self.ring.readers().count())
            .finish_non_exhaustive()
    }
}

/// A closure turning a key operation's error into [`Error::InvalidInput`] about `what`.
fn crypt(what: &'static str) -> impl FnOnce(agigit_crypt::CryptError) -> Error {
    Error::invalid_input(what)
}

/// The reader's key of a Nostr public key (its x-only bytes).
///
/// # Errors
/// [`Error::InvalidInput`] for bytes that are not a point's x coordinate.
pub fn reader_key(key: &PublicKey) -> Result<ReaderKey, Error> {
    ReaderKey::from_bytes(key.to_bytes()).map_err(crypt("a reader's public key"))
}

/// The reader's secret of Nostr keys (to open the envelopes wrapped for their public key).
///
/// # Errors
/// [`Error::InvalidInput`] for a secret not below the group order.
pub fn reader_secret(keys: &Keys) -> Result<ReaderSecret, Error> {
    let bytes = zeroize::Zeroizing::new(keys.secret_key().secret_bytes());
    ReaderSecret::from_bytes(&bytes).map_err(crypt("a reader's secret key"))
}

impl PrivateKeys {
    /// A fresh content key (epoch 0), wrapped with the default [`EcdhWrap`] for `owner` and
    /// `readers`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when no randomness is available.
    pub fn generate(owner: &ReaderSecret, readers: &[ReaderKey]) -> Result<Self, Error> {
        Self::generate_with(std::sync::Arc::new(EcdhWrap), owner, readers)
    }

    /// As [`generate`](Self::generate), with another key wrap.
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn generate_with(
        wrap: std::sync::Arc<dyn KeyWrap>,
        owner: &ReaderSecret,
        readers: &[ReaderKey],
    ) -> Result<Self, Error> {
        let owner_key = owner.public_key();
        let ring = Keyring::generate(wrap.as_ref(), std::iter::once(&owner_key).chain(readers))
            .map_err(crypt("a new content key"))?;
        Ok(Self {
            ring,
            wrap,
            cipher: default_cipher(),
        })
    }

    /// The same keys sealing and opening with `cipher` instead of the default AES-256-GCM
    /// stream: every reader must open with the same cipher (the repository's events name the
    /// scheme `agigit-crypt-v1` whatever the cipher, so readers learn it out of band, as they
    /// do a custom [`KeyWrap`]).
    #[must_use]
    pub fn with_cipher(mut self, cipher: std::sync::Arc<dyn SegmentCipher>) -> Self {
        self.cipher = cipher;
        self
    }

    /// Opens an encoded keyring with `secret`, using the default [`EcdhWrap`].
    ///
    /// # Errors
    /// [`Error::NotAReader`] when `secret` is not a current reader or its entry does not open;
    /// [`Error::CorruptData`] for malformed bytes.
    pub fn open(keyring: &[u8], secret: &ReaderSecret) -> Result<Self, Error> {
        Self::open_with(std::sync::Arc::new(EcdhWrap), keyring, secret)
    }

    /// As [`open`](Self::open), with another key wrap.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(
        wrap: std::sync::Arc<dyn KeyWrap>,
        keyring: &[u8],
        secret: &ReaderSecret,
    ) -> Result<Self, Error> {
        let ring = Keyring::open(keyring, wrap.as_ref(), secret).map_err(|e| match e {
            agigit_crypt::CryptError::NotARecipient | agigit_crypt::CryptError::Open => {
                Error::NotAReader
            }
            other => Error::corrupt_data("the repository's keyring")(other),
        })?;
        Ok(Self {
            ring,
            wrap,
            cipher: default_cipher(),
        })
    }

    /// Wraps the current key for `reader` too. It reaches the relays with the next push; it
    /// opens everything pushed to this repository, earlier epochs included.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when no randomness is available.
    pub fn add_reader(&mut self, reader: &ReaderKey) -> Result<(), Error> {
        self.ring
            .add_reader(self.wrap.as_ref(), reader)
            .map_err(crypt("wrapping the key for a reader"))
    }

    /// Removes `reader` and starts a new key epoch: everything pushed from now on is sealed under
    /// a fresh key that only the remaining readers hold. Content pushed before stays readable to
    /// a removed reader who kept the earlier key. Returns whether `reader` was a reader.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when no randomness is available or no epoch is left.
    pub fn remove_reader(&mut self, reader: &ReaderKey) -> Result<bool, Error> {
        self.ring
            .remove_reader(self.wrap.as_ref(), reader)
            .map_err(crypt("a new key epoch"))
    }

    /// The readers' keys.
    pub fn readers(&self) -> impl Iterator<Item = &ReaderKey> {
        self.ring.readers()
    }

    /// The current key epoch.
    pub fn epoch(&self) -> u32 {
        self.ring.epoch()
    }

    /// The keyring's canonical bytes (what the state event carries and `.agigit/keys` holds).
    pub fn envelope_bytes(&self) -> Vec<u8> {
        self.ring.encode()
    }

    /// The `encryption` tag of what is sealed now.
    pub(crate) fn scheme(&self) -> String {
        scheme_of(self.ring.epoch())
    }

    fn key(&self, epoch: u32) -> Result<&ContentKey, Error> {
        self.ring.key(epoch).ok_or_else(|| {
            Error::Corrupt(format!(
                "content sealed in key epoch {epoch}, which this keyring (epoch {}) does not hold",
                self.ring.epoch()
            ))
        })
    }

    /// The opaque name published in place of commit `id` now (under the current epoch's key).
    pub fn commit_name(&self, id: &ObjectId) -> ObjectId {
        commit_name(self.ring.current(), id)
    }

    /// The opaque name of commit `id` under `epoch`'s key.
    pub(crate) fn commit_name_in(&self, epoch: u32, id: &ObjectId) -> Result<ObjectId, Error> {
        Ok(commit_name(self.key(epoch)?, id))
    }

    /// Whether `name` is the opaque name of commit `id` under any epoch's key (what a commit
    /// pushed in an earlier epoch was published as).
    pub(crate) fn is_name_of(&self, id: &ObjectId, name: &ObjectId) -> bool {
        self.ring.keys().any(|(_, k)| commit_name(k, id) == *name)
    }

    /// The ref a private state publishes for `branch` now: `refs/heads/x<32 hex>`, an opaque
    /// name under the current epoch's key.
    ///
    /// # Errors
    /// [`Error::RefName`] (never for a name made here).
    pub fn branch_ref(&self, branch: &str) -> Result<RefName, Error> {
        branch_ref(self.ring.current(), branch)
    }

    /// Every ref `branch` may be published under (one per epoch, newest first).
    pub(crate) fn branch_refs(&self, branch: &str) -> Result<Vec<RefName>, Error> {
        self.ring
            .keys()
            .map(|(_, k)| branch_ref(k, branch))
            .collect()
    }

    /// A writer that seals what is written into it as `what` under the current key, into
    /// `inner`; call [`SealingWriter::finish`].
    pub(crate) fn sealing_writer<W: std::io::Write>(
        &self,
        what: Sealed<'_>,
        inner: W,
    ) -> Result<SealingWriter<W>, Error> {
        SealingWriter::new(
            inner,
            self.ring.current(),
            &what.associated_data(),
            self.cipher.as_ref(),
        )
        .map_err(Error::invalid_input("sealing"))
    }

    /// A reader of the plaintext of `inner`, sealed as `what` in `epoch`; every byte it returns
    /// is authenticated, and a failure is an `InvalidData` I/O error.
    pub(crate) fn opening_reader<R: std::io::Read>(
        &self,
        what: Sealed<'_>,
        epoch: u32,
        inner: R,
    ) -> Result<OpeningReader<R>, Error> {
        OpeningReader::with_cipher(
            inner,
            self.key(epoch)?,
            &what.associated_data(),
            self.cipher.as_ref(),
        )
        .map_err(|e| open_failed(what, e))
    }

    /// An opener of the segments of an object sealed as `what` in `epoch`, one at a time, from
    /// its first bytes (`header`, at least 48) and its sealed length: for reading a few bytes
    /// of a large sealed pack.
    pub(crate) fn segment_opener(
        &self,
        what: Sealed<'_>,
        epoch: u32,
        header: &[u8],
        sealed_len: u64,
    ) -> Result<SegmentOpener, Error> {
        SegmentOpener::with_cipher(
            self.key(epoch)?,
            &what.associated_data(),
            header,
            sealed_len,
            self.cipher.as_ref(),
        )
        .map_err(|e| open_failed(what, e))
    }

    /// The length of `plain_len` bytes sealed (what [`sealing_writer`](Self::sealing_writer)
    /// writes of them).
    pub(crate) fn sealed_len(&self, plain_len: u64) -> u64 {
        self.cipher.sealed_len(plain_len)
    }

    /// Seals `plain` as `what` under the current key.
    pub(crate) fn seal(&self, what: Sealed<'_>, plain: &[u8]) -> Result<Vec<u8>, Error> {
        let sealed_len = usize::try_from(self.cipher.sealed_len(plain.len() as u64))
            .unwrap_or(plain.len() + plain.len() / DEFAULT_SEGMENT_SIZE * 16 + 64);
        let out = Vec::with_capacity(sealed_len);
        let mut writer = self.sealing_writer(what, out)?;
        writer
            .write_all(plain)
            .map_err(Error::invalid_input("sealing"))?;
        writer.finish().map_err(Error::invalid_input("sealing"))
    }

    /// Opens `sealed` as `what`, sealed in `epoch`; every byte returned is authenticated.
    pub(crate) fn open_sealed(
        &self,
        what: Sealed<'_>,
        epoch: u32,
        sealed: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut reader = self.opening_reader(what, epoch, sealed)?;
        let mut plain = Vec::with_capacity(sealed.len());
        reader
            .read_to_end(&mut plain)
            .map_err(|e| open_failed(what, e))?;
        Ok(plain)
    }
}

fn commit_name(key: &ContentKey, id: &ObjectId) -> ObjectId {
    ObjectId::from_bytes(key.opaque_name(b"commit", id.as_bytes()))
}

fn branch_ref(key: &ContentKey, branch: &str) -> Result<RefName, Error> {
    let name = key.opaque_name(b"branch", branch.as_bytes());
    let hex: String = name[..16].iter().map(|b| format!("{b:02x}")).collect();
    RefName::branch(&format!("x{hex}")).map_err(Error::from)
}

fn open_failed<E: std::error::Error + Send + Sync + 'static>(what: Sealed<'_>, e: E) -> Error {
    Error::corrupt_data(format_args!(
        "a sealed {} does not open with this repository's key (altered, or sealed under another key)",
        match what {
            Sealed::Pack => "pack",
            Sealed::Manifest => "pack manifest",
            Sealed::Commit(_) => "commit",
            Sealed::Refs(_) => "ref directory",
        }
    ))(e)
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
