//! Datasets as content-defined chunks: how fast a file is cut (against a plain read of the same
//! file, in the same run), and what a new version of a 1 GB JSONL dataset — 1% of rows edited
//! in one block, 1% deleted in another, 1% appended — stores and sends (goal: ≤ 5% of the file).
//!
//! `cargo bench -p agigit-benches --bench chunks` prints criterion's report, then the ratios
//! measured back to back in one interleaved run, then the dedup figures. The dataset's size is
//! `AGIGIT_CHUNK_BENCH_BYTES` (default 1 GB); it is written under the system's temp directory
//! and removed afterwards.

#![allow(
    clippy::expect_used,
    reason = "a broken bench fixture should stop the run loudly"
)]

use std::hint::black_box;
use std::io::{BufWriter, Read, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use agigit::Repository;
use agigit::dag::pack;
use agigit::worktree::cut_chunks;
use criterion::{Criterion, Throughput, criterion_group};

fn dataset_bytes() -> u64 {
    // `--test` (CI's smoke run) and `--list` need no gigabyte.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return 4 << 20;
    }
    std::env::var("AGIGIT_CHUNK_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000_000)
}

/// One JSONL row, ~150 bytes, its text varying with `i`.
fn row(out: &mut Vec<u8>, i: u64, tag: &str) {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"];
    out.clear();
    write!(
        out,
        "{{\"id\":{i},\"tag\":\"{tag}\",\"h\":\"{h:016x}\",\"text\":\""
    )
    .expect("row");
    for k in 0..(h % 11 + 4) {
        out.extend_from_slice(words[((h >> (k * 3)) % 7) as usize].as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(b"\"}\n");
}

/// Rows until `bytes`; returns the row count.
fn rows_for(bytes: u64) -> u64 {
    let (mut n, mut total, mut buf) = (0u64, 0u64, Vec::new());
    while total < bytes {
        row(&mut buf, n, "v1");
        total += buf.len() as u64;
        n += 1;
    }
    n
}

/// Writes version 1 (`second: false`) or 2 of the dataset of `rows` rows to `path`.
fn write_version(path: &Path, rows: u64, second: bool) {
    let pct = rows / 100;
    let edit = rows / 4..rows / 4 + pct;
    let delete = rows / 2..rows / 2 + pct;
    let end = if second { rows + pct } else { rows };
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create"));
    let mut buf = Vec::new();
    for i in 0..end {
        if second && delete.contains(&i) {
            continue;
        }
        let tag = if second && edit.contains(&i) {
            "edited"
        } else {
            "v1"
        };
        row(&mut buf, i, tag);
        out.write_all(&buf).expect("write");
    }
    out.flush().expect("flush");
}

struct Fixture {
    dir: PathBuf,
    file: PathBuf,
    rows: u64,
    bytes: u64,
}

impl Fixture {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("agigit-chunks-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data/train")).expect("dir");
        let file = dir.join("data/train/rows.jsonl");
        let rows = rows_for(dataset_bytes());
        write_version(&file, rows, false);
        let bytes = std::fs::metadata(&file).expect("meta").len();
        Fixture {
            dir,
            file,
            rows,
            bytes,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads the file through a 16 MiB buffer (what the chunker does): the ceiling.
fn plain_read(path: &Path) -> u64 {
    let mut f = std::fs::File::open(path).expect("open");
    let mut buf = vec![0u8; 16 << 20];
    let (mut total, mut x) = (0u64, 0u8);
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        x ^= buf[n - 1];
        total += n as u64;
    }
    black_box(x);
    total
}

/// Cuts the file into chunks (cut points only, nothing hashed).
fn cut(path: &Path) -> u64 {
    let f = std::fs::File::open(path).expect("open");
    let mut chunks = 0usize;
    let total = cut_chunks(path, f, |_, cuts| {
        chunks += cuts.len();
        Ok(())
    })
    .expect("cut");
    black_box(chunks);
    total
}

/// Cuts and names every chunk and list (what `status` does for a large file).
fn cut_and_hash(path: &Path) -> agigit::hash::ObjectId {
    agigit::worktree::chunked_id_of_file(path).expect("id")
}

fn bench(c: &mut Criterion, fx: &Fixture) {
    let mut g = c.benchmark_group("chunks");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(fx.bytes));
    g.bench_function("plain read (ceiling)", |b| b.iter(|| plain_read(&fx.file)));
    g.bench_function("cut points (FastCDC, 64 KiB avg)", |b| {
        b.iter(|| cut(&fx.file))
    });
    g.bench_function("cut and hash every chunk (status)", |b| {
        b.iter(|| cut_and_hash(&fx.file))
    });
    g.finish();
}

/// The fastest of `runs` interleaved runs of each (the file in the page cache for all).
fn print_ratios(fx: &Fixture) {
    let runs = 5;
    let (mut read, mut cutting, mut hashing) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..runs {
        let t = Instant::now();
        plain_read(&fx.file);
        read = read.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        cut(&fx.file);
        cutting = cutting.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        cut_and_hash(&fx.file);
        hashing = hashing.min(t.elapsed().as_secs_f64());
    }
    let gbps = |s: f64| fx.bytes as f64 / s / 1e9;
    println!(
        "chunking {} bytes ({} rows), fastest of {runs}: plain read {:.2} GB/s; cut points {:.2} GB/s ({:.2}x of the read; goal >= 1 GB/s); cut and hash {:.2} GB/s ({:.2}x)",
        fx.bytes,
        fx.rows,
        gbps(read),
        gbps(cutting),
        read / cutting,
        gbps(hashing),
        read / hashing,
    );
}

/// Objects' bytes under a store directory.
fn store_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let e = e.expect("entry");
            let meta = e.metadata().expect("meta");
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// Commits version 1 and version 2; prints what version 2 stored and what its push sends (the
/// pack of the objects version 1 does not have, as a push computes it).
fn print_dedup(fx: &Fixture) {
    let repo = Repository::init(&fx.dir).expect("init");
    let objects = fx.dir.join(".agigit/objects");
    let author = [7u8; 32];
    let t = Instant::now();
    let one = repo.commit("v1", author).expect("commit v1");
    let first_commit = t.elapsed().as_secs_f64();
    let stored_one = store_bytes(&objects);
    write_version(&fx.file, fx.rows, true);
    let second_len = std::fs::metadata(&fx.file).expect("meta").len();
    let t = Instant::now();
    let two = repo.commit("v2", author).expect("commit v2");
    let second_commit = t.elapsed().as_secs_f64();
    let stored_two = store_bytes(&objects) - stored_one;
    let objects = pack::objects_between(repo.store(), &[two], &[one]).expect("objects");
    let mut sent = CountingSink(0);
    pack::write_pack_to(repo.store(), &objects, &mut sent).expect("pack");
    let pct = |n: u64| 100.0 * n as f64 / second_len as f64;
    let verdict = |n: u64| if pct(n) <= 5.0 { "met" } else { "NOT met" };
    println!(
        "dedup: version 1 {} bytes, committed in {first_commit:.1} s ({stored_one} bytes stored); version 2 (1% edited, 1% deleted, 1% appended) {second_len} bytes, committed in {second_commit:.1} s: stored {stored_two} new bytes ({:.2}%, goal <= 5% {}), push sends {} objects in a pack of {} bytes ({:.2}%, goal <= 5% {})",
        fx.bytes,
        pct(stored_two),
        verdict(stored_two),
        objects.len(),
        sent.0,
        pct(sent.0),
        verdict(sent.0),
    );
}

struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn benches(c: &mut Criterion) {
    let fx = Fixture::new();
    bench(c, &fx);
}

criterion_group!(chunk_benches, benches);

fn main() {
    let listing = std::env::args().any(|a| a == "--test" || a == "--list");
    chunk_benches();
    Criterion::default().configure_from_args().final_summary();
    if !listing {
        let fx = Fixture::new();
        print_ratios(&fx);
        print_dedup(&fx);
    }
}
