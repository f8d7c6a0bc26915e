//! Kind 30717: the repository announcement.

use std::collections::BTreeSet;

use agigit_hash::ObjectId;
use nostr::prelude::{PublicKey, RelayUrl, Tag, Url};

use crate::error::ParseError;
use crate::kinds;
use crate::names::{RepoCoordinate, RepoId, parse_public_key};
use crate::signed::{ProtocolEvent, TagReader, parse_id, tag};
use crate::text::quote;

/// Who may read a repository's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Content is stored in the clear; anyone may fetch it.
    Public,
    /// Content is encrypted before it leaves the owner's machine; only named readers can open it.
    Private,
}

impl Visibility {
    /// The tag value: `public` or `private`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// The foundation a fork was made from: a repository and one of its commits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ForkOf {
    /// The base repository.
    pub repo: RepoCoordinate,
    /// The commit of the base repository the fork started from.
    pub commit: ObjectId,
}

/// A repository announcement (kind 30717, addressable by its `d` tag): what the repository is,
/// who maintains it and where its events and blobs live.
///
/// Tags (see `docs/format.md`): `d`, `visibility` (required); `name`, `description`, `license`,
/// `fork` (+ an `a` tag of the same coordinate, so relays can index forks), `maintainers`,
/// `relays`, `blossom` (each at most once); `t`, one per topic (NIP-24 hashtags, so that
/// relays index them); `size` (at most once). Unknown tags are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoAnnouncement {
    /// The repository id (`d` tag).
    pub repo: RepoId,
    /// A human-readable name.
    pub name: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// An SPDX licence expression.
    pub license: Option<String>,
    /// Public or private.
    pub visibility: Visibility,
    /// The repository and commit this one forks, if any.
    pub fork_of: Option<ForkOf>,
    /// Keys besides the owner's that may move branches.
    pub maintainers: Vec<PublicKey>,
    /// Relays that hold the repository's events.
    pub relays: Vec<RelayUrl>,
    /// Blossom servers that hold its blobs.
    pub blob_servers: Vec<Url>,
    /// Topics (`t` tags): at most [`MAX_TOPICS`], each 1–64 bytes of lowercase letters,
    /// digits, `-`, `_` and `.` (or other non-ASCII letters), no repeats.
    pub topics: Vec<String>,
    /// The size in bytes of the files of the default branch when the owner last pushed it
    /// (`size` tag): what a search shows, as a catalogue shows a model's size. The owner's
    /// word, not checked against the data.
    pub size: Option<u64>,
}

/// The most topics an announcement carries.
pub const MAX_TOPICS: usize = 32;

/// Whether `topic` may be a topic: 1–64 bytes, no upper-case ASCII, whitespace, control
/// character or punctuation but `-`, `_` and `.`.
pub fn is_topic(topic: &str) -> bool {
    (1..=64).contains(&topic.len())
        && topic.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '-' | '_' | '.')
                || (!c.is_ascii() && c.is_alphanumeric() && !c.is_uppercase())
        })
}

impl RepoAnnouncement {
    /// An announcement with only the required fields set.
    pub fn new(repo: RepoId, visibility: Visibility) -> Self {
        Self {
            repo,
            name: None,
            description: None,
            license: None,
            visibility,
            fork_of: None,
            maintainers: Vec::new(),
            relays: Vec::new(),
            blob_servers: Vec::new(),
            topics: Vec::new(),
            size: None,
        }
    }

    /// The coordinate of this repository when announced by `owner`.
    pub fn coordinate(&self, owner: PublicKey) -> RepoCoordinate {
        RepoCoordinate::new(owner, self.repo.clone())
    }
}

/// The announcement of `repo` that counts among `events`: the newest (`created_at`, ties to the
/// lowest event id, as for states) valid announcement its owner signed with its `d` tag. Events
/// of other kinds, other authors or other repositories, and events that do not verify, are
/// skipped — a relay cannot make anyone but the owner name the maintainers.
pub fn newest_announcement(
    repo: &RepoCoordinate,
    events: impl IntoIterator<Item = nostr::prelude::Event>,
) -> Option<crate::Signed<RepoAnnouncement>> {
    events
        .into_iter()
        .filter(|e| e.pubkey == repo.owner)
        .filter_map(|e| crate::Signed::<RepoAnnouncement>::from_event(e).ok())
        .filter(|a| a.body().repo == repo.id)
        .max_by_key(|a| (a.created_at(), std::cmp::Reverse(a.id())))
}

/// The announcement that counts of each repository among `events`: per coordinate, the newest
/// valid one (`created_at`, ties to the lowest event id), as [`newest_announcement`] picks for
/// one. Events that are not valid announcements are skipped. In no particular order.
pub fn newest_announcements(
    events: impl IntoIterator<Item = nostr::prelude::Event>,
) -> Vec<crate::Signed<RepoAnnouncement>> {
    let mut newest: std::collections::HashMap<RepoCoordinate, crate::Signed<RepoAnnouncement>> =
        std::collections::HashMap::new();
    for a in events
        .into_iter()
        .filter_map(|e| crate::Signed::<RepoAnnouncement>::from_event(e).ok())
    {
        let key = a.body().coordinate(a.author());
        let rank =
            |x: &crate::Signed<RepoAnnouncement>| (x.created_at(), std::cmp::Reverse(x.id()));
        if newest.get(&key).is_none_or(|b| rank(b) < rank(&a)) {
            newest.insert(key, a);
        }
    }
    newest.into_values().collect()
}

const D: &str = "d";
const NAME: &str = "name";
const DESCRIPTION: &str = "description";
const LICENSE: &str = "license";
const VISIBILITY: &str = "visibility";
const FORK: &str = "fork";
const MAINTAINERS: &str = "maintainers";
const RELAYS: &str = "relays";
const BLOSSOM: &str = "blossom";
const TOPIC: &str = "t";
const SIZE: &str = "size";

impl ProtocolEvent for RepoAnnouncement {
    const KIND: u16 = kinds::REPO_ANNOUNCEMENT;

    fn to_parts(&self) -> (Vec<Tag>, String) {
        let mut tags = vec![tag(D, [self.repo.as_str()])];
        let optional = [
            (NAME, &self.name),
            (DESCRIPTION, &self.description),
            (LICENSE, &self.license),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                tags.push(tag(name, [value.as_str()]));
            }
        }
        tags.push(tag(VISIBILITY, [self.visibility.as_str()]));
        if let Some(fork) = &self.fork_of {
            let coordinate = fork.repo.to_string();
            tags.push(tag(FORK, [coordinate.clone(), fork.commit.to_string()]));
            tags.push(tag("a", [coordinate]));
        }
        if !self.maintainers.is_empty() {
            tags.push(tag(
                MAINTAINERS,
                self.maintainers.iter().map(PublicKey::to_hex),
            ));
        }
        if !self.relays.is_empty() {
            tags.push(tag(RELAYS, self.relays.iter().map(RelayUrl::to_string)));
        }
        if !self.blob_servers.is_empty() {
            tags.push(tag(BLOSSOM, self.blob_servers.iter().map(Url::to_string)));
        }
        tags.extend(self.topics.iter().map(|t| tag(TOPIC, [t.as_str()])));
        if let Some(size) = self.size {
            tags.push(tag(SIZE, [size.to_string()]));
        }
        (tags, String::new())
    }

    fn from_parts(tags: &[Tag], _content: &str) -> Result<Self, ParseError> {
        let tags = TagReader::new(tags);
        let repo = RepoId::new(tags.required_value(D)?)?;
        let visibility = match tags.required_value(VISIBILITY)? {
            "public" => Visibility::Public,
            "private" => Visibility::Private,
            other => {
                return Err(ParseError::invalid_value(
                    VISIBILITY,
                    other,
                    "\"public\" or \"private\"",
                ));
            }
        };
        let fork_of = match tags.at_most_one(FORK)? {
            None => None,
            Some([coordinate, commit]) => Some(ForkOf {
                repo: coordinate.parse()?,
                commit: parse_id(FORK, commit)?,
            }),
            Some(values) => {
                return Err(ParseError::TagArity {
                    tag: FORK.into(),
                    expected: 2,
                    found: values.len(),
                });
            }
        };
        let maintainers = unique_list(&tags, MAINTAINERS, |value| {
            parse_public_key(value).ok_or_else(|| ParseError::InvalidPublicKey {
                tag: MAINTAINERS.into(),
                value: quote(value),
            })
        })?;
        let relays = unique_list(&tags, RELAYS, |value| {
            stable_parse(value, |v| RelayUrl::parse(v).ok()).ok_or_else(|| {
                ParseError::invalid_value(RELAYS, value, "a ws:// or wss:// relay URL")
            })
        })?;
        let blob_servers = unique_list(&tags, BLOSSOM, |value| {
            let http = |v: &str| {
                Url::parse(v)
                    .ok()
                    .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            };
            stable_parse(value, http).ok_or_else(|| {
                ParseError::invalid_value(BLOSSOM, value, "an http:// or https:// URL")
            })
        })?;
        let mut topics: Vec<String> = Vec::new();
        for values in tags.all(TOPIC) {
            let [topic] = values else {
                return Err(ParseError::TagArity {
                    tag: TOPIC.into(),
                    expected: 1,
                    found: values.len(),
                });
            };
            if !is_topic(topic) {
                return Err(ParseError::invalid_value(
                    TOPIC,
                    topic,
                    "1 to 64 bytes of lowercase letters, digits, '-', '_' or '.'",
                ));
            }
            if topics.contains(topic) {
                return Err(ParseError::DuplicateValue {
                    tag: TOPIC.into(),
                    value: quote(topic),
                });
            }
            if topics.len() == MAX_TOPICS {
                return Err(ParseError::invalid_value(TOPIC, topic, "at most 32 topics"));
            }
            topics.push(topic.clone());
        }
        let size = match tags.optional_value(SIZE)? {
            None => None,
            Some(v) => Some(crate::text::parse_decimal(v).ok_or_else(|| {
                ParseError::invalid_value(
                    SIZE,
                    v,
                    "a byte count in decimal, no sign or leading zero",
                )
            })?),
        };
        Ok(Self {
            repo,
            name: tags.optional_value(NAME)?.map(str::to_owned),
            description: tags.optional_value(DESCRIPTION)?.map(str::to_owned),
            license: tags.optional_value(LICENSE)?.map(str::to_owned),
            visibility,
            fork_of,
            maintainers,
            relays,
            blob_servers,
            topics,
            size,
        })
    }
}

/// Parses `value`, and accepts it only if its normalized text parses back to the same value.
///
/// URL parsers normalize (`ws:R/x` becomes `ws://r/x`), and a normalized form is not always
/// accepted again; an announcement must read back as what it says, so such values are refused.
fn stable_parse<T: PartialEq + core::fmt::Display>(
    value: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let parsed = parse(value)?;
    (parse(&parsed.to_string()).as_ref() == Some(&parsed)).then_some(parsed)
}

/// The values of a list tag that appears at most once, each parsed, with no value twice.
///
/// Repeats are found on the parsed value's canonical text (`WSS://A.org` and `wss://a.org` are
/// the same relay), so what parses here also parses after being written back.
fn unique_list<T: core::fmt::Display>(
    tags: &TagReader<'_>,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    let Some(values) = tags.at_most_one(name)? else {
        return Ok(Vec::new());
    };
    let mut seen = BTreeSet::new();
    values
        .iter()
        .map(|value| {
            let parsed = parse(value)?;
            if !seen.insert(parsed.to_string()) {
                return Err(ParseError::DuplicateValue {
                    tag: name.into(),
                    value: quote(value),
                });
            }
            Ok(parsed)
        })
        .collect()
}
