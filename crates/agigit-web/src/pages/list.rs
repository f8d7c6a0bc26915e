//! `/`: the repositories, searchable by words in their name, id, description and topics.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};

use super::{PageError, blocking};
use crate::layout::{Crumb, page};
use crate::{Listed, Site, format};

#[derive(Debug, serde::Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
}

pub(crate) async fn handler(
    State(site): State<Arc<Site>>,
    Query(query): Query<ListQuery>,
) -> Response {
    blocking(site, move |site| {
        render(site, query.q.as_deref().unwrap_or(""))
    })
    .await
}

/// What the list and a repository's page say about a repository.
pub(crate) struct Summary {
    pub(crate) slug: String,
    pub(crate) name: String,
    /// The coordinate it was cloned from or announced as, when known.
    pub(crate) remote: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) license: Option<String>,
    pub(crate) topics: Vec<String>,
    /// The foundation it forks (a coordinate) and the commit.
    pub(crate) foundation: Option<agigit::dag::ForkBase>,
    /// The size of the checked-out branch's files, where a page computed it.
    pub(crate) size: Option<u64>,
    /// The time of its branch's newest commit.
    pub(crate) updated: Option<i64>,
    pub(crate) branch: Option<String>,
    /// For a private repository, how many readers its envelope lists (never who they are on
    /// a page); `None` for a public one.
    pub(crate) readers: Option<usize>,
}

impl Summary {
    /// Whether it is private.
    pub(crate) fn private(&self) -> bool {
        self.readers.is_some()
    }

    /// The words a search matches against, lowercased.
    fn haystack(&self) -> String {
        let mut all = vec![self.slug.as_str(), self.name.as_str()];
        all.extend(self.description.as_deref());
        all.extend(self.remote.as_deref());
        all.extend(self.topics.iter().map(String::as_str));
        all.join(" ").to_lowercase()
    }
}

/// Reads what the list shows of `listed`.
pub(crate) fn summary(listed: &Listed, repo: &agigit::Repository) -> Result<Summary, PageError> {
    let config = repo.config().unwrap_or_default();
    let announce = config.announce.clone().unwrap_or_default();
    let branch = repo
        .current_branch()?
        .and_then(|b| b.branch_name().map(str::to_owned));
    // The size is left to the pages that show it (it reads every file's metadata).
    let size = None;
    let updated = match repo.head()? {
        Some(id) => repo.log(&id.to_string(), 1)?.first().map(|(_, c)| c.time),
        None => None,
    };
    Ok(Summary {
        slug: listed.slug.clone(),
        name: announce
            .name
            .clone()
            .or(config.id.clone())
            .unwrap_or_else(|| listed.slug.clone()),
        remote: config.remote.clone(),
        description: announce.description,
        license: announce.license,
        topics: announce.topics,
        foundation: repo.fork_base()?,
        size,
        updated,
        branch,
        readers: repo.readers()?.map(|r| r.len()),
    })
}

fn render(site: &Site, query: &str) -> Result<Markup, PageError> {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    let mut shown = Vec::new();
    let mut unreadable = Vec::new();
    let repos = site.repos();
    for listed in &repos {
        let summary = agigit::Repository::open(&listed.path)
            .map_err(PageError::from)
            .and_then(|repo| {
                let mut s = summary(listed, &repo)?;
                if let Some(head) = repo.head()? {
                    let files = repo.files_at(&head.to_string())?;
                    s.size = Some(files.iter().map(|f| f.bytes).sum());
                }
                Ok(s)
            });
        match summary {
            Ok(s) => {
                let hay = s.haystack();
                if words.iter().all(|w| hay.contains(w.as_str())) {
                    shown.push(s);
                }
            }
            Err(e) => unreadable.push((listed.slug.clone(), format!("{e:?}"))),
        }
    }
    shown.sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| a.slug.cmp(&b.slug)));
    let announced = site.remotes.as_ref().map(|r| r.announced(&words));
    let fetches = site.remotes.as_ref().is_some_and(|r| r.fetches());
    let title = if query.is_empty() {
        "Repositories".to_owned()
    } else {
        format!("Repositories matching “{query}”")
    };
    let body = html! {
        h1 { (title) }
        p.count { (shown.len()) " of " (repos.len()) " repositories" }
        @if shown.is_empty() {
            p.empty { "No repository matches." }
        } @else {
            div.table-wrap {
                table.list #repositories data-nav {
                    thead { tr {
                        th { "Repository" } th.wide { "Description" } th { "Licence" }
                        th.wide { "Foundation" } th.num { "Size" } th { "Updated" }
                    } }
                    tbody {
                        @for s in &shown {
                            tr data-nav-row {
                                td {
                                    a.row-link href={ "/r/" (s.slug) } { (s.name) }
                                    @if s.private() { " " span.badge.private { "private" } }
                                    @if let Some(r) = &s.remote { div.sub.mono { (short_coordinate(r)) } }
                                }
                                td.wide { (s.description.as_deref().unwrap_or("")) }
                                td { (s.license.as_deref().unwrap_or("—")) }
                                td.wide.mono {
                                    @if let Some(f) = &s.foundation { (short_coordinate(&f.repo)) } @else { "—" }
                                }
                                td.num { @if let Some(n) = s.size { (format::bytes(n)) } @else { "—" } }
                                td { @if let Some(t) = s.updated { (format::time(t)) } @else { "no commits" } }
                            }
                        }
                    }
                }
            }
        }
        @match &announced {
            Some(Ok(found)) if !found.is_empty() => {
                h2 { "On the relays" }
                p.sub {
                    "Announced by their owners and not here: "
                    @if fetches { "“Fetch” brings one here to browse (every signature and hash checked), or " }
                    code { "agigit clone <repository>" } " clones it."
                }
                div.table-wrap {
                    table.list #announced {
                        thead { tr {
                            th { "Repository" } th.wide { "Description" } th { "Licence" }
                            th.wide { "Foundation" } th.num { "Size" } th { "Updated" }
                            @if fetches { th {} }
                        } }
                        tbody { @for a in found {
                            tr {
                                td {
                                    (a.name.as_deref().unwrap_or_else(|| a.coordinate.rsplit(':').next().unwrap_or("")))
                                    @if a.private { " " span.badge.private { "private" } }
                                    div.sub.mono title=(a.coordinate) { (short_coordinate(&a.coordinate)) }
                                }
                                td.wide { (a.description.as_deref().unwrap_or("")) }
                                td { (a.license.as_deref().unwrap_or("—")) }
                                td.wide.mono { @if let Some(f) = &a.fork_of { (short_coordinate(f)) } @else { "—" } }
                                td.num { @if let Some(n) = a.size { (format::bytes(n)) } @else { "—" } }
                                td { (format::time(i64::try_from(a.updated).unwrap_or(i64::MAX))) }
                                @if fetches {
                                    td {
                                        form.fetch method="post" action="/fetch" {
                                            input type="hidden" name="coordinate" value=(a.coordinate);
                                            button type="submit" { "Fetch" }
                                        }
                                    }
                                }
                            }
                        } }
                    }
                }
            },
            Some(Err(why)) => p.warn #announced-error { "The relays could not be asked: " (why) },
            _ => {},
        }
        @for (slug, why) in &unreadable {
            p.warn { (slug) ": could not be read: " (why) }
        }
    };
    Ok(page(site, &title, &[Crumb::here("repositories")], body))
}

/// `30717:<64 hex>:<id>` shown as `<first 8 hex>…:<id>`.
pub(crate) fn short_coordinate(coordinate: &str) -> String {
    let mut parts = coordinate.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_kind), Some(owner), Some(id)) if owner.len() > 12 => {
            format!("{}…:{id}", owner.chars().take(8).collect::<String>())
        }
        _ => coordinate.to_owned(),
    }
}
