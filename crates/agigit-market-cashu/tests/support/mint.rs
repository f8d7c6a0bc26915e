//! A throw-away Cashu mint for tests: cdk's own `cdk-mintd` with its fake Lightning backend and
//! SQLite, in a temporary directory, on a free loopback port; killed and removed on drop.
//!
//! Without `cdk-mintd` on PATH (or in `AGIGIT_CDK_MINTD`) [`start_mint`] returns `None` after a
//! message, unless `AGIGIT_REQUIRE_CDK_MINTD=1` — what `.ci/run` sets after installing it — makes
//! that a failure. Shared by the market's and the command line's tests (`#[path]`).

#![allow(dead_code, reason = "each test uses what it needs")]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throw-away mint: its work directory and process, both gone on drop.
pub(crate) struct TestMint {
    /// The mint's URL (`http://127.0.0.1:PORT`).
    pub(crate) url: String,
    /// Its work directory (tests may keep their own files under it).
    pub(crate) dir: PathBuf,
    child: Child,
}

impl Drop for TestMint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn mintd() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AGIGIT_CDK_MINTD") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("cdk-mintd"))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A fixed BIP-39 mnemonic for a mint that lives for one test (the standard test vector).
const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

pub(crate) fn start_mint(name: &str) -> Option<TestMint> {
    let Some(bin) = mintd() else {
        let required = std::env::var("AGIGIT_REQUIRE_CDK_MINTD").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "AGIGIT_REQUIRE_CDK_MINTD=1 but no cdk-mintd on PATH (cargo install cdk-mintd \
             --version 0.18.3 --no-default-features --features fakewallet,sqlite)"
        );
        eprintln!("skipping {name}: cdk-mintd is not installed");
        return None;
    };
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("agigit-mint-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the mint's directory");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[info]\nurl = \"{url}/\"\nlisten_host = \"127.0.0.1\"\nlisten_port = {port}\n\
             mnemonic = \"env:CDK_MINTD_MNEMONIC\"\n\n\
             [info.logging]\noutput = \"stderr\"\nconsole_level = \"warn\"\n\n\
             [database]\nengine = \"sqlite\"\n\n\
             [payment_backend]\nbackend = \"fakewallet\"\n\n\
             [fake_wallet]\nfee_percent = 0.0\nreserve_fee_min = 0\n"
        ),
    )
    .expect("the mint's config");
    let run = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--work-dir")
            .arg(&dir)
            .args(args)
            .env("CDK_MINTD_MNEMONIC", MNEMONIC)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        c
    };
    let status = run(&["config", "init", "--new-mint", "--file"])
        .arg(&config)
        .status()
        .expect("cdk-mintd runs");
    assert!(status.success(), "cdk-mintd config init failed");
    let child = run(&[]).spawn().expect("cdk-mintd starts");
    let mint = TestMint { url, dir, child };
    wait_listening(port, Duration::from_secs(60));
    Some(mint)
}

fn wait_listening(port: u16, limit: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < limit,
            "the mint did not listen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
