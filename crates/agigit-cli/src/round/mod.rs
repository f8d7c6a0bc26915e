//! `agigit round`: competition rounds (Proof of Work of Compression, `docs/rounds.md`) — announce
//! one with a sealed test set, submit a fork's commit, reveal the test set, evaluate and publish
//! receipts with their loss lists, challenge a receipt, rule on a challenge, show the standing
//! and publish the result; a pool on a Cashu mint funded, paid out and claimed ([`pool`]).

mod explorer;
mod pool;

pub(crate) use self::explorer::explorer_rows;

use std::time::{SystemTime, UNIX_EPOCH};

use agigit::eval::round::{Phase, Standing, Verdict, fold};
use agigit::eval::{EvalOptions, Evaluation};
use agigit::event::nostr::prelude::{EventId, Keys};
use agigit::event::round::{RoundAction, RoundEvent, RoundVerb, seal};
use agigit::event::{RepoCoordinate, Signed};
use agigit::hash::{BlobHash, ObjectId};
use agigit::net::Network;
use agigit::{EvalData, Part, Repository, RoundEvents};

use crate::context::{Ctx, effective, keys, load_config, network, open, print, runtime};
use agigit::ErrorKind;

use crate::failure::{Failure, Result};
use crate::order::key_arg;

/// `agigit round`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct RoundArgs {
    /// The Cashu mint of the round's pool and bonds (default: `[wallet] mint` in the user's
    /// config.toml).
    #[arg(long, global = true)]
    mint: Option<String>,
    #[command(subcommand)]
    command: RoundCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RoundCommand {
    /// Announce a round on this repository: the commit to beat, the deadlines, the evaluators,
    /// and a sealed test set — the validation part of a commit you keep local (a branch you do
    /// not push) until `reveal`; only its commitment is published. Prints the round's id.
    Announce(Box<AnnounceArgs>),
    /// Submit a commit of this repository (a fork of the round's foundation, pushed) to a round.
    Submit {
        /// The round (its event id, 64 hex).
        round: String,
        /// The commit (default HEAD).
        #[arg(default_value = "HEAD")]
        rev: String,
    },
    /// Reveal the round's test set (the organizer, after submissions close): push the commit
    /// that holds it first (`agigit checkout <branch> && agigit push`).
    Reveal {
        /// The round.
        round: String,
    },
    /// Evaluate the round's foundation and every submission this repository holds on the
    /// revealed test set (fetch it first: `agigit fetch --foundation` in a fork); with
    /// --publish, sign a receipt for each and upload its loss list.
    Eval {
        /// The round.
        round: String,
        /// Publish the receipts.
        #[arg(long)]
        publish: bool,
    },
    /// Challenge a receipt you disagree with: evaluate its commit yourself, publish your
    /// receipt, and name the documents on which the two differ.
    Challenge {
        /// The round.
        round: String,
        /// The receipt challenged (its event id).
        #[arg(long)]
        receipt: String,
    },
    /// Settle the round's challenges (its arbiter): evaluate each disputed commit again and
    /// rule for the receipt that agrees.
    Rule {
        /// The round.
        round: String,
    },
    /// Show a round: its phase, submissions, receipts and verdicts, and once settled the
    /// champion, the ladder of improvements and the payouts.
    Show {
        /// The round.
        round: String,
    },
    /// Publish the round's result (the organizer, once settled): the champion this fold
    /// computes, signed — with a pool, with your release of it to the arbiter.
    Result {
        /// The round.
        round: String,
        /// Publish the result only: no merge of the champion (`round merge` does it later).
        #[arg(long)]
        no_merge: bool,
    },
    /// Merge the round's champion into the current branch (the organizer, on the branch that
    /// holds the foundation) with a merge commit recording the round: its champion, the bits it
    /// saves and the round's id. Fetches the champion's fork when the commit is not here.
    Merge {
        /// The round.
        round: String,
    },
    /// Lock the round's pool for its arbiter (the organizer; `announce --pool` does this at
    /// once — this retries it, after a top-up say).
    Fund {
        /// The round.
        round: String,
    },
    /// Pay the settled round out (its arbiter): claim the pool with the organizer's release and
    /// hand every party the round owes its share (rewards in proportion to the bits each lead
    /// saved; the rest to the organizer), each locked for its payee.
    Pay {
        /// The round.
        round: String,
    },
    /// Lock your bond (a listed evaluator, in a round that asks one) before publishing
    /// receipts: back once the round is decided, unless a challenge rules against you.
    Bond {
        /// The round.
        round: String,
    },
    /// Take what the round's arbiter paid you into your wallet.
    Claim {
        /// The round.
        round: String,
    },
    /// Take the pool back (the organizer): a void round's, or one its arbiter never claimed,
    /// from its refund time (a day after the round settles).
    Refund {
        /// The round.
        round: String,
    },
}

/// `agigit round announce`'s arguments.
#[derive(Debug, clap::Args)]
struct AnnounceArgs {
    /// The commit holding the test set in its validation part (keep it unpushed until reveal).
    #[arg(long, value_name = "REV")]
    test: String,
    /// The commit to beat (default HEAD).
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    foundation: String,
    /// Submissions close (unix seconds, or +N seconds from now).
    #[arg(long, value_name = "TIME")]
    submit_by: String,
    /// The test set is revealed by then, or the round is void.
    #[arg(long, value_name = "TIME")]
    reveal_by: String,
    /// Receipts close.
    #[arg(long, value_name = "TIME")]
    evaluate_by: String,
    /// Seconds after evaluate_by in which a receipt may be challenged (and as long again for
    /// the arbiter to rule).
    #[arg(long, value_name = "SECONDS")]
    challenge_within: u64,
    /// An evaluator whose receipts count (npub or hex; repeat).
    #[arg(long = "evaluator", required = true)]
    evaluators: Vec<String>,
    /// Who settles challenges (default: you).
    #[arg(long)]
    arbiter: Option<String>,
    /// Bits per byte a submission must beat the leader by (lower confidence bound).
    #[arg(long, default_value_t = 0.01)]
    margin: f64,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 1000)]
    samples: u64,
    /// The bootstrap's one-sided confidence, percent.
    #[arg(long, default_value_t = 95)]
    confidence: u64,
    /// Tokens per window of every evaluation.
    #[arg(long, default_value_t = EvalOptions::DEFAULT_CONTEXT as u64)]
    context: u64,
    /// Sats for rewards, locked from your wallet at once for the arbiter (who must be another
    /// key: the two of you hold it together until the round settles).
    #[arg(long, default_value_t = 0, requires = "arbiter")]
    pool: u64,
    /// Sats each lead is paid per 1000 bits it saves on the test set (Proof of Work of
    /// Compression), all together at most the pool.
    #[arg(long, conflicts_with = "prize")]
    rate: Option<u64>,
    /// The pool is one prize, the champion's (a customer's training job) instead of a rate.
    #[arg(long)]
    prize: bool,
    /// Sats each evaluator locks before its receipts count (`round bond`), lost to the other
    /// side of a challenge it loses.
    #[arg(long, default_value_t = 0, requires = "arbiter")]
    bond: u64,
    /// A note for people.
    #[arg(long, default_value = "")]
    note: String,
}

struct Conn {
    repo: Repository,
    keys: Keys,
    net: Network,
    min_accepted: usize,
    rt: tokio::runtime::Runtime,
}

impl Conn {
    fn open(ctx: &Ctx) -> Result<Self> {
        let repo = open(ctx)?;
        let config = load_config(&repo)?;
        let keys = keys()?;
        let (relays, push) = effective(&config)?;
        let rt = runtime()?;
        let net = {
            let _entered = rt.enter();
            network(&keys, &relays)?
        };
        Ok(Conn {
            repo,
            keys,
            net,
            min_accepted: push.min_accepted,
            rt,
        })
    }

    fn block_on<T>(&self, f: impl Future<Output = T>) -> T {
        let _entered = self.rt.enter();
        self.rt.block_on(f)
    }

    fn publish<T: agigit::event::ProtocolEvent + Clone>(&self, body: &T) -> Result<Signed<T>> {
        let remote = self.repo.remote(&self.net, &self.keys);
        Ok(self
            .block_on(remote.publish_event(body, self.min_accepted))?
            .0)
    }

    fn act(&self, round: &Signed<RoundEvent>, verb: RoundVerb) -> Result<Signed<RoundAction>> {
        self.publish(&RoundAction {
            round: round.id(),
            verb,
            token: None,
            release: Vec::new(),
            note: String::new(),
        })
    }

    fn round(&self, id: &str) -> Result<Signed<RoundEvent>> {
        let id = EventId::from_hex(id.trim())
            .map_err(|_| Failure::invalid(format!("{id:?} is not a round id (64 hex digits)")))?;
        let remote = self.repo.remote(&self.net, &self.keys);
        self.block_on(remote.round(&id))?.ok_or_else(|| {
            Failure::new(
                ErrorKind::Network,
                format!("no relay of this repository holds round {id}"),
            )
        })
    }

    fn events(&self, round: &Signed<RoundEvent>) -> Result<RoundEvents> {
        let remote = self.repo.remote(&self.net, &self.keys);
        Ok(self.block_on(remote.round_events(round))?)
    }

    /// Round `id`, its events, and its standing folded now.
    fn standing(&self, id: &str) -> Result<(Signed<RoundEvent>, RoundEvents, Standing)> {
        let r = self.round(id)?;
        let ev = self.events(&r)?;
        let s = fold(&r, &ev.actions, &ev.evidence, now());
        Ok((r, ev, s))
    }

    /// Evaluates `commit` on the round's revealed test set (`holder`'s validation part);
    /// refused, saying what to clone, when this repository does not hold it.
    fn evaluate(&self, r: &RoundEvent, commit: &ObjectId, holder: &ObjectId) -> Result<Evaluation> {
        if !holds(&self.repo, commit) {
            return Err(Failure::invalid(format!(
                "this repository does not hold {}: clone the repository it was submitted from",
                commit.short()
            )));
        }
        let data = EvalData::Commit {
            rev: holder.to_string(),
            part: Part::Validation,
        };
        let context = usize::try_from(r.context).unwrap_or(usize::MAX);
        let report = self.repo.evaluate(
            &commit.to_string(),
            &data,
            EvalOptions::with_context(context),
        )?;
        Ok(report.evaluation)
    }

    /// Uploads `e`'s loss list and publishes its receipt on `commit` of `repo`.
    fn publish_receipt(
        &self,
        e: &Evaluation,
        repo: RepoCoordinate,
        commit: ObjectId,
        data: ObjectId,
    ) -> Result<Signed<agigit::event::EvalReceipt>> {
        let remote = self.repo.remote(&self.net, &self.keys);
        let blob =
            self.block_on(remote.upload_losses(agigit::eval::encode_losses(&e.documents)))?;
        let mut receipt = e.receipt(
            repo,
            commit,
            data,
            concat!("agigit ", env!("CARGO_PKG_VERSION")),
            "",
        );
        receipt.blob = Some(blob);
        self.publish(&receipt)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn time_arg(name: &str, text: &str) -> Result<u64> {
    let bad = || {
        Failure::invalid(format!(
            "--{name} {text:?}: unix seconds, or +N seconds from now"
        ))
    };
    match text.strip_prefix('+') {
        Some(rel) => now()
            .checked_add(rel.parse().map_err(|_| bad())?)
            .ok_or_else(bad),
        None => text.parse().map_err(|_| bad()),
    }
}

fn this_coordinate(repo: &Repository) -> Result<RepoCoordinate> {
    crate::receipts::this_coordinate(&load_config(repo)?)
}

/// Refuses a round that is not decided (settled, or void) yet.
fn decided(r: &Signed<RoundEvent>, s: &Standing) -> Result<()> {
    if matches!(s.phase, Phase::Settled | Phase::Void) {
        return Ok(());
    }
    Err(Failure::invalid(format!(
        "the round is not decided yet (phase {:?}; it settles at {})",
        s.phase,
        agigit::eval::round::settles_at(r.body())
    )))
}

/// The revealed test set: its tree and the commit holding it.
fn revealed(s: &Standing) -> Result<(ObjectId, ObjectId)> {
    s.revealed.ok_or_else(|| {
        Failure::invalid("the round's test set is not revealed yet: evaluations wait for it")
    })
}

/// Whether the store holds `commit`.
fn holds(repo: &Repository, commit: &ObjectId) -> bool {
    repo.resolve(&commit.to_string()).is_ok()
}

pub(crate) fn round(ctx: &Ctx, args: &RoundArgs) -> Result<()> {
    let c = Conn::open(ctx)?;
    let mint = args.mint.as_deref();
    match &args.command {
        RoundCommand::Announce(a) => announce(ctx, &c, a, mint),
        RoundCommand::Submit { round, rev } => {
            let r = c.round(round)?;
            let commit = c.repo.resolve(rev)?;
            let repo = this_coordinate(&c.repo)?;
            if now() > r.body().submit_by {
                return Err(Failure::invalid("the round's submissions are closed"));
            }
            let signed = c.act(&r, RoundVerb::Submit { repo, commit })?;
            print(
                ctx.json,
                serde_json::json!({"submission": signed.id().to_hex(), "commit": commit.to_string()}),
                || format!("submitted {} to round {}", commit.short(), short(&r.id())),
            );
            Ok(())
        }
        RoundCommand::Reveal { round } => {
            let r = c.round(round)?;
            let path = sealed_path(&c.repo, &r.body().sealed);
            // What the organizer kept to open the seal: `{"test", "data", "salt"}`.
            let kept: serde_json::Value = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| {
                    Failure::invalid(format!(
                        "{} is missing or unreadable: only the repository that announced the round can reveal it",
                        path.display()
                    ))
                })?;
            let field = |name: &str| kept[name].as_str().unwrap_or_default().to_owned();
            let parse = |s: String| {
                s.parse::<ObjectId>()
                    .map_err(|e| Failure::invalid(e.to_string()))
            };
            let (data, commit) = (parse(field("data"))?, parse(field("test"))?);
            let salt: [u8; 32] = *field("salt")
                .parse::<BlobHash>()
                .map_err(|e| Failure::invalid(e.to_string()))?
                .as_bytes();
            if now() <= r.body().submit_by {
                return Err(Failure::invalid(
                    "submissions are still open: the test set is revealed after submit_by",
                ));
            }
            let signed = c.act(&r, RoundVerb::Reveal { data, salt, commit })?;
            print(
                ctx.json,
                serde_json::json!({"reveal": signed.id().to_hex(), "data": data.to_string(), "commit": commit.to_string()}),
                || {
                    format!(
                        "revealed the test set {} (commit {})",
                        data.short(),
                        commit.short()
                    )
                },
            );
            Ok(())
        }
        RoundCommand::Eval { round, publish } => eval(ctx, &c, round, *publish),
        RoundCommand::Challenge { round, receipt } => challenge(ctx, &c, round, receipt),
        RoundCommand::Rule { round } => rule(ctx, &c, round),
        RoundCommand::Show { round } => {
            let (r, ev, s) = c.standing(round)?;
            // Before the pool is claimed, whether it is at the mint as announced.
            let checked = if s.payments.is_empty() && s.result.is_none() {
                pool::check(&c, &r, &ev, &s, mint)
            } else {
                None
            };
            show(ctx, &r, &s, &ev, checked);
            Ok(())
        }
        RoundCommand::Fund { round } => pool::fund_command(ctx, &c, round, mint),
        RoundCommand::Pay { round } => pool::pay(ctx, &c, round, mint),
        RoundCommand::Claim { round } => pool::claim(ctx, &c, round, mint),
        RoundCommand::Bond { round } => pool::bond(ctx, &c, round, mint),
        RoundCommand::Refund { round } => pool::refund(ctx, &c, round, mint),
        RoundCommand::Merge { round } => {
            let (r, _, s) = c.standing(round)?;
            let merged = merge(&c, &r, &s)?;
            print(ctx.json, merged.clone(), || merge_text(&merged));
            Ok(())
        }
        RoundCommand::Result { round, no_merge } => {
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
            let release = pool::release(&c, &r, &ev, &s, w.as_ref())?;
            let signed = c.publish(&RoundAction {
                round: r.id(),
                verb: RoundVerb::Result { champion },
                token: None,
                release,
                note: String::new(),
            })?;
            // Each bond released to the arbiter too, who pays it back or on.
            let bonds_left_out = pool::consent_bonds(&c, &r, &ev, &s, w.as_ref())?;
            // The champion onto the foundation's branch, recorded; a merge that cannot be done
            // here (a conflict, local changes) leaves the published result as it is.
            let merged = if *no_merge || champion.is_none() {
                serde_json::Value::Null
            } else {
                merge(&c, &r, &s).map_err(|e| {
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
    }
}

/// Merges the settled round's champion into the current branch, which must hold the
/// foundation, with a merge commit recording the round (even where a fast-forward would do).
fn merge(c: &Conn, r: &Signed<RoundEvent>, s: &Standing) -> Result<serde_json::Value> {
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

fn merge_text(merged: &serde_json::Value) -> String {
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

fn short(id: &EventId) -> String {
    id.to_hex()[..16].to_owned()
}

fn sealed_path(repo: &Repository, sealed: &[u8; 32]) -> std::path::PathBuf {
    repo.root()
        .join(".agigit/rounds")
        .join(format!("{}.json", BlobHash::from_bytes(*sealed)))
}

fn announce(ctx: &Ctx, c: &Conn, a: &AnnounceArgs, mint: Option<&str>) -> Result<()> {
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

fn eval(ctx: &Ctx, c: &Conn, round: &str, publish: bool) -> Result<()> {
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

fn short_key(k: &agigit::event::nostr::prelude::PublicKey) -> String {
    k.to_hex()[..12].to_owned()
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

fn challenge(ctx: &Ctx, c: &Conn, round: &str, receipt: &str) -> Result<()> {
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

fn rule(ctx: &Ctx, c: &Conn, round: &str) -> Result<()> {
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

fn show(
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
