//! `/r/{slug}/availability`: whether the repository can still be rebuilt from the servers that
//! hold it, asked now — per pack, which servers hold how many shards of each segment (HEAD
//! requests, a bounded number at once, through the host's [`Remotes`](crate::Remotes)), the
//! margin (how many more servers may fail) and the odds of a rebuild, as a grid that is red
//! where a segment has fewer than `k` shards left anywhere.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};

use super::list::summary;
use super::{PageError, blocking, open, repo_crumbs};
use crate::layout::{Crumb, page};
use crate::{Site, format};

/// The most segments a pack's grid draws one column each; the rest are summed up in one.
const COLUMNS: usize = 96;

pub(crate) async fn handler(State(site): State<Arc<Site>>, Path(slug): Path<String>) -> Response {
    blocking(site, move |site| render(site, &slug)).await
}

fn render(site: &Site, slug: &str) -> Result<Markup, PageError> {
    let (listed, repo) = open(site, slug)?;
    let listed = &listed;
    let s = summary(listed, &repo)?;
    let mut crumbs = repo_crumbs(listed);
    crumbs.push(Crumb::here("availability"));
    let Some(remotes) = &site.remotes else {
        let body = html! {
            h1 { "Availability" }
            p.empty { "This explorer makes no network checks." }
        };
        return Ok(page(site, "Availability", &crumbs, body));
    };
    let report = remotes.audit(&listed.path);
    let body = match &report {
        Err(why) => html! {
            h1 { "Availability of " (s.name) }
            p.bad #audit-error { "The servers could not be asked: " (why) }
        },
        Ok(report) => html! {
            h1 { "Availability of " (s.name) }
            p.sub { "Asked just now: " (format::count(report.servers.len(), "server")) ", " (format::count(report.packs.len(), "pack")) ". "
                "A server's “yes” is its word; only a download verifies." }
            @if !report.unreachable.is_empty() {
                p.bad { "Did not answer (counted as holding nothing): " (report.unreachable.join(", ")) }
            }
            p #verdict class=(if report.is_healthy() { "ok" } else { "bad" }) {
                @if report.is_healthy() { "Every pack meets its durability target." }
                @else { "Some packs are below their target: run " code { "agigit repair" } "." }
            }
            @for (i, pack) in report.packs.iter().enumerate() { (pack_grid(i, &report.servers, pack)) }
        },
    };
    Ok(page(
        site,
        &format!("Availability of {}", s.name),
        &crumbs,
        body,
    ))
}

fn pack_grid(index: usize, servers: &[String], pack: &agigit::PackAudit) -> Markup {
    let (k, n) = pack.code;
    let target = pack.target.servers_lost();
    let shown = pack.segment_holdings.len().min(COLUMNS);
    let rest = &pack.segment_holdings[shown..];
    let class = |h: &agigit::SegmentHolding| -> &'static str {
        if h.distinct < k {
            "below-k"
        } else if h.margin.is_none_or(|m| m < target) {
            "below-target"
        } else {
            "held"
        }
    };
    html! {
        section.pack id={ "pack-" (index) } {
            h2 {
                (pack.part.as_deref().unwrap_or("commits and trees"))
                " " span.sub.mono title=(pack.manifest) { "pack " (format::short(&pack.manifest, 12)) }
            }
            dl.facts {
                dt { "Code" } dd { (k) " of " (n) " shards per segment, " (format::count(pack.segments, "segment")) }
                dt { "Margin" }
                dd.margin.ok[pack.meets_target()].bad[!pack.meets_target()] {
                    @match pack.survives {
                        Some(0) => "no server may fail",
                        Some(m) => { "any " (format::count(m, "server")) " may fail" },
                        None => "cannot be rebuilt now",
                    }
                    " (target: " (target) ")"
                }
                dt { "Rebuild odds" }
                dd { (format::percent(pack.rebuild.probability)) @if !pack.rebuild.exact { " at least" } }
            }
            div.table-wrap { table.grid {
                thead { tr {
                    th { "Server" } th { "Manifest" }
                    @for s in 0..shown { th.seg { (s) } }
                    @if !rest.is_empty() { th.seg { (shown) "–" (pack.segment_holdings.len() - 1) } }
                } }
                tbody {
                    @for (i, server) in servers.iter().enumerate() {
                        tr {
                            th.mono { (server) }
                            td { @if pack.servers.get(i).is_some_and(|h| h.manifest) { "✓" } @else { span.bad { "✗" } } }
                            @for h in &pack.segment_holdings[..shown] {
                                @let c = h.per_server.get(i).copied().unwrap_or(0);
                                td.cell.zero[c == 0] { (c) }
                            }
                            @if !rest.is_empty() {
                                td.cell { (rest.iter().map(|h| h.per_server.get(i).copied().unwrap_or(0)).sum::<usize>()) }
                            }
                        }
                    }
                }
                tfoot { tr {
                    th { "Distinct shards" } td { "need " (k) }
                    @for (s, h) in pack.segment_holdings[..shown].iter().enumerate() {
                        td class={ "cell " (class(h)) } data-segment=(s) title={ (h.distinct) " of " (n) " shards; k = " (k) } { (h.distinct) }
                    }
                    @if !rest.is_empty() {
                        @let worst = rest.iter().min_by_key(|h| h.distinct);
                        @if let Some(w) = worst { td class={ "cell " (class(w)) } title="the fewest of these segments" { (w.distinct) } }
                    }
                } }
            } }
        }
    }
}
