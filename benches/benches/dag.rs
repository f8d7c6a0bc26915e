//! The commit DAG: `log` over a 100 000-commit history (topological, time and first-parent
//! orders), and the filesystem store's put and get of 16 MiB objects against a plain file write
//! (synced, as the store syncs) and read of the same bytes, in the same run.

#![allow(
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_wrap,
    reason = "a broken bench fixture should stop the run loudly; figures for people"
)]

use std::hint::black_box;
use std::io::Write as _;
use std::path::PathBuf;

use agigit_dag::{
    Commit, Find, FsStore, Kind, MemoryStore, ObjectId, Order, Tree, Write, WriteExt, log,
};
use criterion::{Criterion, Throughput, criterion_group};

mod support;
use support::best_of;

const COMMITS: usize = 100_000;
const OBJECT: usize = 16 << 20;

/// A main line with a three-commit side branch merged back every 100 commits.
fn history() -> (MemoryStore, ObjectId) {
    let store = MemoryStore::new();
    let tree = store.write_tree(&Tree::default()).expect("tree");
    let commit = |parents: Vec<ObjectId>, n: usize| {
        let c = Commit {
            tree,
            parents,
            base: None,
            author: [1; 32],
            time: n as i64,
            message: format!("commit {n}"),
            extra: Vec::new(),
        };
        store.write_commit(&c).expect("commit")
    };
    let mut tip = commit(Vec::new(), 0);
    let mut n = 1;
    while n < COMMITS {
        if n % 100 == 0 {
            let fork = tip;
            let mut side = fork;
            for _ in 0..3 {
                side = commit(vec![side], n);
                n += 1;
            }
            tip = commit(vec![tip, side], n);
        } else {
            tip = commit(vec![tip], n);
        }
        n += 1;
    }
    (store, tip)
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agigit-bench-dag-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn object_bytes() -> Vec<u8> {
    (0..OBJECT)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()[0])
        .collect()
}

fn plain_write(path: &std::path::Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(bytes).expect("write");
    f.sync_all().expect("sync");
}

fn bench_dag(c: &mut Criterion) {
    let (store, tip) = history();
    let mut group = c.benchmark_group("dag");
    group.sample_size(10);
    for (name, order, first_parent) in [
        ("log_topological_100k", Order::Topological, false),
        ("log_time_100k", Order::Time, false),
        ("log_first_parent_100k", Order::Topological, true),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(log(&store, &[tip], order, first_parent).expect("log").len()))
        });
    }

    let dir = scratch();
    let fs = FsStore::open(dir.join("store")).expect("store");
    let bytes = object_bytes();
    group.throughput(Throughput::Bytes(OBJECT as u64));
    group.bench_function("fs_store_put_16MiB", |b| {
        b.iter(|| {
            let id = fs.write_buf(Kind::Blob, &bytes).expect("put");
            std::fs::remove_file(fs.path_of(&id)).expect("remove");
        })
    });
    let plain = dir.join("plain");
    group.bench_function("plain_file_write_16MiB", |b| {
        b.iter(|| {
            plain_write(&plain, &bytes);
            std::fs::remove_file(&plain).expect("remove");
        })
    });
    let id = fs.write_buf(Kind::Blob, &bytes).expect("put");
    plain_write(&plain, &bytes);
    let mut buf = Vec::new();
    group.bench_function("fs_store_get_16MiB", |b| {
        b.iter(|| {
            black_box(
                fs.try_find(&id, &mut buf)
                    .expect("get")
                    .map(|o| o.data.len()),
            )
        })
    });
    group.bench_function("plain_file_read_16MiB", |b| {
        b.iter(|| black_box(std::fs::read(&plain).expect("read").len()))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Interleaved rounds of store and plain file, best of each, and the ratio.
fn print_ratios() {
    let dir = scratch();
    let fs = FsStore::open(dir.join("store")).expect("store");
    let bytes = object_bytes();
    let plain = dir.join("plain");
    let mbs = |s: f64| OBJECT as f64 / s / 1e6;
    let put = best_of(10, || {
        let id = fs.write_buf(Kind::Blob, &bytes).expect("put");
        std::fs::remove_file(fs.path_of(&id)).expect("remove");
    });
    let write = best_of(10, || {
        plain_write(&plain, &bytes);
        std::fs::remove_file(&plain).expect("remove");
    });
    let id = fs.write_buf(Kind::Blob, &bytes).expect("put");
    plain_write(&plain, &bytes);
    let mut buf = Vec::new();
    let get = best_of(10, || {
        black_box(fs.try_find(&id, &mut buf).expect("get"));
    });
    let read = best_of(10, || {
        black_box(std::fs::read(&plain).expect("read"));
    });
    println!(
        "\ndag, 16 MiB objects (best of 10): put {:.0} MB/s vs plain synced write {:.0} MB/s ({:.2}×); get (read + SHA-256) {:.0} MB/s vs plain read {:.0} MB/s ({:.2}×)",
        mbs(put),
        mbs(write),
        write / put,
        mbs(get),
        mbs(read),
        read / get
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_dag);

fn main() {
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        benches();
        Criterion::default().configure_from_args().final_summary();
        print_ratios();
    }
}
