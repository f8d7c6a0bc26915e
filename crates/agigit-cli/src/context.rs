//! What every command needs: the global flags, the repository, the configuration, the key, the
//! network, and how to print.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agigit::ErrorKind;
use agigit::Repository;
use agigit::config::{PushConfig, RelayEntry, RepoConfig, UserConfig};
use agigit::display::escape;
use agigit::event::nostr::prelude::{Keys, PublicKey, ToBech32};
use agigit::net::{BlobClient, BlobClientOptions, Network, PoolOptions, RelayPool, Roles};

use crate::failure::{Failure, Result};

/// The global flags.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// `-C DIR`.
    pub(crate) dir: Option<PathBuf>,
    /// `--json`.
    pub(crate) json: bool,
}

/// `npub…` for a key.
pub(crate) fn npub(key: &PublicKey) -> Result<String> {
    key.to_bech32()
        .map_err(|e| Failure::new(ErrorKind::Io, format!("cannot write {key} as npub: {e}")))
}

pub(crate) fn load_config(repo: &Repository) -> Result<RepoConfig> {
    Ok(repo.config()?)
}

pub(crate) fn load_user_config() -> Result<UserConfig> {
    Ok(UserConfig::load(&home()?.join("config.toml"))?)
}

/// The relays given by URL on the command line, else the user's `[[relay]]` list (maybe empty:
/// the caller says what it needs them for).
pub(crate) fn given_or_user_relays(urls: &[String]) -> Result<Vec<RelayEntry>> {
    if urls.is_empty() {
        return Ok(load_user_config()?.relays);
    }
    Ok(urls
        .iter()
        .map(|u| RelayEntry::new(u.trim_end_matches('/')))
        .collect())
}

/// What TLS servers must prove: Mozilla's roots, `SSL_CERT_FILE` / `SSL_CERT_DIR`, and the
/// user's `[tls] ca_file`.
pub(crate) fn tls_config() -> Result<agigit::net::TlsConfig> {
    let extra: Vec<PathBuf> = load_user_config()?
        .tls
        .and_then(|t| t.ca_file)
        .into_iter()
        .collect();
    Ok(agigit::net::TlsConfig::new(&extra)?)
}

/// The relays and push settings in effect: the repository's, else the user's, else defaults.
pub(crate) fn effective(config: &RepoConfig) -> Result<(Vec<RelayEntry>, PushConfig)> {
    let (relays, push) = agigit::config::effective(config, &load_user_config()?);
    if relays.is_empty() {
        return Err(Failure::new(
            ErrorKind::Invalid,
            "no relays: run `agigit relay add ws://host:port` (or list them in ~/.config/agigit/config.toml)",
        ));
    }
    Ok((relays, push))
}

pub(crate) fn save_config(repo: &Repository, config: &RepoConfig) -> Result<()> {
    Ok(repo.set_config(config)?)
}

/// The user-level directory: `$AGIGIT_HOME`, else `$HOME/.config/agigit`.
pub(crate) fn home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("AGIGIT_HOME") {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| {
        Failure::new(
            ErrorKind::Invalid,
            "set HOME or AGIGIT_HOME to say where your key lives",
        )
    })?;
    Ok(Path::new(&home).join(".config").join("agigit"))
}

/// The signing key: `$AGIGIT_NSEC`, else the key file.
pub(crate) fn keys() -> Result<Keys> {
    if let Ok(secret) = std::env::var("AGIGIT_NSEC") {
        return Keys::parse(secret.trim()).map_err(|e| {
            Failure::new(
                ErrorKind::Invalid,
                format!("AGIGIT_NSEC is not a secret key (nsec… or hex): {e}"),
            )
        });
    }
    let path = home()?.join("key");
    let text = std::fs::read_to_string(&path).map_err(|_| {
        Failure::new(ErrorKind::Access, format!(
            "no key: run `agigit key generate` (or `agigit key import <nsec>`), or set AGIGIT_NSEC; looked in {}",
            path.display()
        ))
    })?;
    Keys::parse(text.trim()).map_err(|e| {
        Failure::new(
            ErrorKind::Invalid,
            format!("{}: not a secret key: {e}", path.display()),
        )
    })
}

/// The user's key as a reader's secret (to open private repositories).
pub(crate) fn reader_secret(keys: &Keys) -> Result<agigit::crypt::ReaderSecret> {
    Ok(agigit::private::reader_secret(keys)?)
}

/// Who fetches: the user's keys and reader's secret when there is a key (private repositories
/// open with it), else a throw-away key to sign relay authentication and no secret.
pub(crate) fn fetch_identity() -> Result<(Keys, Option<agigit::crypt::ReaderSecret>)> {
    match keys() {
        Ok(keys) => {
            let secret = reader_secret(&keys)?;
            Ok((keys, Some(secret)))
        }
        Err(_) => Ok((Keys::generate(), None)),
    }
}

/// A reader's key from `npub…` or hex.
pub(crate) fn parse_reader(text: &str) -> Result<agigit::crypt::ReaderKey> {
    let pk = PublicKey::parse(text.trim()).map_err(|e| {
        Failure::new(
            ErrorKind::Invalid,
            format!("{text:?} is not a public key (npub… or hex): {e}"),
        )
    })?;
    Ok(agigit::private::reader_key(&pk)?)
}

/// Progress on the terminal (stderr); hidden when stderr is not a terminal or output is JSON.
pub(crate) struct Bar {
    bar: indicatif::ProgressBar,
}

impl Bar {
    pub(crate) fn new(json: bool) -> Self {
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

/// Writes `bytes` to a new file `path` (its directory made when missing), readable by its owner
/// only, synced: for secrets that must survive what comes next (an escrow's token, a round's
/// salt). An existing file is an error, never overwritten.
pub(crate) fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()
}

pub(crate) fn write_key(secret_hex: &str, force: bool) -> Result<PathBuf> {
    let dir = home()?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::new(ErrorKind::Io, format!("{}: {e}", dir.display())))?;
    let path = dir.join("key");
    if path.exists() && !force {
        return Err(Failure::new(
            ErrorKind::WouldLoseWork,
            format!(
                "{} already holds a key: pass --force to replace it (the old key is lost)",
                path.display()
            ),
        ));
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
        .map_err(|e| Failure::new(ErrorKind::Io, format!("{}: {e}", temp.display())))?;
    std::io::Write::write_all(&mut file, format!("{secret_hex}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, &path)?;
    Ok(path)
}

pub(crate) fn network(keys: &Keys, relays: &[RelayEntry]) -> Result<Network> {
    let tls = tls_config()?;
    let mut blobs = BlobClient::new(
        Some(Arc::new(keys.clone())),
        BlobClientOptions {
            tls: tls.clone(),
            ..BlobClientOptions::default()
        },
    );
    // Servers that charge for serving (BUD-07) are paid from the wallet, within its budget.
    if let Some(payer) = crate::wallet::BudgetPayer::configured()? {
        blobs = blobs.with_payer(Arc::new(payer));
    }
    let net = Network::new(
        RelayPool::new(
            PoolOptions {
                tls: tls.clone(),
                ..PoolOptions::default()
            },
            Some(Arc::new(keys.clone())),
        ),
        blobs,
    );
    for r in relays {
        let roles = Roles {
            fetch: r.fetch,
            push: r.push,
        };
        let pin = match &r.key {
            Some(k) => Some(PublicKey::from_hex(k).map_err(|e| {
                Failure::new(
                    ErrorKind::Invalid,
                    format!(
                        "relay {}: its key {k:?} in the configuration is not a key: {e}",
                        r.url
                    ),
                )
            })?),
            None => None,
        };
        net.pool.add_pinned_relay(&r.url, roles, pin)?;
        // An agigit relay serves Blossom on the same port (over TLS when it speaks wss://).
        let http = agigit::net::info::http_url(&r.url);
        net.add_blob_server(http.trim_end_matches('/'), roles)?;
    }
    Ok(net)
}

/// Adds `servers` (blob servers besides the relays' ports) to `net`, each for the roles its
/// entry gives; a URL that cannot name a blob server is refused.
pub(crate) fn add_blob_servers(
    net: &Network,
    servers: &[agigit::config::BlobServerEntry],
) -> Result<()> {
    for s in servers {
        if !agigit::net::info::is_blob_server_url(&s.url) {
            return Err(Failure::invalid(format!(
                "blob server {:?} in the configuration is not an http:// or https:// URL",
                s.url
            )));
        }
        net.add_blob_server(
            s.url.trim_end_matches('/'),
            Roles {
                fetch: s.fetch,
                push: s.push,
            },
        )?;
    }
    Ok(())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Prints a result: JSON (whose strings escape control characters), or text in which every
/// control character but newline and tab is shown escaped — commit messages, names and servers'
/// reasons come from others, and must never drive the terminal.
pub(crate) fn print(json: bool, value: serde_json::Value, human: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{}", escape(&text));
        }
    }
}

pub(crate) fn open(ctx: &Ctx) -> Result<Repository> {
    let start = ctx.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let repo = Repository::discover(start)?;
    let recovered = repo.recovered();
    if recovered != agigit::Recovered::default() && !ctx.json {
        eprintln!(
            "agigit: cleared what a crashed agigit left: {} ref locks, {} temporary files",
            recovered.locks, recovered.temps
        );
    }
    Ok(repo)
}

pub(crate) fn current_branch(repo: &Repository) -> Result<String> {
    repo.current_branch()?
        .and_then(|b| b.branch_name().map(str::to_owned))
        .ok_or_else(|| {
            Failure::new(
                ErrorKind::Invalid,
                "HEAD is detached: check out a branch first",
            )
        })
}
