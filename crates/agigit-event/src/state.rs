//! Kind 30718: the repository state (branch pointers), and choosing the one state that counts.

use std::collections::{BTreeMap, BTreeSet};

use agigit_hash::ObjectId;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nostr::prelude::{Event, EventId, PublicKey, Tag};

use crate::announcement::RepoAnnouncement;
use crate::error::ParseError;
use crate::kinds;
use crate::names::{RepoCoordinate, RepoId};
use crate::signed::{ProtocolEvent, Signed, TagReader, parse_id, single, tag};
use crate::text::quote;
use agigit_validate::RefName;

/// A repository's branch pointers (kind 30718, addressable by its `d` tag).
///
/// Tags: `["d", <repository id>]`, one `["refs/…", <commit id hex>]` per ref, optionally
/// `["HEAD", "ref: refs/heads/<branch>"]`, and one `["note", "refs/tags/<name>", <message>]` per
/// annotated tag (a tag ref of this state; the message at most 4096 bytes, no control
/// characters but newline and tab). Unknown tags are ignored. The content is empty for a
/// public repository; for a private one it is the padded base64 of the wrapped-key envelope
/// (`agigit-crypt`'s `Envelope` bytes, opaque here), and the ref ids are the opaque ids the
/// client publishes in place of commit ids; its branch and tag names, which would be in the clear
/// as refs, travel sealed in one `["sealed-refs", <key epoch>, <padded base64>]` tag
/// ([`SealedRefs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoState {
    /// The repository id (`d` tag).
    pub repo: RepoId,
    /// Every ref and the commit it points at.
    pub refs: BTreeMap<RefName, ObjectId>,
    /// The branch `HEAD` names, if any.
    pub head: Option<RefName>,
    /// For a private repository, the content key wrapped for each reader (opaque bytes here).
    pub keys: Option<Vec<u8>>,
    /// The id of the state event this one replaces (`["prev", <event id>]`): states chain, so a
    /// reader can tell a newer state from a fork in the state history.
    pub prev: Option<EventId>,
    /// Annotated tags' messages, by tag ref (each one of `refs`' `refs/tags/…`), signed with the
    /// state by the owner.
    pub notes: BTreeMap<RefName, String>,
    /// For a private repository, its ref directory (branch and tag names, tags' commits and
    /// messages) sealed under the content key of an epoch: opaque bytes here.
    pub sealed_refs: Option<SealedRefs>,
}

/// A private repository's ref directory as a state carries it: sealed bytes, and the key epoch
/// they were sealed under. What they hold is the client's business (agigit's facade).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRefs {
    /// The content key's epoch.
    pub epoch: u32,
    /// The sealed directory (non-empty).
    pub sealed: Vec<u8>,
}

/// The longest annotated tag message a state carries.
pub const MAX_NOTE_BYTES: usize = 4096;

/// Whether `message` can be an annotated tag's message: 1–[`MAX_NOTE_BYTES`] bytes, no control
/// characters but newline and tab.
pub fn is_valid_note(message: &str) -> bool {
    !message.is_empty()
        && message.len() <= MAX_NOTE_BYTES
        && !message
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
}

impl RepoState {
    /// A state with no refs and no `HEAD`.
    pub fn new(repo: RepoId) -> Self {
        Self {
            repo,
            refs: BTreeMap::new(),
            head: None,
            keys: None,
            prev: None,
            notes: BTreeMap::new(),
            sealed_refs: None,
        }
    }

    /// The commit `HEAD` resolves to, if it names a branch that exists.
    pub fn head_commit(&self) -> Option<ObjectId> {
        self.head
            .as_ref()
            .and_then(|head| self.refs.get(head))
            .copied()
    }
}

const D: &str = "d";
const HEAD: &str = "HEAD";
const PREV: &str = "prev";
const NOTE: &str = "note";
const SEALED_REFS: &str = "sealed-refs";
const SYMREF_PREFIX: &str = "ref: ";

impl ProtocolEvent for RepoState {
    const KIND: u16 = kinds::REPO_STATE;

    fn to_parts(&self) -> (Vec<Tag>, String) {
        let mut tags = vec![tag(D, [self.repo.as_str()])];
        tags.extend(
            self.refs
                .iter()
                .map(|(name, id)| tag(name.as_str(), [id.to_string()])),
        );
        if let Some(head) = &self.head {
            tags.push(tag(HEAD, [format!("{SYMREF_PREFIX}{head}")]));
        }
        if let Some(prev) = &self.prev {
            tags.push(tag(PREV, [prev.to_hex()]));
        }
        tags.extend(
            self.notes
                .iter()
                .map(|(name, message)| tag(NOTE, [name.as_str(), message.as_str()])),
        );
        if let Some(sealed) = &self.sealed_refs {
            tags.push(tag(
                SEALED_REFS,
                [sealed.epoch.to_string(), STANDARD.encode(&sealed.sealed)],
            ));
        }
        let content = self
            .keys
            .as_ref()
            .map_or_else(String::new, |k| STANDARD.encode(k));
        (tags, content)
    }

    fn from_parts(tags: &[Tag], content: &str) -> Result<Self, ParseError> {
        let reader = TagReader::new(tags);
        let repo = RepoId::new(reader.required_value(D)?)?;
        let head = match reader.optional_value(HEAD)? {
            None => None,
            Some(value) => {
                let target = value
                    .strip_prefix(SYMREF_PREFIX)
                    .and_then(|name| RefName::new(name).ok())
                    .filter(|name| name.branch_name().is_some());
                Some(target.ok_or_else(|| {
                    ParseError::invalid_value(HEAD, value, "\"ref: refs/heads/<branch>\"")
                })?)
            }
        };
        let prev = match reader.optional_value(PREV)? {
            None => None,
            Some(value) => {
                let id: ObjectId = parse_id(PREV, value)?;
                Some(EventId::from_byte_array(*id.as_bytes()))
            }
        };
        let mut refs = BTreeMap::new();
        for t in tags {
            let Some((name, values)) = t.as_slice().split_first() else {
                continue;
            };
            if !name.starts_with("refs/") {
                continue;
            }
            let ref_name = RefName::new(name.as_str())?;
            let id = parse_id(name, single(name, values)?)?;
            if refs.insert(ref_name, id).is_some() {
                return Err(ParseError::RepeatedTag { tag: quote(name) });
            }
        }
        let mut notes = BTreeMap::new();
        for t in tags {
            let fields = t.as_slice();
            if fields.first().map(String::as_str) != Some(NOTE) {
                continue;
            }
            let [_, name, message] = fields else {
                return Err(ParseError::invalid_value(
                    NOTE,
                    &fields[1..].join(" "),
                    "a tag ref and its message",
                ));
            };
            let ref_name = RefName::new(name.as_str())?;
            if !name.starts_with("refs/tags/") || !refs.contains_key(&ref_name) {
                return Err(ParseError::invalid_value(
                    NOTE,
                    name,
                    "a tag ref (refs/tags/…) of this state",
                ));
            }
            if !is_valid_note(message) {
                return Err(ParseError::invalid_value(
                    NOTE,
                    message,
                    "1–4096 bytes, no control characters but newline and tab",
                ));
            }
            if notes.insert(ref_name, message.clone()).is_some() {
                return Err(ParseError::RepeatedTag { tag: quote(name) });
            }
        }
        let sealed_refs = match reader.at_most_one(SEALED_REFS)? {
            None => None,
            Some(values) => Some(parse_sealed_refs(values)?),
        };
        let keys = if content.is_empty() {
            None
        } else {
            let bytes = STANDARD
                .decode(content)
                .map_err(|e| ParseError::InvalidContent {
                    reason: format!("the state's key envelope is not padded base64: {e}"),
                })?;
            if bytes.is_empty() {
                return Err(ParseError::InvalidContent {
                    reason: "the state's key envelope is empty".to_owned(),
                });
            }
            Some(bytes)
        };
        Ok(Self {
            repo,
            refs,
            head,
            keys,
            prev,
            notes,
            sealed_refs,
        })
    }
}

/// `["sealed-refs", <epoch>, <padded base64 of non-empty bytes>]`.
fn parse_sealed_refs(values: &[String]) -> Result<SealedRefs, ParseError> {
    let expected = "a key epoch and the padded base64 of the sealed ref directory";
    let [epoch, sealed] = values else {
        return Err(ParseError::invalid_value(
            SEALED_REFS,
            &values.join(" "),
            expected,
        ));
    };
    // Decimal digits only: `u32::from_str` would take a leading '+'.
    let epoch = Some(epoch)
        .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|e| e.parse::<u32>().ok())
        .ok_or_else(|| ParseError::invalid_value(SEALED_REFS, epoch, expected))?;
    let sealed = STANDARD
        .decode(sealed)
        .ok()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ParseError::invalid_value(SEALED_REFS, sealed, expected))?;
    Ok(SealedRefs { epoch, sealed })
}

/// Why a state event was not chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IgnoreReason {
    /// It is not a valid state event (bad signature, malformed tags, wrong kind).
    #[error("invalid: {0}")]
    Invalid(#[from] ParseError),
    /// It is a state of another repository (another `d` tag).
    #[error("it is the state of repository {found:?}")]
    OtherRepository {
        /// Its `d` tag.
        found: RepoId,
    },
    /// Its author is neither the owner nor a listed maintainer.
    #[error("its author {author} is neither the owner nor a maintainer")]
    NotAuthorized {
        /// The author's key.
        author: PublicKey,
    },
    /// A newer (or equally new with a lower id) valid state exists.
    #[error("superseded by {by}")]
    Superseded {
        /// The state that won.
        by: EventId,
    },
}

/// An event left out of the resolution, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The event's claimed id.
    pub event: EventId,
    /// Why it was left out.
    pub reason: IgnoreReason,
}

/// The outcome of [`resolve_state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateResolution {
    /// The state that counts, if any valid one was found.
    pub current: Option<Signed<RepoState>>,
    /// Every other distinct event, with the reason it did not count.
    pub ignored: Vec<Ignored>,
}

/// Picks the state of `repo` that counts among `events`: the newest (`created_at`) valid state
/// event signed by the owner or one of `maintainers`, ties broken by the lowest event id (NIP-01).
///
/// Events are verified here; the same event received twice (from two relays) counts once.
pub fn resolve_state(
    repo: &RepoCoordinate,
    maintainers: &[PublicKey],
    events: impl IntoIterator<Item = Event>,
) -> StateResolution {
    let mut seen = BTreeSet::new();
    let mut ignored = Vec::new();
    let mut current: Option<Signed<RepoState>> = None;
    for event in events {
        if !seen.insert(event.id) {
            continue;
        }
        let id = event.id;
        let author = event.pubkey;
        let state = match Signed::<RepoState>::from_event(event) {
            Ok(state) => state,
            Err(e) => {
                ignored.push(Ignored {
                    event: id,
                    reason: e.into(),
                });
                continue;
            }
        };
        if state.body().repo != repo.id {
            let found = state.body().repo.clone();
            ignored.push(Ignored {
                event: id,
                reason: IgnoreReason::OtherRepository { found },
            });
            continue;
        }
        if author != repo.owner && !maintainers.contains(&author) {
            ignored.push(Ignored {
                event: id,
                reason: IgnoreReason::NotAuthorized { author },
            });
            continue;
        }
        let loser = match current.take() {
            None => {
                current = Some(state);
                continue;
            }
            Some(best) => {
                let newer = (state.created_at(), std::cmp::Reverse(state.id()))
                    > (best.created_at(), std::cmp::Reverse(best.id()));
                if newer {
                    current = Some(state);
                    best
                } else {
                    current = Some(best);
                    state
                }
            }
        };
        let by = current.as_ref().map_or(id, Signed::id);
        ignored.push(Ignored {
            event: loser.id(),
            reason: IgnoreReason::Superseded { by },
        });
    }
    // The `by` of earlier losers may name a state that itself lost later: point all at the winner.
    if let Some(winner) = &current {
        for entry in &mut ignored {
            if let IgnoreReason::Superseded { by } = &mut entry.reason {
                *by = winner.id();
            }
        }
    }
    StateResolution { current, ignored }
}

impl Signed<RepoAnnouncement> {
    /// [`resolve_state`] for this announcement's repository, with its owner and maintainers.
    pub fn resolve_state(&self, events: impl IntoIterator<Item = Event>) -> StateResolution {
        let repo = self.body().coordinate(self.author());
        resolve_state(&repo, &self.body().maintainers, events)
    }
}
