//! The `agigit` binary end to end, two users, relays on loopback started by the test itself.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use agigit_relay::server::{Info, Limits, Relay, serve};
use agigit_relay::{BlossomConfig, FsBlobStore, SqliteEventStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Env {
    root: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn agigit(home: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agigit"))
        .args(args)
        .current_dir(cwd)
        .env("AGIGIT_HOME", home)
        .env_remove("AGIGIT_NSEC")
        .output()
        .expect("run agigit")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "agigit failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn relay(
    dir: &Path,
) -> Result<(String, tokio::sync::oneshot::Sender<()>), Box<dyn std::error::Error>> {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, relay, async {
        let _ = stopped.await;
    }));
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
        Some(1),
        "an existing key is not overwritten"
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

    // A malformed safetensors file: refused by name, exit code 1, nothing committed.
    std::fs::write(
        model.join("bad.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{",
    )?;
    let out = agigit(&owner_home, &model, &["commit", "-m", "broken"]);
    assert_eq!(out.status.code(), Some(1));
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
    assert_eq!(out.status.code(), Some(1));
    assert!(!nowhere.exists());

    // Usage errors exit with 2; an unknown revision with 1 and a hint.
    assert_eq!(
        agigit(&owner_home, &model, &["frobnicate"]).status.code(),
        Some(2)
    );
    let out = agigit(&owner_home, &model, &["checkout", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown revision"));
    Ok(())
}
