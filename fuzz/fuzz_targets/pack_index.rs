//! Bytes → `PackIndex` (a pack manifest's annex, from the network): never panics, accepts only
//! its own canonical encoding, and every range it gives lies after the pack's header, end to
//! end, summing to the pack's length.
#![no_main]

use agigit_dag::object::Limits;
use agigit_dag::pack::PackIndex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = PackIndex::decode(data, Limits::default()) {
        assert_eq!(index.encode(), data, "only canonical bytes decode");
        let mut at = 9;
        for (entry, range) in index.ranges() {
            assert_eq!(range.start, at);
            assert_eq!(range.end - range.start, entry.packed_len());
            at = range.end;
        }
        assert_eq!(at, index.pack_len());
    }
});
