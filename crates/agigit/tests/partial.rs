//! Partial pull: one tensor, or one file, of a remote branch, fetched by the pack indexes the
//! manifests carry — only the segments holding it (and the trees above it) are downloaded.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::collections::BTreeMap;

use agigit::delta::{DType, SafetensorsFile, save_safetensors, synth};
use agigit::event::nostr::prelude::Keys;
use agigit::event::{RepoCoordinate, RepoId};
use agigit::net::MemoryTransport;
use agigit::shard::Leopard;
use agigit::{ErrorKind, FetchOptions, PartialWant, PushOptions, Repository};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::Dir;

const SERVERS: [&str; 3] = ["s0", "s1", "s2"];
const MB: usize = 1 << 20;

/// A model of one 48 MiB tensor and one 1 MiB tensor (F32), `version` perturbing the small one.
fn write_model(dir: &std::path::Path, version: u64) -> TestResult {
    std::fs::create_dir_all(dir)?;
    let big = synth::tensor(DType::F32, &[12 * MB], &synth::gaussian(1, 12 * MB, 0.02));
    let small_values = synth::gaussian(2 + version, MB / 4, 0.02);
    let small = synth::tensor(DType::F32, &[MB / 4], &small_values);
    save_safetensors(
        dir.join("model.safetensors"),
        [("big", big.view()), ("small", small.view())],
        &BTreeMap::new(),
    )?;
    std::fs::create_dir_all(dir.join("data/validation"))?;
    std::fs::write(
        dir.join("data/validation/eval.csv"),
        format!("x,y\n{version},1\n"),
    )?;
    std::fs::write(dir.join("train.py"), "print('train')\n")?;
    Ok(())
}

#[tokio::test]
async fn one_tensor_of_a_large_pack_downloads_little_more_than_itself() -> TestResult {
    let origin = Dir::new("partial-origin");
    write_model(&origin.0, 0)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("model", keys.public_key().to_bytes())?;
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(2, 3)?;
    let id = RepoId::new("partial")?;
    let pushed = repo
        .push(&net, &keys, &id, "master", PushOptions::new(&code))
        .await?;
    let coordinate = RepoCoordinate::new(keys.public_key(), id.clone());

    // One tensor into a fresh directory: a safetensors file of it alone.
    let reader_dir = Dir::new("partial-reader");
    let reader = Repository::init(&reader_dir.0)?;
    let want = PartialWant::Tensor {
        file: "model.safetensors".into(),
        name: "small".into(),
    };
    let report = reader
        .pull_path(&net, &coordinate, "master", &want, FetchOptions::default())
        .await?;
    eprintln!(
        "one 1 MiB tensor: {} bytes downloaded ({} segments, {} objects) of packs of {} bytes; the whole push was {} pack bytes",
        report.bytes, report.segments, report.objects, report.packs_bytes, pushed.pack_bytes
    );
    // The tensor's bytes and a header naming it.
    assert!(
        report.file_bytes > MB as u64 && report.file_bytes < MB as u64 + 256,
        "{report:?}"
    );
    let one = SafetensorsFile::open(reader_dir.0.join("model.safetensors"))?;
    let original = SafetensorsFile::open(origin.0.join("model.safetensors"))?;
    assert_eq!(one.len(), 1);
    assert_eq!(
        one.tensor("small").expect("small").data(),
        original.tensor("small").expect("small").data()
    );
    // The tensor, its blobs and the trees above it: a few segments, not the 49 MiB pack.
    assert!(report.packs_bytes > 48 * MB as u64, "{report:?}");
    assert!(
        report.bytes < 6 * MB as u64,
        "downloaded {} for a 1 MiB tensor",
        report.bytes
    );
    assert!(reader.head()?.is_none(), "no branch moved");

    // A whole file of another part: only its own objects.
    let csv = PartialWant::File("data/validation/eval.csv".into());
    let report = reader
        .pull_path(&net, &coordinate, "master", &csv, FetchOptions::default())
        .await?;
    assert_eq!(
        std::fs::read(reader_dir.0.join("data/validation/eval.csv"))?,
        b"x,y\n0,1\n"
    );
    assert!(report.bytes < 2 * MB as u64, "{report:?}");

    // An untracked file in the way is kept unless forced.
    std::fs::write(reader_dir.0.join("train.py"), "mine\n")?;
    let err = reader
        .pull_path(
            &net,
            &coordinate,
            "master",
            &PartialWant::File("train.py".into()),
            FetchOptions::default(),
        )
        .await
        .expect_err("an untracked file is in the way");
    assert_eq!(err.kind(), ErrorKind::WouldLoseWork, "{err}");
    assert_eq!(std::fs::read(reader_dir.0.join("train.py"))?, b"mine\n");
    let forced = FetchOptions {
        force: true,
        ..FetchOptions::default()
    };
    reader
        .pull_path(
            &net,
            &coordinate,
            "master",
            &PartialWant::File("train.py".into()),
            forced,
        )
        .await?;
    assert_eq!(
        std::fs::read(reader_dir.0.join("train.py"))?,
        b"print('train')\n"
    );

    // A path the branch does not have.
    let err = reader
        .pull_path(
            &net,
            &coordinate,
            "master",
            &PartialWant::File("nope.txt".into()),
            FetchOptions::default(),
        )
        .await
        .expect_err("no such file");
    assert!(err.to_string().contains("nope.txt"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_tensor_pulled_into_a_clone_replaces_only_its_bytes() -> TestResult {
    let origin = Dir::new("partial-update-origin");
    write_model(&origin.0, 0)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    repo.commit("v0", keys.public_key().to_bytes())?;
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(2, 3)?;
    let id = RepoId::new("partial-update")?;
    repo.push(&net, &keys, &id, "master", PushOptions::new(&code))
        .await?;
    let coordinate = RepoCoordinate::new(keys.public_key(), id.clone());
    let clone_dir = Dir::new("partial-update-clone");
    let clone = Repository::init(&clone_dir.0)?;
    clone
        .pull(&net, &coordinate, "master", FetchOptions::default())
        .await?;

    // The owner changes the small tensor; the clone takes just that tensor.
    write_model(&origin.0, 1)?;
    repo.commit("v1", keys.public_key().to_bytes())?;
    repo.push(&net, &keys, &id, "master", PushOptions::new(&code))
        .await?;
    let want = PartialWant::Tensor {
        file: "model.safetensors".into(),
        name: "small".into(),
    };
    // The file is tracked and unchanged here: the tensor goes into it, in place.
    let report = clone
        .pull_path(&net, &coordinate, "master", &want, FetchOptions::default())
        .await?;
    assert_eq!(
        std::fs::read(clone_dir.0.join("model.safetensors"))?,
        std::fs::read(origin.0.join("model.safetensors"))?
    );
    assert!(report.bytes < 6 * MB as u64, "{report:?}");
    Ok(())
}

/// A private repository: the tensor comes out of the sealed pack by its sealed segments (and the
/// pack's header), each authenticated on its own; a key that is not a reader's gets nothing.
#[tokio::test]
async fn one_tensor_of_a_private_pack_opens_by_its_sealed_segments() -> TestResult {
    let origin = Dir::new("partial-private");
    write_model(&origin.0, 0)?;
    let keys = Keys::generate();
    let repo = Repository::init(&origin.0)?;
    let secret = agigit::private::reader_secret(&keys)?;
    repo.make_private(&secret, &[])?;
    repo.commit("one", keys.public_key().to_bytes())?;
    let net = MemoryTransport::new(SERVERS);
    let code = Leopard::new(2, 3)?;
    let id = RepoId::new("partial-private")?;
    let sealing = repo.private_keys(&secret)?;
    let opts = PushOptions {
        keys: sealing.as_ref(),
        ..PushOptions::new(&code)
    };
    let pushed = repo.push(&net, &keys, &id, "master", opts).await?;
    assert!(pushed.private);
    let coordinate = RepoCoordinate::new(keys.public_key(), id);
    let want = PartialWant::Tensor {
        file: "model.safetensors".into(),
        name: "small".into(),
    };

    // A stranger's key opens nothing, and nothing is written.
    let stranger_dir = Dir::new("partial-private-stranger");
    let stranger = Repository::init(&stranger_dir.0)?;
    let other = agigit::private::reader_secret(&Keys::generate())?;
    let err = stranger
        .pull_path(
            &net,
            &coordinate,
            "master",
            &want,
            FetchOptions::with_secret(&other),
        )
        .await
        .expect_err("not a reader");
    assert_eq!(err.kind(), ErrorKind::Access, "{err}");
    assert!(!stranger_dir.0.join("model.safetensors").exists());

    let reader_dir = Dir::new("partial-private-reader");
    let reader = Repository::init(&reader_dir.0)?;
    let report = reader
        .pull_path(
            &net,
            &coordinate,
            "master",
            &want,
            FetchOptions::with_secret(&secret),
        )
        .await?;
    eprintln!(
        "private: one 1 MiB tensor: {} bytes downloaded ({} segments, {} objects) of packs of {} bytes",
        report.bytes, report.segments, report.objects, report.packs_bytes
    );
    let one = SafetensorsFile::open(reader_dir.0.join("model.safetensors"))?;
    let original = SafetensorsFile::open(origin.0.join("model.safetensors"))?;
    assert_eq!(one.len(), 1);
    assert_eq!(
        one.tensor("small").expect("small").data(),
        original.tensor("small").expect("small").data()
    );
    assert!(
        report.envelope.is_some(),
        "the key envelope, to keep the clone private"
    );
    assert!(report.packs_bytes > 48 * MB as u64, "{report:?}");
    // The pack's first segment (its sealed header) on top of what a public pull takes.
    assert!(
        report.bytes < 10 * MB as u64,
        "downloaded {} for a 1 MiB tensor",
        report.bytes
    );

    // A whole file of another part.
    let csv = PartialWant::File("data/validation/eval.csv".into());
    reader
        .pull_path(
            &net,
            &coordinate,
            "master",
            &csv,
            FetchOptions::with_secret(&secret),
        )
        .await?;
    assert_eq!(
        std::fs::read(reader_dir.0.join("data/validation/eval.csv"))?,
        b"x,y\n0,1\n"
    );
    Ok(())
}
