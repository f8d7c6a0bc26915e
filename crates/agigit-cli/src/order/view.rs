//! How an order is shown: its phase, summaries as JSON and text, and an action's reply.

use super::*;

pub(super) fn summary(l: &Loaded<PullOrder>) -> serde_json::Value {
    let o = &l.folded.order;
    let t = o.terms();
    serde_json::json!({
        "id": l.id().to_hex(),
        "kind": "pull",
        "repo": l.folded.repo.to_string(),
        "model": t.model.to_string(),
        "buyer": l.buyer().to_hex(),
        "relay": l.relay().map(|r| r.to_hex()),
        "state": o.phase().describe(),
        "owed": o.owed(),
        "held": o.held(),
        "price": t.price,
        "tip": t.tip,
        "next_deadline": o.next_deadline().map(|(at, what)| serde_json::json!({"at": at, "then": what})),
        "refused": l.folded.refused.iter().map(|(id, why)| serde_json::json!({"action": id.to_hex(), "why": why.to_string()})).collect::<Vec<_>>(),
    })
}

pub(super) fn summary_text(l: &Loaded<PullOrder>) -> String {
    let o = &l.folded.order;
    let t = o.terms();
    let mut text = format!(
        "order {}\n  {} at {} for {} + {} sats: {}",
        l.id(),
        t.model,
        l.folded.repo,
        t.price,
        t.tip,
        o.phase().describe()
    );
    text.push_str(&deadline_text(o.next_deadline()));
    text.push_str(&refused_text(&l.folded.refused));
    text
}

pub(super) fn settled_text(s: Settled) -> &'static str {
    match s {
        Settled::Passed => "passed: paid to the server",
        Settled::Unaudited(Ruling::Pay) => "not audited: paid to the server",
        Settled::Unaudited(Ruling::Refund) => "not audited: back to the buyer",
        Settled::Failed => "failed: back to the buyer",
    }
}

/// The blobs a challenge with `nonce` in period `period` reaches, sorted, each once.
pub(super) fn reached(
    t: &agigit_market::StorageTerms,
    nonce: &[u8; 32],
    period: u64,
) -> Vec<String> {
    let mut blobs: Vec<String> = t
        .positions(nonce, period)
        .iter()
        .map(|p| t.shards[p.shard].blob.to_string())
        .collect();
    blobs.sort();
    blobs.dedup();
    blobs
}

pub(super) fn storage_summary(l: &Loaded<StorageOrder>) -> serde_json::Value {
    let o = &l.folded.order;
    let t = o.terms();
    let (funded_at, current, challenged) = match o.phase() {
        StoragePhase::Running {
            since,
            period,
            audit,
            ..
        } => {
            // What the server must prove now: the blobs the pending challenge reaches.
            let challenged = match audit {
                Audit::Challenged { nonce, .. } => reached(t, &nonce, period),
                _ => Vec::new(),
            };
            (Some(since), Some(period + 1), challenged)
        }
        _ => (None, None, Vec::new()),
    };
    serde_json::json!({
        "funded_at": funded_at,
        "current_period": current,
        "challenged": challenged,
        "id": l.id().to_hex(),
        "kind": "storage",
        "repo": l.folded.repo.to_string(),
        "buyer": l.buyer().to_hex(),
        "server": l.server().map(|r| r.to_hex()),
        "blobs": t.shards.len(),
        "bytes": t.shards.iter().map(|s| s.size).sum::<u64>(),
        "state": o.phase().describe(),
        "price": t.price,
        "periods": t.periods,
        "period": t.period,
        "held": o.held(),
        "settled": o.settled().iter().map(|s| settled_text(*s)).collect::<Vec<_>>(),
        "next_deadline": o.next_deadline().map(|(at, what)| serde_json::json!({"at": at, "then": what})),
        "refused": l.folded.refused.iter().map(|(id, why)| serde_json::json!({"action": id.to_hex(), "why": why.to_string()})).collect::<Vec<_>>(),
    })
}

/// "at T (in N s) it …", or nothing.
pub(super) fn deadline_text(next: Option<(u64, &str)>) -> String {
    let Some((at, what)) = next else {
        return String::new();
    };
    let now = unix_now();
    let when = if at > now {
        format!("in {} s", at - now)
    } else {
        "now".to_owned()
    };
    format!("\n  next: at {at} ({when}) it {what}")
}

pub(super) fn refused_text(refused: &[(EventId, agigit_market::Refused)]) -> String {
    refused
        .iter()
        .map(|(id, why)| format!("\n  refused {}: {why}", id.to_hex()))
        .collect()
}

pub(super) fn storage_summary_text(l: &Loaded<StorageOrder>) -> String {
    let o = &l.folded.order;
    let t = o.terms();
    let mut text = format!(
        "order {} (storage)\n  {} blobs ({} bytes) of {}, {} periods of {} s at {} sats: {}",
        l.id(),
        t.shards.len(),
        t.shards.iter().map(|s| s.size).sum::<u64>(),
        l.folded.repo,
        t.periods,
        t.period,
        t.price,
        o.phase().describe()
    );
    for (p, s) in o.settled().iter().enumerate() {
        text.push_str(&format!("\n  period {}: {}", p + 1, settled_text(*s)));
    }
    text.push_str(&deadline_text(o.next_deadline()));
    text.push_str(&refused_text(&l.folded.refused));
    text
}

pub(super) fn any_summary(o: &AnyOrder) -> serde_json::Value {
    match o {
        AnyOrder::Pull(l) => summary(l),
        AnyOrder::Storage(l) => storage_summary(l),
    }
}

pub(super) fn any_summary_text(o: &AnyOrder) -> String {
    match o {
        AnyOrder::Pull(l) => summary_text(l),
        AnyOrder::Storage(l) => storage_summary_text(l),
    }
}

pub(super) fn not_yours(what: &str) -> Failure {
    Failure::new(ErrorKind::Access, what.to_owned())
}

/// An action's reply: the order's summary, what was done, and `extra`.
pub(super) fn reply(
    verb: &str,
    id: EventId,
    mut value: serde_json::Value,
    extra: serde_json::Value,
) -> serde_json::Value {
    value["action"] = serde_json::json!(verb);
    value["action_id"] = serde_json::json!(id.to_hex());
    if let (Some(obj), serde_json::Value::Object(more)) = (value.as_object_mut(), extra) {
        obj.extend(more);
    }
    value
}

/// A store given as a relay (`ws(s)://`) or blob server URL, as the blob server's URL.
pub(super) fn store_url(store: &str) -> String {
    agigit::net::info::http_url(store.trim())
        .trim_end_matches('/')
        .to_owned()
}
