//! `/r/{slug}`: a repository — what it is, its branches and tags, its four parts with their
//! sizes, its README, its foundation and forks; `/r/{slug}/files`: every file of a revision,
//! each downloadable.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, PreEscaped, html};

use super::list::{Summary, short_coordinate, summary};
use super::{PageError, blocking, open, q, repo_crumbs};
use crate::chart::{Bar, bars};
use crate::layout::{Crumb, page};
use crate::{Site, format, markdown};

#[derive(Debug, serde::Deserialize)]
pub(crate) struct RevQuery {
    /// A branch, tag or commit; the checked-out branch when absent.
    rev: Option<String>,
}

pub(crate) async fn handler(
    State(site): State<Arc<Site>>,
    Path(slug): Path<String>,
    Query(query): Query<RevQuery>,
) -> Response {
    blocking(site, move |site| render(site, &slug, query.rev.as_deref())).await
}

pub(crate) async fn files_handler(
    State(site): State<Arc<Site>>,
    Path(slug): Path<String>,
    Query(query): Query<RevQuery>,
) -> Response {
    blocking(site, move |site| {
        render_files(site, &slug, query.rev.as_deref())
    })
    .await
}

/// The revision shown: `rev`, else the checked-out branch, else `HEAD`.
pub(crate) fn shown_rev(summary: &Summary, rev: Option<&str>) -> String {
    rev.map(str::to_owned)
        .or_else(|| summary.branch.clone())
        .unwrap_or_else(|| "HEAD".to_owned())
}

fn render(site: &Site, slug: &str, rev: Option<&str>) -> Result<Markup, PageError> {
    let (listed, repo) = open(site, slug)?;
    let listed = &listed;
    let mut s = summary(listed, &repo)?;
    let branches = repo.branches()?;
    let tags = repo.tags()?;
    let asked = rev.is_some();
    let rev = shown_rev(&s, rev);
    // A repository without a commit yet shows what it is, not an unknown revision.
    let tip = match repo.resolve(&rev) {
        Ok(id) => Some(id),
        Err(agigit::Error::UnknownRevision(_)) if !asked && s.updated.is_none() => None,
        Err(e) => return Err(e.into()),
    };
    let files = match tip {
        Some(id) => repo.files_at(&id.to_string())?,
        None => Vec::new(),
    };
    s.size = tip.map(|_| files.iter().map(|f| f.bytes).sum());
    let readme = readme(&repo, tip.as_ref(), &files)?;
    let forks = forks_of(site, &s.slug, &repo);
    let foundation_local = s
        .foundation
        .as_ref()
        .and_then(|f| local_repo_for(site, &f.repo));
    let held = repo.parts()?;
    let partial = super::missing_parts(site, &s.slug, held.as_ref());
    let mut part_bars = Vec::new();
    let mut part_rows = Vec::new();
    for part in agigit::Part::ALL {
        if held.as_ref().is_some_and(|h| !h.contains(&part)) {
            continue;
        }
        let of_part: Vec<_> = files.iter().filter(|f| f.part == part).collect();
        let bytes: u64 = of_part.iter().map(|f| f.bytes).sum();
        #[allow(clippy::cast_precision_loss, reason = "a bar's length")]
        part_bars.push(Bar {
            label: part.name().to_owned(),
            value: bytes as f64,
            text: format::bytes(bytes),
        });
        part_rows.push((part, of_part.len(), bytes));
    }
    let body = html! {
        header.repo {
            h1 { (s.name) @if s.private() { " " span.badge.private { "private" } } }
            @if let Some(d) = &s.description { p.description { (d) } }
            dl.facts {
                @if let Some(r) = &s.remote { dt { "Repository" } dd.mono title=(r) { (short_coordinate(r)) } }
                dt { "Licence" } dd { (s.license.as_deref().unwrap_or("not stated")) }
                @if !s.topics.is_empty() { dt { "Topics" } dd { @for t in &s.topics { span.badge { (t) } " " } } }
                @if let Some(f) = &s.foundation {
                    dt { "Fork of" }
                    dd.mono {
                        @match &foundation_local {
                            Some(local) => a href={ "/r/" (local) } { (short_coordinate(&f.repo)) },
                            None => span title=(f.repo) { (short_coordinate(&f.repo)) },
                        }
                        " at " (format::short(&f.commit, 12))
                    }
                }
                @if let Some(n) = s.readers {
                    dt { "Access" }
                    dd #readers {
                        "encrypted for " (n) @if n == 1 { " reader" } @else { " readers" }
                        " (the owner among them); servers hold only ciphertext"
                    }
                }
                dt { "Size" } dd { @if let Some(n) = s.size { (format::bytes(n)) } @else { "—" } }
            }
            nav.actions {
                a.button href={ "/r/" (s.slug) "/history?branch=" (q(&rev)) } { "History" }
                a.button href={ "/r/" (s.slug) "/files?rev=" (q(&rev)) } { "Files" }
                a.button href={ "/r/" (s.slug) "/availability" } { "Availability" }
                a.button href={ "/r/" (s.slug) "/market" } { "Market" }
                @if let Some(id) = tip { a.button href={ "/r/" (s.slug) "/commit/" (id) } { "Latest commit" } }
            }
            @if tip.is_none() { p.empty #no-commits { "No commits yet." } }
        }
        section.parts {
            h2 { "Parts at " span.mono { (rev) } }
            (partial)
            div.table-wrap { table {
                thead { tr { th { "Part" } th.num { "Files" } th.num { "Size" } } }
                tbody { @for (part, n, bytes) in &part_rows {
                    tr { td { (part.name()) } td.num { (n) } td.num { (format::bytes(*bytes)) } }
                } }
            } }
            (bars("Stored size per part", "part-sizes", &part_bars))
        }
        section.refs {
            h2 { "Branches" }
            div.table-wrap { table.list data-nav {
                thead { tr { th { "Branch" } th { "Commit" } th.wide { "Message" } th { "Date" } } }
                tbody { @for (name, id) in &branches {
                    @let commit = repo.log(&id.to_string(), 1)?;
                    tr data-nav-row {
                        td { a.row-link href={ "/r/" (s.slug) "?rev=" (q(name)) } { (name) }
                             @if s.branch.as_deref() == Some(name.as_str()) { " " span.badge { "checked out" } } }
                        td.mono { a href={ "/r/" (s.slug) "/commit/" (id) } { (format::short(id, 10)) } }
                        td.wide { @if let Some((_, c)) = commit.first() { (format::subject(&c.message)) } }
                        td { @if let Some((_, c)) = commit.first() { (format::time(c.time)) } }
                    }
                } }
            } }
            @if !tags.is_empty() {
                h2 { "Tags" }
                ul.tags { @for (name, tag) in &tags {
                    li { a href={ "/r/" (s.slug) "/commit/" (tag.commit) } { (name) }
                         @if let Some(m) = &tag.message { " — " (m) } }
                } }
            }
        }
        @if !forks.is_empty() {
            section.forks {
                h2 { "Forks here" }
                ul { @for (slug, name) in &forks { li { a href={ "/r/" (slug) } { (name) } } } }
            }
        }
        section.readme {
            h2 { "README" }
            @match &readme {
                Some((path, html)) => { p.sub.mono { (path) } article.markdown { (PreEscaped(html)) } },
                None => p.empty { "The code part has no README." },
            }
        }
    };
    let mut crumbs = repo_crumbs(listed);
    crumbs.push(Crumb::here(rev.clone()));
    Ok(page(site, &s.name, &crumbs, body))
}

/// The README of the code part (`README.md`, `README`, `readme.txt`, … at the shallowest
/// depth), rendered.
fn readme(
    repo: &agigit::Repository,
    tip: Option<&agigit::hash::ObjectId>,
    files: &[agigit::FileEntry],
) -> Result<Option<(String, String)>, PageError> {
    let Some(tip) = tip else {
        return Ok(None);
    };
    let candidate = files
        .iter()
        .filter(|f| f.part == agigit::Part::Code)
        .filter(|f| {
            let name = f
                .path
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            name == "readme" || name.starts_with("readme.")
        })
        .min_by_key(|f| {
            (
                f.path.matches('/').count(),
                !f.path.to_ascii_lowercase().ends_with(".md"),
                f.path.clone(),
            )
        });
    let Some(file) = candidate else {
        return Ok(None);
    };
    let cut = file.bytes > markdown::MAX_README;
    let bytes = if cut {
        // Read at most the rendered share: a long README is cut, never loaded whole.
        let mut out = Vec::new();
        repo.read_file_with(
            &tip.to_string(),
            &file.path,
            |_| Ok(()),
            |chunk| {
                let room = usize::try_from(markdown::MAX_README)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(out.len());
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                Ok(())
            },
        )?;
        out
    } else {
        repo.read_file_at(&tip.to_string(), &file.path, markdown::MAX_README)?
            .unwrap_or_default()
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut html = if file.path.to_ascii_lowercase().ends_with(".md") {
        markdown::render(&text)
    } else {
        maud::html! { pre { (text) } }.into_string()
    };
    if cut {
        html.push_str(&maud::html! { p.warn { "(cut at " (format::bytes(markdown::MAX_README)) " of " (format::bytes(file.bytes)) ")" } }.into_string());
    }
    Ok(Some((file.path.clone(), html)))
}

/// Whether a repository configured as `config` is the one at `coordinate` (its `remote`, or
/// its id for a repository made here).
fn is_at(config: &agigit::config::RepoConfig, coordinate: &str) -> bool {
    match (&config.remote, &config.id) {
        (Some(remote), _) => remote == coordinate,
        (None, Some(id)) => coordinate.rsplit(':').next() == Some(id.as_str()),
        _ => false,
    }
}

/// The listed repository whose coordinate is `coordinate`.
pub(crate) fn local_repo_for(site: &Site, coordinate: &str) -> Option<String> {
    site.repos().into_iter().find_map(|r| {
        let config = agigit::Repository::open(&r.path).ok()?.config().ok()?;
        is_at(&config, coordinate).then(|| r.slug.clone())
    })
}

/// The listed repositories that fork `repo` (listed as `slug`): their slugs and names.
fn forks_of(site: &Site, slug: &str, repo: &agigit::Repository) -> Vec<(String, String)> {
    let Ok(config) = repo.config() else {
        return Vec::new();
    };
    site.repos()
        .into_iter()
        .filter(|r| r.slug != slug)
        .filter_map(|r| {
            let fork = agigit::Repository::open(&r.path).ok()?;
            let base = fork.fork_base().ok()??;
            is_at(&config, &base.repo).then(|| {
                let name = fork
                    .config()
                    .ok()
                    .and_then(|c| c.id)
                    .unwrap_or_else(|| r.slug.clone());
                (r.slug.clone(), name)
            })
        })
        .collect()
}

fn render_files(site: &Site, slug: &str, rev: Option<&str>) -> Result<Markup, PageError> {
    let (listed, repo) = open(site, slug)?;
    let listed = &listed;
    let s = summary(listed, &repo)?;
    let rev = shown_rev(&s, rev);
    let id = repo.resolve(&rev)?;
    let files = repo.files_at(&id.to_string())?;
    let body = html! {
        h1 { "Files at " span.mono { (rev) } }
        p.sub { "commit " a.mono href={ "/r/" (s.slug) "/commit/" (id) } { (format::short(&id, 12)) } }
        div.table-wrap { table.list #files data-nav {
            thead { tr { th { "Path" } th { "Part" } th.num { "Size" } th { "" } } }
            tbody { @for f in &files {
                tr data-nav-row {
                    td.mono { (f.path) }
                    td { (f.part.name()) }
                    td.num { (format::bytes(f.bytes)) }
                    td {
                        button.download.row-link type="button"
                            data-url={ "/r/" (s.slug) "/download?rev=" (id) "&path=" (q(&f.path)) }
                            data-name=(f.path.rsplit('/').next().unwrap_or("file"))
                            data-size=(f.bytes) { "Download" }
                    }
                }
            } }
        } }
        (super::transfer_box())
    };
    let mut crumbs = repo_crumbs(listed);
    crumbs.push(Crumb::here(format!("files at {rev}")));
    Ok(page(site, &format!("Files of {}", s.name), &crumbs, body))
}
