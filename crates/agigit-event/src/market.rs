//! Kinds 1721, 1722 and 1723: the market's pull orders, the actions on orders, and storage
//! orders (`docs/market.md`).
//! This module is their wire format; what they mean — the order state machine — is
//! `agigit-market`'s.

use agigit_hash::{BlobHash, ObjectId};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
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

/// The most shards a storage order names (each tag is about 150 bytes: the order stays far
/// below a relay's message limit).
pub const MAX_ORDER_SHARDS: usize = 1024;

/// The largest shard a storage order names, in bytes.
pub const MAX_SHARD_BYTES: u64 = 1 << 32;

/// Bytes per audit leaf: a challenged position is answered with one leaf of the shard (the
/// last leaf of a shard may be shorter).
pub const LEAF_BYTES: usize = 1024;

/// The longest inclusion path an answer carries: the depth of the tree over a shard of
/// [`MAX_SHARD_BYTES`] in leaves of [`LEAF_BYTES`] (2^22 leaves).
pub const MAX_PATH: usize = 22;

/// The most positions one audit challenges, and so the most openings an answer carries.
pub const MAX_CHALLENGES: usize = 8;

/// The longest escrow token a `fund` action carries, in bytes.
pub const MAX_TOKEN: usize = 64 << 10;

/// The most signatures a `release` carries (one per proof of the escrow).
pub const MAX_RELEASE: usize = 64;

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
/// once), `take_by` (unix seconds), `fund_within`, `deliver_within`, `confirm_within`,
/// `arbitrate_within` (seconds), `default` (`pay` or `refund`). Content: a note for people, at most 4096 bytes.
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
    /// Seconds the buyer has to fund a taken order.
    pub fund_within: u64,
    /// Seconds the taker has to deliver once funded.
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

/// One shard a storage order asks a server to keep (a `shard` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoredShard {
    /// The blob: the shard's SHA-256, as servers name it.
    pub blob: BlobHash,
    /// Its length in bytes, 1 to [`MAX_SHARD_BYTES`].
    pub size: u64,
    /// Its audit root: the RFC 9162 Merkle tree head over its leaves of [`LEAF_BYTES`].
    pub root: [u8; 32],
}

/// A storage order (kind 1723, regular): its author, the buyer, pays one of `servers` `price`
/// per period for keeping `shards` for `periods` periods of `period` seconds, each period paid
/// only after an audit of it passes (or, unaudited, by the `unaudited` rule).
///
/// Tags: `a` (the repository), one `shard` per shard (`<sha256> <size> <root>`, 1–1024, no
/// blob twice), one `p` per server (1–64, no repeats), `price` (per period), `periods`,
/// `period` (seconds), `bond` (may be left out for 0), `take_by` (unix seconds),
/// `fund_within` and `answer_within` (seconds), `challenges` (positions per audit, 1–8), `unaudited` (`pay` or
/// `refund`). Content: a note, at most 4096 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOrderEvent {
    /// The repository whose packs the shards belong to.
    pub repo: RepoCoordinate,
    /// What is to be kept.
    pub shards: Vec<StoredShard>,
    /// Who may take the order.
    pub servers: Vec<PublicKey>,
    /// Paid per period.
    pub price: u64,
    /// How many periods.
    pub periods: u64,
    /// A period's length in seconds.
    pub period: u64,
    /// What the taking server locks.
    pub bond: u64,
    /// Untaken by then: expired.
    pub take_by: u64,
    /// Seconds the buyer has to fund a taken order.
    pub fund_within: u64,
    /// Seconds a server has to answer a challenge.
    pub answer_within: u64,
    /// Positions one audit challenges.
    pub challenges: u64,
    /// What a period nobody audited does.
    pub unaudited: DefaultRule,
    /// A note for people.
    pub note: String,
}

/// One challenged leaf, answered: its bytes and inclusion path, leaf to root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Opening {
    /// The leaf's bytes (at most [`LEAF_BYTES`]).
    pub bytes: Vec<u8>,
    /// Sibling hashes from the leaf up (at most [`MAX_PATH`]).
    pub path: Vec<[u8; 32]>,
}

/// What an action asks (the `action` tag, with `amount`, `ruling`, `nonce` or `leaf` where it
/// needs one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderVerb {
    /// `raise`, with `amount`.
    Raise(u64),
    /// `cancel`.
    Cancel,
    /// `take`.
    Take,
    /// `fund`: the buyer has locked the escrow for the taker.
    Fund,
    /// `deliver`.
    Deliver,
    /// `confirm`.
    Confirm,
    /// `dispute`.
    Dispute,
    /// `rule`, with `ruling`.
    Rule(DefaultRule),
    /// `challenge`, with `nonce` (64 hex): a storage order's audit for the current period.
    Challenge([u8; 32]),
    /// `answer`, with one `leaf` tag per challenged position, in order: `<base64 bytes>`
    /// followed by the path's hashes in hex.
    Answer(Vec<Opening>),
}

impl OrderVerb {
    /// The `action` tag's value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Raise(_) => "raise",
            Self::Cancel => "cancel",
            Self::Take => "take",
            Self::Fund => "fund",
            Self::Deliver => "deliver",
            Self::Confirm => "confirm",
            Self::Dispute => "dispute",
            Self::Rule(_) => "rule",
            Self::Challenge(_) => "challenge",
            Self::Answer(_) => "answer",
        }
    }
}

/// An action on an order (kind 1722, regular), by its author.
///
/// Tags: `e` (the order's event id, exactly once), `action` (`raise`, `cancel`, `take`, `fund`,
/// `deliver`, `confirm`, `dispute`, `rule`, `challenge` or `answer`), `amount` (decimal, more
/// than 0; with `raise` only), `ruling` (`pay` or `refund`; with `rule` only), `nonce` (with
/// `challenge` only), `leaf` (1 to 8; with `answer` only), `token` (the escrow a `fund` locks:
/// printable ASCII, at most 64 KiB; with `fund` only), `release` (1 to 64 BIP-340 signatures, 128
/// hex each: the author's consent to the escrow's release; with `confirm` or `rule` only).
/// Content: a note, at most 4096 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderAction {
    /// The order acted on.
    pub order: EventId,
    /// What is asked.
    pub verb: OrderVerb,
    /// The escrow a `fund` locks, as the ledger writes it (a Cashu token).
    pub token: Option<String>,
    /// The author's consent to the escrow's release, with `confirm` or `rule`: one signature
    /// per proof, hex.
    pub release: Vec<String>,
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
const FUND_WITHIN: &str = "fund_within";
const DELIVER_WITHIN: &str = "deliver_within";
const CONFIRM_WITHIN: &str = "confirm_within";
const ARBITRATE_WITHIN: &str = "arbitrate_within";
const DEFAULT: &str = "default";
const E: &str = "e";
const ACTION: &str = "action";
const AMOUNT: &str = "amount";
const RULING: &str = "ruling";
const SHARD: &str = "shard";
const PERIODS: &str = "periods";
const PERIOD: &str = "period";
const ANSWER_WITHIN: &str = "answer_within";
const CHALLENGES: &str = "challenges";
const UNAUDITED: &str = "unaudited";
const NONCE: &str = "nonce";
const LEAF: &str = "leaf";
pub(crate) const TOKEN: &str = "token";
pub(crate) const RELEASE: &str = "release";

pub(crate) fn number(tags: &TagReader<'_>, name: &'static str) -> Result<Option<u64>, ParseError> {
    tags.optional_value(name)?
        .map(|v| {
            parse_decimal(v).ok_or_else(|| {
                ParseError::invalid_value(name, v, "a decimal number, no sign or leading zero")
            })
        })
        .transpose()
}

pub(crate) fn required_number(tags: &TagReader<'_>, name: &'static str) -> Result<u64, ParseError> {
    number(tags, name)?.ok_or(ParseError::MissingTag { tag: name })
}

pub(crate) fn note(content: &str) -> Result<String, ParseError> {
    if content.len() > MAX_NOTE {
        return Err(ParseError::InvalidContent {
            reason: format!("a note of {} bytes; at most {MAX_NOTE}", content.len()),
        });
    }
    Ok(content.to_owned())
}

pub(crate) fn key(name: &str, value: &str) -> Result<PublicKey, ParseError> {
    parse_public_key(value).ok_or_else(|| ParseError::InvalidPublicKey {
        tag: name.into(),
        value: quote(value),
    })
}

/// Every `p` tag: 1 to 64 keys, none twice.
pub(crate) fn listed_keys(tags: &TagReader<'_>) -> Result<Vec<PublicKey>, ParseError> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for values in tags.all(P) {
        let [value] = values else {
            return Err(ParseError::TagArity {
                tag: P.into(),
                expected: 1,
                found: values.len(),
            });
        };
        let k = key(P, value)?;
        if keys.contains(&k) {
            return Err(ParseError::DuplicateValue {
                tag: P.into(),
                value: quote(value),
            });
        }
        if keys.len() == MAX_ORDER_RELAYS {
            return Err(ParseError::invalid_value(P, value, "at most 64 keys"));
        }
        keys.push(k);
    }
    if keys.is_empty() {
        return Err(ParseError::MissingTag { tag: P });
    }
    Ok(keys)
}

/// The `token` tag, if any: 1 to 64 KiB of printable ASCII.
pub(crate) fn token(tags: &TagReader<'_>) -> Result<Option<String>, ParseError> {
    tags.optional_value(TOKEN)?
        .map(|t| {
            let printable = t.bytes().all(|b| b.is_ascii_graphic());
            if t.is_empty() || t.len() > MAX_TOKEN || !printable {
                return Err(ParseError::invalid_value(
                    TOKEN,
                    t,
                    "1 to 64 KiB of printable ASCII",
                ));
            }
            Ok(t.to_owned())
        })
        .transpose()
}

/// The `release` tag's signatures, if any: 1 to 64, 128 lowercase hex each.
pub(crate) fn release(tags: &TagReader<'_>) -> Result<Vec<String>, ParseError> {
    Ok(match tags.at_most_one(RELEASE)? {
        None => Vec::new(),
        Some(values) => {
            if values.is_empty() || values.len() > MAX_RELEASE {
                return Err(ParseError::invalid_value(RELEASE, "", "1 to 64 signatures"));
            }
            for v in values {
                let hex = v.len() == 128
                    && v.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !hex {
                    return Err(ParseError::invalid_value(
                        RELEASE,
                        v,
                        "signatures of 128 lowercase hex digits",
                    ));
                }
            }
            values.to_vec()
        }
    })
}

pub(crate) fn hash32(name: &str, value: &str) -> Result<[u8; 32], ParseError> {
    Ok(*parse_id::<BlobHash>(name, value)?.as_bytes())
}

/// Every `leaf` tag of an answer: 1 to 8, each base64 bytes (at most a leaf) and at most 22
/// hashes. Lengths are checked before anything is decoded.
fn openings(tags: &TagReader<'_>) -> Result<Vec<Opening>, ParseError> {
    let mut out = Vec::new();
    for values in tags.all(LEAF) {
        if out.len() == MAX_CHALLENGES {
            return Err(ParseError::invalid_value(LEAF, "", "at most 8 leaf tags"));
        }
        let Some((bytes, path)) = values.split_first() else {
            return Err(ParseError::TagArity {
                tag: LEAF.into(),
                expected: 1,
                found: 0,
            });
        };
        if bytes.len() > LEAF_BYTES.div_ceil(3) * 4 {
            return Err(ParseError::invalid_value(
                LEAF,
                bytes,
                "at most 1024 bytes, in base64",
            ));
        }
        let bytes = BASE64
            .decode(bytes)
            .map_err(|_| ParseError::invalid_value(LEAF, bytes, "standard base64, padded"))?;
        if bytes.is_empty() || bytes.len() > LEAF_BYTES {
            return Err(ParseError::invalid_value(LEAF, "", "1 to 1024 bytes"));
        }
        if path.len() > MAX_PATH {
            return Err(ParseError::invalid_value(
                LEAF,
                "",
                "at most 22 path hashes",
            ));
        }
        let path = path
            .iter()
            .map(|h| hash32(LEAF, h))
            .collect::<Result<_, _>>()?;
        out.push(Opening { bytes, path });
    }
    if out.is_empty() {
        return Err(ParseError::MissingTag { tag: LEAF });
    }
    Ok(out)
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
            (FUND_WITHIN, self.fund_within),
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
        let relays = listed_keys(&tags)?;
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
            fund_within: required_number(&tags, FUND_WITHIN)?,
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
        match &self.verb {
            OrderVerb::Raise(amount) => tags.push(tag(AMOUNT, [amount.to_string()])),
            OrderVerb::Rule(r) => tags.push(tag(RULING, [r.as_str()])),
            OrderVerb::Challenge(nonce) => {
                tags.push(tag(NONCE, [BlobHash::from_bytes(*nonce).to_hex()]));
            }
            OrderVerb::Answer(openings) => {
                for o in openings {
                    let mut values = vec![BASE64.encode(&o.bytes)];
                    values.extend(o.path.iter().map(|h| BlobHash::from_bytes(*h).to_hex()));
                    tags.push(tag(LEAF, values));
                }
            }
            _ => {}
        }
        if let Some(token) = &self.token {
            tags.push(tag(TOKEN, [token.as_str()]));
        }
        if !self.release.is_empty() {
            tags.push(tag(RELEASE, self.release.iter().map(String::as_str)));
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
        let nonce = tags
            .optional_value(NONCE)?
            .map(|v| parse_id::<BlobHash>(NONCE, v))
            .transpose()?;
        let has_leaves = tags.all(LEAF).next().is_some();
        let action = tags.required_value(ACTION)?;
        // Each argument tag belongs to one action and comes with no other.
        let arguments = [
            (
                "raise",
                amount.is_some(),
                "an amount tag belongs with raise only",
            ),
            (
                "rule",
                ruling.is_some(),
                "a ruling tag belongs with rule only",
            ),
            (
                "challenge",
                nonce.is_some(),
                "a nonce tag belongs with challenge only",
            ),
            ("answer", has_leaves, "leaf tags belong with answer only"),
        ];
        if let Some((_, _, why)) = arguments
            .iter()
            .find(|(owner, present, _)| *present && *owner != action)
        {
            return Err(ParseError::invalid_value(ACTION, action, why));
        }
        let verb = match action {
            "raise" => match amount {
                Some(0) => return Err(ParseError::invalid_value(AMOUNT, "0", "more than 0")),
                Some(a) => OrderVerb::Raise(a),
                None => return Err(ParseError::MissingTag { tag: AMOUNT }),
            },
            "rule" => OrderVerb::Rule(ruling.ok_or(ParseError::MissingTag { tag: RULING })?),
            "challenge" => OrderVerb::Challenge(
                *nonce
                    .ok_or(ParseError::MissingTag { tag: NONCE })?
                    .as_bytes(),
            ),
            "answer" => OrderVerb::Answer(openings(&tags)?),
            "cancel" => OrderVerb::Cancel,
            "take" => OrderVerb::Take,
            "fund" => OrderVerb::Fund,
            "deliver" => OrderVerb::Deliver,
            "confirm" => OrderVerb::Confirm,
            "dispute" => OrderVerb::Dispute,
            other => {
                return Err(ParseError::invalid_value(
                    ACTION,
                    other,
                    "raise, cancel, take, fund, deliver, confirm, dispute, rule, challenge or answer",
                ));
            }
        };
        let token = token(&tags)?;
        let release = release(&tags)?;
        if token.is_some() && !matches!(verb, OrderVerb::Fund) {
            return Err(ParseError::invalid_value(
                ACTION,
                action,
                "a token belongs with fund only",
            ));
        }
        if !release.is_empty() && !matches!(verb, OrderVerb::Confirm | OrderVerb::Rule(_)) {
            return Err(ParseError::invalid_value(
                ACTION,
                action,
                "a release belongs with confirm or rule only",
            ));
        }
        Ok(Self {
            order,
            verb,
            token,
            release,
            note: note(content)?,
        })
    }
}

impl ProtocolEvent for StorageOrderEvent {
    const KIND: u16 = kinds::STORAGE_ORDER;

    fn to_parts(&self) -> (Vec<Tag>, String) {
        let mut tags = vec![tag(A, [self.repo.to_string()])];
        tags.extend(self.shards.iter().map(|s| {
            tag(
                SHARD,
                [
                    s.blob.to_hex(),
                    s.size.to_string(),
                    BlobHash::from_bytes(s.root).to_hex(),
                ],
            )
        }));
        tags.extend(self.servers.iter().map(|r| tag(P, [r.to_hex()])));
        for (name, value) in [
            (PRICE, self.price),
            (PERIODS, self.periods),
            (PERIOD, self.period),
            (BOND, self.bond),
            (TAKE_BY, self.take_by),
            (FUND_WITHIN, self.fund_within),
            (ANSWER_WITHIN, self.answer_within),
            (CHALLENGES, self.challenges),
        ] {
            tags.push(tag(name, [value.to_string()]));
        }
        tags.push(tag(UNAUDITED, [self.unaudited.as_str()]));
        (tags, self.note.clone())
    }

    fn from_parts(tags: &[Tag], content: &str) -> Result<Self, ParseError> {
        let tags = TagReader::new(tags);
        let repo: RepoCoordinate = tags.required_value(A)?.parse()?;
        let mut shards: Vec<StoredShard> = Vec::new();
        let mut blobs = std::collections::BTreeSet::new();
        for values in tags.all(SHARD) {
            let [blob, size, root] = values else {
                return Err(ParseError::TagArity {
                    tag: SHARD.into(),
                    expected: 3,
                    found: values.len(),
                });
            };
            if shards.len() == MAX_ORDER_SHARDS {
                return Err(ParseError::invalid_value(
                    SHARD,
                    blob,
                    "at most 1024 shards",
                ));
            }
            let parsed: BlobHash = parse_id(SHARD, blob)?;
            if !blobs.insert(parsed) {
                return Err(ParseError::DuplicateValue {
                    tag: SHARD.into(),
                    value: quote(blob),
                });
            }
            let size = parse_decimal(size)
                .filter(|s| (1..=MAX_SHARD_BYTES).contains(s))
                .ok_or_else(|| ParseError::invalid_value(SHARD, size, "1 to 2^32 bytes"))?;
            shards.push(StoredShard {
                blob: parsed,
                size,
                root: hash32(SHARD, root)?,
            });
        }
        if shards.is_empty() {
            return Err(ParseError::MissingTag { tag: SHARD });
        }
        Ok(Self {
            repo,
            shards,
            servers: listed_keys(&tags)?,
            price: required_number(&tags, PRICE)?,
            periods: required_number(&tags, PERIODS)?,
            period: required_number(&tags, PERIOD)?,
            bond: number(&tags, BOND)?.unwrap_or(0),
            take_by: required_number(&tags, TAKE_BY)?,
            fund_within: required_number(&tags, FUND_WITHIN)?,
            answer_within: required_number(&tags, ANSWER_WITHIN)?,
            challenges: required_number(&tags, CHALLENGES)?,
            unaudited: DefaultRule::parse(UNAUDITED, tags.required_value(UNAUDITED)?)?,
            note: note(content)?,
        })
    }
}
