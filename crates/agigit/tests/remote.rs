//! Push and pull through a transport: any m of n servers rebuild the repository bit for bit,
//! corrupt shards are skipped, too few servers is a clear error, and nothing is fetched twice.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use agigit::dag::FindExt as _;
use agigit::event::nostr::prelude::Keys;
use agigit::event::{RepoCoordinate, RepoId};
use agigit::net::{MemoryTransport, Transport};
use agigit::shard::Leopard;
use agigit::{Error, FetchOptions, PushOptions, Repository};
use bytes::Bytes;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::Dir;

fn write_files(dir: &Path, version: u8) -> TestResult {
    std::fs::write(
        dir.join("config.json"),
        format!("{{\"version\": {version}}}"),
    )?;
    let weights: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0] ^ version)
        .collect();
    std::fs::write(dir.join("weights.bin"), weights)?;
    std::fs::create_dir_all(dir.join("data/train"))?;
    std::fs::write(dir.join("data/train/a.txt"), b"training text")?;
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

const SERVERS: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];

#[tokio::test]
async fn push_then_clone_from_three_of_five() -> TestResult {
    let (origin, clone) = (Dir::new("remote-origin"), Dir::new("remote-clone"));
    write_files(&origin.0, 1)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("first", keys.public_key().to_bytes())?;
    let net = MemoryTransport::new(SERVERS);
    // 4 data shards of 10 over 5 servers: each holds 2 per segment, any 2 servers suffice.
    let code = Leopard::new(4, 10)?;
    let options = PushOptions {
        segment_size: 64 << 10,
        min_accepted: 3,
        ..PushOptions::new(&code)
    };
    let id = RepoId::new("tiny-model")?;
    // Through the remote handle: the transport and the key named once.
    let remote = repo.remote(&net, &keys);
    let report = remote.push(&id, "master", options).await?;
    assert!(report.shards > 0 && report.objects >= 5);
    assert_eq!(
        report.bytes_per_server.len(),
        5,
        "every server holds a share"
    );
    assert!(remote.push(&id, "master", options).await?.up_to_date);

    // Two servers down: the other three rebuild everything.
    net.set_down("s1", true);
    net.set_down("s3", true);
    let coordinate = RepoCoordinate::new(keys.public_key(), id.clone());
    let reader = Repository::init(&clone.0)?;
    let pulled = reader
        .remote(&net, &Keys::generate())
        .pull(&coordinate, "master", FetchOptions::default())
        .await?;
    // One pack per part pushed (code, data/train) and one for the commits and top trees.
    assert_eq!(pulled.packs, 3);
    assert_eq!(tree_bytes(&clone.0), tree_bytes(&origin.0));
    assert!(reader.status()?.is_empty());

    // A second commit: only the new objects travel, and pulling twice fetches nothing again.
    write_files(&origin.0, 2)?;
    repo.commit("second", keys.public_key().to_bytes())?;
    net.set_down("s4", true);
    let refused = repo.push(&net, &keys, &id, "master", options).await;
    // Two servers left hold five shards of each segment: one may be lost, not the three the
    // code gives on five servers.
    match &refused {
        Err(e @ agigit::push::Error::Weaker(_)) => {
            let m = e.to_string();
            assert!(
                m.contains("survive any 1 of 5") && m.contains("--accept-weaker"),
                "{m}"
            );
        }
        other => panic!("three of five servers are down: {other:?}"),
    }
    // Nothing pointed at the new commit: a reader still gets the first one.
    assert_eq!(
        reader
            .pull(&net, &coordinate, "master", FetchOptions::default())
            .await?
            .packs,
        0
    );
    for s in ["s1", "s3", "s4"] {
        net.set_down(s, false);
    }
    let second = repo.push(&net, &keys, &id, "master", options).await?;
    assert!(second.objects < report.objects + 5);
    let again = reader
        .pull(&net, &coordinate, "master", FetchOptions::default())
        .await?;
    assert_eq!(
        again.packs, 2,
        "only the new packs: commits and code (data/train is unchanged)"
    );
    assert_eq!(tree_bytes(&clone.0), tree_bytes(&origin.0));
    assert_eq!(
        reader
            .pull(&net, &coordinate, "master", FetchOptions::default())
            .await?
            .packs,
        0
    );
    assert_eq!(reader.log("HEAD", 10)?.len(), 2);

    // The owner's second machine (the reader's copy) commits on top: the origin, behind now,
    // may not push over it without pulling first.
    std::fs::write(clone.0.join("config.json"), b"{\"version\": 3}")?;
    reader.commit("third, elsewhere", keys.public_key().to_bytes())?;
    reader.push(&net, &keys, &id, "master", options).await?;
    std::fs::write(origin.0.join("config.json"), b"{\"version\": 4}")?;
    repo.commit("fourth, diverged", keys.public_key().to_bytes())?;
    match repo.push(&net, &keys, &id, "master", options).await {
        Err(e @ agigit::push::Error::RemoteAhead { .. }) => {
            assert_eq!(e.kind(), agigit::ErrorKind::Diverged);
            assert!(e.to_string().contains("pull, merge, then push"), "{e}");
        }
        other => panic!("a diverged push must be refused: {other:?}"),
    }
    // Pulling instead cannot fast-forward either: the remote branch is fetched for a merge,
    // the local branch and HEAD stay where they were.
    let head = repo.head()?;
    match repo
        .pull(&net, &coordinate, "master", FetchOptions::default())
        .await
    {
        Err(e @ agigit::fetch::Error::Diverged { .. }) => {
            assert_eq!(e.kind(), agigit::ErrorKind::Diverged);
            let m = e.to_string();
            assert!(m.contains("merge origin/master into it"), "{m}");
            if let agigit::fetch::Error::Diverged { local, remote, .. } = e {
                assert_eq!(Some(local), head);
                assert_eq!(Some(remote), reader.head()?);
            }
        }
        other => panic!("a diverged pull must be refused: {other:?}"),
    }
    assert_eq!(repo.head()?, head);
    assert_eq!(Some(repo.resolve("origin/master")?), reader.head()?);
    Ok(())
}

/// A transport that ranks its fetch servers by health (as `agigit_net::Network` does) changes
/// their order while a fetch runs: a server found down sinks to the end. The shards' locator
/// must keep naming servers by one list: with the list taken anew per pack, the second pack's
/// locator took a working server for the one found down, never asked it, and a fetch the
/// durability report promised (4 of 6 over three servers: any two rebuild) failed.
#[tokio::test]
async fn a_fetch_whose_servers_rerank_mid_way_still_finds_every_shard() -> TestResult {
    let (origin, clone) = (
        Dir::new("remote-rerank-origin"),
        Dir::new("remote-rerank-clone"),
    );
    write_files(&origin.0, 1)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("first", keys.public_key().to_bytes())?;
    let servers = ["s0", "s1", "s2"];
    let net = MemoryTransport::new(servers);
    let code = Leopard::new(4, 6)?;
    let options = PushOptions {
        segment_size: 64 << 10,
        min_accepted: 2,
        ..PushOptions::new(&code)
    };
    let id = RepoId::new("reranked")?;
    let report = repo.push(&net, &keys, &id, "master", options).await?;
    assert_eq!(report.durability.map(|d| d.servers_lost()), Some(1));
    net.set_down("s1", true);
    net.rank_by_failures();
    let reader = Repository::init(&clone.0)?;
    let pulled = reader
        .remote(&net, &Keys::generate())
        .pull(
            &RepoCoordinate::new(keys.public_key(), id),
            "master",
            FetchOptions::default(),
        )
        .await?;
    assert!(pulled.packs >= 2, "the order changes between packs");
    assert_eq!(tree_bytes(&clone.0), tree_bytes(&origin.0));
    Ok(())
}

#[tokio::test]
async fn corrupt_shards_are_skipped_and_too_few_servers_is_an_error() -> TestResult {
    let (origin, clone) = (
        Dir::new("remote-corrupt-origin"),
        Dir::new("remote-corrupt-clone"),
    );
    write_files(&origin.0, 3)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("first", keys.public_key().to_bytes())?;
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(4, 10)?;
    let options = PushOptions {
        segment_size: 64 << 10,
        min_accepted: 3,
        ..PushOptions::new(&code)
    };
    let id = RepoId::new("rot")?;
    let report = repo.push(&net, &keys, &id, "master", options).await?;
    let manifest = report.manifest.ok_or("manifest")?;
    // Rot every shard on s0 (its manifest copy too): the others make up for it.
    let s0_blobs = net.blob_count("s0");
    assert!(s0_blobs > 1);
    let coordinate = RepoCoordinate::new(keys.public_key(), id.clone());
    let manifest_bytes = net
        .get_blob("s1", &manifest, agigit::MAX_MANIFEST_BYTES)
        .await?;
    let parsed = agigit::shard::ShardManifest::decode(&manifest_bytes)?;
    for (_, _, hash) in parsed.all_shard_hashes() {
        net.corrupt_blob("s0", hash, Bytes::from_static(b"rot"));
    }
    net.corrupt_blob("s0", &manifest, Bytes::from_static(b"rot"));
    let reader = Repository::init(&clone.0)?;
    reader
        .pull(&net, &coordinate, "master", FetchOptions::default())
        .await?;
    assert_eq!(tree_bytes(&clone.0), tree_bytes(&origin.0));

    // With four servers down, one cannot rebuild: a clear error, and no ref moves.
    let third = Dir::new("remote-corrupt-third");
    let late = Repository::init(&third.0)?;
    for s in ["s1", "s2", "s3", "s4"] {
        net.set_down(s, true);
    }
    match late
        .pull(&net, &coordinate, "master", FetchOptions::default())
        .await
    {
        Err(agigit::fetch::Error::Network(m)) => assert!(!m.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(late.head()?, None);
    Ok(())
}

/// A foundation with transformer-shaped bf16 tensors; `tuned` changes two layers a little.
fn write_checkpoint(dir: &Path, tuned: bool) -> TestResult {
    use agigit::delta::{DType, save_safetensors, synth};
    let names = [
        "embed",
        "layers.0.attn",
        "layers.0.mlp",
        "layers.1.attn",
        "layers.1.mlp",
        "head",
    ];
    let tensors: Vec<(String, agigit::delta::Tensor)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut v = synth::gaussian(i as u64 + 10, 128 * 64, 0.02);
            if tuned && n.ends_with("mlp") {
                v = synth::perturb(&v, 7, 0.01);
            }
            (
                format!("{n}.weight"),
                synth::tensor(DType::BF16, &[128, 64], &v),
            )
        })
        .collect();
    save_safetensors(
        dir.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (n.as_str(), t.view())),
        &BTreeMap::new(),
    )?;
    std::fs::write(dir.join("config.json"), b"{\"layers\": 2}")?;
    Ok(())
}

/// A foundation checkpoint in `dir`, committed and pushed by a new owner as `foundation`.
async fn push_foundation(
    dir: &Path,
    net: &MemoryTransport,
    options: PushOptions<'_>,
) -> Result<(agigit::dag::ObjectId, RepoCoordinate, agigit::PushReport), Box<dyn std::error::Error>>
{
    let owner = Keys::generate();
    write_checkpoint(dir, false)?;
    let fm = Repository::init(dir)?;
    let commit = fm.commit("foundation", owner.public_key().to_bytes())?;
    let id = RepoId::new("foundation")?;
    let report = fm.push(net, &owner, &id, "master", options).await?;
    Ok((commit, RepoCoordinate::new(owner.public_key(), id), report))
}

/// A fork of the foundation in `dir`: pulled, its base set, two layers fine-tuned (uncommitted).
async fn fine_tune(
    dir: &Path,
    net: &MemoryTransport,
    foundation: &RepoCoordinate,
    commit: agigit::dag::ObjectId,
) -> Result<Repository, Box<dyn std::error::Error>> {
    let dsm = Repository::init(dir)?;
    dsm.pull(net, foundation, "master", FetchOptions::default())
        .await?;
    dsm.set_fork_base(&foundation.to_string(), commit)?;
    write_checkpoint(dir, true)?;
    Ok(dsm)
}

#[tokio::test]
async fn a_fork_stores_deltas_and_clones_bit_exact() -> TestResult {
    let (found, tune, reader_dir) = (
        Dir::new("remote-fm"),
        Dir::new("remote-dsm"),
        Dir::new("remote-dsm-clone"),
    );
    let tuner = Keys::generate();
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(4, 10)?;
    let options = PushOptions {
        segment_size: 64 << 10,
        min_accepted: 3,
        ..PushOptions::new(&code)
    };
    // The foundation, pushed by its owner.
    let (fm_commit, fm_coord, fm_push) = push_foundation(&found.0, &net, options).await?;

    // The tuner clones it, forks, fine-tunes two layers and commits: deltas against the base.
    let dsm = fine_tune(&tune.0, &net, &fm_coord, fm_commit).await?;
    assert_eq!(dsm.status()?.len(), 1);
    let (tuned, stats) = dsm.commit_with(
        "fine-tune the MLPs",
        tuner.public_key().to_bytes(),
        &agigit::delta::Lossless::default(),
    )?;
    assert_eq!(
        (stats.delta_tensors, stats.unchanged_tensors),
        (2, 4),
        "{stats:?}"
    );
    assert!(stats.stored_bytes < stats.dense_bytes / 3, "{stats:?}");
    assert_eq!(stats.max_rel_error, 0.0);
    assert!(
        dsm.status()?.is_empty(),
        "a lossless fork matches its working files"
    );
    let base = dsm.store().find_commit(&tuned)?.base;
    assert_eq!(base.map(|b| b.commit), Some(fm_commit));

    // Pushed under the tuner's own repository: only the delta travels.
    let dsm_id = RepoId::new("domain-model")?;
    let dsm_push = dsm.push(&net, &tuner, &dsm_id, "master", options).await?;
    assert!(
        dsm_push.pack_bytes < fm_push.pack_bytes / 2,
        "{dsm_push:?} vs {fm_push:?}"
    );

    // A reader clones the fork from three of five servers: foundation fetched too, bit exact.
    net.set_down("s0", true);
    net.set_down("s2", true);
    let reader = Repository::init(&reader_dir.0)?;
    let pulled = reader
        .pull(
            &net,
            &RepoCoordinate::new(tuner.public_key(), dsm_id),
            "master",
            FetchOptions::default(),
        )
        .await?;
    // The fork's commits and its params; the foundation's commits, code and params.
    assert_eq!(pulled.packs, 5, "{pulled:?}");
    assert_eq!(tree_bytes(&reader_dir.0), tree_bytes(&tune.0));
    assert!(reader.status()?.is_empty());
    assert_eq!(reader.fork_base()?.map(|b| b.commit), Some(fm_commit));
    Ok(())
}

fn secret_of(keys: &Keys) -> agigit::crypt::ReaderSecret {
    agigit::private::reader_secret(keys).expect("a Nostr key")
}

fn reader_of(keys: &Keys) -> agigit::crypt::ReaderKey {
    agigit::private::reader_key(&keys.public_key()).expect("a Nostr key")
}

#[tokio::test]
async fn a_private_fork_is_ciphertext_on_every_server_and_opens_for_readers_only() -> TestResult {
    let (found, tune, reader_dir, stranger_dir) = (
        Dir::new("private-fm"),
        Dir::new("private-dsm"),
        Dir::new("private-reader"),
        Dir::new("private-stranger"),
    );
    let (tuner, reader, stranger) = (Keys::generate(), Keys::generate(), Keys::generate());
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(4, 10)?;
    let public = PushOptions {
        segment_size: 64 << 10,
        min_accepted: 3,
        ..PushOptions::new(&code)
    };
    let (fm_commit, fm_coord, _) = push_foundation(&found.0, &net, public).await?;

    // The tuner's fork is private, readable by the tuner and one reader.
    let dsm = fine_tune(&tune.0, &net, &fm_coord, fm_commit).await?;
    let secret_note = b"SECRET-DOMAIN-NOTES: only readers may see this line";
    std::fs::write(tune.0.join("notes.txt"), secret_note)?;
    dsm.make_private(&secret_of(&tuner), &[reader_of(&reader)])?;
    let (tuned, _) = dsm.commit_with(
        "private fine-tune",
        tuner.public_key().to_bytes(),
        &agigit::delta::Lossless::default(),
    )?;
    let dsm_id = RepoId::new("private-domain-model")?;
    match dsm.push(&net, &tuner, &dsm_id, "master", public).await {
        Err(agigit::push::Error::NeedsKey(m)) => assert!(m.contains("private"), "{m}"),
        other => panic!("a private repository must not push unencrypted: {other:?}"),
    }
    let keys = dsm
        .private_keys(&secret_of(&tuner))?
        .ok_or("the repository is private")?;
    let private = PushOptions {
        keys: Some(&keys),
        ..public
    };
    let report = dsm.push(&net, &tuner, &dsm_id, "master", private).await?;
    assert!(report.private && report.shards > 0);

    // What the servers hold: no plaintext, no plaintext commit or object id.
    let tuned_hex = tuned.to_string();
    for server in SERVERS {
        let (events, blobs) = net.contents(server);
        for event in events.iter().filter(|e| e.pubkey == tuner.public_key()) {
            let json = format!("{:?} {}", event.tags, event.content);
            assert!(
                !json.contains(&tuned_hex),
                "a commit id on {server}: {json}"
            );
            assert!(!json.contains("private fine-tune"), "{json}");
            // Branch names are opaque too.
            assert!(
                !json.contains("refs/heads/master"),
                "a branch name on {server}: {json}"
            );
        }
        for (hash, bytes) in &blobs {
            let found = bytes
                .windows(secret_note.len())
                .any(|w| w == secret_note.as_slice());
            assert!(!found, "plaintext in blob {hash} on {server}");
        }
    }

    // The reader clones it from three servers: bit exact, and the clone is private too.
    net.set_down("s1", true);
    net.set_down("s4", true);
    let coordinate = RepoCoordinate::new(tuner.public_key(), dsm_id);
    let mine = Repository::init(&reader_dir.0)?;
    let reader_secret = secret_of(&reader);
    let pulled = mine
        .pull(
            &net,
            &coordinate,
            "master",
            FetchOptions::with_secret(&reader_secret),
        )
        .await?;
    assert_eq!(pulled.tip, Some(tuned));
    assert_eq!(tree_bytes(&reader_dir.0), tree_bytes(&tune.0));
    mine.save_envelope(pulled.envelope.as_deref().ok_or("an envelope")?)?;
    assert!(mine.is_private()?);
    assert!(mine.private_keys(&reader_secret)?.is_some());

    // A stranger: not a reader, and without a key at all it is told what to do.
    let theirs = Repository::init(&stranger_dir.0)?;
    let stranger_secret = secret_of(&stranger);
    match theirs
        .pull(
            &net,
            &coordinate,
            "master",
            FetchOptions::with_secret(&stranger_secret),
        )
        .await
    {
        Err(agigit::fetch::Error::NotAReader) => {}
        other => panic!("a stranger must not read a private repository: {other:?}"),
    }
    match theirs
        .pull(&net, &coordinate, "master", FetchOptions::default())
        .await
    {
        Err(agigit::fetch::Error::NeedsKey(m)) => assert!(m.contains("private"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(theirs.head()?, None, "nothing moved");
    assert!(agigit::worktree::list_files(&stranger_dir.0)?.is_empty());

    // The tuner adds the stranger as a reader: the next push, with no new commit, publishes the
    // new envelope, and the same pull now succeeds.
    net.set_down("s1", false);
    net.set_down("s4", false);
    let mut keys = dsm.private_keys(&secret_of(&tuner))?.ok_or("private")?;
    keys.add_reader(&reader_of(&stranger))?;
    dsm.save_private_keys(&keys)?;
    let again = dsm
        .push(
            &net,
            &tuner,
            &RepoId::new("private-domain-model")?,
            "master",
            PushOptions {
                keys: Some(&keys),
                ..public
            },
        )
        .await?;
    assert!(!again.up_to_date && again.objects == 0, "{again:?}");
    theirs
        .pull(
            &net,
            &coordinate,
            "master",
            FetchOptions::with_secret(&stranger_secret),
        )
        .await?;
    assert_eq!(tree_bytes(&stranger_dir.0), tree_bytes(&tune.0));
    Ok(())
}

#[tokio::test]
async fn pushing_to_a_second_repository_sends_everything_it_lacks() -> TestResult {
    let (origin, clone) = (Dir::new("second-origin"), Dir::new("second-clone"));
    write_files(&origin.0, 5)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("first", keys.public_key().to_bytes())?;
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(4, 10)?;
    let options = PushOptions {
        segment_size: 64 << 10,
        ..PushOptions::new(&code)
    };
    let first = repo
        .push(&net, &keys, &RepoId::new("one")?, "master", options)
        .await?;
    // The tracking ref now says origin/master is at the tip; a new repository still needs it all.
    let second = repo
        .push(&net, &keys, &RepoId::new("two")?, "master", options)
        .await?;
    assert_eq!(second.objects, first.objects);
    let reader = Repository::init(&clone.0)?;
    reader
        .pull(
            &net,
            &RepoCoordinate::new(keys.public_key(), RepoId::new("two")?),
            "master",
            FetchOptions::default(),
        )
        .await?;
    assert_eq!(tree_bytes(&clone.0), tree_bytes(&origin.0));
    Ok(())
}

#[tokio::test]
async fn a_partial_clone_fetches_only_its_parts_commits_and_widens() -> TestResult {
    use agigit::Part;
    let (origin, partial, full) = (
        Dir::new("partial-origin"),
        Dir::new("partial-clone"),
        Dir::new("partial-full"),
    );
    write_checkpoint(&origin.0, false)?;
    std::fs::create_dir_all(origin.0.join("data/train"))?;
    std::fs::write(origin.0.join("data/train/corpus.txt"), b"training text")?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("model", keys.public_key().to_bytes())?;
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(4, 10)?;
    let options = PushOptions {
        segment_size: 64 << 10,
        ..PushOptions::new(&code)
    };
    let id = RepoId::new("parts")?;
    repo.push(&net, &keys, &id, "master", options).await?;
    let coordinate = RepoCoordinate::new(keys.public_key(), id.clone());

    // Code only: the commits and the code pack, nothing else on disk.
    let clone = Repository::init(&partial.0)?;
    let code_only = [Part::Code];
    let pulled = clone
        .pull(
            &net,
            &coordinate,
            "master",
            FetchOptions {
                parts: Some(&code_only),
                ..FetchOptions::default()
            },
        )
        .await?;
    assert_eq!(pulled.packs, 2, "{pulled:?}");
    assert_eq!(agigit::worktree::list_files(&partial.0)?, ["config.json"]);
    assert_eq!(clone.parts()?, Some(code_only.into_iter().collect()));
    assert!(clone.status()?.is_empty());

    // A commit there keeps the parameters and data it never fetched; a file in a part it lacks
    // is refused.
    std::fs::write(partial.0.join("config.json"), b"{\"layers\": 3}")?;
    std::fs::write(partial.0.join("extra.safetensors"), b"")?;
    match clone.commit("no", keys.public_key().to_bytes()) {
        Err(agigit::commit::Error::Invalid(m)) => assert!(m.contains("partial clone"), "{m}"),
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(partial.0.join("extra.safetensors"))?;
    clone.commit("three layers", keys.public_key().to_bytes())?;
    let pushed = clone.push(&net, &keys, &id, "master", options).await?;
    assert!(
        pushed.objects <= 4,
        "only the new commit, trees and file: {pushed:?}"
    );

    // A full clone gets the new code and the untouched parameters and data, bit for bit.
    let everything = Repository::init(&full.0)?;
    everything
        .pull(&net, &coordinate, "master", FetchOptions::default())
        .await?;
    std::fs::write(origin.0.join("config.json"), b"{\"layers\": 3}")?;
    assert_eq!(tree_bytes(&full.0), tree_bytes(&origin.0));

    // The partial clone widens to the parameters: only their pack comes, and the file appears.
    let more = [Part::Code, Part::Params];
    let widened = clone
        .pull(
            &net,
            &coordinate,
            "master",
            FetchOptions {
                parts: Some(&more),
                ..FetchOptions::default()
            },
        )
        .await?;
    assert_eq!(widened.packs, 1, "{widened:?}");
    assert_eq!(
        std::fs::read(partial.0.join("model.safetensors"))?,
        std::fs::read(origin.0.join("model.safetensors"))?
    );
    assert!(!partial.0.join("data/train/corpus.txt").exists());
    assert!(clone.status()?.is_empty());
    // Dropping a part it holds is refused.
    assert!(matches!(
        clone
            .pull(
                &net,
                &coordinate,
                "master",
                FetchOptions {
                    parts: Some(&code_only),
                    ..FetchOptions::default()
                },
            )
            .await,
        Err(agigit::fetch::Error::Invalid(_))
    ));
    Ok(())
}

/// A repository of one file, committed and pushed as `master` of `id` to a fresh network.
struct Pushed {
    keys: Keys,
    net: MemoryTransport,
    code: Leopard,
    coordinate: RepoCoordinate,
    origin: Dir,
    repo: Repository,
    tip: agigit::dag::ObjectId,
}

impl Pushed {
    async fn new(id: &str, file: &str, content: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let keys = Keys::generate();
        let net = MemoryTransport::new(SERVERS);
        let code = Leopard::new(2, 5)?;
        let coordinate = RepoCoordinate::new(keys.public_key(), RepoId::new(id)?);
        let origin = Dir::new(&format!("{id}-origin"));
        std::fs::write(origin.0.join(file), content)?;
        let repo = Repository::init(&origin.0)?;
        let tip = repo.commit(content, keys.public_key().to_bytes())?;
        repo.push(
            &net,
            &keys,
            &coordinate.id,
            "master",
            PushOptions::new(&code),
        )
        .await?;
        Ok(Pushed {
            keys,
            net,
            code,
            coordinate,
            origin,
            repo,
            tip,
        })
    }
}

#[tokio::test]
async fn pull_never_loses_local_work() -> TestResult {
    let Pushed {
        keys,
        net,
        code,
        coordinate,
        origin,
        repo,
        ..
    } = Pushed::new("pulled", "shared.txt", "v1").await?;
    let options = PushOptions::new(&code);
    // Three clones at v1, each with its user's work in the way of the next pull.
    type Work = fn(&Path) -> std::io::Result<()>;
    let cases: [(&str, Work, &str); 3] = [
        (
            "modified",
            |d| std::fs::write(d.join("shared.txt"), "my edit"),
            "shared.txt",
        ),
        (
            "deleted",
            |d| std::fs::remove_file(d.join("shared.txt")),
            "shared.txt",
        ),
        (
            "untracked",
            |d| std::fs::write(d.join("new.txt"), "my notes"),
            "new.txt",
        ),
    ];
    let mut clones = Vec::new();
    for (what, work, _) in &cases {
        let dir = Dir::new(&format!("pull-local-{what}"));
        let clone = Repository::init(&dir.0)?;
        clone
            .pull(&net, &coordinate, "master", FetchOptions::default())
            .await?;
        work(&dir.0)?;
        clones.push((dir, clone));
    }
    std::fs::write(origin.0.join("shared.txt"), "v2")?;
    std::fs::write(origin.0.join("new.txt"), "theirs")?;
    let v2 = repo.commit("v2", keys.public_key().to_bytes())?;
    repo.push(&net, &keys, &coordinate.id, "master", options)
        .await?;
    for ((what, _, path), (dir, clone)) in cases.iter().zip(&clones) {
        let before = std::fs::read(dir.0.join(path)).ok();
        let head = clone.head()?;
        match clone
            .pull(&net, &coordinate, "master", FetchOptions::default())
            .await
        {
            Err(agigit::fetch::Error::LocalChanges(agigit::LocalChanges {
                modified,
                untracked,
                command,
            })) => {
                assert_eq!(command, "pull");
                let listed = if *what == "untracked" {
                    &untracked
                } else {
                    &modified
                };
                assert_eq!(listed, &[path.to_string()], "{what}");
            }
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(std::fs::read(dir.0.join(path)).ok(), before, "{what}");
        assert_eq!(clone.head()?, head, "{what}: the branch did not move");
        let forced = FetchOptions {
            force: true,
            ..FetchOptions::default()
        };
        clone.pull(&net, &coordinate, "master", forced).await?;
        assert_eq!(clone.head()?, Some(v2));
        assert_eq!(tree_bytes(&dir.0), tree_bytes(&origin.0), "{what}");
    }
    Ok(())
}

/// A network whose relays lie by omission or addition: `fetch` answers queries (and gives
/// blobs), `push` answers push-relay queries and takes what is published; `extra` events are
/// added to every query's answer, whoever signed them.
struct Split {
    fetch: MemoryTransport,
    push: MemoryTransport,
    extra: Vec<agigit::event::nostr::prelude::Event>,
}

impl Transport for Split {
    fn publish<'a>(
        &'a self,
        event: &'a agigit::event::nostr::prelude::Event,
        min_accepted: usize,
    ) -> agigit::net::BoxFuture<'a, Result<agigit::net::PublishReport, agigit::net::NetError>> {
        self.push.publish(event, min_accepted)
    }
    fn query<'a>(
        &'a self,
        filters: &'a [agigit::event::nostr::prelude::Filter],
    ) -> agigit::net::BoxFuture<
        'a,
        Result<Vec<agigit::event::nostr::prelude::Event>, agigit::net::NetError>,
    > {
        Box::pin(async move {
            let mut events = self.fetch.query(filters).await?;
            events.extend(self.extra.iter().cloned());
            Ok(events)
        })
    }
    fn query_push<'a>(
        &'a self,
        filters: &'a [agigit::event::nostr::prelude::Filter],
    ) -> agigit::net::BoxFuture<
        'a,
        Result<Vec<agigit::event::nostr::prelude::Event>, agigit::net::NetError>,
    > {
        self.push.query(filters)
    }
    fn push_servers(&self) -> Vec<String> {
        self.push.push_servers()
    }
    fn fetch_servers(&self) -> Vec<String> {
        self.fetch.fetch_servers()
    }
    fn put_blob<'a>(
        &'a self,
        server: &'a str,
        data: Bytes,
    ) -> agigit::net::BoxFuture<'a, Result<agigit::hash::BlobHash, agigit::net::NetError>> {
        self.push.put_blob(server, data)
    }
    fn has_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a agigit::hash::BlobHash,
    ) -> agigit::net::BoxFuture<'a, Result<bool, agigit::net::NetError>> {
        self.push.has_blob(server, hash)
    }
    fn get_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a agigit::hash::BlobHash,
        max_len: u64,
    ) -> agigit::net::BoxFuture<'a, Result<Bytes, agigit::net::NetError>> {
        self.fetch.get_blob(server, hash, max_len)
    }
}

/// A copy of `net` holding its blobs and only the events `keep` selects: relays that lost, or
/// never saw, some events.
async fn copy_of(
    net: &MemoryTransport,
    keep: impl Fn(&agigit::event::nostr::prelude::Event) -> bool,
) -> Result<MemoryTransport, Box<dyn std::error::Error>> {
    let copy = MemoryTransport::new(SERVERS);
    for s in SERVERS {
        let (events, blobs) = net.contents(s);
        for e in events.iter().filter(|e| keep(e)) {
            copy.publish(e, 1).await?;
        }
        for (_, b) in blobs {
            copy.put_blob(s, b).await?;
        }
    }
    Ok(copy)
}

fn is_state(e: &agigit::event::nostr::prelude::Event) -> bool {
    e.kind.as_u16() == agigit::event::kinds::REPO_STATE
}

/// The announcement names who may write, so a clone never goes back to an older one: relays
/// that hold none, or only an older one (which still listed a maintainer the owner removed),
/// are refused with `StaleAnnouncement` and nothing moves.
#[tokio::test]
async fn relays_cannot_hide_the_newest_announcement_from_a_clone() -> TestResult {
    use agigit::event::{RepoAnnouncement, Visibility};
    let Pushed {
        keys,
        net,
        coordinate,
        repo,
        tip,
        ..
    } = Pushed::new("announced", "a.txt", "1").await?;
    let remote = repo.remote(&net, &keys);
    let mut first = RepoAnnouncement::new(coordinate.id.clone(), Visibility::Public);
    first.maintainers.push(Keys::generate().public_key());
    remote.announce(&first, 1).await?;
    let with_maintainer = copy_of(&net, |_| true).await?;
    let without_any = copy_of(&net, |e| {
        e.kind.as_u16() != agigit::event::kinds::REPO_ANNOUNCEMENT
    })
    .await?;
    // The owner removes the maintainer: the new announcement is dated after the first.
    remote
        .announce(
            &RepoAnnouncement::new(coordinate.id.clone(), Visibility::Public),
            1,
        )
        .await?;
    let clone = Dir::new("announced-clone");
    let reader = Repository::init(&clone.0)?;
    reader
        .pull(&net, &coordinate, "master", FetchOptions::default())
        .await?;
    for (what, relays) in [
        ("an older announcement", &with_maintainer),
        ("no announcement", &without_any),
    ] {
        match reader
            .fetch(relays, &coordinate, "master", FetchOptions::default())
            .await
        {
            Err(agigit::fetch::Error::Hostile(e))
                if matches!(*e, Error::StaleAnnouncement { .. }) => {}
            other => panic!("{what} was accepted: {other:?}"),
        }
    }
    assert_eq!(reader.head()?, Some(tip));
    // The relays that hold the newest still serve.
    reader
        .fetch(&net, &coordinate, "master", FetchOptions::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn relays_cannot_roll_a_clone_back_or_make_a_push_drop_branches() -> TestResult {
    let Pushed {
        keys,
        net,
        code,
        coordinate,
        origin,
        repo,
        ..
    } = Pushed::new("rollback", "v.txt", "1").await?;
    let options = PushOptions::new(&code);
    let old_net = copy_of(&net, |_| true).await?;
    std::fs::write(origin.0.join("v.txt"), "2")?;
    let v2 = repo.commit("v2", keys.public_key().to_bytes())?;
    repo.push(&net, &keys, &coordinate.id, "master", options)
        .await?;
    // The states chain: the second names the first.
    let states: Vec<_> = net.contents("s0").0.into_iter().filter(is_state).collect();
    assert_eq!(states.len(), 2);
    let (first, second) = if states[0].created_at < states[1].created_at {
        (&states[0], &states[1])
    } else {
        (&states[1], &states[0])
    };
    let second = agigit::event::Signed::<agigit::event::RepoState>::from_event(second.clone())?;
    assert_eq!(second.body().prev, Some(first.id));

    // A clone that accepted v2, then relays that only have v1's state (validly signed, older).
    let clone = Dir::new("rollback-clone");
    let reader = Repository::init(&clone.0)?;
    reader
        .pull(&net, &coordinate, "master", FetchOptions::default())
        .await?;
    match reader
        .fetch(&old_net, &coordinate, "master", FetchOptions::default())
        .await
    {
        Err(agigit::fetch::Error::Hostile(e)) if matches!(*e, Error::StaleState { .. }) => {}
        other => panic!("an older state was accepted: {other:?}"),
    }
    assert_eq!(reader.head()?, Some(v2));
    assert_eq!(
        reader.resolve("refs/remotes/origin/master")?,
        v2,
        "the tracking ref did not move back"
    );

    // The owner's own clone: push relays that lost the newest state must not make a push build
    // on the old one (and drop what came since).
    std::fs::write(origin.0.join("v.txt"), "3")?;
    repo.commit("v3", keys.public_key().to_bytes())?;
    match repo
        .push(&old_net, &keys, &coordinate.id, "master", options)
        .await
    {
        Err(agigit::push::Error::Hostile(e)) if matches!(*e, Error::StaleState { .. }) => {}
        other => panic!("pushed on top of an old state: {other:?}"),
    }

    // Fetch relays behind, push relays up to date: the push builds on the newest of them all,
    // so a branch pushed since is kept.
    repo.create_branch("dev", "HEAD")?;
    repo.push(&net, &keys, &coordinate.id, "dev", options)
        .await?;
    let split = Split {
        fetch: copy_of(&net, |e| !is_state(e) || e.created_at <= first.created_at).await?,
        push: net.clone(),
        extra: Vec::new(),
    };
    std::fs::write(origin.0.join("v.txt"), "4")?;
    repo.commit("v4", keys.public_key().to_bytes())?;
    repo.push(&split, &keys, &coordinate.id, "master", options)
        .await?;
    let fresh = Dir::new("rollback-fresh");
    let check = Repository::init(&fresh.0)?;
    check
        .fetch(&net, &coordinate, "dev", FetchOptions::default())
        .await?;
    assert!(
        check.resolve("refs/remotes/origin/dev").is_ok(),
        "dev survived"
    );
    Ok(())
}

#[tokio::test]
async fn fetch_takes_only_the_owners_commits_and_only_reachable_packs() -> TestResult {
    let Pushed {
        keys,
        net,
        code,
        coordinate,
        origin,
        repo,
        tip,
    } = Pushed::new("reach", "a.txt", "master").await?;
    let options = PushOptions::new(&code);
    // Another branch with its own big file: a clone of master must not download it.
    repo.create_branch("big", "HEAD")?;
    repo.checkout("big", false)?;
    std::fs::write(origin.0.join("big.bin"), vec![7u8; 1 << 20])?;
    repo.commit("big", keys.public_key().to_bytes())?;
    repo.push(&net, &keys, &coordinate.id, "big", options)
        .await?;

    // A stranger publishes a commit event for the owner's repository: the same commit, with a
    // pack that exists nowhere.
    let stranger = Keys::generate();
    let mut buf = Vec::new();
    let payload = agigit::dag::FindExt::find(repo.store(), &tip, &mut buf)?
        .data
        .to_vec();
    let forged = agigit::event::CommitEvent {
        repo: coordinate.clone(),
        commit: tip,
        parents: Vec::new(),
        packs: vec![agigit::hash::BlobHash::digest(b"nowhere")],
        pack_parts: BTreeMap::new(),
        encryption: None,
        payload,
    };
    let forged = agigit::event::Signed::sign(
        forged,
        &stranger,
        agigit::event::nostr::prelude::Timestamp::now(),
    )?;
    let lying = Split {
        fetch: net.clone(),
        push: net.clone(),
        extra: vec![forged.event().clone()],
    };
    let clone = Dir::new("reach-clone");
    let reader = Repository::init(&clone.0)?;
    let report = reader
        .pull(&lying, &coordinate, "master", FetchOptions::default())
        .await?;
    assert_eq!(report.tip, Some(tip));
    assert!(!clone.0.join("big.bin").exists());
    // Only master's packs came: as many as its push made, and far fewer bytes than big.bin.
    let main_packs = {
        let events = net.contents("s0").0;
        events
            .iter()
            .filter_map(|e| {
                agigit::event::Signed::<agigit::event::CommitEvent>::from_event(e.clone()).ok()
            })
            .find(|c| c.body().commit == tip)
            .map(|c| c.body().packs.len())
            .ok_or("master's commit event")?
    };
    assert_eq!(report.packs, main_packs);
    assert!(report.bytes < 1 << 20, "{} bytes fetched", report.bytes);
    Ok(())
}

/// The opening of something sealed, with a bare content key: what a removed reader who kept an
/// old key can do with the bytes on the servers.
fn opens_with(key: &agigit::crypt::ContentKey, ad: &[u8], sealed: &[u8]) -> bool {
    use std::io::Read as _;
    let Ok(mut reader) = agigit::crypt::OpeningReader::new(sealed, key, ad) else {
        return false;
    };
    let mut plain = Vec::new();
    reader.read_to_end(&mut plain).is_ok()
}

#[tokio::test]
async fn a_removed_reader_opens_nothing_pushed_after_the_removal() -> TestResult {
    let (owner_dir, kept_dir) = (Dir::new("revoke-owner"), Dir::new("revoke-kept"));
    let (owner, kept, removed) = (Keys::generate(), Keys::generate(), Keys::generate());
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(2, 5)?;
    let id = RepoId::new("revoked")?;
    let coordinate = RepoCoordinate::new(owner.public_key(), id.clone());
    std::fs::write(owner_dir.0.join("notes.txt"), "before the removal")?;
    let repo = Repository::init(&owner_dir.0)?;
    repo.make_private(&secret_of(&owner), &[reader_of(&kept), reader_of(&removed)])?;
    let before = repo.commit("v1", owner.public_key().to_bytes())?;
    let mut keys = repo.private_keys(&secret_of(&owner))?.ok_or("private")?;
    fn options<'a>(code: &'a Leopard, keys: &'a agigit::PrivateKeys) -> PushOptions<'a> {
        PushOptions {
            keys: Some(keys),
            ..PushOptions::new(code)
        }
    }
    repo.push(&net, &owner, &id, "master", options(&code, &keys))
        .await?;
    // What the removed reader holds, and keeps: the epoch-0 keyring, opened.
    let old_ring = agigit::crypt::Keyring::open(
        &keys.envelope_bytes(),
        &agigit::crypt::EcdhWrap,
        &secret_of(&removed),
    )?;
    let old_key = old_ring.current().clone();
    let (events_before, blobs_before) = net.contents("s0");

    assert!(keys.remove_reader(&reader_of(&removed))?);
    assert_eq!(keys.epoch(), 1);
    repo.save_private_keys(&keys)?;
    std::fs::write(owner_dir.0.join("notes.txt"), "after the removal")?;
    let after = repo.commit("v2", owner.public_key().to_bytes())?;
    repo.push(&net, &owner, &id, "master", options(&code, &keys))
        .await?;

    // The removed reader: the repository no longer opens for them.
    let gone = Dir::new("revoke-removed");
    match Repository::init(&gone.0)?
        .pull(
            &net,
            &coordinate,
            "master",
            FetchOptions::with_secret(&secret_of(&removed)),
        )
        .await
    {
        Err(agigit::fetch::Error::NotAReader) => {}
        other => panic!("a removed reader opened the repository: {other:?}"),
    }
    // Nor does anything pushed after the removal open with the key they kept: no commit event,
    // no manifest, no pack. (What was pushed before still does: revocation takes nothing back.)
    let (events, blobs) = net.contents("s0");
    let mut new_commits = 0;
    for event in events.iter().filter(|e| !events_before.contains(e)) {
        let Ok(commit) =
            agigit::event::Signed::<agigit::event::CommitEvent>::from_event(event.clone())
        else {
            continue;
        };
        new_commits += 1;
        let mut ad = b"agigit commit ".to_vec();
        ad.extend_from_slice(commit.body().commit.as_bytes());
        assert!(!opens_with(&old_key, &ad, &commit.body().payload));
    }
    assert_eq!(new_commits, 1);
    let mut new_blobs = 0;
    for (hash, bytes) in blobs
        .iter()
        .filter(|(h, _)| !blobs_before.iter().any(|(b, _)| b == h))
    {
        new_blobs += 1;
        for ad in [&b"agigit manifest"[..], b"agigit pack"] {
            assert!(
                !opens_with(&old_key, ad, bytes),
                "blob {hash} opens with the old key"
            );
        }
    }
    assert!(new_blobs > 0);
    let old_commit = events_before
        .iter()
        .find_map(|e| {
            agigit::event::Signed::<agigit::event::CommitEvent>::from_event(e.clone()).ok()
        })
        .ok_or("the first commit event")?;
    let mut ad = b"agigit commit ".to_vec();
    ad.extend_from_slice(old_commit.body().commit.as_bytes());
    assert!(
        opens_with(&old_key, &ad, &old_commit.body().payload),
        "before the removal: still open"
    );

    // The reader who stayed opens the whole history, both epochs.
    let mine = Repository::init(&kept_dir.0)?;
    let pulled = mine
        .pull(
            &net,
            &coordinate,
            "master",
            FetchOptions::with_secret(&secret_of(&kept)),
        )
        .await?;
    assert_eq!(pulled.tip, Some(after));
    assert_eq!(
        std::fs::read_to_string(kept_dir.0.join("notes.txt"))?,
        "after the removal"
    );
    mine.checkout(&before.to_string(), false)?;
    assert_eq!(
        std::fs::read_to_string(kept_dir.0.join("notes.txt"))?,
        "before the removal"
    );
    Ok(())
}

/// A key wrap of the embedder's own (a hardware-held key, say): here the default wrap with every
/// wrapped key's bytes masked, so an envelope it made opens only through it — and it counts
/// its calls.
#[derive(Default)]
struct MaskedWrap {
    calls: std::sync::atomic::AtomicUsize,
}

impl MaskedWrap {
    fn mask(bytes: &[u8]) -> Vec<u8> {
        bytes.iter().map(|b| b ^ 0x5c).collect()
    }
}

impl agigit::crypt::KeyWrap for MaskedWrap {
    fn scheme(&self) -> u8 {
        agigit::crypt::KeyWrap::scheme(&agigit::crypt::EcdhWrap)
    }
    fn wrapped_len(&self) -> usize {
        agigit::crypt::KeyWrap::wrapped_len(&agigit::crypt::EcdhWrap)
    }
    fn wrap(
        &self,
        key: &agigit::crypt::ContentKey,
        reader: &agigit::crypt::ReaderKey,
    ) -> Result<Vec<u8>, agigit::crypt::CryptError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Self::mask(&agigit::crypt::EcdhWrap.wrap(key, reader)?))
    }
    fn unwrap(
        &self,
        wrapped: &[u8],
        secret: &agigit::crypt::ReaderSecret,
    ) -> Result<agigit::crypt::ContentKey, agigit::crypt::CryptError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        agigit::crypt::EcdhWrap.unwrap(&Self::mask(wrapped), secret)
    }
    fn check(&self, _wrapped: &[u8]) -> Result<(), agigit::crypt::CryptError> {
        Ok(())
    }
}

/// A private repository of one file (`notes.txt` holding `text`) for one reader: `keys` makes
/// it private and gives the keys to push with; it is pushed, pulled by the reader with
/// `options` (the reader's secret added) — the file checked out — and pulled without them:
/// refused, nothing checked out.
async fn private_only_with(
    name: &str,
    text: &str,
    keys: impl FnOnce(
        &Repository,
        &agigit::crypt::ReaderSecret,
        &agigit::crypt::ReaderKey,
    ) -> Result<agigit::PrivateKeys, Box<dyn std::error::Error>>,
    options: FetchOptions<'_>,
) -> TestResult {
    let (owner_dir, reader_dir, plain_dir) = (
        Dir::new(&format!("{name}-owner")),
        Dir::new(&format!("{name}-reader")),
        Dir::new(&format!("{name}-plain")),
    );
    let (owner, reader) = (Keys::generate(), Keys::generate());
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(2, 5)?;
    let id = RepoId::new(name)?;
    std::fs::write(owner_dir.0.join("notes.txt"), text)?;
    let repo = Repository::init(&owner_dir.0)?;
    let keys = keys(&repo, &secret_of(&owner), &reader_of(&reader))?;
    repo.commit("v1", owner.public_key().to_bytes())?;
    repo.remote(&net, &owner)
        .push(
            &id,
            "master",
            PushOptions {
                keys: Some(&keys),
                ..PushOptions::new(&code)
            },
        )
        .await?;
    let coordinate = RepoCoordinate::new(owner.public_key(), id);
    let secret = secret_of(&reader);
    Repository::init(&reader_dir.0)?
        .remote(&net, &reader)
        .pull(
            &coordinate,
            "master",
            FetchOptions {
                secret: Some(&secret),
                ..options
            },
        )
        .await?;
    assert_eq!(
        std::fs::read_to_string(reader_dir.0.join("notes.txt"))?,
        text
    );
    let refused = Repository::init(&plain_dir.0)?
        .remote(&net, &reader)
        .pull(&coordinate, "master", FetchOptions::with_secret(&secret))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(!plain_dir.0.join("notes.txt").exists());
    Ok(())
}

#[tokio::test]
async fn the_key_wrap_is_the_callers_from_make_private_to_pull() -> TestResult {
    let wrap = Arc::new(MaskedWrap::default());
    let dyn_wrap: Arc<dyn agigit::crypt::KeyWrap> = wrap.clone();
    // Without the wrap, the reader's own key opens nothing (the default wrap reads the masked
    // envelope as malformed).
    private_only_with(
        "own-wrap",
        "sealed with my own wrap",
        |repo, owner, reader| {
            repo.make_private_with(Arc::clone(&dyn_wrap), owner, std::slice::from_ref(reader))?;
            // The keys open only through the same wrap.
            assert!(repo.private_keys(owner).is_err());
            Ok(repo
                .private_keys_with(Arc::clone(&dyn_wrap), owner)?
                .ok_or("private")?)
        },
        FetchOptions {
            key_wrap: Some(&dyn_wrap),
            ..FetchOptions::default()
        },
    )
    .await?;
    // Used to wrap for the owner and the reader, and to unwrap on both sides.
    assert!(wrap.calls.load(std::sync::atomic::Ordering::SeqCst) >= 4);
    Ok(())
}

/// A segment cipher of the caller's own: AES-256-GCM keyed under other associated data, in
/// 4 KiB segments, counting the objects it keys.
#[derive(Default)]
struct RelabelledCipher {
    keyed: std::sync::atomic::AtomicUsize,
}

impl RelabelledCipher {
    fn inner() -> agigit::crypt::AesGcmStream {
        agigit::crypt::AesGcmStream::new(4096).expect("segment size")
    }
}

impl agigit::crypt::SegmentCipher for RelabelledCipher {
    fn seal(
        &self,
        key: &agigit::crypt::ContentKey,
        ad: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, agigit::crypt::CryptError> {
        let mut w = agigit::crypt::SealingWriter::new(Vec::new(), key, ad, self)
            .map_err(|_| agigit::crypt::CryptError::Open)?;
        std::io::Write::write_all(&mut w, plain).map_err(|_| agigit::crypt::CryptError::Open)?;
        w.finish().map_err(|_| agigit::crypt::CryptError::Open)
    }
    fn open(
        &self,
        key: &agigit::crypt::ContentKey,
        ad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, agigit::crypt::CryptError> {
        let mut out = Vec::new();
        agigit::crypt::OpeningReader::with_cipher(sealed, key, ad, self)
            .and_then(|mut r| std::io::Read::read_to_end(&mut r, &mut out))
            .map_err(|_| agigit::crypt::CryptError::Open)?;
        Ok(out)
    }
    fn sealed_len(&self, plaintext_len: u64) -> u64 {
        agigit::crypt::SegmentCipher::sealed_len(&Self::inner(), plaintext_len)
    }
    fn stream_segment_size(&self) -> usize {
        4096
    }
    fn keyed(
        &self,
        key: &agigit::crypt::ContentKey,
        ad: &[u8],
        material: &agigit::crypt::NonceMaterial,
    ) -> Box<dyn agigit::crypt::SegmentAead> {
        self.keyed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let relabelled = [b"relabelled ".as_slice(), ad].concat();
        agigit::crypt::SegmentCipher::keyed(&Self::inner(), key, &relabelled, material)
    }
}

#[tokio::test]
async fn the_segment_cipher_is_the_callers_from_push_to_pull() -> TestResult {
    let cipher = Arc::new(RelabelledCipher::default());
    let dyn_cipher: Arc<dyn agigit::crypt::SegmentCipher> = cipher.clone();
    // Without the cipher, a reader with the right key opens no commit.
    private_only_with(
        "own-cipher",
        "sealed with my own cipher",
        |repo, owner, reader| {
            repo.make_private(owner, std::slice::from_ref(reader))?;
            Ok(repo
                .private_keys(owner)?
                .ok_or("private")?
                .with_cipher(Arc::clone(&dyn_cipher)))
        },
        FetchOptions {
            cipher: Some(&dyn_cipher),
            ..FetchOptions::default()
        },
    )
    .await?;
    // Packs, manifests and the commit, sealed and opened.
    assert!(cipher.keyed.load(std::sync::atomic::Ordering::SeqCst) >= 6);
    Ok(())
}

/// The same servers as another transport, listed for fetching in another order (a clone made
/// from other relays), counting the blob downloads asked of them.
#[derive(Debug)]
struct Listed {
    inner: MemoryTransport,
    fetch: Vec<String>,
    gets: std::sync::atomic::AtomicUsize,
}

impl Transport for Listed {
    fn publish<'a>(
        &'a self,
        event: &'a agigit::event::nostr::prelude::Event,
        min_accepted: usize,
    ) -> agigit::net::BoxFuture<'a, Result<agigit::net::PublishReport, agigit::net::NetError>> {
        self.inner.publish(event, min_accepted)
    }
    fn query<'a>(
        &'a self,
        filters: &'a [agigit::event::nostr::prelude::Filter],
    ) -> agigit::net::BoxFuture<
        'a,
        Result<Vec<agigit::event::nostr::prelude::Event>, agigit::net::NetError>,
    > {
        self.inner.query(filters)
    }
    fn push_servers(&self) -> Vec<String> {
        self.inner.push_servers()
    }
    fn fetch_servers(&self) -> Vec<String> {
        self.fetch.clone()
    }
    fn put_blob<'a>(
        &'a self,
        server: &'a str,
        data: Bytes,
    ) -> agigit::net::BoxFuture<'a, Result<agigit::hash::BlobHash, agigit::net::NetError>> {
        self.inner.put_blob(server, data)
    }
    fn has_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a agigit::hash::BlobHash,
    ) -> agigit::net::BoxFuture<'a, Result<bool, agigit::net::NetError>> {
        self.inner.has_blob(server, hash)
    }
    fn get_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a agigit::hash::BlobHash,
        max_len: u64,
    ) -> agigit::net::BoxFuture<'a, Result<Bytes, agigit::net::NetError>> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.get_blob(server, hash, max_len)
    }
}

#[tokio::test]
async fn a_clone_listing_other_servers_learns_where_the_shards_are() -> TestResult {
    let (origin, clone) = (
        Dir::new("remote-locate-origin"),
        Dir::new("remote-locate-clone"),
    );
    write_files(&origin.0, 1)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("first", keys.public_key().to_bytes())?;
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(4, 10)?;
    // Small segments: the weights make dozens of them.
    let options = PushOptions {
        segment_size: 8 << 10,
        ..PushOptions::new(&code)
    };
    let id = RepoId::new("located")?;
    repo.push(&net, &keys, &id, "master", options).await?;
    // The reader knows three of the five servers, in another order: s1 and s3 are down for
    // it, and its own placement is not the pusher's.
    let view = Listed {
        inner: net.clone(),
        fetch: ["s4", "s2", "s0"].map(String::from).to_vec(),
        gets: std::sync::atomic::AtomicUsize::new(0),
    };
    let reader = Repository::init(&clone.0)?;
    let pulled = reader
        .pull(
            &view,
            &RepoCoordinate::new(keys.public_key(), id),
            "master",
            FetchOptions::default(),
        )
        .await?;
    assert_eq!(tree_bytes(&clone.0), tree_bytes(&origin.0));
    let gets = view.gets.load(std::sync::atomic::Ordering::Relaxed);
    // Every shard received cost one download once the pusher's placement was learned: the
    // few extra are the first segments', and the manifests'.
    assert!(pulled.shards >= 4 * 30, "{} shards", pulled.shards);
    let wasted = gets - pulled.shards - pulled.packs;
    assert!(
        wasted * 10 < pulled.shards,
        "{gets} downloads asked for {} shards of {} packs",
        pulled.shards,
        pulled.packs
    );
    Ok(())
}

/// A private repository's branch and tag names travel sealed in its state: a reader lists the
/// branches and the default one, fetches them all and gets the tags with their messages; the
/// relays see none of the names, and a stranger lists nothing.
#[tokio::test]
async fn a_private_repositorys_branches_and_tags_reach_its_readers_only() -> TestResult {
    let (owner_dir, reader_dir) = (
        Dir::new("sealed-refs-owner"),
        Dir::new("sealed-refs-reader"),
    );
    let (owner, reader, stranger) = (Keys::generate(), Keys::generate(), Keys::generate());
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(2, 5)?;
    let id = RepoId::new("sealed-refs")?;
    std::fs::write(owner_dir.0.join("notes.txt"), "v1")?;
    let repo = Repository::init(&owner_dir.0)?;
    repo.make_private(&secret_of(&owner), &[reader_of(&reader)])?;
    let keys = repo.private_keys(&secret_of(&owner))?.ok_or("private")?;
    let first = repo.commit("v1", owner.public_key().to_bytes())?;
    let note = "zanzibar release: the first weights";
    repo.create_tag("rel-zanzibar", "HEAD", Some(note), false)?;
    repo.create_branch("exp-quokka", "HEAD")?;
    repo.checkout("exp-quokka", false)?;
    std::fs::write(owner_dir.0.join("notes.txt"), "experiment")?;
    let exp = repo.commit("experiment", owner.public_key().to_bytes())?;
    repo.create_tag("light-wombat", "HEAD", None, false)?;
    let remote = repo.remote(&net, &owner);
    let options = PushOptions {
        keys: Some(&keys),
        ..PushOptions::new(&code)
    };
    let pushed = remote.push(&id, "master", options).await?;
    assert_eq!(pushed.tags, vec!["rel-zanzibar".to_owned()]);
    let pushed = remote.push(&id, "exp-quokka", options).await?;
    assert_eq!(pushed.tags, vec!["light-wombat".to_owned()]);

    // No name, tag message or commit id in the clear on any server.
    for server in SERVERS {
        let (events, _) = net.contents(server);
        for event in &events {
            let json = format!("{:?} {}", event.tags, event.content);
            for secret in [
                "zanzibar",
                "wombat",
                "quokka",
                "refs/tags",
                &first.to_string(),
                &exp.to_string(),
            ] {
                assert!(!json.contains(secret), "{secret} on {server}: {json}");
            }
        }
    }

    let coordinate = RepoCoordinate::new(owner.public_key(), id);
    let mine = Repository::init(&reader_dir.0)?;
    let secret = secret_of(&reader);
    let with_secret = FetchOptions::with_secret(&secret);
    let refs = mine
        .remote_refs_with(&net, &coordinate, &with_secret)
        .await?;
    assert_eq!(refs.head.as_deref(), Some("master"));
    assert_eq!(
        refs.branches,
        BTreeMap::from([("exp-quokka".to_owned(), exp), ("master".to_owned(), first)])
    );
    // Without a secret, or with a stranger's, nothing is listed.
    assert_eq!(
        mine.remote_refs(&net, &coordinate).await?,
        agigit::RemoteRefs::default()
    );
    let stranger_secret = secret_of(&stranger);
    assert!(matches!(
        mine.remote_refs_with(
            &net,
            &coordinate,
            &FetchOptions::with_secret(&stranger_secret)
        )
        .await,
        Err(agigit::fetch::Error::NotAReader)
    ));

    // The reader's fetch takes every branch (not only those it has) and both tags.
    let fetched = mine.fetch_all(&net, &coordinate, with_secret).await?;
    assert_eq!(
        fetched.keys().collect::<Vec<_>>(),
        vec!["exp-quokka", "master"]
    );
    let tags = mine.tags()?;
    let rel = tags.get("rel-zanzibar").ok_or("no rel-zanzibar")?;
    assert_eq!((rel.commit, rel.message.as_deref()), (first, Some(note)));
    let light = tags.get("light-wombat").ok_or("no light-wombat")?;
    assert_eq!((light.commit, light.message.as_deref()), (exp, None));
    Ok(())
}
