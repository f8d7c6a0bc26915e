//! Arbitrary bytes → open (one-shot, streaming, and one segment at a time) under a fixed key:
//! never panics, never returns plaintext (the fuzzer cannot forge tags), and every path agrees
//! on rejecting.
#![no_main]

use std::io::Read;

use agigit_crypt::{AesGcmStream, ContentKey, OpeningReader, SegmentCipher, SegmentOpener};
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
    if let Ok(opener) = SegmentOpener::new(&key, ad, data, data.len() as u64) {
        assert!(opener.sealed_range(opener.segments()).is_empty());
        for i in 0..opener.segments().min(64) {
            let r = opener.sealed_range(i);
            let sealed = &data[r.start as usize..r.end as usize];
            assert!(opener.open(i, sealed).is_err(), "segment {i} opened");
        }
    }
});
