//! A throw-away PostgreSQL server for tests: `initdb` in a temporary directory, started on a free
//! loopback port, stopped and removed on drop. Under root (as in CI), the server runs as the
//! `postgres` user through `runuser`.
//!
//! When no PostgreSQL binaries are found, [`TempPostgres::start`] returns `Ok(None)` (the test
//! is skipped with a message), unless `AGIGIT_REQUIRE_POSTGRES=1` — what `.ci/run` sets — makes
//! that an error.

#![allow(dead_code, reason = "each test binary uses a part")]

use std::path::{Path, PathBuf};
use std::process::Command;

type Error = Box<dyn std::error::Error>;

/// A running server.
pub(crate) struct TempPostgres {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// A libpq connection string for it.
    pub(crate) url: String,
}

fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("AGIGIT_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl TempPostgres {
    /// Starts a server, or `Ok(None)` when PostgreSQL is not installed and not required.
    pub(crate) fn start(name: &str) -> Result<Option<Self>, Error> {
        let required = std::env::var("AGIGIT_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let Some(bin) = bin_dir() else {
            if required {
                return Err("AGIGIT_REQUIRE_POSTGRES=1 but no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql, or set AGIGIT_PG_BIN)".into());
            }
            eprintln!("skipping {name}: PostgreSQL is not installed (apt-get install postgresql)");
            return Ok(None);
        };
        let dir = std::env::temp_dir().join(format!("agigit-pg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let server = TempPostgres {
            url: format!("host=127.0.0.1 port={port} user=agigit dbname=postgres"),
            dir,
            bin,
            as_postgres,
        };
        let data = server.dir.join("data");
        server.pg("initdb", |c| {
            c.arg("-D")
                .arg(&data)
                .args(["-A", "trust", "-U", "agigit", "--no-sync", "-E", "UTF8"]);
        })?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            server.dir.display()
        );
        server.pg("pg_ctl", |c| {
            c.arg("-D")
                .arg(&data)
                .args(["-o", &options, "-w", "-t", "60", "-l"])
                .arg(server.dir.join("log"))
                .arg("start");
        })?;
        Ok(Some(server))
    }

    fn pg(&self, tool: &str, args: impl FnOnce(&mut Command)) -> Result<(), Error> {
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        };
        args(&mut c);
        run(&mut c)
    }

    /// The server's data directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

fn run(c: &mut Command) -> Result<(), Error> {
    let out = c.output()?;
    if !out.status.success() {
        return Err(format!(
            "{c:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.pg("pg_ctl", |c| {
            c.arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"]);
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
