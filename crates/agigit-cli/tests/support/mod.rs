//! What every test of the binary needs: running it as a user, and reading what it printed.

#![allow(dead_code, reason = "each test file uses its share")]

use std::path::Path;
use std::process::{Command, Output};

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
