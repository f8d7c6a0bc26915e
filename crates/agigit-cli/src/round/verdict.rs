//! Judging a round: `eval` (an evaluator's receipts), `challenge` (a receipt disputed) and
//! `rule` (the arbiter's rulings).

use super::*;

pub(super) fn eval(ctx: &Ctx, c: &Conn, round: &str, publish: bool) -> Result<()> {
    let (r, _, s) = c.standing(round)?;
    if publish {
        pool::bonded(c, &r, &s)?;
    }
    let (data, holder) = revealed(&s)?;
    if !holds(&c.repo, &holder) {
        return Err(Failure::invalid(format!(
            "this repository does not hold {}, the commit with the test set: fetch it (`agigit fetch --foundation` in a fork)",
            holder.short()
        )));
    }
    let body = r.body();
    let mut entries = vec![(body.repo.clone(), body.foundation, "foundation".to_owned())];
    for sub in &s.submissions {
        entries.push((
            sub.repo.clone(),
            sub.commit,
            format!("submission by {}", short_key(&sub.author)),
        ));
    }
    let mut rows = Vec::new();
    for (repo, commit, what) in entries {
        if !holds(&c.repo, &commit) {
            rows.push(
                serde_json::json!({"commit": commit.to_string(), "what": what, "held": false}),
            );
            continue;
        }
        let e = c.evaluate(body, &commit, &holder)?;
        let receipt = if publish {
            Some(c.publish_receipt(&e, repo, commit, data)?.id().to_hex())
        } else {
            None
        };
        rows.push(serde_json::json!({
            "commit": commit.to_string(), "what": what, "held": true,
            "bits_per_byte": e.bits_per_byte, "documents": e.documents.len(), "receipt": receipt,
        }));
    }
    print(ctx.json, serde_json::json!({"evaluations": rows}), || {
        rows.iter()
            .map(|row| match row["bits_per_byte"].as_f64() {
                Some(v) => format!(
                    "{}  {v:.4} bits per byte  {}{}",
                    &row["commit"].as_str().unwrap_or_default()[..12],
                    row["what"].as_str().unwrap_or_default(),
                    if row["receipt"].is_string() {
                        "  (receipt published)"
                    } else {
                        ""
                    }
                ),
                None => format!(
                    "{}  not held here: clone its repository to evaluate it  {}",
                    &row["commit"].as_str().unwrap_or_default()[..12],
                    row["what"].as_str().unwrap_or_default()
                ),
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// Documents on which `theirs` differs from `mine` (by more than float noise), at most 64.
fn disputed(mine: &Evaluation, theirs: &[agigit::eval::DocumentLoss]) -> Vec<u64> {
    mine.documents
        .iter()
        .zip(theirs)
        .enumerate()
        .filter(|(_, (m, t))| {
            m.name != t.name
                || m.bytes != t.bytes
                || (m.bits - t.bits).abs() > 1e-5 * m.bits.max(1.0)
        })
        .map(|(i, _)| i as u64)
        .take(agigit::event::round::MAX_DISPUTED)
        .collect()
}

pub(super) fn challenge(ctx: &Ctx, c: &Conn, round: &str, receipt: &str) -> Result<()> {
    let (r, ev, s) = c.standing(round)?;
    pool::bonded(c, &r, &s)?;
    let (data, holder) = revealed(&s)?;
    let target = ev
        .evidence
        .iter()
        .find(|e| e.receipt.id().to_hex() == receipt.trim())
        .ok_or_else(|| {
            Failure::invalid(format!(
                "round {} has no receipt {receipt} with its loss list",
                short(&r.id())
            ))
        })?;
    let commit = target.receipt.body().commit;
    let mine = c.evaluate(r.body(), &commit, &holder)?;
    let documents = disputed(&mine, &target.losses);
    if documents.is_empty() && mine.documents.len() == target.losses.len() {
        return Err(Failure::invalid(
            "your evaluation agrees with that receipt on every document: nothing to challenge",
        ));
    }
    let counter = c.publish_receipt(&mine, target.receipt.body().repo.clone(), commit, data)?;
    let signed = c.act(
        &r,
        RoundVerb::Challenge {
            receipt: target.receipt.id(),
            counter: counter.id(),
            documents: documents.clone(),
        },
    )?;
    print(
        ctx.json,
        serde_json::json!({"challenge": signed.id().to_hex(), "counter": counter.id().to_hex(), "documents": documents}),
        || {
            format!(
                "challenged {} on {} documents (your receipt {})",
                &receipt.trim()[..16.min(receipt.trim().len())],
                documents.len(),
                short(&counter.id())
            )
        },
    );
    Ok(())
}

pub(super) fn rule(ctx: &Ctx, c: &Conn, round: &str) -> Result<()> {
    let r = c.round(round)?;
    let arbiter = r.body().arbiter.unwrap_or(r.author());
    if arbiter != c.keys.public_key() {
        return Err(Failure::invalid(
            "only the round's arbiter rules on its challenges",
        ));
    }
    let ev = c.events(&r)?;
    let s = fold(&r, &ev.actions, &ev.evidence, now());
    let (_, holder) = revealed(&s)?;
    let losses = |id: &EventId| ev.evidence.iter().find(|e| e.receipt.id() == *id);
    let mut rulings = Vec::new();
    for a in &ev.actions {
        let RoundVerb::Challenge {
            receipt,
            counter,
            documents,
        } = &a.body().verb
        else {
            continue;
        };
        let disputed_now = s
            .receipts
            .iter()
            .any(|x| x.id == *receipt && x.verdict == Verdict::Disputed);
        let (Some(x), Some(y)) = (losses(receipt), losses(counter)) else {
            continue;
        };
        if !disputed_now {
            continue;
        }
        let commit = x.receipt.body().commit;
        let mine = c.evaluate(r.body(), &commit, &holder)?;
        let off = |theirs: &[agigit::eval::DocumentLoss]| -> f64 {
            documents
                .iter()
                .filter_map(|&i| usize::try_from(i).ok())
                .map(|i| match (mine.documents.get(i), theirs.get(i)) {
                    (Some(m), Some(t)) => (m.bits - t.bits).abs() / m.bits.max(1.0),
                    _ => f64::INFINITY,
                })
                .fold(0.0, f64::max)
        };
        let (dx, dy) = (off(&x.losses), off(&y.losses));
        let stands = if dx <= 1e-5 && dx <= dy {
            *receipt
        } else if dy <= 1e-5 {
            *counter
        } else {
            return Err(Failure::invalid(format!(
                "neither side of the challenge of {} agrees with your evaluation: nothing ruled",
                short(receipt)
            )));
        };
        c.act(&r, RoundVerb::Rule { receipt: stands })?;
        rulings.push(serde_json::json!({"challenge": a.id().to_hex(), "stands": stands.to_hex()}));
    }
    print(ctx.json, serde_json::json!({"rulings": rulings}), || {
        format!("{} challenge(s) ruled", rulings.len())
    });
    Ok(())
}
