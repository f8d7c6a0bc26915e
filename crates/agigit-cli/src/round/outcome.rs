//! A round's outcome: `result` (the organizer's verdict), `merge` (the champion onto the
//! foundation's branch) and `show` (where the round stands).

use super::*;

/// `round result`: the organizer's verdict published — the pool and the bonds released as the
/// fold says — and the champion merged unless `no_merge`.
pub(super) fn result(
    ctx: &Ctx,
    c: &Conn,
    round: &str,
    no_merge: bool,
    mint: Option<&str>,
) -> Result<()> {
    let (r, ev, s) = c.standing(round)?;
    if r.author() != c.keys.public_key() {
        return Err(Failure::invalid(
            "only the round's organizer publishes its result",
        ));
    }
    decided(&r, &s)?;
    let champion = s.champion().map(|x| x.commit);
    // One wallet for the releases of the pool and the bonds, when there are any.
    let w = if s.funded || !s.bonds.is_empty() {
        Some(crate::wallet::open(mint)?)
    } else {
        None
    };
    let release = pool::release(c, &r, &ev, &s, w.as_ref())?;
    let signed = c.publish(&RoundAction {
        round: r.id(),
        verb: RoundVerb::Result { champion },
        token: None,
        release,
        note: String::new(),
    })?;
    // Each bond released to the arbiter too, who pays it back or on.
    let bonds_left_out = pool::consent_bonds(c, &r, &ev, &s, w.as_ref())?;
    // The champion onto the foundation's branch, recorded; a merge that cannot be done
    // here (a conflict, local changes) leaves the published result as it is.
    let merged = if no_merge || champion.is_none() {
        serde_json::Value::Null
    } else {
        merge(c, &r, &s).map_err(|e| {
                Failure::new(
                    e.kind,
                    format!(
                        "the result is published, but the champion is not merged: {}; then `agigit round merge {}`",
                        e.message,
                        r.id()
                    ),
                )
            })?
    };
    print(
        ctx.json,
        serde_json::json!({"result": signed.id().to_hex(), "champion": champion.map(|c| c.to_string()), "merged": merged, "bonds_left_out": bonds_left_out}),
        || {
            let mut out = match champion {
                Some(c) => format!("result published: champion {}", c.short()),
                None => "result published: the foundation stays".to_owned(),
            };
            if !merged.is_null() {
                out.push('\n');
                out.push_str(&merge_text(&merged));
            }
            for b in &bonds_left_out {
                out.push_str(&format!("\n  not released, not as the round states: {b}"));
            }
            out
        },
    );
    Ok(())
}

/// Merges the settled round's champion into the current branch, which must hold the
/// foundation, with a merge commit recording the round (even where a fast-forward would do).
pub(super) fn merge(c: &Conn, r: &Signed<RoundEvent>, s: &Standing) -> Result<serde_json::Value> {
    if s.phase != Phase::Settled {
        return Err(Failure::invalid(format!(
            "the round is not settled (phase {:?})",
            s.phase
        )));
    }
    let (Some(lead), Some(champion)) = (s.ladder.last(), s.champion()) else {
        return Err(Failure::invalid(
            "the round has no champion: the foundation stays",
        ));
    };
    let b = r.body();
    let head = c
        .repo
        .head()?
        .ok_or_else(|| Failure::invalid("this repository has no commit"))?;
    let store = c.repo.store();
    if !agigit::dag::is_ancestor(store, &b.foundation, &head).unwrap_or(false) {
        return Err(Failure::invalid(format!(
            "the current branch does not hold the round's foundation {}: check out the branch that does",
            b.foundation.short()
        )));
    }
    if !holds(&c.repo, &champion.commit) {
        // The champion's fork, fetched as refs/remotes/champion/<branch>.
        let remote = c.repo.remote(&c.net, &c.keys);
        let options = agigit::FetchOptions {
            remote_name: "champion",
            ..agigit::FetchOptions::default()
        };
        c.block_on(remote.fetch_all(&champion.repo, options))?;
        if !holds(&c.repo, &champion.commit) {
            return Err(Failure::invalid(format!(
                "{} is on no branch of {} any more: ask its author to push it",
                champion.commit.short(),
                champion.repo
            )));
        }
    }
    let message = format!(
        "Round {}: champion {}\n\n{} by {} saves {:.4} bits per byte of the test set {} over the\nleader before it ({:.0} bits; lower bound {:.4} at {}% confidence), out of {}\nsubmissions.\n\nRound: {}\nChampion: {}",
        short(&r.id()),
        champion.commit.short(),
        champion.commit.short(),
        crate::context::npub(&champion.author).unwrap_or_else(|_| champion.author.to_hex()),
        lead.over.saved_per_byte,
        s.revealed
            .map(|(d, _)| d.short().to_string())
            .unwrap_or_default(),
        lead.over.bits_saved,
        lead.over.lower,
        b.confidence,
        s.submissions.len(),
        r.id(),
        champion.commit,
    );
    let report = c.repo.merge_no_ff(
        &champion.commit.to_string(),
        &message,
        None,
        c.keys.public_key().to_bytes(),
        false,
    )?;
    Ok(serde_json::json!({
        "commit": report.commit.map(|id| id.to_string()),
        "up_to_date": report.up_to_date,
        "champion": champion.commit.to_string(),
    }))
}

pub(super) fn merge_text(merged: &serde_json::Value) -> String {
    let champion = merged["champion"].as_str().unwrap_or_default();
    if merged["up_to_date"] == true {
        return format!("the branch holds the champion {champion} already");
    }
    format!(
        "merged the champion {} as {}",
        champion.get(..12).unwrap_or(champion),
        merged["commit"].as_str().unwrap_or_default()
    )
}

pub(super) fn show(
    ctx: &Ctx,
    r: &Signed<RoundEvent>,
    s: &Standing,
    ev: &RoundEvents,
    checked: Option<std::result::Result<(), String>>,
) {
    let b = r.body();
    let receipts: Vec<_> = s
        .receipts
        .iter()
        .map(|x| {
            let value = ev
                .evidence
                .iter()
                .find(|e| e.receipt.id() == x.id)
                .map(|e| e.receipt.body().value);
            serde_json::json!({"receipt": x.id.to_hex(), "evaluator": x.evaluator.to_hex(), "commit": x.commit.to_string(), "value": value, "verdict": format!("{:?}", x.verdict).to_lowercase()})
        })
        .collect();
    let ladder: Vec<_> = s
        .ladder
        .iter()
        .map(|l| serde_json::json!({"commit": l.submission.commit.to_string(), "author": l.submission.author.to_hex(), "bits_saved": l.over.bits_saved, "saved_per_byte": l.over.saved_per_byte, "lower": l.over.lower, "reward": l.reward}))
        .collect();
    let value = serde_json::json!({
        "round": r.id().to_hex(),
        "organizer": r.author().to_hex(),
        "foundation": b.foundation.to_string(),
        "phase": format!("{:?}", s.phase).to_lowercase(),
        "submit_by": b.submit_by, "reveal_by": b.reveal_by, "evaluate_by": b.evaluate_by,
        "settles_at": agigit::eval::round::settles_at(b),
        "revealed": s.revealed.map(|(d, c)| serde_json::json!({"data": d.to_string(), "commit": c.to_string()})),
        "submissions": s.submissions.iter().map(|x| serde_json::json!({"commit": x.commit.to_string(), "author": x.author.to_hex(), "repo": x.repo.to_string(), "at": x.at})).collect::<Vec<_>>(),
        "receipts": receipts,
        "ladder": ladder,
        "champion": s.champion().map(|c| c.commit.to_string()),
        "unevaluated": s.unevaluated.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "result": s.result.map(|(id, agrees)| serde_json::json!({"event": id.to_hex(), "agrees": agrees})),
        "pool": b.pool, "rate": b.rate, "funded": s.funded, "bond": b.bond,
        "bonds": s.bonds.iter().map(|x| serde_json::json!({"evaluator": x.evaluator.to_hex(), "event": x.id.to_hex(), "at": x.at})).collect::<Vec<_>>(),
        "pool_checked": checked.as_ref().map(|c| match c {
            Ok(()) => serde_json::json!(true),
            Err(why) => serde_json::json!(why),
        }),
        "arbiter": b.arbiter.map(|k| k.to_hex()),
        "owed": s.owed().iter().map(|(k, a)| serde_json::json!({"to": k.to_hex(), "amount": a})).collect::<Vec<_>>(),
        "payments": s.payments.iter().map(|p| serde_json::json!({"event": p.id.to_hex(), "to": p.to.to_hex(), "amount": p.amount})).collect::<Vec<_>>(),
        "ignored": s.ignored.iter().chain(&ev.ignored).map(|(id, why)| serde_json::json!({"event": id.to_hex(), "why": why})).collect::<Vec<_>>(),
    });
    print(ctx.json, value, || {
        let mut out = format!(
            "round {} ({:?}), foundation {}\n  {} submissions, {} receipts",
            short(&r.id()),
            s.phase,
            b.foundation.short(),
            s.submissions.len(),
            s.receipts.len()
        );
        if b.pool > 0 {
            out.push_str(&format!(
                "\n  pool {} sats, {}: {}{}",
                b.pool,
                if b.rate == 0 {
                    "one prize for the champion".to_owned()
                } else {
                    format!("{} per 1000 bits saved", b.rate)
                },
                if s.funded { "funded" } else { "not funded" },
                match &checked {
                    Some(Ok(())) => " (locked at the mint as announced)".to_owned(),
                    Some(Err(why)) => format!(" — NOT as announced at the mint: {why}"),
                    None => String::new(),
                }
            ));
        }
        for x in &s.receipts {
            out.push_str(&format!(
                "\n  receipt {} on {} by {}: {:?}",
                short(&x.id),
                x.commit.short(),
                short_key(&x.evaluator),
                x.verdict
            ));
        }
        for l in &s.ladder {
            out.push_str(&format!(
                "\n  lead: {} by {} saves {:.0} bits ({:.4} bits per byte, lower bound {:.4})",
                l.submission.commit.short(),
                short_key(&l.submission.author),
                l.over.bits_saved,
                l.over.saved_per_byte,
                l.over.lower
            ));
        }
        if s.phase == Phase::Settled {
            match s.champion() {
                Some(c) => out.push_str(&format!("\n  champion: {}", c.commit.short())),
                None => out.push_str("\n  no champion: the foundation stays"),
            }
        }
        for (to, amount) in s.owed() {
            let paid = s.payments.iter().any(|p| p.to == to);
            out.push_str(&format!(
                "\n  owed {amount} sats to {}: {}",
                short_key(&to),
                if paid { "paid" } else { "not paid yet" }
            ));
        }
        out
    });
}
