//! Integration tests for agigit-shard: streaming round trips from any k shards, corruption,
//! manifests, placement and availability.

#![allow(
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "test fixtures; arithmetic on small test values"
)]

use std::collections::BTreeSet;

use agigit_hash::BlobHash;
use agigit_shard::conformance::{scattered, test_bytes};
use agigit_shard::{
    CodecKind, CodecSpec, ErasureCode, Leopard, ManifestError, NovelPoly, Placement,
    PlacementError, ShardError, ShardManifest, StreamError, StreamOptions, codec_for,
    decode_stream, encode_stream, plan_shards, slots,
};
use proptest::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Every shard of every segment, as the encoder produced them.
type Stored = Vec<Vec<Vec<u8>>>;

fn encode_all(
    code: &dyn ErasureCode,
    data: &[u8],
    segment_size: usize,
    in_flight: usize,
) -> Result<(ShardManifest, Stored), StreamError> {
    let mut stored = Vec::new();
    let manifest = encode_stream(
        code,
        StreamOptions {
            segment_size,
            in_flight,
        },
        data,
        |segment: agigit_shard::EncodedSegment| {
            assert_eq!(segment.index, stored.len(), "segments arrive in order");
            stored.push(segment.shards);
            Ok::<(), std::io::Error>(())
        },
    )?;
    Ok((manifest, stored))
}

fn codec(kind: CodecKind, k: usize, n: usize) -> Box<dyn ErasureCode> {
    match kind {
        CodecKind::NovelPoly => Box::new(NovelPoly::new(k, n).expect("valid parameters")),
        _ => Box::new(Leopard::new(k, n).expect("valid parameters")),
    }
}

fn arb_kind() -> impl Strategy<Value = CodecKind> {
    prop_oneof![Just(CodecKind::NovelPoly), Just(CodecKind::Leopard)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_k_shards_rebuild_the_object_exactly(
        kind in arb_kind(),
        (k, n) in (1usize..9).prop_flat_map(|k| (Just(k), k + 1..k + 12)),
        segment_size in prop_oneof![Just(64usize), Just(1000), Just(4096)],
        seed in any::<u64>(),
        len_pick in any::<prop::sample::Index>(),
        in_flight in 1usize..4,
    ) {
        let code = codec(kind, k, n);
        let k = code.spec().k; // NovelPoly rounds k down to a power of two
        let shard_len = code.shard_len(segment_size);
        let lens = [0, 1, shard_len.saturating_sub(1), shard_len, shard_len + 1, segment_size - 1,
            segment_size, segment_size + 1, 3 * segment_size + 17, (seed as usize) % (5 * segment_size)];
        let len = lens[len_pick.index(lens.len())];
        let data = test_bytes(len, seed);
        let (manifest, stored) = encode_all(&*code, &data, segment_size, in_flight)?;
        prop_assert_eq!(manifest.total_len(), len as u64);
        prop_assert_eq!(manifest.segment_count(), len.div_ceil(segment_size));

        // A random k shards of each segment are reachable, nothing else.
        let keep: Vec<BTreeSet<usize>> = (0..stored.len())
            .map(|j| scattered(k, n, seed ^ j as u64).into_iter().collect())
            .collect();
        let source = |segment: usize, index: usize, _: &BlobHash| {
            keep[segment].contains(&index).then(|| stored[segment][index].clone())
        };
        let mut out = Vec::new();
        let written = decode_stream(&manifest, &*code, &source, in_flight, &mut out)?;
        prop_assert_eq!(written, len as u64);
        prop_assert!(out == data, "rebuilt bytes differ");

        if !stored.is_empty() {
            // k-1 shards of the last segment: a typed error naming it.
            let last = stored.len() - 1;
            let short = |segment: usize, index: usize, _: &BlobHash| {
                let allowed: Vec<usize> = keep[segment].iter().copied().take(if segment == last { k - 1 } else { k }).collect();
                allowed.contains(&index).then(|| stored[segment][index].clone())
            };
            let err = decode_stream(&manifest, &*code, &short, in_flight, &mut Vec::new());
            prop_assert!(
                matches!(err, Err(StreamError::Shard(ShardError::NotEnoughShards { segment, good, needed }))
                    if segment == last && good == k - 1 && needed == k),
                "k-1 shards gave {:?}", err
            );

            // A flipped byte in one of the k shards used is caught by its hash: with one spare
            // shard available the object still rebuilds; without, the error counts k-1 good.
            if len > 0 {
                let victim = *keep[0].iter().next().expect("k >= 1");
                let spare = (0..n).find(|i| !keep[0].contains(i)).expect("n > k");
                let stored = &stored;
                let keep = &keep;
                let corrupt = |with_spare: bool| move |segment: usize, index: usize, _: &BlobHash| {
                    let mut shard = stored[segment][index].clone();
                    if segment == 0 && index == victim {
                        let at = seed as usize % shard.len();
                        shard[at] ^= 1 << (seed % 8);
                    }
                    let reachable = keep[segment].contains(&index) || (with_spare && segment == 0 && index == spare);
                    reachable.then_some(shard)
                };
                let mut out = Vec::new();
                decode_stream(&manifest, &*code, &corrupt(true), in_flight, &mut out)?;
                prop_assert!(out == data, "a corrupt shard leaked into the output");
                let err = decode_stream(&manifest, &*code, &corrupt(false), in_flight, &mut Vec::new());
                prop_assert!(
                    matches!(err, Err(StreamError::Shard(ShardError::NotEnoughShards { segment: 0, good, .. })) if good == k - 1),
                    "corrupt shard without spare gave {:?}", err
                );
            }
        }
    }

    #[test]
    fn manifest_round_trip(
        kind in arb_kind(),
        (k, n) in (1usize..6).prop_flat_map(|k| (Just(k), k + 1..k + 6)),
        segment_size in 1u64..5000,
        total_len in 0u64..20_000,
        seed in any::<u64>(),
        annex in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..64)),
    ) {
        let code = codec(kind, k, n);
        let spec = code.spec();
        let count = total_len.div_ceil(segment_size);
        let segments: Vec<Vec<BlobHash>> = (0..count)
            .map(|j| (0..spec.n).map(|i| BlobHash::digest(test_bytes(8, seed ^ (j << 16) ^ i as u64))).collect())
            .collect();
        let manifest = ShardManifest::new(spec, segment_size, total_len, segments)
            .and_then(|m| m.with_annex(annex.clone().unwrap_or_default()))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(manifest.annex(), annex.as_deref());
        let bytes = manifest.encode();
        prop_assert_eq!(bytes[4], if annex.is_some() { 2 } else { 1 });
        prop_assert_eq!(ShardManifest::decode(&bytes), Ok(manifest.clone()));
        // Every truncation and any extra byte is rejected.
        for cut in 0..bytes.len() {
            prop_assert!(ShardManifest::decode(&bytes[..cut]).is_err(), "truncated to {}", cut);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(ShardManifest::decode(&longer).is_err());
        // Every single-bit flip of the header either is rejected or decodes to another manifest
        // (never silently to the same one).
        for bit in 0..32 * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            if let Ok(other) = ShardManifest::decode(&flipped) {
                prop_assert_ne!(other, manifest.clone());
            }
        }
    }
}

#[test]
fn manifest_rejects_malformed_headers() {
    let spec = CodecSpec {
        kind: CodecKind::Leopard,
        k: 2,
        n: 3,
    };
    let hashes = vec![vec![BlobHash::digest(b"a"); 3]; 2];
    let good = ShardManifest::new(spec, 10, 15, hashes)
        .expect("consistent")
        .encode();
    let patch = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        ShardManifest::decode(&b)
    };
    assert_eq!(
        ShardManifest::decode(&good[..10]),
        Err(ManifestError::TooShort { len: 10 })
    );
    assert_eq!(patch(0, b"XGSM"), Err(ManifestError::BadMagic));
    assert_eq!(
        patch(4, &[3]),
        Err(ManifestError::UnsupportedVersion { version: 3 })
    );
    // Version 2 promises an annex after the table: none there is refused.
    assert_eq!(patch(4, &[2]), Err(ManifestError::Annex { len: 0 }));
    assert_eq!(patch(5, &[9]), Err(ManifestError::UnknownCodec { tag: 9 }));
    assert_eq!(patch(6, &[1]), Err(ManifestError::Reserved));
    assert!(
        matches!(patch(8, &0u32.to_le_bytes()), Err(ManifestError::Codec(_))),
        "k = 0"
    );
    assert!(
        matches!(patch(8, &3u32.to_le_bytes()), Err(ManifestError::Codec(_))),
        "k = n"
    );
    assert!(
        matches!(
            patch(12, &u32::MAX.to_le_bytes()),
            Err(ManifestError::Codec(_))
        ),
        "huge n"
    );
    assert!(matches!(
        patch(16, &0u64.to_le_bytes()),
        Err(ManifestError::SegmentSize { .. })
    ));
    assert!(matches!(
        patch(16, &(2u64 << 30).to_le_bytes()),
        Err(ManifestError::SegmentSize { .. })
    ));
    assert!(matches!(
        patch(24, &u64::MAX.to_le_bytes()),
        Err(ManifestError::HashTable { .. })
    ));
    // An annex: round trip; an empty one is version 1; a prefix that disagrees with the bytes
    // left, or an annex of no bytes in version 2, is refused.
    let manifest = ShardManifest::decode(&good).expect("good");
    let with = manifest
        .clone()
        .with_annex(b"index".to_vec())
        .expect("annex");
    let bytes = with.encode();
    assert_eq!(
        ShardManifest::decode(&bytes).expect("v2").annex(),
        Some(&b"index"[..])
    );
    assert_eq!(
        manifest
            .clone()
            .with_annex(Vec::new())
            .expect("none")
            .encode(),
        good
    );
    let table_end = good.len();
    let mut lying = bytes.clone();
    lying[table_end..table_end + 4].copy_from_slice(&6u32.to_le_bytes());
    assert_eq!(
        ShardManifest::decode(&lying),
        Err(ManifestError::Annex { len: 9 })
    );
    let mut empty = good.clone();
    empty[4] = 2;
    empty.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(
        ShardManifest::decode(&empty),
        Err(ManifestError::Annex { len: 4 })
    );
    assert!(matches!(
        manifest.with_annex(vec![0; agigit_shard::MAX_ANNEX_LEN + 1]),
        Err(ManifestError::Annex { .. })
    ));
    // NovelPoly's k must be a power of two: 3 is not a k it produces.
    let mut b = good.clone();
    b[5] = 1;
    b[8..12].copy_from_slice(&3u32.to_le_bytes());
    b[12..16].copy_from_slice(&8u32.to_le_bytes());
    assert!(matches!(
        ShardManifest::decode(&b),
        Err(ManifestError::Codec(_))
    ));
}

#[test]
fn codec_parameters_are_checked() {
    for (k, n) in [(0, 4), (4, 4), (5, 4), (1, 32_769)] {
        assert!(
            matches!(Leopard::new(k, n), Err(ShardError::InvalidParams { .. })),
            "leopard {k} of {n}"
        );
        assert!(
            matches!(NovelPoly::new(k, n), Err(ShardError::InvalidParams { .. })),
            "novelpoly {k} of {n}"
        );
    }
    // NovelPoly rounds k down to a power of two and keeps N: ask for 10 of 30, get 8 of 30.
    let spec = NovelPoly::new(10, 30).expect("valid").spec();
    assert_eq!((spec.k, spec.n), (8, 30));
    assert_eq!(Leopard::new(10, 30).expect("valid").spec().k, 10);
    // A spec round-trips through `codec_for` only with parameters the codec really has.
    assert!(codec_for(&spec).is_ok());
    assert!(
        codec_for(&CodecSpec {
            kind: CodecKind::NovelPoly,
            k: 10,
            n: 30
        })
        .is_err()
    );
}

#[test]
fn slots_reject_duplicate_and_out_of_range_indices() {
    let a: &[u8] = b"ab";
    assert_eq!(slots(3, [(0, a), (2, a)]), Ok(vec![Some(a), None, Some(a)]));
    assert_eq!(
        slots(3, [(1, a), (1, a)]),
        Err(ShardError::DuplicateIndex { index: 1 })
    );
    assert_eq!(
        slots(3, [(3, a)]),
        Err(ShardError::IndexOutOfRange { index: 3, n: 3 })
    );
}

#[test]
fn rebuild_segment_skips_bad_shards_and_names_the_segment() -> TestResult {
    let code = Leopard::new(3, 5)?;
    let data = test_bytes(10_000, 1);
    let (manifest, stored) = encode_all(&code, &data, 4000, 2)?;
    assert_eq!(manifest.segment_count(), 3);
    let mut wrong = stored[2][0].clone();
    wrong[0] ^= 0xff;
    let short = &stored[2][1][1..];
    let slots: Vec<Option<&[u8]>> = vec![
        Some(&wrong),
        Some(short),
        Some(&stored[2][2]),
        Some(&stored[2][3]),
        None,
    ];
    let err = manifest.rebuild_segment(&code, 2, &slots);
    assert_eq!(
        err,
        Err(ShardError::NotEnoughShards {
            segment: 2,
            good: 2,
            needed: 3
        })
    );
    assert_eq!(
        err.map_err(|e| e.to_string()).err().as_deref(),
        Some(
            "segment 2 cannot be rebuilt: 2 good shard(s), 3 needed — reach more servers or wait for them to come back"
        )
    );
    let slots: Vec<Option<&[u8]>> = vec![
        Some(&wrong),
        Some(short),
        Some(&stored[2][2]),
        Some(&stored[2][3]),
        Some(&stored[2][4]),
    ];
    assert_eq!(manifest.rebuild_segment(&code, 2, &slots)?, data[8000..]);
    Ok(())
}

#[test]
fn stream_options_and_codec_mismatch_are_checked() -> TestResult {
    let code = Leopard::new(2, 4)?;
    let none = |_: agigit_shard::EncodedSegment| Ok::<(), std::io::Error>(());
    for options in [
        StreamOptions {
            segment_size: 0,
            in_flight: 1,
        },
        StreamOptions {
            segment_size: 8,
            in_flight: 0,
        },
    ] {
        assert!(matches!(
            encode_stream(&code, options, &b"x"[..], none),
            Err(StreamError::Options { .. })
        ));
    }
    let (manifest, _) = encode_all(&code, b"hello", 8, 1)?;
    let other = Leopard::new(2, 5)?;
    let nothing = |_: usize, _: usize, _: &BlobHash| None;
    assert!(matches!(
        decode_stream(&manifest, &other, &nothing, 1, Vec::new()),
        Err(StreamError::Options { .. })
    ));
    // A failing sink stops the stream and says where.
    let failing = |s: agigit_shard::EncodedSegment| {
        if s.index == 1 {
            Err("disk full")
        } else {
            Ok(())
        }
    };
    let err = encode_stream(
        &code,
        StreamOptions {
            segment_size: 2,
            in_flight: 2,
        },
        &b"hello"[..],
        failing,
    );
    assert!(matches!(err, Err(StreamError::Sink { segment: 1, .. })));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Placement and availability
// ---------------------------------------------------------------------------------------------

fn spec(k: usize, n: usize) -> CodecSpec {
    CodecSpec {
        kind: CodecKind::Leopard,
        k,
        n,
    }
}

/// Shards of `segment` held by the servers in `mask`.
fn held(placement: &Placement, segment: usize, mask: u32) -> usize {
    (0..placement.servers())
        .filter(|s| mask & (1 << s) != 0)
        .map(|s| placement.shards_on(segment, s).count())
        .sum()
}

#[test]
fn placement_spreads_evenly_and_rotates() -> TestResult {
    for servers in 1..=9 {
        for n in 2..=20 {
            let placement = Placement::new(servers, &spec(1, n))?;
            for segment in 0..servers + 1 {
                let mut seen = BTreeSet::new();
                for server in 0..servers {
                    let on: Vec<usize> = placement.shards_on(segment, server).collect();
                    assert!(on.len() == n / servers || on.len() == n.div_ceil(servers));
                    for &shard in &on {
                        assert_eq!(placement.server_of(segment, shard), server);
                        assert!(seen.insert(shard), "shard {shard} placed twice");
                    }
                }
                assert_eq!(seen.len(), n, "every shard placed");
            }
            if n % servers != 0 {
                // The server with the extra shard changes from one segment to the next.
                let busiest = |segment| {
                    (0..servers)
                        .max_by_key(|&s| (placement.shards_on(segment, s).count(), usize::MAX - s))
                };
                assert_ne!(busiest(0), busiest(1));
            }
        }
    }
    Ok(())
}

#[test]
fn servers_needed_matches_brute_force() -> TestResult {
    for servers in 1..=7usize {
        for n in 2..=14 {
            for k in 1..n {
                let placement = Placement::new(servers, &spec(k, n))?;
                let masks = 0u32..(1 << servers);
                // The least m such that every set of m servers holds >= k shards of every segment.
                let brute = (1..=servers).find(|&m| {
                    masks
                        .clone()
                        .filter(|mask| mask.count_ones() as usize == m)
                        .all(|mask| {
                            (0..servers).all(|segment| held(&placement, segment, mask) >= k)
                        })
                });
                assert_eq!(placement.servers_needed(), brute, "S={servers} k={k} n={n}");
            }
        }
    }
    Ok(())
}

#[test]
fn rebuild_probability_matches_brute_force() -> TestResult {
    for servers in 1..=6usize {
        for (k, n) in [(1, 2), (2, 3), (3, 7), (4, 8), (5, 12), (6, 9)] {
            let placement = Placement::new(servers, &spec(k, n))?;
            for p in [0.0f64, 0.1, 0.5, 0.9, 0.99, 1.0] {
                for reached in 0..=servers {
                    // Every set of `reached` servers is equally likely; each is up with p.
                    let subsets: Vec<u32> = (0u32..1 << servers)
                        .filter(|m| m.count_ones() as usize == reached)
                        .collect();
                    let mut expected = 0.0;
                    for &subset in &subsets {
                        for up in 0u32..1 << servers {
                            if up & !subset != 0 {
                                continue;
                            }
                            let ups = up.count_ones() as i32;
                            let weight = p.powi(ups) * (1.0 - p).powi(reached as i32 - ups)
                                / subsets.len() as f64;
                            if held(&placement, 0, up) >= k {
                                expected += weight;
                            }
                        }
                    }
                    let got = placement.rebuild_probability(p, reached)?;
                    let failure = placement.failure_probability(p, reached)?;
                    assert!(
                        (got - expected).abs() < 1e-12,
                        "S={servers} k={k} n={n} p={p} reached={reached}: {got} vs {expected}"
                    );
                    assert!((got + failure - 1.0).abs() < 1e-12);
                }
            }
        }
    }
    assert!(matches!(
        Placement::new(3, &spec(1, 2))?.rebuild_probability(1.5, 1),
        Err(PlacementError::Probability { .. })
    ));
    assert!(matches!(
        Placement::new(3, &spec(1, 2))?.rebuild_probability(0.5, 4),
        Err(PlacementError::Reached { .. })
    ));
    assert!(matches!(
        Placement::new(0, &spec(1, 2)),
        Err(PlacementError::NoServers)
    ));
    Ok(())
}

#[test]
fn planner_returns_the_smallest_sufficient_n() -> TestResult {
    for (k, servers, p, target) in [
        (4, 8, 0.9, 1e-6),
        (16, 10, 0.95, 1e-9),
        (8, 5, 0.8, 1e-3),
        (1, 3, 0.5, 0.2),
    ] {
        let n = plan_shards(k, servers, p, target)?;
        let failure = |n| {
            Placement::new(servers, &spec(k, n)).and_then(|pl| pl.failure_probability(p, servers))
        };
        assert!(failure(n)? <= target, "N={n} meets the target");
        for smaller in k + 1..n {
            assert!(
                failure(smaller)? > target,
                "N={smaller} < {n} would have done"
            );
        }
    }
    // Three servers each up half the time all fail with probability 1/8 whatever N is.
    let err = plan_shards(2, 3, 0.5, 0.1);
    assert!(
        matches!(err, Err(PlacementError::Unreachable { best, .. }) if (best - 0.125).abs() < 1e-12),
        "{err:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The rebuild state machine, driven like a network would: shards offered in any order,
    /// some twice, some corrupt or cut short, some never coming; with `k` good ones in, the
    /// segment comes back exactly; with fewer, a typed error names the segment.
    #[test]
    fn a_rebuilder_takes_shards_in_any_order_and_any_quality(
        kind in arb_kind(),
        k in 1usize..6,
        extra in 1usize..6,
        len in 1usize..5000,
        seed in any::<u64>(),
        good_count in 0usize..12,
        corrupt in 0usize..4,
    ) {
        let code = codec(kind, k, k + extra);
        let spec = code.spec();
        let data = test_bytes(len, seed);
        let (manifest, stored) = encode_all(&*code, &data, len, 1).expect("encode");
        let n = spec.n;
        let order = scattered(n, n, seed);
        let good: Vec<usize> = order.iter().copied().take(good_count.min(n)).collect();
        let mut rb = agigit_shard::SegmentRebuilder::new(&manifest, &*code, 0).expect("segment 0");
        prop_assert_eq!(rb.shard_len(), stored[0][0].len());
        // Wrong bytes first (for shards never offered good, and for good ones before their good
        // copy): rejected, never counted.
        for &i in order.iter().rev().take(corrupt) {
            let mut bad = stored[0][i].clone();
            if bad.is_empty() {
                continue;
            }
            bad[0] ^= 1;
            prop_assert_eq!(rb.offer(i, bad).expect("offer"), agigit_shard::Offered::Rejected);
            let short = stored[0][i][..stored[0][i].len() - 1].to_vec();
            prop_assert_eq!(rb.offer(i, short).expect("offer"), agigit_shard::Offered::Rejected);
        }
        for &i in &good {
            prop_assert_eq!(rb.offer(i, stored[0][i].clone()).expect("offer"), agigit_shard::Offered::Accepted);
            prop_assert_eq!(rb.offer(i, stored[0][i].clone()).expect("again"), agigit_shard::Offered::Duplicate);
        }
        prop_assert!(rb.offer(n, Vec::new()).is_err(), "an index past N");
        let held = good.len();
        prop_assert_eq!(rb.is_ready(), held >= spec.k);
        if held >= spec.k {
            prop_assert_eq!(rb.finish(&*code).expect("rebuild"), data);
        } else {
            match rb.finish(&*code) {
                Err(ShardError::NotEnoughShards { segment: 0, good, needed }) => {
                    prop_assert_eq!((good, needed), (held, spec.k));
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}

#[test]
fn a_rebuilder_asks_for_data_shards_first_and_replaces_failures() -> TestResult {
    let code = Leopard::new(3, 6)?;
    let data = test_bytes(3000, 7);
    let (manifest, stored) = encode_all(&code, &data, 3000, 1)?;
    let mut rb = agigit_shard::SegmentRebuilder::new(&manifest, &code, 0)?;
    assert_eq!(rb.wants(), vec![0, 1, 2], "the k data shards first");
    assert!(rb.wants().is_empty(), "nothing more while they are pending");
    rb.failed(1);
    assert_eq!(rb.wants(), vec![3], "one more in place of the failed");
    rb.offer(0, stored[0][0].clone())?;
    rb.offer(2, stored[0][2].clone())?;
    assert!(!rb.is_ready());
    rb.offer(3, vec![0; stored[0][3].len()])?; // wrong bytes
    assert_eq!(rb.wants(), vec![4]);
    rb.failed(4);
    assert_eq!(rb.wants(), vec![5]);
    rb.failed(5);
    assert!(
        rb.is_stuck(),
        "two good of three needed, nothing left to try"
    );
    assert!(matches!(
        rb.finish(&code),
        Err(ShardError::NotEnoughShards {
            segment: 0,
            good: 2,
            needed: 3
        })
    ));
    // A good copy that arrives late still counts.
    rb.offer(5, stored[0][5].clone())?;
    assert_eq!(rb.finish(&code)?, data);
    Ok(())
}

#[test]
fn a_rebuilder_asks_in_the_callers_rank_then_by_index() -> TestResult {
    let code = Leopard::new(3, 6)?;
    let data = test_bytes(3000, 8);
    let (manifest, stored) = encode_all(&code, &data, 3000, 1)?;
    let mut rb = agigit_shard::SegmentRebuilder::new(&manifest, &code, 0)?;
    // Shards 1 and 2 sit where the caller cannot reach: asked for last.
    let rank = |i: usize| u8::from(i == 1 || i == 2);
    assert_eq!(rb.wants_by(rank), vec![0, 3, 4]);
    assert!(rb.wants_by(rank).is_empty());
    rb.failed(3);
    assert_eq!(
        rb.wants_by(rank),
        vec![5],
        "the reachable before the ranked last"
    );
    rb.failed(4);
    assert_eq!(rb.wants_by(rank), vec![1]);
    for i in [0, 5, 1] {
        rb.offer(i, stored[0][i].clone())?;
    }
    assert_eq!(rb.finish(&code)?, data, "rebuilt through parity");
    Ok(())
}

#[test]
fn the_encoder_reuses_buffers_and_matches_the_code() -> TestResult {
    let code = NovelPoly::new(2, 4)?;
    let mut encoder = agigit_shard::SegmentEncoder::new(&code);
    for (i, len) in [1000usize, 17, 1000].into_iter().enumerate() {
        let segment = test_bytes(len, i as u64);
        let encoded = encoder.encode(i, &segment)?;
        assert_eq!(encoded.shards, code.encode(&segment)?);
        assert_eq!(
            encoded.hashes,
            encoded
                .shards
                .iter()
                .map(BlobHash::digest)
                .collect::<Vec<_>>()
        );
        assert_eq!((encoded.index, encoded.len), (i, len));
        encoder.recycle(encoded);
    }
    Ok(())
}

/// A rebuild through parity whose shards span several decode stripes, the last one short and
/// of odd length, restores every byte; so does every choice of which data shards are missing.
#[test]
fn leopard_rebuilds_through_parity_across_decode_stripes() -> TestResult {
    // 2 of 4: stripes of 2 MiB, so a 5 MiB + 3 byte segment has shards of 2.5 MiB + 2 bytes.
    let code = Leopard::new(2, 4)?;
    let segment = test_bytes((5 << 20) + 3, 7);
    let mut shards = Vec::new();
    code.encode_into(&segment, &mut shards)?;
    for missing in [vec![0], vec![1], vec![0, 1]] {
        let slots: Vec<Option<&[u8]>> = (0..4)
            .map(|i| (!missing.contains(&i)).then(|| shards[i].as_slice()))
            .collect();
        assert_eq!(
            code.rebuild(&slots, segment.len())?,
            segment,
            "missing {missing:?}"
        );
    }
    Ok(())
}
