//! Bytes → `ShardManifest`: never panics, and accepts only its own canonical encoding.
#![no_main]

use agigit_shard::ShardManifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = ShardManifest::decode(data) {
        assert_eq!(manifest.encode(), data, "only canonical bytes decode");
        for segment in 0..manifest.segment_count() {
            assert!(manifest.segment_len(segment) <= manifest.segment_size());
        }
    }
});
