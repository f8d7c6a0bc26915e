//! Storage audit answers → the Merkle proof verifier.
//!
//! Properties: nothing panics whatever size, leaf, bytes and path a server sends; the proof the
//! prover makes for any leaf of any shard verifies against the shard's root, and with any byte
//! of the answer changed it does not.
#![no_main]

use agigit_market::audit::{leaf_count, prove, root, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let (head, rest) = data.split_at(10);
    let size = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    let leaf = u64::from(u16::from_le_bytes([head[8], head[9]]));
    // Hostile: a claimed size, leaf, bytes and a path made of whatever follows.
    let (bytes, path_bytes) = rest.split_at(rest.len().min(1024));
    let path: Vec<[u8; 32]> = path_bytes
        .chunks_exact(32)
        .take(64)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect();
    let claimed = root(bytes);
    let _ = verify(&claimed, size, leaf, bytes, &path);

    // Honest: the rest as a shard, and its leaf proven.
    let shard = rest;
    let count = leaf_count(shard.len() as u64);
    if count == 0 {
        return;
    }
    let leaf = leaf % count;
    let r = root(shard);
    let (bytes, path) = prove(shard, leaf).expect("a leaf of the shard");
    verify(&r, shard.len() as u64, leaf, &bytes, &path).expect("an honest proof verifies");
    let mut bad = bytes.clone();
    let at = (size as usize) % bad.len();
    bad[at] ^= 1 << (head[8] % 8);
    assert!(verify(&r, shard.len() as u64, leaf, &bad, &path).is_err());
});
