//! A throw-away S3-compatible server for tests: `s3s-fs` (the s3s project's S3 server over a
//! directory) on a free loopback port, its data in a temporary directory, stopped and removed
//! on drop. Each bucket is a directory under it.
//!
//! When no `s3s-fs` binary is found (`AGIGIT_S3S_FS`, then `PATH`, then `~/.cargo/bin`),
//! [`TempS3::start`] returns `Ok(None)` (the test is skipped with a message), unless
//! `AGIGIT_REQUIRE_S3=1` — what `.ci/run` sets, after `cargo install s3s-fs` — makes that an
//! error.

#![allow(dead_code, reason = "each test binary uses a part")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

/// The server's credentials.
pub(crate) const ACCESS_KEY: &str = "agigit-test";
/// The server's secret.
pub(crate) const SECRET_KEY: &str = "agigit-test-secret-key";

/// A running server.
pub(crate) struct TempS3 {
    child: Child,
    /// Its data directory: one directory per bucket.
    pub(crate) dir: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub(crate) endpoint: String,
}

fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AGIGIT_S3S_FS") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("s3s-fs"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        Some(home.join("bin").join("s3s-fs")).filter(|p| p.is_file())
    })
}

impl TempS3 {
    /// Starts a server, or `Ok(None)` when `s3s-fs` is not installed and not required.
    pub(crate) fn start(name: &str) -> Result<Option<Self>, Error> {
        let required = std::env::var("AGIGIT_REQUIRE_S3").is_ok_and(|v| v == "1");
        let Some(bin) = binary() else {
            if required {
                return Err("AGIGIT_REQUIRE_S3=1 but no s3s-fs binary (cargo install --locked s3s-fs@0.14.1 --features binary, or set AGIGIT_S3S_FS)".into());
            }
            eprintln!(
                "skipping {name}: s3s-fs is not installed (cargo install --locked s3s-fs@0.14.1 --features binary)"
            );
            return Ok(None);
        };
        let dir = std::env::temp_dir().join(format!("agigit-s3-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut server = TempS3 {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                return Err(format!("s3s-fs exited at start: {status}").into());
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err("s3s-fs did not start within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(server))
    }

    /// Makes an empty bucket `name`.
    pub(crate) fn bucket(&self, name: &str) -> Result<String, Error> {
        std::fs::create_dir_all(self.dir.join(name))?;
        Ok(name.to_owned())
    }

    /// Every object file in bucket `name` (s3s-fs keeps each as a file under its key).
    pub(crate) fn objects(&self, name: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.join(name)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    stack.push(path);
                } else if is_hash(&path) {
                    out.push(path);
                }
            }
        }
        out
    }
}

/// Whether the file's name is a 64-digit hex hash (an object, not the server's own files).
fn is_hash(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Drop for TempS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
