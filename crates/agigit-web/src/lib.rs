//! A web explorer for agigit model repositories.
//!
//! [`Explorer`] serves server-rendered pages — a list of repositories with search, each
//! repository's branches, tags, README, parts and forks, a history graph per branch filterable
//! by part, and each commit's changes tensor by tensor with charts — and streams files to the
//! browser over a WebSocket, every chunk read from the store checked against its hash and the
//! file's digest sent before the last byte. Everything a page needs (style, script) is compiled
//! into the binary: the pages work offline and load nothing from elsewhere.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let explorer = agigit_web::Explorer::new("my models");
//! explorer.add_repository("path/to/model")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8717").await?;
//! axum::serve(listener, explorer.local_only().router()).await?;
//! # Ok(()) }
//! ```
//!
//! Everything shown comes from other people's repositories: every value is escaped by the
//! templates, a README's own HTML is shown as text, and each answer carries a
//! Content-Security-Policy that allows only this server's own script and style.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

mod assets;
mod chart;
mod download;
mod fetch;
mod format;
mod graph;
mod layout;
mod markdown;
pub mod market;
#[cfg(feature = "mirror")]
pub mod mirror;
mod pages;

/// Markdown rendered as the explorer renders a README: CommonMark with tables, strikethrough
/// and task lists; the document's own HTML shown as text; link targets other than `http`,
/// `https`, `mailto` and relative ones replaced by `#`; images shown as links.
pub fn markdown_to_html(source: &str) -> String {
    markdown::render(source)
}

/// Downloads read at once; more wait for a slot.
const MAX_TRANSFERS: usize = 4;

/// Why a repository could not be added to an [`Explorer`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The directory is not an agigit repository (or cannot be read).
    #[error("{}: not an agigit repository", path.display())]
    Open {
        /// The directory.
        path: PathBuf,
        /// What opening it said.
        #[source]
        source: Box<agigit::Error>,
    },
}

/// What the explorer asks the network, supplied by its host (`agigit serve` builds it from the
/// user's keys and each repository's relays). Called on the blocking pool.
pub trait Remotes: Send + Sync + 'static {
    /// Audits the repository in `dir` against its servers now: which shards each holds of
    /// every pack its remote's refs reach (see [`agigit::Repository::audit`]). The error is a
    /// message for the page.
    ///
    /// # Errors
    /// Whatever kept the audit from being made (no remote, no relay answering, …).
    fn audit(&self, dir: &Path) -> Result<agigit::AuditReport, String>;

    /// The repositories announced on the relays that are not among the explorer's own, whose
    /// id, name, description or topics hold every one of `words` (lowercase); newest first.
    /// None by default.
    ///
    /// # Errors
    /// Whatever kept the relays from being asked.
    fn announced(&self, words: &[String]) -> Result<Vec<Announced>, String> {
        let _ = words;
        Ok(Vec::new())
    }

    /// The market's orders and rounds for the repository in `dir`, folded now (`None`: the
    /// host does not read the market, and the page says so).
    ///
    /// # Errors
    /// Whatever kept the relays from being asked.
    fn market(&self, dir: &Path) -> Option<Result<market::Market, String>> {
        let _ = dir;
        None
    }

    /// Whether [`fetch`](Self::fetch) brings repositories here (the list of repositories
    /// offers it for those announced on the relays). False by default.
    fn fetches(&self) -> bool {
        false
    }

    /// Fetches the repository at `coordinate` (every branch, every signature and hash checked)
    /// into a directory of the host's, or brings that copy up to date, and returns the
    /// directory; the explorer then shows it like its own. Refused by default.
    ///
    /// # Errors
    /// Whatever kept it from being fetched, as a message for the page.
    fn fetch(&self, coordinate: &agigit::event::RepoCoordinate) -> Result<PathBuf, String> {
        Err(format!(
            "this explorer does not fetch repositories ({coordinate})"
        ))
    }

    /// Widens the partial clone in `dir` by `parts` (its current branch pulled with them, as
    /// `agigit pull --parts` does: local changes in the way refuse it). Refused by default;
    /// offered where [`fetches`](Self::fetches) is true.
    ///
    /// # Errors
    /// Whatever kept them from being fetched, as a message for the page.
    fn fetch_parts(&self, dir: &Path, parts: &[agigit::Part]) -> Result<(), String> {
        let _ = (dir, parts);
        Err("this explorer does not fetch".into())
    }
}

/// A repository announced on a relay (its signature checked by whoever found it), as the list
/// of repositories shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Announced {
    /// `30717:<owner hex>:<id>`.
    pub coordinate: String,
    /// Its name, description and licence, as announced.
    pub name: Option<String>,
    /// As announced.
    pub description: Option<String>,
    /// As announced (an SPDX expression).
    pub license: Option<String>,
    /// Whether it is private (its content is encrypted for its readers).
    pub private: bool,
    /// Its topics.
    pub topics: Vec<String>,
    /// The coordinate of the foundation it forks.
    pub fork_of: Option<String>,
    /// The size of its checked-out files, as announced.
    pub size: Option<u64>,
    /// When its state last moved (Unix seconds).
    pub updated: u64,
}

impl Announced {
    /// A repository at `coordinate` last updated at `updated`, with nothing else said.
    pub fn new(coordinate: impl Into<String>, updated: u64) -> Self {
        Announced {
            coordinate: coordinate.into(),
            name: None,
            description: None,
            license: None,
            private: false,
            topics: Vec::new(),
            fork_of: None,
            size: None,
            updated,
        }
    }
}

/// The web explorer: the repositories it shows and how it serves them.
#[derive(Clone)]
pub struct Explorer {
    site: Arc<Site>,
}

impl std::fmt::Debug for Explorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Explorer")
            .field("title", &self.site.title)
            .field("repos", &self.site.repos())
            .field("local_only", &self.site.local_only)
            .field("remotes", &self.site.remotes.is_some())
            .finish_non_exhaustive()
    }
}

/// What every handler reads.
#[derive(Clone)]
pub(crate) struct Site {
    pub(crate) title: String,
    /// Shared by every copy of the explorer, so that one added later (a mirror made) is seen
    /// by routers made before.
    pub(crate) repos: Arc<std::sync::RwLock<Vec<Listed>>>,
    /// Answer only requests addressed to a loopback name (see [`Explorer::local_only`]).
    pub(crate) local_only: bool,
    /// Bounds the page renders running at once on the blocking pool.
    pub(crate) cpu: Arc<tokio::sync::Semaphore>,
    /// Bounds the downloads being read at once.
    pub(crate) transfers: Arc<tokio::sync::Semaphore>,
    /// One fetch of a repository from the relays at a time.
    pub(crate) fetches: Arc<tokio::sync::Semaphore>,
    /// How long a download waits for a browser that takes nothing.
    pub(crate) stall: std::time::Duration,
    /// The network checks, when the host supplies them.
    pub(crate) remotes: Option<Arc<dyn Remotes>>,
}

impl Site {
    /// The repositories shown now.
    pub(crate) fn repos(&self) -> Vec<Listed> {
        self.repos
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A repository the explorer shows: its name in URLs and its directory.
#[derive(Clone, Debug)]
pub(crate) struct Listed {
    pub(crate) slug: String,
    pub(crate) path: PathBuf,
}

impl Explorer {
    /// An explorer titled `title` with no repositories.
    pub fn new(title: impl Into<String>) -> Self {
        let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Explorer {
            site: Arc::new(Site {
                title: title.into(),
                repos: Arc::default(),
                local_only: false,
                cpu: Arc::new(tokio::sync::Semaphore::new(workers)),
                transfers: Arc::new(tokio::sync::Semaphore::new(MAX_TRANSFERS)),
                fetches: Arc::new(tokio::sync::Semaphore::new(1)),
                stall: download::STALL,
                remotes: None,
            }),
        }
    }

    /// Adds the repository at `path` and returns its name in the explorer's URLs (its
    /// configured id, else its directory's name, made unique).
    ///
    /// # Errors
    /// [`Error::Open`] when `path` is not an agigit repository.
    pub fn add_repository(&self, path: impl AsRef<Path>) -> Result<String, Error> {
        let path = path.as_ref();
        let open = |source| Error::Open {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let repo = agigit::Repository::open(path).map_err(open)?;
        let path = repo.root().to_owned();
        let id = repo.config().ok().and_then(|c| c.id);
        let base = slug(
            id.as_deref()
                .or_else(|| path.file_name().and_then(|n| n.to_str()))
                .unwrap_or("repository"),
        );
        let mut repos = self
            .site
            .repos
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = repos.iter().find(|r| r.path == path) {
            return Ok(known.slug.clone());
        }
        let mut name = base.clone();
        let mut n = 2;
        while repos.iter().any(|r| r.slug == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        repos.push(Listed {
            slug: name.clone(),
            path,
        });
        Ok(name)
    }

    /// Answers only requests whose `Host` is a loopback name (`localhost`, `127.0.0.1`,
    /// `[::1]`, with any port): what `agigit serve` sets, so that a web page elsewhere cannot
    /// read the user's repositories through DNS rebinding.
    #[must_use]
    pub fn local_only(mut self) -> Self {
        Arc::make_mut(&mut self.site).local_only = true;
        self
    }

    /// How long a download waits for a browser (or HTTP client) that reads nothing before it
    /// drops the transfer and frees its slot (60 s by default).
    #[must_use]
    pub fn transfer_stall(mut self, stall: std::time::Duration) -> Self {
        Arc::make_mut(&mut self.site).stall = stall;
        self
    }

    /// Makes the network checks (the availability page) through `remotes`.
    #[must_use]
    pub fn with_remotes(mut self, remotes: Arc<dyn Remotes>) -> Self {
        Arc::make_mut(&mut self.site).remotes = Some(remotes);
        self
    }

    /// The repositories shown: each one's name in URLs and its directory.
    pub fn repositories(&self) -> Vec<(String, PathBuf)> {
        self.site
            .repos()
            .into_iter()
            .map(|r| (r.slug, r.path))
            .collect()
    }

    /// The pages' routes, to serve or to mount in a larger router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(pages::list::handler))
            .route("/r/{slug}", get(pages::repo::handler))
            .route("/r/{slug}/history", get(pages::history::handler))
            .route("/r/{slug}/commit/{id}", get(pages::commit::handler))
            .route("/r/{slug}/files", get(pages::repo::files_handler))
            .route("/r/{slug}/availability", get(pages::availability::handler))
            .route("/r/{slug}/market", get(pages::market::handler))
            .route("/r/{slug}/download", get(download::handler))
            .route("/fetch", axum::routing::post(fetch::handler))
            .route(
                "/r/{slug}/fetch-part",
                axum::routing::post(fetch::part_handler),
            )
            .route("/assets/{name}", get(assets::handler))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                self.site.clone(),
                guard,
            ))
            .with_state(self.site.clone())
    }
}

/// A name for URLs: lowercase letters, digits, `-`, `_` and `.`, at most 64 bytes.
fn slug(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        out = "repository".into();
    }
    out
}

/// The security headers of every answer, and the loopback check of [`Explorer::local_only`].
async fn guard(State(site): State<Arc<Site>>, request: Request, next: Next) -> Response {
    if site.local_only && !is_loopback_host(request.headers().get(header::HOST)) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this explorer answers only requests to localhost\n",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Whether a `Host` header names this machine's loopback interface.
fn is_loopback_host(host: Option<&HeaderValue>) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn not_found(State(site): State<Arc<Site>>) -> Response {
    pages::PageError::NotFound("no such page".into()).into_page(&site)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_in_urls() {
        assert_eq!(slug("My Model/v2"), "my-model-v2");
        assert_eq!(slug(".."), "repository");
        assert_eq!(slug(""), "repository");
        assert_eq!(slug(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn only_loopback_hosts_pass() {
        let ok = |h: &str| {
            is_loopback_host(Some(
                &HeaderValue::from_str(h).unwrap_or_else(|_| HeaderValue::from_static("bad")),
            ))
        };
        assert!(ok("localhost:8717"));
        assert!(ok("LOCALHOST"));
        assert!(ok("127.0.0.1:1"));
        assert!(ok("127.5.0.1"));
        assert!(ok("[::1]:8717"));
        assert!(!ok("evil.example:8717"));
        assert!(!ok("localhost.evil.example"));
        assert!(!ok("192.168.1.2:8717"));
        assert!(!is_loopback_host(None));
    }
}
