//! `/r/{slug}/history?branch=…&part=…`: a branch's commits as a graph (merges and fork bases
//! drawn), optionally only those that changed one part.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use agigit::dag::FindExt as _;
use agigit::hash::ObjectId;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};

use super::list::{short_coordinate, summary};
use super::repo::shown_rev;
use super::{PageError, blocking, open, q, repo_crumbs};
use crate::layout::{Crumb, page};
use crate::{Site, format, graph};

/// The most commits one page shows.
const PAGE: usize = 500;

#[derive(Debug, serde::Deserialize)]
pub(crate) struct HistoryQuery {
    branch: Option<String>,
    part: Option<String>,
}

pub(crate) async fn handler(
    State(site): State<Arc<Site>>,
    Path(slug): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    blocking(site, move |site| render(site, &slug, &query)).await
}

fn render(site: &Site, slug: &str, query: &HistoryQuery) -> Result<Markup, PageError> {
    let (listed, repo) = open(site, slug)?;
    let listed = &listed;
    let s = summary(listed, &repo)?;
    let rev = shown_rev(&s, query.branch.as_deref());
    let part = match query
        .part
        .as_deref()
        .filter(|p| !p.is_empty() && *p != "all")
    {
        Some(name) => Some(
            agigit::Part::ALL
                .into_iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| {
                    PageError::BadRequest(format!(
                        "no part {name:?}: code, params, data/train or data/validation"
                    ))
                })?,
        ),
        None => None,
    };
    let filter = match part {
        Some(p) => agigit::PathFilter::parse(&[p.name()])?,
        None => agigit::PathFilter::all(),
    };
    let commits = repo.log_filtered(&rev, PAGE + 1, &filter)?;
    let more = commits.len() > PAGE;
    let commits = &commits[..commits.len().min(PAGE)];
    // Edges go to the parents shown; a parent filtered out is replaced by its nearest shown
    // first-parent ancestor, so a part's history stays one connected line.
    let shown: HashSet<ObjectId> = commits.iter().map(|(id, _)| *id).collect();
    let mut parent_cache: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
    let mut nearest = |start: ObjectId| -> Result<Option<ObjectId>, PageError> {
        let mut at = start;
        for _ in 0..=PAGE * 4 {
            if shown.contains(&at) {
                return Ok(Some(at));
            }
            let parents = match parent_cache.get(&at) {
                Some(p) => p.clone(),
                None => {
                    let p = repo
                        .store()
                        .find_commit(&at)
                        .map_err(agigit::Error::from)?
                        .parents;
                    parent_cache.insert(at, p.clone());
                    p
                }
            };
            match parents.first() {
                Some(p) => at = *p,
                None => return Ok(None),
            }
        }
        Ok(None)
    };
    let mut edges = Vec::with_capacity(commits.len());
    for (id, commit) in commits {
        let mut parents = Vec::new();
        for p in &commit.parents {
            let target = if part.is_some() {
                nearest(*p)?
            } else {
                Some(*p)
            };
            if let Some(t) = target
                && !parents.contains(&t)
            {
                parents.push(t);
            }
        }
        edges.push((*id, parents));
    }
    let rows = graph::layout(&edges);
    let width = rows.iter().map(|r| r.width).max().unwrap_or(1);
    let branches = repo.branches()?;
    let mut heads: HashMap<ObjectId, Vec<String>> = HashMap::new();
    for (name, id) in &branches {
        heads.entry(*id).or_default().push(name.clone());
    }
    let part_name = part.map_or("all", agigit::Part::name);
    let body = html! {
        h1 { "History of " span.mono { (rev) } }
        form.filters method="get" {
            label { "Branch "
                select name="branch" {
                    @for name in branches.keys() {
                        option value=(name) selected[*name == rev] { (name) }
                    }
                    @if !branches.contains_key(&rev) { option value=(rev) selected { (rev) } }
                }
            }
            " "
            label { "Part "
                select name="part" {
                    option value="all" selected[part.is_none()] { "all parts" }
                    @for p in agigit::Part::ALL {
                        option value=(p.name()) selected[part == Some(p)] { (p.name()) }
                    }
                }
            }
            " " button type="submit" { "Show" }
        }
        nav.part-links aria-label="Parts" {
            @for name in ["all", "code", "params", "data/train", "data/validation"] {
                @if name == part_name { span.current { (name) } }
                @else { a href={ "/r/" (s.slug) "/history?branch=" (q(&rev)) "&part=" (q(name)) } { (name) } }
                " "
            }
        }
        @if commits.is_empty() {
            p.empty { "No commit on " (rev) @if part.is_some() { " changed " (part_name) } "." }
        } @else {
            div.table-wrap { table.history #history data-nav {
                tbody {
                    @for ((id, commit), row) in commits.iter().zip(&rows) {
                        @let merge = commit.parents.len() > 1;
                        @let forked = commit.base.as_ref().filter(|b| commit.parents.first() == Some(&b.commit));
                        tr data-nav-row {
                            td.graph { (graph::svg(row, width, merge)) }
                            td.mono { a.row-link href={ "/r/" (s.slug) "/commit/" (id) } { (format::short(id, 10)) } }
                            td.message {
                                @if let Some(names) = heads.get(id) { @for n in names { span.badge.branch { (n) } " " } }
                                @if merge { span.badge.merge { "merge" } " " }
                                @if let Some(b) = forked { span.badge.fork title=(b.repo) { "fork of " (short_coordinate(&b.repo)) } " " }
                                (format::subject(&commit.message))
                            }
                            td.sub.mono.wide { (format::short(&hex(&commit.author), 8)) }
                            td.sub { (format::time(commit.time)) }
                        }
                    }
                }
            } }
            @if more { p.sub { "The newest " (PAGE) " commits are shown." } }
        }
    };
    let mut crumbs = repo_crumbs(listed);
    crumbs.push(Crumb::here(format!("history of {rev}")));
    Ok(page(site, &format!("History of {}", s.name), &crumbs, body))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
