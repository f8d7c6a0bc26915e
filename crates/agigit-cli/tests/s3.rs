//! A relay whose blobs live in S3-compatible object storage, through the binaries: one of three
//! agigit-relay processes is configured with `[blossom.s3]` against a real S3 server (`s3s-fs`)
//! on loopback; a push lands its shards in the bucket (none in the relay's data directory), and
//! with another relay stopped, a clone rebuilds the repository bit for bit from the bucket-backed
//! relay and the one left.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::Path;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{Relays, agigit, blob_files, json, model_on, ok};

#[path = "../../agigit-relay/tests/support/s3.rs"]
mod s3_server;
use s3_server::{ACCESS_KEY, SECRET_KEY, TempS3};

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    ["train.py", "weights.bin", "data/train/rows.csv"]
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::read(dir.join(f)).unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn a_relay_backed_by_a_bucket_stores_and_serves_a_repository() -> TestResult {
    let Some(server) = TempS3::start("cli")? else {
        return Ok(());
    };
    let bucket = server.bucket("relay-blobs")?;
    let root = std::env::temp_dir().join(format!("agigit-cli-s3-{}", std::process::id()));
    let config = std::env::temp_dir().join(format!("agigit-cli-s3-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "[blossom.s3]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nprefix = \"relay-0/\"\nallow_http = true\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n",
            server.endpoint
        ),
    )?;
    let mut relays = Relays::start(&root, 3, |i| (i == 0).then(|| config.clone()))?;
    let urls = relays.urls();
    let (home, model) = model_on(&root, &urls);
    std::fs::write(model.join("train.py"), "print('v1')\n")?;
    let weights: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::fs::write(model.join("weights.bin"), weights)?;
    std::fs::create_dir_all(model.join("data/train"))?;
    std::fs::write(model.join("data/train/rows.csv"), "x,y\n1,2\n")?;
    ok(&agigit(&home, &model, &["commit", "-m", "one"]));
    let pushed = json(&agigit(&home, &model, &["push", "--json"]));

    // Relay 0's shards and manifests are in the bucket, under its prefix; none on its disk.
    let objects = server.objects(&bucket);
    assert!(!objects.is_empty(), "nothing reached the bucket");
    assert!(
        objects
            .iter()
            .all(|o| o.parent().is_some_and(|p| p.ends_with("relay-0"))),
        "{objects:?}"
    );
    assert!(blob_files(&relays.data(0)).is_empty());
    assert!(!blob_files(&relays.data(1)).is_empty());

    // Relay 2 stops: the clone needs relay 0's shards, read back from the bucket.
    relays.stop(2);
    let coordinate = pushed["repository"].as_str().ok_or("coordinate")?;
    let reader = root.join("reader");
    ok(&agigit(&reader, &root, &["key", "generate"]));
    ok(&agigit(
        &reader,
        &root,
        &[
            "clone", coordinate, "clone", "--relay", &urls[0], "--relay", &urls[1],
        ],
    ));
    assert_eq!(files(&root.join("clone")), files(&model));
    let _ = std::fs::remove_file(&config);
    Ok(())
}
