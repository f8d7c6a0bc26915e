//! Kind 24242: Blossom authorization tokens (BUD-11), sent as `Authorization: Nostr <base64>`.

use agigit_hash::BlobHash;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use nostr::prelude::{Tag, Timestamp};

use crate::error::ParseError;
use crate::kinds;
use crate::signed::{ProtocolEvent, Signed, TagReader, single, tag};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Download blobs.
    Get,
    /// Upload blobs.
    Upload,
    /// List an uploader's blobs.
    List,
    /// Delete blobs.
    Delete,
}

impl Verb {
    /// The `t` tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Upload => "upload",
            Self::List => "list",
            Self::Delete => "delete",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "get" => Self::Get,
            "upload" => Self::Upload,
            "list" => Self::List,
            "delete" => Self::Delete,
            _ => return None,
        })
    }

    /// Whether a token for this verb must name the blobs it applies to (`x` tags).
    pub fn requires_blob_hash(self) -> bool {
        matches!(self, Self::Upload | Self::Delete)
    }
}

/// A Blossom authorization token (kind 24242).
///
/// Tags: `["t", <verb>]`, `["expiration", <unix seconds>]`, zero or more `["x", <sha256>]` naming
/// the blobs it covers, zero or more `["server", <host>]` naming the servers it is valid on.
/// The content is a human-readable description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlossomAuth {
    /// What it allows.
    pub verb: Verb,
    /// When it stops being valid.
    pub expiration: Timestamp,
    /// The blobs it covers; empty means any (not allowed for upload and delete).
    pub blobs: Vec<BlobHash>,
    /// The server hosts it is valid on (lowercase); empty means any.
    pub servers: Vec<String>,
    /// A description for the user who signs it.
    pub description: String,
}

impl BlossomAuth {
    /// A token for `verb` that expires at `expiration`, covering any blob on any server.
    pub fn new(verb: Verb, expiration: Timestamp) -> Self {
        Self {
            verb,
            expiration,
            blobs: Vec::new(),
            servers: Vec::new(),
            description: String::new(),
        }
    }

    /// Adds a blob the token covers.
    #[must_use]
    pub fn with_blob(mut self, blob: BlobHash) -> Self {
        self.blobs.push(blob);
        self
    }

    /// Restricts the token to a server host.
    #[must_use]
    pub fn with_server(mut self, host: impl Into<String>) -> Self {
        self.servers.push(host.into().to_ascii_lowercase());
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
}

/// The request a token is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRequest<'a> {
    /// What the request does.
    pub verb: Verb,
    /// The blob it touches, if any.
    pub blob: Option<&'a BlobHash>,
    /// The host of the server checking the token (compared case-insensitively).
    pub server: &'a str,
    /// The server's clock.
    pub now: Timestamp,
}

/// How far in the future a token's `created_at` may be, for clock skew (seconds).
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// Why a token does not authorize a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The header or the event is malformed, or its signature is invalid.
    #[error("invalid authorization: {0}")]
    Invalid(#[from] ParseError),
    /// The header does not start with `Nostr `.
    #[error("the Authorization header must be \"Nostr <base64 event>\"")]
    Scheme,
    /// The token has expired.
    #[error("the authorization expired at {expiration} (now {now}): sign a new one")]
    Expired {
        /// Its `expiration`.
        expiration: Timestamp,
        /// The server's clock.
        now: Timestamp,
    },
    /// The token is dated in the future.
    #[error("the authorization is dated {created_at}, after now ({now}): check the clock")]
    FromTheFuture {
        /// Its `created_at`.
        created_at: Timestamp,
        /// The server's clock.
        now: Timestamp,
    },
    /// The token is for another verb.
    #[error("the authorization is for {found:?}, not {expected:?}")]
    WrongVerb {
        /// The request's verb.
        expected: Verb,
        /// The token's verb.
        found: Verb,
    },
    /// The token names blobs, and not this one, or names none where it must.
    #[error("the authorization does not cover blob {blob}")]
    BlobNotCovered {
        /// The request's blob.
        blob: BlobHash,
    },
    /// An upload or delete request without a blob hash to check against.
    #[error("an upload or delete must name the blob it touches")]
    MissingBlob,
    /// The token is restricted to other servers.
    #[error("the authorization is not valid on server {server:?}")]
    WrongServer {
        /// The checking server's host.
        server: String,
    },
}

const T: &str = "t";
const EXPIRATION: &str = "expiration";
const X: &str = "x";
const SERVER: &str = "server";

impl ProtocolEvent for BlossomAuth {
    const KIND: u16 = kinds::BLOSSOM_AUTH;

    fn to_parts(&self) -> (Vec<Tag>, String) {
        let mut tags = vec![
            tag(T, [self.verb.as_str()]),
            tag(EXPIRATION, [self.expiration.as_secs().to_string()]),
        ];
        tags.extend(self.blobs.iter().map(|b| tag(X, [b.to_string()])));
        tags.extend(self.servers.iter().map(|s| tag(SERVER, [s.as_str()])));
        (tags, self.description.clone())
    }

    fn from_parts(tags: &[Tag], content: &str) -> Result<Self, ParseError> {
        let reader = TagReader::new(tags);
        let verb_value = reader.required_value(T)?;
        let verb = Verb::parse(verb_value).ok_or_else(|| {
            ParseError::invalid_value(T, verb_value, "one of get, upload, list, delete")
        })?;
        let expiration_value = reader.required_value(EXPIRATION)?;
        let expiration = parse_unix_seconds(expiration_value).ok_or_else(|| {
            ParseError::invalid_value(EXPIRATION, expiration_value, "unix seconds")
        })?;
        let blobs = reader.unique_ids(X)?;
        let servers = reader
            .all(SERVER)
            .map(|values| single(SERVER, values).map(str::to_ascii_lowercase))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            verb,
            expiration,
            blobs,
            servers,
            description: content.to_owned(),
        })
    }
}

/// Decimal seconds without sign, leading zeros or surrounding space.
fn parse_unix_seconds(value: &str) -> Option<Timestamp> {
    crate::text::parse_decimal(value).map(Timestamp::from_secs)
}

/// Decoding accepts padding or none.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
/// Base64 (RFC 4648 §4), padded or not.
const STANDARD_ANY: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
/// Base64url (RFC 4648 §5), padded or not.
const URL_SAFE_ANY: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

impl Signed<BlossomAuth> {
    /// The `Authorization` header value: `Nostr <base64url of the event JSON, unpadded>`, as
    /// BUD-11 writes it.
    pub fn to_authorization_header(&self) -> String {
        format!("Nostr {}", URL_SAFE_NO_PAD.encode(self.to_json()))
    }

    /// Reads and verifies an `Authorization` header value (without checking it against a
    /// request; see [`authorize`](Self::authorize)). The event may be in base64url (as BUD-11
    /// says) or in base64, padded or not: clients send all four.
    ///
    /// # Errors
    /// [`AuthError::Scheme`] for another scheme, [`AuthError::Invalid`] for bad base64, bad JSON
    /// or an invalid event.
    pub fn from_authorization_header(value: &str) -> Result<Self, AuthError> {
        let encoded = value.strip_prefix("Nostr ").ok_or(AuthError::Scheme)?;
        let encoded = encoded.trim();
        let engine = if encoded.contains(['-', '_']) {
            &URL_SAFE_ANY
        } else {
            &STANDARD_ANY
        };
        let json = engine.decode(encoded).map_err(|e| ParseError::Json {
            reason: format!("the authorization is not base64: {e}"),
        })?;
        Ok(Self::from_json(json)?)
    }

    /// Checks everything of `request` but its blob, which is not known yet (an upload whose body
    /// has not been read): signature (checked when the token was parsed), dates, verb and server;
    /// a verb that must name its blob needs at least one `x` tag. The blob is checked later
    /// against [`covers`](Self::covers), before anything is kept.
    ///
    /// # Errors
    /// [`AuthError`] naming the first check that fails.
    pub fn authorize_before_blob(&self, request: &AuthRequest<'_>) -> Result<(), AuthError> {
        let unnamed = AuthRequest {
            blob: None,
            ..*request
        };
        match self.authorize(&unnamed) {
            Err(AuthError::MissingBlob) if !self.body().blobs.is_empty() => {
                // `authorize` refuses a hash-naming verb without a blob; the body will name it.
                self.authorize(&AuthRequest {
                    blob: self.body().blobs.first(),
                    ..*request
                })
            }
            other => other,
        }
    }

    /// Whether this token covers blob `blob` (it names it, or names none for a verb that need
    /// not).
    pub fn covers(&self, verb: Verb, blob: &BlobHash) -> bool {
        let auth = self.body();
        auth.blobs.contains(blob) || (auth.blobs.is_empty() && !verb.requires_blob_hash())
    }

    /// Checks that this token authorizes `request`.
    ///
    /// # Errors
    /// [`AuthError`] naming the first check that fails.
    pub fn authorize(&self, request: &AuthRequest<'_>) -> Result<(), AuthError> {
        let auth = self.body();
        let now = request.now;
        if self.created_at().as_secs() > now.as_secs().saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(AuthError::FromTheFuture {
                created_at: self.created_at(),
                now,
            });
        }
        if auth.expiration <= now {
            return Err(AuthError::Expired {
                expiration: auth.expiration,
                now,
            });
        }
        if auth.verb != request.verb {
            return Err(AuthError::WrongVerb {
                expected: request.verb,
                found: auth.verb,
            });
        }
        match request.blob {
            Some(blob) => {
                // A token without `x` tags covers any blob, except for verbs that must name it.
                let restricted = !auth.blobs.is_empty() || request.verb.requires_blob_hash();
                if restricted && !auth.blobs.contains(blob) {
                    return Err(AuthError::BlobNotCovered { blob: *blob });
                }
            }
            None if request.verb.requires_blob_hash() => return Err(AuthError::MissingBlob),
            None => {}
        }
        let server = request.server.to_ascii_lowercase();
        if !auth.servers.is_empty() && !auth.servers.contains(&server) {
            return Err(AuthError::WrongServer { server });
        }
        Ok(())
    }
}
