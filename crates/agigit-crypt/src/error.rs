//! Errors.

/// Why encryption, decryption or key handling failed.
///
/// [`CryptError::Open`] is deliberately uninformative: a wrong key, a flipped bit, a reordered,
/// dropped, duplicated or truncated segment and a segment moved from another object all look
/// the same, so an attacker learns nothing from which check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptError {
    /// Authentication failed.
    #[error("decryption failed: wrong key, or the data was altered, reordered or truncated")]
    Open,
    /// The sealed bytes are not in this crate's format (before any key is used).
    #[error("not a sealed object: {reason}")]
    Format {
        /// What is wrong with the framing.
        reason: &'static str,
    },
    /// A public key is not an x coordinate on secp256k1, or a point encoding is invalid.
    #[error("invalid public key: not a point on secp256k1")]
    InvalidPublicKey,
    /// A secret key is zero or not below the group order.
    #[error("invalid secret key: must be 32 bytes, non-zero and below the secp256k1 order")]
    InvalidSecretKey,
    /// The reader's key is not among the envelope's readers.
    #[error("this key is not one of the envelope's readers: ask the owner to add it")]
    NotARecipient,
    /// An envelope does not decode.
    #[error("invalid key envelope: {reason}")]
    Envelope {
        /// What is wrong.
        reason: &'static str,
    },
    /// Invalid parameters (segment size).
    #[error("invalid parameters: {reason}")]
    Params {
        /// What is wrong.
        reason: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("no randomness available: {reason}")]
    Random {
        /// What the OS said.
        reason: String,
    },
}
