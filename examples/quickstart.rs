//! The quickstart: five agigit relays on loopback, a foundation model pushed to them, a private
//! fine-tune forked from it and pushed encrypted as a lossless delta, two relays stopped, a clone
//! with a reader's key from the remaining three checked bit for bit against the fine-tune's
//! files, and a stranger's clone refused.
//!
//! `cargo run --release -p agigit-examples --example quickstart`
//!
//! `AGIGIT_QUICKSTART_MB` sets the foundation's size (default 100). Everything lives in a
//! temporary directory that is removed at the end.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agigit::config::PushConfig;
use agigit::delta::{DType, Lossless, save_safetensors, synth};
use agigit::event::nostr::prelude::Keys;
use agigit::event::{RepoCoordinate, RepoId};
use agigit::net::{BlobClient, BlobClientOptions, Network, PoolOptions, RelayPool, Roles};
use agigit::{FetchOptions, PushOptions, Repository};
use agigit_relay::server::{Relay, serve};
use agigit_relay::{BlossomConfig, Config};

type Error = Box<dyn std::error::Error>;

const RELAYS: usize = 5;

struct RunningRelay {
    addr: SocketAddr,
    data: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_relay(data: PathBuf) -> Result<RunningRelay, Error> {
    let config = Config {
        data: data.clone(),
        blossom: BlossomConfig::default(),
        ..Config::default()
    };
    let relay = Relay::from_config(&config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, relay, async {
        let _ = stopped.await;
    }));
    Ok(RunningRelay {
        addr,
        data,
        stop: Some(stop),
        task,
    })
}

impl RunningRelay {
    async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// A transformer-shaped bf16 checkpoint of about `mb` MB, deterministic; `tuned` changes the
/// MLPs of the last two layers by about 1% (a dense fine-tuning delta) and leaves the rest.
fn write_model(dir: &Path, mb: usize, tuned: bool) -> Result<u64, Error> {
    let d = 1024usize;
    let vocab = 4096usize;
    // Per layer: q, k, v, o (d×d) and an MLP (4d×d up, d×4d down): 12·d² values, 2 bytes each.
    let per_layer = 12 * d * d * 2;
    let layers = ((mb << 20).saturating_sub(2 * vocab * d * 2) / per_layer).max(2);
    let mut tensors: Vec<(String, agigit::delta::Tensor)> = Vec::new();
    let mut seed = 0u64;
    let mut push = |name: String, shape: [usize; 2], tuned_here: bool| {
        seed += 1;
        let mut values = synth::gaussian(seed, shape[0] * shape[1], 0.02);
        if tuned_here {
            values = synth::perturb(&values, seed + 1000, 0.01);
        }
        tensors.push((name, synth::tensor(DType::BF16, &shape, &values)));
    };
    push("model.embed_tokens.weight".into(), [vocab, d], false);
    for l in 0..layers {
        let late = tuned && l + 2 >= layers;
        for p in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            push(
                format!("model.layers.{l}.self_attn.{p}.weight"),
                [d, d],
                false,
            );
        }
        push(
            format!("model.layers.{l}.mlp.up_proj.weight"),
            [4 * d, d],
            late,
        );
        push(
            format!("model.layers.{l}.mlp.down_proj.weight"),
            [d, 4 * d],
            late,
        );
    }
    push("lm_head.weight".into(), [vocab, d], false);
    let mut meta = BTreeMap::new();
    meta.insert("format".to_owned(), "pt".to_owned());
    let bytes = save_safetensors(
        dir.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (n.as_str(), t.view())),
        &meta,
    )?;
    let config = format!(
        "{{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": {d}, \"num_hidden_layers\": {layers}, \"vocab_size\": {vocab}, \"torch_dtype\": \"bfloat16\"}}\n"
    );
    std::fs::write(dir.join("config.json"), config)?;
    std::fs::write(
        dir.join("tokenizer.json"),
        "{\"model\": {\"type\": \"BPE\"}}\n",
    )?;
    std::fs::create_dir_all(dir.join("data/validation"))?;
    let eval = if tuned {
        "{\"prompt\": \"domain question\", \"answer\": \"domain answer\"}\n"
    } else {
        "{\"prompt\": \"2+2\", \"answer\": \"4\"}\n"
    };
    std::fs::write(dir.join("data/validation/eval.jsonl"), eval)?;
    Ok(bytes)
}

fn files_of(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    agigit::worktree::list_files(dir)?
        .into_iter()
        .map(|f| Ok((f.clone(), std::fs::read(dir.join(&f))?)))
        .collect()
}

fn network(keys: &Keys, relays: &[RunningRelay]) -> Result<Network, Error> {
    let pool = RelayPool::new(PoolOptions::default(), Some(Arc::new(keys.clone())));
    let net = Network::new(
        pool,
        BlobClient::new(Some(Arc::new(keys.clone())), BlobClientOptions::default()),
    );
    for r in relays {
        net.pool
            .add_relay(&format!("ws://{}", r.addr), Roles::BOTH)?;
        net.add_blob_server(&format!("http://{}", r.addr), Roles::BOTH)?;
    }
    Ok(net)
}

fn mbs(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64().max(1e-9) / 1e6
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mb: usize = std::env::var("AGIGIT_QUICKSTART_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let root = std::env::temp_dir().join(format!("agigit-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let result = run(&root, mb).await;
    let _ = std::fs::remove_dir_all(&root);
    result
}

async fn run(root: &Path, mb: usize) -> Result<(), Error> {
    let total = Instant::now();
    let mut relays = Vec::new();
    for i in 0..RELAYS {
        relays.push(start_relay(root.join(format!("relay-{i}"))).await?);
    }
    println!("started {RELAYS} agigit relays (NIP-01 + Blossom, SQLite) on loopback:");
    for r in &relays {
        println!("  ws://{}  (blobs at http://{})", r.addr, r.addr);
    }
    // The library's defaults (agigit::config::defaults): 4 MiB segments, any 4 of 10 shards
    // rebuild one; each relay holds 2 per segment, so any 2 relays do.
    let code = PushConfig::default().code()?;
    let options = PushOptions {
        min_accepted: 3,
        ..PushOptions::new(&code)
    };

    // 1. The foundation model.
    let (owner, tuner, reader_key, stranger) = (
        Keys::generate(),
        Keys::generate(),
        Keys::generate(),
        Keys::generate(),
    );
    let fm_dir = root.join("foundation");
    std::fs::create_dir_all(&fm_dir)?;
    let t = Instant::now();
    let fm_bytes = write_model(&fm_dir, mb, false)?;
    println!(
        "\nfoundation: {:.1} MB of bf16 weights written in {:.1?}",
        fm_bytes as f64 / 1e6,
        t.elapsed()
    );
    let fm = Repository::init(&fm_dir)?;
    let t = Instant::now();
    let fm_commit = fm.commit("foundation model", owner.public_key().to_bytes())?;
    let commit_time = t.elapsed();
    println!(
        "  commit {}: {:.1?} ({:.0} MB/s)",
        fm_commit.short(),
        commit_time,
        mbs(fm_bytes, commit_time)
    );
    let owner_net = network(&owner, &relays)?;
    let fm_id = RepoId::new("foundation-1b")?;
    let (t, cpu) = (Instant::now(), process_cpu());
    let pushed = fm
        .remote(&owner_net, &owner)
        .push(&fm_id, "master", options)
        .await?;
    let push_time = t.elapsed();
    let push_cpu = cpu_since(cpu, push_time);
    println!(
        "  push: {} objects, {:.1} MB in one pack per part → {} shards on {RELAYS} relays in {:.1?} ({:.0} MB/s)",
        pushed.objects,
        pushed.pack_bytes as f64 / 1e6,
        pushed.shards,
        push_time,
        mbs(pushed.pack_bytes, push_time)
    );
    println!("    {}{push_cpu}", stages(&pushed.stages));
    if let Some(weakest) = pushed.packs.iter().min_by_key(|p| p.survives) {
        println!(
            "    durability: any {} of {RELAYS} relays rebuild every pack ({} may be lost); P(rebuild) = 1 − {:.1e} with each relay up at p = {}",
            weakest.servers_needed, weakest.survives, weakest.rebuild.failure, weakest.availability
        );
    }
    let fm_coord = RepoCoordinate::new(owner.public_key(), fm_id);

    // 2. A fine-tune, forked from it and stored as a lossless delta.
    let dsm_dir = root.join("fine-tune");
    std::fs::create_dir_all(&dsm_dir)?;
    let dsm = Repository::init(&dsm_dir)?;
    let tuner_net = network(&tuner, &relays)?;
    let t = Instant::now();
    dsm.remote(&tuner_net, &tuner)
        .pull(&fm_coord, "master", FetchOptions::default())
        .await?;
    println!("\nfine-tune: cloned the foundation in {:.1?}", t.elapsed());
    dsm.set_fork_base(&fm_coord.to_string(), fm_commit)?;
    // Private: encrypted before sharding, readable by the tuner and one reader.
    let tuner_secret = agigit::private::reader_secret(&tuner)?;
    dsm.make_private(
        &tuner_secret,
        &[agigit::private::reader_key(&reader_key.public_key())?],
    )?;
    write_model(&dsm_dir, mb, true)?;
    let t = Instant::now();
    let (dsm_commit, stats) = dsm.commit_with(
        "fine-tune the last two MLPs on domain data",
        tuner.public_key().to_bytes(),
        &Lossless::default(),
    )?;
    println!(
        "  commit {} (lossless fork): {} tensors as deltas, {} unchanged (shared with the base), {} dense; {:.1} MB changed → {:.1} MB stored ({:.2}× smaller than storing it dense) in {:.1?}",
        dsm_commit.short(),
        stats.delta_tensors,
        stats.unchanged_tensors,
        stats.dense_tensors,
        changed_bytes(&stats) as f64 / 1e6,
        stats.stored_bytes as f64 / 1e6,
        changed_bytes(&stats) as f64 / stats.stored_bytes.max(1) as f64,
        t.elapsed()
    );
    let dsm_id = RepoId::new("domain-model")?;
    let t = Instant::now();
    let keys = dsm
        .private_keys(&tuner_secret)?
        .ok_or("the fine-tune is private")?;
    let private = PushOptions {
        keys: Some(&keys),
        ..options
    };
    let pushed = dsm
        .remote(&tuner_net, &tuner)
        .push(&dsm_id, "master", private)
        .await?;
    println!(
        "  push (encrypted: AES-256-GCM, key wrapped for 2 readers): {} objects, {:.1} MB sealed packs (only what the fork adds) in {:.1?}",
        pushed.objects,
        pushed.pack_bytes as f64 / 1e6,
        t.elapsed()
    );

    // 3. Two relays go down.
    for r in relays.iter_mut().take(2) {
        r.stop().await;
    }
    println!("\nstopped 2 of {RELAYS} relays");

    // 4. A reader clones the fork from the three left.
    let clone_dir = root.join("clone");
    std::fs::create_dir_all(&clone_dir)?;
    let reader = Repository::init(&clone_dir)?;
    let reader_net = network(&reader_key, &relays[2..])?;
    let dsm_coord = RepoCoordinate::new(tuner.public_key(), dsm_id);
    let reader_secret_key = agigit::private::reader_secret(&reader_key)?;
    let (t, cpu) = (Instant::now(), process_cpu());
    let pulled = reader
        .pull(
            &reader_net,
            &dsm_coord,
            "master",
            FetchOptions::with_secret(&reader_secret_key),
        )
        .await?;
    let clone_time = t.elapsed();
    let clone_cpu = cpu_since(cpu, clone_time);
    let cloned_bytes: u64 = files_of(&clone_dir)?
        .iter()
        .map(|(_, b)| b.len() as u64)
        .sum();
    println!(
        "clone from 3 relays with the reader's key: {} packs (the fork's and the foundation's), {} objects, {} shards, {:.1} MB of files in {:.1?} ({:.0} MB/s)",
        pulled.packs,
        pulled.objects,
        pulled.shards,
        cloned_bytes as f64 / 1e6,
        clone_time,
        mbs(cloned_bytes, clone_time)
    );
    println!("  {}{clone_cpu}", stages(&pulled.stages));
    let same = files_of(&clone_dir)? == files_of(&dsm_dir)?;
    println!(
        "  checkout is bit-exact against the fine-tune's files: {}",
        if same { "yes" } else { "NO" }
    );

    // 5. A stranger cannot read it.
    let stranger_dir = root.join("stranger");
    std::fs::create_dir_all(&stranger_dir)?;
    let outsider = Repository::init(&stranger_dir)?;
    let stranger_secret = agigit::private::reader_secret(&stranger)?;
    let refused = outsider
        .pull(
            &network(&stranger, &relays[2..])?,
            &dsm_coord,
            "master",
            FetchOptions::with_secret(&stranger_secret),
        )
        .await;
    let stranger_refused = matches!(refused, Err(agigit::fetch::Error::NotAReader));
    println!(
        "  a stranger's clone is refused: {}",
        match &refused {
            Err(e) => format!("yes ({e})"),
            Ok(_) => "NO".to_owned(),
        }
    );

    println!("\nbytes stored per relay (events, shards, manifests, indexes):");
    for (i, r) in relays.iter().enumerate() {
        let state = if i < 2 { " (stopped)" } else { "" };
        println!(
            "  relay-{i}{state}: {:.1} MB",
            dir_bytes(&r.data) as f64 / 1e6
        );
    }
    println!("total time {:.1?}", total.elapsed());
    for r in relays.iter_mut().skip(2) {
        r.stop().await;
    }
    if !same {
        return Err("the clone differs from the fine-tune".into());
    }
    if !stranger_refused {
        return Err(format!("a stranger read the private fine-tune: {refused:?}").into());
    }
    Ok(())
}

/// Bytes of the tensors that changed (stored as deltas or dense), not those shared.
fn changed_bytes(stats: &agigit::worktree::DeltaStats) -> u64 {
    stats.dense_bytes.saturating_sub(stats.unchanged_bytes)
}

/// The stages of a transfer that took time, for people: the time of each (on the pool or the
/// store's threads, in parallel with the network; a checkout after it) and the wall time of
/// moving the shards.
fn stages(s: &agigit::StageTimes) -> String {
    let cpu: Vec<String> = [
        ("pack", s.pack),
        ("encode+hash", s.encode),
        ("rebuild", s.rebuild),
        ("read+open", s.open),
        ("verify+store", s.store),
        ("checkout", s.checkout),
    ]
    .iter()
    .filter(|(_, t)| !t.is_zero())
    .map(|(what, t)| format!("{what} {t:.1?}"))
    .collect();
    format!(
        "CPU: {} (on {} threads); shards moved in {:.1?}",
        cpu.join(", "),
        rayon_threads(),
        s.transfer
    )
}

/// CPU time this process (client and relays alike) has used, user and system, from
/// `/proc/self/stat`, in the kernel's `USER_HZ` ticks (100 a second on Linux, fixed by its ABI);
/// `None` where there is no `/proc`.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: fields are counted after its `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// `; the process (client and relays) used X s of CPU in Y s: N of M cores busy` since
/// `before`, or nothing where `/proc` cannot be read.
fn cpu_since(before: Option<Duration>, wall: Duration) -> String {
    let (Some(before), Some(now)) = (before, process_cpu()) else {
        return String::new();
    };
    let (used, wall) = (now.saturating_sub(before).as_secs_f64(), wall.as_secs_f64());
    format!(
        "; the process (client and relays) used {used:.2} s of CPU in {wall:.2} s: {:.1} of {} cores busy",
        used / wall.max(1e-9),
        rayon_threads()
    )
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
