//! A private repository's keys: the envelope in `.agigit/keys`, its readers.

use std::sync::Arc;

use crate::Repository;
use crate::error::Error;
use crate::private::PrivateKeys;

impl Repository {
    /// Whether this repository is private (it has a key envelope in `.agigit/keys`).
    ///
    /// # Errors
    /// I/O errors.
    pub fn is_private(&self) -> Result<bool, Error> {
        Ok(crate::private::read_envelope(&self.root)?.is_some())
    }

    /// Who can read this private repository: the readers its envelope lists in the clear (the
    /// owner among them), read without any secret; `None` for a public repository.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a malformed `.agigit/keys`; I/O errors.
    pub fn readers(&self) -> Result<Option<Vec<crate::crypt::ReaderKey>>, Error> {
        let Some(bytes) = crate::private::read_envelope(&self.root)? else {
            return Ok(None);
        };
        let (_, envelope) = agigit_crypt::Keyring::decode_public(&bytes, &agigit_crypt::EcdhWrap)
            .map_err(Error::corrupt_data("the repository's keyring"))?;
        Ok(Some(envelope.readers().copied().collect()))
    }

    /// Makes this repository private: a fresh content key wrapped for `owner` and `readers`.
    /// Everything pushed from now on is encrypted before it is sharded.
    ///
    /// # Errors
    /// [`Error::Invalid`] when it is private already (add readers with
    /// [`PrivateKeys::add_reader`] and [`save_private_keys`](Self::save_private_keys)); I/O errors.
    pub fn make_private(
        &self,
        owner: &crate::crypt::ReaderSecret,
        readers: &[crate::crypt::ReaderKey],
    ) -> Result<PrivateKeys, Error> {
        self.make_private_with(Arc::new(crate::crypt::EcdhWrap), owner, readers)
    }

    /// [`make_private`](Self::make_private) with the key wrap `wrap` (a hardware-held or remote
    /// wrapper, say) instead of the default `EcdhWrap`.
    ///
    /// # Errors
    /// As [`make_private`](Self::make_private).
    pub fn make_private_with(
        &self,
        wrap: Arc<dyn crate::crypt::KeyWrap>,
        owner: &crate::crypt::ReaderSecret,
        readers: &[crate::crypt::ReaderKey],
    ) -> Result<PrivateKeys, Error> {
        if self.is_private()? {
            return Err(Error::Invalid(
                "this repository is private already: add readers instead".to_owned(),
            ));
        }
        let keys = PrivateKeys::generate_with(wrap, owner, readers)?;
        crate::private::write_envelope(self.root(), &keys.envelope_bytes())?;
        Ok(keys)
    }

    /// The private repository's keys, unwrapped with `secret`; `None` for a public repository.
    ///
    /// # Errors
    /// [`Error::NotAReader`] when `secret` is not a reader's; [`Error::Corrupt`] for a malformed
    /// `.agigit/keys`.
    pub fn private_keys(
        &self,
        secret: &crate::crypt::ReaderSecret,
    ) -> Result<Option<PrivateKeys>, Error> {
        self.private_keys_with(Arc::new(crate::crypt::EcdhWrap), secret)
    }

    /// [`private_keys`](Self::private_keys) unwrapped by `wrap` instead of the default
    /// `EcdhWrap` (it must be the wrap the keys were made with).
    ///
    /// # Errors
    /// As [`private_keys`](Self::private_keys).
    pub fn private_keys_with(
        &self,
        wrap: Arc<dyn crate::crypt::KeyWrap>,
        secret: &crate::crypt::ReaderSecret,
    ) -> Result<Option<PrivateKeys>, Error> {
        crate::private::read_envelope(self.root())?
            .map(|bytes| PrivateKeys::open_with(wrap, &bytes, secret))
            .transpose()
    }

    /// Records `keys`' envelope (after adding or removing readers) in `.agigit/keys`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save_private_keys(&self, keys: &PrivateKeys) -> Result<(), Error> {
        crate::private::write_envelope(&self.root, &keys.envelope_bytes())
    }
}
