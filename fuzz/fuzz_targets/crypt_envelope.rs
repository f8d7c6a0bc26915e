//! Bytes → key envelope → unwrap with a fixed reader key: never panics; what decodes re-encodes
//! to the same bytes; a fuzzed envelope never opens to a key (the fuzzer cannot forge a tag).
#![no_main]

use agigit_crypt::{CryptError, EcdhWrap, Envelope, ReaderSecret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = Envelope::decode(data, &EcdhWrap) else {
        return;
    };
    assert_eq!(envelope.encode(), data, "only canonical bytes decode");
    let secret = ReaderSecret::from_bytes(&[7; 32]).expect("valid secret");
    match envelope.open(&EcdhWrap, &secret) {
        Err(CryptError::NotARecipient | CryptError::Open | CryptError::InvalidPublicKey) => {}
        other => panic!("a fuzzed envelope opened or failed oddly: {other:?}"),
    }
});
