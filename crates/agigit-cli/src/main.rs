//! `agigit`: git for AI models over Nostr, on the command line.
//!
//! Exit codes: 0 success, 1 the operation failed (the message says what to do), 2 usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use agigit::config::{PushConfig, RelayEntry, RepoConfig, UserConfig};
use agigit::display::escape;
use agigit::event::nostr::prelude::{Keys, ToBech32};
use agigit::event::{RepoCoordinate, RepoId};
use agigit::net::{BlobClient, BlobClientOptions, Network, PoolOptions, RelayPool, Roles};
use agigit::{Change, PushOptions, Repository};
use clap::{Parser, Subcommand};

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
        #[command(flatten)]
        privacy: Privacy,
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
        #[command(flatten)]
        parts: PartsArg,
    },
    /// Start a fine-tune: clone a foundation repository into DIR as a fork. Its commits store
    /// tensors as deltas against the foundation, and it pushes under its own id.
    Fork {
        /// The foundation's coordinate (`30717:<owner hex>:<id>`).
        coordinate: String,
        /// The directory (default: the new id).
        dir: Option<PathBuf>,
        /// A relay to fetch from and push to (repeat for several).
        #[arg(long = "relay", required = true)]
        relays: Vec<String>,
        /// The fork's repository id (default: `<foundation id>-fork`).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        privacy: Privacy,
    },
    /// Manage the readers of a private repository.
    Reader {
        #[command(subcommand)]
        action: ReaderAction,
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
    /// Switch to a branch or commit. Local changes to files that are the same in both are kept.
    Checkout {
        /// Branch or commit id.
        rev: String,
        /// Overwrite or delete uncommitted and untracked files in the checkout's way.
        #[arg(long)]
        force: bool,
    },
    /// Merge a branch or commit into the current branch (`merge <a> <b>`: check out branch a,
    /// then merge b into it). Tensors both sides changed conflict unless a strategy is given.
    Merge {
        /// What to merge (or, with a second argument, the branch to merge into).
        a: String,
        /// What to merge into branch `a`.
        b: Option<String>,
        /// How to merge tensors both sides changed: ours, theirs, average, task-arithmetic,
        /// ties (ours and theirs also settle conflicting files).
        #[arg(long)]
        strategy: Option<String>,
        /// Overwrite or delete uncommitted and untracked files in the merge's way.
        #[arg(long)]
        force: bool,
    },
    /// Replay the current branch's commits on top of a commit (default: the remote branch).
    /// With --fork, move a fork onto a new foundation commit instead.
    Rebase {
        /// The commit or branch to rebase onto.
        rev: Option<String>,
        /// How to merge tensors both sides changed while replaying.
        #[arg(long)]
        strategy: Option<String>,
        /// Re-base the fork onto this commit of its foundation (fetch the foundation first):
        /// the fine-tune's change is replayed on it and stored as deltas against it.
        #[arg(long, value_name = "COMMIT", conflicts_with_all = ["rev", "strategy"])]
        fork: Option<String>,
        /// Overwrite or delete uncommitted and untracked files in the rebase's way.
        #[arg(long)]
        force: bool,
    },
    /// Push the current branch to the push relays.
    Push,
    /// Fetch and fast-forward a branch (default: the current one) from the fetch relays.
    Pull {
        /// The remote branch.
        branch: Option<String>,
        #[command(flatten)]
        parts: PartsArg,
        /// Overwrite or delete uncommitted and untracked files in the pull's way.
        #[arg(long)]
        force: bool,
    },
    /// Fetch the remote branch without touching local branches or files.
    Fetch {
        #[command(flatten)]
        parts: PartsArg,
    },
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

/// Which parts to fetch.
#[derive(Debug, clap::Args)]
struct PartsArg {
    /// Fetch only these parts (comma-separated: code, params, data/train, data/validation, or
    /// all); a partial clone keeps its parts on later pulls unless given more.
    #[arg(long, value_delimiter = ',', value_name = "PARTS")]
    parts: Vec<String>,
}

impl PartsArg {
    fn parse(&self) -> Result<Option<Vec<agigit::Part>>> {
        if self.parts.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for name in &self.parts {
            match name.as_str() {
                "all" => out.extend(agigit::Part::ALL),
                "train" => out.push(agigit::Part::Train),
                "validation" => out.push(agigit::Part::Validation),
                other => out.push(agigit::Part::from_name(other).ok_or_else(|| {
                    Failure(format!(
                        "unknown part {other:?}: use code, params, data/train, data/validation or all"
                    ))
                })?),
            }
        }
        Ok(Some(out))
    }
}

/// Whether a new repository is private, and its readers.
#[derive(Debug, clap::Args)]
struct Privacy {
    /// Make it private: everything pushed is encrypted, readable by you and `--reader`s.
    #[arg(long)]
    private: bool,
    /// A reader of the private repository (npub… or hex; repeat for several).
    #[arg(long = "reader", value_name = "NPUB", requires = "private")]
    readers: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum ReaderAction {
    /// Let a Nostr key read the repository (from the next push on; earlier content too).
    Add {
        /// npub… or hex.
        key: String,
    },
    /// Remove a reader: the content key is rotated, so nothing pushed from now on opens with
    /// their key. What was pushed before stays readable to a key that already held it.
    Remove {
        /// npub… or hex.
        key: String,
    },
    /// List the readers.
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

/// An error for the user: what happened and what to do.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

type Result<T> = std::result::Result<T, Failure>;

fn load_config(repo: &Repository) -> Result<RepoConfig> {
    Ok(repo.config()?)
}

fn load_user_config() -> Result<UserConfig> {
    Ok(UserConfig::load(&home()?.join("config.toml"))?)
}

/// The relays and push settings in effect: the repository's, else the user's, else defaults.
fn effective(config: &RepoConfig) -> Result<(Vec<RelayEntry>, PushConfig)> {
    let (relays, push) = agigit::config::effective(config, &load_user_config()?);
    if relays.is_empty() {
        return Err(Failure(
            "no relays: run `agigit relay add ws://host:port` (or list them in ~/.config/agigit/config.toml)".into(),
        ));
    }
    Ok((relays, push))
}

fn save_config(repo: &Repository, config: &RepoConfig) -> Result<()> {
    Ok(repo.set_config(config)?)
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

/// The user's key as a reader's secret (to open private repositories).
fn reader_secret(keys: &Keys) -> Result<agigit::crypt::ReaderSecret> {
    Ok(agigit::private::reader_secret(keys)?)
}

/// Who fetches: the user's keys and reader's secret when there is a key (private repositories
/// open with it), else a throw-away key to sign relay authentication and no secret.
fn fetch_identity() -> Result<(Keys, Option<agigit::crypt::ReaderSecret>)> {
    match keys() {
        Ok(keys) => {
            let secret = reader_secret(&keys)?;
            Ok((keys, Some(secret)))
        }
        Err(_) => Ok((Keys::generate(), None)),
    }
}

/// A reader's key from `npub…` or hex.
fn parse_reader(text: &str) -> Result<agigit::crypt::ReaderKey> {
    let pk = agigit::event::nostr::prelude::PublicKey::parse(text.trim())
        .map_err(|e| Failure(format!("{text:?} is not a public key (npub… or hex): {e}")))?;
    Ok(agigit::private::reader_key(&pk)?)
}

/// Progress on the terminal (stderr); hidden when stderr is not a terminal or output is JSON.
struct Bar {
    bar: indicatif::ProgressBar,
}

impl Bar {
    fn new(json: bool) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            None,
            if json {
                indicatif::ProgressDrawTarget::hidden()
            } else {
                indicatif::ProgressDrawTarget::stderr()
            },
        );
        Bar { bar }
    }
}

impl agigit::Progress for Bar {
    fn begin(&self, what: &str, total_bytes: u64) {
        self.bar.reset();
        self.bar.set_length(total_bytes);
        self.bar.set_position(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:>16} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.set_message(what.to_owned());
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn end(&self) {
        self.bar.finish_and_clear();
    }
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
        RelayPool::new(PoolOptions::default(), Some(Arc::new(keys.clone()))),
        BlobClient::new(Some(Arc::new(keys.clone())), BlobClientOptions::default()),
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

/// Prints a result: JSON (whose strings escape control characters), or text in which every
/// control character but newline and tab is shown escaped — commit messages, names and servers'
/// reasons come from others, and must never drive the terminal.
fn print(json: bool, value: serde_json::Value, human: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{}", escape(&text));
        }
    }
}

/// A commit author's key as `npub…` (hex when it is not a valid key).
fn author_name(author: &[u8; 32]) -> String {
    agigit::event::nostr::prelude::PublicKey::from_slice(author)
        .ok()
        .and_then(|pk| pk.to_bech32().ok())
        .unwrap_or_else(|| author.iter().map(|b| format!("{b:02x}")).collect())
}

/// `secs` since the Unix epoch as `YYYY-MM-DD hh:mm:ss UTC` (civil-from-days, proleptic
/// Gregorian).
fn utc_date(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
    let repo = Repository::discover(start)?;
    let recovered = repo.recovered();
    if recovered != agigit::Recovered::default() && !cli.json {
        eprintln!(
            "agigit: cleared what a crashed agigit left: {} ref locks, {} temporary files",
            recovered.locks, recovered.temps
        );
    }
    Ok(repo)
}

fn current_branch(repo: &Repository) -> Result<String> {
    repo.current_branch()?
        .and_then(|b| b.branch_name().map(str::to_owned))
        .ok_or_else(|| Failure("HEAD is detached: check out a branch first".into()))
}

/// Makes `repo` private for the user and `readers`.
fn make_private(repo: &Repository, readers: &[String]) -> Result<()> {
    let keys = keys()?;
    let readers = readers
        .iter()
        .map(|r| parse_reader(r))
        .collect::<Result<Vec<_>>>()?;
    repo.make_private(&reader_secret(&keys)?, &readers)?;
    Ok(())
}

/// Clones `coord` into the new directory `dir` from `relays` (pushing under `id`), then runs
/// `after`; on any failure the directory is removed, so no half-made clone is left.
fn clone_into(
    coord: &RepoCoordinate,
    dir: &Path,
    relays: &[String],
    id: &str,
    json: bool,
    parts: Option<&[agigit::Part]>,
    after: impl FnOnce(&Repository, &agigit::PullReport) -> Result<()>,
) -> Result<(Repository, agigit::PullReport)> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(Failure(format!(
            "{} exists and is not empty",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)?;
    let result = (|| -> Result<(Repository, agigit::PullReport)> {
        let repo = Repository::init(dir)?;
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
                id: Some(id.to_owned()),
                remote: Some(coord.to_string()),
                relays: entries.clone(),
                ..RepoConfig::default()
            },
        )?;
        let (signer, secret) = fetch_identity()?;
        let rt = runtime()?;
        let _entered = rt.enter();
        let net = network(&signer, &entries)?;
        let bar = Bar::new(json);
        let options = agigit::FetchOptions {
            secret: secret.as_ref(),
            progress: Some(&bar),
            parts,
            ..agigit::FetchOptions::default()
        };
        let report = rt.block_on(repo.pull(&net, coord, agigit::DEFAULT_BRANCH, options))?;
        after(&repo, &report)?;
        Ok((repo, report))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn strategy(name: Option<&String>) -> Result<Option<agigit::MergeStrategy>> {
    Ok(name.map(|n| n.parse()).transpose()?)
}

fn print_merge(json: bool, what: &str, report: &agigit::MergeReport) {
    print(
        json,
        serde_json::json!({
            "commit": report.commit.map(|c| c.to_string()),
            "up_to_date": report.up_to_date,
            "fast_forward": report.fast_forward,
            "commits": report.commits,
            "merged_tensors": report.merged_tensors,
            "resolved_by_side": report.resolved_by_side,
        }),
        || {
            let at = report
                .commit
                .map(|c| c.short().to_string())
                .unwrap_or_default();
            if report.up_to_date {
                return "already up to date".to_owned();
            }
            let mut out = if report.fast_forward {
                format!("fast-forward to {at}")
            } else {
                format!("{what}: {} commits written, now at {at}", report.commits)
            };
            for t in &report.merged_tensors {
                out.push_str(&format!("\n  merged tensor {t}"));
            }
            for f in &report.resolved_by_side {
                out.push_str(&format!("\n  took one side of {f}"));
            }
            out
        },
    );
}

fn run(cli: &Cli) -> Result<()> {
    let json = cli.json;
    match &cli.command {
        Command::Init {
            dir,
            id,
            privacy: Privacy { private, readers },
        } => {
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
            if *private {
                make_private(&repo, readers)?;
            }
            print(
                json,
                serde_json::json!({"initialized": dir, "id": id, "private": private}),
                || {
                    format!(
                        "initialized an empty {}agigit repository {id:?} in {}",
                        if *private { "private " } else { "" },
                        dir.display()
                    )
                },
            );
        }
        Command::Clone {
            coordinate,
            dir,
            relays,
            parts,
        } => {
            let coord: RepoCoordinate = coordinate.parse()?;
            let dir = dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(coord.id.as_str()));
            let parts = parts.parse()?;
            let (_, report) = clone_into(
                &coord,
                &dir,
                relays,
                coord.id.as_str(),
                json,
                parts.as_deref(),
                |repo, report| {
                    if let Some(envelope) = &report.envelope {
                        // A clone of a private repository stays private, for the same readers.
                        repo.save_envelope(envelope)?;
                    }
                    Ok(())
                },
            )?;
            print(
                json,
                serde_json::json!({"cloned": coordinate, "dir": dir, "packs": report.packs, "objects": report.objects, "private": report.envelope.is_some()}),
                || {
                    format!(
                        "cloned {coordinate} into {} ({} packs, {} objects{})",
                        dir.display(),
                        report.packs,
                        report.objects,
                        if report.envelope.is_some() {
                            ", private"
                        } else {
                            ""
                        }
                    )
                },
            );
        }
        Command::Fork {
            coordinate,
            dir,
            relays,
            id,
            privacy: Privacy { private, readers },
        } => {
            let coord: RepoCoordinate = coordinate.parse()?;
            let id = id
                .clone()
                .unwrap_or_else(|| format!("{}-fork", coord.id.as_str()));
            RepoId::new(id.clone()).map_err(|e| Failure(format!("repository id {id:?}: {e}")))?;
            let dir = dir.clone().unwrap_or_else(|| PathBuf::from(&id));
            let (_, report) = clone_into(&coord, &dir, relays, &id, json, None, |repo, report| {
                let tip = report
                    .tip
                    .ok_or_else(|| Failure("the foundation has no commits".into()))?;
                repo.set_fork_base(coordinate, tip)?;
                let mut config = load_config(repo)?;
                // The fork pushes under its own id; the foundation is fetched by its base.
                config.remote = None;
                save_config(repo, &config)?;
                if *private {
                    make_private(repo, readers)?;
                }
                Ok(())
            })?;
            print(
                json,
                serde_json::json!({"forked": coordinate, "dir": dir, "id": id, "base": report.tip.map(|t| t.to_string()), "private": private}),
                || {
                    format!(
                        "forked {coordinate} at {} into {} as {id:?}{}; commits store tensors as deltas against it",
                        report
                            .tip
                            .map(|t| t.short().to_string())
                            .unwrap_or_default(),
                        dir.display(),
                        if *private { " (private)" } else { "" }
                    )
                },
            );
        }
        Command::Reader { action } => {
            let repo = open(cli)?;
            let keys = keys()?;
            let secret = reader_secret(&keys)?;
            let mut private = repo.private_keys(&secret)?.ok_or_else(|| {
                Failure("this repository is public: create it with `agigit init --private`".into())
            })?;
            match action {
                ReaderAction::Add { key } => {
                    private.add_reader(&parse_reader(key)?)?;
                    repo.save_private_keys(&private)?;
                }
                ReaderAction::Remove { key } => {
                    let reader = parse_reader(key)?;
                    if reader == secret.public_key() {
                        return Err(Failure(
                            "you cannot remove your own key: you would lock yourself out".into(),
                        ));
                    }
                    if !private.remove_reader(&reader)? {
                        return Err(Failure(format!(
                            "{key} is not a reader: see `agigit reader list`"
                        )));
                    }
                    repo.save_private_keys(&private)?;
                }
                ReaderAction::List => {}
            }
            let list: Vec<String> = private
                .readers()
                .filter_map(|r| {
                    agigit::event::nostr::prelude::PublicKey::from_slice(&r.to_bytes())
                        .ok()
                        .and_then(|pk| pk.to_bech32().ok())
                })
                .collect();
            print(json, serde_json::json!({"readers": list}), || {
                let mut out = list.join("\n");
                match action {
                    ReaderAction::Add { .. } => out.push_str(
                        "\n(the change reaches the relays with the next push; the new reader opens everything, earlier pushes included)",
                    ),
                    ReaderAction::Remove { .. } => out.push_str(&format!(
                        "\n(a new content key, epoch {}, seals everything pushed from now on, which the removed reader cannot open; what was pushed before stays readable to a key that already held it)",
                        private.epoch()
                    )),
                    ReaderAction::List => {}
                }
                out
            });
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
                .map(|(id, c)| serde_json::json!({"commit": id.to_string(), "parents": c.parents.iter().map(ToString::to_string).collect::<Vec<_>>(), "author": author_name(&c.author), "time": c.time, "message": c.message, "fork_of": c.base.as_ref().map(|b| serde_json::json!({"repository": b.repo, "commit": b.commit.to_string()}))}))
                .collect();
            print(json, serde_json::Value::Array(list), || {
                log.iter()
                    .map(|(id, c)| {
                        let mut out = format!("commit {id}\n");
                        if c.parents.len() > 1 {
                            let short: Vec<String> =
                                c.parents.iter().map(|p| p.short().to_string()).collect();
                            out.push_str(&format!("Merge:  {}\n", short.join(" ")));
                        }
                        out.push_str(&format!(
                            "Author: {}\nDate:   {}\n",
                            author_name(&c.author),
                            utc_date(c.time)
                        ));
                        if let Some(base) = &c.base {
                            out.push_str(&format!(
                                "Fork:   {} at {}\n",
                                base.repo,
                                base.commit.short()
                            ));
                        }
                        for line in c.message.lines() {
                            out.push_str(&format!("\n    {line}"));
                        }
                        out.push('\n');
                        out
                    })
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
        Command::Merge {
            a,
            b,
            strategy: s,
            force,
        } => {
            let repo = open(cli)?;
            let keys = keys()?;
            let theirs = match b {
                Some(b) => {
                    repo.checkout(a, *force)?;
                    b
                }
                None => a,
            };
            let report = repo.merge(
                theirs,
                strategy(s.as_ref())?,
                keys.public_key().to_bytes(),
                *force,
            )?;
            print_merge(json, &format!("merged {theirs}"), &report);
        }
        Command::Rebase {
            rev,
            strategy: s,
            fork,
            force,
        } => {
            let repo = open(cli)?;
            let report = if let Some(base) = fork {
                let keys = keys()?;
                repo.rebase_fork(base, keys.public_key().to_bytes(), *force)?
            } else {
                let onto = match rev {
                    Some(r) => r.clone(),
                    None => format!("refs/remotes/origin/{}", current_branch(&repo)?),
                };
                repo.rebase(&onto, strategy(s.as_ref())?, *force)?
            };
            print_merge(json, "rebased", &report);
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
            let (relays, push) = effective(&config)?;
            let code = push.code()?;
            let private = repo.private_keys(&reader_secret(&keys)?)?;
            let bar = Bar::new(json);
            let options = PushOptions {
                segment_size: push.segment_size,
                min_accepted: push.min_accepted,
                keys: private.as_ref(),
                progress: Some(&bar),
                ..PushOptions::new(&code)
            };
            let rt = runtime()?;
            let _entered = rt.enter();
            let net = network(&keys, &relays)?;
            let report = rt.block_on(repo.push(&net, &keys, &id, &branch, options))?;
            let coordinate = RepoCoordinate::new(keys.public_key(), id).to_string();
            print(
                json,
                serde_json::json!({"pushed": branch, "repository": coordinate, "objects": report.objects, "shards": report.shards, "rerouted": report.rerouted, "pack_bytes": report.pack_bytes, "private": report.private, "up_to_date": report.up_to_date, "bytes_per_server": report.bytes_per_server}),
                || {
                    if report.up_to_date {
                        format!("everything up to date ({coordinate})")
                    } else {
                        let mut out = format!(
                            "pushed {branch} to {coordinate}: {} objects, {} bytes in {} shards{}",
                            report.objects,
                            report.pack_bytes,
                            report.shards,
                            if report.private { ", encrypted" } else { "" }
                        );
                        if report.rerouted > 0 {
                            out.push_str(&format!(
                                "\n  {} shards went to another server because theirs failed",
                                report.rerouted
                            ));
                        }
                        for (s, b) in &report.bytes_per_server {
                            out.push_str(&format!("\n  {s}: {b} bytes"));
                        }
                        out
                    }
                },
            );
        }
        Command::Pull { parts, .. } | Command::Fetch { parts } => {
            let force = matches!(cli.command, Command::Pull { force: true, .. });
            let parts = parts.parse()?;
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
            let (signer, secret) = fetch_identity()?;
            let (relays, _) = effective(&config)?;
            let rt = runtime()?;
            let _entered = rt.enter();
            let net = network(&signer, &relays)?;
            let branch = match &cli.command {
                Command::Pull {
                    branch: Some(b), ..
                } => b.clone(),
                _ => current_branch(&repo)?,
            };
            let bar = Bar::new(json);
            let options = agigit::FetchOptions {
                secret: secret.as_ref(),
                progress: Some(&bar),
                parts: parts.as_deref(),
                force,
                ..agigit::FetchOptions::default()
            };
            let report = if matches!(cli.command, Command::Pull { .. }) {
                rt.block_on(repo.pull(&net, &coordinate, &branch, options))?
            } else {
                rt.block_on(repo.fetch(&net, &coordinate, &branch, options))?
            };
            print(
                json,
                serde_json::json!({"tip": report.tip.map(|t| t.to_string()), "packs": report.packs, "objects": report.objects, "forced_from": report.forced_from.map(|t| t.to_string()), "state_forked": report.state_forked}),
                || {
                    let mut out = format!(
                        "{} packs, {} objects; origin/{branch} at {}",
                        report.packs,
                        report.objects,
                        report
                            .tip
                            .map(|t| t.short().to_string())
                            .unwrap_or_default()
                    );
                    if let Some(old) = report.forced_from {
                        out.push_str(&format!(
                            "\nwarning: origin/{branch} was rewritten: it was at {}, which the new tip does not descend from",
                            old.short()
                        ));
                    }
                    if report.state_forked {
                        out.push_str("\nwarning: the repository's state history forked: its newest state does not build on the one this clone saw last (two writers?)");
                    }
                    out
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
                eprintln!("agigit: {}", escape(&message));
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::utc_date;

    #[test]
    fn utc_dates_match_known_instants() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        // `date -u -d @951782400`: the leap day of 2000.
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(1_795_356_360), "2026-11-22 14:06:00 UTC");
        assert_eq!(utc_date(-1), "1969-12-31 23:59:59 UTC");
    }
}
