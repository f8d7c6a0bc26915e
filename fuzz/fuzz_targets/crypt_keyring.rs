//! Bytes → keyring (content keys across key epochs): never panics; what decodes without a secret
//! has a well-formed envelope; a fuzzed keyring never opens to keys (the fuzzer cannot forge a
//! wrapped key or the sealed list's tag).
#![no_main]

use agigit_crypt::{CryptError, EcdhWrap, Keyring, ReaderSecret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Keyring::decode_public(data, &EcdhWrap);
    let secret = ReaderSecret::from_bytes(&[7; 32]).expect("valid secret");
    match Keyring::open(data, &EcdhWrap, &secret) {
        Ok(ring) => panic!("a fuzzed keyring opened at epoch {}", ring.epoch()),
        Err(
            CryptError::NotARecipient
            | CryptError::Open
            | CryptError::InvalidPublicKey
            | CryptError::Envelope { .. },
        ) => {}
        Err(other) => panic!("a fuzzed keyring failed oddly: {other:?}"),
    }
});
