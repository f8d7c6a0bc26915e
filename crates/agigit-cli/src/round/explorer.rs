//! The rounds on one repository as `agigit serve`'s market page shows them.

use super::*;

/// The most rounds of one repository folded for a page (each asks the relays for its actions
/// and receipts, and the servers for the receipts' loss lists).
const MAX_ROUNDS: usize = 10;

/// The rounds announced on `coordinate` that the relays of `net` hold, newest first, each
/// folded now with its leaderboard.
pub(crate) fn explorer_rows(
    rt: &tokio::runtime::Runtime,
    net: &Network,
    repo: &Repository,
    signer: &Keys,
    coordinate: &RepoCoordinate,
) -> Result<Vec<agigit_web::market::RoundRow>> {
    let _entered = rt.enter();
    let remote = repo.remote(net, signer);
    let rounds = rt.block_on(remote.rounds_of(coordinate, MAX_ROUNDS))?;
    let mut rows = Vec::with_capacity(rounds.len());
    for r in &rounds {
        let ev = rt.block_on(remote.round_events(r))?;
        let s = fold(r, &ev.actions, &ev.evidence, now());
        rows.push(row(r, &ev, &s));
    }
    Ok(rows)
}

/// The value the receipts that stand give `commit`, and whether one on it is disputed.
fn value_of(s: &Standing, ev: &RoundEvents, commit: &ObjectId) -> (Option<f64>, bool) {
    let mut value = None;
    let mut disputed = false;
    for c in s.receipts.iter().filter(|c| c.commit == *commit) {
        match c.verdict {
            Verdict::Stands => {
                value = value.or_else(|| {
                    ev.evidence
                        .iter()
                        .find(|e| e.receipt.id() == c.id)
                        .map(|e| e.receipt.body().value)
                });
            }
            Verdict::Disputed => disputed = true,
            Verdict::Overturned => {}
        }
    }
    (value, disputed)
}

fn row(r: &Signed<RoundEvent>, ev: &RoundEvents, s: &Standing) -> agigit_web::market::RoundRow {
    let b = r.body();
    let mut leaderboard: Vec<agigit_web::market::Entry> = s
        .submissions
        .iter()
        .map(|x| {
            let (value, disputed) = value_of(s, ev, &x.commit);
            let lead = s.ladder.iter().find(|l| l.submission.commit == x.commit);
            agigit_web::market::Entry {
                commit: x.commit.to_string(),
                author: x.author.to_hex(),
                value,
                disputed,
                lead: lead.is_some(),
                reward: lead.map_or(0, |l| l.reward),
            }
        })
        .collect();
    // Best (lowest) first; not evaluated last; ties in submission order (the sort is stable).
    leaderboard.sort_by(|a, b| match (a.value, b.value) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    agigit_web::market::RoundRow {
        id: r.id().to_hex(),
        organizer: r.author().to_hex(),
        phase: format!("{:?}", s.phase).to_lowercase(),
        foundation: b.foundation.to_string(),
        metric: b.metric.clone(),
        foundation_value: value_of(s, ev, &b.foundation).0,
        pool: b.pool,
        payout: if b.rate == 0 {
            "one prize for the champion".to_owned()
        } else {
            format!("{} sats per 1000 bits saved", b.rate)
        },
        funded: s.funded,
        submissions: s.submissions.len(),
        submit_by: b.submit_by,
        reveal_by: b.reveal_by,
        evaluate_by: b.evaluate_by,
        leaderboard,
        champion: (s.phase == Phase::Settled)
            .then(|| s.champion().map(|c| c.commit.to_string()))
            .flatten(),
    }
}
