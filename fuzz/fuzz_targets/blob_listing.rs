//! A Blossom server's BUD-12 blob listing (the body of `GET /list/<pubkey>`) → the blobs it
//! names, or a typed error. What it reads back must write and read again to the same value.
#![no_main]

use agigit_net::{listing_json, parse_listing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(blobs) = parse_listing("http://fuzz", data) {
        let again = parse_listing("http://fuzz", listing_json(&blobs).as_bytes())
            .expect("what was read writes back readably");
        assert_eq!(again, blobs);
    }
});
