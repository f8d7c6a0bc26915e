//! The pages. Each handler opens its repository and renders on the blocking pool (reading the
//! store hashes and decodes: never on an async thread), a bounded number at once.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};

use crate::layout::{Crumb, page};
use crate::{Listed, Site};

pub(crate) mod availability;
pub(crate) mod commit;
pub(crate) mod history;
pub(crate) mod list;
pub(crate) mod market;
pub(crate) mod repo;

/// Why a page could not be shown.
#[derive(Debug)]
pub(crate) enum PageError {
    /// No such repository, revision, commit or file.
    NotFound(String),
    /// The request names something malformed.
    BadRequest(String),
    /// The request is not one this explorer answers (from another site, or of a kind its host
    /// does not allow).
    Forbidden(String),
    /// The relays or servers asked on the request's behalf failed.
    Upstream(String),
    /// The repository could not be read.
    Repo(agigit::Error),
}

impl From<agigit::Error> for PageError {
    fn from(e: agigit::Error) -> Self {
        match e {
            agigit::Error::UnknownRevision(rev) => {
                PageError::NotFound(format!("no revision {rev:?} in this repository"))
            }
            agigit::Error::AmbiguousRevision { .. } => PageError::BadRequest(e.to_string()),
            e => PageError::Repo(e),
        }
    }
}

impl PageError {
    /// The error as a page with its status.
    pub(crate) fn into_page(self, site: &Site) -> Response {
        let (status, what) = match self {
            PageError::NotFound(what) => (StatusCode::NOT_FOUND, what),
            PageError::BadRequest(what) => (StatusCode::BAD_REQUEST, what),
            PageError::Forbidden(what) => (StatusCode::FORBIDDEN, what),
            PageError::Upstream(what) => (StatusCode::BAD_GATEWAY, what),
            PageError::Repo(e) => {
                tracing::warn!(error = %e, "web page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "the repository could not be read ({}): {e}",
                        e.kind().as_str()
                    ),
                )
            }
        };
        let title = status.canonical_reason().unwrap_or("error");
        let body = html! {
            section.error {
                h1 { (status.as_u16()) " " (title) }
                p { (what) }
                p { a href="/" { "All repositories" } }
            }
        };
        (status, Html(page(site, title, &[], body).into_string())).into_response()
    }
}

/// The parts a partial clone does not hold, with a button to fetch each where the host
/// fetches; nothing for a repository that holds them all.
pub(crate) fn missing_parts(
    site: &Site,
    slug: &str,
    held: Option<&std::collections::BTreeSet<agigit::Part>>,
) -> Markup {
    let Some(held) = held else {
        return html! {};
    };
    let missing: Vec<agigit::Part> = agigit::Part::ALL
        .into_iter()
        .filter(|p| !held.contains(p))
        .collect();
    let fetches = site.remotes.as_ref().is_some_and(|r| r.fetches());
    html! {
        @if !missing.is_empty() {
            section.partial #partial {
                p.sub {
                    "A partial clone: it holds "
                    (held.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "))
                    ". What the other parts hold is not shown here."
                }
                ul.missing { @for part in &missing {
                    li {
                        span.mono { (part.name()) } " — not in this clone "
                        @if fetches {
                            form.fetch method="post" action={ "/r/" (slug) "/fetch-part" } {
                                input type="hidden" name="part" value=(part.name());
                                button type="submit" { "Fetch " (part.name()) }
                            }
                        } @else {
                            code { "agigit pull --parts " (part.name()) }
                        }
                    }
                } }
            }
        }
    }
}

/// Where a download's progress and verdict show (`app.js` fills it).
pub(crate) fn transfer_box() -> Markup {
    html! {
        div #transfer hidden {
            progress #transfer-progress max="1" value="0" {}
            span #transfer-status {}
        }
    }
}

/// Runs `render` on the blocking pool once one of the site's CPU permits is free.
pub(crate) async fn blocking<F>(site: Arc<Site>, render: F) -> Response
where
    F: FnOnce(&Site) -> Result<Markup, PageError> + Send + 'static,
{
    let Ok(permit) = site.cpu.clone().acquire_owned().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let shared = site.clone();
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        render(&shared)
    })
    .await;
    match result {
        Ok(Ok(markup)) => Html(markup.into_string()).into_response(),
        Ok(Err(e)) => e.into_page(&site),
        Err(e) => {
            tracing::error!(error = %e, "a page's render panicked");
            PageError::Repo(agigit::Error::Internal("the page's render failed")).into_page(&site)
        }
    }
}

/// The repository named `slug` in URLs, opened.
pub(crate) fn open(site: &Site, slug: &str) -> Result<(Listed, agigit::Repository), PageError> {
    let listed = site
        .repos()
        .into_iter()
        .find(|r| r.slug == slug)
        .ok_or_else(|| PageError::NotFound(format!("no repository {slug:?} here")))?;
    let repo = agigit::Repository::open(&listed.path)?;
    Ok((listed, repo))
}

/// The trail to a repository's page.
pub(crate) fn repo_crumbs(listed: &Listed) -> Vec<Crumb> {
    vec![
        Crumb::link("repositories", "/"),
        Crumb::link(listed.slug.clone(), format!("/r/{}", listed.slug)),
    ]
}

/// A query string's value escaped for a URL.
pub(crate) fn q(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
