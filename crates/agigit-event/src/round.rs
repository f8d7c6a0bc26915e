//! Kinds 1725 and 1726: a competition round (Proof of Work of Compression) and the actions on it
//! — funding, submissions, the reveal of the sealed test set, challenges, rulings, the result
//! and the payouts (`docs/rounds.md`).

use agigit_hash::{BlobHash, Hasher, ObjectId};
use nostr::prelude::{EventId, PublicKey, Tag};

use crate::error::ParseError;
use crate::kinds;
use crate::market::{
    MAX_ORDER_RELAYS, hash32, key, listed_keys, note, number, release, required_number, token,
};
use crate::names::RepoCoordinate;
use crate::receipt::{required_metric, required_real};
use crate::signed::{ProtocolEvent, TagReader, parse_id, tag};
use crate::text::parse_decimal;

/// The most documents one challenge names.
pub const MAX_DISPUTED: usize = 64;

/// What a sealed test set's commitment is: SHA-256("agigit round seal" ‖ the data tree's id ‖
/// salt). Published at the start; the reveal must open it.
pub fn seal(data: &ObjectId, salt: &[u8; 32]) -> [u8; 32] {
    let mut h = Hasher::new();
    h.update(b"agigit round seal");
    h.update(data.as_bytes());
    h.update(salt);
    h.finalize()
}

/// A round's announcement (kind 1725, regular), signed by its organizer.
///
/// Tags, each exactly once unless said: `a` (the foundation's repository), `foundation` (the
/// commit to beat), `metric` (`bits-per-byte`), `sealed` (64 hex: [`seal`] of the test set),
/// `context` (tokens per window, 2 to 8192), `submit_by`, `reveal_by`, `evaluate_by` (unix
/// seconds, in that order), `challenge_within` (seconds, more than 0, at most a year), `pool`
/// (amount; 0 for a round that pays nothing), `rate` (amount per 1000 bits saved; 0 with a
/// pool: the whole pool is one prize for the champion), `margin` (bits per byte, shortest decimal, not negative), `samples` (1 to
/// 100000) and `confidence` (percent, 50 to 99) of the bootstrap, `p` (1 to 64 evaluators whose
/// receipts count), `arbiter` (at most once: who settles challenges; the organizer without one;
/// required with a pool: it holds the escrow with the organizer; a pool whose arbiter is the
/// organizer is never funded), `bond` (at most once: what each listed evaluator locks before
/// its receipts count, forfeited to the other side of a challenge it loses; absent: 0; needs
/// an arbiter).
/// Content: a note, at most 4096 bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundEvent {
    /// The foundation's repository.
    pub repo: RepoCoordinate,
    /// The commit to beat.
    pub foundation: ObjectId,
    /// The metric: one of [`METRICS`](crate::METRICS).
    pub metric: String,
    /// The sealed test set's commitment.
    pub sealed: [u8; 32],
    /// Tokens per window of every evaluation.
    pub context: u64,
    /// Submissions dated after this do not count.
    pub submit_by: u64,
    /// The organizer reveals the test set by then, or the round is void.
    pub reveal_by: u64,
    /// Receipts dated after this do not count.
    pub evaluate_by: u64,
    /// How long after `evaluate_by` a receipt may be challenged.
    pub challenge_within: u64,
    /// What the round pays at most.
    pub pool: u64,
    /// What it pays per 1000 bits saved on the test set; 0 with a pool: the pool is one prize,
    /// the champion's (a customer's training job).
    pub rate: u64,
    /// The bits per byte a submission's lower bound must beat the leader by.
    pub margin: f64,
    /// Bootstrap resamples.
    pub samples: u64,
    /// The bootstrap's one-sided confidence, in percent.
    pub confidence: u64,
    /// The evaluators whose receipts count.
    pub evaluators: Vec<PublicKey>,
    /// Who settles challenges (the organizer when `None`).
    pub arbiter: Option<PublicKey>,
    /// What each listed evaluator locks before its receipts count (0: none).
    pub bond: u64,
    /// A note for people.
    pub note: String,
}

/// What a round action asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundVerb {
    /// `fund`, with `token`: the organizer has locked the pool.
    Fund,
    /// `submit`, with `a` and `commit`: a contribution, fixed by its commit id.
    Submit {
        /// The fork's repository.
        repo: RepoCoordinate,
        /// The commit submitted.
        commit: ObjectId,
    },
    /// `reveal`, with `data`, `salt` and `commit`: the test set, opening the seal.
    Reveal {
        /// The test set's tree id.
        data: ObjectId,
        /// The seal's salt.
        salt: [u8; 32],
        /// A commit of the foundation's repository whose validation part is `data`.
        commit: ObjectId,
    },
    /// `challenge`, with `receipt`, `counter` and `document` tags: the challenger's own receipt
    /// (`counter`) disagrees with `receipt` on these documents.
    Challenge {
        /// The receipt challenged.
        receipt: EventId,
        /// The challenger's receipt on the same commit and data.
        counter: EventId,
        /// Indexes of the documents in dispute (1 to 64, ascending, none twice).
        documents: Vec<u64>,
    },
    /// `rule`, with `receipt`: the arbiter's re-evaluation agrees with this receipt; the other
    /// side of its challenge falls.
    Rule {
        /// The receipt that stands.
        receipt: EventId,
    },
    /// `result`, with `champion` (absent when the foundation stays): the organizer's signed
    /// record of the round's outcome, with its `release` of the escrow.
    Result {
        /// The winning commit.
        champion: Option<ObjectId>,
    },
    /// `pay`, with `p`, `amount`, `token` and `release`: the arbiter hands a payee what the
    /// settled round owes it — funds locked for the payee, with the arbiter's consent to their
    /// release.
    Pay {
        /// The payee.
        to: PublicKey,
        /// What the token holds (at most what the round owes the payee; more than 0).
        amount: u64,
    },
    /// `bond`, with `token`: a listed evaluator has locked the round's bond.
    Bond,
    /// `consent`, with `bond` and `release`: the organizer's consent to the arbiter's claim of
    /// an evaluator's bond, once the round is decided (the arbiter pays it back, or on to whom
    /// it was lost).
    Consent {
        /// The `bond` action whose token this releases.
        bond: EventId,
    },
}

impl RoundVerb {
    /// The `action` tag's value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Fund => "fund",
            Self::Submit { .. } => "submit",
            Self::Reveal { .. } => "reveal",
            Self::Challenge { .. } => "challenge",
            Self::Rule { .. } => "rule",
            Self::Result { .. } => "result",
            Self::Pay { .. } => "pay",
            Self::Bond => "bond",
            Self::Consent { .. } => "consent",
        }
    }
}

/// An action on a round (kind 1726, regular), by its author.
///
/// Tags: `e` (the round's id), `action`, the verb's arguments ([`RoundVerb`]), `token` (with
/// `fund`, `bond` and `pay`), `release` (with `result`, `pay` and `consent`). Content: a note, at most 4096 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundAction {
    /// The round.
    pub round: EventId,
    /// What is asked.
    pub verb: RoundVerb,
    /// The escrow a `fund` or `bond` locks (or a `pay` hands over), as the ledger writes it.
    pub token: Option<String>,
    /// The organizer's consent to the pool's release, with `result`; the arbiter's to a
    /// payment's, with `pay`.
    pub release: Vec<String>,
    /// A note for people.
    pub note: String,
}

const A: &str = "a";
const FOUNDATION: &str = "foundation";
const METRIC: &str = "metric";
const SEALED: &str = "sealed";
const CONTEXT: &str = "context";
const SUBMIT_BY: &str = "submit_by";
const REVEAL_BY: &str = "reveal_by";
const EVALUATE_BY: &str = "evaluate_by";
const CHALLENGE_WITHIN: &str = "challenge_within";
const POOL: &str = "pool";
const RATE: &str = "rate";
const MARGIN: &str = "margin";
const SAMPLES: &str = "samples";
const CONFIDENCE: &str = "confidence";
const P: &str = "p";
const ARBITER: &str = "arbiter";
const E: &str = "e";
const ACTION: &str = "action";
const COMMIT: &str = "commit";
const DATA: &str = "data";
const SALT: &str = "salt";
const RECEIPT: &str = "receipt";
const COUNTER: &str = "counter";
const DOCUMENT: &str = "document";
const CHAMPION: &str = "champion";
const BOND: &str = "bond";
const AMOUNT: &str = "amount";

const YEAR: u64 = 366 * 24 * 3600;

fn event_id(name: &str, value: &str) -> Result<EventId, ParseError> {
    let id: ObjectId = parse_id(name, value)?;
    Ok(EventId::from_byte_array(*id.as_bytes()))
}

impl ProtocolEvent for RoundEvent {
    const KIND: u16 = kinds::ROUND;

    fn to_parts(&self) -> (Vec<Tag>, String) {
        let mut tags = vec![
            tag(A, [self.repo.to_string()]),
            tag(FOUNDATION, [self.foundation.to_string()]),
            tag(METRIC, [self.metric.as_str()]),
            tag(SEALED, [BlobHash::from_bytes(self.sealed).to_hex()]),
        ];
        for (name, value) in [
            (CONTEXT, self.context),
            (SUBMIT_BY, self.submit_by),
            (REVEAL_BY, self.reveal_by),
            (EVALUATE_BY, self.evaluate_by),
            (CHALLENGE_WITHIN, self.challenge_within),
            (POOL, self.pool),
            (RATE, self.rate),
        ] {
            tags.push(tag(name, [value.to_string()]));
        }
        tags.push(tag(MARGIN, [self.margin.to_string()]));
        tags.push(tag(SAMPLES, [self.samples.to_string()]));
        tags.push(tag(CONFIDENCE, [self.confidence.to_string()]));
        tags.extend(self.evaluators.iter().map(|k| tag(P, [k.to_hex()])));
        if let Some(a) = &self.arbiter {
            tags.push(tag(ARBITER, [a.to_hex()]));
        }
        if self.bond > 0 {
            tags.push(tag(BOND, [self.bond.to_string()]));
        }
        (tags, self.note.clone())
    }

    fn from_parts(tags: &[Tag], content: &str) -> Result<Self, ParseError> {
        let tags = TagReader::new(tags);
        let n = |name: &'static str| required_number(&tags, name);
        let metric = required_metric(&tags)?;
        let margin = required_real(&tags, MARGIN)?;
        let round = RoundEvent {
            repo: tags.required_value(A)?.parse()?,
            foundation: parse_id(FOUNDATION, tags.required_value(FOUNDATION)?)?,
            metric,
            sealed: hash32(SEALED, tags.required_value(SEALED)?)?,
            context: n(CONTEXT)?,
            submit_by: n(SUBMIT_BY)?,
            reveal_by: n(REVEAL_BY)?,
            evaluate_by: n(EVALUATE_BY)?,
            challenge_within: n(CHALLENGE_WITHIN)?,
            pool: n(POOL)?,
            rate: n(RATE)?,
            margin,
            samples: n(SAMPLES)?,
            confidence: n(CONFIDENCE)?,
            evaluators: listed_keys(&tags)?,
            arbiter: tags
                .optional_value(ARBITER)?
                .map(|v| key(ARBITER, v))
                .transpose()?,
            bond: number(&tags, BOND)?.unwrap_or(0),
            note: note(content)?,
        };
        let bad = |name: &'static str, value: u64, what: &'static str| {
            Err(ParseError::invalid_value(name, &value.to_string(), what))
        };
        if !(2..=8192).contains(&round.context) {
            return bad(CONTEXT, round.context, "2 to 8192 tokens");
        }
        if round.reveal_by <= round.submit_by {
            return bad(REVEAL_BY, round.reveal_by, "after submit_by");
        }
        if round.evaluate_by <= round.reveal_by {
            return bad(EVALUATE_BY, round.evaluate_by, "after reveal_by");
        }
        if round.challenge_within == 0 || round.challenge_within > YEAR {
            return bad(
                CHALLENGE_WITHIN,
                round.challenge_within,
                "more than 0 seconds, at most a year",
            );
        }
        if round
            .evaluate_by
            .checked_add(round.challenge_within)
            .is_none()
        {
            return bad(
                EVALUATE_BY,
                round.evaluate_by,
                "a time the window can follow",
            );
        }
        if (round.pool > 0 || round.bond > 0) && round.arbiter.is_none() {
            return Err(ParseError::MissingTag { tag: ARBITER });
        }
        if !(1..=100_000).contains(&round.samples) {
            return bad(SAMPLES, round.samples, "1 to 100000");
        }
        if !(50..=99).contains(&round.confidence) {
            return bad(CONFIDENCE, round.confidence, "50 to 99 percent");
        }
        debug_assert!(round.evaluators.len() <= MAX_ORDER_RELAYS);
        Ok(round)
    }
}

fn documents(tags: &TagReader<'_>) -> Result<Vec<u64>, ParseError> {
    let Some(values) = tags.at_most_one(DOCUMENT)? else {
        return Err(ParseError::MissingTag { tag: DOCUMENT });
    };
    if values.is_empty() || values.len() > MAX_DISPUTED {
        return Err(ParseError::invalid_value(DOCUMENT, "", "1 to 64 indexes"));
    }
    let mut out: Vec<u64> = Vec::with_capacity(values.len());
    for v in values {
        let i = parse_decimal(v).ok_or_else(|| {
            ParseError::invalid_value(DOCUMENT, v, "a decimal index, no sign or leading zero")
        })?;
        if out.last().is_some_and(|&last| last >= i) {
            return Err(ParseError::invalid_value(
                DOCUMENT,
                v,
                "indexes in ascending order, none twice",
            ));
        }
        out.push(i);
    }
    Ok(out)
}

impl ProtocolEvent for RoundAction {
    const KIND: u16 = kinds::ROUND_ACTION;

    fn to_parts(&self) -> (Vec<Tag>, String) {
        let mut tags = vec![
            tag(E, [self.round.to_hex()]),
            tag(ACTION, [self.verb.as_str()]),
        ];
        match &self.verb {
            RoundVerb::Fund => {}
            RoundVerb::Submit { repo, commit } => {
                tags.push(tag(A, [repo.to_string()]));
                tags.push(tag(COMMIT, [commit.to_string()]));
            }
            RoundVerb::Reveal { data, salt, commit } => {
                tags.push(tag(DATA, [data.to_string()]));
                tags.push(tag(SALT, [BlobHash::from_bytes(*salt).to_hex()]));
                tags.push(tag(COMMIT, [commit.to_string()]));
            }
            RoundVerb::Challenge {
                receipt,
                counter,
                documents,
            } => {
                tags.push(tag(RECEIPT, [receipt.to_hex()]));
                tags.push(tag(COUNTER, [counter.to_hex()]));
                tags.push(tag(DOCUMENT, documents.iter().map(u64::to_string)));
            }
            RoundVerb::Rule { receipt } => tags.push(tag(RECEIPT, [receipt.to_hex()])),
            RoundVerb::Result { champion } => {
                if let Some(c) = champion {
                    tags.push(tag(CHAMPION, [c.to_string()]));
                }
            }
            RoundVerb::Pay { to, amount } => {
                tags.push(tag(P, [to.to_hex()]));
                tags.push(tag(AMOUNT, [amount.to_string()]));
            }
            RoundVerb::Bond => {}
            RoundVerb::Consent { bond } => tags.push(tag(BOND, [bond.to_hex()])),
        }
        if let Some(token) = &self.token {
            tags.push(tag(crate::market::TOKEN, [token.as_str()]));
        }
        if !self.release.is_empty() {
            tags.push(tag(
                crate::market::RELEASE,
                self.release.iter().map(String::as_str),
            ));
        }
        (tags, self.note.clone())
    }

    fn from_parts(tags: &[Tag], content: &str) -> Result<Self, ParseError> {
        let tags = TagReader::new(tags);
        let round = event_id(E, tags.required_value(E)?)?;
        let action = tags.required_value(ACTION)?;
        // Which argument tags each action takes; any other is refused.
        let allowed: &[&str] = match action {
            "fund" => &[crate::market::TOKEN],
            "submit" => &[A, COMMIT],
            "reveal" => &[DATA, SALT, COMMIT],
            "challenge" => &[RECEIPT, COUNTER, DOCUMENT],
            "rule" => &[RECEIPT],
            "result" => &[CHAMPION, crate::market::RELEASE],
            "pay" => &[P, AMOUNT, crate::market::TOKEN, crate::market::RELEASE],
            "bond" => &[crate::market::TOKEN],
            "consent" => &[BOND, crate::market::RELEASE],
            other => {
                return Err(ParseError::invalid_value(
                    ACTION,
                    other,
                    "fund, submit, reveal, challenge, rule, result, pay, bond or consent",
                ));
            }
        };
        for name in [
            A,
            COMMIT,
            DATA,
            SALT,
            RECEIPT,
            COUNTER,
            DOCUMENT,
            CHAMPION,
            P,
            AMOUNT,
            BOND,
            crate::market::TOKEN,
            crate::market::RELEASE,
        ] {
            if !allowed.contains(&name) && tags.all(name).next().is_some() {
                return Err(ParseError::invalid_value(
                    name,
                    action,
                    "no such tag with this action: fund takes token; submit a and commit; \
                     reveal data, salt and commit; challenge receipt, counter and document; \
                     rule receipt; result champion and release; pay p, amount, token and release; \
                     bond token; consent bond and release",
                ));
            }
        }
        let commit = || parse_id::<ObjectId>(COMMIT, tags.required_value(COMMIT)?);
        let verb = match action {
            "fund" => RoundVerb::Fund,
            "submit" => RoundVerb::Submit {
                repo: tags.required_value(A)?.parse()?,
                commit: commit()?,
            },
            "reveal" => RoundVerb::Reveal {
                data: parse_id(DATA, tags.required_value(DATA)?)?,
                salt: hash32(SALT, tags.required_value(SALT)?)?,
                commit: commit()?,
            },
            "challenge" => RoundVerb::Challenge {
                receipt: event_id(RECEIPT, tags.required_value(RECEIPT)?)?,
                counter: event_id(COUNTER, tags.required_value(COUNTER)?)?,
                documents: documents(&tags)?,
            },
            "rule" => RoundVerb::Rule {
                receipt: event_id(RECEIPT, tags.required_value(RECEIPT)?)?,
            },
            "bond" => RoundVerb::Bond,
            "consent" => RoundVerb::Consent {
                bond: event_id(BOND, tags.required_value(BOND)?)?,
            },
            "pay" => RoundVerb::Pay {
                to: key(P, tags.required_value(P)?)?,
                amount: match required_number(&tags, AMOUNT)? {
                    0 => return Err(ParseError::invalid_value(AMOUNT, "0", "more than 0")),
                    n => n,
                },
            },
            _ => RoundVerb::Result {
                champion: tags
                    .optional_value(CHAMPION)?
                    .map(|v| parse_id(CHAMPION, v))
                    .transpose()?,
            },
        };
        let token = token(&tags)?;
        if matches!(
            verb,
            RoundVerb::Fund | RoundVerb::Bond | RoundVerb::Pay { .. }
        ) && token.is_none()
        {
            return Err(ParseError::MissingTag {
                tag: crate::market::TOKEN,
            });
        }
        let release = release(&tags)?;
        if matches!(verb, RoundVerb::Pay { .. } | RoundVerb::Consent { .. }) && release.is_empty() {
            return Err(ParseError::MissingTag {
                tag: crate::market::RELEASE,
            });
        }
        Ok(RoundAction {
            round,
            verb,
            token,
            release,
            note: note(content)?,
        })
    }
}
