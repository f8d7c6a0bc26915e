//! Interop with a Blossom client no one here wrote: blossom-client-sdk 5.1.0 (npm; by the
//! spec's author), run by the machine's Node.js against agigit-relay on loopback, through
//! upload (BUD-06 check, BUD-02 PUT with a BUD-11 token in base64url), has, download, ranges,
//! list, delete, a browser's CORS preflight and a refusal read while the body is in flight
//! (`tests/blossom-sdk/run.mjs`).
//!
//! Needs `npm ci --prefix crates/agigit-relay/tests/blossom-sdk` (what `.ci/run` does); without
//! it the test is skipped with a message, unless `AGIGIT_REQUIRE_BLOSSOM_SDK=1` (set by CI)
//! makes that a failure.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agigit_relay::server::{Info, Limits, Relay, serve};
use agigit_relay::{BlossomConfig, FsBlobStore, SqliteEventStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The longest the SDK's run may take.
const LIMIT: Duration = Duration::from_secs(120);

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/blossom-sdk")
}

/// Whether the SDK and Node.js are here; `Err` when they are required and missing.
fn available() -> Result<bool, String> {
    let required = std::env::var("AGIGIT_REQUIRE_BLOSSOM_SDK").is_ok_and(|v| v == "1");
    let installed = sdk_dir()
        .join("node_modules/blossom-client-sdk/package.json")
        .exists();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    match (installed && node, required) {
        (true, _) => Ok(true),
        (false, true) => Err(format!(
            "AGIGIT_REQUIRE_BLOSSOM_SDK=1 but {}: run `npm ci --prefix {}`",
            if node {
                "the SDK is not installed"
            } else {
                "node is not on PATH"
            },
            sdk_dir().display()
        )),
        (false, false) => {
            eprintln!(
                "skipping: blossom-client-sdk is not installed (npm ci --prefix {})",
                sdk_dir().display()
            );
            Ok(false)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blossom_client_sdk_uploads_reads_lists_and_deletes() -> TestResult {
    if !available()? {
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("agigit-blossom-sdk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let relay = Relay::new(
        Arc::new(SqliteEventStore::in_memory()?),
        Limits::default(),
        Info::default(),
    )
    .with_blobs(Arc::new(FsBlobStore::open(&dir)?), BlossomConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, relay, async {
        let _ = stopped.await;
    }));

    let url = format!("http://{addr}");
    let run = tokio::task::spawn_blocking(move || -> Result<(bool, String), String> {
        let mut child = Command::new("node")
            .arg("run.mjs")
            .arg(&url)
            .current_dir(sdk_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("node: {e}"))?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if started.elapsed() > LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the SDK's run took over {LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut out = String::new();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read>),
        ]
        .into_iter()
        .flatten()
        {
            let mut pipe = pipe;
            let _ = pipe.read_to_string(&mut out);
        }
        Ok((status.success(), out))
    })
    .await?;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    let _ = std::fs::remove_dir_all(&dir);
    let (passed, out) = run?;
    eprintln!("{out}");
    assert!(passed, "blossom-client-sdk against agigit-relay:\n{out}");
    assert!(out.contains("all checks passed"), "{out}");
    Ok(())
}
