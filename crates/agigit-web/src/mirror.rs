//! Mirrors (feature `mirror`): the public repositories announced on one relay, fetched into a
//! directory of clones that an [`Explorer`] shows — what a relay's own explorer is made of.
//!
//! Only the relay itself and the blob servers its operator lists are asked (never the relays or
//! servers an announcement names: anyone who can publish could otherwise make the relay connect
//! anywhere). Bounded: at most [`MirrorOptions::max_repositories`] repositories, none whose
//! announced size exceeds [`MirrorOptions::max_repository_bytes`], one fetch at a time. Private
//! repositories are not fetched (their content is not the relay's to read). Every fetch checks
//! every signature and hash as any clone does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agigit::event::kinds::{REPO_ANNOUNCEMENT, REPO_STATE, kind};
use agigit::event::nostr::prelude::{Filter, Keys};
use agigit::event::{RepoAnnouncement, RepoCoordinate, Visibility};
use agigit::net::{BlobClient, BlobClientOptions, Network, PoolOptions, RelayPool, Roles};

use crate::Explorer;

/// How long a refresh waits after the first new event, for the rest of a push's to arrive.
const SETTLE: Duration = Duration::from_millis(500);

/// How soon a subscription the relay did not take is asked for again.
const RESUBSCRIBE: Duration = Duration::from_secs(5);

/// What to mirror and how much.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MirrorOptions {
    /// The relay whose announced repositories are mirrored (`ws://…`); its Blossom server (the
    /// same host and port over HTTP) is asked for shards.
    pub relay: String,
    /// Other blob servers to fetch shards from (`http(s)://…`), chosen by the operator.
    pub servers: Vec<String>,
    /// The most repositories mirrored.
    pub max_repositories: usize,
    /// Repositories announced larger than this are not mirrored.
    pub max_repository_bytes: u64,
    /// The most announcements read per refresh.
    pub max_announcements: usize,
}

impl MirrorOptions {
    /// The relay at `relay`, no other server, 50 repositories of at most 4 GiB each.
    pub fn new(relay: impl Into<String>) -> Self {
        MirrorOptions {
            relay: relay.into(),
            servers: Vec::new(),
            max_repositories: 50,
            max_repository_bytes: 4 << 30,
            max_announcements: 500,
        }
    }
}

/// What a refresh did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MirrorReport {
    /// The repositories brought up to date (coordinates).
    pub mirrored: Vec<String>,
    /// Those left out, and why.
    pub skipped: Vec<(String, String)>,
}

/// Why a refresh could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The relay's URL or a server's cannot be used.
    #[error("mirror: {0}")]
    Config(String),
    /// The relay did not answer the query for announcements.
    #[error("mirror: the relay did not list its repositories: {0}")]
    Relay(String),
}

/// The mirrors of one relay's repositories, under one directory.
#[derive(Debug)]
pub struct Mirror {
    dir: PathBuf,
    options: MirrorOptions,
    keys: Keys,
    /// Shared with the explorer's network checks ([`Mirror::remotes`]).
    net: Arc<Network>,
}

impl Mirror {
    /// Mirrors into `dir` (`<dir>/<owner hex>/<id>`), as `options` says.
    ///
    /// # Errors
    /// [`MirrorError::Config`] for a URL the client cannot use.
    pub fn new(dir: impl Into<PathBuf>, options: MirrorOptions) -> Result<Self, MirrorError> {
        // A throw-away key: the mirror reads public repositories, and signs only NIP-42 and
        // BUD-11 challenges a relay may ask of any reader.
        let keys = Keys::generate();
        let signer: agigit::net::SharedSigner = Arc::new(keys.clone());
        let pool = RelayPool::new(PoolOptions::default(), Some(signer.clone()));
        let config = |e: agigit::net::NetError| MirrorError::Config(e.to_string());
        let fetch = Roles {
            fetch: true,
            push: false,
        };
        pool.add_relay(&options.relay, fetch).map_err(config)?;
        let net = Network::new(
            pool,
            BlobClient::new(Some(signer), BlobClientOptions::default()),
        );
        net.add_blob_server(&agigit::net::info::http_url(&options.relay), fetch)
            .map_err(config)?;
        for server in &options.servers {
            net.add_blob_server(server, fetch).map_err(config)?;
        }
        Ok(Mirror {
            dir: dir.into(),
            options,
            keys,
            net: Arc::new(net),
        })
    }

    /// The network checks of an explorer over these mirrors ([`Explorer::with_remotes`]): the
    /// availability page audits a mirror's packs on the servers this mirror fetches from (the
    /// relay itself and [`MirrorOptions::servers`], no others).
    pub fn remotes(&self) -> Arc<dyn crate::Remotes> {
        Arc::new(MirrorRemotes {
            net: self.net.clone(),
            keys: self.keys.clone(),
        })
    }

    /// Reads the relay's announcements and brings every public repository's mirror up to date,
    /// adding new ones to `explorer`. A repository that fails is reported and left as it was.
    ///
    /// # Errors
    /// [`MirrorError::Relay`] when the relay does not answer.
    pub async fn refresh(&self, explorer: &Explorer) -> Result<MirrorReport, MirrorError> {
        let filter = Filter::new()
            .kind(kind(REPO_ANNOUNCEMENT))
            .limit(self.options.max_announcements);
        let events = self
            .net
            .pool
            .query(&[filter])
            .await
            .map_err(|e| MirrorError::Relay(e.to_string()))?;
        // The announcement that counts of each repository, newest first.
        let mut newest = agigit::event::newest_announcements(
            events.into_iter().take(self.options.max_announcements),
        );
        newest.sort_by_key(|a| std::cmp::Reverse(a.created_at()));
        let mut report = MirrorReport::default();
        for a in newest {
            let coordinate = a.body().coordinate(a.author());
            let name = coordinate.to_string();
            if a.body().visibility == Visibility::Private {
                report.skipped.push((name, "private".into()));
                continue;
            }
            if a.body()
                .size
                .is_some_and(|s| s > self.options.max_repository_bytes)
            {
                report
                    .skipped
                    .push((name, "larger than this relay mirrors".into()));
                continue;
            }
            if report.mirrored.len() >= self.options.max_repositories {
                report
                    .skipped
                    .push((name, "over the number of mirrors".into()));
                continue;
            }
            match self.update(&coordinate, a.body(), explorer).await {
                Ok(()) => report.mirrored.push(name),
                Err(why) => report.skipped.push((name, why)),
            }
        }
        Ok(report)
    }

    /// Refreshes as soon as the relay stores a new announcement or state (a live subscription,
    /// with half a second for a push's events to arrive together), and every `interval` besides
    /// (what a lost subscription missed; it is opened again before the next refresh). Runs for
    /// as long as the task does; what each refresh skipped is logged.
    pub async fn run(self, explorer: Explorer, interval: Duration) {
        let mut live = None;
        loop {
            // Subscribed before the refresh: what arrives during it is not missed.
            if live.is_none() {
                live = self.subscribe().await;
            }
            match self.refresh(&explorer).await {
                Ok(report) => {
                    for (name, why) in &report.skipped {
                        tracing::debug!(repository = %name, reason = %why, "not mirrored");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "mirror refresh"),
            }
            let timer = tokio::time::sleep(interval);
            match live.as_mut() {
                Some(sub) => {
                    tokio::select! {
                        () = timer => {}
                        event = sub.next() => {
                            if event.is_none() {
                                // Every stream ended: opened again after the next refresh.
                                live = None;
                            }
                            // A push publishes its state, commits and announcement together:
                            // one refresh for all of them.
                            tokio::time::sleep(SETTLE).await;
                            if let Some(sub) = live.as_mut() {
                                while let Ok(Some(_)) =
                                    tokio::time::timeout(Duration::ZERO, sub.next()).await
                                {}
                            }
                        }
                    }
                }
                // No subscription (the relay not up yet, say): tried again soon.
                None => tokio::time::sleep(interval.min(RESUBSCRIBE)).await,
            }
        }
    }

    /// New announcements and states on the relay, from now on; `None` (logged) when the
    /// relay does not take the subscription.
    async fn subscribe(&self) -> Option<agigit::net::Subscription> {
        let since = agigit::event::nostr::prelude::Timestamp::now();
        let filter = Filter::new()
            .kinds([kind(REPO_ANNOUNCEMENT), kind(REPO_STATE)])
            .since(since);
        match self.net.pool.subscribe(&[filter]).await {
            Ok(sub) => Some(sub),
            Err(e) => {
                tracing::warn!(error = %e, "mirror: no live subscription; refreshing on the timer");
                None
            }
        }
    }

    /// The mirror of `coordinate`: made when missing, every branch the relay lists pulled.
    async fn update(
        &self,
        coordinate: &RepoCoordinate,
        announcement: &RepoAnnouncement,
        explorer: &Explorer,
    ) -> Result<(), String> {
        // Both components are checked names: 64 hex digits, and a repository id (letters,
        // digits, `.`, `_`, `-`, never starting with `.`).
        let dir = self
            .dir
            .join(coordinate.owner.to_hex())
            .join(coordinate.id.as_str());
        let repo = open_or_init(&dir, coordinate).map_err(|e| e.to_string())?;
        // What the owner announces is what the pages show of it.
        repo.keep_announced(agigit::config::AnnounceConfig::shown_from(announcement))
            .map_err(|e| e.to_string())?;
        let remote = repo.remote(&*self.net, &self.keys);
        let refs = remote.refs(coordinate).await.map_err(|e| e.to_string())?;
        if refs.branches.is_empty() {
            return Err("no branch published".into());
        }
        for branch in refs.branches.keys() {
            remote
                .pull(coordinate, branch, agigit::FetchOptions::default())
                .await
                .map_err(|e| format!("{branch}: {e}"))?;
        }
        explorer.add_repository(&dir).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The repository in `dir`, or a new one there remembering `coordinate` as its remote.
fn open_or_init(
    dir: &Path,
    coordinate: &RepoCoordinate,
) -> Result<agigit::Repository, agigit::Error> {
    if dir.join(agigit::worktree::DOT_DIR).is_dir() {
        return agigit::Repository::open(dir);
    }
    let repo = agigit::Repository::init(dir)?;
    let config = agigit::config::RepoConfig {
        id: Some(coordinate.id.as_str().to_owned()),
        remote: Some(coordinate.to_string()),
        ..agigit::config::RepoConfig::default()
    };
    repo.set_config(&config)
        .map_err(|e| agigit::Error::Invalid(e.to_string()))?;
    Ok(repo)
}

/// The network checks a relay's explorer makes, through its mirror's servers.
struct MirrorRemotes {
    net: Arc<Network>,
    keys: Keys,
}

/// The most orders of one repository the market page folds.
const MAX_ORDERS: usize = 200;

/// The repository a mirror in `dir` copies, opened, and its coordinate.
fn mirrored(dir: &Path) -> Result<(agigit::Repository, RepoCoordinate), String> {
    let repo = agigit::Repository::open(dir).map_err(|e| e.to_string())?;
    let coordinate: RepoCoordinate = repo
        .config()
        .map_err(|e| e.to_string())?
        .remote
        .ok_or("this mirror names no repository")?
        .parse()
        .map_err(|e: agigit::event::CoordinateError| e.to_string())?;
    Ok((repo, coordinate))
}

impl crate::Remotes for MirrorRemotes {
    fn audit(&self, dir: &Path) -> Result<agigit::AuditReport, String> {
        let (repo, coordinate) = mirrored(dir)?;
        // Called on the blocking pool, inside the runtime.
        tokio::runtime::Handle::current()
            .block_on(repo.audit(&*self.net, &coordinate, agigit::AuditOptions::default()))
            .map_err(|e| e.to_string())
    }

    /// The orders for the repository on this relay (and the servers the mirror fetches
    /// from), folded now; rounds are not folded here (their fold is the `eval` feature's).
    fn market(&self, dir: &Path) -> Option<Result<crate::market::Market, String>> {
        let result = mirrored(dir).and_then(|(repo, coordinate)| {
            let events = tokio::runtime::Handle::current()
                .block_on(
                    repo.remote(&*self.net, &self.keys)
                        .orders_of(&coordinate, MAX_ORDERS),
                )
                .map_err(|e| e.to_string())?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            Ok(crate::market::Market {
                orders: crate::market::fold_orders(&events, &coordinate, now),
                rounds: None,
            })
        });
        Some(result)
    }
}
