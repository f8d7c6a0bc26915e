//! Push and pull through the facade: time per MB, and peak heap against the pack's size.
//!
//! The transport here keeps blobs on disk (as a relay does), so the heap measured is the
//! client's. The alternative, measured in the same run, is what push did before memory was
//! bounded: the whole pack in memory, coded into all its shards at once, then sent.
//!
//! A second group pushes and pulls against real relay processes and measures the ceiling in the
//! same run (see `transfer/relays.rs`).
//!
//! `cargo bench -p agigit-benches --bench transfer` (`AGIGIT_BENCH_TRANSFER_MB` sets the larger
//! model, default 128; `AGIGIT_BENCH_RELAYS_MB` the model pushed to the relays, default 32).

#![allow(
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    reason = "a broken bench fixture should stop the run loudly; figures for people"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use agigit::event::nostr::prelude::{Event, Filter, Keys, MatchEventOptions};
use agigit::event::{RepoCoordinate, RepoId};
use agigit::hash::BlobHash;
use agigit::net::{BoxFuture, NetError, PublishReport, Transport};
use agigit::shard::{Leopard, StreamOptions};
use agigit::{FetchOptions, PushOptions, Repository};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group};

#[path = "transfer/relays.rs"]
mod relays;

/// Counts live heap bytes and their peak (`peak_alloc` wraps the system allocator).
#[global_allocator]
static ALLOCATOR: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// Runs `f` and returns its result and the peak heap above what was live when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let out = f();
    (out, ALLOCATOR.peak_usage().saturating_sub(base))
}

/// Servers that keep blobs on disk (one directory each) and events in memory.
struct DiskTransport {
    root: PathBuf,
    servers: Vec<String>,
    events: Mutex<Vec<Event>>,
}

impl DiskTransport {
    fn new(root: &Path, servers: usize) -> Self {
        let servers: Vec<String> = (0..servers).map(|i| format!("s{i}")).collect();
        for s in &servers {
            std::fs::create_dir_all(root.join(s)).expect("server dir");
        }
        DiskTransport {
            root: root.to_owned(),
            servers,
            events: Mutex::new(Vec::new()),
        }
    }
}

impl Transport for DiskTransport {
    fn publish<'a>(
        &'a self,
        event: &'a Event,
        _min_accepted: usize,
    ) -> BoxFuture<'a, Result<PublishReport, NetError>> {
        Box::pin(async move {
            self.events.lock().expect("events").push(event.clone());
            Ok(PublishReport::default())
        })
    }

    fn query<'a>(&'a self, filters: &'a [Filter]) -> BoxFuture<'a, Result<Vec<Event>, NetError>> {
        Box::pin(async move {
            let events = self.events.lock().expect("events");
            let opts = MatchEventOptions::new();
            Ok(events
                .iter()
                .rev()
                .filter(|e| filters.iter().any(|f| f.match_event(e, opts)))
                .cloned()
                .collect())
        })
    }

    fn push_servers(&self) -> Vec<String> {
        self.servers.clone()
    }

    fn fetch_servers(&self) -> Vec<String> {
        self.servers.clone()
    }

    fn put_blob<'a>(
        &'a self,
        server: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<BlobHash, NetError>> {
        Box::pin(async move {
            let hash = BlobHash::digest(&data);
            std::fs::write(self.root.join(server).join(hash.to_string()), &data)
                .expect("write blob");
            Ok(hash)
        })
    }

    fn has_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<bool, NetError>> {
        Box::pin(async move { Ok(self.root.join(server).join(hash.to_string()).is_file()) })
    }

    fn get_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
        max_len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NetError>> {
        Box::pin(async move {
            let bytes =
                std::fs::read(self.root.join(server).join(hash.to_string())).map_err(|_| {
                    NetError::NotFound {
                        server: server.to_owned(),
                        hash: *hash,
                    }
                })?;
            if bytes.len() as u64 > max_len {
                return Err(NetError::blob_too_large(server, hash, max_len));
            }
            let actual = BlobHash::digest(&bytes);
            if actual != *hash {
                return Err(NetError::Corrupt {
                    server: server.to_owned(),
                    expected: *hash,
                    actual,
                });
            }
            Ok(Bytes::from(bytes))
        })
    }
}

/// A repository holding one committed `mb`-megabyte bf16 checkpoint, its weights drawn from
/// `seed`.
fn model(dir: &Path, mb: usize, seed: u64) -> Repository {
    use agigit::delta::{DType, save_safetensors, synth};
    std::fs::create_dir_all(dir).expect("dir");
    let per = 4 << 20; // values per 8 MB tensor
    let tensors: Vec<(String, agigit::delta::Tensor)> = (0..mb.div_ceil(8))
        .map(|i| {
            let v = synth::gaussian(seed << 20 | i as u64, per, 0.02);
            (
                format!("layers.{i}.weight"),
                synth::tensor(DType::BF16, &[2048, 2048], &v),
            )
        })
        .collect();
    save_safetensors(
        dir.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (n.as_str(), t.view())),
        &BTreeMap::new(),
    )
    .expect("checkpoint");
    let repo = Repository::init(dir).expect("init");
    repo.commit("model", [1; 32]).expect("commit");
    repo
}

const SEGMENT: usize = 1 << 20;

/// The old push's memory profile: the whole pack in memory, every shard coded, then sent.
fn in_memory_push(repo: &Repository, net: &DiskTransport, rt: &tokio::runtime::Runtime) -> usize {
    let tip = repo.head().expect("head").expect("a commit");
    let objects = agigit::pack::objects_between(repo.store(), &[tip], &[]).expect("objects");
    let pack = agigit::pack::write_pack(repo.store(), &objects).expect("pack");
    let code = Leopard::new(4, 10).expect("code");
    let mut shards = Vec::new();
    agigit::shard::encode_stream(&code, StreamOptions::new(SEGMENT), &pack[..], |s| {
        shards.push(s);
        Ok::<(), std::io::Error>(())
    })
    .expect("encode");
    let servers = net.push_servers();
    rt.block_on(async {
        for s in &shards {
            for (i, shard) in s.shards.iter().enumerate() {
                net.put_blob(&servers[i % servers.len()], Bytes::from(shard.clone()))
                    .await
                    .expect("put");
            }
        }
    });
    pack.len()
}

fn bench_transfer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let root = std::env::temp_dir().join(format!("agigit-bench-transfer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let large: usize = std::env::var("AGIGIT_BENCH_TRANSFER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let code = Leopard::new(4, 10).expect("code");
    let options = PushOptions {
        segment_size: SEGMENT,
        ..PushOptions::new(&code)
    };
    let keys = Keys::generate();

    // Peak heap: ours for two sizes (it should not grow with the model), the alternative's.
    let mut lines = Vec::new();
    for (n, mb) in [(0, 32), (1, large)] {
        let dir = root.join(format!("peak-{mb}"));
        let repo = model(&dir.join("src"), mb, 0);
        let net = DiskTransport::new(&dir.join("servers"), 5);
        let id = RepoId::new(format!("m{n}")).expect("id");
        let (report, push_peak) =
            peak_of(|| rt.block_on(repo.push(&net, &keys, &id, "master", options)));
        let pack = report.expect("push").pack_bytes as f64;
        let clone = Repository::init(dir.join("clone")).expect("init");
        let coordinate = RepoCoordinate::new(keys.public_key(), id);
        let (pulled, pull_peak) = peak_of(|| {
            rt.block_on(clone.pull(&net, &coordinate, "master", FetchOptions::default()))
        });
        pulled.expect("pull");
        let alt_net = DiskTransport::new(&dir.join("alt-servers"), 5);
        let (_, alt_peak) = peak_of(|| in_memory_push(&repo, &alt_net, &rt));
        lines.push(format!(
            "{mb:>4} MB pack: push peak heap {:.1} MB ({:.2}× the pack), pull {:.1} MB ({:.2}×); whole-pack-in-memory push {:.1} MB ({:.2}×); alternative/ours {:.1}×",
            push_peak as f64 / 1e6,
            push_peak as f64 / pack,
            pull_peak as f64 / 1e6,
            pull_peak as f64 / pack,
            alt_peak as f64 / 1e6,
            alt_peak as f64 / pack,
            alt_peak as f64 / push_peak as f64
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Time: push and pull of 32 MB, ours against the in-memory push.
    let dir = root.join("time");
    let repo = model(&dir.join("src"), 32, 0);
    let tip = repo.head().expect("head").expect("a commit");
    let objects = agigit::pack::objects_between(repo.store(), &[tip], &[]).expect("objects");
    let pack_len = agigit::pack::write_pack(repo.store(), &objects)
        .expect("pack")
        .len() as u64;
    let mut group = c.benchmark_group("transfer_32MB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(pack_len));
    let mut round = 0u32;
    group.bench_function("push", |b| {
        b.iter(|| {
            // A fresh repository id each time, so every push sends everything.
            round += 1;
            let net = DiskTransport::new(&dir.join(format!("push-{round}")), 5);
            let id = RepoId::new(format!("t{round}")).expect("id");
            rt.block_on(repo.push(&net, &keys, &id, "master", options))
                .expect("push");
            let _ = std::fs::remove_dir_all(dir.join(format!("push-{round}")));
        });
    });
    group.bench_function("push_whole_pack_in_memory", |b| {
        b.iter(|| {
            round += 1;
            let net = DiskTransport::new(&dir.join(format!("alt-{round}")), 5);
            in_memory_push(&repo, &net, &rt);
            let _ = std::fs::remove_dir_all(dir.join(format!("alt-{round}")));
        });
    });
    let net = DiskTransport::new(&dir.join("pull-servers"), 5);
    let id = RepoId::new("pull").expect("id");
    rt.block_on(repo.push(&net, &keys, &id, "master", options))
        .expect("push");
    let coordinate = RepoCoordinate::new(keys.public_key(), id);
    group.bench_function("pull", |b| {
        b.iter(|| {
            round += 1;
            let target = dir.join(format!("clone-{round}"));
            let clone = Repository::init(&target).expect("init");
            rt.block_on(clone.pull(&net, &coordinate, "master", FetchOptions::default()))
                .expect("pull");
            let _ = std::fs::remove_dir_all(&target);
        });
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&root);
    println!("\npeak heap (segments of 1 MiB, Leopard 4 of 10, 16 transfers in flight):");
    for l in lines {
        println!("  {l}");
    }
}

fn bench_against_relays(c: &mut Criterion) {
    let root = std::env::temp_dir().join(format!("agigit-bench-relays-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    relays::bench_relays(c, &root);
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, bench_transfer, bench_against_relays);

fn main() {
    if relays::serve_if_relay() {
        return;
    }
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
