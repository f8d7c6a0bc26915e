//! Durability a push states and enforces: every pack held to "any m of these n servers rebuild
//! it", shards of a failed server spread so that the guarantee holds, a push that falls short
//! publishing nothing, and a push cut off half way resuming without sending again what landed.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use agigit::event::nostr::prelude::{Event, Filter, Keys};
use agigit::event::{RepoCoordinate, RepoId};
use agigit::hash::BlobHash;
use agigit::net::{BoxFuture, MemoryTransport, NetError, PublishReport, Transport};
use agigit::shard::{Durability, Leopard};
use agigit::{FetchOptions, PushOptions, Repository};
use bytes::Bytes;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::Dir;

const SERVERS: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];

fn write_files(dir: &Path, version: u8) -> TestResult {
    std::fs::write(dir.join("config.json"), format!("{{\"v\": {version}}}"))?;
    let weights: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11).to_le_bytes()[0] ^ version)
        .collect();
    std::fs::write(dir.join("weights.bin"), weights)?;
    std::fs::create_dir_all(dir.join("data/train"))?;
    std::fs::write(dir.join("data/train/a.txt"), format!("rows {version}"))?;
    Ok(())
}

fn tree_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = agigit::worktree::list_files(dir).expect("list");
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let b = std::fs::read(dir.join(&f)).expect("read");
            (f, b)
        })
        .collect()
}

/// With every pair of `servers` down in turn (through `switch`), a fresh clone of
/// `coordinate` through `transport` is `origin` bit for bit (and at `tip`, when given).
async fn every_pair_down_rebuilds(
    switch: &MemoryTransport,
    servers: &[&str],
    transport: &dyn Transport,
    coordinate: &RepoCoordinate,
    origin: &Path,
    tip: Option<agigit::dag::ObjectId>,
    name: &str,
) -> TestResult {
    for lost in 0..servers.len() {
        for also in lost + 1..servers.len() {
            for (i, s) in servers.iter().enumerate() {
                switch.set_down(s, i == lost || i == also);
            }
            let dir = Dir::new(&format!("{name}-clone-{lost}-{also}"));
            let pulled = Repository::init(&dir.0)?
                .pull(transport, coordinate, "master", FetchOptions::default())
                .await?;
            if let Some(tip) = tip {
                assert_eq!(pulled.tip, Some(tip));
            }
            assert_eq!(
                tree_bytes(&dir.0),
                tree_bytes(origin),
                "without {}, {}",
                servers[lost],
                servers[also]
            );
        }
    }
    Ok(())
}

fn options(code: &Leopard) -> PushOptions<'_> {
    PushOptions {
        segment_size: 64 << 10,
        ..PushOptions::new(code)
    }
}

#[tokio::test]
async fn a_push_holds_every_pack_to_its_durability_target() -> TestResult {
    let origin = Dir::new("durable-origin");
    write_files(&origin.0, 1)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("first", keys.public_key().to_bytes())?;
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(4, 10)?;
    let id = RepoId::new("durable")?;
    let coordinate = RepoCoordinate::new(keys.public_key(), id.clone());

    // 4 of 10 over 5 servers: two shards of each segment on each, so any two servers rebuild
    // and three may be lost — the default target, stated per pack.
    let report = repo
        .push(&net, &keys, &id, "master", options(&code))
        .await?;
    assert_eq!(report.durability, Some(Durability::survive(3)));
    assert_eq!(report.packs.len(), 3, "commits, code, data/train");
    // P(at least 2 of 5 servers up), each up with p = 0.9.
    let expected = 1.0 - 0.1f64.powi(5) - 5.0 * 0.9 * 0.1f64.powi(4);
    for pack in &report.packs {
        assert_eq!((pack.survives, pack.servers_needed), (3, 2), "{pack:?}");
        assert!(pack.rebuild.exact);
        assert!(
            (pack.rebuild.probability - expected).abs() < 1e-12,
            "{pack:?}"
        );
        assert!(pack.servers.iter().all(|s| s.manifest));
        assert!(
            pack.servers.iter().all(|s| s.shards == 2 * pack.segments),
            "{pack:?}"
        );
    }

    // A second commit with s4 down: its shards can go elsewhere, but then three lost servers
    // could take a segment with them. The push says so and publishes nothing.
    write_files(&origin.0, 2)?;
    let second = repo.commit("second", keys.public_key().to_bytes())?;
    net.set_down("s4", true);
    match repo.push(&net, &keys, &id, "master", options(&code)).await {
        Err(e @ agigit::push::Error::Weaker(_)) => {
            assert_eq!(e.kind(), agigit::ErrorKind::Network);
            let m = e.to_string();
            assert!(
                m.contains("survive any 2 of 5") && m.contains("the target is 3"),
                "{m}"
            );
        }
        other => panic!("a push short of its target must fail: {other:?}"),
    }
    let published = repo.remote_refs(&net, &coordinate).await?;
    assert_ne!(
        published.branches.get("master"),
        Some(&second),
        "nothing moved"
    );

    // Asking for two lost servers is met: s4's shards went to the least loaded of the others.
    let weaker = PushOptions {
        durability: Some(Durability::survive(2)),
        ..options(&code)
    };
    let report = repo.push(&net, &keys, &id, "master", weaker).await?;
    assert!(report.rerouted > 0, "{report:?}");
    for pack in &report.packs {
        assert!(pack.survives >= 2, "{pack:?}");
        let s4 = pack.servers.iter().find(|s| s.server == "s4").expect("s4");
        assert_eq!(s4.shards, 0);
        assert!(!s4.manifest);
    }
    net.set_down("s4", false);

    // The guarantee, checked: every 3 of the 5 servers rebuild the whole repository.
    every_pair_down_rebuilds(
        &net,
        &SERVERS,
        &net,
        &coordinate,
        &origin.0,
        Some(second),
        "durable",
    )
    .await?;

    // Accepting less than the target: published, and the report says what it got.
    for s in SERVERS {
        net.set_down(s, false);
    }
    write_files(&origin.0, 3)?;
    repo.commit("third", keys.public_key().to_bytes())?;
    for s in ["s0", "s1", "s2"] {
        net.set_down(s, true);
    }
    let accepted = PushOptions {
        accept_weaker: true,
        ..options(&code)
    };
    let report = repo.push(&net, &keys, &id, "master", accepted).await?;
    assert_eq!(report.durability, Some(Durability::survive(3)));
    assert!(report.packs.iter().all(|p| p.survives == 1), "{report:?}");
    // A target no set of servers can meet is refused before anything is sent; so is one the
    // code cannot give, naming the code that would.
    let impossible = PushOptions {
        durability: Some(Durability::survive(5)),
        ..options(&code)
    };
    match repo.push(&net, &keys, &id, "master", impossible).await {
        Err(agigit::push::Error::Rejected(m)) => assert!(m.contains("cannot survive"), "{m}"),
        other => panic!("{other:?}"),
    }
    for s in SERVERS {
        net.set_down(s, false);
    }
    write_files(&origin.0, 4)?;
    repo.commit("fourth", keys.public_key().to_bytes())?;
    let blobs: usize = SERVERS.iter().map(|s| net.blob_count(s)).sum();
    let too_much = PushOptions {
        durability: Some(Durability::survive(4)),
        ..options(&code)
    };
    match repo.push(&net, &keys, &id, "master", too_much).await {
        Err(agigit::push::Error::Rejected(m)) => assert!(
            m.contains("4 of 10 over 5 servers survives at most 3") && m.contains("4 of 20 would"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        blobs,
        SERVERS.iter().map(|s| net.blob_count(s)).sum::<usize>()
    );
    let code20 = Leopard::new(4, 20)?;
    let four_lost = PushOptions {
        durability: Some(Durability::survive(4)),
        ..options(&code20)
    };
    let report = repo.push(&net, &keys, &id, "master", four_lost).await?;
    assert!(
        report
            .packs
            .iter()
            .all(|p| p.survives == 4 && p.servers_needed == 1)
    );
    Ok(())
}

/// A network with things wrong with it, over a [`MemoryTransport`]: it goes away after `budget`
/// blob uploads or `gets` blob downloads (the machine losing its link half way), its relays
/// hide the states of repository `hide`, and only its first `servers` servers are in use (a
/// relay added later); it counts the blob bytes moved.
struct Rigged {
    inner: MemoryTransport,
    budget: AtomicUsize,
    gets: AtomicUsize,
    cut: AtomicBool,
    sent: AtomicU64,
    received: AtomicU64,
    hide: Option<String>,
    servers: AtomicUsize,
}

impl Rigged {
    fn new(inner: MemoryTransport) -> Self {
        Self {
            inner,
            budget: AtomicUsize::new(usize::MAX),
            gets: AtomicUsize::new(usize::MAX),
            cut: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            hide: None,
            servers: AtomicUsize::new(usize::MAX),
        }
    }

    /// Cut after `budget` uploads.
    fn uploads(inner: MemoryTransport, budget: usize) -> Self {
        let rigged = Self::new(inner);
        rigged.budget.store(budget, Ordering::SeqCst);
        rigged
    }

    /// Cut after `gets` downloads.
    fn downloads(inner: MemoryTransport, gets: usize) -> Self {
        let rigged = Self::new(inner);
        rigged.gets.store(gets, Ordering::SeqCst);
        rigged
    }

    fn check(&self, server: &str) -> Result<(), NetError> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(NetError::Connection {
                server: server.to_owned(),
                reason: "the link is gone".to_owned(),
            });
        }
        Ok(())
    }

    fn spend(&self, budget: &AtomicUsize, server: &str) -> Result<(), NetError> {
        self.check(server)?;
        if budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_err()
        {
            self.cut.store(true, Ordering::SeqCst);
            return self.check(server);
        }
        Ok(())
    }
}

impl Transport for Rigged {
    fn publish<'a>(
        &'a self,
        event: &'a Event,
        min_accepted: usize,
    ) -> BoxFuture<'a, Result<PublishReport, NetError>> {
        Box::pin(async move {
            self.check("relays")?;
            self.inner.publish(event, min_accepted).await
        })
    }
    fn query<'a>(&'a self, filters: &'a [Filter]) -> BoxFuture<'a, Result<Vec<Event>, NetError>> {
        Box::pin(async move {
            let mut events = self.inner.query(filters).await?;
            if let Some(hide) = &self.hide {
                events.retain(|e| {
                    e.tags.identifier().map(|d| d.to_string()).as_deref() != Some(hide.as_str())
                });
            }
            Ok(events)
        })
    }
    fn push_servers(&self) -> Vec<String> {
        let mut all = self.inner.push_servers();
        all.truncate(self.servers.load(Ordering::SeqCst));
        all
    }
    fn fetch_servers(&self) -> Vec<String> {
        self.push_servers()
    }
    fn put_blob<'a>(
        &'a self,
        server: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<BlobHash, NetError>> {
        Box::pin(async move {
            self.spend(&self.budget, server)?;
            self.sent.fetch_add(data.len() as u64, Ordering::SeqCst);
            self.inner.put_blob(server, data).await
        })
    }
    fn has_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<bool, NetError>> {
        Box::pin(async move {
            self.check(server)?;
            self.inner.has_blob(server, hash).await
        })
    }
    fn get_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
        max_len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NetError>> {
        Box::pin(async move {
            self.spend(&self.gets, server)?;
            let bytes = self.inner.get_blob(server, hash, max_len).await?;
            self.received
                .fetch_add(bytes.len() as u64, Ordering::SeqCst);
            Ok(bytes)
        })
    }
    fn list_blobs<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Vec<agigit::net::ListedBlob>, NetError>> {
        self.inner.list_blobs(server)
    }
    fn delete_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<(), NetError>> {
        self.inner.delete_blob(server, hash)
    }
}

/// Pushes `repo` through a link that breaks after half its shard uploads, then again through
/// a whole one: the second push sends only what the first did not land.
async fn cut_and_resume(repo: &Repository, dir: &Path, private: bool) -> TestResult {
    let keys = Keys::generate();
    let code = Leopard::new(4, 10)?;
    let id = RepoId::new("resumed")?;
    let secret = agigit::private::reader_secret(&keys)?;
    let sealing = if private {
        repo.make_private(&secret, &[])?;
        repo.private_keys(&secret)?
    } else {
        None
    };
    let opts = PushOptions {
        keys: sealing.as_ref(),
        parallel: 1,
        ..options(&code)
    };
    // How many uploads a whole push makes (to servers nobody reads).
    let elsewhere = RepoId::new("reference")?;
    let whole = repo
        .push(
            &MemoryTransport::new(SERVERS),
            &keys,
            &elsewhere,
            "master",
            opts,
        )
        .await?;
    let uploads = whole.shards + whole.packs.len() * SERVERS.len();
    let total: u64 = whole.bytes_per_server.values().sum();
    assert!(
        std::fs::read_dir(dir.join(".agigit/push"))?
            .next()
            .is_none(),
        "a completed push leaves nothing pending"
    );

    let servers = MemoryTransport::new(SERVERS);
    let cut = Rigged::uploads(servers.clone(), uploads / 2);
    let failed = repo.push(&cut, &keys, &id, "master", opts).await;
    assert!(failed.is_err(), "{failed:?}");
    let first = cut.sent.load(Ordering::SeqCst);
    assert!(first > total / 4, "{first} of {total}");
    let coordinate = RepoCoordinate::new(keys.public_key(), id.clone());
    assert!(
        repo.remote_refs(&servers, &coordinate).await.is_err(),
        "no state was published"
    );

    let whole_link = Rigged::new(servers.clone());
    let resumed = repo.push(&whole_link, &keys, &id, "master", opts).await?;
    let second = whole_link.sent.load(Ordering::SeqCst);
    assert!(resumed.resumed > 0, "{resumed:?}");
    // What the first push landed is not sent again: together they send the whole push once,
    // and the manifests (a private one is sealed afresh) once more at most.
    let manifests: u64 = whole.packs.len() as u64 * SERVERS.len() as u64 * 2048;
    assert!(
        first + second <= total + manifests,
        "first {first} + second {second} vs whole {total}"
    );
    assert!(
        std::fs::read_dir(dir.join(".agigit/push"))?
            .next()
            .is_none(),
        "a completed push leaves nothing pending"
    );

    // And it is all there, bit for bit.
    let reader_dir = Dir::new(&format!("resume-reader-{private}"));
    let reader = Repository::init(&reader_dir.0)?;
    let pull = FetchOptions::with_secret(&secret);
    reader.pull(&servers, &coordinate, "master", pull).await?;
    assert_eq!(tree_bytes(&reader_dir.0), tree_bytes(dir));
    eprintln!(
        "private={private}: whole push {total} bytes; cut after {first}, resumed with {second} ({} shards found in place)",
        resumed.resumed
    );
    Ok(())
}

#[tokio::test]
async fn an_interrupted_push_resumes_without_sending_again_what_landed() -> TestResult {
    let dir = Dir::new("resume-public");
    write_files(&dir.0, 1)?;
    let repo = Repository::init(&dir.0)?;
    repo.commit("first", [7; 32])?;
    cut_and_resume(&repo, &dir.0, false).await
}

#[tokio::test]
async fn an_interrupted_private_push_resumes_with_the_same_sealed_pack() -> TestResult {
    let dir = Dir::new("resume-private");
    write_files(&dir.0, 1)?;
    let repo = Repository::init(&dir.0)?;
    repo.commit("first", [7; 32])?;
    cut_and_resume(&repo, &dir.0, true).await
}

#[tokio::test]
async fn an_audit_finds_lost_shards_and_a_repair_restores_the_target() -> TestResult {
    let origin = Dir::new("audit-origin");
    write_files(&origin.0, 1)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("first", keys.public_key().to_bytes())?;
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(4, 10)?;
    let id = RepoId::new("audited")?;
    let coordinate = RepoCoordinate::new(keys.public_key(), id.clone());
    repo.push(&net, &keys, &id, "master", options(&code))
        .await?;

    // Healthy: every pack survives the three lost servers the code gives.
    let audit = repo
        .audit(&net, &coordinate, agigit::AuditOptions::default())
        .await?;
    assert!(audit.is_healthy(), "{audit:?}");
    assert_eq!(audit.packs.len(), 3);
    assert!(audit.packs.iter().all(|p| p.survives == Some(3)));

    // s1 and s3 lose every blob (disks replaced), s4 is stopped.
    for server in ["s1", "s3"] {
        let (_, blobs) = net.contents(server);
        for (hash, _) in blobs {
            net.remove_blob(server, &hash);
        }
    }
    net.set_down("s4", true);
    let target = agigit::AuditOptions {
        durability: Some(Durability::survive(2)),
        ..agigit::AuditOptions::default()
    };
    let audit = repo.audit(&net, &coordinate, target).await?;
    assert_eq!(audit.unreachable, vec!["s4".to_owned()]);
    assert!(!audit.is_healthy());
    for pack in &audit.packs {
        // s0 and s2 hold two shards of each segment: four, exactly k — no server may be lost.
        assert_eq!(pack.survives, Some(0), "{pack:?}");
        assert!(pack.lost_segments.is_empty());
        assert_eq!(pack.below_target.len(), pack.segments);
        let held: Vec<usize> = pack.servers.iter().map(|s| s.shards).collect();
        assert_eq!(held, vec![2 * pack.segments, 0, 2 * pack.segments, 0, 0]);
        assert!(!pack.servers[1].manifest && pack.servers[0].manifest);
    }

    // The repair rebuilds what is missing onto the servers that answer.
    let repaired = repo.repair(&net, &coordinate, target).await?;
    assert!(repaired.errors.is_empty(), "{:?}", repaired.errors);
    assert!(repaired.after.is_healthy(), "{:?}", repaired.after);
    assert!(repaired.shards_uploaded > 0 && repaired.manifests_uploaded == 2 * 3);
    assert!(repaired.bytes_down > 0);
    eprintln!(
        "repair: {} segments, {} shards ({} bytes) up, {} bytes down",
        repaired.segments_repaired,
        repaired.shards_uploaded,
        repaired.bytes_up,
        repaired.bytes_down
    );
    // What the servers say now agrees, and a second repair has nothing to do.
    let audit = repo.audit(&net, &coordinate, target).await?;
    assert!(audit.is_healthy(), "{audit:?}");
    let again = repo.repair(&net, &coordinate, target).await?;
    assert_eq!((again.shards_uploaded, again.manifests_uploaded), (0, 0));

    // s4 comes back: any 3 of the 5 servers rebuild the repository bit for bit.
    every_pair_down_rebuilds(&net, &SERVERS, &net, &coordinate, &origin.0, None, "audit").await?;

    // Four servers wiped: segments are lost, the audit says which, and a repair cannot help.
    for s in SERVERS {
        net.set_down(s, false);
    }
    for server in ["s0", "s1", "s2", "s3"] {
        let (_, blobs) = net.contents(server);
        for (hash, _) in blobs {
            net.remove_blob(server, &hash);
        }
    }
    let audit = repo.audit(&net, &coordinate, target).await?;
    assert!(
        audit
            .packs
            .iter()
            .all(|p| p.survives.is_none() && p.rebuild.probability == 0.0),
        "{audit:?}"
    );
    assert!(audit.packs.iter().all(|p| !p.lost_segments.is_empty()));
    let hopeless = repo.repair(&net, &coordinate, target).await?;
    assert_eq!(hopeless.shards_uploaded, 0);
    assert!(!hopeless.after.is_healthy());
    Ok(())
}

#[tokio::test]
async fn an_interrupted_pull_resumes_from_the_segments_it_kept() -> TestResult {
    let (origin, clone_dir) = (
        Dir::new("pull-resume-origin"),
        Dir::new("pull-resume-clone"),
    );
    write_files(&origin.0, 1)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("first", keys.public_key().to_bytes())?;
    let servers = MemoryTransport::new(SERVERS);
    let code = Leopard::new(4, 10)?;
    let id = RepoId::new("pulled")?;
    repo.push(&servers, &keys, &id, "master", options(&code))
        .await?;
    let coordinate = RepoCoordinate::new(keys.public_key(), id);
    // Every pack keeps its segments (the default keeps those of packs over 64 MiB).
    let keep = FetchOptions {
        resume_over: 0,
        parallel: 1,
        ..FetchOptions::default()
    };

    // How much a whole pull downloads.
    let whole_dir = Dir::new("pull-resume-whole");
    let link = Rigged::new(servers.clone());
    let whole = Repository::init(&whole_dir.0)?
        .pull(&link, &coordinate, "master", keep)
        .await?;
    let total = link.received.load(Ordering::SeqCst);
    assert!(
        !whole_dir.0.join(".agigit/fetch").exists()
            || std::fs::read_dir(whole_dir.0.join(".agigit/fetch"))?
                .next()
                .is_none(),
        "a completed fetch keeps no segments"
    );

    // The link breaks half way through the shards.
    let clone = Repository::init(&clone_dir.0)?;
    let cut = Rigged::downloads(servers.clone(), whole.shards / 2);
    let failed = clone.pull(&cut, &coordinate, "master", keep).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(clone.head()?, None, "nothing moved");
    let first = cut.received.load(Ordering::SeqCst);
    // What it kept; one of them rots on disk before the next pull.
    let mut kept: Vec<std::path::PathBuf> = Vec::new();
    for pack in std::fs::read_dir(clone_dir.0.join(".agigit/fetch"))? {
        for f in std::fs::read_dir(pack?.path())? {
            let f = f?.path();
            if f.extension().is_some_and(|e| e == "segment") {
                kept.push(f);
            }
        }
    }
    assert!(kept.len() >= 2, "{kept:?}");
    let mut rotten = std::fs::read(&kept[0])?;
    rotten[100] ^= 1;
    std::fs::write(&kept[0], rotten)?;

    let link = Rigged::new(servers.clone());
    let resumed = clone.pull(&link, &coordinate, "master", keep).await?;
    let second = link.received.load(Ordering::SeqCst);
    // Every kept segment but the rotten one was used; that one was downloaded again.
    assert_eq!(resumed.resumed_segments, kept.len() - 1, "{resumed:?}");
    assert_eq!(tree_bytes(&clone_dir.0), tree_bytes(&origin.0));
    // What the first pull rebuilt is not downloaded again: the second takes what is left,
    // plus the manifests and the shards of the segments the cut caught half way.
    let shard = 64u64 << 10;
    assert!(
        second + first <= total + 4 * 4 * shard + 3 * 2048,
        "first {first} + second {second} vs whole {total}"
    );
    assert!(
        second < total,
        "first {first} + second {second} vs whole {total}"
    );
    eprintln!(
        "pull: whole {total} bytes; cut after {first}, resumed with {second} ({} segments kept)",
        resumed.resumed_segments
    );
    Ok(())
}

#[tokio::test]
async fn gc_deletes_what_no_repository_references_and_nothing_when_in_doubt() -> TestResult {
    let (kept_dir, dropped_dir) = (Dir::new("gc-kept"), Dir::new("gc-dropped"));
    let keys = Keys::generate();
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(4, 10)?;
    write_files(&kept_dir.0, 1)?;
    let kept = Repository::init(&kept_dir.0)?;
    kept.commit("kept", keys.public_key().to_bytes())?;
    let kept_id = RepoId::new("kept")?;
    kept.push(&net, &keys, &kept_id, "master", options(&code))
        .await?;
    let stored: usize = SERVERS.iter().map(|s| net.blob_count(s)).sum();

    // Another repository's push, cut off half way and never finished: its shards are on the
    // servers, and nothing references them.
    write_files(&dropped_dir.0, 9)?;
    let dropped = Repository::init(&dropped_dir.0)?;
    dropped.commit("dropped", keys.public_key().to_bytes())?;
    let cut = Rigged::uploads(net.clone(), 40);
    let failed = dropped
        .push(
            &cut,
            &keys,
            &RepoId::new("dropped")?,
            "master",
            options(&code),
        )
        .await;
    assert!(failed.is_err());
    let garbage: usize = SERVERS.iter().map(|s| net.blob_count(s)).sum::<usize>() - stored;
    assert!(garbage >= 30, "{garbage}");

    // Relays that hide `kept`'s state from its own clone: nothing is deleted.
    let hiding = Rigged {
        hide: Some("kept".to_owned()),
        ..Rigged::new(net.clone())
    };
    let now = agigit::GcOptions {
        grace: std::time::Duration::ZERO,
        ..agigit::GcOptions::default()
    };
    match kept.gc_remote(&hiding, &keys.public_key(), now).await {
        Err(agigit::Error::StaleState { repo, .. }) => assert!(repo.ends_with(":kept"), "{repo}"),
        other => panic!("a hidden repository must stop the collection: {other:?}"),
    }
    assert_eq!(
        SERVERS.iter().map(|s| net.blob_count(s)).sum::<usize>(),
        stored + garbage
    );

    // A dry run says what would go, and deletes nothing.
    let dry = agigit::GcOptions {
        dry_run: true,
        ..now
    };
    let report = kept.gc_remote(&net, &keys.public_key(), dry).await?;
    assert_eq!(report.repositories.len(), 1, "{report:?}");
    assert_eq!(
        report.servers.iter().map(|s| s.deleted).sum::<usize>(),
        garbage
    );
    assert_eq!(
        SERVERS.iter().map(|s| net.blob_count(s)).sum::<usize>(),
        stored + garbage
    );

    // Collected: the garbage goes, what `kept` references stays, and it still pulls.
    let report = kept.gc_remote(&net, &keys.public_key(), now).await?;
    assert_eq!(
        report.servers.iter().map(|s| s.deleted).sum::<usize>(),
        garbage
    );
    assert!(report.servers.iter().all(|s| s.errors.is_empty()));
    assert_eq!(
        SERVERS.iter().map(|s| net.blob_count(s)).sum::<usize>(),
        stored
    );
    let audit = kept
        .audit(
            &net,
            &RepoCoordinate::new(keys.public_key(), kept_id.clone()),
            agigit::AuditOptions::default(),
        )
        .await?;
    assert!(audit.is_healthy(), "{audit:?}");
    let again = kept.gc_remote(&net, &keys.public_key(), now).await?;
    assert_eq!(again.servers.iter().map(|s| s.deleted).sum::<usize>(), 0);
    Ok(())
}

#[tokio::test]
async fn a_repair_after_a_relay_is_added_spreads_onto_it() -> TestResult {
    let origin = Dir::new("rebalance-origin");
    write_files(&origin.0, 1)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("first", keys.public_key().to_bytes())?;
    let all = MemoryTransport::new(["s0", "s1", "s2", "s3"]);
    let net = Rigged::new(all.clone());
    net.servers.store(3, Ordering::SeqCst);
    let code = Leopard::new(4, 10)?;
    let id = RepoId::new("rebalanced")?;
    let coordinate = RepoCoordinate::new(keys.public_key(), id.clone());
    // On three servers (4, 3, 3 shards) one may be lost.
    let pushed = repo
        .push(&net, &keys, &id, "master", options(&code))
        .await?;
    assert!(pushed.packs.iter().all(|p| p.survives == 1), "{pushed:?}");

    // A fourth server: the code gives two on four, and the audit says the packs fall short.
    net.servers.store(4, Ordering::SeqCst);
    let audit = repo
        .audit(&net, &coordinate, agigit::AuditOptions::default())
        .await?;
    assert!(!audit.is_healthy());
    assert!(
        audit
            .packs
            .iter()
            .all(|p| p.target == Durability::survive(2))
    );
    let repaired = repo
        .repair(&net, &coordinate, agigit::AuditOptions::default())
        .await?;
    assert!(repaired.after.is_healthy(), "{:?}", repaired.after);
    assert!(all.blob_count("s3") > 0, "the new server took shards");
    // Checked: any two of the four rebuild.
    let servers = ["s0", "s1", "s2", "s3"];
    every_pair_down_rebuilds(
        &all,
        &servers,
        &net,
        &coordinate,
        &origin.0,
        None,
        "rebalance",
    )
    .await?;
    Ok(())
}
