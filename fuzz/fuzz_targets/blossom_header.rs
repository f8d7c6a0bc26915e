//! `Authorization: Nostr <base64>` header → verified Blossom token → authorization check.
#![no_main]

use agigit_event::nostr::prelude::Timestamp;
use agigit_event::{AuthRequest, BlossomAuth, Signed, Verb};
use agigit_hash::BlobHash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = Signed::<BlossomAuth>::from_authorization_header(header) {
        let blob = BlobHash::digest(data);
        for verb in [Verb::Get, Verb::Upload, Verb::List, Verb::Delete] {
            let request = AuthRequest {
                verb,
                blob: Some(&blob),
                server: "localhost",
                now: Timestamp::from_secs(1),
            };
            let _ = token.authorize(&request);
        }
    }
});
