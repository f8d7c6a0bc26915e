//! Erasure coding throughput, one core: encode, rebuild from the data shards (systematic) and
//! rebuild through parity, for both codecs at (k=16, N=32) and (k=32, N=96) on 64 MiB cut into
//! 1 MiB segments, with SHA-256 of the same bytes as the reference line.
//!
//! `cargo bench -p agigit-benches --bench erasure` (add `-- --quick` for a faster, rougher run).
//! Criterion prints MiB/s for each; at the end a table of all figures from this one run, and the
//! ratio Leopard/NovelPoly per operation; then Leopard's rebuild through parity (the code's matrix
//! applied with the library's SIMD multiply) against `reed-solomon-simd`'s own FFT decoder called
//! on whole shards, the alternative it replaced.

#![allow(
    clippy::expect_used,
    reason = "a broken bench fixture should stop the run loudly"
)]

use std::hint::black_box;
use std::time::Instant;

use agigit_hash::BlobHash;
use agigit_shard::conformance::test_bytes;
use agigit_shard::{ErasureCode, Leopard, NovelPoly};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};

const TOTAL: usize = 64 << 20;
const SEGMENT: usize = 1 << 20;
const PARAMS: [(usize, usize); 3] = [(4, 10), (16, 32), (32, 96)];

fn codecs(k: usize, n: usize) -> Vec<(&'static str, Box<dyn ErasureCode>)> {
    vec![
        (
            "novelpoly",
            Box::new(NovelPoly::new(k, n).expect("valid parameters")),
        ),
        (
            "leopard",
            Box::new(Leopard::new(k, n).expect("valid parameters")),
        ),
    ]
}

/// The shards of every segment.
fn encode_all(code: &dyn ErasureCode, data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    data.chunks(SEGMENT)
        .map(|s| code.encode(s).expect("encode"))
        .collect()
}

#[derive(Clone, Copy)]
enum Op {
    Encode,
    Systematic,
    Parity,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Encode => "encode",
            Self::Systematic => "rebuild_systematic",
            Self::Parity => "rebuild_parity",
        }
    }
}

/// Runs one operation over the whole object, reusing output buffers as a pipeline would (so the
/// figure is the codec's work, not the allocator's page faults).
fn run(
    op: Op,
    code: &dyn ErasureCode,
    data: &[u8],
    shards: &[Vec<Vec<u8>>],
    scratch: &mut Scratch,
) {
    let spec = code.spec();
    match op {
        Op::Encode => {
            for segment in data.chunks(SEGMENT) {
                code.encode_into(segment, &mut scratch.shards)
                    .expect("encode");
                black_box(&scratch.shards);
            }
        }
        Op::Systematic | Op::Parity => {
            // Systematic: the k data shards. Parity: the last k shards (all parity when N ≥ 2k).
            let keep = match op {
                Op::Systematic => 0..spec.k,
                _ => spec.n - spec.k..spec.n,
            };
            for (segment, seg_shards) in data.chunks(SEGMENT).zip(shards) {
                let slots: Vec<Option<&[u8]>> = (0..spec.n)
                    .map(|i| keep.contains(&i).then(|| seg_shards[i].as_slice()))
                    .collect();
                code.rebuild_into(&slots, segment.len(), &mut scratch.out)
                    .expect("rebuild");
                debug_assert_eq!(scratch.out, segment);
                black_box(&scratch.out);
            }
        }
    }
}

/// Output buffers reused from one segment to the next.
#[derive(Default)]
struct Scratch {
    shards: Vec<Vec<u8>>,
    out: Vec<u8>,
}

fn bench_erasure(c: &mut Criterion) {
    let data = test_bytes(TOTAL, 42);
    let mut group = c.benchmark_group("erasure");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.sample_size(10);
    group.bench_function("sha256_reference", |b| {
        b.iter(|| black_box(BlobHash::digest(&data)))
    });
    for (k, n) in PARAMS {
        for (name, code) in codecs(k, n) {
            let shards = encode_all(&*code, &data);
            for op in [Op::Encode, Op::Systematic, Op::Parity] {
                let id = BenchmarkId::new(format!("{name}/{}", op.name()), format!("k{k}_n{n}"));
                let mut scratch = Scratch::default();
                group.bench_function(id, |b| {
                    b.iter(|| run(op, &*code, &data, &shards, &mut scratch))
                });
            }
        }
    }
    group.finish();
}

/// `f`'s speed over the whole object in MiB/s, best of three runs: the least disturbed by the
/// machine's other work.
fn rate(f: &mut dyn FnMut()) -> f64 {
    let mib = TOTAL as f64 / f64::from(1 << 20);
    (0..3)
        .map(|_| {
            let start = Instant::now();
            f();
            mib / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// One pass of every operation, timed back to back, printed as a table with ratios.
fn print_table() {
    let data = test_bytes(TOTAL, 42);
    let sha = rate(&mut || {
        black_box(BlobHash::digest(&data));
    });
    println!(
        "\nerasure, one core, 64 MiB in 1 MiB segments (MiB/s, best of 3; SHA-256 {sha:.0} MiB/s)"
    );
    println!("| k / N | operation | novelpoly | leopard | leopard / novelpoly |");
    println!("|---|---|---|---|---|");
    for (k, n) in PARAMS {
        let codecs = codecs(k, n);
        let shards: Vec<_> = codecs
            .iter()
            .map(|(_, c)| encode_all(&**c, &data))
            .collect();
        for op in [Op::Encode, Op::Systematic, Op::Parity] {
            let rates: Vec<f64> = codecs
                .iter()
                .zip(&shards)
                .map(|((_, code), shards)| {
                    let mut scratch = Scratch::default();
                    rate(&mut || run(op, &**code, &data, shards, &mut scratch))
                })
                .collect();
            println!(
                "| {k} / {n} | {} | {:.0} | {:.0} | {:.1}x |",
                op.name(),
                rates[0],
                rates[1],
                rates[1] / rates[0]
            );
        }
    }
}

/// The alternative to Leopard's rebuild through parity: `reed-solomon-simd`'s own decoder, one
/// call per segment on whole shards (its fastest use), from the same shards the bench keeps.
fn library_rebuild(k: usize, n: usize, data: &[u8], shards: &[Vec<Vec<u8>>]) {
    for (segment, seg_shards) in data.chunks(SEGMENT).zip(shards) {
        // The last k shards, as `Op::Parity` keeps: the data shards among them, and parity.
        let recovery = (n - k..n)
            .filter(|&i| i >= k)
            .map(|i| (i - k, seg_shards[i].as_slice()));
        let original = (n - k..k).map(|i| (i, seg_shards[i].as_slice()));
        let restored =
            reed_solomon_simd::decode(k, n - k, original, recovery).expect("library decode");
        assert_eq!(
            restored.get(&0).map(|s| &s[..SEGMENT / k]),
            Some(&segment[..SEGMENT / k]),
            "the library rebuilt data shard 0"
        );
        black_box(restored);
    }
}

/// Leopard's rebuild through parity against the library's decoder, measured back to back.
fn print_rebuild_against_library() {
    let data = test_bytes(TOTAL, 42);
    println!(
        "\nrebuild through parity (the last k shards), one core, 64 MiB in 1 MiB segments (MiB/s, best of 3)"
    );
    println!("| k / N | leopard (matrix) | reed-solomon-simd decoder | leopard / library |");
    println!("|---|---|---|---|");
    for (k, n) in PARAMS {
        let code = Leopard::new(k, n).expect("valid parameters");
        let shards = encode_all(&code, &data);
        let mut scratch = Scratch::default();
        let ours = rate(&mut || run(Op::Parity, &code, &data, &shards, &mut scratch));
        let library = rate(&mut || library_rebuild(k, n, &data, &shards));
        println!(
            "| {k} / {n} | {ours:.0} | {library:.0} | {:.1}x |",
            ours / library
        );
    }
}

criterion_group!(benches, bench_erasure);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        print_table();
        print_rebuild_against_library();
    }
}
