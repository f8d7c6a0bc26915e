//! Durability through the binary, against five agigit-relay processes on loopback: a push states
//! what it guarantees, `fsck --remote` finds what two wiped relays and a stopped one lost,
//! `repair` restores the target, and then any three of the five relays rebuild the repository.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::Path;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{Relays, agigit, blob_files, json, model_on, ok};

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

/// The first line of `--json` output (a failing command prints its report, then the error).
fn first_json(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().next().expect("a line")).expect("JSON")
}

#[test]
fn fsck_finds_the_loss_and_repair_restores_any_three_of_five() -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-cli-durability-{}", std::process::id()));
    let mut env = Relays::start(&root, 5, |_| None)?;
    let urls = env.urls();
    let (home, model) = model_on(&root, &urls);
    std::fs::write(model.join("train.py"), "print('v1')\n")?;
    let weights: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::fs::write(model.join("weights.bin"), weights)?;
    std::fs::create_dir_all(model.join("data/train"))?;
    std::fs::write(model.join("data/train/rows.csv"), "x,y\n1,2\n")?;
    ok(&agigit(&home, &model, &["commit", "-m", "one"]));

    // 4 of 10 over five relays: two shards of each segment on each, any two rebuild.
    let pushed = json(&agigit(&home, &model, &["push", "--json"]));
    assert_eq!(pushed["survive_target"], 3);
    let packs = pushed["packs"].as_array().ok_or("packs")?;
    assert_eq!(packs.len(), 3);
    for p in packs {
        assert_eq!(p["survives"], 3, "{p}");
        assert_eq!(p["servers_needed"], 2, "{p}");
        assert!(p["rebuild_probability"].as_f64().ok_or("odds")? > 0.999);
    }
    let text = ok(&agigit(&home, &model, &["fsck", "--remote"]));
    assert!(
        text.contains("survives") && !text.contains("BELOW"),
        "{text}"
    );

    // Relays 1 and 3 lose their disks; relay 4 stops.
    for i in [1, 3] {
        let wiped = blob_files(&env.data(i));
        assert!(!wiped.is_empty());
        for f in wiped {
            std::fs::remove_file(f)?;
        }
    }
    env.stop(4);
    let out = agigit(&home, &model, &["fsck", "--remote", "--any", "3", "--json"]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let audit = first_json(&out);
    assert_eq!(audit["healthy"], false);
    // Blob servers are named by their http:// URL (the relay's port).
    let blob_server = urls[4].replacen("ws://", "http://", 1);
    assert_eq!(audit["unreachable"], serde_json::json!([blob_server]));
    for p in audit["packs"].as_array().ok_or("packs")? {
        assert_eq!(p["survives"], 0, "{p}");
        assert_eq!(p["target"], 2, "{p}");
        let shards: Vec<u64> = p["servers"]
            .as_array()
            .ok_or("servers")?
            .iter()
            .map(|s| s["shards"].as_u64().unwrap_or(99))
            .collect();
        assert_eq!((shards[1], shards[3], shards[4]), (0, 0, 0), "{p}");
    }
    let text =
        String::from_utf8_lossy(&agigit(&home, &model, &["fsck", "--remote", "--any", "3"]).stdout)
            .into_owned();
    assert!(
        text.contains("BELOW TARGET") && text.contains("did not answer"),
        "{text}"
    );

    // Repair onto the four that answer; a second repair has nothing to do.
    let repaired = json(&agigit(&home, &model, &["repair", "--any", "3", "--json"]));
    assert_eq!(repaired["healthy"], true, "{repaired}");
    assert!(
        repaired["repaired"]["shards_uploaded"]
            .as_u64()
            .ok_or("shards")?
            > 0
    );
    let again = ok(&agigit(&home, &model, &["repair", "--any", "3"]));
    assert!(again.starts_with("nothing to repair"), "{again}");

    // Relay 4 is back; any three rebuild: here the two repaired ones and relay 4, then three
    // others.
    env.restart(4)?;
    let coordinate = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();
    for (n, (down, up)) in [([0, 2], [1, 3, 4]), ([1, 4], [0, 2, 3])]
        .iter()
        .enumerate()
    {
        for &i in down {
            env.stop(i);
        }
        let reader = root.join(format!("reader-{n}"));
        ok(&agigit(&reader, &root, &["key", "generate"]));
        let dir = format!("clone-{n}");
        let mut args = vec!["clone", coordinate.as_str(), dir.as_str()];
        for &i in up {
            args.extend(["--relay", urls[i].as_str()]);
        }
        ok(&agigit(&reader, &root, &args));
        assert_eq!(files(&root.join(&dir)), files(&model), "from relays {up:?}");
        for &i in down {
            env.restart(i)?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_remote_keeps_what_is_referenced_and_young_and_deletes_the_rest() -> TestResult {
    use agigit::event::nostr::prelude::{Keys, ToBech32};
    let root = std::env::temp_dir().join(format!("agigit-cli-gc-{}", std::process::id()));
    let env = Relays::start(&root, 2, |_| None)?;
    let ports = env.ports().to_vec();
    let home = root.join("home");
    let model = root.join("model");
    let user = Keys::generate();
    ok(&agigit(
        &home,
        &root,
        &["key", "import", &user.secret_key().to_bech32()?],
    ));
    ok(&agigit(&home, &root, &["init", "model"]));
    for u in env.urls() {
        ok(&agigit(&home, &model, &["relay", "add", &u]));
    }
    std::fs::write(model.join("train.py"), "print('kept')\n")?;
    ok(&agigit(&home, &model, &["commit", "-m", "kept"]));
    ok(&agigit(&home, &model, &["push"]));

    // A blob of the user's that nothing references (what an abandoned push leaves).
    let client = agigit::net::BlobClient::new(
        Some(std::sync::Arc::new(user.clone())),
        agigit::net::BlobClientOptions::default(),
    );
    let servers: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let stray = b"an abandoned shard";
    for s in &servers {
        client.upload(s, stray.to_vec().into()).await?;
    }

    // Within the grace period it is kept; a dry run says so and deletes nothing.
    let dry = json(&agigit(
        &home,
        &model,
        &["gc", "--remote", "--dry-run", "--json"],
    ));
    for s in dry["servers"].as_array().ok_or("servers")? {
        assert_eq!(
            (s["young"].as_u64(), s["deleted"].as_u64()),
            (Some(1), Some(0)),
            "{s}"
        );
        assert!(s["referenced"].as_u64().ok_or("referenced")? > 0);
    }
    let would = json(&agigit(
        &home,
        &model,
        &["gc", "--remote", "--dry-run", "--grace", "0", "--json"],
    ));
    for s in would["servers"].as_array().ok_or("servers")? {
        assert_eq!(s["deleted"].as_u64(), Some(1), "{s}");
    }
    let stray_hash = agigit::hash::BlobHash::digest(stray);
    for s in &servers {
        assert!(
            client.exists(s, &stray_hash).await?,
            "a dry run deletes nothing"
        );
    }

    // Collected: the stray goes, the repository is whole.
    let done = json(&agigit(
        &home,
        &model,
        &["gc", "--remote", "--grace", "0", "--json"],
    ));
    for s in done["servers"].as_array().ok_or("servers")? {
        assert_eq!(s["deleted"].as_u64(), Some(1), "{s}");
        assert_eq!(s["errors"], serde_json::json!([]), "{s}");
    }
    for s in &servers {
        assert!(!client.exists(s, &stray_hash).await?);
    }
    ok(&agigit(&home, &model, &["fsck", "--remote"]));
    Ok(())
}
