//! Why an event is not a well-formed agigit event.

use agigit_hash::ParseIdError;

use crate::names::{CoordinateError, RepoIdError};
use crate::text::quote;
use crate::verify::VerifyError;
use agigit_validate::RefNameError;

/// Why an event was rejected. Every parser in this crate returns it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The bytes are not a NIP-01 event in JSON.
    #[error("not a Nostr event in JSON: {reason}")]
    Json {
        /// What the JSON parser said.
        reason: String,
    },
    /// The event's id or signature is wrong.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The event is of another kind than the parser reads.
    #[error("expected an event of kind {expected}, found kind {found}")]
    WrongKind {
        /// The kind the parser reads.
        expected: u16,
        /// The event's kind.
        found: u16,
    },
    /// A required tag is absent.
    #[error("the required tag {tag:?} is missing")]
    MissingTag {
        /// The tag's name.
        tag: &'static str,
    },
    /// A tag that may appear once appears more often.
    #[error("the tag {tag:?} appears more than once")]
    RepeatedTag {
        /// The tag's name.
        tag: String,
    },
    /// A tag has the wrong number of values.
    #[error("the tag {tag:?} must have {expected} value(s), found {found}")]
    TagArity {
        /// The tag's name.
        tag: String,
        /// How many values it must have.
        expected: usize,
        /// How many it has.
        found: usize,
    },
    /// A tag value that must be a SHA-256 hex id is not.
    #[error("the tag {tag:?} holds an invalid id: {source}")]
    InvalidId {
        /// The tag's name.
        tag: String,
        /// Why the id does not parse.
        source: ParseIdError,
    },
    /// A tag value that must be a public key is not a valid x-only secp256k1 key.
    #[error(
        "the tag {tag:?} holds {value:?}, which is not a valid public key (64 hex characters of a point on secp256k1)"
    )]
    InvalidPublicKey {
        /// The tag's name.
        tag: String,
        /// The offending value (cut to a readable length).
        value: String,
    },
    /// The `d` tag is not a valid repository id.
    #[error(transparent)]
    InvalidRepoId(#[from] RepoIdError),
    /// A ref name is not valid.
    #[error(transparent)]
    InvalidRefName(#[from] RefNameError),
    /// A repository coordinate is malformed.
    #[error(transparent)]
    InvalidCoordinate(#[from] CoordinateError),
    /// A tag value is outside what the protocol allows.
    #[error("the tag {tag:?} holds {value:?}; expected {expected}")]
    InvalidValue {
        /// The tag's name.
        tag: String,
        /// The offending value (cut to a readable length).
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A list tag names the same value twice.
    #[error("the tag {tag:?} lists {value:?} more than once")]
    DuplicateValue {
        /// The tag's name.
        tag: String,
        /// The repeated value (cut to a readable length).
        value: String,
    },
    /// The content is not what the kind requires.
    #[error("invalid content: {reason}")]
    InvalidContent {
        /// What is wrong with it.
        reason: String,
    },
}

impl ParseError {
    pub(crate) fn invalid_value(tag: &str, value: &str, expected: &'static str) -> Self {
        Self::InvalidValue {
            tag: quote(tag),
            value: quote(value),
            expected,
        }
    }
}
