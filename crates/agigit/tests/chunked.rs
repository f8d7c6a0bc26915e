//! Datasets at scale: a large data file is stored as content-defined chunks, so that a new
//! version with rows appended, edited and deleted stores and sends only the chunks around the
//! edits; status, checkout and clone stream it back bit for bit.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::Path;

use agigit::dag::{EntryMode, FindExt as _, Kind};
use agigit::event::RepoId;
use agigit::event::nostr::prelude::Keys;
use agigit::net::{MemoryTransport, Transport as _};
use agigit::shard::Leopard;
use agigit::{Change, FetchOptions, PushOptions, Repository};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::Dir;

const SERVERS: [&str; 3] = ["s0", "s1", "s2"];
const ROWS: usize = 80_000;

/// JSONL rows, ~105 bytes each.
fn row(i: usize, tag: &str) -> String {
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{{\"id\":{i},\"tag\":\"{tag}\",\"h\":\"{h:016x}\",\"text\":\"{}\"}}\n",
        "lorem ipsum ".repeat((h % 7) as usize + 1)
    )
}

fn dataset(rows: impl Iterator<Item = String>) -> Vec<u8> {
    rows.flat_map(String::into_bytes).collect()
}

/// The second version: 1% of rows edited in one block, 1% deleted in another, 1% appended.
fn second_version() -> Vec<u8> {
    let edit = ROWS / 4..ROWS / 4 + ROWS / 100;
    let delete = ROWS / 2..ROWS / 2 + ROWS / 100;
    dataset(
        (0..ROWS + ROWS / 100)
            .filter(|i| !delete.contains(i))
            .map(|i| row(i, if edit.contains(&i) { "edited" } else { "v1" })),
    )
}

/// The mode of the data file in `commit`'s tree.
fn data_mode(repo: &Repository, commit: &agigit::dag::ObjectId) -> EntryMode {
    let store = repo.store();
    let model = store.find_commit(commit).expect("commit").tree;
    let parts = agigit::dag::ModelParts::read(store, &model).expect("parts");
    let train = agigit::dag::Part::Train.get(&parts).expect("train part");
    store
        .find_tree(&train)
        .expect("tree")
        .get("rows.jsonl")
        .expect("entry")
        .mode
}

#[tokio::test]
async fn a_new_dataset_version_stores_and_sends_only_the_chunks_it_changed() -> TestResult {
    let origin = Dir::new("chunked-origin");
    let path = origin.0.join("data/train/rows.jsonl");
    std::fs::create_dir_all(path.parent().expect("parent"))?;
    let first = dataset((0..ROWS).map(|i| row(i, "v1")));
    std::fs::write(&path, &first)?;
    std::fs::write(origin.0.join("train.py"), "print('hi')\n")?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    let one = repo.commit("rows", keys.public_key().to_bytes())?;
    assert_eq!(data_mode(&repo, &one), EntryMode::Chunked);
    assert!(repo.status()?.is_empty(), "a chunked file reads as clean");

    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(2, 3)?;
    let id = RepoId::new("chunked")?;
    let opts = PushOptions::new(&code);
    let pushed = repo.push(&net, &keys, &id, "master", opts).await?;
    // Every pack's manifest carries the pack's index: where each of its objects is.
    for pack in &pushed.packs {
        let stored = net.get_blob("s0", &pack.manifest, 64 << 20).await?;
        let manifest = agigit::shard::ShardManifest::decode(&stored)?;
        let index = agigit::dag::pack::PackIndex::decode(
            manifest.annex().ok_or("a manifest without an index")?,
            agigit::dag::Limits::default(),
        )?;
        assert_eq!(index.pack_len(), manifest.total_len());
        for entry in index.entries() {
            assert_eq!(
                repo.store().header_of(&entry.id)?,
                Some((entry.kind, entry.len))
            );
        }
    }

    // A byte changed in place (same length): modified.
    let mut flipped = first.clone();
    flipped[first.len() / 3] ^= 1;
    std::fs::write(&path, &flipped)?;
    assert_eq!(
        repo.status()?.get("data/train/rows.jsonl"),
        Some(&Change::Modified)
    );

    let second = second_version();
    std::fs::write(&path, &second)?;
    let objects_before = count_objects(&origin.0.join(".agigit/objects"));
    let two = repo.commit("edit, delete, append", keys.public_key().to_bytes())?;
    let new_bytes = count_objects(&origin.0.join(".agigit/objects")).1 - objects_before.1;
    let again = repo.push(&net, &keys, &id, "master", opts).await?;
    let share = |n: u64| n as f64 / second.len() as f64;
    eprintln!(
        "dataset {} bytes; first push {} pack bytes; second version stores {new_bytes} new bytes ({:.1}%), pushes {} pack bytes ({:.1}%)",
        second.len(),
        pushed.pack_bytes,
        100.0 * share(new_bytes),
        again.pack_bytes,
        100.0 * share(again.pack_bytes),
    );
    // Each edit moves at most the chunks on either side of it (~3 × 64 KiB on average, 256
    // KiB at most): three edits on a ~8 MB file stay well under a fifth of it. (The 1 GB bench
    // states the ≤ 5% goal, where chunk sizes are small against the file.)
    assert!(share(new_bytes) < 0.2, "stored {new_bytes}");
    assert!(share(again.pack_bytes) < 0.2, "pushed {}", again.pack_bytes);
    assert!(pushed.pack_bytes as f64 > 0.9 * first.len() as f64);

    // A clone streams it back bit for bit; a checkout of the first version too.
    let reader_dir = Dir::new("chunked-reader");
    let reader = Repository::init(&reader_dir.0)?;
    let coordinate = agigit::event::RepoCoordinate::new(keys.public_key(), id);
    reader
        .pull(&net, &coordinate, "master", FetchOptions::default())
        .await?;
    assert_eq!(
        std::fs::read(reader_dir.0.join("data/train/rows.jsonl"))?,
        second
    );
    assert!(reader.status()?.is_empty());
    reader.checkout(&one.to_string(), false)?;
    assert_eq!(
        std::fs::read(reader_dir.0.join("data/train/rows.jsonl"))?,
        first
    );
    reader.checkout(&two.to_string(), false)?;
    assert_eq!(
        std::fs::read(reader_dir.0.join("data/train/rows.jsonl"))?,
        second
    );
    Ok(())
}

#[test]
fn small_files_stay_blobs_and_a_shrunk_file_is_modified() -> TestResult {
    let dir = Dir::new("chunked-small");
    let path = dir.0.join("data/train/rows.jsonl");
    std::fs::create_dir_all(path.parent().expect("parent"))?;
    let big = dataset((0..20_000).map(|i| row(i, "v1")));
    assert!(big.len() as u64 > agigit::worktree::CHUNKED_ABOVE);
    std::fs::write(&path, &big)?;
    let keys = Keys::generate();
    let repo = Repository::init(&dir.0)?;
    let one = repo.commit("big", keys.public_key().to_bytes())?;
    assert_eq!(data_mode(&repo, &one), EntryMode::Chunked);
    // Cut to below the threshold: modified, and committed as a plain blob.
    std::fs::write(&path, &big[..1000])?;
    assert_eq!(
        repo.status()?.get("data/train/rows.jsonl"),
        Some(&Change::Modified)
    );
    let two = repo.commit("small", keys.public_key().to_bytes())?;
    assert_eq!(data_mode(&repo, &two), EntryMode::File);
    // Back to the first version through a checkout: the big file comes back whole.
    repo.checkout(&one.to_string(), false)?;
    assert_eq!(std::fs::read(&path)?, big);
    assert!(repo.status()?.is_empty());
    // An empty store object of the right kind for the list.
    assert!(matches!(
        repo.store().header_of(
            &repo
                .store()
                .find_tree(
                    &agigit::dag::Part::Train
                        .get(&agigit::dag::ModelParts::read(
                            repo.store(),
                            &repo.store().find_commit(&one)?.tree
                        )?)
                        .expect("train")
                )?
                .get("rows.jsonl")
                .expect("entry")
                .id
        )?,
        Some((Kind::Chunks, _))
    ));
    Ok(())
}

/// Objects in a store directory: (count, bytes on disk).
fn count_objects(dir: &Path) -> (usize, u64) {
    let mut out = (0, 0);
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let e = e.expect("entry");
            let meta = e.metadata().expect("meta");
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                out.0 += 1;
                out.1 += meta.len();
            }
        }
    }
    out
}
