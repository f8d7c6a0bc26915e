//! The `agigit` binary end to end, two users, relays on loopback started by the test itself.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use agigit_relay::server::{Info, Limits, Relay, serve};
use agigit_relay::{BlossomConfig, FsBlobStore, SqliteEventStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{agigit, blob_files, json, ok, walk_files};

struct Env {
    root: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A relay on loopback (at `addr`, or a free port), storing under `dir`. Sending on the returned
/// channel stops it; the handle resolves once it has.
async fn relay_at(
    dir: &Path,
    addr: Option<std::net::SocketAddr>,
) -> Result<
    (
        String,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
    Box<dyn std::error::Error>,
> {
    std::fs::create_dir_all(dir)?;
    let relay = Relay::new(
        Arc::new(SqliteEventStore::open(dir.join("events.sqlite"))?),
        Limits::default(),
        Info::default(),
    )
    .with_blobs(
        Arc::new(FsBlobStore::open(dir.join("blobs"))?),
        BlossomConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind(
        addr.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
    )
    .await?;
    let url = format!("ws://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let _ = serve(listener, relay, async {
            let _ = stopped.await;
        })
        .await;
    });
    Ok((url, stop, handle))
}

async fn relay(
    dir: &Path,
) -> Result<(String, tokio::sync::oneshot::Sender<()>), Box<dyn std::error::Error>> {
    let (url, stop, _) = relay_at(dir, None).await?;
    Ok((url, stop))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_push_and_clone_with_a_relay_down() -> TestResult {
    let env = Env {
        root: std::env::temp_dir().join(format!("agigit-cli-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&env.root);
    std::fs::create_dir_all(&env.root)?;
    let mut relays = Vec::new();
    for i in 0..3 {
        relays.push(relay(&env.root.join(format!("relay-{i}"))).await?);
    }
    let (owner_home, reader_home) = (env.root.join("owner-home"), env.root.join("reader-home"));

    // The owner: a key (file mode 0600), a repository, relays, a commit, a push.
    let out = agigit(&owner_home, &env.root, &["key", "generate", "--json"]);
    let key: serde_json::Value = serde_json::from_str(&ok(&out))?;
    assert!(key["npub"].as_str().is_some_and(|n| n.starts_with("npub1")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(owner_home.join("key"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = agigit(&owner_home, &env.root, &["key", "generate"]);
    assert_eq!(
        again.status.code(),
        Some(5),
        "an existing key is not overwritten (would-lose-work)"
    );

    let model = env.root.join("model");
    ok(&agigit(
        &owner_home,
        &env.root,
        &["init", "model", "--id", "tiny-model"],
    ));
    std::fs::write(model.join("config.json"), b"{\"hidden\": 8}")?;
    std::fs::create_dir_all(model.join("data/train"))?;
    std::fs::write(model.join("data/train/a.txt"), b"some training text")?;
    for (url, _) in &relays {
        ok(&agigit(&owner_home, &model, &["relay", "add", url]));
    }
    let list: serde_json::Value = serde_json::from_str(&ok(&agigit(
        &owner_home,
        &model,
        &["relay", "list", "--json"],
    )))?;
    assert_eq!(list.as_array().map(Vec::len), Some(3));
    let status: serde_json::Value =
        serde_json::from_str(&ok(&agigit(&owner_home, &model, &["status", "--json"])))?;
    assert_eq!(status["changes"].as_array().map(Vec::len), Some(2));
    ok(&agigit(&owner_home, &model, &["commit", "-m", "first"]));
    let pushed: serde_json::Value =
        serde_json::from_str(&ok(&agigit(&owner_home, &model, &["push", "--json"])))?;
    let coordinate = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();
    assert!(pushed["shards"].as_u64().is_some_and(|s| s > 0));

    // A malformed safetensors file: refused by name, exit code 3 (invalid), nothing committed.
    std::fs::write(
        model.join("bad.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{",
    )?;
    let out = agigit(&owner_home, &model, &["commit", "-m", "broken"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.safetensors"));
    std::fs::remove_file(model.join("bad.safetensors"))?;
    let log: serde_json::Value =
        serde_json::from_str(&ok(&agigit(&owner_home, &model, &["log", "--json"])))?;
    assert_eq!(log.as_array().map(Vec::len), Some(1));

    // One relay down; the reader clones from the other two.
    let (down, stop) = relays.remove(0);
    let _ = stop.send(());
    let clone = env.root.join("clone");
    let args = [
        "clone",
        coordinate.as_str(),
        clone.to_str().ok_or("path")?,
        "--relay",
        relays[0].0.as_str(),
        "--relay",
        relays[1].0.as_str(),
    ];
    ok(&agigit(&reader_home, &env.root, &args));
    assert_eq!(
        std::fs::read(clone.join("config.json"))?,
        b"{\"hidden\": 8}"
    );
    assert_eq!(
        std::fs::read(clone.join("data/train/a.txt"))?,
        b"some training text"
    );

    // A partial clone: the code only; the training data stays on the relays.
    let sparse = env.root.join("sparse");
    let cloned: serde_json::Value = serde_json::from_str(&ok(&agigit(
        &reader_home,
        &env.root,
        &[
            "clone",
            coordinate.as_str(),
            sparse.to_str().ok_or("path")?,
            "--relay",
            relays[0].0.as_str(),
            "--relay",
            relays[1].0.as_str(),
            "--parts",
            "code",
            "--json",
        ],
    )))?;
    assert_eq!(cloned["packs"], 2, "{cloned}");
    assert!(sparse.join("config.json").exists());
    assert!(!sparse.join("data/train/a.txt").exists());
    ok(&agigit(&reader_home, &sparse, &["pull", "--parts", "all"]));
    assert_eq!(
        std::fs::read(sparse.join("data/train/a.txt"))?,
        b"some training text"
    );

    // A clone from only the dead relay fails and leaves nothing behind.
    let nowhere = env.root.join("nowhere");
    let out = agigit(
        &reader_home,
        &env.root,
        &[
            "clone",
            &coordinate,
            nowhere.to_str().ok_or("p")?,
            "--relay",
            &down,
        ],
    );
    assert_eq!(out.status.code(), Some(7), "a relay that is down: network");
    assert!(!nowhere.exists());

    // Usage errors exit with 2; an unknown revision with 3 (invalid) and a hint, and as JSON
    // with its kind.
    assert_eq!(
        agigit(&owner_home, &model, &["frobnicate"]).status.code(),
        Some(2)
    );
    let out = agigit(&owner_home, &model, &["checkout", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown revision"));
    let out = agigit(&owner_home, &model, &["--json", "checkout", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    let err: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(err["kind"], "invalid");
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown revision"))
    );
    // Nothing to commit has its own code; outside a repository, another.
    let out = agigit(&owner_home, &model, &["--json", "commit", "-m", "again"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout)?["kind"],
        "nothing-to-commit"
    );
    let out = agigit(&owner_home, &env.root, &["status"]);
    assert_eq!(out.status.code(), Some(4));
    // --help documents the codes.
    let help =
        String::from_utf8_lossy(&agigit(&owner_home, &model, &["--help"]).stdout).into_owned();
    assert!(
        help.contains("5   would-lose-work:") && help.contains("7   network:"),
        "{help}"
    );
    Ok(())
}

fn fresh_env(name: &str) -> Env {
    let env = Env {
        root: std::env::temp_dir().join(format!("agigit-cli-{name}-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&env.root);
    std::fs::create_dir_all(&env.root).expect("temp dir");
    env
}

const TENSORS: [&str; 3] = ["a.weight", "b.weight", "c.weight"];

/// `model.safetensors` with three f32 tensors, every value of tensor `i` equal to `values[i]`.
fn write_model(dir: &Path, values: [f32; 3]) -> TestResult {
    use agigit::delta::{DType, save_safetensors, synth};
    let tensors: Vec<(&str, agigit::delta::Tensor)> = TENSORS
        .iter()
        .zip(values)
        .map(|(n, v)| (*n, synth::tensor(DType::F32, &[64, 64], &[v; 4096])))
        .collect();
    save_safetensors(
        dir.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (*n, t.view())),
        &std::collections::BTreeMap::new(),
    )?;
    Ok(())
}

fn read_model(dir: &Path) -> Result<[f32; 3], Box<dyn std::error::Error>> {
    let file = agigit::delta::SafetensorsFile::open(dir.join("model.safetensors"))?;
    let mut out = [0f32; 3];
    for (i, name) in TENSORS.iter().enumerate() {
        let data = file.tensor(name).ok_or("tensor")?.data().to_vec();
        let first = f32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        assert!(
            data.chunks_exact(4).all(|c| c == first.to_le_bytes()),
            "{name} is not uniform"
        );
        out[i] = first;
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_fork_merges_rebases_and_opens_for_readers_only() -> TestResult {
    let env = fresh_env("private");
    let mut relays = Vec::new();
    for i in 0..3 {
        relays.push(relay(&env.root.join(format!("relay-{i}"))).await?);
    }
    let home = |who: &str| env.root.join(format!("{who}-home"));
    let npub = |who: &str| -> String {
        let key = json(&agigit(
            &home(who),
            &env.root,
            &["key", "generate", "--json"],
        ));
        key["npub"].as_str().expect("npub").to_owned()
    };
    let (_, _, reader_npub, _) = (
        npub("owner"),
        npub("tuner"),
        npub("reader"),
        npub("stranger"),
    );

    // The owner publishes a foundation.
    let fm = env.root.join("fm");
    ok(&agigit(
        &home("owner"),
        &env.root,
        &["init", "fm", "--id", "fm"],
    ));
    write_model(&fm, [1.0, 1.0, 1.0])?;
    for (url, _) in &relays {
        ok(&agigit(&home("owner"), &fm, &["relay", "add", url]));
    }
    ok(&agigit(
        &home("owner"),
        &fm,
        &["commit", "-m", "foundation"],
    ));
    let fm_coord = json(&agigit(&home("owner"), &fm, &["push", "--json"]))["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();

    // The tuner forks it, privately, for one reader, and fine-tunes a and c.
    let tuned = env.root.join("tuned");
    let mut fork = vec![
        "fork",
        fm_coord.as_str(),
        "tuned",
        "--id",
        "tuned",
        "--private",
    ];
    fork.extend(["--reader", reader_npub.as_str()]);
    for (url, _) in &relays {
        fork.extend(["--relay", url.as_str()]);
    }
    let forked = json(&agigit(
        &home("tuner"),
        &env.root,
        &[&fork[..], &["--json"]].concat(),
    ));
    assert_eq!(forked["private"], true);
    assert_eq!(read_model(&tuned)?, [1.0, 1.0, 1.0]);
    write_model(&tuned, [3.0, 1.0, 4.0])?;
    std::fs::write(
        tuned.join("notes.txt"),
        b"PRIVATE-NOTES-7f3a: domain data sources",
    )?;
    let commit = json(&agigit(
        &home("tuner"),
        &tuned,
        &["commit", "-m", "tune", "--json"],
    ));
    assert_eq!(commit["delta_tensors"], 2, "{commit}");

    // Merge: both branches change tensor a.
    ok(&agigit(&home("tuner"), &tuned, &["branch", "exp"]));
    write_model(&tuned, [5.0, 1.0, 4.0])?;
    ok(&agigit(
        &home("tuner"),
        &tuned,
        &["commit", "-m", "master: a = 5"],
    ));
    ok(&agigit(&home("tuner"), &tuned, &["checkout", "exp"]));
    write_model(&tuned, [7.0, 1.0, 4.0])?;
    ok(&agigit(
        &home("tuner"),
        &tuned,
        &["commit", "-m", "exp: a = 7"],
    ));
    // `merge A B`, as git reads it: both into the current branch (master, which already
    // holds itself), so exp is merged into master.
    ok(&agigit(&home("tuner"), &tuned, &["checkout", "master"]));
    let out = agigit(&home("tuner"), &tuned, &["merge", "master", "exp"]);
    assert_eq!(out.status.code(), Some(5), "a conflict: would-lose-work");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("CONFLICT (tensor changed on both sides): params/model.safetensors/a.weight"),
        "{stderr}"
    );
    assert_eq!(
        read_model(&tuned)?,
        [5.0, 1.0, 4.0],
        "nothing changed, on master"
    );
    let merged = json(&agigit(
        &home("tuner"),
        &tuned,
        &["merge", "master", "exp", "--strategy", "average", "--json"],
    ));
    assert_eq!(
        merged["merged_tensors"][0],
        "params/model.safetensors/a.weight"
    );
    assert_eq!(read_model(&tuned)?, [6.0, 1.0, 4.0]);
    let shown = json(&agigit(&home("tuner"), &tuned, &["show", "--json"]));
    assert_eq!(
        shown["merge_strategy"], "average:0.5",
        "recorded in the merge commit"
    );

    // Rebase: a topic branch replayed on a newer master.
    ok(&agigit(&home("tuner"), &tuned, &["branch", "topic"]));
    ok(&agigit(&home("tuner"), &tuned, &["checkout", "topic"]));
    std::fs::write(tuned.join("train.py"), b"print('topic')")?;
    ok(&agigit(
        &home("tuner"),
        &tuned,
        &["commit", "-m", "topic: train.py"],
    ));
    ok(&agigit(&home("tuner"), &tuned, &["checkout", "master"]));
    write_model(&tuned, [6.0, 9.0, 4.0])?;
    ok(&agigit(
        &home("tuner"),
        &tuned,
        &["commit", "-m", "master: b = 9"],
    ));
    ok(&agigit(&home("tuner"), &tuned, &["checkout", "topic"]));
    let rebased = json(&agigit(
        &home("tuner"),
        &tuned,
        &["rebase", "master", "--json"],
    ));
    assert_eq!(rebased["commits"], 1);
    assert_eq!(read_model(&tuned)?, [6.0, 9.0, 4.0]);
    assert_eq!(std::fs::read(tuned.join("train.py"))?, b"print('topic')");
    let log = json(&agigit(
        &home("tuner"),
        &tuned,
        &["log", "-n", "2", "--json"],
    ));
    assert_eq!(log[0]["message"], "topic: train.py");
    assert_eq!(log[1]["message"], "master: b = 9");
    ok(&agigit(&home("tuner"), &tuned, &["checkout", "master"]));
    ok(&agigit(&home("tuner"), &tuned, &["merge", "topic"]));
    // A tag travels in the sealed ref directory, for readers only.
    ok(&agigit(
        &home("tuner"),
        &tuned,
        &["tag", "rel-okapi", "-m", "domain release"],
    ));
    let pushed = json(&agigit(&home("tuner"), &tuned, &["push", "--json"]));
    assert_eq!(pushed["private"], true);
    assert_eq!(pushed["tags"], serde_json::json!(["rel-okapi"]), "{pushed}");
    let tuned_coord = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();

    // Nothing the relays store shows the notes.
    for i in 0..3 {
        for f in blob_files(&env.root.join(format!("relay-{i}"))) {
            let bytes = std::fs::read(&f)?;
            assert!(
                !bytes.windows(18).any(|w| w == b"PRIVATE-NOTES-7f3a"),
                "plaintext in {}",
                f.display()
            );
        }
    }

    // Rot every blob on relay 0: clones still come out right from the others' shards.
    let rotten = blob_files(&env.root.join("relay-0"));
    assert!(!rotten.is_empty());
    for f in &rotten {
        let mut bytes = std::fs::read(f)?;
        bytes[0] ^= 0xff;
        std::fs::write(f, bytes)?;
    }
    let relay_args = |args: &mut Vec<String>| {
        for (url, _) in &relays {
            args.extend(["--relay".to_owned(), url.clone()]);
        }
    };
    let mut clone: Vec<String> = ["clone", tuned_coord.as_str(), "rclone"]
        .map(str::to_owned)
        .to_vec();
    relay_args(&mut clone);
    let clone: Vec<&str> = clone.iter().map(String::as_str).collect();
    ok(&agigit(&home("reader"), &env.root, &clone));
    let rclone = env.root.join("rclone");
    for f in ["model.safetensors", "notes.txt", "train.py"] {
        assert_eq!(
            std::fs::read(rclone.join(f))?,
            std::fs::read(tuned.join(f))?,
            "{f}"
        );
    }
    assert!(
        rclone.join(".agigit/keys").exists(),
        "the clone stays private"
    );
    let tags = json(&agigit(&home("reader"), &rclone, &["tag", "--json"]));
    assert_eq!(tags[0]["tag"], "rel-okapi", "{tags}");
    assert_eq!(tags[0]["message"], "domain release", "{tags}");
    // Neither the tag's name nor its message is in the clear on a relay (events or blobs).
    for i in 0..3 {
        for f in walk_files(&env.root.join(format!("relay-{i}"))) {
            let bytes = std::fs::read(&f)?;
            for secret in [&b"rel-okapi"[..], b"domain release"] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret),
                    "{} in {}",
                    String::from_utf8_lossy(secret),
                    f.display()
                );
            }
        }
    }

    // A stranger is refused, with what to do, and no directory is left.
    let mut theirs: Vec<String> = ["clone", tuned_coord.as_str(), "sclone"]
        .map(str::to_owned)
        .to_vec();
    relay_args(&mut theirs);
    let theirs: Vec<&str> = theirs.iter().map(String::as_str).collect();
    let out = agigit(&home("stranger"), &env.root, &theirs);
    assert_eq!(out.status.code(), Some(9), "not a reader: access");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not one of its readers"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!env.root.join("sclone").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_cut_by_a_relay_killed_midway_resumes_to_completion() -> TestResult {
    let env = fresh_env("resume");
    let mut relays = Vec::new();
    for i in 0..3 {
        relays.push(relay_at(&env.root.join(format!("relay-{i}")), None).await?);
    }
    let owner = env.root.join("owner-home");
    ok(&agigit(&owner, &env.root, &["key", "generate"]));
    let model = env.root.join("model");
    ok(&agigit(
        &owner,
        &env.root,
        &["init", "model", "--id", "big"],
    ));
    for (url, _, _) in &relays {
        ok(&agigit(&owner, &model, &["relay", "add", url]));
    }
    // Every step must be taken by all three relays; small segments make many uploads.
    let config = model.join(".agigit/config.toml");
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str("\n[push]\nk = 4\nn = 10\nsegment_size = 65536\nmin_accepted = 3\n");
    std::fs::write(&config, text)?;
    let weights: Vec<u8> = (0..12_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11).to_le_bytes()[0])
        .collect();
    std::fs::write(model.join("weights.bin"), &weights)?;
    ok(&agigit(&owner, &model, &["commit", "-m", "big"]));

    // Relay 2 is stopped as soon as the first shard of this push reaches it.
    let (url2, stop2, handle2) = relays.remove(2);
    let relay2_dir = env.root.join("relay-2");
    let push = {
        let (owner, model) = (owner.clone(), model.clone());
        tokio::task::spawn_blocking(move || agigit(&owner, &model, &["push"]))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while blob_files(&relay2_dir).is_empty() && !push.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "no shard reached relay 2"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let _ = stop2.send(());
    handle2.await?;
    let out = push.await?;
    assert_eq!(
        out.status.code(),
        Some(7),
        "with a relay gone and m = 3 the push must stop (network): {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("push again"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The relay comes back at the same address; pushing again completes.
    let addr: std::net::SocketAddr = url2.trim_start_matches("ws://").parse()?;
    let (url2, _stop2, _) = relay_at(&relay2_dir, Some(addr)).await?;
    let pushed = json(&agigit(&owner, &model, &["push", "--json"]));
    assert_eq!(pushed["up_to_date"], false);
    let coordinate = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();
    assert!(
        pushed["bytes_per_server"]
            .as_object()
            .is_some_and(|m| m.len() == 3),
        "{pushed}"
    );

    // A clone from all three is bit exact.
    let reader = env.root.join("reader-home");
    let clone = env.root.join("clone");
    let urls = [relays[0].0.clone(), relays[1].0.clone(), url2];
    ok(&agigit(
        &reader,
        &env.root,
        &[
            "clone",
            &coordinate,
            clone.to_str().ok_or("path")?,
            "--relay",
            &urls[0],
            "--relay",
            &urls[1],
            "--relay",
            &urls[2],
        ],
    ));
    assert!(std::fs::read(clone.join("weights.bin"))? == weights);
    Ok(())
}

/// A "relay" that speaks no WebSocket and answers every request, blob GETs included, with an
/// endless body, as fast as the client reads.
async fn endless_server() -> Result<std::net::SocketAddr, Box<dyn std::error::Error>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await;
                let mut chunk = format!("{:x}\r\n", 64 << 10).into_bytes();
                chunk.extend_from_slice(&vec![0u8; 64 << 10]);
                chunk.extend_from_slice(b"\r\n");
                while tcp.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    Ok(addr)
}

/// Runs agigit and samples its resident memory until it exits: its output and peak RSS (kB).
fn agigit_measured(home: &Path, cwd: &Path, args: &[&str]) -> (Output, u64) {
    let child = Command::new(env!("CARGO_BIN_EXE_agigit"))
        .args(args)
        .current_dir(cwd)
        .env("AGIGIT_HOME", home)
        .env_remove("AGIGIT_NSEC")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run agigit");
    let pid = child.id();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find(|l| l.starts_with("VmRSS:"))
                            .and_then(|l| l.split_whitespace().nth(1))
                            .and_then(|v| v.parse().ok())
                    })
                    .unwrap_or(0);
                peak = peak.max(rss);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            peak
        })
    };
    let out = child.wait_with_output().expect("wait for agigit");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (out, sampler.join().unwrap_or(0))
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_survives_an_endless_relay_and_never_prints_a_control_character() -> TestResult {
    let env = fresh_env("endless");
    let (honest, _stop) = relay(&env.root.join("honest")).await?;
    let endless = format!("ws://{}", endless_server().await?);
    let (owner, reader) = (env.root.join("owner-home"), env.root.join("reader-home"));
    ok(&agigit(&owner, &env.root, &["key", "generate"]));
    let model = env.root.join("model");
    ok(&agigit(&owner, &env.root, &["init", "model", "--id", "m"]));
    write_model(&model, [1.0, 2.0, 3.0])?;
    std::fs::write(model.join("notes.txt"), vec![b'n'; 3 << 20])?;
    ok(&agigit(&owner, &model, &["relay", "add", &honest]));
    // A message meant to take over the terminal of whoever reads the log.
    ok(&agigit(
        &owner,
        &model,
        &[
            "commit",
            "-m",
            "fine\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mred",
        ],
    ));
    ok(&agigit(&owner, &model, &["push"]));
    let key: serde_json::Value = json(&agigit(&owner, &env.root, &["key", "show", "--json"]));
    let coordinate = format!("30717:{}:m", key["hex"].as_str().ok_or("hex")?);

    // The endless relay first: every blob it is asked for never ends. The clone cuts each off at
    // the length it expects and takes the bytes from the honest relay.
    let started = std::time::Instant::now();
    let (out, peak_kb) = agigit_measured(
        &reader,
        &env.root,
        &[
            "clone",
            &coordinate,
            "cloned",
            "--relay",
            &endless,
            "--relay",
            &honest,
        ],
    );
    ok(&out);
    println!(
        "clone with an endless relay: {:.1} s, peak RSS {} MB",
        started.elapsed().as_secs_f64(),
        peak_kb / 1024
    );
    assert!(peak_kb < 250 << 10, "peak RSS {} MB", peak_kb / 1024);
    let cloned = env.root.join("cloned");
    assert_eq!(read_model(&cloned)?, [1.0, 2.0, 3.0]);
    assert_eq!(std::fs::read(cloned.join("notes.txt"))?.len(), 3 << 20);

    // The log shows the message with its control characters escaped.
    let log = agigit(&reader, &cloned, &["log"]);
    let text = ok(&log);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("\\u{1b}]0;pwned"), "{text}");
    Ok(())
}

#[test]
fn every_id_the_command_line_prints_is_accepted_back() -> TestResult {
    let env = fresh_env("revisions");
    let home = env.root.join("home");
    ok(&agigit(&home, &env.root, &["key", "generate"]));
    ok(&agigit(
        &home,
        &env.root,
        &["init", "model", "--id", "revs"],
    ));
    let model = env.root.join("model");
    let mut printed = Vec::new();
    for i in 0..3 {
        std::fs::write(model.join("notes.txt"), format!("version {i}"))?;
        // `commit` prints `[<12 digits>] <message>`.
        let out = ok(&agigit(&home, &model, &["commit", "-m", &format!("v{i}")]));
        let short = out
            .trim()
            .strip_prefix('[')
            .and_then(|s| s.split(']').next())
            .expect("[id] message")
            .to_owned();
        printed.push(short);
    }
    let log = json(&agigit(&home, &model, &["log", "--json"]));
    let full: Vec<String> = log
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["commit"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(full.len(), 3);
    for (short, id) in printed.iter().rev().zip(&full) {
        assert!(id.starts_with(short.as_str()), "{short} is {id}");
    }
    // The printed short id, HEAD~n and a 4-digit prefix name the same commit as the full id.
    let first = |rev: &str| {
        let out = json(&agigit(&home, &model, &["log", rev, "-n", "1", "--json"]));
        out[0]["commit"].as_str().expect("id").to_owned()
    };
    assert_eq!(first(&printed[0]), full[2]);
    assert_eq!(first("HEAD~2"), full[2]);
    assert_eq!(first("master^"), full[1]);
    assert_eq!(first(&full[1][..4]), full[1]);
    // Checkout of a printed id detaches there, bit for bit; back to the branch by name.
    ok(&agigit(&home, &model, &["checkout", &printed[1]]));
    assert_eq!(
        std::fs::read_to_string(model.join("notes.txt"))?,
        "version 1"
    );
    ok(&agigit(&home, &model, &["checkout", "master"]));
    assert_eq!(
        std::fs::read_to_string(model.join("notes.txt"))?,
        "version 2"
    );
    // `log --oneline`: the short id and the first line, newest first.
    let oneline = ok(&agigit(&home, &model, &["log", "--oneline"]));
    let lines: Vec<&str> = oneline.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], format!("{} v2", printed[2]));
    // A branch at a revision; `-d` refuses one HEAD does not contain (and the one checked
    // out), `-D` deletes it and says where it was.
    ok(&agigit(&home, &model, &["branch", "old", "HEAD~1"]));
    assert_eq!(first("old"), full[1]);
    ok(&agigit(&home, &model, &["checkout", "old"]));
    std::fs::write(model.join("notes.txt"), "on old")?;
    ok(&agigit(&home, &model, &["commit", "-m", "old work"]));
    let current = agigit(&home, &model, &["branch", "-d", "old"]);
    assert_eq!(current.status.code(), Some(3), "the branch checked out");
    ok(&agigit(&home, &model, &["checkout", "master"]));
    let unmerged = agigit(&home, &model, &["branch", "-d", "old"]);
    assert_eq!(unmerged.status.code(), Some(5), "deleting would lose work");
    assert!(String::from_utf8_lossy(&unmerged.stderr).contains("-D"));
    let deleted = json(&agigit(&home, &model, &["branch", "-D", "old", "--json"]));
    assert_eq!(deleted["deleted"], "old");
    let was = deleted["commit"].as_str().expect("id").to_owned();
    let branches = json(&agigit(&home, &model, &["branch", "--json"]));
    assert_eq!(branches.as_array().map(Vec::len), Some(1), "{branches}");
    // The printed id brings it back.
    ok(&agigit(&home, &model, &["branch", "old", &was[..12]]));
    ok(&agigit(&home, &model, &["branch", "merged", "HEAD~2"]));
    ok(&agigit(&home, &model, &["branch", "-d", "merged"]));
    // A revision past the root, or one that names nothing: exit code 3 (invalid), said so.
    for (rev, says) in [("HEAD~3", "parent"), ("nothing-here", "unknown revision")] {
        let out = agigit(&home, &model, &["log", rev]);
        assert_eq!(out.status.code(), Some(3), "{rev}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{rev}: {out:?}"
        );
    }
    Ok(())
}

#[test]
fn the_initial_branch_is_the_users_choice() -> TestResult {
    let env = fresh_env("initial-branch");
    let home = env.root.join("home");
    ok(&agigit(&home, &env.root, &["key", "generate"]));
    // A plain `init` starts on master: the seed's `agigit checkout master` works as written.
    let made = json(&agigit(&home, &env.root, &["init", "seed", "--json"]));
    assert_eq!(made["branch"], "master");
    let seed = env.root.join("seed");
    std::fs::write(seed.join("notes.txt"), "one")?;
    ok(&agigit(&home, &seed, &["commit", "-m", "one"]));
    ok(&agigit(&home, &seed, &["branch", "side"]));
    ok(&agigit(&home, &seed, &["checkout", "side"]));
    ok(&agigit(&home, &seed, &["checkout", "master"]));
    let status = json(&agigit(&home, &seed, &["status", "--json"]));
    assert_eq!(status["branch"], "master");
    // The user-level default, for every `init` without -b.
    std::fs::create_dir_all(&home)?;
    std::fs::write(
        home.join("config.toml"),
        "[init]\ndefault_branch = \"trunk\"\n",
    )?;
    let made = json(&agigit(&home, &env.root, &["init", "other", "--json"]));
    assert_eq!(made["branch"], "trunk");
    // -b wins over it.
    let made = json(&agigit(
        &home,
        &env.root,
        &["init", "third", "-b", "dev", "--json"],
    ));
    assert_eq!(made["branch"], "dev");
    // A name that is no branch name: refused before anything is made.
    let bad = agigit(&home, &env.root, &["init", "bad", "-b", "two..dots"]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(!env.root.join("bad").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_takes_the_branch_it_is_asked_for() -> TestResult {
    let env = fresh_env("clone-branch");
    let home = env.root.join("home");
    let (url, _stop) = relay(&env.root.join("relay")).await?;
    ok(&agigit(&home, &env.root, &["key", "generate"]));
    ok(&agigit(
        &home,
        &env.root,
        &["init", "seed", "-b", "trunk", "--id", "seed"],
    ));
    let seed = env.root.join("seed");
    std::fs::write(seed.join("notes.txt"), "on trunk")?;
    ok(&agigit(&home, &seed, &["relay", "add", &url]));
    ok(&agigit(&home, &seed, &["commit", "-m", "one"]));
    let pushed = json(&agigit(&home, &seed, &["push", "--json"]));
    let coordinate = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();
    // A second branch pushed later does not become the remote's default.
    ok(&agigit(&home, &seed, &["branch", "exp"]));
    ok(&agigit(&home, &seed, &["checkout", "exp"]));
    std::fs::write(seed.join("notes.txt"), "on exp")?;
    ok(&agigit(&home, &seed, &["commit", "-m", "two"]));
    ok(&agigit(&home, &seed, &["push"]));
    let clone_of = |dir: &Path, extra: &[&str]| {
        let mut args = vec![
            "clone",
            &coordinate,
            dir.to_str().expect("utf-8 path"),
            "--relay",
            &url,
            "--json",
        ];
        args.extend_from_slice(extra);
        agigit(&home, &env.root, &args)
    };
    // Without --branch a clone takes the remote's default branch: the first one pushed.
    let plain = env.root.join("plain");
    let cloned = json(&clone_of(&plain, &[]));
    assert_eq!(cloned["branch"], "trunk", "{cloned}");
    assert_eq!(
        std::fs::read_to_string(plain.join("notes.txt"))?,
        "on trunk"
    );
    // --branch takes another.
    let clone = env.root.join("clone");
    ok(&clone_of(&clone, &["--branch", "exp"]));
    assert_eq!(std::fs::read_to_string(clone.join("notes.txt"))?, "on exp");
    let status = json(&agigit(&home, &clone, &["status", "--json"]));
    assert_eq!(status["branch"], "exp");
    assert_eq!(status["changes"].as_array().map(Vec::len), Some(0));
    // A branch the repository lacks is refused, and nothing is left behind.
    let missing = env.root.join("missing");
    let out = clone_of(&missing, &["--branch", "nope"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(!missing.exists());
    Ok(())
}

#[test]
fn show_and_diff_speak_tensors() -> TestResult {
    let env = fresh_env("show-diff");
    let home = env.root.join("home");
    ok(&agigit(&home, &env.root, &["key", "generate"]));
    ok(&agigit(&home, &env.root, &["init", "model"]));
    let model = env.root.join("model");
    write_model(&model, [1.0, 1.0, 1.0])?;
    std::fs::write(model.join("train.py"), "print(1)\n")?;
    ok(&agigit(&home, &model, &["commit", "-m", "base"]));

    // The working directory against HEAD: tensor b changed everywhere, by half its norm; c by
    // a quarter of its elements.
    write_model(&model, [1.0, 1.5, 1.0])?;
    std::fs::write(model.join("train.py"), "print(2)\nprint(3)\n")?;
    std::fs::write(model.join("README.md"), "new\n")?;
    let diff = json(&agigit(&home, &model, &["diff", "--json"]));
    let files = diff["files"].as_array().ok_or("files")?;
    let paths: Vec<&str> = files.iter().filter_map(|f| f["path"].as_str()).collect();
    assert_eq!(paths, ["README.md", "model.safetensors", "train.py"]);
    let st = &files[1];
    assert_eq!(st["part"], "params");
    let tensors = st["tensors"].as_array().ok_or("tensors")?;
    assert_eq!(tensors.len(), 1, "only b changed: {st}");
    assert_eq!(tensors[0]["name"], "b.weight");
    assert_eq!(tensors[0]["changed_share"], 1.0);
    assert!((tensors[0]["relative_change"].as_f64().ok_or("rel")? - 0.5).abs() < 1e-9);
    assert_eq!(tensors[0]["old"]["stored"]["encoding"], "dense");
    assert!(tensors[0]["new"]["stored"].is_null(), "not committed yet");
    assert_eq!(files[2]["bytes"]["old"], 9);
    assert_eq!(files[2]["bytes"]["new"], 18);

    // `-- <part>` and `-- <path>` narrow it; --stat is one line per file.
    let code = json(&agigit(&home, &model, &["diff", "--json", "--", "code"]));
    let paths: Vec<&str> = code["files"]
        .as_array()
        .ok_or("files")?
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(paths, ["README.md", "train.py"]);
    let one = json(&agigit(
        &home,
        &model,
        &["diff", "--json", "--", "train.py"],
    ));
    assert_eq!(one["files"].as_array().map(Vec::len), Some(1));
    let stat = ok(&agigit(&home, &model, &["diff", "--stat"]));
    assert!(
        stat.contains("model.safetensors | modified 1 tensors"),
        "{stat}"
    );
    assert!(stat.contains("3 files changed"), "{stat}");

    // Committed: `show` prints the commit and the tensor table, aligned.
    ok(&agigit(&home, &model, &["commit", "-m", "tune b"]));
    let shown = ok(&agigit(&home, &model, &["show"]));
    assert!(shown.contains("    tune b"), "{shown}");
    let lines: Vec<&str> = shown.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("tensor"))
        .ok_or("a tensor table")?;
    let table = &lines[at..];
    assert!(table[0].contains("‖Δ‖/‖W‖"), "{shown}");
    assert!(
        table[1].contains("b.weight") && table[1].contains("100.0%") && table[1].contains("0.5000"),
        "{shown}"
    );
    let shown = json(&agigit(&home, &model, &["show", "HEAD", "--json"]));
    assert_eq!(shown["message"], "tune b");
    assert_eq!(shown["files"].as_array().map(Vec::len), Some(3));
    // Two revisions, either way round; none between a commit and itself.
    let back = json(&agigit(
        &home,
        &model,
        &["diff", "HEAD", "HEAD~1", "--json"],
    ));
    assert_eq!(back["files"][1]["tensors"][0]["name"], "b.weight");
    let none = ok(&agigit(&home, &model, &["diff", "HEAD", "HEAD"]));
    assert_eq!(none.trim(), "no changes");
    // The root commit shows everything as added.
    let root = json(&agigit(&home, &model, &["show", "HEAD~1", "--json"]));
    assert!(
        root["files"]
            .as_array()
            .ok_or("files")?
            .iter()
            .all(|f| f["change"] == "added")
    );
    // A path that is not one is refused.
    let bad = agigit(&home, &model, &["diff", "--", "../etc"]);
    assert_eq!(bad.status.code(), Some(3));
    Ok(())
}

#[test]
fn each_part_has_its_history_and_can_be_taken_from_another_version() -> TestResult {
    let env = fresh_env("parts-history");
    let home = env.root.join("home");
    ok(&agigit(&home, &env.root, &["key", "generate"]));
    ok(&agigit(&home, &env.root, &["init", "model"]));
    let model = env.root.join("model");
    let train = model.join("data/train");
    std::fs::create_dir_all(&train)?;
    write_model(&model, [1.0, 1.0, 1.0])?;
    std::fs::write(train.join("a.csv"), "a,1\n")?;
    std::fs::write(model.join("train.py"), "print(1)\n")?;
    ok(&agigit(&home, &model, &["commit", "-m", "v1"]));
    std::fs::write(train.join("a.csv"), "a,2\n")?;
    std::fs::write(train.join("b.csv"), "b,2\n")?;
    ok(&agigit(&home, &model, &["commit", "-m", "data v2"]));
    write_model(&model, [3.0, 1.0, 1.0])?;
    ok(&agigit(&home, &model, &["commit", "-m", "params v3"]));

    let messages = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["log", "--json"];
        all.extend_from_slice(args);
        json(&agigit(&home, &model, &all))
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|c| c["message"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(messages(&["--", "params"]), ["params v3", "v1"]);
    assert_eq!(messages(&["--", "data/train"]), ["data v2", "v1"]);
    assert_eq!(messages(&["--", "train.py"]), ["v1"]);
    assert_eq!(messages(&["--", "code", "train"]), ["data v2", "v1"]);
    assert_eq!(messages(&[]).len(), 3);

    // Today's data with v1's weights: HEAD stays, the mix is committed.
    ok(&agigit(
        &home,
        &model,
        &["checkout", "HEAD~2", "--", "params"],
    ));
    assert_eq!(read_model(&model)?, [1.0, 1.0, 1.0]);
    assert_eq!(std::fs::read_to_string(train.join("a.csv"))?, "a,2\n");
    let status = json(&agigit(&home, &model, &["status", "--json"]));
    assert_eq!(status["branch"], "master");
    assert_eq!(status["changes"][0]["path"], "model.safetensors");
    ok(&agigit(
        &home,
        &model,
        &["commit", "-m", "v1 weights on v2 data"],
    ));
    assert_eq!(
        messages(&["--", "params"]),
        ["v1 weights on v2 data", "params v3", "v1"]
    );

    // Local work in the way is refused; --force takes v1's data exactly (b.csv goes).
    std::fs::write(train.join("a.csv"), "a,local\n")?;
    let out = agigit(&home, &model, &["checkout", "HEAD~3", "--", "data/train"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(std::fs::read_to_string(train.join("a.csv"))?, "a,local\n");
    ok(&agigit(
        &home,
        &model,
        &["checkout", "HEAD~3", "--force", "--", "data/train"],
    ));
    assert_eq!(std::fs::read_to_string(train.join("a.csv"))?, "a,1\n");
    assert!(!train.join("b.csv").exists());
    assert_eq!(
        read_model(&model)?,
        [1.0, 1.0, 1.0],
        "other parts untouched"
    );
    // A path nothing has is refused.
    let out = agigit(&home, &model, &["checkout", "HEAD", "--", "nope.txt"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    Ok(())
}

/// `model.safetensors` with four f32 matrices: `base` seeds the weights, and `update`, when
/// given, adds a planted rank-`update` change to every matrix (a merged LoRA).
fn write_lora_model(dir: &Path, update: Option<usize>) -> TestResult {
    use agigit::delta::{DType, save_safetensors, synth};
    let shapes = [
        ("q", [256, 128]),
        ("k", [256, 128]),
        ("v", [128, 256]),
        ("o", [192, 192]),
    ];
    let tensors: Vec<(&str, agigit::delta::Tensor)> = shapes
        .iter()
        .enumerate()
        .map(|(i, (name, [r, c]))| {
            let mut w = synth::gaussian(i as u64, r * c, 0.02);
            if let Some(rank) = update {
                w = synth::add(&w, &synth::low_rank(100 + i as u64, *r, *c, rank, 0.002));
            }
            (*name, synth::tensor(DType::F32, &[*r, *c], &w))
        })
        .collect();
    save_safetensors(
        dir.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (*n, t.view())),
        &std::collections::BTreeMap::new(),
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lora_fork_is_stored_at_its_rank_with_a_signed_fidelity_statement() -> TestResult {
    let env = fresh_env("lora-fork");
    let home = env.root.join("home");
    let (url, _stop) = relay(&env.root.join("relay")).await?;
    ok(&agigit(&home, &env.root, &["key", "generate"]));
    ok(&agigit(&home, &env.root, &["init", "fm", "--id", "fm"]));
    let fm = env.root.join("fm");
    write_lora_model(&fm, None)?;
    ok(&agigit(&home, &fm, &["relay", "add", &url]));
    // Outside a fork there is no base to store a change against: a lossy codec is refused.
    let out = agigit(&home, &fm, &["commit", "-m", "fm", "--codec", "lowrank"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a fork"));
    ok(&agigit(&home, &fm, &["commit", "-m", "foundation"]));
    let coord = json(&agigit(&home, &fm, &["push", "--json"]))["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();

    // Two forks with the same rank-4 fine-tune: one stored lossless, one low-rank.
    let fork = |dir: &str| {
        ok(&agigit(
            &home,
            &env.root,
            &["fork", &coord, dir, "--id", dir, "--relay", &url],
        ));
        let path = env.root.join(dir);
        write_lora_model(&path, Some(4)).expect("write the fine-tune");
        path
    };
    let exact = fork("exact");
    let lossless = json(&agigit(&home, &exact, &["commit", "-m", "lora", "--json"]));
    assert_eq!(lossless["fidelity"]["exact"], true, "{lossless}");
    let low = fork("low");
    // The device is checked before anything is written: a name that is none, and CUDA in a
    // build without it, are refused with what to do.
    let out = agigit(
        &home,
        &low,
        &[
            "commit", "-m", "lora", "--codec", "lowrank", "--device", "gpu",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("use cpu or cuda"));
    if !cfg!(feature = "cuda") {
        let out = agigit(
            &home,
            &low,
            &[
                "commit", "-m", "lora", "--codec", "lowrank", "--device", "cuda",
            ],
        );
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--features cuda"),
            "{out:?}"
        );
    }
    let lowrank = json(&agigit(
        &home,
        &low,
        &[
            "commit",
            "-m",
            "lora",
            "--json",
            "--codec",
            "lowrank",
            "--max-error",
            "0.001",
            "--factor-storage",
            "f32",
        ],
    ));
    assert_eq!(lowrank["delta_tensors"], 4, "{lowrank}");
    // The error is at the storage's precision: f32 factors, a result rounded to f32.
    let worst = lowrank["fidelity"]["worst"].as_f64().ok_or("worst")?;
    assert!(worst > 0.0 && worst < 1e-3, "{lowrank}");
    let (small, big) = (
        lowrank["stored_bytes"].as_u64().ok_or("bytes")?,
        lossless["stored_bytes"].as_u64().ok_or("bytes")?,
    );
    assert!(big > 10 * small, "low rank {small} B vs lossless {big} B");

    // The statement is part of the commit: show lists every tensor at the rank it found.
    let shown = json(&agigit(&home, &low, &["show", "--json"]));
    let tensors = shown["fidelity"]["tensors"].as_array().ok_or("tensors")?;
    assert_eq!(tensors.len(), 4);
    for t in tensors {
        assert_eq!(
            (t["codec"].as_str(), t["rank"].as_u64()),
            (Some("lowrank"), Some(4)),
            "{t}"
        );
    }
    let st = &shown["files"][0]["tensors"][0]["new"]["stored"];
    assert_eq!(
        (st["encoding"].as_str(), st["delta"].as_bool()),
        (Some("lowrank"), Some(true))
    );
    assert_eq!(st["params"]["rank"], 4);
    let err = st["rel_error"]
        .as_f64()
        .ok_or("the tensor's error, from the statement")?;
    assert!(err > 0.0 && err <= worst, "{st}");
    let text = ok(&agigit(&home, &low, &["show"]));
    assert!(text.contains("Fidelity: lossy"), "{text}");
    let oneline = ok(&agigit(&home, &low, &["log", "--oneline"]));
    assert!(
        oneline
            .lines()
            .next()
            .is_some_and(|l| l.contains("[lossy ≤")),
        "{oneline}"
    );
    assert!(
        !oneline.lines().nth(1).unwrap_or_default().contains("lossy"),
        "{oneline}"
    );

    // Defaults from the repository's config; a clone reads the commit as lossy too, and its
    // checkout says what the files were checked against.
    std::fs::write(
        low.join(".agigit/config.toml"),
        format!(
            "{}\n[commit]\ncodec = \"signscale\"\n",
            std::fs::read_to_string(low.join(".agigit/config.toml"))?
        ),
    )?;
    write_lora_model(&low, Some(8))?;
    let signed = json(&agigit(&home, &low, &["commit", "-m", "sign", "--json"]));
    assert_eq!(signed["codec"], "signscale", "{signed}");
    // The exact fine-tune is not what was stored: it stays in the working directory, shown as
    // changed, and a checkout does not overwrite it unless told to.
    let status = json(&agigit(&home, &low, &["status", "--json"]));
    assert_eq!(
        status["changes"][0]["path"], "model.safetensors",
        "{status}"
    );
    let refused = agigit(&home, &low, &["checkout", "HEAD~1"]);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    let back = ok(&agigit(&home, &low, &["checkout", "HEAD~1", "--force"]));
    assert!(back.contains("note: this commit is lossy"), "{back}");
    // Knobs that do not fit the codec are refused with what to do.
    let out = agigit(
        &home,
        &low,
        &["commit", "-m", "x", "--codec", "lossless", "--rank", "4"],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_follows_its_foundation_through_the_command_line() -> TestResult {
    let env = fresh_env("fork-follows");
    let (url, _stop) = relay(&env.root.join("relay")).await?;
    let home = |who: &str| env.root.join(format!("{who}-home"));
    for who in ["owner", "tuner", "reader"] {
        ok(&agigit(&home(who), &env.root, &["key", "generate"]));
    }
    // Foundation v1, and a fine-tune of it (a +2, c +3).
    let fm = env.root.join("fm");
    ok(&agigit(
        &home("owner"),
        &env.root,
        &["init", "fm", "--id", "fm"],
    ));
    write_model(&fm, [1.0, 1.0, 1.0])?;
    ok(&agigit(&home("owner"), &fm, &["relay", "add", &url]));
    ok(&agigit(&home("owner"), &fm, &["commit", "-m", "v1"]));
    let fm_coord = json(&agigit(&home("owner"), &fm, &["push", "--json"]))["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();
    ok(&agigit(
        &home("tuner"),
        &env.root,
        &["fork", &fm_coord, "tuned", "--id", "tuned", "--relay", &url],
    ));
    let tuned = env.root.join("tuned");
    write_model(&tuned, [3.0, 1.0, 4.0])?;
    // How it was trained, signed with the commit; a record that is not one is refused.
    let record = env.root.join("train.json");
    std::fs::write(&record, br#"{"seed": 7, "hyperparameters": {"lr": 0.0002, "epochs": 2}, "metrics": {"validation_loss": 1.25}}"#)?;
    let bad = env.root.join("bad.json");
    std::fs::write(&bad, br#"{"seed": "seven"}"#)?;
    let out = agigit(
        &home("tuner"),
        &tuned,
        &[
            "commit",
            "-m",
            "tune",
            "--record",
            bad.to_str().ok_or("path")?,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("seed"),
        "{out:?}"
    );
    ok(&agigit(
        &home("tuner"),
        &tuned,
        &[
            "commit",
            "-m",
            "tune",
            "--record",
            record.to_str().ok_or("path")?,
        ],
    ));
    let shown = json(&agigit(&home("tuner"), &tuned, &["show", "--json"]));
    let training = &shown["training"];
    assert_eq!(training["record"]["seed"], 7, "{shown}");
    assert_eq!(training["record"]["metrics"]["validation_loss"], 1.25);
    assert_eq!(training["foundation"]["repository"], fm_coord.as_str());
    assert!(training["trained_from"]["params"].is_string());
    ok(&agigit(&home("tuner"), &tuned, &["push"]));

    // Where these weights came from: the fine-tune with its record, then the foundation's line
    // (the fork holds it), each under the repository it belongs to.
    let line = json(&agigit(
        &home("tuner"),
        &tuned,
        &["log", "--lineage", "--json"],
    ));
    let line = line.as_array().ok_or("a lineage list")?;
    assert_eq!(line[0]["message"], "tune", "{line:?}");
    assert!(line[0]["repository"].is_null(), "{line:?}");
    assert_eq!(line[0]["record"]["seed"], 7);
    assert_eq!(line[0]["fork_of"]["repository"], fm_coord.as_str());
    let v1 = line
        .iter()
        .find(|s| s["message"] == "v1")
        .ok_or("the foundation's v1 in the lineage")?;
    assert_eq!(v1["repository"], fm_coord.as_str(), "{line:?}");
    assert!(v1["record"].is_null());
    // Each step names its part trees: the fine-tune's parameters are not the foundation's.
    assert!(line[0]["trained_from"]["params"].is_string(), "{line:?}");
    assert_ne!(
        line[0]["trained_from"]["params"],
        v1["trained_from"]["params"]
    );
    let text = ok(&agigit(&home("tuner"), &tuned, &["log", "--lineage"]));
    for expected in [
        "── this repository".to_owned(),
        format!("── {fm_coord}"),
        "trained: ".to_owned(),
        "forked from".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in\n{text}");
    }

    // The foundation moves on: v2 changes a and b.
    write_model(&fm, [2.0, 5.0, 1.0])?;
    let v2 = json(&agigit(
        &home("owner"),
        &fm,
        &["commit", "-m", "v2", "--json"],
    ))["commit"]
        .as_str()
        .ok_or("id")?
        .to_owned();
    ok(&agigit(&home("owner"), &fm, &["push"]));

    // The fork brings the foundation's new commits in, under foundation/…, and nothing else
    // moves; then re-bases onto it: each tensor is new + (fork − old).
    let fetched = json(&agigit(
        &home("tuner"),
        &tuned,
        &["fetch", "--foundation", "--json"],
    ));
    assert_eq!(
        fetched["branches"]["master"]["tip"],
        v2.as_str(),
        "{fetched}"
    );
    assert_eq!(read_model(&tuned)?, [3.0, 1.0, 4.0]);
    let rebased = json(&agigit(
        &home("tuner"),
        &tuned,
        &["rebase", "--fork", "foundation/master", "--json"],
    ));
    assert_eq!(rebased["commits"], 1, "{rebased}");
    assert_eq!(read_model(&tuned)?, [4.0, 5.0, 4.0]);
    let head = json(&agigit(
        &home("tuner"),
        &tuned,
        &["log", "-n", "1", "--json"],
    ));
    assert_eq!(head[0]["fork_of"]["commit"], v2.as_str());
    let pushed = json(&agigit(&home("tuner"), &tuned, &["push", "--json"]));
    let tuned_coord = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();

    // Anyone's clone of the fork is bit-exact against the expected tensors.
    let copy = env.root.join("copy");
    ok(&agigit(
        &home("reader"),
        &env.root,
        &[
            "clone",
            &tuned_coord,
            copy.to_str().ok_or("path")?,
            "--relay",
            &url,
        ],
    ));
    assert_eq!(read_model(&copy)?, [4.0, 5.0, 4.0]);
    let status = json(&agigit(&home("reader"), &copy, &["status", "--json"]));
    assert_eq!(status["changes"].as_array().map(Vec::len), Some(0));
    // Outside a fork there is no foundation to fetch.
    let out = agigit(&home("owner"), &fm, &["fetch", "--foundation"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_travel_with_the_state() -> TestResult {
    let env = fresh_env("tags");
    let (url, _stop) = relay(&env.root.join("relay")).await?;
    let home = |who: &str| env.root.join(format!("{who}-home"));
    for who in ["owner", "reader"] {
        ok(&agigit(&home(who), &env.root, &["key", "generate"]));
    }
    let model = env.root.join("model");
    ok(&agigit(&home("owner"), &env.root, &["init", "model"]));
    ok(&agigit(&home("owner"), &model, &["relay", "add", &url]));
    write_model(&model, [1.0, 1.0, 1.0])?;
    ok(&agigit(&home("owner"), &model, &["commit", "-m", "one"]));
    ok(&agigit(
        &home("owner"),
        &model,
        &["tag", "v1", "-m", "first release\nbf16 weights"],
    ));
    write_model(&model, [2.0, 1.0, 1.0])?;
    ok(&agigit(&home("owner"), &model, &["commit", "-m", "two"]));
    ok(&agigit(&home("owner"), &model, &["tag", "v2"]));
    // A tag on a commit no pushed branch holds stays here.
    ok(&agigit(&home("owner"), &model, &["branch", "side"]));
    ok(&agigit(&home("owner"), &model, &["checkout", "side"]));
    std::fs::write(model.join("notes.txt"), "side")?;
    ok(&agigit(&home("owner"), &model, &["commit", "-m", "side"]));
    ok(&agigit(&home("owner"), &model, &["tag", "wip"]));
    ok(&agigit(&home("owner"), &model, &["checkout", "master"]));
    // An existing tag is not moved without --force.
    let out = agigit(&home("owner"), &model, &["tag", "v1", "HEAD"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    let pushed = json(&agigit(&home("owner"), &model, &["push", "--json"]));
    assert_eq!(pushed["tags"], serde_json::json!(["v1", "v2"]), "{pushed}");
    let coordinate = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();
    // Nothing new but a tag: the push publishes a state for it.
    ok(&agigit(
        &home("owner"),
        &model,
        &["tag", "v2.1", "-m", "same weights, new name"],
    ));
    let again = json(&agigit(&home("owner"), &model, &["push", "--json"]));
    assert_eq!(again["tags"], serde_json::json!(["v2.1"]), "{again}");

    // A clone has them, messages and all, and takes revisions by them.
    let copy = env.root.join("copy");
    ok(&agigit(
        &home("reader"),
        &env.root,
        &[
            "clone",
            &coordinate,
            copy.to_str().ok_or("path")?,
            "--relay",
            &url,
        ],
    ));
    let tags = json(&agigit(&home("reader"), &copy, &["tag", "--json"]));
    let names: Vec<&str> = tags
        .as_array()
        .ok_or("tags")?
        .iter()
        .filter_map(|t| t["tag"].as_str())
        .collect();
    assert_eq!(names, ["v1", "v2", "v2.1"]);
    assert_eq!(tags[0]["message"], "first release\nbf16 weights");
    assert!(tags[1]["message"].is_null());
    ok(&agigit(&home("reader"), &copy, &["checkout", "v1"]));
    assert_eq!(read_model(&copy)?, [1.0, 1.0, 1.0]);

    // Moved here with --force, the remote's v1 stays where it is, and the push says so.
    ok(&agigit(
        &home("owner"),
        &model,
        &["tag", "v1", "HEAD", "--force"],
    ));
    let moved = json(&agigit(&home("owner"), &model, &["push", "--json"]));
    assert_eq!(moved["tags_rejected"], serde_json::json!(["v1"]), "{moved}");
    let deleted = json(&agigit(
        &home("owner"),
        &model,
        &["tag", "-d", "wip", "--json"],
    ));
    assert!(deleted["commit"].is_string());
    assert!(
        agigit(&home("owner"), &model, &["checkout", "wip"])
            .status
            .code()
            == Some(3)
    );
    Ok(())
}
