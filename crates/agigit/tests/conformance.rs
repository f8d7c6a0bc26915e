//! The facade's own conformance: one scenario of commit, status, branch, checkout, merge (fast
//! forward, tensor-wise three-way, conflict), push and pull, run on a repository whose objects
//! are on disk (`FsStore`) and on one whose objects are in memory (`MemoryStore`), each pushing
//! to and pulling from the other kind — any object store behaves the same behind `Repository`.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::Path;
use std::sync::Arc;

use agigit::config::PushConfig;
use agigit::dag::MemoryStore;
use agigit::event::nostr::prelude::Keys;
use agigit::event::{RepoCoordinate, RepoId};
use agigit::net::MemoryTransport;
use agigit::{Change, Error, ErrorKind, FetchOptions, MergeStrategy, PushOptions, Repository};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{Dir, read_model, write_model};

/// How a repository's objects are kept.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Disk,
    Memory,
}

fn init(kind: Kind, dir: &Path) -> Result<Repository, Error> {
    match kind {
        Kind::Disk => Repository::init(dir),
        Kind::Memory => Repository::init_with_store(dir, Arc::new(MemoryStore::new())),
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    agigit::worktree::list_files(dir)
        .expect("list")
        .into_iter()
        .map(|f| {
            let b = std::fs::read(dir.join(&f)).expect("read");
            (f, b)
        })
        .collect()
}

/// Commit, status, branches, checkout and merges on one repository.
fn local_history(
    kind: Kind,
    dir: &Path,
    me: [u8; 32],
) -> Result<Repository, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir.join("data/train"))?;
    std::fs::write(dir.join("config.json"), b"{\"layers\": 2}")?;
    std::fs::write(dir.join("data/train/a.txt"), b"training text")?;
    write_model(dir, [1.0, 2.0, 3.0])?;
    let repo = init(kind, dir)?;
    assert_eq!(repo.status()?.len(), 3, "three new files");
    let first = repo.commit("first", me)?;
    assert!(repo.status()?.is_empty());
    assert!(matches!(repo.commit("again", me), Err(e) if e.kind() == ErrorKind::NothingToCommit));

    // A branch with a change; checkout there and back restores each side's files.
    repo.create_branch("dev", "HEAD")?;
    repo.checkout("dev", false)?;
    std::fs::write(dir.join("config.json"), b"{\"layers\": 3}")?;
    assert_eq!(repo.status()?.get("config.json"), Some(&Change::Modified));
    let dev = repo.commit("three layers", me)?;
    repo.checkout("master", false)?;
    assert_eq!(std::fs::read(dir.join("config.json"))?, b"{\"layers\": 2}");
    // Fast-forward.
    let ff = repo.merge("dev", None, me, false)?;
    assert!(ff.fast_forward);
    assert_eq!(repo.head()?, Some(dev));
    assert_eq!(std::fs::read(dir.join("config.json"))?, b"{\"layers\": 3}");

    // A three-way merge, tensor by tensor: each side changed another tensor.
    repo.create_branch("side", "HEAD")?;
    write_model(dir, [5.0, 2.0, 3.0])?;
    repo.commit("a = 5", me)?;
    repo.checkout("side", false)?;
    write_model(dir, [1.0, 7.0, 3.0])?;
    repo.commit("b = 7", me)?;
    repo.checkout("master", false)?;
    let merged = repo.merge("side", None, me, false)?;
    assert!(!merged.fast_forward && merged.commit.is_some());
    assert_eq!(read_model(dir)?, [5.0, 7.0, 3.0]);
    let log = repo.log("HEAD", 100)?;
    assert_eq!(log[0].1.parents.len(), 2, "a merge commit");
    assert!(log.iter().any(|(id, _)| *id == first));

    // Both sides change one tensor: a conflict changes nothing, a strategy settles it.
    repo.create_branch("other", "HEAD")?;
    write_model(dir, [6.0, 7.0, 3.0])?;
    repo.commit("a = 6", me)?;
    repo.checkout("other", false)?;
    write_model(dir, [8.0, 7.0, 3.0])?;
    repo.commit("a = 8", me)?;
    repo.checkout("master", false)?;
    let head = repo.head()?;
    let conflict = repo
        .merge("other", None, me, false)
        .expect_err("a conflict");
    assert_eq!(conflict.kind(), ErrorKind::WouldLoseWork);
    assert_eq!(repo.head()?, head);
    assert_eq!(read_model(dir)?, [6.0, 7.0, 3.0]);
    repo.merge("other", Some(MergeStrategy::average()), me, false)?;
    assert_eq!(read_model(dir)?, [7.0, 7.0, 3.0]);

    // Local work is never overwritten without --force (a file both branches have alike keeps
    // its local change, as in git).
    std::fs::write(dir.join("config.json"), b"local edit")?;
    write_model(dir, [0.5, 0.5, 3.0])?;
    let refused = repo.checkout("dev", false).expect_err("local changes");
    assert_eq!(refused.kind(), ErrorKind::WouldLoseWork);
    assert_eq!(read_model(dir)?, [0.5, 0.5, 3.0]);
    repo.checkout("master", true)?;
    assert_eq!(read_model(dir)?, [7.0, 7.0, 3.0]);
    assert_eq!(std::fs::read(dir.join("config.json"))?, b"{\"layers\": 3}");
    assert!(repo.status()?.is_empty());
    Ok(repo)
}

async fn run(origin_kind: Kind, clone_kind: Kind) -> TestResult {
    let tag = format!("{origin_kind:?}-{clone_kind:?}").to_lowercase();
    let (origin, clone) = (
        Dir::new(&format!("conf-origin-{tag}")),
        Dir::new(&format!("conf-clone-{tag}")),
    );
    let keys = Keys::generate();
    let me = keys.public_key().to_bytes();
    let repo = local_history(origin_kind, &origin.0, me)?;

    // Push through the remote handle, pull into a repository of the other kind.
    let net = MemoryTransport::new(["s0", "s1", "s2", "s3", "s4"]);
    let code = PushConfig::default().code()?;
    let options = PushOptions {
        segment_size: 64 << 10,
        ..PushOptions::new(&code)
    };
    let id = RepoId::new("conformance")?;
    let pushed = repo
        .remote(&net, &keys)
        .push(&id, "master", options)
        .await?;
    assert!(pushed.objects > 0 && !pushed.up_to_date);
    let coordinate = RepoCoordinate::new(keys.public_key(), id.clone());
    let reader = init(clone_kind, &clone.0)?;
    let pulled = reader
        .remote(&net, &keys)
        .pull(&coordinate, "master", FetchOptions::default())
        .await?;
    assert_eq!(pulled.tip, repo.head()?);
    assert_eq!(files(&clone.0), files(&origin.0));
    assert!(reader.status()?.is_empty());
    assert_eq!(reader.log("HEAD", 100)?.len(), repo.log("HEAD", 100)?.len());

    // A commit on the clone comes back to the origin by the same road.
    write_model(&clone.0, [9.0, 7.0, 3.0])?;
    reader.commit("a = 9", me)?;
    reader
        .remote(&net, &keys)
        .push(&id, "master", options)
        .await?;
    repo.remote(&net, &keys)
        .pull(&coordinate, "master", FetchOptions::default())
        .await?;
    assert_eq!(read_model(&origin.0)?, [9.0, 7.0, 3.0]);
    assert_eq!(files(&clone.0), files(&origin.0));
    Ok(())
}

#[tokio::test]
async fn on_disk() -> TestResult {
    run(Kind::Disk, Kind::Disk).await
}

#[tokio::test]
async fn in_memory() -> TestResult {
    run(Kind::Memory, Kind::Memory).await
}

#[tokio::test]
async fn from_memory_to_disk_and_back() -> TestResult {
    run(Kind::Memory, Kind::Disk).await
}
