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

/// [`agigit`] with extra environment variables (`SSL_CERT_FILE`, say).
pub(crate) fn agigit_env(home: &Path, cwd: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agigit"));
    command
        .args(args)
        .current_dir(cwd)
        .env("AGIGIT_HOME", home)
        .env_remove("AGIGIT_NSEC")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run agigit")
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

/// A child process killed on drop.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `port` on loopback takes connections.
pub(crate) fn wait_for_port(port: u16, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not start on port {port}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `agigit serve` over `dirs` as the user of `home`, on a free loopback port; stopped on drop.
pub(crate) fn serve(
    home: &Path,
    dirs: &[&Path],
) -> Result<(Killed, u16), Box<dyn std::error::Error>> {
    let port = free_port();
    let child = Killed(
        Command::new(env!("CARGO_BIN_EXE_agigit"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(dirs)
            .env("AGIGIT_HOME", home)
            .env_remove("AGIGIT_NSEC")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    wait_for_port(port, "agigit serve")?;
    Ok((child, port))
}

/// One HTTP/1.1 GET on loopback: the status line's code and the body.
pub(crate) fn http_get(
    port: u16,
    path: &str,
    accept: &str,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    http_request(port, "GET", path, &[("Accept", accept)], "")
}

/// One HTTP/1.1 request on loopback (`Host: 127.0.0.1:<port>`, then `headers`, then `body`
/// with its length): the status line's code and the body.
pub(crate) fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    use std::io::{Read as _, Write as _};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    write!(tcp, "{head}\r\n{body}")?;
    let mut response = String::new();
    tcp.read_to_string(&mut response)?;
    let code = response
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
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

/// Every file under `dir` (a relay's data: its event database and its journal, its blobs).
pub(crate) fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// agigit-relay processes on loopback, each with its data in `root/relay-<i>`; stopped, and
/// `root` removed, on drop.
pub(crate) struct Relays {
    root: PathBuf,
    ports: Vec<u16>,
    configs: Vec<Option<PathBuf>>,
    children: Vec<Option<Child>>,
}

impl Relays {
    /// A fresh `root` and `n` relays in it, relay `i` with the TOML file `config(i)` if any.
    pub(crate) fn start(
        root: &Path,
        n: usize,
        config: impl Fn(usize) -> Option<PathBuf>,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let _ = std::fs::remove_dir_all(root);
        std::fs::create_dir_all(root)?;
        let mut relays = Relays {
            root: root.to_owned(),
            ports: (0..n).map(|_| free_port()).collect(),
            configs: (0..n).map(config).collect(),
            children: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            relays.restart(i)?;
        }
        Ok(relays)
    }

    /// Relay `i`'s data directory.
    pub(crate) fn data(&self, i: usize) -> PathBuf {
        self.root.join(format!("relay-{i}"))
    }

    /// Every relay's `ws://` URL.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| url(*p)).collect()
    }

    /// Every relay's port.
    pub(crate) fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Stops relay `i`.
    pub(crate) fn stop(&mut self, i: usize) {
        if let Some(mut r) = self.children[i].take() {
            let _ = r.kill();
            let _ = r.wait();
        }
    }

    /// Relay `i` reads `config` from its next (re)start on.
    pub(crate) fn set_config(&mut self, i: usize, config: PathBuf) {
        self.configs[i] = Some(config);
    }

    /// Starts relay `i` again, on its port, with its data and key.
    pub(crate) fn restart(&mut self, i: usize) -> Result<(), Box<dyn std::error::Error>> {
        self.stop(i);
        let data = self.data(i);
        self.children[i] = Some(start_relay_with(
            self.ports[i],
            &data,
            &data.join("relay.key"),
            self.configs[i].as_deref(),
        )?);
        Ok(())
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.stop(i);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A new key in `root/home`, and a repository `root/model` pushing to every relay of `urls`;
/// returns the home and the model's directory.
pub(crate) fn model_on(root: &Path, urls: &[String]) -> (PathBuf, PathBuf) {
    let home = root.join("home");
    let model = root.join("model");
    ok(&agigit(&home, root, &["key", "generate"]));
    ok(&agigit(&home, root, &["init", "model"]));
    for u in urls {
        ok(&agigit(&home, &model, &["relay", "add", u]));
    }
    (home, model)
}
