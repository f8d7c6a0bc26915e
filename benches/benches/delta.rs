//! Delta compression on a 4096 × 4096 `f32` delta (`AGIGIT_BENCH_DELTA_N` sets another size):
//! randomized SVD at rank 64 and 256 against faer's full SVD, `Lossless` throughput both ways
//! against zstd on the raw bytes, then tables printed after criterion's figures:
//! compression ratio against relative error for every codec on the same delta, and `Lossless`
//! on the three kinds of delta (fine-tune noise, low-rank update, unrelated tensor).
//!
//! Then the ratio–error curve of each rank policy on bf16 fine-tunes (a rank-16 update of a
//! fraction of a unit in the last place to a few, rounded to bf16), the error measured both
//! against the stored bf16 delta (what the fidelity statement records) and against the fine-tune
//! before rounding (what a reader's weights lose).
//!
//! `AGIGIT_BENCH_SKIP_FULL_SVD=1` skips the full SVD (about 50 s at 4096 here);
//! `AGIGIT_REAL_WEIGHTS=path/to/model.safetensors` adds `Lossless` on real weights.

#![allow(
    clippy::expect_used,
    clippy::cast_precision_loss,
    reason = "a broken bench fixture should stop the run loudly; figures for people"
)]

use std::hint::black_box;
use std::time::Instant;

use agigit_delta::rsvd::{RsvdParams, randomized_svd};
use agigit_delta::{
    DType, DeltaCodec, Device, FactorStorage, Lossless, LowRank, RankPolicy, SafetensorsFile,
    SignScale, Tensor, decode, inspect, synth,
};
use criterion::{Criterion, Throughput, criterion_group};

mod support;
use support::best_of;

fn size() -> usize {
    std::env::var("AGIGIT_BENCH_DELTA_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096)
}

/// A fine-tune-like delta with structure: a rank-32 update plus dense noise at a quarter of its
/// RMS, on Gaussian base weights (σ = 0.02, as initialized).
struct Fixture {
    n: usize,
    base: Tensor,
    target: Tensor,
    delta: Vec<f32>,
}

impl Fixture {
    fn new() -> Self {
        let n = size();
        let base = synth::gaussian(1, n * n, 0.02);
        let update = synth::low_rank(2, n, n, 32, 0.002);
        let noise = synth::gaussian(3, n * n, 0.0005);
        let delta = synth::add(&update, &noise);
        let target = synth::add(&base, &delta);
        Fixture {
            n,
            base: synth::tensor(DType::F32, &[n, n], &base),
            target: synth::tensor(DType::F32, &[n, n], &target),
            delta,
        }
    }

    fn rsvd(&self, rank: usize) -> usize {
        let params = RsvdParams {
            sketch: rank + 10,
            power_iters: 2,
            seed: 0,
        };
        randomized_svd(&self.delta, self.n, self.n, params, &Device::Cpu)
            .expect("rsvd")
            .len()
    }
}

fn bench_delta(c: &mut Criterion) {
    let f = Fixture::new();
    let mut group = c.benchmark_group("delta");
    group.sample_size(10);
    for rank in [64, 256] {
        group.bench_function(format!("rsvd_rank{rank}_{}", f.n), |b| {
            b.iter(|| black_box(f.rsvd(rank)))
        });
    }
    let bytes = f.target.data().len() as u64;
    group.throughput(Throughput::Bytes(bytes));
    let codec = Lossless::default();
    let encoded = codec
        .encode(f.target.view(), Some(f.base.view()))
        .expect("encode");
    group.bench_function("lossless_encode", |b| {
        b.iter(|| black_box(codec.encode(f.target.view(), Some(f.base.view()))))
    });
    group.bench_function("lossless_decode", |b| {
        b.iter(|| black_box(decode(&encoded.payload, Some(f.base.view()))))
    });
    // The alternative: zstd at the same level on the target's raw bytes (no base).
    let raw = zstd::bulk::compress(f.target.data(), 3).expect("zstd");
    group.bench_function("zstd_raw_compress", |b| {
        b.iter(|| black_box(zstd::bulk::compress(f.target.data(), 3)))
    });
    group.bench_function("zstd_raw_decompress", |b| {
        b.iter(|| black_box(zstd::bulk::decompress(&raw, f.target.data().len())))
    });
    group.finish();
}

fn print_tables() {
    let f = Fixture::new();
    let n = f.n;
    println!("\ndelta, {n} × {n} f32 (rank-32 update + dense noise at 1/4 of its RMS):");

    // 1. Randomized SVD against the full SVD, in one run.
    let r64 = best_of(3, || {
        black_box(f.rsvd(64));
    });
    let r256 = best_of(3, || {
        black_box(f.rsvd(256));
    });
    if std::env::var_os("AGIGIT_BENCH_SKIP_FULL_SVD").is_some() {
        println!("  rsvd rank 64 {r64:.3} s, rank 256 {r256:.3} s (full SVD skipped)");
    } else {
        let m = faer::Mat::from_fn(n, n, |i, j| f.delta[i * n + j]);
        let full = best_of(1, || {
            black_box(m.svd().expect("svd"));
        });
        println!(
            "  faer full SVD {full:.2} s; rsvd rank 64 {r64:.3} s ({:.0}× faster), rank 256 {r256:.3} s ({:.0}× faster)",
            full / r64,
            full / r256
        );
    }

    // 2. Ratio against error, every codec on the same delta.
    println!("\n  codec                      ratio   rel. error   encode s   decode s");
    let row = |name: &str, codec: &dyn DeltaCodec| {
        let start = Instant::now();
        let e = codec
            .encode(f.target.view(), Some(f.base.view()))
            .expect("encode");
        let enc = start.elapsed().as_secs_f64();
        let start = Instant::now();
        black_box(decode(&e.payload, Some(f.base.view())).expect("decode"));
        let dec = start.elapsed().as_secs_f64();
        let note = fallback_note(&e.report);
        println!(
            "  {name:<26} {:>6.2}× {:>11.2e} {enc:>10.2} {dec:>10.2}{note}",
            e.report.ratio(),
            e.report.rel_error
        );
    };
    row("lossless", &Lossless::default());
    row("signscale", &SignScale);
    for rank in [16, 32, 64, 128, 256] {
        row(
            &format!("lowrank r={rank} f16"),
            &LowRank::new(Device::Cpu, RankPolicy::Fixed(rank)),
        );
    }
    for rank in [32, 64] {
        let mut c = LowRank::new(Device::Cpu, RankPolicy::Fixed(rank));
        c.storage = FactorStorage::delta_come();
        row(&format!("lowrank r={rank} delta-come"), &c);
    }
    row(
        "lowrank err≤0.3 f16",
        &LowRank::new(Device::Cpu, RankPolicy::RelError(0.3)),
    );

    // 3. Lossless on the three kinds of delta, against zstd on the raw bytes, and against the
    //    order-0 entropy bound of the XOR delta's byte planes (bound / payload: 1.0 is the bound).
    println!(
        "\n  lossless vs zstd-3 on raw bytes (ratios, higher is better) and vs the order-0 bound:"
    );
    println!(
        "  delta kind                      dtype   lossless   lossless/no base   zstd raw   of bound"
    );
    let base = synth::gaussian(1, n * n, 0.02);
    let cases = [
        (
            "(a) full fine-tune: 1% noise",
            synth::perturb(&base, 2, 0.01),
        ),
        (
            "(b) LoRA-merged: rank-16",
            synth::add(&base, &synth::low_rank(3, n, n, 16, 0.002)),
        ),
        ("(c) unrelated tensor", synth::gaussian(4, n * n, 0.02)),
    ];
    for dtype in [DType::BF16, DType::F16, DType::F32] {
        let b = synth::tensor(dtype, &[n, n], &base);
        for (name, target) in &cases {
            let t = synth::tensor(dtype, &[n, n], target);
            let with = Lossless::default()
                .encode(t.view(), Some(b.view()))
                .expect("encode");
            let alone = Lossless::default().encode(t.view(), None).expect("encode");
            let raw = zstd::bulk::compress(t.data(), 3).expect("zstd").len();
            // The bound for what the codec chose: XOR against the base, or the tensor alone
            // when the base did not help (the payload's header says which).
            let xor = inspect(&with.payload).expect("header").base.is_some();
            let bound = Lossless::order0_bound(&t.view(), xor.then(|| b.view()).as_ref());
            println!(
                "  {name:<31} {dtype:<6} {:>8.3}× {:>17.3}× {:>9.3}× {:>9.3}",
                with.report.ratio(),
                alone.report.ratio(),
                t.data().len() as f64 / raw as f64,
                bound / with.payload.len() as f64
            );
        }
    }

    // 4. Rank policies on bf16 fine-tunes: ratio against error, per policy.
    policy_curves(n.min(2048));

    // 5. Real weights, when given.
    if let Some(path) = std::env::var_os("AGIGIT_REAL_WEIGHTS") {
        let file = SafetensorsFile::open(&path).expect("open real weights");
        let (mut dense, mut ours_f32, mut ours_bf16, mut raw_bf16, mut zstd_bf16) = (0, 0, 0, 0, 0);
        for (_, t) in file.tensors().filter(|(_, t)| t.dtype() == DType::F32) {
            dense += t.data().len();
            ours_f32 += Lossless::default()
                .encode(t, None)
                .expect("encode")
                .payload
                .len();
            let v = t.to_f64().expect("f32");
            let bf = Tensor::from_f64(DType::BF16, t.shape().to_vec(), &v).expect("bf16");
            raw_bf16 += bf.data().len();
            ours_bf16 += Lossless::default()
                .encode(bf.view(), None)
                .expect("encode")
                .payload
                .len();
            zstd_bf16 += zstd::bulk::compress(bf.data(), 3).expect("zstd").len();
        }
        println!(
            "\n  real weights ({}): lossless f32 {:.3}×; as bf16 lossless {:.3}×, zstd raw {:.3}×",
            std::path::Path::new(&path).display(),
            dense as f64 / ours_f32 as f64,
            raw_bf16 as f64 / ours_bf16 as f64,
            raw_bf16 as f64 / zstd_bf16 as f64
        );
    }
}

/// Ratio and error of every rank policy on bf16 fine-tunes whose true update is rank 16 and
/// `rms` in size (the weights are N(0, 0.02), so one unit in the last place is about 1.2e-4 at
/// one σ): "stored" is ‖decoded − target‖ / ‖target − base‖ (what a commit records), "fine-tune"
/// ‖decoded − (base + update)‖ / ‖update‖ (what a reader's weights lose against the fine-tune
/// before it was rounded to bf16; the bf16 weights themselves are not at 0 on it).
fn policy_curves(n: usize) {
    println!(
        "\n  rank policies on bf16 fine-tunes, {n} × {n}, true update rank 16 (ratio; error vs stored, vs fine-tune):"
    );
    let w = synth::gaussian(11, n * n, 0.02);
    let base = synth::tensor(DType::BF16, &[n, n], &w);
    let banded = |policy| {
        let mut c = LowRank::new(Device::Cpu, policy);
        c.storage = FactorStorage::delta_come();
        c
    };
    let mut policies: Vec<(String, Box<dyn DeltaCodec>)> = vec![
        ("lossless".into(), Box::new(Lossless::default())),
        ("signscale".into(), Box::new(SignScale)),
    ];
    for (name, policy) in [
        ("fixed r=16", RankPolicy::Fixed(16)),
        ("fixed r=32 (default)", RankPolicy::Fixed(32)),
        ("fixed r=64", RankPolicy::Fixed(64)),
        ("max error 0.3", RankPolicy::RelError(0.3)),
        ("max error 0.5", RankPolicy::RelError(0.5)),
        ("energy 0.9", RankPolicy::Energy(0.9)),
        ("energy 0.99", RankPolicy::Energy(0.99)),
    ] {
        policies.push((format!("{name} banded"), Box::new(banded(policy))));
    }
    for rms in [6e-5, 1.5e-4, 5e-4] {
        let update = synth::low_rank(12, n, n, 16, rms);
        let target = synth::tensor(DType::BF16, &[n, n], &synth::add(&w, &update));
        let truth: Vec<f64> = w
            .iter()
            .zip(&update)
            .map(|(a, u)| f64::from(*a) + f64::from(*u))
            .collect();
        let unorm: f64 = update
            .iter()
            .map(|u| f64::from(*u).powi(2))
            .sum::<f64>()
            .sqrt();
        let from_truth = |t: &Tensor| {
            let v = t.view().to_f64().expect("bf16");
            v.iter()
                .zip(&truth)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt()
                / unorm
        };
        println!(
            "  update rms {rms:.0e} (bf16 weights themselves: {:.3} from the fine-tune)",
            from_truth(&target)
        );
        for (name, codec) in &policies {
            let e = codec
                .encode(target.view(), Some(base.view()))
                .expect("encode");
            let decoded = decode(&e.payload, Some(base.view())).expect("decode");
            let rank = e.report.rank.map(|r| format!(" r={r}")).unwrap_or_default();
            let note = fallback_note(&e.report);
            println!(
                "    {name:<28} {:>7.2}×  stored {:>6.3}  fine-tune {:>6.3}{rank}{note}",
                e.report.ratio(),
                e.report.rel_error,
                from_truth(&decoded)
            );
        }
    }
}

/// `  (fell back: …)` when the codec stored the tensor losslessly instead.
fn fallback_note(report: &agigit_delta::Report) -> String {
    report
        .fallback
        .as_ref()
        .map(|r| format!("  (fell back: {r})"))
        .unwrap_or_default()
}

criterion_group!(benches, bench_delta);

fn main() {
    let listing = std::env::args().any(|a| a == "--test" || a == "--list");
    if !listing {
        benches();
        Criterion::default().configure_from_args().final_summary();
        print_tables();
    }
}
