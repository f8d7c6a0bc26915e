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
//! `AGIGIT_REAL_WEIGHTS=path/to/model.safetensors` adds `Lossless` on real weights;
//! `AGIGIT_REAL_FINETUNE=dir` adds every codec and policy on real fine-tunes (a full and a
//! LoRA-merged one, f32 and bf16, made by `scripts/real-weights.sh` with `examples/finetune.rs`).

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

    // 5. Real fine-tunes, when made (`scripts/real-weights.sh`).
    if let Some(dir) = std::env::var_os("AGIGIT_REAL_FINETUNE") {
        real_finetunes(std::path::Path::new(&dir));
    }

    // 6. Real weights, when given.
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
    let policies = policies();
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

/// Every codec and rank policy the curves compare, by name.
fn policies() -> Vec<(String, Box<dyn DeltaCodec>)> {
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
    // Half-precision factors: more bytes per singular vector, no quantization floor.
    for (name, policy) in [
        ("fixed r=32", RankPolicy::Fixed(32)),
        ("max error 0.1", RankPolicy::RelError(0.1)),
        ("energy 0.99", RankPolicy::Energy(0.99)),
    ] {
        let mut c = LowRank::new(Device::Cpu, policy);
        c.storage = FactorStorage::F16;
        policies.push((format!("{name} f16"), Box::new(c)));
    }
    policies
}

/// The file name a policy's decoded checkpoint is saved under, for the policies whose model
/// outputs `scripts/real-weights.sh` compares with the fine-tune's.
fn saved_as(policy: &str) -> Option<&'static str> {
    match policy {
        "fixed r=32 (default) banded" => Some("r32-banded"),
        "max error 0.1 f16" => Some("err0.1-f16"),
        "signscale" => Some("signscale"),
        _ => None,
    }
}

/// Squared distance between two tensors' values (any float dtypes, same element count).
fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// The codecs on real fine-tunes (`examples/finetune.rs`'s output in `dir`): for a full and a
/// LoRA-merged fine-tune, in f32 and bf16, over every matrix the fine-tune changed — Lossless
/// against the order-0 bound of its planes and zstd-3, and each policy's ratio and error (vs the
/// stored delta, and for bf16 vs the f32 fine-tune: what a reader's weights lose against the
/// training run's own result).
fn real_finetunes(dir: &std::path::Path) {
    let open = |name: &str| {
        let path = dir.join(format!("{name}.safetensors"));
        SafetensorsFile::open(&path).expect("the fine-tunes (made by scripts/real-weights.sh)")
    };
    let policies = policies();
    let (base32, base16) = (open("base-f32"), open("base-bf16"));
    for kind in ["full", "lora"] {
        let truth = open(&format!("{kind}-f32"));
        for (dtype, base, target) in [
            ("f32", &base32, open(&format!("{kind}-f32"))),
            ("bf16", &base16, open(&format!("{kind}-bf16"))),
        ] {
            // The matrices the fine-tune changed (in this dtype).
            let names: Vec<String> = target
                .names()
                .filter(|n| {
                    let (t, b) = (target.tensor(n).expect("t"), base.tensor(n).expect("b"));
                    t.shape().len() == 2 && t.dtype().is_float() && t.data() != b.data()
                })
                .map(str::to_owned)
                .collect();
            let (mut dense, mut lossless, mut bound, mut zstd3) = (0usize, 0usize, 0.0f64, 0usize);
            let (mut delta2, mut truth_delta2, mut rounding2) = (0.0, 0.0, 0.0);
            for n in &names {
                let (t, b) = (target.tensor(n).expect("t"), base.tensor(n).expect("b"));
                let e = Lossless::default().encode(t, Some(b)).expect("encode");
                dense += t.data().len();
                lossless += e.payload.len();
                let xor = inspect(&e.payload).expect("header").base.is_some();
                bound += Lossless::order0_bound(&t, xor.then_some(&b));
                zstd3 += zstd::bulk::compress(t.data(), 3).expect("zstd").len();
                let (tv, bv) = (t.to_f64().expect("t"), b.to_f64().expect("b"));
                let tr = truth.tensor(n).expect("truth").to_f64().expect("truth");
                let b32 = base32.tensor(n).expect("b32").to_f64().expect("b32");
                delta2 += dist2(&tv, &bv);
                truth_delta2 += dist2(&tr, &b32);
                rounding2 += dist2(&tv, &tr);
            }
            println!(
                "\n  real {kind} fine-tune, {dtype}: {} matrices changed, {:.1} MB; ‖Δ‖/‖fine-tune Δ‖ \
                 {:.3}, rounding {:.3} of it",
                names.len(),
                dense as f64 / 1e6,
                (delta2 / truth_delta2).sqrt(),
                (rounding2 / truth_delta2).sqrt()
            );
            println!(
                "    lossless {:.3}× ({:.1}% of the order-0 bound {:.3}×); zstd-3 raw {:.3}×",
                dense as f64 / lossless as f64,
                100.0 * bound / lossless as f64,
                dense as f64 / bound,
                dense as f64 / zstd3 as f64
            );
            for (name, codec) in &policies {
                let (mut stored, mut err2, mut truth_err2, mut fallbacks) = (0usize, 0.0, 0.0, 0);
                let mut decoded = std::collections::BTreeMap::new();
                for n in &names {
                    let (t, b) = (target.tensor(n).expect("t"), base.tensor(n).expect("b"));
                    let e = codec.encode(t, Some(b)).expect("encode");
                    stored += e.payload.len();
                    fallbacks += usize::from(e.report.fallback.is_some());
                    let d = decode(&e.payload, Some(b)).expect("decode");
                    let dv = d.view().to_f64().expect("decoded");
                    err2 += dist2(&dv, &t.to_f64().expect("t"));
                    let tr = truth.tensor(n).expect("truth").to_f64().expect("truth");
                    truth_err2 += dist2(&dv, &tr);
                    decoded.insert(n.clone(), d);
                }
                // The whole checkpoint as a reader of this policy's commit gets it, for
                // `finetune compare` (what the model computes, not only its weights).
                if let Some(file) = saved_as(name) {
                    let tensors = target.names().map(|n| match decoded.get(n) {
                        Some(d) => (n, d.view()),
                        None => (n, target.tensor(n).expect("t")),
                    });
                    let path = dir.join(format!("decoded-{kind}-{dtype}-{file}.safetensors"));
                    agigit_delta::save_safetensors(&path, tensors, &Default::default())
                        .expect("save decoded");
                }
                println!(
                    "    {name:<28} {:>7.2}×  stored {:>6.3}  fine-tune {:>6.3}  ({fallbacks} of {} fell back)",
                    dense as f64 / stored as f64,
                    (err2 / delta2).sqrt(),
                    (truth_err2 / truth_delta2).sqrt(),
                    names.len()
                );
            }
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
