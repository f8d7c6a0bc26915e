//! `/r/{slug}/market`: the repository's orders and competition rounds, as the host's
//! [`Remotes::market`](crate::Remotes::market) folds them now — open orders first, each
//! round with its leaderboard (lowest value on the revealed test set first) and, once
//! settled, its champion and what each lead is owed.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};

use super::list::summary;
use super::{PageError, blocking, open, repo_crumbs};
use crate::layout::{Crumb, page};
use crate::market::{Market, OrderRow, RoundRow};
use crate::{Site, format};

pub(crate) async fn handler(State(site): State<Arc<Site>>, Path(slug): Path<String>) -> Response {
    blocking(site, move |site| render(site, &slug)).await
}

fn render(site: &Site, slug: &str) -> Result<Markup, PageError> {
    let (listed, repo) = open(site, slug)?;
    let s = summary(&listed, &repo)?;
    let mut crumbs = repo_crumbs(&listed);
    crumbs.push(Crumb::here("market"));
    let title = format!("Market of {}", s.name);
    let market = site.remotes.as_ref().and_then(|r| r.market(&listed.path));
    let body = match market {
        None => html! {
            h1 { (title) }
            p.empty { "This explorer does not read the market." }
        },
        Some(Err(why)) => html! {
            h1 { (title) }
            p.bad #market-error { "The relays could not be asked: " (why) }
        },
        Some(Ok(market)) => {
            // A commit this repository holds links to its page.
            let local = |commit: &str| repo.resolve(commit).is_ok();
            html! {
                h1 { (title) }
                p.sub { "Folded just now from the signed events on the relays: what anyone can check, not what anyone claims." }
                (orders(&market))
                (rounds(&listed.slug, &market, &local))
            }
        }
    };
    Ok(page(site, &title, &crumbs, body))
}

fn key(hex: &str) -> String {
    format!("{}…", format::short(&hex, 8))
}

fn deadline(next: Option<&(u64, String)>) -> Markup {
    html! {
        @match next {
            Some((at, what)) => { (format::time(i64::try_from(*at).unwrap_or(i64::MAX))) ": " (what) },
            None => "—",
        }
    }
}

fn orders(market: &Market) -> Markup {
    let open: Vec<&OrderRow> = market.orders.iter().filter(|o| o.open).collect();
    let closed = market.orders.len() - open.len();
    html! {
        section.orders {
            h2 { "Open orders" }
            @if open.is_empty() {
                p.empty #no-orders { "No open order." }
            } @else {
                div.table-wrap { table.list #orders {
                    thead { tr {
                        th { "Order" } th { "Kind" } th.wide { "For" } th.num { "Pays" }
                        th { "Buyer" } th { "Taken by" } th.wide { "State" } th.wide { "Next" }
                    } }
                    tbody { @for o in &open {
                        tr data-order=(o.id) {
                            td.mono title=(o.id) { (format::short(&o.id, 12)) }
                            td { (o.kind) }
                            td.wide.mono { (o.subject) }
                            td.num { (o.amount) " sats" }
                            td.mono title=(o.buyer) { (key(&o.buyer)) }
                            td.mono { @if let Some(p) = &o.provider { span title=(p) { (key(p)) } } @else { "—" } }
                            td.wide { (o.state) }
                            td.wide { (deadline(o.next.as_ref())) }
                        }
                    } }
                } }
            }
            @if closed > 0 { p.sub { (format::count(closed, "closed order")) " not shown." } }
        }
    }
}

fn rounds(slug: &str, market: &Market, local: &dyn Fn(&str) -> bool) -> Markup {
    html! {
        section.rounds {
            h2 { "Rounds" }
            @match &market.rounds {
                None => p.empty #no-rounds { "This explorer does not fold rounds: " code { "agigit round show <id>" } " does." },
                Some(rounds) if rounds.is_empty() => p.empty #no-rounds { "No round on this repository." },
                Some(rounds) => { @for r in rounds { (round(slug, r, local)) } },
            }
        }
    }
}

fn commit_link(slug: &str, commit: &str, local: &dyn Fn(&str) -> bool) -> Markup {
    html! {
        @if local(commit) {
            a.mono href={ "/r/" (slug) "/commit/" (commit) } title=(commit) { (format::short(&commit, 12)) }
        } @else {
            span.mono title=(commit) { (format::short(&commit, 12)) }
        }
    }
}

fn round(slug: &str, r: &RoundRow, local: &dyn Fn(&str) -> bool) -> Markup {
    let at = |t: u64| format::time(i64::try_from(t).unwrap_or(i64::MAX));
    html! {
        article.round data-round=(r.id) {
            h3 { "Round " span.mono title=(r.id) { (format::short(&r.id, 12)) } " " span.badge { (r.phase) } }
            dl.facts {
                dt { "Organizer" } dd.mono title=(r.organizer) { (key(&r.organizer)) }
                dt { "To beat" } dd { (commit_link(slug, &r.foundation, local))
                    @if let Some(v) = r.foundation_value { " (" (format!("{v:.4}")) " " (r.metric) ")" } }
                dt { "Pool" } dd { @if r.pool == 0 { "none" } @else {
                    (r.pool) " sats, " (r.payout) ": " @if r.funded { "funded" } @else { "not funded" } } }
                dt { "Deadlines" } dd { "submissions " (at(r.submit_by)) "; reveal " (at(r.reveal_by)) "; evaluation " (at(r.evaluate_by)) }
                @if r.phase == "settled" {
                    dt { "Champion" } dd #champion { @match &r.champion {
                        Some(c) => (commit_link(slug, c, local)),
                        None => "none: the foundation stays",
                    } }
                }
            }
            @if r.leaderboard.is_empty() {
                p.empty { "No submission yet." }
            } @else {
                div.table-wrap { table.list.leaderboard {
                    thead { tr {
                        th.num { "#" } th { "Commit" } th { "Author" } th.num { (r.metric) }
                        th.num { "Δ vs foundation" } th { "Standing" } th.num { "Reward" }
                    } }
                    tbody { @for (i, e) in r.leaderboard.iter().enumerate() {
                        tr data-commit=(e.commit) class=(if e.lead { "lead" } else { "" }) {
                            td.num { @if e.value.is_some() { (i + 1) } @else { "—" } }
                            td { (commit_link(slug, &e.commit, local)) }
                            td.mono title=(e.author) { (key(&e.author)) }
                            td.num { @if let Some(v) = e.value { (format!("{v:.4}")) } @else { "not evaluated" } }
                            td.num { @match (e.value, r.foundation_value) {
                                (Some(v), Some(f)) => (format!("{:+.4}", v - f)),
                                _ => "—",
                            } }
                            td { @if e.disputed { "disputed" } @else if e.lead { "took the lead" } @else if e.value.is_some() { "evaluated" } @else { "waiting" } }
                            td.num { @if e.reward > 0 { (e.reward) " sats" } @else { "—" } }
                        }
                    } }
                } }
            }
        }
    }
}
