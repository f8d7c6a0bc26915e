//! A relay whose blobs live in S3-compatible object storage, through the binaries: one of three
//! agigit-relay processes is configured with `[blossom.s3]` against a real S3 server (`s3s-fs`)
//! on loopback; a push lands its shards in the bucket (none in the relay's data directory), and
//! with another relay stopped, a clone rebuilds the repository bit for bit from the bucket-backed
//! relay and the one left.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::{Path, PathBuf};
use std::process::Child;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{agigit, blob_files, free_port, json, ok, start_relay, start_relay_with, url};

#[path = "../../agigit-relay/tests/support/s3.rs"]
mod s3_server;
use s3_server::{ACCESS_KEY, SECRET_KEY, TempS3};

struct Relays(Vec<Option<Child>>, PathBuf);

impl Drop for Relays {
    fn drop(&mut self) {
        for r in self.0.iter_mut().filter_map(Option::take) {
            let mut r = r;
            let _ = r.kill();
            let _ = r.wait();
        }
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

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
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let mut relays = Relays(Vec::new(), root.clone());
    let config = root.join("s3.toml");
    std::fs::write(
        &config,
        format!(
            "[blossom.s3]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nprefix = \"relay-0/\"\nallow_http = true\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n",
            server.endpoint
        ),
    )?;
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let data = |i: usize| root.join(format!("relay-{i}"));
    for (i, port) in ports.iter().enumerate() {
        let key = data(i).join("relay.key");
        let child = if i == 0 {
            start_relay_with(*port, &data(i), &key, Some(&config))?
        } else {
            start_relay(*port, &data(i), &key)?
        };
        relays.0.push(Some(child));
    }
    let urls: Vec<String> = ports.iter().map(|p| url(*p)).collect();

    let home = root.join("home");
    let model = root.join("model");
    ok(&agigit(&home, &root, &["key", "generate"]));
    ok(&agigit(&home, &root, &["init", "model"]));
    for u in &urls {
        ok(&agigit(&home, &model, &["relay", "add", u]));
    }
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
    assert!(blob_files(&data(0)).is_empty());
    assert!(!blob_files(&data(1)).is_empty());

    // Relay 2 stops: the clone needs relay 0's shards, read back from the bucket.
    if let Some(mut r) = relays.0[2].take() {
        r.kill()?;
        r.wait()?;
    }
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
    Ok(())
}
