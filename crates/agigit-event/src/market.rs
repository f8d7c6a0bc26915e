//! Kinds 1721 and 1722: the market's pull orders and the actions on them (`docs/market.md`).
//! This module is their wire format; what they mean — the order state machine — is
//! `agigit-market`'s.

use agigit_hash::ObjectId;
use nostr::prelude::{EventId, PublicKey, Tag};

use crate::error::ParseError;
use crate::kinds;
use crate::names::{RepoCoordinate, parse_public_key};
use crate::signed::{ProtocolEvent, TagReader, parse_id, tag};
use crate::text::{parse_decimal, quote};

/// The most relays a pull order names.
pub const MAX_ORDER_RELAYS: usize = 64;

/// The longest note an order or action carries in its content, in bytes.
pub const MAX_NOTE: usize = 4096;

/// What a dispute's timeout does when no ruling came (the `default` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefaultRule {
    /// `pay`: the relay is paid.
    Pay,
    /// `refund`: the buyer is refunded.
    Refund,
}

impl DefaultRule {
    /// The tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pay => "pay",
            Self::Refund => "refund",
        }
    }

    fn parse(tag: &str, value: &str) -> Result<Self, ParseError> {
        match value {
            "pay" => Ok(Self::Pay),
            "refund" => Ok(Self::Refund),
            other => Err(ParseError::invalid_value(
                tag,
                other,
                "\"pay\" or \"refund\"",
            )),
        }
    }
}

/// A pull order (kind 1721, regular): its author, the buyer, offers `price` (and `tip`) to one
/// of `relays` for serving the history of `model` in repository `repo`.
///
/// Tags: `a` (the repository), `model` (commit id), one `p` per relay (1–64, no repeats), `price`,
/// `tip`, `bond` (decimal; `tip` and `bond` may be left out for 0), `arbiter` (a key, at most
/// once), `take_by` (unix seconds), `deliver_within`, `confirm_within`, `arbitrate_within`
/// (seconds), `default` (`pay` or `refund`). Content: a note for people, at most 4096 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOrderEvent {
    /// The repository.
    pub repo: RepoCoordinate,
    /// The commit whose history is to be served.
    pub model: ObjectId,
    /// Who may take the order.
    pub relays: Vec<PublicKey>,
    /// The price.
    pub price: u64,
    /// A tip paid with the price.
    pub tip: u64,
    /// What the taking relay locks.
    pub bond: u64,
    /// Who rules a dispute.
    pub arbiter: Option<PublicKey>,
    /// Untaken by then: expired.
    pub take_by: u64,
    /// Seconds the taker has to deliver.
    pub deliver_within: u64,
    /// Seconds the buyer has to confirm or dispute a delivery.
    pub confirm_within: u64,
    /// Seconds the arbiter has to rule.
    pub arbitrate_within: u64,
    /// What an unruled dispute's timeout does.
    pub default_rule: DefaultRule,
    /// A note for people.
    pub note: String,
}

/// What an action asks (the `action` tag, with `amount` or `ruling` where it needs one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderVerb {
    /// `raise`, with `amount`.
    Raise(u64),
    /// `cancel`.
    Cancel,
    /// `take`.
    Take,
    /// `deliver`.
    Deliver,
    /// `confirm`.
    Confirm,
    /// `dispute`.
    Dispute,
    /// `rule`, with `ruling`.
    Rule(DefaultRule),
}

impl OrderVerb {
    /// The `action` tag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raise(_) => "raise",
            Self::Cancel => "cancel",
            Self::Take => "take",
            Self::Deliver => "deliver",
            Self::Confirm => "confirm",
            Self::Dispute => "dispute",
            Self::Rule(_) => "rule",
        }
    }
}

/// An action on an order (kind 1722, regular), by its author.
///
/// Tags: `e` (the order's event id, exactly once), `action` (`raise`, `cancel`, `take`,
/// `deliver`, `confirm`, `dispute` or `rule`), `amount` (decimal, more than 0; with `raise`
/// only), `ruling` (`pay` or `refund`; with `rule` only). Content: a note, at most 4096 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderAction {
    /// The order acted on.
    pub order: EventId,
    /// What is asked.
    pub verb: OrderVerb,
    /// A note for people.
    pub note: String,
}

const A: &str = "a";
const MODEL: &str = "model";
const P: &str = "p";
const PRICE: &str = "price";
const TIP: &str = "tip";
const BOND: &str = "bond";
const ARBITER: &str = "arbiter";
const TAKE_BY: &str = "take_by";
const DELIVER_WITHIN: &str = "deliver_within";
const CONFIRM_WITHIN: &str = "confirm_within";
const ARBITRATE_WITHIN: &str = "arbitrate_within";
const DEFAULT: &str = "default";
const E: &str = "e";
const ACTION: &str = "action";
const AMOUNT: &str = "amount";
const RULING: &str = "ruling";

fn number(tags: &TagReader<'_>, name: &'static str) -> Result<Option<u64>, ParseError> {
    tags.optional_value(name)?
        .map(|v| {
            parse_decimal(v).ok_or_else(|| {
                ParseError::invalid_value(name, v, "a decimal number, no sign or leading zero")
            })
        })
        .transpose()
}

fn required_number(tags: &TagReader<'_>, name: &'static str) -> Result<u64, ParseError> {
    number(tags, name)?.ok_or(ParseError::MissingTag { tag: name })
}

fn note(content: &str) -> Result<String, ParseError> {
    if content.len() > MAX_NOTE {
        return Err(ParseError::InvalidContent {
            reason: format!("a note of {} bytes; at most {MAX_NOTE}", content.len()),
        });
    }
    Ok(content.to_owned())
}

fn key(name: &str, value: &str) -> Result<PublicKey, ParseError> {
    parse_public_key(value).ok_or_else(|| ParseError::InvalidPublicKey {
        tag: name.into(),
        value: quote(value),
    })
}

impl ProtocolEvent for PullOrderEvent {
    const KIND: u16 = kinds::PULL_ORDER;

    fn to_parts(&self) -> (Vec<Tag>, String) {
        let mut tags = vec![
            tag(A, [self.repo.to_string()]),
            tag(MODEL, [self.model.to_string()]),
        ];
        tags.extend(self.relays.iter().map(|r| tag(P, [r.to_hex()])));
        for (name, value) in [(PRICE, self.price), (TIP, self.tip), (BOND, self.bond)] {
            tags.push(tag(name, [value.to_string()]));
        }
        if let Some(a) = &self.arbiter {
            tags.push(tag(ARBITER, [a.to_hex()]));
        }
        for (name, value) in [
            (TAKE_BY, self.take_by),
            (DELIVER_WITHIN, self.deliver_within),
            (CONFIRM_WITHIN, self.confirm_within),
            (ARBITRATE_WITHIN, self.arbitrate_within),
        ] {
            tags.push(tag(name, [value.to_string()]));
        }
        tags.push(tag(DEFAULT, [self.default_rule.as_str()]));
        (tags, self.note.clone())
    }

    fn from_parts(tags: &[Tag], content: &str) -> Result<Self, ParseError> {
        let tags = TagReader::new(tags);
        let repo: RepoCoordinate = tags.required_value(A)?.parse()?;
        let model = parse_id(MODEL, tags.required_value(MODEL)?)?;
        let mut relays: Vec<PublicKey> = Vec::new();
        for values in tags.all(P) {
            let [value] = values else {
                return Err(ParseError::TagArity {
                    tag: P.into(),
                    expected: 1,
                    found: values.len(),
                });
            };
            let k = key(P, value)?;
            if relays.contains(&k) {
                return Err(ParseError::DuplicateValue {
                    tag: P.into(),
                    value: quote(value),
                });
            }
            if relays.len() == MAX_ORDER_RELAYS {
                return Err(ParseError::invalid_value(P, value, "at most 64 relays"));
            }
            relays.push(k);
        }
        if relays.is_empty() {
            return Err(ParseError::MissingTag { tag: P });
        }
        let arbiter = tags
            .optional_value(ARBITER)?
            .map(|v| key(ARBITER, v))
            .transpose()?;
        Ok(Self {
            repo,
            model,
            relays,
            price: required_number(&tags, PRICE)?,
            tip: number(&tags, TIP)?.unwrap_or(0),
            bond: number(&tags, BOND)?.unwrap_or(0),
            arbiter,
            take_by: required_number(&tags, TAKE_BY)?,
            deliver_within: required_number(&tags, DELIVER_WITHIN)?,
            confirm_within: required_number(&tags, CONFIRM_WITHIN)?,
            arbitrate_within: required_number(&tags, ARBITRATE_WITHIN)?,
            default_rule: DefaultRule::parse(DEFAULT, tags.required_value(DEFAULT)?)?,
            note: note(content)?,
        })
    }
}

impl ProtocolEvent for OrderAction {
    const KIND: u16 = kinds::ORDER_ACTION;

    fn to_parts(&self) -> (Vec<Tag>, String) {
        let mut tags = vec![
            tag(E, [self.order.to_hex()]),
            tag(ACTION, [self.verb.as_str()]),
        ];
        match self.verb {
            OrderVerb::Raise(amount) => tags.push(tag(AMOUNT, [amount.to_string()])),
            OrderVerb::Rule(r) => tags.push(tag(RULING, [r.as_str()])),
            _ => {}
        }
        (tags, self.note.clone())
    }

    fn from_parts(tags: &[Tag], content: &str) -> Result<Self, ParseError> {
        let tags = TagReader::new(tags);
        let e = tags.required_value(E)?;
        // The strict id form (64 lowercase hex digits), as a state's `prev` is read.
        let id: ObjectId = parse_id(E, e)?;
        let order = EventId::from_byte_array(*id.as_bytes());
        let amount = number(&tags, AMOUNT)?;
        let ruling = tags
            .optional_value(RULING)?
            .map(|v| DefaultRule::parse(RULING, v))
            .transpose()?;
        let action = tags.required_value(ACTION)?;
        let verb = match (action, amount, ruling) {
            ("raise", Some(a), None) if a > 0 => OrderVerb::Raise(a),
            ("raise", Some(0), None) => {
                return Err(ParseError::invalid_value(AMOUNT, "0", "more than 0"));
            }
            ("raise", None, _) => return Err(ParseError::MissingTag { tag: AMOUNT }),
            ("rule", None, Some(r)) => OrderVerb::Rule(r),
            ("rule", _, None) => return Err(ParseError::MissingTag { tag: RULING }),
            ("cancel", None, None) => OrderVerb::Cancel,
            ("take", None, None) => OrderVerb::Take,
            ("deliver", None, None) => OrderVerb::Deliver,
            ("confirm", None, None) => OrderVerb::Confirm,
            ("dispute", None, None) => OrderVerb::Dispute,
            ("raise" | "rule" | "cancel" | "take" | "deliver" | "confirm" | "dispute", _, _) => {
                return Err(ParseError::invalid_value(
                    ACTION,
                    action,
                    "amount only with raise, ruling only with rule",
                ));
            }
            (other, _, _) => {
                return Err(ParseError::invalid_value(
                    ACTION,
                    other,
                    "raise, cancel, take, deliver, confirm, dispute or rule",
                ));
            }
        };
        Ok(Self {
            order,
            verb,
            note: note(content)?,
        })
    }
}
