//! `agigit serve`: the web explorer over local repositories, on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::context::{Ctx, print, runtime};
use crate::failure::{Failure, Result};

/// `agigit serve`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Repositories to show, or directories whose subdirectories are repositories (default:
    /// the repository here, else the repositories in this directory).
    pub(crate) dirs: Vec<PathBuf>,
    /// The address to listen on; only loopback names are answered, whatever the address.
    #[arg(long, default_value = "127.0.0.1:8717", value_name = "ADDR")]
    pub(crate) listen: SocketAddr,
    /// Open the explorer in the default web browser.
    #[arg(long)]
    pub(crate) open: bool,
}

/// Adds `dir` when it is a repository, else each of its subdirectories that is one; returns
/// how many were added.
fn add_dir(explorer: &agigit_web::Explorer, dir: &Path) -> Result<usize> {
    if dir.join(agigit::worktree::DOT_DIR).is_dir() {
        explorer
            .add_repository(dir)
            .map_err(|e| Failure::invalid(format!("{e}: {}", source_of(&e))))?;
        return Ok(1);
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Failure::invalid(format!("{}: {e}", dir.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.join(agigit::worktree::DOT_DIR).is_dir())
        .collect();
    subdirs.sort();
    let mut added = 0;
    for sub in subdirs {
        match explorer.add_repository(&sub) {
            Ok(_) => added += 1,
            Err(e) => eprintln!("agigit: skipping {}: {}", sub.display(), source_of(&e)),
        }
    }
    Ok(added)
}

fn source_of(e: &agigit_web::Error) -> String {
    std::error::Error::source(e).map_or_else(String::new, ToString::to_string)
}

/// The explorer's network checks, made as `agigit fsck --remote` and `agigit search` make
/// them: this user's keys, each repository's relays and the user's.
struct CliRemotes {
    /// The relays to list announcements from: the user's and every served repository's.
    relays: Vec<agigit::config::RelayEntry>,
    /// The coordinates of the served repositories (not listed again as announced); those
    /// fetched from the page join them.
    local: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Where repositories fetched from the page are kept (`<dir>/<owner hex>/<id>`).
    cache: PathBuf,
    /// What the listed announcements say, by coordinate: a fetched copy shows it.
    said: std::sync::Mutex<std::collections::HashMap<String, agigit::config::AnnounceConfig>>,
}

/// The most orders of one repository the market page folds.
const MAX_ORDERS: usize = 200;

/// The most announced repositories listed.
const ANNOUNCED: usize = 100;

impl CliRemotes {
    /// What `explorer` serves, and where to look for more.
    fn new(explorer: &agigit_web::Explorer) -> Result<Self> {
        let user = crate::context::load_user_config()?;
        let mut relays = user.relays;
        let mut local = std::collections::HashSet::new();
        for (_, dir) in explorer.repositories() {
            let Some(config) = agigit::Repository::open(&dir)
                .ok()
                .and_then(|r| r.config().ok())
            else {
                continue;
            };
            for r in &config.relays {
                if r.fetch && !relays.iter().any(|known| known.url == r.url) {
                    relays.push(r.clone());
                }
            }
            local.extend(
                crate::remote::coordinate_of(&config)
                    .ok()
                    .map(|c| c.to_string()),
            );
        }
        Ok(CliRemotes {
            relays,
            local: std::sync::Mutex::new(local),
            cache: explorer_cache()?,
            said: std::sync::Mutex::default(),
        })
    }
}

impl agigit_web::Remotes for CliRemotes {
    fn audit(&self, dir: &Path) -> std::result::Result<agigit::AuditReport, String> {
        crate::remote::audit_at(dir).map_err(|f| f.message)
    }

    fn announced(
        &self,
        words: &[String],
    ) -> std::result::Result<Vec<agigit_web::Announced>, String> {
        if self.relays.is_empty() {
            return Ok(Vec::new());
        }
        let rt = runtime().map_err(|f| f.message)?;
        let local = self
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let found =
            crate::remote::find_announced(&rt, &self.relays, words, ANNOUNCED + local.len())
                .map_err(|f| f.message)?;
        Ok(found
            .into_iter()
            .filter(|f| !local.contains(&f.coordinate))
            .take(ANNOUNCED)
            .map(|f| {
                let b = f.announcement.body();
                self.said
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(
                        f.coordinate.clone(),
                        agigit::config::AnnounceConfig::shown_from(b),
                    );
                let mut a = agigit_web::Announced::new(f.coordinate.clone(), f.updated);
                a.name.clone_from(&b.name);
                a.description.clone_from(&b.description);
                a.license.clone_from(&b.license);
                a.private = b.visibility == agigit::event::Visibility::Private;
                a.topics.clone_from(&b.topics);
                a.fork_of = b.fork_of.as_ref().map(|fork| fork.repo.to_string());
                a.size = b.size;
                a
            })
            .collect())
    }

    fn fetch_parts(&self, dir: &Path, parts: &[agigit::Part]) -> std::result::Result<(), String> {
        crate::remote::widen(dir, parts).map_err(|f| f.message)
    }

    fn market(
        &self,
        dir: &Path,
    ) -> Option<std::result::Result<agigit_web::market::Market, String>> {
        Some(market_of(dir).map_err(|f| f.message))
    }

    fn fetches(&self) -> bool {
        true
    }

    /// A clone in the cache made as `agigit clone` makes one (the relays its announcement
    /// names, the user's key for a private one), then every branch pulled.
    fn fetch(
        &self,
        coordinate: &agigit::event::RepoCoordinate,
    ) -> std::result::Result<PathBuf, String> {
        // Both components are checked names: 64 hex digits, and a repository id (letters,
        // digits, `.`, `_`, `-`, never starting with `.`).
        let dir = self
            .cache
            .join(coordinate.owner.to_hex())
            .join(coordinate.id.as_str());
        if !dir.join(agigit::worktree::DOT_DIR).is_dir() {
            crate::setup::clone_quietly(coordinate, &self.relays, &dir).map_err(|f| f.message)?;
        }
        crate::remote::pull_every_branch(&dir).map_err(|f| f.message)?;
        let said = self
            .said
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&coordinate.to_string())
            .cloned();
        if let Some(said) = said {
            agigit::Repository::open(&dir)
                .map_err(|e| e.to_string())?
                .keep_announced(said)
                .map_err(|e| e.to_string())?;
        }
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(coordinate.to_string());
        Ok(dir)
    }
}

/// The orders and rounds of the repository in `dir`, asked of its relays (and the user's when
/// it lists none) and folded now.
fn market_of(dir: &Path) -> Result<agigit_web::market::Market> {
    let repo = agigit::Repository::open(dir)?;
    let config = crate::context::load_config(&repo)?;
    let coordinate = crate::remote::coordinate_of(&config)?;
    let (relays, _) = crate::context::effective(&config)?;
    let (signer, _) = crate::context::fetch_identity()?;
    let rt = runtime()?;
    let net = {
        let _entered = rt.enter();
        crate::context::network(&signer, &relays)?
    };
    // The receipts' loss lists come from the repository's blob servers too.
    crate::context::add_blob_servers(&net, &config.blob_servers)?;
    let events = {
        let _entered = rt.enter();
        rt.block_on(
            repo.remote(&net, &signer)
                .orders_of(&coordinate, MAX_ORDERS),
        )?
    };
    let orders = agigit_web::market::fold_orders(&events, &coordinate, crate::order::unix_now());
    #[cfg(feature = "eval")]
    let rounds = Some(crate::round::explorer_rows(
        &rt,
        &net,
        &repo,
        &signer,
        &coordinate,
    )?);
    // Rounds are folded by the `eval` feature's code.
    #[cfg(not(feature = "eval"))]
    let rounds = None;
    Ok(agigit_web::market::Market { orders, rounds })
}

/// Where `agigit serve` keeps the repositories fetched from its pages: `$AGIGIT_HOME/cache/explorer`
/// when that is set, else `$XDG_CACHE_HOME/agigit/explorer`, else `~/.cache/agigit/explorer`.
fn explorer_cache() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("AGIGIT_HOME") {
        return Ok(PathBuf::from(h).join("cache").join("explorer"));
    }
    if let Some(c) = std::env::var_os("XDG_CACHE_HOME").filter(|c| !c.is_empty()) {
        return Ok(PathBuf::from(c).join("agigit").join("explorer"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| {
        Failure::invalid("set HOME or AGIGIT_HOME to say where to keep fetched repositories")
    })?;
    Ok(PathBuf::from(home)
        .join(".cache")
        .join("agigit")
        .join("explorer"))
}

/// `agigit serve`.
pub(crate) fn serve(ctx: &Ctx, args: &ServeArgs) -> Result<()> {
    let here = ctx.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let explorer = agigit_web::Explorer::new("local repositories");
    let dirs = if args.dirs.is_empty() {
        match agigit::Repository::discover(&here) {
            Ok(repo) => vec![repo.root().to_owned()],
            Err(_) => vec![here.clone()],
        }
    } else {
        args.dirs.iter().map(|d| here.join(d)).collect()
    };
    for dir in &dirs {
        add_dir(&explorer, dir)?;
    }
    if explorer.repositories().is_empty() {
        return Err(Failure::invalid(format!(
            "no agigit repository in {}: name a repository or a directory of repositories",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let remotes = CliRemotes::new(&explorer)?;
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Failure::invalid(format!("cannot listen on {}: {e}", args.listen)))?;
        let addr = listener.local_addr()?;
        let host = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
            "localhost".to_owned()
        } else {
            addr.ip().to_string()
        };
        let url = format!("http://{host}:{}/", addr.port());
        let names: Vec<String> = explorer
            .repositories()
            .into_iter()
            .map(|(slug, _)| slug)
            .collect();
        print(
            ctx.json,
            serde_json::json!({"serving": url, "repositories": names}),
            || {
                format!(
                    "serving {} repositories at {url} (Ctrl-C stops)",
                    names.len()
                )
            },
        );
        if args.open {
            open_browser(&url);
        }
        let router = explorer
            .local_only()
            .with_remotes(std::sync::Arc::new(remotes))
            .router();
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}

/// Opens `url` in the desktop's browser; says so when it cannot.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("agigit: could not open a browser ({opener}: {e}); open {url} yourself");
    }
}
