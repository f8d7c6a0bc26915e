//! Event verification throughput: the `nostr` crate (libsecp256k1, C) against this project's
//! independent verifier (own NIP-01 serializer + pure-Rust `k256`), on the same signed events.
//!
//! `cargo bench -p agigit-benches --bench verify` prints criterion's report for each, then the
//! ratio of the two measured in one interleaved run (the machine is shared and noisy, so only the
//! ratio is worth quoting).

#![allow(
    clippy::expect_used,
    reason = "a broken bench fixture should stop the run loudly"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use agigit_event::nostr::prelude::{Event, Keys, SecretKey, Timestamp};
use agigit_event::{K256Verifier, NostrVerifier, RefName, RepoId, RepoState, Signed, Verifier};
use agigit_hash::ObjectId;
use criterion::{Criterion, Throughput, criterion_group};

/// Realistic state events: a repository with a few branches, signed by different keys.
fn events(count: u8) -> Vec<Event> {
    (1..=count)
        .map(|i| {
            let secret = SecretKey::from_slice(&[i; 32]).expect("1..=254 repeated is a valid key");
            let keys = Keys::new(secret);
            let mut state = RepoState::new(RepoId::new("bench-model").expect("valid id"));
            for b in 0..4u8 {
                let name = RefName::branch(&format!("branch-{b}")).expect("valid ref");
                state.refs.insert(name, ObjectId::digest([i, b]));
            }
            Signed::sign(
                state,
                &keys,
                Timestamp::from_secs(1_700_000_000 + u64::from(i)),
            )
            .expect("local keys sign")
            .into_event()
        })
        .collect()
}

fn verify_all(verifier: &dyn Verifier, events: &[Event]) {
    for event in events {
        black_box(verifier.verify_event(black_box(event))).expect("valid event");
    }
}

fn bench_verify(c: &mut Criterion) {
    let events = events(64);
    let mut group = c.benchmark_group("verify_event");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("nostr_libsecp256k1", |b| {
        b.iter(|| verify_all(&NostrVerifier, &events))
    });
    group.bench_function("k256_independent", |b| {
        b.iter(|| verify_all(&K256Verifier, &events))
    });
    group.finish();
}

/// Times both verifiers in alternating rounds and prints events/s and the ratio (median of the
/// per-round ratios).
fn print_ratio() {
    let events = events(64);
    let rounds = 21;
    let time = |verifier: &dyn Verifier| {
        let start = Instant::now();
        for _ in 0..8 {
            verify_all(verifier, &events);
        }
        start.elapsed()
    };
    let mut ratios = Vec::with_capacity(rounds);
    let (mut nostr_total, mut k256_total) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let nostr = time(&NostrVerifier);
        let k256 = time(&K256Verifier);
        nostr_total += nostr;
        k256_total += k256;
        ratios.push(k256.as_secs_f64() / nostr.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let per_round = (events.len() * 8) as f64;
    let rate = |total: Duration| per_round * rounds as f64 / total.as_secs_f64();
    println!(
        "verify_event (one interleaved run, {rounds} rounds of {per_round} events): \
         nostr/libsecp256k1 {:.0} events/s, k256 {:.0} events/s; \
         libsecp256k1 is {:.2}x as fast as k256 (median per-round ratio)",
        rate(nostr_total),
        rate(k256_total),
        ratios[rounds / 2]
    );
}

criterion_group!(benches, bench_verify);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --benches` and `cargo bench -- --test` run each bench once as a smoke test;
    // the ratio is only worth its time in a real run.
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        print_ratio();
    }
}
