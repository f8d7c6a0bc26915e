//! Sealing and opening throughput of the segmented AES-256-GCM (STREAM, 64 KiB segments) against
//! a one-shot `Aes256Gcm` encryption and decryption of the same 64 MiB, in the same run: on one
//! thread (the cost of segmenting) and on all threads (what parallel segments buy).
//!
//! `cargo bench -p agigit-benches --bench crypt` prints criterion's report, then the ratios
//! measured back to back in one interleaved run.

#![allow(
    clippy::expect_used,
    reason = "a broken bench fixture should stop the run loudly"
)]

use std::hint::black_box;
use std::time::Instant;

use aes_gcm::aead::{Aead, AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use agigit_crypt::{AesGcmStream, ContentKey, SegmentCipher};
use criterion::{Criterion, Throughput, criterion_group};

const TOTAL: usize = 64 << 20;
const AD: &[u8] = b"agigit/bench-object";

struct Fixture {
    plaintext: Vec<u8>,
    key: ContentKey,
    cipher: AesGcmStream,
    sealed: Vec<u8>,
    one_shot: Aes256Gcm,
    nonce: Nonce<aes_gcm::aead::consts::U12>,
    one_shot_sealed: Vec<u8>,
    single: rayon::ThreadPool,
}

impl Fixture {
    fn new() -> Self {
        let plaintext: Vec<u8> = (0..TOTAL)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect();
        let key = ContentKey::from_bytes([0x42; 32]);
        let cipher = AesGcmStream::default();
        let sealed = cipher.seal(&key, AD, &plaintext).expect("seal");
        let one_shot = Aes256Gcm::new(&(*key.as_bytes()).into());
        let nonce = [7u8; 12].into();
        let one_shot_sealed = one_shot.encrypt(&nonce, &plaintext[..]).expect("encrypt");
        let single = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        Self {
            plaintext,
            key,
            cipher,
            sealed,
            one_shot,
            nonce,
            one_shot_sealed,
            single,
        }
    }

    fn one_shot_seal(&self) -> Vec<u8> {
        self.one_shot
            .encrypt(&self.nonce, &self.plaintext[..])
            .expect("encrypt")
    }

    fn one_shot_open(&self) -> Vec<u8> {
        self.one_shot
            .decrypt(&self.nonce, &self.one_shot_sealed[..])
            .expect("decrypt")
    }

    /// One-shot encryption into a reused buffer: copy, then encrypt in place (no allocation).
    fn one_shot_seal_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.plaintext);
        let tag = self
            .one_shot
            .encrypt_inout_detached(&self.nonce, &[], out.as_mut_slice().into());
        out.extend_from_slice(&tag.expect("encrypt"));
    }

    /// One-shot decryption into a reused buffer.
    fn one_shot_open_into(&self, out: &mut Vec<u8>) {
        let (body, tag) = self
            .one_shot_sealed
            .split_at(self.one_shot_sealed.len() - 16);
        out.clear();
        out.extend_from_slice(body);
        let tag = aes_gcm::Tag::try_from(tag).expect("tag length");
        self.one_shot
            .decrypt_inout_detached(&self.nonce, &[], out.as_mut_slice().into(), &tag)
            .expect("decrypt");
    }

    fn seal_into(&self, out: &mut Vec<u8>) {
        self.cipher
            .seal_into(&self.key, AD, &self.plaintext, out)
            .expect("seal");
    }

    fn open_into(&self, out: &mut Vec<u8>) {
        self.cipher
            .open_into(&self.key, AD, &self.sealed, out)
            .expect("open");
    }

    fn seal(&self) -> Vec<u8> {
        self.cipher
            .seal(&self.key, AD, &self.plaintext)
            .expect("seal")
    }

    fn open(&self) -> Vec<u8> {
        self.cipher.open(&self.key, AD, &self.sealed).expect("open")
    }
}

fn bench_crypt(c: &mut Criterion) {
    let f = Fixture::new();
    let mut group = c.benchmark_group("crypt");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.sample_size(20);
    group.bench_function("one_shot_aes256gcm_encrypt", |b| {
        b.iter(|| black_box(f.one_shot_seal()))
    });
    group.bench_function("one_shot_aes256gcm_decrypt", |b| {
        b.iter(|| black_box(f.one_shot_open()))
    });
    group.bench_function("seal_1_thread", |b| {
        b.iter(|| f.single.install(|| black_box(f.seal())))
    });
    group.bench_function("open_1_thread", |b| {
        b.iter(|| f.single.install(|| black_box(f.open())))
    });
    group.bench_function("seal_all_threads", |b| b.iter(|| black_box(f.seal())));
    let mut out = Vec::new();
    group.bench_function("one_shot_encrypt_reused_buffer", |b| {
        b.iter(|| f.one_shot_seal_into(&mut out))
    });
    group.bench_function("seal_into_1_thread", |b| {
        b.iter(|| f.single.install(|| f.seal_into(&mut out)))
    });
    group.bench_function("one_shot_decrypt_reused_buffer", |b| {
        b.iter(|| f.one_shot_open_into(&mut out))
    });
    group.bench_function("open_into_1_thread", |b| {
        b.iter(|| f.single.install(|| f.open_into(&mut out)))
    });
    // The cipher alone, in place on a reused buffer: one 64 MiB call against 64 KiB calls shows
    // what cutting into segments costs the cipher itself, apart from memory traffic.
    let mut buffer = f.plaintext.clone();
    for (name, size) in [
        ("in_place_one_call", TOTAL),
        ("in_place_64k_calls", 64 << 10),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for (i, chunk) in buffer.chunks_mut(size).enumerate() {
                    let mut nonce = [0u8; 12];
                    nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    let tag = f
                        .one_shot
                        .encrypt_inout_detached(&nonce.into(), &[], chunk.into());
                    black_box(tag.expect("encrypt"));
                }
            });
        });
    }
    group.bench_function("open_all_threads", |b| b.iter(|| black_box(f.open())));
    group.finish();
}

/// Alternating rounds of each pair; prints the best time of each (noise on a shared machine only
/// ever slows a run down, so the minimum is the least disturbed figure) and their ratio.
fn print_ratios() {
    let f = Fixture::new();
    let gbs = |secs: f64| TOTAL as f64 / secs / 1e9;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let time = |run: &mut dyn FnMut(&mut Vec<u8>), buf: &mut Vec<u8>| {
        let start = Instant::now();
        run(buf);
        black_box(&buf);
        start.elapsed().as_secs_f64()
    };
    type Run<'a> = Box<dyn FnMut(&mut Vec<u8>) + 'a>;
    let pairs: Vec<(&str, Run<'_>, Run<'_>)> = vec![
        (
            "seal, new output, 1 thread",
            Box::new(|o| *o = f.single.install(|| f.seal())),
            Box::new(|o| *o = f.one_shot_seal()),
        ),
        (
            "open, new output, 1 thread",
            Box::new(|o| *o = f.single.install(|| f.open())),
            Box::new(|o| *o = f.one_shot_open()),
        ),
        (
            "seal, reused output, 1 thread",
            Box::new(|o| f.single.install(|| f.seal_into(o))),
            Box::new(|o| f.one_shot_seal_into(o)),
        ),
        (
            "open, reused output, 1 thread",
            Box::new(|o| f.single.install(|| f.open_into(o))),
            Box::new(|o| f.one_shot_open_into(o)),
        ),
        (
            "seal, reused output, all threads",
            Box::new(|o| f.seal_into(o)),
            Box::new(|o| f.one_shot_seal_into(o)),
        ),
        (
            "open, reused output, all threads",
            Box::new(|o| f.open_into(o)),
            Box::new(|o| f.one_shot_open_into(o)),
        ),
    ];
    println!("\ncrypt, 64 MiB, 64 KiB segments, one interleaved run (best of 15 rounds each):");
    for (name, mut ours, mut theirs) in pairs {
        let (mut best_ours, mut best_theirs) = (f64::MAX, f64::MAX);
        for _ in 0..15 {
            best_ours = best_ours.min(time(&mut *ours, &mut a));
            best_theirs = best_theirs.min(time(&mut *theirs, &mut b));
        }
        let change = (best_ours / best_theirs - 1.0) * 100.0;
        println!(
            "  {name}: segmented {:.2} GB/s, one-shot {:.2} GB/s, segmented time {change:+.1}%",
            gbs(best_ours),
            gbs(best_theirs),
        );
    }
}

criterion_group!(benches, bench_crypt);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        print_ratios();
    }
}
