//! A relay's NIP-11 information document (the bytes of `GET /` with
//! `Accept: application/nostr+json`) → the key it names, or a typed error. What it reads back
//! must write and read again to the same value.
#![no_main]

use agigit_net::RelayInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = RelayInfo::parse("ws://fuzz", data) {
        let again = RelayInfo::parse("ws://fuzz", info.to_json().as_bytes())
            .expect("what was read writes back readably");
        assert_eq!(again.key(), info.key());
        assert_eq!(again, info);
    }
});
