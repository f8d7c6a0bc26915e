//! [`Signed`]: a protocol event together with the Nostr event that carries it, verified.

use std::collections::BTreeSet;
use std::str::FromStr;

use agigit_hash::ParseIdError;
use nostr::prelude::{Event, EventId, Kind, PublicKey, Tag, Timestamp, UnsignedEvent};

use crate::error::ParseError;
use crate::signer::{SignError, Signer};
use crate::text::quote;
use crate::verify::{NostrVerifier, Verifier};

/// A typed agigit event: how it becomes tags and content, and how it is read back.
///
/// Implemented by [`RepoAnnouncement`](crate::RepoAnnouncement), [`RepoState`](crate::RepoState),
/// [`CommitEvent`](crate::CommitEvent) and [`BlossomAuth`](crate::BlossomAuth). Sign and parse
/// through [`Signed`], which adds the signature checks.
pub trait ProtocolEvent: Sized + PartialEq {
    /// The Nostr kind of this event.
    const KIND: u16;

    /// The tags and content that carry `self`.
    fn to_parts(&self) -> (Vec<Tag>, String);

    /// Reads the tags and content of an event of [`KIND`](Self::KIND) back.
    ///
    /// # Errors
    /// [`ParseError`] when they are not well formed.
    fn from_parts(tags: &[Tag], content: &str) -> Result<Self, ParseError>;
}

/// A protocol event and the signed Nostr event that carries it, whose id and signature have been
/// verified and whose tags parse as `T`.
///
/// The only ways to get one are [`Signed::sign`] and the parsers, so holding a `Signed<T>` means
/// the checks have passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<T> {
    body: T,
    event: Event,
}

impl<T: ProtocolEvent> Signed<T> {
    /// Signs `body` with `signer`, dated `created_at`.
    ///
    /// The body must read back as itself (so every reader sees what the signer meant), and the
    /// signer's answer is not trusted: it must be the requested event and verify.
    ///
    /// # Errors
    /// [`SignError::InvalidBody`] for a body that does not make a well-formed event or reads back
    /// as something else (a repeated list value, an uppercase server name); the other
    /// [`SignError`]s when the signer fails or answers with something else.
    pub fn sign<S: Signer + ?Sized>(
        body: T,
        signer: &S,
        created_at: Timestamp,
    ) -> Result<Self, SignError> {
        let (tags, content) = body.to_parts();
        // Never publish what a reader (this crate included) would reject or read differently.
        let read_back = T::from_parts(&tags, &content).map_err(SignError::InvalidBody)?;
        if read_back != body {
            return Err(SignError::InvalidBody(ParseError::InvalidContent {
                reason: "the event would read back as a different value".to_owned(),
            }));
        }
        let unsigned = UnsignedEvent::new(
            signer.public_key(),
            created_at,
            Kind::Custom(T::KIND),
            tags,
            content,
        );
        let event = signer.sign_event(unsigned.clone())?;
        let matches = event.pubkey == unsigned.pubkey
            && event.created_at == unsigned.created_at
            && event.kind == unsigned.kind
            && event.tags == unsigned.tags
            && event.content == unsigned.content;
        if !matches || NostrVerifier.verify_event(&event).is_err() {
            return Err(SignError::Mismatch);
        }
        Ok(Self { body, event })
    }

    /// Verifies `event` (id and signature, with the default [`NostrVerifier`]) and parses it.
    ///
    /// # Errors
    /// [`ParseError`]: wrong kind, bad id or signature, or malformed tags or content.
    pub fn from_event(event: Event) -> Result<Self, ParseError> {
        Self::from_event_with(event, &NostrVerifier)
    }

    /// As [`from_event`](Self::from_event), with a chosen verifier.
    ///
    /// # Errors
    /// As [`from_event`](Self::from_event).
    pub fn from_event_with(event: Event, verifier: &dyn Verifier) -> Result<Self, ParseError> {
        let found = event.kind.as_u16();
        if found != T::KIND {
            return Err(ParseError::WrongKind {
                expected: T::KIND,
                found,
            });
        }
        verifier.verify_event(&event)?;
        let body = T::from_parts(event.tags.as_ref(), &event.content)?;
        Ok(Self { body, event })
    }

    /// Parses a NIP-01 event from JSON, verifies it and reads it as `T`.
    ///
    /// # Errors
    /// [`ParseError::Json`] when the bytes are not an event, and otherwise as
    /// [`from_event`](Self::from_event).
    pub fn from_json(json: impl AsRef<[u8]>) -> Result<Self, ParseError> {
        let event = Event::from_json(json).map_err(|e| ParseError::Json {
            reason: quote(&e.to_string()),
        })?;
        Self::from_event(event)
    }
}

impl<T> Signed<T> {
    /// The typed content.
    pub fn body(&self) -> &T {
        &self.body
    }

    /// The Nostr event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The typed content and the Nostr event.
    pub fn into_parts(self) -> (T, Event) {
        (self.body, self.event)
    }

    /// The Nostr event.
    pub fn into_event(self) -> Event {
        self.event
    }

    /// The key that signed it.
    pub fn author(&self) -> PublicKey {
        self.event.pubkey
    }

    /// When the author says it was made.
    pub fn created_at(&self) -> Timestamp {
        self.event.created_at
    }

    /// The event id.
    pub fn id(&self) -> EventId {
        self.event.id
    }

    /// The event as compact NIP-01 JSON.
    pub fn to_json(&self) -> String {
        self.event.as_json()
    }
}

/// Reading an event's tags by name, with the protocol's cardinality rules.
pub(crate) struct TagReader<'a> {
    tags: &'a [Tag],
}

impl<'a> TagReader<'a> {
    pub(crate) fn new(tags: &'a [Tag]) -> Self {
        Self { tags }
    }

    /// The values (after the name) of every tag called `name`, in order.
    pub(crate) fn all(&self, name: &'a str) -> impl Iterator<Item = &'a [String]> + 'a {
        self.tags
            .iter()
            .filter_map(move |tag| match tag.as_slice().split_first() {
                Some((first, values)) if first == name => Some(values),
                _ => None,
            })
    }

    /// The values of the tag called `name`, which may appear at most once.
    pub(crate) fn at_most_one(&self, name: &'a str) -> Result<Option<&'a [String]>, ParseError> {
        let mut found = self.all(name);
        let first = found.next();
        if found.next().is_some() {
            return Err(ParseError::RepeatedTag {
                tag: name.to_owned(),
            });
        }
        Ok(first)
    }

    /// The single value of the tag called `name`, which may appear at most once.
    pub(crate) fn optional_value(&self, name: &'a str) -> Result<Option<&'a str>, ParseError> {
        self.at_most_one(name)?
            .map(|values| single(name, values))
            .transpose()
    }

    /// Every tag called `name`, each with one id, none repeated, in order.
    pub(crate) fn unique_ids<T>(&self, name: &'a str) -> Result<Vec<T>, ParseError>
    where
        T: FromStr<Err = ParseIdError> + Ord + Copy,
    {
        let mut seen = BTreeSet::new();
        self.all(name)
            .map(|values| {
                let value = single(name, values)?;
                let id = parse_id(name, value)?;
                if !seen.insert(id) {
                    return Err(ParseError::DuplicateValue {
                        tag: quote(name),
                        value: quote(value),
                    });
                }
                Ok(id)
            })
            .collect()
    }

    /// The single value of the tag called `name`, which must appear exactly once.
    pub(crate) fn required_value(&self, name: &'static str) -> Result<&'a str, ParseError> {
        self.optional_value(name)?
            .ok_or(ParseError::MissingTag { tag: name })
    }
}

/// The one value of a tag that must have exactly one.
pub(crate) fn single<'a>(name: &str, values: &'a [String]) -> Result<&'a str, ParseError> {
    match values {
        [value] => Ok(value),
        _ => Err(ParseError::TagArity {
            tag: quote(name),
            expected: 1,
            found: values.len(),
        }),
    }
}

/// Parses a tag value as an id ([`agigit_hash::ObjectId`] or [`agigit_hash::BlobHash`]).
pub(crate) fn parse_id<T: FromStr<Err = ParseIdError>>(
    tag: &str,
    value: &str,
) -> Result<T, ParseError> {
    value.parse().map_err(|source| ParseError::InvalidId {
        tag: quote(tag),
        source,
    })
}

/// A tag from a name and values.
pub(crate) fn tag<I, S>(name: &str, values: I) -> Tag
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Tag::custom(name, values)
}
