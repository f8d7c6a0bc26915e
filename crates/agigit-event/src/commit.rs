//! Kind 1717: a commit.

use agigit_hash::{BlobHash, ObjectId};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nostr::prelude::Tag;

use crate::error::ParseError;
use crate::kinds;
use crate::names::RepoCoordinate;
use crate::signed::{ProtocolEvent, TagReader, parse_id, tag};
use crate::text::quote;

/// A commit event (kind 1717, regular).
///
/// The content is the canonical commit object (see `agigit-dag`), base64 (RFC 4648, padded); for
/// a private repository it is that object encrypted, and `encryption` names the scheme. Tags:
/// `["a", <repository coordinate>]`, `["commit", <id>]`, one `["parent", <id>]` per parent in
/// order, one `["pack", <blob hash>]` per pack manifest, optionally one `["part", <blob hash>,
/// <label>]` per pack saying what it holds (so a reader can fetch only some parts), and
/// `["encryption", <scheme>]` when encrypted.
///
/// For a private repository the ids in the tags are whatever the client publishes in place of
/// plaintext object ids; this crate only carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitEvent {
    /// The repository the commit belongs to.
    pub repo: RepoCoordinate,
    /// The commit's object id.
    pub commit: ObjectId,
    /// Its parents, in order (none for a root commit).
    pub parents: Vec<ObjectId>,
    /// The blob hashes of the pack manifests that hold the commit's new objects.
    pub packs: Vec<BlobHash>,
    /// What some packs hold (`code`, `params`, …), by manifest hash; every key is in `packs`.
    /// Labels are 1–64 characters of `a-z`, `0-9`, `/`, `_` and `-`.
    pub pack_parts: std::collections::BTreeMap<BlobHash, String>,
    /// The scheme the payload is encrypted with, or `None` when it is the plain commit object.
    pub encryption: Option<String>,
    /// The canonical commit object, or its ciphertext.
    pub payload: Vec<u8>,
}

const A: &str = "a";
const COMMIT: &str = "commit";
const PARENT: &str = "parent";
const PACK: &str = "pack";
const ENCRYPTION: &str = "encryption";
const PART: &str = "part";

fn valid_label(label: &str) -> bool {
    (1..=64).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/_-".contains(&b))
}

impl ProtocolEvent for CommitEvent {
    const KIND: u16 = kinds::COMMIT;

    fn to_parts(&self) -> (Vec<Tag>, String) {
        let mut tags = vec![
            tag(A, [self.repo.to_string()]),
            tag(COMMIT, [self.commit.to_string()]),
        ];
        tags.extend(self.parents.iter().map(|p| tag(PARENT, [p.to_string()])));
        tags.extend(self.packs.iter().map(|p| tag(PACK, [p.to_string()])));
        tags.extend(
            self.pack_parts
                .iter()
                .map(|(p, label)| tag(PART, [p.to_string(), label.clone()])),
        );
        if let Some(scheme) = &self.encryption {
            tags.push(tag(ENCRYPTION, [scheme.as_str()]));
        }
        (tags, STANDARD.encode(&self.payload))
    }

    fn from_parts(tags: &[Tag], content: &str) -> Result<Self, ParseError> {
        let reader = TagReader::new(tags);
        let repo = reader.required_value(A)?.parse()?;
        let commit = parse_id(COMMIT, reader.required_value(COMMIT)?)?;
        let parents: Vec<ObjectId> = reader.unique_ids(PARENT)?;
        let packs: Vec<BlobHash> = reader.unique_ids(PACK)?;
        let mut pack_parts = std::collections::BTreeMap::new();
        for values in reader.all(PART) {
            let [hash, label] = values else {
                return Err(ParseError::TagArity {
                    tag: quote(PART),
                    expected: 2,
                    found: values.len(),
                });
            };
            let hash: BlobHash = parse_id(PART, hash)?;
            if !packs.contains(&hash) {
                return Err(ParseError::invalid_value(
                    PART,
                    hash.to_string().as_str(),
                    "the hash of a pack in a \"pack\" tag",
                ));
            }
            if !valid_label(label) {
                return Err(ParseError::invalid_value(
                    PART,
                    label.as_str(),
                    "1-64 characters of a-z, 0-9, /, _ and -",
                ));
            }
            if pack_parts.insert(hash, label.clone()).is_some() {
                return Err(ParseError::DuplicateValue {
                    tag: quote(PART),
                    value: quote(&hash.to_string()),
                });
            }
        }
        let encryption = reader.optional_value(ENCRYPTION)?.map(str::to_owned);
        if encryption.as_deref() == Some("") {
            return Err(ParseError::invalid_value(
                ENCRYPTION,
                "",
                "the name of a scheme",
            ));
        }
        // The strict engine rejects non-canonical padding and trailing bits, so the content has
        // exactly one accepted form.
        let payload = STANDARD
            .decode(content)
            .map_err(|e| ParseError::InvalidContent {
                reason: format!("the commit payload is not padded base64: {e}"),
            })?;
        Ok(Self {
            repo,
            commit,
            parents,
            packs,
            pack_parts,
            encryption,
            payload,
        })
    }
}
