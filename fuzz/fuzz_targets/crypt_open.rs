//! Arbitrary bytes → open (one-shot and streaming) under a fixed key: never panics, never
//! returns plaintext (the fuzzer cannot forge tags), and both paths agree on rejecting.
#![no_main]

use std::io::Read;

use agigit_crypt::{AesGcmStream, ContentKey, OpeningReader, SegmentCipher};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = ContentKey::from_bytes([3; 32]);
    let ad = b"fuzz";
    assert!(AesGcmStream::default().open(&key, ad, data).is_err());
    if let Ok(mut reader) = OpeningReader::new(data, &key, ad) {
        let mut out = Vec::new();
        assert!(reader.read_to_end(&mut out).is_err());
        assert!(out.is_empty(), "unauthenticated bytes were returned");
    }
});
