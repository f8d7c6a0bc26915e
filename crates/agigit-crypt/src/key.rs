//! Keys: the content key that encrypts a repository's objects, and readers' Nostr keys.

use core::fmt;

use k256::elliptic_curve::sec1::ToSec1Point as _;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::CryptError;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), CryptError> {
    getrandom::fill(buf).map_err(|e| CryptError::Random {
        reason: e.to_string(),
    })
}

/// A 256-bit content key: encrypts the objects of one repository (or one object).
///
/// Zeroized on drop; `Debug` prints `ContentKey(..)`. Cloning copies the secret: clone only to
/// hand it to code that needs to own it.
#[derive(Clone)]
pub struct ContentKey([u8; 32]);

impl Drop for ContentKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for ContentKey {}

impl PartialEq for ContentKey {
    /// Constant-time: comparing keys must not leak how many leading bytes match.
    fn eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for ContentKey {}

impl ContentKey {
    /// A fresh random key.
    ///
    /// # Errors
    /// [`CryptError::Random`] when the operating system has no randomness to give.
    pub fn generate() -> Result<Self, CryptError> {
        let mut key = Self([0; 32]);
        random(&mut key.0)?;
        Ok(key)
    }

    /// A key from its 32 bytes (for keys stored elsewhere, and tests).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The secret bytes. Keep them out of logs, and zeroize copies.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A keyed pseudo-random name for `data` (HKDF-SHA256-Expand with this key as the PRK and
    /// `"agigit-crypt v1 name" ‖ label ‖ 0 ‖ data` as the info): what a private repository
    /// publishes in place of an object id. Equal inputs give equal names, so the holder of the
    /// key can find an object by name; without the key a name says nothing of `data`, and a
    /// guess cannot be confirmed.
    pub fn opaque_name(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        let hk = hkdf::Hkdf::<sha2::Sha256>::from_prk(&self.0)
            .unwrap_or_else(|_| unreachable!("a 32-byte PRK is long enough for SHA-256"));
        let mut out = [0u8; 32];
        hk.expand_multi_info(&[NAME_LABEL, label, &[0], data], &mut out)
            .unwrap_or_else(|_| unreachable!("32 bytes is far below HKDF's 8160-byte limit"));
        out
    }
}

const NAME_LABEL: &[u8] = b"agigit-crypt v1 name";

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

/// A reader's public key: a Nostr (BIP-340, x-only) public key that lies on secp256k1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReaderKey([u8; 32]);

impl ReaderKey {
    /// Checks that `x` is the x coordinate of a point on secp256k1.
    ///
    /// # Errors
    /// [`CryptError::InvalidPublicKey`] otherwise.
    pub fn from_bytes(x: [u8; 32]) -> Result<Self, CryptError> {
        let key = Self(x);
        key.point()?;
        Ok(key)
    }

    /// The 32 bytes of the x-only key, as in a Nostr event's `pubkey`.
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// The point with this x coordinate and an even y (BIP-340's lift).
    pub(crate) fn point(&self) -> Result<k256::PublicKey, CryptError> {
        let mut sec1 = [0u8; 33];
        sec1[0] = 0x02;
        sec1[1..].copy_from_slice(&self.0);
        k256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| CryptError::InvalidPublicKey)
    }
}

impl fmt::Debug for ReaderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReaderKey(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A reader's secret key (the Nostr secret key whose public key is a [`ReaderKey`]).
///
/// Validated on construction, zeroized on drop, `Debug` prints `ReaderSecret(..)`.
#[derive(Clone)]
pub struct ReaderSecret(k256::SecretKey);

impl ReaderSecret {
    /// A secret key from its 32 bytes (a Nostr secret key, e.g. decoded from `nsec…`).
    ///
    /// # Errors
    /// [`CryptError::InvalidSecretKey`] for zero or a value not below the group order.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptError> {
        k256::SecretKey::from_slice(bytes)
            .map(Self)
            .map_err(|_| CryptError::InvalidSecretKey)
    }

    /// A fresh random secret key.
    ///
    /// # Errors
    /// [`CryptError::Random`] when the operating system has no randomness to give.
    pub fn generate() -> Result<Self, CryptError> {
        loop {
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            random(&mut *bytes)?;
            // Fails with probability about 2^-128 (zero or ≥ the group order): draw again.
            if let Ok(secret) = Self::from_bytes(&bytes) {
                return Ok(secret);
            }
        }
    }

    /// The reader's x-only public key.
    pub fn public_key(&self) -> ReaderKey {
        let point = self.0.public_key().to_sec1_point(true);
        let mut x = [0u8; 32];
        // A compressed SEC1 point is 33 bytes: the parity byte, then x.
        x.copy_from_slice(&point.as_bytes()[1..33]);
        ReaderKey(x)
    }

    pub(crate) fn inner(&self) -> &k256::SecretKey {
        &self.0
    }
}

impl fmt::Debug for ReaderSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReaderSecret(..)")
    }
}
