//! What every test of the binary needs: running it as a user, and reading what it printed.

#![allow(dead_code, reason = "each test file uses its share")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `agigit` in `cwd` as the user whose configuration and key live in `home`.
pub(crate) fn agigit(home: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agigit"))
        .args(args)
        .current_dir(cwd)
        .env("AGIGIT_HOME", home)
        .env_remove("AGIGIT_NSEC")
        .output()
        .expect("run agigit")
}

/// Its standard output, after checking that it succeeded.
pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "agigit failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Its `--json` output, after checking that it succeeded.
pub(crate) fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

/// A free port on loopback.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The relay binary `cargo test --workspace` builds next to this package's.
pub(crate) fn relay_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_agigit")).with_file_name("agigit-relay");
    assert!(
        path.exists(),
        "{} is not built: run the workspace's tests (`cargo test --workspace`) or `cargo build -p agigit-relay` first",
        path.display()
    );
    path
}

/// `ws://…` of a relay's port.
pub(crate) fn url(port: u16) -> String {
    format!("ws://127.0.0.1:{port}")
}

/// Starts an agigit-relay process on `port` with its data in `dir` and its key in `key`, and
/// waits until it takes connections.
pub(crate) fn start_relay(
    port: u16,
    dir: &Path,
    key: &Path,
) -> Result<Child, Box<dyn std::error::Error>> {
    start_relay_with(port, dir, key, None)
}

/// [`start_relay`] with the TOML configuration file `config`, when given.
pub(crate) fn start_relay_with(
    port: u16,
    dir: &Path,
    key: &Path,
    config: Option<&Path>,
) -> Result<Child, Box<dyn std::error::Error>> {
    let mut command = Command::new(relay_binary());
    command
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(dir)
        .arg("--key-file")
        .arg(key);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            return Err(format!("the relay exited at start: {status}").into());
        }
        if started.elapsed() > Duration::from_secs(20) {
            return Err("the relay did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child)
}

/// Every blob file a relay stores (`blobs/<2 hex>/<64 hex>`).
pub(crate) fn blob_files(relay_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(relay_dir.join("blobs")) else {
        return out;
    };
    for d in shards.flatten().filter(|d| d.path().is_dir()) {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(f.path());
            }
        }
    }
    out
}
