//! The orders for one repository as `agigit serve`'s market page shows them.

use super::*;

/// The most orders of one repository read.
const MAX_ORDERS: usize = 200;

/// The pull and storage orders for `coordinate` that the relays of `net` hold, each folded
/// with its actions now (those that do not fold are left out); open ones first, newest first.
pub(crate) fn explorer_rows(
    rt: &tokio::runtime::Runtime,
    net: &agigit::net::Network,
    coordinate: &RepoCoordinate,
) -> Result<Vec<agigit_web::market::OrderRow>> {
    let query = |filters: &[Filter]| -> Result<Vec<Event>> {
        let _entered = rt.enter();
        Ok(rt.block_on(net.pool.query(filters))?)
    };
    let a = agigit::event::nostr::prelude::SingleLetterTag::from_char('a')
        .map_err(|e| Failure::invalid(format!("tag a: {e}")))?;
    let mut orders = query(&[Filter::new()
        .kinds([kind(PULL_ORDER), kind(STORAGE_ORDER)])
        .custom_tag(a, coordinate.to_string())
        .limit(MAX_ORDERS)])?;
    orders.sort_by_key(|e| e.id);
    orders.dedup_by_key(|e| e.id);
    orders.truncate(MAX_ORDERS);
    let mut rows: Vec<agigit_web::market::OrderRow> = load_many_with(orders, query)?
        .iter()
        .filter(|o| match o {
            AnyOrder::Pull(l) => l.folded.repo == *coordinate,
            AnyOrder::Storage(l) => l.folded.repo == *coordinate,
        })
        .map(row)
        .collect();
    rows.sort_by_key(|r| (!r.open, std::cmp::Reverse(r.created)));
    Ok(rows)
}

fn row(o: &AnyOrder) -> agigit_web::market::OrderRow {
    match o {
        AnyOrder::Pull(l) => {
            let o = &l.folded.order;
            let t = o.terms();
            agigit_web::market::OrderRow {
                id: l.id().to_hex(),
                kind: "pull".into(),
                buyer: l.buyer().to_hex(),
                provider: l.relay().map(|k| k.to_hex()),
                amount: t.price.saturating_add(t.tip),
                subject: format!("serve commit {}", t.model.short()),
                state: phase_text(o.phase()),
                open: !matches!(o.phase(), Phase::Closed(_)),
                next: o.next_deadline().map(|(at, what)| (at, what.to_owned())),
                created: l.order.created_at.as_secs(),
            }
        }
        AnyOrder::Storage(l) => {
            let o = &l.folded.order;
            let t = o.terms();
            agigit_web::market::OrderRow {
                id: l.id().to_hex(),
                kind: "storage".into(),
                buyer: l.buyer().to_hex(),
                provider: l.server().map(|k| k.to_hex()),
                amount: t.price.saturating_mul(t.periods),
                subject: format!(
                    "keep {} blobs ({}) for {} periods",
                    t.shards.len(),
                    agigit::display::bytes(t.shards.iter().map(|s| s.size).sum::<u64>()),
                    t.periods
                ),
                state: storage_phase_text(o.phase()),
                open: !matches!(o.phase(), StoragePhase::Closed(_)),
                next: o.next_deadline().map(|(at, what)| (at, what.to_owned())),
                created: l.order.created_at.as_secs(),
            }
        }
    }
}
