//! The conformance suite every [`ErasureCode`] passes.
//!
//! Each check takes a codec and returns `Err` with a description of the first violation. Run
//! them all for your own implementation with [`erasure_code_conformance!`](crate::erasure_code_conformance):
//!
//! ```
//! agigit_shard::erasure_code_conformance!(leopard_4_of_7, agigit_shard::Leopard::new(4, 7));
//! ```

use crate::code::{ErasureCode, ShardError};

/// Segment lengths at every boundary the codec has: 0, 1, around `k`, around one shard of 2-byte
/// symbols, around a stripe, and a few uneven larger ones.
pub fn interesting_lengths(code: &dyn ErasureCode) -> Vec<usize> {
    let k = code.spec().k;
    let stripe_segment = crate::LEOPARD_STRIPE * k;
    let mut lengths = vec![
        0,
        1,
        2,
        3,
        k.saturating_sub(1),
        k,
        k + 1,
        2 * k - 1,
        2 * k,
        2 * k + 1,
    ];
    lengths.extend([
        1000,
        4097,
        65_537,
        stripe_segment - 1,
        stripe_segment,
        stripe_segment + 3,
    ]);
    lengths.retain(|&l| l <= 4 << 20);
    lengths.sort_unstable();
    lengths.dedup();
    lengths
}

/// Deterministic bytes that differ at every position (no zero runs to hide padding bugs).
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn fail<T>(message: String) -> Result<T, String> {
    Err(message)
}

/// The spec is sane and shard lengths cover the segment.
pub fn check_spec(code: &dyn ErasureCode) -> Result<(), String> {
    let spec = code.spec();
    if spec.k == 0 || spec.k >= spec.n {
        return fail(format!("{spec}: need 1 <= k < n"));
    }
    if code.shard_len(0) != 0 {
        return fail(format!(
            "{spec}: shard_len(0) = {}, expected 0",
            code.shard_len(0)
        ));
    }
    for len in interesting_lengths(code) {
        let shard_len = code.shard_len(len);
        if shard_len * spec.k < len {
            return fail(format!(
                "{spec}: {} shards of {shard_len} cannot hold {len} bytes",
                spec.k
            ));
        }
    }
    Ok(())
}

/// Encoding gives `n` shards of `shard_len`, deterministically; rebuild from all shards, from the
/// data shards alone, from the last `k` (parity-heavy) and from a scattered `k` is byte-exact.
pub fn check_round_trips(code: &dyn ErasureCode) -> Result<(), String> {
    let spec = code.spec();
    for (seed, len) in interesting_lengths(code).into_iter().enumerate() {
        let data = test_bytes(len, seed as u64);
        let shards = code
            .encode(&data)
            .map_err(|e| format!("{spec}: encode {len} bytes: {e}"))?;
        if shards.len() != spec.n {
            return fail(format!(
                "{spec}: {} shards for {len} bytes, expected {}",
                shards.len(),
                spec.n
            ));
        }
        let shard_len = code.shard_len(len);
        if let Some(bad) = shards.iter().position(|s| s.len() != shard_len) {
            return fail(format!(
                "{spec}: shard {bad} of a {len}-byte segment is not {shard_len} bytes"
            ));
        }
        if code.encode(&data).ok().as_ref() != Some(&shards) {
            return fail(format!(
                "{spec}: encoding {len} bytes twice gave different shards"
            ));
        }
        let subsets: [(&str, Vec<usize>); 4] = [
            ("all", (0..spec.n).collect()),
            ("data", (0..spec.k).collect()),
            ("last k", (spec.n - spec.k..spec.n).collect()),
            ("scattered", scattered(spec.k, spec.n, seed as u64)),
        ];
        for (what, keep) in subsets {
            let slots: Vec<Option<&[u8]>> = (0..spec.n)
                .map(|i| keep.contains(&i).then(|| shards[i].as_slice()))
                .collect();
            match code.rebuild(&slots, len) {
                Ok(rebuilt) if rebuilt == data => {}
                Ok(rebuilt) => {
                    return fail(format!(
                        "{spec}: rebuild of {len} bytes from {what} shards gave {} different bytes",
                        rebuilt.len()
                    ));
                }
                Err(e) => {
                    return fail(format!(
                        "{spec}: rebuild of {len} bytes from {what} shards: {e}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `encode_into` and `rebuild_into` give the same results as `encode` and `rebuild` when their
/// buffers are reused across segments of every size, larger and smaller (stale bytes must never
/// leak into shards or output).
pub fn check_buffer_reuse(code: &dyn ErasureCode) -> Result<(), String> {
    let spec = code.spec();
    let mut lengths = interesting_lengths(code);
    let mut descending = lengths.clone();
    descending.reverse();
    lengths.extend(descending);
    let mut shards = Vec::new();
    let mut out = Vec::new();
    for (seed, len) in lengths.into_iter().enumerate() {
        let data = test_bytes(len, 1000 + seed as u64);
        code.encode_into(&data, &mut shards)
            .map_err(|e| format!("{spec}: encode_into: {e}"))?;
        let fresh = code
            .encode(&data)
            .map_err(|e| format!("{spec}: encode: {e}"))?;
        if shards != fresh {
            return fail(format!(
                "{spec}: encode_into with a reused buffer differs for {len} bytes"
            ));
        }
        let keep = scattered(spec.k, spec.n, seed as u64);
        let slots: Vec<Option<&[u8]>> = (0..spec.n)
            .map(|i| keep.contains(&i).then(|| fresh[i].as_slice()))
            .collect();
        code.rebuild_into(&slots, len, &mut out)
            .map_err(|e| format!("{spec}: rebuild_into: {e}"))?;
        if out != data {
            return fail(format!(
                "{spec}: rebuild_into with a reused buffer differs for {len} bytes"
            ));
        }
    }
    Ok(())
}

/// `k` distinct indices below `n`, spread pseudo-randomly.
pub fn scattered(k: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let noise = test_bytes(n * 8, seed);
    for i in (1..n).rev() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&noise[i * 8..i * 8 + 8]);
        let j = usize::try_from(u64::from_le_bytes(word) % (i as u64 + 1)).unwrap_or(0);
        order.swap(i, j);
    }
    order.truncate(k);
    order
}

/// With `k − 1` shards, rebuild fails with [`ShardError::NotEnoughShards`].
pub fn check_too_few(code: &dyn ErasureCode) -> Result<(), String> {
    let spec = code.spec();
    let data = test_bytes(4097, 7);
    let shards = code.encode(&data).map_err(|e| e.to_string())?;
    let keep = scattered(spec.k - 1, spec.n, 3);
    let slots: Vec<Option<&[u8]>> = (0..spec.n)
        .map(|i| keep.contains(&i).then(|| shards[i].as_slice()))
        .collect();
    match code.rebuild(&slots, data.len()) {
        Err(ShardError::NotEnoughShards { good, needed, .. })
            if good == spec.k - 1 && needed == spec.k =>
        {
            Ok(())
        }
        other => fail(format!("{spec}: rebuild from k-1 shards gave {other:?}")),
    }
}

/// Malformed rebuild input gives typed errors: wrong slot count, a shard of the wrong length.
pub fn check_bad_input(code: &dyn ErasureCode) -> Result<(), String> {
    let spec = code.spec();
    let data = test_bytes(1000, 11);
    let shards = code.encode(&data).map_err(|e| e.to_string())?;
    let mut slots: Vec<Option<&[u8]>> = shards.iter().map(|s| Some(s.as_slice())).collect();
    slots.pop();
    if !matches!(
        code.rebuild(&slots, data.len()),
        Err(ShardError::SlotCount { .. })
    ) {
        return fail(format!(
            "{spec}: n-1 slots were not rejected with SlotCount"
        ));
    }
    let short = &shards[0][..shards[0].len() - 1];
    let mut slots: Vec<Option<&[u8]>> = shards.iter().map(|s| Some(s.as_slice())).collect();
    slots[0] = Some(short);
    if !matches!(
        code.rebuild(&slots, data.len()),
        Err(ShardError::ShardLength { index: 0, .. })
    ) {
        return fail(format!(
            "{spec}: a short shard was not rejected with ShardLength"
        ));
    }
    Ok(())
}

/// Runs every check of the suite for a codec, as `#[test]`s in a module called `$name`.
///
/// `$make` is an expression giving `Result<impl ErasureCode, ShardError>`.
#[macro_export]
macro_rules! erasure_code_conformance {
    ($name:ident, $make:expr) => {
        #[cfg(test)]
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn code() -> Box<dyn $crate::ErasureCode> {
                match $make {
                    Ok(code) => Box::new(code),
                    Err(e) => panic!("the codec under test cannot be built: {e}"),
                }
            }

            #[test]
            fn spec() -> Result<(), String> {
                $crate::conformance::check_spec(&*code())
            }

            #[test]
            fn round_trips() -> Result<(), String> {
                $crate::conformance::check_round_trips(&*code())
            }

            #[test]
            fn buffer_reuse() -> Result<(), String> {
                $crate::conformance::check_buffer_reuse(&*code())
            }

            #[test]
            fn too_few_shards() -> Result<(), String> {
                $crate::conformance::check_too_few(&*code())
            }

            #[test]
            fn bad_input() -> Result<(), String> {
                $crate::conformance::check_bad_input(&*code())
            }
        }
    };
}
