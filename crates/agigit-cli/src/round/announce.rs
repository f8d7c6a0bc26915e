//! `round announce`: a round's terms, its sealed test set and (on a mint) its pool.

use super::*;

pub(super) fn announce(ctx: &Ctx, c: &Conn, a: &AnnounceArgs, mint: Option<&str>) -> Result<()> {
    let test = c.repo.resolve(&a.test)?;
    let foundation = c.repo.resolve(&a.foundation)?;
    let data = c
        .repo
        .parts_of(&test)?
        .into_iter()
        .find(|(p, _)| *p == Part::Validation)
        .map(|(_, t)| t)
        .ok_or_else(|| {
            Failure::invalid(format!(
                "{} has no validation part: the test set goes there",
                a.test
            ))
        })?;
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt)
        .map_err(|e| Failure::new(ErrorKind::Io, format!("random salt: {e}")))?;
    let body = RoundEvent {
        repo: this_coordinate(&c.repo)?,
        foundation,
        metric: "bits-per-byte".into(),
        sealed: seal(&data, &salt),
        context: a.context,
        submit_by: time_arg("submit-by", &a.submit_by)?,
        reveal_by: time_arg("reveal-by", &a.reveal_by)?,
        evaluate_by: time_arg("evaluate-by", &a.evaluate_by)?,
        challenge_within: a.challenge_within,
        pool: a.pool,
        rate: match (a.pool, a.rate, a.prize) {
            (0, _, _) | (_, None, true) => a.rate.unwrap_or(0),
            (_, Some(rate), false) if rate > 0 => rate,
            _ => {
                return Err(Failure::invalid(
                    "a pool pays per 1000 bits saved (--rate N, more than 0) or as one prize to the champion (--prize)",
                ));
            }
        },
        margin: a.margin,
        samples: a.samples,
        confidence: a.confidence,
        evaluators: a
            .evaluators
            .iter()
            .map(|k| key_arg(k))
            .collect::<Result<_>>()?,
        arbiter: a.arbiter.as_deref().map(key_arg).transpose()?,
        bond: a.bond,
        note: a.note.clone(),
    };
    if (body.pool > 0 || body.bond > 0) && body.arbiter.is_none_or(|k| k == c.keys.public_key()) {
        return Err(Failure::invalid(
            "a pool or a bond is held by an arbiter other than you (--arbiter npub1…)",
        ));
    }
    // The salt is kept before anything is published: a publish that fails loses nothing, and
    // one that succeeds can always be revealed.
    let kept = serde_json::json!({
        "test": test.to_string(),
        "data": data.to_string(),
        "salt": BlobHash::from_bytes(salt).to_string(),
    });
    let path = sealed_path(&c.repo, &body.sealed);
    crate::context::write_new_private(&path, &serde_json::to_vec(&kept).unwrap_or_default())
        .map_err(|e| Failure::new(ErrorKind::Io, format!("{}: {e}", path.display())))?;
    let signed = c.publish(&body).map_err(|e| {
        Failure::invalid(format!(
            "{e} (the round's terms are checked before it is signed)"
        ))
    })?;
    // The pool, locked at once: a round whose funding fails is announced all the same, and
    // `round fund` tries again.
    let funded = if body.pool > 0 {
        match pool::fund(c, &signed, mint) {
            Ok(amount) => Some(amount),
            Err(e) => {
                return Err(Failure::new(
                    e.kind,
                    format!(
                        "round {} is announced, but its pool is not funded: {}; then `agigit round fund {}`",
                        signed.id(),
                        e.message,
                        signed.id()
                    ),
                ));
            }
        }
    } else {
        None
    };
    print(
        ctx.json,
        serde_json::json!({"round": signed.id().to_hex(), "sealed": BlobHash::from_bytes(body.sealed).to_string(), "funded": funded}),
        || {
            format!(
                "round {} announced: submissions until {}, reveal by {}, receipts until {}, challenges for {} s\n  the test set ({}) stays sealed: keep {} unpushed until `agigit round reveal`",
                signed.id().to_hex(),
                body.submit_by,
                body.reveal_by,
                body.evaluate_by,
                body.challenge_within,
                data.short(),
                test.short()
            )
        },
    );
    Ok(())
}
