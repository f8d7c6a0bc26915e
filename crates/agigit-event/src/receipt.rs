//! Kind 1724: an evaluation receipt — a signed statement of how a commit's model scored on
//! held-out data (Proof of Work of Compression; `docs/rounds.md`).

use agigit_hash::{BlobHash, ObjectId};
use nostr::prelude::Tag;

use crate::error::ParseError;
use crate::kinds;
use crate::names::RepoCoordinate;
use crate::signed::{ProtocolEvent, TagReader, parse_id, tag};
use crate::text::parse_decimal;

/// An evaluation receipt (kind 1724, regular), signed by the evaluator.
///
/// Tags, each exactly once: `["a", <repository coordinate>]`, `["commit", <id>]` (the commit
/// evaluated), `["data", <id>]` (the tree of the held-out data), `["metric", <name>]`
/// (`bits-per-byte`), `["value", <decimal>]` (finite, not negative; Rust's shortest round-trip
/// form, no exponent), `["bytes", n]`, `["tokens", n]`, `["documents", n]`, `["context", n]`
/// (decimal, no sign or leading zero), `["losses", <hex>]` (the RFC 9162 Merkle root over every
/// document's loss, so a challenger can name the documents in dispute), `["model", <type>]`
/// (the architecture evaluated) and `["software", <name version>]`; at most once, `["blob",
/// <sha256>]`: the blob (on the evaluator's Blossom servers) that lists every document's loss,
/// whose leaves are under `losses`. The content is a note (at most [`MAX_RECEIPT_NOTE`] bytes;
/// may be empty).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReceipt {
    /// The repository of the commit.
    pub repo: RepoCoordinate,
    /// The commit evaluated.
    pub commit: ObjectId,
    /// The tree of the held-out data.
    pub data: ObjectId,
    /// The metric: one of [`METRICS`].
    pub metric: String,
    /// Its value.
    pub value: f64,
    /// Bytes evaluated.
    pub bytes: u64,
    /// Tokens scored.
    pub tokens: u64,
    /// Documents evaluated.
    pub documents: u64,
    /// Tokens per window.
    pub context: u64,
    /// The Merkle root over every document's loss.
    pub losses: [u8; 32],
    /// The architecture (`model_type`): 1–64 of `a-z`, `0-9`, `_`, `-`, `.`.
    pub model: String,
    /// What computed it (`agigit 0.1.0`): 1–64 printable ASCII characters.
    pub software: String,
    /// The blob listing every document's loss (`agigit_eval::encode_losses`), if published.
    pub blob: Option<BlobHash>,
    /// A note.
    pub note: String,
}

/// The metrics a receipt may state.
pub const METRICS: &[&str] = &["bits-per-byte"];

/// The longest note, in bytes.
pub const MAX_RECEIPT_NOTE: usize = 4096;

const A: &str = "a";
const COMMIT: &str = "commit";
const DATA: &str = "data";
const METRIC: &str = "metric";
const VALUE: &str = "value";
const BYTES: &str = "bytes";
const TOKENS: &str = "tokens";
const DOCUMENTS: &str = "documents";
const CONTEXT: &str = "context";
const LOSSES: &str = "losses";
const MODEL: &str = "model";
const SOFTWARE: &str = "software";
const BLOB: &str = "blob";

/// The one accepted text of a value: Rust's shortest round-trip decimal.
pub(crate) fn parse_value(value: &str) -> Option<f64> {
    let v: f64 = value.parse().ok()?;
    (v.is_finite() && !v.is_sign_negative() && v.to_string() == value).then_some(v)
}

/// Tag `name`'s value: a finite, non-negative number in its shortest decimal form.
pub(crate) fn required_real(reader: &TagReader<'_>, name: &'static str) -> Result<f64, ParseError> {
    let value = reader.required_value(name)?;
    parse_value(value).ok_or_else(|| {
        ParseError::invalid_value(
            name,
            value,
            "a finite number, not negative, in its shortest decimal form",
        )
    })
}

/// The `metric` tag: one of [`METRICS`].
pub(crate) fn required_metric(reader: &TagReader<'_>) -> Result<String, ParseError> {
    let metric = reader.required_value(METRIC)?;
    if !METRICS.contains(&metric) {
        return Err(ParseError::invalid_value(METRIC, metric, "bits-per-byte"));
    }
    Ok(metric.to_owned())
}

fn valid_model(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
}

fn valid_software(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl ProtocolEvent for EvalReceipt {
    const KIND: u16 = kinds::EVAL_RECEIPT;

    fn to_parts(&self) -> (Vec<Tag>, String) {
        let mut tags = vec![
            tag(A, [self.repo.to_string()]),
            tag(COMMIT, [self.commit.to_string()]),
            tag(DATA, [self.data.to_string()]),
            tag(METRIC, [self.metric.as_str()]),
            tag(VALUE, [self.value.to_string()]),
            tag(BYTES, [self.bytes.to_string()]),
            tag(TOKENS, [self.tokens.to_string()]),
            tag(DOCUMENTS, [self.documents.to_string()]),
            tag(CONTEXT, [self.context.to_string()]),
            tag(LOSSES, [BlobHash::from(self.losses).to_string()]),
            tag(MODEL, [self.model.as_str()]),
            tag(SOFTWARE, [self.software.as_str()]),
        ];
        if let Some(blob) = &self.blob {
            tags.push(tag(BLOB, [blob.to_string()]));
        }
        (tags, self.note.clone())
    }

    fn from_parts(tags: &[Tag], content: &str) -> Result<Self, ParseError> {
        let reader = TagReader::new(tags);
        let decimal = |name: &'static str| -> Result<u64, ParseError> {
            let v = reader.required_value(name)?;
            parse_decimal(v).ok_or_else(|| {
                ParseError::invalid_value(name, v, "a decimal number, no sign or leading zero")
            })
        };
        let metric = required_metric(&reader)?;
        let value = required_real(&reader, VALUE)?;
        // A SHA-256 value in the one text form of the protocol's hashes.
        let losses: BlobHash = parse_id(LOSSES, reader.required_value(LOSSES)?)?;
        let model = reader.required_value(MODEL)?;
        if !valid_model(model) {
            return Err(ParseError::invalid_value(
                MODEL,
                model,
                "1-64 characters of a-z, 0-9, _, - and .",
            ));
        }
        let software = reader.required_value(SOFTWARE)?;
        if !valid_software(software) {
            return Err(ParseError::invalid_value(
                SOFTWARE,
                software,
                "1-64 printable ASCII characters",
            ));
        }
        if content.len() > MAX_RECEIPT_NOTE {
            return Err(ParseError::InvalidContent {
                reason: format!(
                    "a note of {} bytes, more than {MAX_RECEIPT_NOTE}",
                    content.len()
                ),
            });
        }
        Ok(EvalReceipt {
            repo: reader.required_value(A)?.parse()?,
            commit: parse_id(COMMIT, reader.required_value(COMMIT)?)?,
            data: parse_id(DATA, reader.required_value(DATA)?)?,
            metric,
            value,
            bytes: decimal(BYTES)?,
            tokens: decimal(TOKENS)?,
            documents: decimal(DOCUMENTS)?,
            context: decimal(CONTEXT)?,
            losses: losses.into(),
            model: model.to_owned(),
            software: software.to_owned(),
            blob: reader
                .optional_value(BLOB)?
                .map(|v| parse_id(BLOB, v))
                .transpose()?,
            note: content.to_owned(),
        })
    }
}
