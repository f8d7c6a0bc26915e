//! Verification of event ids and BIP-340 signatures, by two independent implementations.
//!
//! [`NostrVerifier`] uses the `nostr` crate (libsecp256k1, C). [`K256Verifier`] recomputes the id
//! with this crate's own NIP-01 serializer ([`IdFields`]) and checks the signature with the pure-Rust
//! `k256` crate. The test suite shows both accept and reject the same events.

use k256::schnorr::{Signature, VerifyingKey};
use nostr::prelude::{Event, EventId};

use crate::nip01::IdFields;

/// Why an event failed verification.
///
/// A bad signature says nothing more than that: no oracle about which check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The `id` field is not the hash of the event's content.
    #[error("event {claimed} has a wrong id: its fields hash to {computed}")]
    IdMismatch {
        /// The id the event claims.
        claimed: EventId,
        /// The id its fields hash to.
        computed: EventId,
    },
    /// The signature does not verify for the event's id and public key.
    #[error("event {id} has an invalid signature")]
    BadSignature {
        /// The event's id.
        id: EventId,
    },
}

/// Checks an event's id and signature.
///
/// Object-safe, so a caller can pick an implementation at run time.
pub trait Verifier {
    /// `Ok(())` when the id is the hash of the event's fields and the signature is valid.
    ///
    /// # Errors
    /// [`VerifyError`] saying which of the two checks failed.
    fn verify_event(&self, event: &Event) -> Result<(), VerifyError>;
}

impl<V: Verifier + ?Sized> Verifier for &V {
    fn verify_event(&self, event: &Event) -> Result<(), VerifyError> {
        (**self).verify_event(event)
    }
}

impl<V: Verifier + ?Sized> Verifier for Box<V> {
    fn verify_event(&self, event: &Event) -> Result<(), VerifyError> {
        (**self).verify_event(event)
    }
}

impl<V: Verifier + ?Sized> Verifier for std::sync::Arc<V> {
    fn verify_event(&self, event: &Event) -> Result<(), VerifyError> {
        (**self).verify_event(event)
    }
}

/// The default verifier: the `nostr` crate's checks, on libsecp256k1.
#[derive(Debug, Clone, Copy, Default)]
pub struct NostrVerifier;

impl Verifier for NostrVerifier {
    fn verify_event(&self, event: &Event) -> Result<(), VerifyError> {
        if !event.verify_id() {
            return Err(VerifyError::IdMismatch {
                claimed: event.id,
                computed: EventId::compute(
                    &event.pubkey,
                    &event.created_at,
                    &event.kind,
                    &event.tags,
                    &event.content,
                ),
            });
        }
        if !event.verify_signature() {
            return Err(VerifyError::BadSignature { id: event.id });
        }
        Ok(())
    }
}

/// An independent verifier: this crate's NIP-01 serializer and the pure-Rust `k256` crate.
#[derive(Debug, Clone, Copy, Default)]
pub struct K256Verifier;

impl K256Verifier {
    /// The NIP-01 id of an event's fields, computed without the `nostr` crate.
    pub fn compute_id(event: &Event) -> EventId {
        let fields = IdFields {
            pubkey: event.pubkey.as_bytes(),
            created_at: event.created_at.as_secs(),
            kind: event.kind.as_u16(),
            tags: event.tags.as_ref(),
            content: &event.content,
        };
        EventId::from_byte_array(fields.id())
    }
}

impl Verifier for K256Verifier {
    fn verify_event(&self, event: &Event) -> Result<(), VerifyError> {
        let computed = Self::compute_id(event);
        if computed != event.id {
            return Err(VerifyError::IdMismatch {
                claimed: event.id,
                computed,
            });
        }
        if bip340_verify(
            event.pubkey.as_bytes(),
            event.id.as_bytes(),
            event.sig.as_bytes(),
        ) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature { id: event.id })
        }
    }
}

/// BIP-340 Schnorr verification of `signature` over `message` (any length) for the x-only
/// `public_key`, on `k256`.
///
/// Returns `false` for a public key that is not on the curve, a signature whose `r` is not a
/// field element or whose `s` is not below the group order, and every signature that does not
/// verify.
pub fn bip340_verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_slice(&public_key[..]) else {
        return false;
    };
    let Ok(sig) = Signature::try_from(&signature[..]) else {
        return false;
    };
    // `verify_raw` is BIP-340 on the message as given; `signature::Verifier::verify` would hash
    // the message again and never match a Nostr event.
    key.verify_raw(message, &sig).is_ok()
}
