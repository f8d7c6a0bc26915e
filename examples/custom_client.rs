//! A custom client: the facade's parts are traits, and this one swaps three defaults.
//!
//! - **Transport**: [`Metered`], written here, wraps any [`Transport`]; it counts the bytes each
//!   server moves and refuses uploads to one server, as a flaky link would. (Over real relays,
//!   wrap `agigit::net::Network`; here it wraps the in-process `MemoryTransport`.)
//! - **Erasure code**: Reed–Solomon over GF(2^16) from `reed-solomon-novelpoly`, 4 of 9, instead
//!   of the default Leopard 4 of 10.
//! - **Delta codec**: a lossy low-rank fork (randomized SVD on candle, within 5 % relative error)
//!   instead of the default lossless one.
//!
//! `cargo run --release -p agigit-examples --example custom_client`

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use agigit::delta::{DType, Device, LowRank, RankPolicy, save_safetensors, synth};
use agigit::event::nostr::prelude::{Event, Filter, Keys};
use agigit::event::{RepoCoordinate, RepoId};
use agigit::hash::BlobHash;
use agigit::net::{BoxFuture, MemoryTransport, NetError, PublishReport, Transport};
use agigit::shard::{ErasureCode as _, NovelPoly};
use agigit::{FetchOptions, PushOptions, Repository};
use bytes::Bytes;

type Error = Box<dyn std::error::Error>;

/// A [`Transport`] that meters another and refuses uploads to one server.
struct Metered<T> {
    inner: T,
    refuse_uploads_to: Option<String>,
    /// Bytes (up, down) per server.
    bytes: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl<T> Metered<T> {
    fn count(&self, server: &str, up: u64, down: u64) {
        let mut bytes = self
            .bytes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = bytes.entry(server.to_owned()).or_default();
        entry.0 += up;
        entry.1 += down;
    }
}

impl<T: Transport> Transport for Metered<T> {
    fn publish<'a>(
        &'a self,
        event: &'a Event,
        min_accepted: usize,
    ) -> BoxFuture<'a, Result<PublishReport, NetError>> {
        self.inner.publish(event, min_accepted)
    }

    fn query<'a>(&'a self, filters: &'a [Filter]) -> BoxFuture<'a, Result<Vec<Event>, NetError>> {
        self.inner.query(filters)
    }

    fn push_servers(&self) -> Vec<String> {
        self.inner.push_servers()
    }

    fn fetch_servers(&self) -> Vec<String> {
        self.inner.fetch_servers()
    }

    fn put_blob<'a>(
        &'a self,
        server: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<BlobHash, NetError>> {
        Box::pin(async move {
            if self.refuse_uploads_to.as_deref() == Some(server) {
                return Err(NetError::Connection {
                    server: server.to_owned(),
                    reason: "the link is down (simulated)".to_owned(),
                });
            }
            let len = data.len() as u64;
            let hash = self.inner.put_blob(server, data).await?;
            self.count(server, len, 0);
            Ok(hash)
        })
    }

    fn has_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<bool, NetError>> {
        self.inner.has_blob(server, hash)
    }

    fn get_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
        max_len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NetError>> {
        Box::pin(async move {
            // The caller says how long the blob can be; the inner transport enforces it.
            let bytes = self.inner.get_blob(server, hash, max_len).await?;
            self.count(server, 0, bytes.len() as u64);
            Ok(bytes)
        })
    }
}

/// Four 512×512 f32 layers; a fine-tune adds a rank-8 change to two of them.
fn write_model(dir: &Path, tuned: bool) -> Result<(), Error> {
    let tensors: Vec<(String, agigit::delta::Tensor)> = (0..4u64)
        .map(|i| {
            let mut values = synth::gaussian(i, 512 * 512, 0.02);
            if tuned && i >= 2 {
                values = synth::add(&values, &synth::low_rank(100 + i, 512, 512, 8, 0.002));
            }
            (
                format!("layers.{i}.weight"),
                synth::tensor(DType::F32, &[512, 512], &values),
            )
        })
        .collect();
    save_safetensors(
        dir.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (n.as_str(), t.view())),
        &BTreeMap::new(),
    )?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let root = std::env::temp_dir().join(format!("agigit-custom-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let result = run(&root).await;
    let _ = std::fs::remove_dir_all(&root);
    result
}

async fn run(root: &Path) -> Result<(), Error> {
    let servers = ["s0", "s1", "s2", "s3", "s4", "s5"];
    let net = Metered {
        inner: MemoryTransport::new(servers),
        refuse_uploads_to: Some("s5".to_owned()),
        bytes: Mutex::new(BTreeMap::new()),
    };
    let code = NovelPoly::new(4, 9)?;
    let options = PushOptions {
        segment_size: 256 << 10,
        min_accepted: 4,
        ..PushOptions::new(&code)
    };
    let (owner, tuner) = (Keys::generate(), Keys::generate());

    // The foundation.
    let fm_dir = root.join("foundation");
    std::fs::create_dir_all(&fm_dir)?;
    write_model(&fm_dir, false)?;
    let fm = Repository::init(&fm_dir)?;
    let fm_commit = fm.commit("foundation", owner.public_key().to_bytes())?;
    let fm_id = RepoId::new("foundation")?;
    let pushed = fm
        .remote(&net, &owner)
        .push(&fm_id, "master", options)
        .await?;
    // The refused server's shards went to the least loaded of the others: the push still
    // meets the most 4-of-9 gives on six servers (any two may be lost), and says so per pack.
    let survives = pushed.packs.iter().map(|p| p.survives).min().unwrap_or(0);
    println!(
        "foundation pushed with {:?}: {} shards, {} re-routed around the refused server; any {survives} of {} servers may be lost",
        code.spec(),
        pushed.shards,
        pushed.rerouted,
        servers.len()
    );
    let fm_coord = RepoCoordinate::new(owner.public_key(), fm_id);

    // A low-rank fork.
    let dsm_dir = root.join("fine-tune");
    std::fs::create_dir_all(&dsm_dir)?;
    let dsm = Repository::init(&dsm_dir)?;
    dsm.remote(&net, &tuner)
        .pull(&fm_coord, "master", FetchOptions::default())
        .await?;
    dsm.set_fork_base(&fm_coord.to_string(), fm_commit)?;
    write_model(&dsm_dir, true)?;
    let codec = LowRank::new(Device::Cpu, RankPolicy::RelError(0.05));
    let (_, stats) =
        dsm.commit_with("low-rank fine-tune", tuner.public_key().to_bytes(), &codec)?;
    println!(
        "fork: {} tensors as low-rank deltas, {} unchanged; {:.1} MB changed → {:.2} MB stored; largest relative error {:.4}",
        stats.delta_tensors,
        stats.unchanged_tensors,
        (stats.dense_bytes - stats.unchanged_bytes) as f64 / 1e6,
        stats.stored_bytes as f64 / 1e6,
        stats.max_rel_error
    );
    // What was committed is the low-rank reconstruction: check it out in place of the original.
    dsm.checkout("master", true)?;
    let dsm_id = RepoId::new("low-rank-fork")?;
    dsm.remote(&net, &tuner)
        .push(&dsm_id, "master", options)
        .await?;

    // A clone with two servers gone (and s5, which took no upload) still rebuilds: any 4 of
    // the 9 shards of a segment do.
    for s in ["s0", "s3"] {
        net.inner.set_down(s, true);
    }
    let clone_dir = root.join("clone");
    std::fs::create_dir_all(&clone_dir)?;
    let clone = Repository::init(&clone_dir)?;
    let report = clone
        .pull(
            &net,
            &RepoCoordinate::new(tuner.public_key(), dsm_id),
            "master",
            FetchOptions::default(),
        )
        .await?;
    // The clone reproduces what the fork committed (the lossy reconstruction), bit for bit.
    let same = std::fs::read(clone_dir.join("model.safetensors"))?
        == std::fs::read(dsm_dir.join("model.safetensors"))?;
    println!(
        "clone from the 3 servers left: {} packs, {} shards; matches the fork's checkout: {}",
        report.packs,
        report.shards,
        if same { "yes" } else { "no" }
    );
    println!("bytes per server (up, down):");
    for (server, (up, down)) in net
        .bytes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
    {
        println!("  {server}: {up} up, {down} down");
    }
    if !same {
        return Err("the clone differs from the fork".into());
    }
    Ok(())
}
