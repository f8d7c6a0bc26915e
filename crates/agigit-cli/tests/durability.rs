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

/// `n` bytes no compressor shrinks (xorshift), deterministic.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// The bytes of every blob the relays store.
fn stored(env: &Relays, relays: usize) -> u64 {
    (0..relays)
        .flat_map(|i| blob_files(&env.data(i)))
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// `measure()` once it has stopped changing (the same for half a second), or after 10 s.
fn settled(measure: impl Fn() -> u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut last = measure();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = measure();
        if now == last || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Runs `agigit args` in `cwd` and kills it (SIGKILL) once `reached()` says so; fails if it
/// ends first or nothing happens within a minute.
fn kill_when(home: &Path, cwd: &Path, args: &[&str], reached: impl Fn() -> bool) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agigit"))
        .args(args)
        .current_dir(cwd)
        .env("AGIGIT_HOME", home)
        .env_remove("AGIGIT_NSEC")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run agigit");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !reached() {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!(
                "`agigit {}` ended ({status}) before it could be killed",
                args.join(" ")
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`agigit {}` made no progress",
            args.join(" ")
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
}

/// The segments a fetch keeps under `.agigit/fetch/<pack>/`.
fn kept_segments(repo: &Path) -> usize {
    std::fs::read_dir(repo.join(".agigit/fetch"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|pack| {
            std::fs::read_dir(pack.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|f| f.path().extension().is_some_and(|e| e == "segment"))
        .count()
}

/// A push and a pull of a 72 MiB commit, each killed (SIGKILL) half way and run again: the
/// second run sends only what the first did not land, and downloads only the segments the first
/// did not keep.
#[test]
fn a_push_and_a_pull_killed_half_way_resume_where_they_stopped() -> TestResult {
    const RELAYS: usize = 3;
    const SIZE: usize = 72 << 20;
    let root = std::env::temp_dir().join(format!("agigit-cli-killed-{}", std::process::id()));
    let env = Relays::start(&root, RELAYS, |_| None)?;
    let urls = env.urls();
    let (home, model) = model_on(&root, &urls);
    std::fs::write(model.join("train.py"), "print('v1')\n")?;
    ok(&agigit(&home, &model, &["commit", "-m", "first"]));
    let first = json(&agigit(&home, &model, &["push", "--json"]));
    let coordinate = first["repository"].as_str().ok_or("coordinate")?.to_owned();
    let reader_home = root.join("reader-home");
    let clone = root.join("clone");
    let mut args = vec!["clone".to_owned(), coordinate, clone.display().to_string()];
    for u in &urls {
        args.extend(["--relay".to_owned(), u.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&agigit(&reader_home, &root, &args));

    // The push: 72 MiB of weights, 10 shards of 4 per segment, killed once half the bytes it
    // will store have landed.
    let weights = noise(SIZE, 0x5eed);
    std::fs::write(model.join("weights.bin"), &weights)?;
    ok(&agigit(&home, &model, &["commit", "-m", "weights"]));
    let before = stored(&env, RELAYS);
    let expected = SIZE as u64 * 10 / 4;
    kill_when(&home, &model, &["push"], || {
        stored(&env, RELAYS) - before >= expected / 2
    });
    // An upload whose body a relay had received in full when the client died still commits
    // after the kill: count what landed once the stores have settled.
    let landed = settled(|| stored(&env, RELAYS)) - before;
    let second = json(&agigit(&home, &model, &["push", "--json"]));
    let sent: u64 = second["bytes_per_server"]
        .as_object()
        .ok_or("bytes per server")?
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    let total = stored(&env, RELAYS) - before;
    let resumed = second["resumed"].as_u64().ok_or("resumed")?;
    eprintln!(
        "push killed after {landed} of {total} bytes landed; the second push sent {sent} bytes, found {resumed} shards in place"
    );
    assert!(landed >= total / 3 && landed < total, "{landed} of {total}");
    assert!(resumed > 0, "{second}");
    // Everything missing is sent once; nothing that landed is sent again. The slack is what
    // the first push had in flight when killed (shards it wrote but never placed): one per
    // upload in parallel at most.
    let slack = 16 * (4 << 20) / 4;
    assert!(
        sent >= total - landed && sent <= total - landed + slack,
        "sent {sent}, missing {}",
        total - landed
    );

    // The pull: killed once it keeps half the segments.
    let segments = SIZE.div_ceil(4 << 20);
    kill_when(&reader_home, &clone, &["pull"], || {
        kept_segments(&clone) >= segments / 2
    });
    let kept = kept_segments(&clone);
    assert!(
        !clone.join("weights.bin").exists(),
        "a killed pull changed nothing in the work tree"
    );
    let pulled = json(&agigit(&reader_home, &clone, &["pull", "--json"]));
    let resumed = usize::try_from(
        pulled["resumed_segments"]
            .as_u64()
            .ok_or("resumed_segments")?,
    )?;
    let bytes = pulled["bytes"].as_u64().ok_or("bytes")?;
    let pack = second["pack_bytes"].as_u64().ok_or("pack_bytes")?;
    eprintln!(
        "pull killed with {kept} of {segments} segments kept; the second pull used {resumed} of them and downloaded {bytes} of the pack's {pack} bytes"
    );
    // A segment file cut by the kill is checked, refused and downloaded again.
    assert!(resumed + 1 >= kept && resumed <= kept, "{pulled}");
    assert!(
        bytes <= pack - (resumed as u64) * (4 << 20) + (4 << 20),
        "downloaded {bytes}"
    );
    assert!(std::fs::read(clone.join("weights.bin"))? == weights);
    assert_eq!(kept_segments(&clone), 0, "a completed pull keeps nothing");
    Ok(())
}
