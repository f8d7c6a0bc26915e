//! Arbitrary shard bytes → rebuild, for both codecs: never panics, and whatever it returns has
//! the requested length. Also encodes the same bytes and checks any k of the shards rebuild them.
//!
//! Input layout: [codec, k, n, present-mask (4 bytes), segment length (2 bytes), shard bytes…].
#![no_main]

use agigit_shard::{ErasureCode, Leopard, NovelPoly};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((header, rest)) = data.split_first_chunk::<9>() else {
        return;
    };
    let k = usize::from(header[1] % 12) + 1;
    let n = k + usize::from(header[2] % 20) + 1;
    let code: Box<dyn ErasureCode> = match header[0] % 2 {
        0 => Box::new(NovelPoly::new(k, n).expect("valid parameters")),
        _ => Box::new(Leopard::new(k, n).expect("valid parameters")),
    };
    let mask = u32::from_le_bytes([header[3], header[4], header[5], header[6]]);
    let segment_len = usize::from(u16::from_le_bytes([header[7], header[8]]));

    // 1. Garbage shards of the right (or wrong) length.
    let shard_len = code.shard_len(segment_len);
    let pieces: Vec<&[u8]> = if shard_len == 0 {
        Vec::new()
    } else {
        rest.chunks(shard_len).collect()
    };
    let mut next = pieces.iter();
    let slots: Vec<Option<&[u8]>> = (0..n)
        .map(|i| {
            if mask & (1 << (i % 32)) != 0 {
                next.next().copied()
            } else {
                None
            }
        })
        .collect();
    if let Ok(out) = code.rebuild(&slots, segment_len) {
        assert_eq!(out.len(), segment_len);
    }

    // 2. A real encoding of `rest`, rebuilt from the shards the mask keeps.
    let shards = code.encode(rest).expect("encoding never fails");
    let slots: Vec<Option<&[u8]>> = (0..n)
        .map(|i| (mask & (1 << (i % 32)) != 0).then(|| shards[i].as_slice()))
        .collect();
    let present = slots.iter().flatten().count();
    match code.rebuild(&slots, rest.len()) {
        Ok(out) => assert_eq!(out, rest),
        Err(_) => assert!(
            present < code.spec().k,
            "{present} shards present, k = {}",
            code.spec().k
        ),
    }

    // 3. The rebuild state machine, offered the kept shards and garbage for the others, in the
    //    order the mask's bits give: it rebuilds exactly when k good ones came, else says so.
    if rest.is_empty() {
        return;
    }
    let hashes = vec![shards.iter().map(agigit_hash::BlobHash::digest).collect()];
    let Ok(manifest) =
        agigit_shard::ShardManifest::new(code.spec(), rest.len() as u64, rest.len() as u64, hashes)
    else {
        return;
    };
    let mut rb = agigit_shard::SegmentRebuilder::new(&manifest, &*code, 0).expect("segment 0");
    for i in (0..n).rev() {
        let bytes = if mask & (1 << (i % 32)) != 0 {
            shards[i].clone()
        } else {
            pieces.get(i).map_or_else(Vec::new, |p| p.to_vec())
        };
        rb.offer(i, bytes).expect("an index below n");
    }
    match rb.finish(&*code) {
        Ok(out) => assert_eq!(out, rest),
        Err(agigit_shard::ShardError::NotEnoughShards { good, needed, .. }) => {
            assert!(good < needed)
        }
        Err(other) => panic!("{other:?}"),
    }
});
