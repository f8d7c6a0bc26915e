//! `/r/{slug}/commit/{id}`: what a commit changed, part by part; for each safetensors file the
//! tensors that changed — dtype and shape, the share of values changed, ‖Δ‖/‖W‖, how each is
//! stored and at what fidelity — with charts of the relative change and the stored bytes; its
//! training record.

use std::sync::Arc;

use agigit::{FileDiff, TensorDiff, TensorInfo};
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};

use super::list::short_coordinate;
use super::{PageError, blocking, open, q, repo_crumbs};
use crate::chart::{Bar, bars};
use crate::layout::Crumb;
use crate::{Site, format, layout};

/// The most tensors a chart draws (the largest values; the table lists every one).
const CHART_BARS: usize = 40;

pub(crate) async fn handler(
    State(site): State<Arc<Site>>,
    Path((slug, id)): Path<(String, String)>,
) -> Response {
    blocking(site, move |site| render(site, &slug, &id)).await
}

fn render(site: &Site, slug: &str, id: &str) -> Result<Markup, PageError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PageError::BadRequest(format!("{id:?} is not a commit id")));
    }
    let (listed, repo) = open(site, slug)?;
    let listed = &listed;
    let (id, commit, diff) = repo.show(id, &agigit::PathFilter::all())?;
    let record = agigit::record::TrainingRecord::of(&commit)?;
    let author: String = commit.author.iter().map(|b| format!("{b:02x}")).collect();
    let tensors: usize = diff.files.iter().map(|f| f.tensors.len()).sum();
    let partial = super::missing_parts(site, &listed.slug, repo.parts()?.as_ref());
    let commit_hex = id.to_string();
    let link = Link {
        slug: &listed.slug,
        commit: &commit_hex,
    };
    let body = html! {
        header.commit {
            h1 { (format::subject(&commit.message)) }
            @let rest = commit.message.split_once('\n').map(|(_, r)| r.trim()).unwrap_or("");
            @if !rest.is_empty() { pre.message { (rest) } }
            dl.facts {
                dt { "Commit" } dd.mono #commit-id { (id) }
                dt { "Parents" }
                dd.mono {
                    @if commit.parents.is_empty() { "none (a root commit)" }
                    @for p in &commit.parents { a href={ "/r/" (listed.slug) "/commit/" (p) } { (format::short(p, 12)) } " " }
                }
                @if let Some(b) = &commit.base {
                    dt { "Fork of" }
                    dd.mono title=(b.repo) {
                        @match super::repo::local_repo_for(site, &b.repo) {
                            Some(local) => {
                                a href={ "/r/" (local) } { (short_coordinate(&b.repo)) }
                                " at " a href={ "/r/" (local) "/commit/" (b.commit) } { (format::short(&b.commit, 12)) }
                            },
                            None => { (short_coordinate(&b.repo)) " at " (format::short(&b.commit, 12)) },
                        }
                    }
                }
                dt { "Author" } dd.mono title=(author) { (format::short(&author, 16)) }
                dt { "Date" } dd { (format::time(commit.time)) }
                dt { "Changed" } dd { (format::count(diff.files.len(), "file")) ", " (format::count(tensors, "tensor")) }
            }
        }
        @if let Some(r) = &record {
            section.record {
                h2 { "Training record" }
                p { (r.summary()) }
                @if !r.metrics.is_empty() {
                    table { tbody { @for (k, v) in &r.metrics { tr { th { (k) } td.num { (v) } } } } }
                }
            }
        }
        (partial)
        @for part in agigit::Part::ALL {
            @let files: Vec<&FileDiff> = diff.files.iter().filter(|f| f.part == part).collect();
            @if !files.is_empty() {
                section.part {
                    h2 { (part.name()) }
                    @for f in &files { (file(f, &link)) }
                }
            }
        }
        @if diff.files.is_empty() { p.empty { "This commit changed no file." } }
        (super::transfer_box())
    };
    let mut crumbs = repo_crumbs(listed);
    crumbs.push(Crumb::here(format!("commit {}", format::short(&id, 10))));
    Ok(layout::page(
        site,
        &format!(
            "{} · {}",
            format::subject(&commit.message),
            format::short(&id, 10)
        ),
        &crumbs,
        body,
    ))
}

fn shape(t: &TensorInfo) -> String {
    let dims: Vec<String> = t.shape.iter().map(u64::to_string).collect();
    format!("{}[{}]", t.dtype, dims.join("×"))
}

/// Where a tensor of this commit downloads from.
struct Link<'a> {
    slug: &'a str,
    commit: &'a str,
}

fn file(f: &FileDiff, link: &Link<'_>) -> Markup {
    let word = f.change.as_str();
    if f.tensors.is_empty() {
        return html! {
            div.file {
                span.badge.(word) { (word) } " " span.mono { (f.path) }
                " " span.sub {
                    @match f.bytes {
                        (Some(a), Some(b)) => { (format::bytes(a)) " → " (format::bytes(b)) },
                        (None, Some(b)) => { (format::bytes(b)) },
                        (Some(a), None) => { "was " (format::bytes(a)) },
                        (None, None) => {},
                    }
                }
            }
        };
    }
    let mut relative: Vec<Bar> = f
        .tensors
        .iter()
        .filter_map(|t| {
            let r = t.comparison.as_ref()?.relative_change()?;
            Some(Bar {
                label: t.name.clone(),
                value: r,
                text: format::ratio(r),
            })
        })
        .collect();
    relative.sort_by(|a, b| b.value.total_cmp(&a.value));
    relative.truncate(CHART_BARS);
    let mut stored: Vec<Bar> = f
        .tensors
        .iter()
        .filter_map(|t| {
            let s = t.new.as_ref()?.storage.as_ref()?;
            #[allow(clippy::cast_precision_loss, reason = "a bar's length")]
            Some(Bar {
                label: t.name.clone(),
                value: s.stored_bytes as f64,
                text: format!(
                    "{} of {}",
                    format::bytes(s.stored_bytes),
                    format::bytes(s.dense_bytes)
                ),
            })
        })
        .collect();
    stored.sort_by(|a, b| b.value.total_cmp(&a.value));
    stored.truncate(CHART_BARS);
    let anchor: String = f
        .path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    html! {
        div.file.safetensors {
            h3 { span.badge.(word) { (word) } " " span.mono { (f.path) } " " span.sub { (format::count(f.tensors.len(), "tensor")) " changed" } }
            div.charts {
                (bars("Relative change ‖Δ‖/‖W‖ per tensor", &format!("relative-{anchor}"), &relative))
                (bars("Stored bytes per tensor (this commit)", &format!("stored-{anchor}"), &stored))
            }
            div.table-wrap { table.tensors {
                thead { tr {
                    th { "Tensor" } th { "Change" } th { "dtype / shape" } th.num { "Values changed" }
                    th.num { "‖Δ‖/‖W‖" } th { "Stored as" } th.num { "Stored" } th {}
                } }
                tbody { @for t in &f.tensors { (tensor_row(t, &f.path, link)) } }
            } }
        }
    }
}

fn tensor_row(t: &TensorDiff, path: &str, link: &Link<'_>) -> Markup {
    let word = t.change.as_str();
    let dtype_shape = match (&t.old, &t.new) {
        (Some(a), Some(b)) if shape(a) != shape(b) => format!("{} → {}", shape(a), shape(b)),
        (_, Some(b)) => shape(b),
        (Some(a), None) => shape(a),
        (None, None) => String::new(),
    };
    let storage = t.new.as_ref().and_then(|n| n.storage.as_ref());
    html! {
        tr data-tensor=(t.name) {
            td.mono { (t.name) }
            td { span.badge.(word) { (word) } }
            td.mono { (dtype_shape) }
            td.num { @if let Some(c) = &t.comparison { (format::percent(c.changed_share())) } @else { "—" } }
            td.num.relative { @if let Some(r) = t.comparison.as_ref().and_then(agigit::delta::compare::Comparison::relative_change) { (format::ratio(r)) } @else { "—" } }
            td { @if let Some(s) = storage { (s.describe()) } @else { "—" } }
            td.num { @if let Some(s) = storage { (format::bytes(s.stored_bytes)) } @else { "—" } }
            td {
                @if t.new.is_some() {
                    button.download type="button" title="Download this tensor as a safetensors file of its own"
                        data-url={ "/r/" (link.slug) "/download?rev=" (link.commit) "&path=" (q(path)) "&tensor=" (q(&t.name)) }
                        data-name={ (t.name) ".safetensors" }
                        data-size="0" { "Download" }
                }
            }
        }
    }
}
