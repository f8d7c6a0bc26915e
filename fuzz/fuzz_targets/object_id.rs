//! Text → `ObjectId` / `BlobHash`: never panics, and accepts exactly the canonical form.
#![no_main]

use agigit_hash::{BlobHash, ObjectId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = text.parse::<ObjectId>() {
            assert_eq!(
                id.to_string(),
                text,
                "only the canonical lowercase form parses"
            );
        }
        let _ = text.parse::<BlobHash>();
    }
    let _ = ObjectId::from_slice(data);
});
