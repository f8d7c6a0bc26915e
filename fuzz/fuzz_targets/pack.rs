//! A pack from the network → verified objects in a store: never panics, and whatever it
//! accepts writes back to the same bytes.
#![no_main]

use agigit::dag::{Find, MemoryStore};
use agigit::pack::{read_pack, write_pack};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = MemoryStore::new();
    if let Ok(ids) = read_pack(&store, data) {
        let objects: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut buf = Vec::new();
                let kind = store.try_find(id, &mut buf).ok().flatten().map(|o| o.kind);
                (kind.expect("an accepted object is stored"), *id)
            })
            .collect();
        assert_eq!(write_pack(&store, &objects).expect("pack"), data);
    }
});
