//! Arbitrary bytes → a loose object (header and body) and, separately, a body of each kind:
//! never panics; whatever decodes is canonical (re-encodes to the same bytes) and hashes to the
//! same id. A commit's links (what history walks read) agree with its full decode.
#![no_main]

use agigit_dag::object::{Commit, Kind, Limits, Object, compute_id, parse_loose};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_blob: 1 << 20,
        max_meta: 1 << 20,
    };
    if let Ok((kind, body)) = parse_loose(data, limits) {
        if let Ok(o) = Object::decode(kind, body) {
            assert_eq!(o.encode(), body);
            assert_eq!(o.id(), compute_id(kind, body));
        }
    }
    // What a history walk reads never panics, and agrees with the full decode.
    let links = Commit::decode_links(data);
    if let Ok(Object::Commit(c)) = Object::decode(Kind::Commit, data) {
        assert_eq!(links.ok(), Some((c.parents, c.time)));
    }
    for kind in [Kind::Chunks, Kind::Tensor, Kind::Tree, Kind::Commit] {
        if let Ok(o) = Object::decode(kind, data) {
            assert_eq!(o.kind(), kind);
            assert_eq!(o.encode(), data, "decoding accepts only canonical bodies");
        }
    }
});
