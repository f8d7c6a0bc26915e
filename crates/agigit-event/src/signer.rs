//! Who signs: a small trait so that a key held elsewhere (a NIP-46 bunker, a hardware device)
//! can plug in where a local key does today.

use nostr::prelude::{Event, Keys, PublicKey, SignEvent, UnsignedEvent};

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The signer refused or could not sign (a remote signer that is unreachable, a user who
    /// declined).
    #[error("the signer could not sign: {reason}")]
    Signer {
        /// What the signer said.
        reason: String,
    },
    /// The body does not make a well-formed event (a list with a repeated value, an uppercase
    /// server name): every reader would reject it, so it is not signed.
    #[error("refusing to sign a malformed event: {0}")]
    InvalidBody(#[source] crate::ParseError),
    /// The signer returned an event that is not the one it was asked to sign, or whose signature
    /// does not verify. A correct signer never does this.
    #[error("the signer returned an event that does not match the request or does not verify")]
    Mismatch,
}

/// Signs Nostr events for one public key.
///
/// Synchronous, like the rest of the core crates; an implementation backed by a remote signer
/// blocks (or is driven by an async adapter in the caller's runtime). Callers never trust what
/// comes back: [`Signed::sign`](crate::Signed::sign) verifies the returned event.
pub trait Signer {
    /// The key this signer signs for.
    fn public_key(&self) -> PublicKey;

    /// Signs `unsigned`, whose `pubkey` is [`public_key`](Signer::public_key).
    ///
    /// # Errors
    /// [`SignError::Signer`] when the signer cannot or will not sign.
    fn sign_event(&self, unsigned: UnsignedEvent) -> Result<Event, SignError>;
}

impl Signer for Keys {
    fn public_key(&self) -> PublicKey {
        Keys::public_key(self)
    }

    fn sign_event(&self, unsigned: UnsignedEvent) -> Result<Event, SignError> {
        SignEvent::sign_event(self, unsigned).map_err(|e| SignError::Signer {
            reason: e.to_string(),
        })
    }
}

impl<S: Signer + ?Sized> Signer for &S {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }

    fn sign_event(&self, unsigned: UnsignedEvent) -> Result<Event, SignError> {
        (**self).sign_event(unsigned)
    }
}

impl<S: Signer + ?Sized> Signer for Box<S> {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }

    fn sign_event(&self, unsigned: UnsignedEvent) -> Result<Event, SignError> {
        (**self).sign_event(unsigned)
    }
}

impl<S: Signer + ?Sized> Signer for std::sync::Arc<S> {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }

    fn sign_event(&self, unsigned: UnsignedEvent) -> Result<Event, SignError> {
        (**self).sign_event(unsigned)
    }
}
