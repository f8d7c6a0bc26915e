//! `agigit`: git for AI models over Nostr, on the command line.
//!
//! Exit codes: 0 success, 1 the operation failed (the message says what to do), 2 usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agigit::event::nostr::prelude::{Keys, ToBech32};
use agigit::event::{RepoCoordinate, RepoId};
use agigit::net::{BlobClient, BlobClientOptions, Network, PoolOptions, RelayPool, Roles};
use agigit::shard::Leopard;
use agigit::{Change, PushOptions, Repository};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// git for AI models, decentralized over Nostr.
#[derive(Debug, Parser)]
#[command(name = "agigit", version)]
struct Cli {
    /// Run as if started in this directory.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print results as JSON (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a repository in DIR (default: here); files already there are kept.
    Init {
        /// The directory.
        dir: Option<PathBuf>,
        /// The repository id used when pushing (default: the directory's name).
        #[arg(long)]
        id: Option<String>,
    },
    /// Clone a repository (`30717:<owner hex>:<id>`) from relays into DIR.
    Clone {
        /// The repository's coordinate.
        coordinate: String,
        /// The directory (default: the repository id).
        dir: Option<PathBuf>,
        /// A relay to fetch from (repeat for several; each also serves blobs).
        #[arg(long = "relay", required = true)]
        relays: Vec<String>,
    },
    /// Manage relays.
    Relay {
        #[command(subcommand)]
        action: RelayAction,
    },
    /// Show how the working directory differs from HEAD.
    Status,
    /// Check the working directory's files (safetensors headers included) and show what the
    /// next commit will record. agigit has no staging area: a commit records the directory.
    Add,
    /// Record the working directory as a new commit.
    Commit {
        /// The message.
        #[arg(short, long)]
        message: String,
    },
    /// Show history.
    Log {
        /// The revision to start from.
        #[arg(default_value = "HEAD")]
        rev: String,
        /// At most this many commits.
        #[arg(short = 'n', long, default_value_t = 20)]
        max: usize,
    },
    /// List branches, or create one at HEAD.
    Branch {
        /// A branch to create.
        name: Option<String>,
    },
    /// Switch to a branch or commit.
    Checkout {
        /// Branch or commit id.
        rev: String,
        /// Discard uncommitted changes to tracked files.
        #[arg(long)]
        force: bool,
    },
    /// Push the current branch to the push relays.
    Push,
    /// Fetch and fast-forward the current branch from the fetch relays.
    Pull,
    /// Fetch the remote branch without touching local branches or files.
    Fetch,
    /// Manage your Nostr key.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
}

#[derive(Debug, Subcommand)]
enum RelayAction {
    /// Add a relay (both roles unless one is given).
    Add {
        /// ws://host:port
        url: String,
        /// Fetch from it only.
        #[arg(long)]
        fetch: bool,
        /// Push to it only.
        #[arg(long)]
        push: bool,
    },
    /// Remove a relay (or one of its roles).
    Remove {
        /// ws://host:port
        url: String,
        /// Remove only the fetch role.
        #[arg(long)]
        fetch: bool,
        /// Remove only the push role.
        #[arg(long)]
        push: bool,
    },
    /// List relays and their roles.
    List,
}

#[derive(Debug, Subcommand)]
enum KeyAction {
    /// Create a new key in the key file (mode 0600).
    Generate {
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Store an existing secret key (nsec… or hex) in the key file.
    Import {
        /// The secret key.
        secret: String,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Show the public key (npub and hex).
    Show,
}

/// `.agigit/config.toml`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoConfig {
    /// The repository id used when pushing.
    #[serde(default)]
    id: Option<String>,
    /// The repository this one was cloned from.
    #[serde(default)]
    remote: Option<String>,
    #[serde(default, rename = "relay")]
    relays: Vec<RelayEntry>,
    #[serde(default)]
    push: PushConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct RelayEntry {
    url: String,
    fetch: bool,
    push: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushConfig {
    /// Data shards per segment.
    k: usize,
    /// Shards per segment.
    n: usize,
    /// Bytes per segment.
    segment_size: usize,
    /// Relays that must accept each step.
    min_accepted: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            k: 4,
            n: 10,
            segment_size: 1 << 20,
            min_accepted: 1,
        }
    }
}

/// An error for the user: what happened and what to do.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

type Result<T> = std::result::Result<T, Failure>;

fn config_path(repo: &Repository) -> PathBuf {
    repo.root().join(".agigit").join("config.toml")
}

fn load_config(repo: &Repository) -> Result<RepoConfig> {
    let path = config_path(repo);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| Failure(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RepoConfig::default()),
        Err(e) => Err(Failure(format!("{}: {e}", path.display()))),
    }
}

fn save_config(repo: &Repository, config: &RepoConfig) -> Result<()> {
    let path = config_path(repo);
    let text = toml::to_string_pretty(config)?;
    let temp = path.with_extension("toml.tmp");
    std::fs::write(&temp, text).map_err(|e| Failure(format!("{}: {e}", temp.display())))?;
    std::fs::rename(&temp, &path).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    Ok(())
}

/// The user-level directory: `$AGIGIT_HOME`, else `$HOME/.config/agigit`.
fn home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("AGIGIT_HOME") {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| Failure("set HOME or AGIGIT_HOME to say where your key lives".into()))?;
    Ok(Path::new(&home).join(".config").join("agigit"))
}

/// The signing key: `$AGIGIT_NSEC`, else the key file.
fn keys() -> Result<Keys> {
    if let Ok(secret) = std::env::var("AGIGIT_NSEC") {
        return Keys::parse(secret.trim()).map_err(|e| {
            Failure(format!(
                "AGIGIT_NSEC is not a secret key (nsec… or hex): {e}"
            ))
        });
    }
    let path = home()?.join("key");
    let text = std::fs::read_to_string(&path).map_err(|_| {
        Failure(format!(
            "no key: run `agigit key generate` (or `agigit key import <nsec>`), or set AGIGIT_NSEC; looked in {}",
            path.display()
        ))
    })?;
    Keys::parse(text.trim())
        .map_err(|e| Failure(format!("{}: not a secret key: {e}", path.display())))
}

fn write_key(secret_hex: &str, force: bool) -> Result<PathBuf> {
    let dir = home()?;
    std::fs::create_dir_all(&dir).map_err(|e| Failure(format!("{}: {e}", dir.display())))?;
    let path = dir.join("key");
    if path.exists() && !force {
        return Err(Failure(format!(
            "{} already holds a key: pass --force to replace it (the old key is lost)",
            path.display()
        )));
    }
    let temp = dir.join("key.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temp)
        .map_err(|e| Failure(format!("{}: {e}", temp.display())))?;
    std::io::Write::write_all(&mut file, format!("{secret_hex}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, &path)?;
    Ok(path)
}

fn network(keys: &Keys, relays: &[RelayEntry]) -> Result<Network> {
    let net = Network::new(
        RelayPool::new(PoolOptions::default(), Some(keys.clone())),
        BlobClient::new(Some(keys.clone()), BlobClientOptions::default()),
    );
    for r in relays {
        let roles = Roles {
            fetch: r.fetch,
            push: r.push,
        };
        net.pool.add_relay(&r.url, roles)?;
        // An agigit relay serves Blossom on the same port.
        let http = r.url.replacen("ws://", "http://", 1);
        net.add_blob_server(http.trim_end_matches('/'), roles)?;
    }
    Ok(net)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn print(json: bool, value: serde_json::Value, human: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{text}");
        }
    }
}

fn change_name(c: Change) -> &'static str {
    match c {
        Change::Added => "added",
        Change::Modified => "modified",
        Change::Deleted => "deleted",
    }
}

fn open(cli: &Cli) -> Result<Repository> {
    let start = cli.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    Ok(Repository::discover(start)?)
}

fn current_branch(repo: &Repository) -> Result<String> {
    repo.current_branch()?
        .and_then(|b| b.branch_name().map(str::to_owned))
        .ok_or_else(|| Failure("HEAD is detached: check out a branch first".into()))
}

fn run(cli: &Cli) -> Result<()> {
    let json = cli.json;
    match &cli.command {
        Command::Init { dir, id } => {
            let dir = dir
                .clone()
                .or_else(|| cli.dir.clone())
                .unwrap_or_else(|| PathBuf::from("."));
            std::fs::create_dir_all(&dir)?;
            let repo = Repository::init(&dir)?;
            let id = match id {
                Some(id) => id.clone(),
                None => std::fs::canonicalize(&dir)?
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model".into()),
            };
            RepoId::new(id.clone()).map_err(|e| Failure(format!("repository id {id:?}: {e}")))?;
            save_config(
                &repo,
                &RepoConfig {
                    id: Some(id.clone()),
                    ..RepoConfig::default()
                },
            )?;
            print(
                json,
                serde_json::json!({"initialized": dir, "id": id}),
                || {
                    format!(
                        "initialized an empty agigit repository {id:?} in {}",
                        dir.display()
                    )
                },
            );
        }
        Command::Clone {
            coordinate,
            dir,
            relays,
        } => {
            let coord: RepoCoordinate = coordinate.parse()?;
            let dir = dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(coord.id.as_str()));
            if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
                return Err(Failure(format!(
                    "{} exists and is not empty",
                    dir.display()
                )));
            }
            std::fs::create_dir_all(&dir)?;
            let result = (|| -> Result<agigit::PullReport> {
                let repo = Repository::init(&dir)?;
                let entries: Vec<RelayEntry> = relays
                    .iter()
                    .map(|u| RelayEntry {
                        url: u.clone(),
                        fetch: true,
                        push: true,
                    })
                    .collect();
                save_config(
                    &repo,
                    &RepoConfig {
                        id: Some(coord.id.as_str().to_owned()),
                        remote: Some(coordinate.clone()),
                        relays: entries.clone(),
                        ..RepoConfig::default()
                    },
                )?;
                let keys = keys().unwrap_or_else(|_| Keys::generate());
                let rt = runtime()?;
                let _entered = rt.enter();
                let net = network(&keys, &entries)?;
                Ok(rt.block_on(repo.pull(&net, &coord, agigit::DEFAULT_BRANCH))?)
            })();
            match result {
                Ok(report) => print(
                    json,
                    serde_json::json!({"cloned": coordinate, "dir": dir, "packs": report.packs, "objects": report.objects}),
                    || {
                        format!(
                            "cloned {coordinate} into {} ({} packs, {} objects)",
                            dir.display(),
                            report.packs,
                            report.objects
                        )
                    },
                ),
                Err(e) => {
                    // Leave no half-made clone behind.
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            }
        }
        Command::Relay { action } => {
            let repo = open(cli)?;
            let mut config = load_config(&repo)?;
            match action {
                RelayAction::Add { url, fetch, push } => {
                    agigit::net::pool::check_relay_url(url)?;
                    let (fetch, push) = if !fetch && !push {
                        (true, true)
                    } else {
                        (*fetch, *push)
                    };
                    match config.relays.iter_mut().find(|r| r.url == *url) {
                        Some(r) => {
                            r.fetch |= fetch;
                            r.push |= push;
                        }
                        None => config.relays.push(RelayEntry {
                            url: url.clone(),
                            fetch,
                            push,
                        }),
                    }
                    save_config(&repo, &config)?;
                }
                RelayAction::Remove { url, fetch, push } => {
                    let (fetch, push) = if !fetch && !push {
                        (true, true)
                    } else {
                        (*fetch, *push)
                    };
                    let Some(r) = config.relays.iter_mut().find(|r| r.url == *url) else {
                        return Err(Failure(format!("no relay {url}: see `agigit relay list`")));
                    };
                    r.fetch &= !fetch;
                    r.push &= !push;
                    config.relays.retain(|r| r.fetch || r.push);
                    save_config(&repo, &config)?;
                }
                RelayAction::List => {
                    let list: Vec<_> = config
                        .relays
                        .iter()
                        .map(
                            |r| serde_json::json!({"url": r.url, "fetch": r.fetch, "push": r.push}),
                        )
                        .collect();
                    print(json, serde_json::Value::Array(list), || {
                        config
                            .relays
                            .iter()
                            .map(|r| {
                                let roles = match (r.fetch, r.push) {
                                    (true, true) => "fetch, push",
                                    (true, false) => "fetch",
                                    _ => "push",
                                };
                                format!("{}  ({roles})", r.url)
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    });
                }
            }
        }
        Command::Status | Command::Add => {
            let repo = open(cli)?;
            let status = repo.status()?;
            let branch = current_branch(&repo).unwrap_or_else(|_| "(detached)".into());
            let list: Vec<_> = status
                .iter()
                .map(|(p, c)| serde_json::json!({"path": p, "change": change_name(*c), "part": agigit::worktree::classify(p).0.name()}))
                .collect();
            print(
                json,
                serde_json::json!({"branch": branch, "changes": list}),
                || {
                    let mut out = format!("on branch {branch}");
                    if status.is_empty() {
                        out.push_str("\nnothing to commit, working directory matches HEAD");
                    }
                    for (p, c) in &status {
                        let part = agigit::worktree::classify(p).0.name();
                        out.push_str(&format!("\n  {:<9} {p}  [{part}]", change_name(*c)));
                    }
                    out
                },
            );
        }
        Command::Commit { message } => {
            let repo = open(cli)?;
            let keys = keys()?;
            let (id, stats) = repo.commit_with(
                message,
                keys.public_key().to_bytes(),
                &agigit::delta::Lossless::default(),
            )?;
            print(
                json,
                serde_json::json!({"commit": id.to_string(), "delta_tensors": stats.delta_tensors, "stored_bytes": stats.stored_bytes, "dense_bytes": stats.dense_bytes}),
                || {
                    let mut out = format!("[{}] {message}", id.short());
                    if stats.delta_tensors > 0 {
                        out.push_str(&format!(
                            "\n  fork: {} tensors as deltas, {} unchanged; {} bytes stored for {} dense",
                            stats.delta_tensors, stats.unchanged_tensors, stats.stored_bytes, stats.dense_bytes
                        ));
                    }
                    out
                },
            );
        }
        Command::Log { rev, max } => {
            let repo = open(cli)?;
            let log = repo.log(rev, *max)?;
            let list: Vec<_> = log
                .iter()
                .map(|(id, c)| serde_json::json!({"commit": id.to_string(), "parents": c.parents.iter().map(ToString::to_string).collect::<Vec<_>>(), "time": c.time, "message": c.message}))
                .collect();
            print(json, serde_json::Value::Array(list), || {
                log.iter()
                    .map(|(id, c)| format!("commit {id}\ntime   {}\n\n    {}\n", c.time, c.message))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Branch { name } => {
            let repo = open(cli)?;
            if let Some(name) = name {
                let at = repo.create_branch(name, "HEAD")?;
                print(
                    json,
                    serde_json::json!({"branch": name, "commit": at.to_string()}),
                    || format!("created branch {name} at {}", at.short()),
                );
            } else {
                let current = current_branch(&repo).ok();
                let branches = repo.branches()?;
                let list: Vec<_> = branches
                    .iter()
                    .map(|(b, id)| serde_json::json!({"branch": b, "commit": id.to_string(), "current": Some(b) == current.as_ref()}))
                    .collect();
                print(json, serde_json::Value::Array(list), || {
                    branches
                        .iter()
                        .map(|(b, id)| {
                            let mark = if Some(b) == current.as_ref() {
                                "*"
                            } else {
                                " "
                            };
                            format!("{mark} {b}  {}", id.short())
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                });
            }
        }
        Command::Checkout { rev, force } => {
            let repo = open(cli)?;
            let report = repo.checkout(rev, *force)?;
            print(
                json,
                serde_json::json!({"checkout": rev, "written": report.written, "removed": report.removed, "unchanged": report.unchanged}),
                || {
                    format!(
                        "checked out {rev}: {} files written, {} removed, {} unchanged",
                        report.written, report.removed, report.unchanged
                    )
                },
            );
        }
        Command::Push => {
            let repo = open(cli)?;
            let config = load_config(&repo)?;
            let keys = keys()?;
            let id = config.id.clone().ok_or_else(|| {
                Failure("no repository id: set `id` in .agigit/config.toml".into())
            })?;
            let id = RepoId::new(id)?;
            let branch = current_branch(&repo)?;
            let code = Leopard::new(config.push.k, config.push.n)?;
            let options = PushOptions {
                code: &code,
                segment_size: config.push.segment_size,
                min_accepted: config.push.min_accepted,
            };
            let rt = runtime()?;
            let _entered = rt.enter();
            let net = network(&keys, &config.relays)?;
            let report = rt.block_on(repo.push(&net, &keys, &id, &branch, options))?;
            let coordinate = RepoCoordinate::new(keys.public_key(), id).to_string();
            print(
                json,
                serde_json::json!({"pushed": branch, "repository": coordinate, "objects": report.objects, "shards": report.shards, "pack_bytes": report.pack_bytes, "up_to_date": report.up_to_date, "bytes_per_server": report.bytes_per_server}),
                || {
                    if report.up_to_date {
                        format!("everything up to date ({coordinate})")
                    } else {
                        let mut out = format!(
                            "pushed {branch} to {coordinate}: {} objects, {} bytes in {} shards",
                            report.objects, report.pack_bytes, report.shards
                        );
                        for (s, b) in &report.bytes_per_server {
                            out.push_str(&format!("\n  {s}: {b} bytes"));
                        }
                        out
                    }
                },
            );
        }
        Command::Pull | Command::Fetch => {
            let repo = open(cli)?;
            let config = load_config(&repo)?;
            let coordinate = match &config.remote {
                Some(c) => c.parse::<RepoCoordinate>()?,
                None => {
                    let keys = keys()?;
                    let id = config.id.clone().ok_or_else(|| {
                        Failure("no remote and no repository id in .agigit/config.toml".into())
                    })?;
                    RepoCoordinate::new(keys.public_key(), RepoId::new(id)?)
                }
            };
            let keys = keys().unwrap_or_else(|_| Keys::generate());
            let rt = runtime()?;
            let _entered = rt.enter();
            let net = network(&keys, &config.relays)?;
            let branch = current_branch(&repo)?;
            let report = if matches!(cli.command, Command::Pull) {
                rt.block_on(repo.pull(&net, &coordinate, &branch))?
            } else {
                rt.block_on(repo.fetch(&net, &coordinate, &branch))?
            };
            print(
                json,
                serde_json::json!({"tip": report.tip.map(|t| t.to_string()), "packs": report.packs, "objects": report.objects}),
                || {
                    format!(
                        "{} packs, {} objects; origin/{branch} at {}",
                        report.packs,
                        report.objects,
                        report
                            .tip
                            .map(|t| t.short().to_string())
                            .unwrap_or_default()
                    )
                },
            );
        }
        Command::Key { action } => match action {
            KeyAction::Generate { force } => {
                let keys = Keys::generate();
                let path = write_key(&keys.secret_key().to_secret_hex(), *force)?;
                let npub = keys.public_key().to_bech32()?;
                print(
                    json,
                    serde_json::json!({"npub": npub, "file": path}),
                    || format!("new key {npub}, secret in {} (mode 0600)", path.display()),
                );
            }
            KeyAction::Import { secret, force } => {
                let keys = Keys::parse(secret.trim())
                    .map_err(|e| Failure(format!("not a secret key (nsec… or hex): {e}")))?;
                let path = write_key(&keys.secret_key().to_secret_hex(), *force)?;
                let npub = keys.public_key().to_bech32()?;
                print(
                    json,
                    serde_json::json!({"npub": npub, "file": path}),
                    || format!("imported {npub} into {}", path.display()),
                );
            }
            KeyAction::Show => {
                let keys = keys()?;
                let npub = keys.public_key().to_bech32()?;
                let hex = keys.public_key().to_hex();
                print(json, serde_json::json!({"npub": npub, "hex": hex}), || {
                    format!("{npub}\n{hex}")
                });
            }
        },
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            if cli.json {
                println!("{}", serde_json::json!({"error": message}));
            } else {
                eprintln!("agigit: {message}");
            }
            ExitCode::FAILURE
        }
    }
}
