//! `agigit round`: competition rounds (Proof of Work of Compression, `docs/rounds.md`) — announce
//! one with a sealed test set, submit a fork's commit, reveal the test set, evaluate and publish
//! receipts with their loss lists, challenge a receipt, rule on a challenge, show the standing
//! and publish the result; a pool on a Cashu mint funded, paid out and claimed ([`pool`]).

mod announce;
mod explorer;
mod outcome;
mod pool;
mod verdict;

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
        RoundCommand::Announce(a) => announce::announce(ctx, &c, a, mint),
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
        RoundCommand::Eval { round, publish } => verdict::eval(ctx, &c, round, *publish),
        RoundCommand::Challenge { round, receipt } => verdict::challenge(ctx, &c, round, receipt),
        RoundCommand::Rule { round } => verdict::rule(ctx, &c, round),
        RoundCommand::Show { round } => {
            let (r, ev, s) = c.standing(round)?;
            // Before the pool is claimed, whether it is at the mint as announced.
            let checked = if s.payments.is_empty() && s.result.is_none() {
                pool::check(&c, &r, &ev, &s, mint)
            } else {
                None
            };
            outcome::show(ctx, &r, &s, &ev, checked);
            Ok(())
        }
        RoundCommand::Fund { round } => pool::fund_command(ctx, &c, round, mint),
        RoundCommand::Pay { round } => pool::pay(ctx, &c, round, mint),
        RoundCommand::Claim { round } => pool::claim(ctx, &c, round, mint),
        RoundCommand::Bond { round } => pool::bond(ctx, &c, round, mint),
        RoundCommand::Refund { round } => pool::refund(ctx, &c, round, mint),
        RoundCommand::Merge { round } => {
            let (r, _, s) = c.standing(round)?;
            let merged = outcome::merge(&c, &r, &s)?;
            print(ctx.json, merged.clone(), || outcome::merge_text(&merged));
            Ok(())
        }
        RoundCommand::Result { round, no_merge } => {
            outcome::result(ctx, &c, round, *no_merge, mint)
        }
    }
}

fn short(id: &EventId) -> String {
    id.to_hex()[..16].to_owned()
}

fn short_key(k: &agigit::event::nostr::prelude::PublicKey) -> String {
    k.to_hex()[..12].to_owned()
}

fn sealed_path(repo: &Repository, sealed: &[u8; 32]) -> std::path::PathBuf {
    repo.root()
        .join(".agigit/rounds")
        .join(format!("{}.json", BlobHash::from_bytes(*sealed)))
}
