//! Push and pull against real agigit-relay processes on loopback (SQLite, blobs on disk), with
//! the ceiling measured in the same run: the same number of shards, of the same size, uploaded
//! as plain pre-computed Blossom PUTs with no client-side work, and downloaded as plain GETs.
//!
//! Every figure is in bytes moved over the network per second (shards and manifests), so ours
//! and the ceiling compare directly. The pull runs with two of the five relays out of the
//! client's reach, so segments are rebuilt through parity.
//!
//! The relays are this bench's own binary started again with [`RELAY_ENV`] set: each serves
//! until its standard input closes, so none outlives the bench.

use std::cell::RefCell;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agigit::event::nostr::prelude::Keys;
use agigit::event::{RepoCoordinate, RepoId};
use agigit::hash::BlobHash;
use agigit::net::{BlobClient, BlobClientOptions, Network, PoolOptions, RelayPool, Roles};
use agigit::shard::Leopard;
use agigit::{FetchOptions, PullReport, PushOptions, PushReport, Repository, StageTimes};
use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};
use futures_util::{StreamExt as _, stream};

/// Set (to a data directory) in a child started as a relay.
pub(crate) const RELAY_ENV: &str = "AGIGIT_BENCH_RELAY_DATA";

const RELAYS: usize = 5;
/// Relays a pull reaches: the others are down for it.
const REACHABLE: usize = 3;
const SEGMENT: usize = 1 << 20;
const PARALLEL: usize = agigit::DEFAULT_PARALLEL;

/// In a child started as a relay: serves until standard input closes, then returns `true`.
pub(crate) fn serve_if_relay() -> bool {
    let Ok(data) = std::env::var(RELAY_ENV) else {
        return false;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = agigit_relay::Config {
            data: PathBuf::from(data),
            blossom: agigit_relay::BlossomConfig::default(),
            ..agigit_relay::Config::default()
        };
        let relay = agigit_relay::server::Relay::from_config(&config).expect("relay");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut out = std::io::stdout();
        writeln!(out, "{}", listener.local_addr().expect("address")).expect("stdout");
        out.flush().expect("stdout");
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = String::new();
                while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
            })
            .await;
        };
        agigit_relay::server::serve(listener, relay, stdin_closed)
            .await
            .expect("serve");
    });
    true
}

/// A relay process; killed when dropped.
struct RelayProcess {
    child: Child,
    url: String,
}

impl RelayProcess {
    fn start(data: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this bench"))
            .env(RELAY_ENV, data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a relay");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the relay's address");
        RelayProcess {
            child,
            url: format!(
                "127.0.0.1:{}",
                line.trim().rsplit(':').next().expect("port")
            ),
        }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn network(keys: &Keys, relays: &[RelayProcess]) -> Network {
    let pool = RelayPool::new(PoolOptions::default(), Some(Arc::new(keys.clone())));
    let net = Network::new(
        pool,
        BlobClient::new(Some(Arc::new(keys.clone())), BlobClientOptions::default()),
    );
    for r in relays {
        net.pool
            .add_relay(&format!("ws://{}", r.url), Roles::BOTH)
            .expect("relay");
        net.add_blob_server(&format!("http://{}", r.url), Roles::BOTH)
            .expect("blob server");
    }
    net
}

/// `len` bytes no earlier call returned (xorshift from `seed`): every upload is new to the
/// relays, as a push's shards are.
fn fresh(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Uploads `blobs` (hashed already) round-robin over `servers`, `PARALLEL` at once.
async fn put_all(client: &BlobClient, servers: &[String], blobs: Vec<(BlobHash, Bytes)>) {
    stream::iter(blobs.into_iter().enumerate())
        .map(|(i, (hash, data))| {
            let server = &servers[i % servers.len()];
            async move { client.upload_hashed(server, hash, data).await.expect("put") }
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>()
        .await;
}

/// The median of `times`.
fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn mbs(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64().max(1e-9) / 1e6
}

fn stages_line(s: &StageTimes, runs: u32) -> String {
    let per = |d: Duration| d / runs.max(1);
    format!(
        "pack {:.0?}, encode+hash {:.0?}, rebuild {:.0?}, read+open {:.0?}, verify+store {:.0?}, checkout {:.0?}; shards moving {:.0?} (wall)",
        per(s.pack),
        per(s.encode),
        per(s.rebuild),
        per(s.open),
        per(s.store),
        per(s.checkout),
        per(s.transfer)
    )
}

fn add(total: &mut StageTimes, s: &StageTimes) {
    total.pack += s.pack;
    total.encode += s.encode;
    total.rebuild += s.rebuild;
    total.store += s.store;
    total.open += s.open;
    total.checkout += s.checkout;
    total.transfer += s.transfer;
}

/// CPU time (user and system) of the bench's own process and of the relay processes together,
/// from `/proc/<pid>/stat`: what a run costs the machine, beside its wall time. Counted in
/// the kernel's `USER_HZ` ticks (100 a second on Linux, a fixed part of its ABI), so a figure
/// is good to a run's share of 10 ms: the summary gives averages over many runs. `None` where
/// there is no `/proc`.
struct CpuMeter {
    relays: Vec<u32>,
}

impl CpuMeter {
    fn read(&self) -> Option<[Duration; 2]> {
        let of = |pid: &str| -> Option<Duration> {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name (field 2) may hold spaces: fields are counted after its `)`.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some(Duration::from_millis(ticks * 10))
        };
        let mut relays = Duration::ZERO;
        for pid in &self.relays {
            relays += of(&pid.to_string())?;
        }
        Some([of("self")?, relays])
    }
}

/// CPU time spent in the measured runs of one bench, and how many runs.
#[derive(Default)]
struct CpuSpent {
    client: Duration,
    relays: Duration,
    runs: u32,
}

impl CpuSpent {
    /// Runs `f`: what it returned and its wall time; adds the CPU time spent meanwhile (none
    /// is added where it cannot be read).
    fn measure<T>(&mut self, meter: &CpuMeter, f: impl FnOnce() -> T) -> (T, Duration) {
        let before = meter.read();
        let start = Instant::now();
        let out = f();
        let took = start.elapsed();
        if let (Some([c0, r0]), Some([c1, r1])) = (before, meter.read()) {
            self.client += c1.saturating_sub(c0);
            self.relays += r1.saturating_sub(r0);
            self.runs += 1;
        }
        (out, took)
    }

    /// Client and relays' CPU per run, or nothing where none was measured.
    fn per_run(&self) -> Option<(Duration, Duration)> {
        (self.runs > 0).then(|| (self.client / self.runs, self.relays / self.runs))
    }

    /// The least wall time a run could take: its CPU spread evenly over `cores`.
    fn least_wall(&self, cores: usize) -> Option<Duration> {
        let (client, relays) = self.per_run()?;
        Some((client + relays) / u32::try_from(cores).unwrap_or(1).max(1))
    }

    /// `client X ms + relays Y ms = Z ms of CPU per run: at least W ms of wall on N cores`.
    fn line(&self, cores: usize) -> Option<String> {
        let (client, relays) = self.per_run()?;
        Some(format!(
            "client {client:.0?} + relays {relays:.0?} = {:.0?} of CPU per run: at least {:.0?} of wall on {cores} cores",
            client + relays,
            self.least_wall(cores)?
        ))
    }
}

/// Bytes a push moved: shards and manifests.
fn pushed_bytes(r: &PushReport) -> u64 {
    r.bytes_per_server.values().sum()
}

#[allow(
    clippy::too_many_lines,
    reason = "one bench: setup, four measurements, a summary"
)]
pub(crate) fn bench_relays(c: &mut Criterion, root: &Path) {
    let mb: u64 = std::env::var("AGIGIT_BENCH_RELAYS_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let model = |dir: &Path, seed: u64| crate::model(dir, usize::try_from(mb).unwrap_or(32), seed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let root = root.join("relays");
    let relays: Vec<RelayProcess> = (0..RELAYS)
        .map(|i| RelayProcess::start(&root.join(format!("relay-{i}"))))
        .collect();
    let keys = Keys::generate();
    // The relay pool starts its connections on the runtime it is made in.
    let _runtime = rt.enter();
    let net = network(&keys, &relays);
    let reachable = network(&keys, &relays[..REACHABLE]);
    let servers: Vec<String> = relays.iter().map(|r| format!("http://{}", r.url)).collect();
    let client = BlobClient::new(Some(Arc::new(keys.clone())), BlobClientOptions::default());
    let code = Leopard::new(4, 10).expect("code");
    let options = PushOptions {
        segment_size: SEGMENT,
        parallel: PARALLEL,
        ..PushOptions::new(&code)
    };

    // One push and one pull outside the measurement: what they move sets the ceiling's work.
    let seed = RefCell::new(0u64);
    let next = || {
        let mut s = seed.borrow_mut();
        *s += 1;
        *s
    };
    let first = next();
    let repo = model(&root.join(format!("model-{first}")), first);
    let id = RepoId::new("pull").expect("id");
    let push = rt
        .block_on(repo.push(&net, &keys, &id, "master", options))
        .expect("push");
    let shard_len = agigit::shard::ErasureCode::shard_len(&code, SEGMENT);
    let coordinate = RepoCoordinate::new(keys.public_key(), id);
    let probe = Repository::init(root.join("probe")).expect("init");
    let pull = rt
        .block_on(probe.pull(&reachable, &coordinate, "master", FetchOptions::default()))
        .expect("pull");
    let (push_bytes, pull_bytes) = (pushed_bytes(&push), pull.bytes);
    // Blobs for the download ceiling: as many bytes as the pull downloads, on the relays it
    // reaches.
    let download_set: Vec<(BlobHash, Bytes)> = (0..pull_bytes.div_ceil(shard_len as u64))
        .map(|i| {
            let b = Bytes::from(fresh(u64::MAX - i, shard_len));
            (BlobHash::digest(&b), b)
        })
        .collect();
    let reachable_servers = &servers[..REACHABLE];
    rt.block_on(put_all(&client, reachable_servers, download_set.clone()));
    let download_bytes = download_set.len() as u64 * shard_len as u64;

    let times = RefCell::new([Vec::new(), Vec::new(), Vec::new(), Vec::new()]);
    let meter = CpuMeter {
        relays: relays.iter().map(|r| r.child.id()).collect(),
    };
    let cpu: RefCell<[CpuSpent; 4]> = RefCell::default();
    let (push_stages, pull_stages) = (
        RefCell::new((StageTimes::default(), 0u32)),
        RefCell::new((StageTimes::default(), 0u32)),
    );
    let mut group = c.benchmark_group(format!("transfer_relays_{mb}MB"));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(push_bytes));
    group.bench_function("push", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // New weights each time, so every shard is new to the relays.
                let s = next();
                let dir = root.join(format!("model-{s}"));
                let repo = model(&dir, s);
                let id = RepoId::new(format!("push-{s}")).expect("id");
                let (report, took) = cpu.borrow_mut()[0].measure(&meter, || {
                    rt.block_on(repo.push(&net, &keys, &id, "master", options))
                        .expect("push")
                });
                let mut st = push_stages.borrow_mut();
                add(&mut st.0, &report.stages);
                st.1 += 1;
                times.borrow_mut()[0].push(took);
                total += took;
                drop(repo);
                let _ = std::fs::remove_dir_all(&dir);
            }
            total
        });
    });
    group.bench_function("upload_ceiling", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let s = next();
                let blobs: Vec<(BlobHash, Bytes)> = (0..push.shards as u64)
                    .map(|i| {
                        let b = Bytes::from(fresh(s << 32 | i, shard_len));
                        (BlobHash::digest(&b), b)
                    })
                    .collect();
                let ((), took) = cpu.borrow_mut()[1]
                    .measure(&meter, || rt.block_on(put_all(&client, &servers, blobs)));
                times.borrow_mut()[1].push(took);
                total += took;
            }
            total
        });
    });
    group.throughput(Throughput::Bytes(pull_bytes));
    group.bench_function("pull_through_parity", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let s = next();
                let dir = root.join(format!("clone-{s}"));
                let clone = Repository::init(&dir).expect("init");
                let (report, took): (PullReport, _) = cpu.borrow_mut()[2].measure(&meter, || {
                    rt.block_on(clone.pull(
                        &reachable,
                        &coordinate,
                        "master",
                        FetchOptions::default(),
                    ))
                    .expect("pull")
                });
                let mut st = pull_stages.borrow_mut();
                add(&mut st.0, &report.stages);
                st.1 += 1;
                times.borrow_mut()[2].push(took);
                total += took;
                drop(clone);
                let _ = std::fs::remove_dir_all(&dir);
            }
            total
        });
    });
    group.throughput(Throughput::Bytes(download_bytes));
    group.bench_function("download_ceiling", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_, took) = cpu.borrow_mut()[3].measure(&meter, || {
                    rt.block_on(
                        stream::iter(download_set.iter().enumerate())
                            .map(|(i, (hash, _))| {
                                let server = &reachable_servers[i % REACHABLE];
                                let client = &client;
                                async move {
                                    client
                                        .download(server, hash, shard_len as u64)
                                        .await
                                        .expect("get")
                                }
                            })
                            .buffer_unordered(PARALLEL)
                            .collect::<Vec<_>>(),
                    )
                });
                times.borrow_mut()[3].push(took);
                total += took;
            }
            total
        });
    });
    group.finish();

    let t = times.into_inner();
    if t.iter().any(Vec::is_empty) {
        // A filter ran only some of the four: ratios of nothing would be printed.
        println!(
            "\n(the push/pull against ceiling summary needs all four benches of this group: filter on `transfer_relays`)"
        );
        return;
    }
    let rates = [
        mbs(push_bytes, median(&t[0])),
        mbs(push_bytes, median(&t[1])),
        mbs(pull_bytes, median(&t[2])),
        mbs(download_bytes, median(&t[3])),
    ];
    let (ps, pl) = (push_stages.into_inner(), pull_stages.into_inner());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "\nagainst {RELAYS} relay processes ({mb} MB model, Leopard 4 of 10, 1 MiB segments, {PARALLEL} transfers in flight, {cores} cores), medians in bytes moved per second:"
    );
    println!(
        "  push  {:>6.0} MB/s   upload ceiling   {:>6.0} MB/s   push/ceiling {:.2}   (model bytes: {:.0} MB/s)",
        rates[0],
        rates[1],
        rates[0] / rates[1],
        mbs(push.pack_bytes, median(&t[0]))
    );
    println!(
        "  pull  {:>6.0} MB/s   download ceiling {:>6.0} MB/s   pull/ceiling {:.2}   (model bytes: {:.0} MB/s; {REACHABLE} of {RELAYS} relays reachable)",
        rates[2],
        rates[3],
        rates[2] / rates[3],
        mbs(push.pack_bytes, median(&t[2]))
    );
    println!("  push CPU per run: {}", stages_line(&ps.0, ps.1));
    println!("  pull CPU per run: {}", stages_line(&pl.0, pl.1));
    // The machine's CPU, client and relays together: how far from its limit each run is.
    let cpu = cpu.into_inner();
    for (name, spent) in ["push", "upload ceiling", "pull", "download ceiling"]
        .iter()
        .zip(&cpu)
    {
        if let Some(line) = spent.line(cores) {
            println!("  {name:<16} {line}");
        }
    }
    // A run can take no less wall than its CPU spread evenly over every core: against the
    // ceiling's median, the best ratio this machine allows for the work a run does today.
    let best = |run: &CpuSpent, ceiling: &[Duration]| {
        let least = run.least_wall(cores)?;
        Some(median(ceiling).as_secs_f64() / least.as_secs_f64().max(1e-9))
    };
    if let (Some(push), Some(pull)) = (best(&cpu[0], &t[1]), best(&cpu[2], &t[3])) {
        println!(
            "  at this CPU per run, the best this machine allows: push/ceiling {push:.2}, pull/ceiling {pull:.2}"
        );
    }
    drop(relays);
}
