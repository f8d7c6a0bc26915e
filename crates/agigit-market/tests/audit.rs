//! Storage audits' Merkle proofs: every leaf of every shard proves against the shard's root,
//! and nothing else does — another leaf's bytes, a flipped byte or hash, a path cut short or
//! padded, a leaf past the end.

#![allow(
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test fixtures, with sizes far below 2^32"
)]

use agigit_market::audit::{
    LEAF_SIZE, MAX_PATH, ProofError, RootBuilder, leaf_count, leaf_len, positions, prove, root,
    verify,
};
use proptest::prelude::*;

mod common;

/// Bytes that differ from leaf to leaf, so no two leaves hash alike.
fn shard(len: usize, seed: u8) -> Vec<u8> {
    common::bytes(len, u64::from(seed))
}

#[test]
fn every_leaf_of_small_trees_proves_and_no_other_does() {
    // Every tree shape from 1 to 40 leaves, with a short last leaf and with a full one.
    for leaves in 1..=40u64 {
        for tail in [1, LEAF_SIZE] {
            let len = (leaves - 1) * LEAF_SIZE + tail;
            let s = shard(len as usize, leaves as u8);
            let r = root(&s);
            assert_eq!(leaf_count(len), leaves);
            for leaf in 0..leaves {
                let (bytes, path) = prove(&s, leaf).expect("a leaf of the shard");
                assert_eq!(bytes.len() as u64, leaf_len(len, leaf));
                assert!(path.len() <= MAX_PATH);
                verify(&r, len, leaf, &bytes, &path).expect("its own proof verifies");
                // The same bytes and path do not prove any other leaf.
                for other in (0..leaves).filter(|o| *o != leaf) {
                    assert!(
                        verify(&r, len, other, &bytes, &path).is_err(),
                        "leaf {leaf}'s proof passed as leaf {other}'s in a tree of {leaves}"
                    );
                }
            }
            assert_eq!(prove(&s, leaves), None);
            assert_eq!(
                verify(&r, len, leaves, &[0], &[]),
                Err(ProofError::NoSuchLeaf {
                    leaf: leaves,
                    count: leaves
                })
            );
        }
    }
}

#[test]
fn a_proof_against_another_shards_root_fails() {
    let a = shard(5000, 1);
    let b = shard(5000, 2);
    let (bytes, path) = prove(&a, 3).expect("leaf 3");
    assert_eq!(
        verify(&root(&b), 5000, 3, &bytes, &path),
        Err(ProofError::Mismatch { leaf: 3 })
    );
}

#[test]
fn a_challenge_draws_the_same_positions_for_everyone_and_others_for_another_nonce() {
    let sizes = [3000, 1, 70_000];
    let p = positions(&[7; 32], 2, &sizes, 8);
    assert_eq!(p, positions(&[7; 32], 2, &sizes, 8));
    assert_eq!(p.len(), 8);
    for pos in &p {
        assert!(pos.shard < sizes.len());
        assert!(pos.leaf < leaf_count(sizes[pos.shard]));
    }
    assert_ne!(p, positions(&[8; 32], 2, &sizes, 8));
    assert_ne!(p, positions(&[7; 32], 3, &sizes, 8));
    assert!(positions(&[7; 32], 2, &[], 8).is_empty());
    // An audit of at least as many positions as shards reaches every shard; one of fewer,
    // that many distinct shards.
    for nonce in 0..50u8 {
        let mut reached: Vec<usize> = positions(&[nonce; 32], 0, &sizes, 3)
            .iter()
            .map(|p| p.shard)
            .collect();
        reached.sort_unstable();
        assert_eq!(reached, [0, 1, 2]);
        let mut two: Vec<usize> = positions(&[nonce; 32], 0, &sizes, 2)
            .iter()
            .map(|p| p.shard)
            .collect();
        two.dedup();
        assert_eq!(two.len(), 2);
    }
}

proptest! {
    #[test]
    fn the_root_is_the_same_however_the_bytes_are_fed(
        len in 1usize..20_000,
        cuts in prop::collection::vec(0usize..20_000, 0..8),
    ) {
        let s = shard(len, 9);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % len).collect();
        cuts.sort_unstable();
        let mut b = RootBuilder::new();
        let mut at = 0;
        for c in cuts {
            b.update(&s[at..c]);
            at = c;
        }
        b.update(&s[at..]);
        prop_assert_eq!(b.finish(), root(&s));
    }

    #[test]
    fn proofs_round_trip_and_any_corruption_fails(
        len in 1usize..40_000,
        pick in any::<u64>(),
        flip in any::<usize>(),
        bit in 0u8..8,
    ) {
        let s = shard(len, 3);
        let r = root(&s);
        let leaf = pick % leaf_count(len as u64);
        let (bytes, path) = prove(&s, leaf).expect("a leaf");
        prop_assert!(verify(&r, len as u64, leaf, &bytes, &path).is_ok());

        // A flipped bit in the bytes.
        let mut bad = bytes.clone();
        let i = flip % bad.len();
        bad[i] ^= 1 << bit;
        prop_assert_eq!(
            verify(&r, len as u64, leaf, &bad, &path),
            Err(ProofError::Mismatch { leaf })
        );
        // A flipped bit in a path hash.
        if !path.is_empty() {
            let mut bad = path.clone();
            let j = flip % bad.len();
            bad[j][flip % 32] ^= 1 << bit;
            prop_assert!(verify(&r, len as u64, leaf, &bytes, &bad).is_err());
            // A path cut short.
            prop_assert!(verify(&r, len as u64, leaf, &bytes, &path[1..]).is_err());
        }
        // A path padded with one more hash.
        let mut long = path.clone();
        long.push([0; 32]);
        prop_assert!(verify(&r, len as u64, leaf, &bytes, &long).is_err());
        // A byte more or less.
        let mut longer = bytes.clone();
        longer.push(0);
        let expected = leaf_len(len as u64, leaf);
        prop_assert_eq!(
            verify(&r, len as u64, leaf, &longer, &path),
            Err(ProofError::Length { leaf, expected, found: longer.len() })
        );
    }
}
