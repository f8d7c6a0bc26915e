//! Validated names: repository ids and repository coordinates (ref names are `agigit-validate`'s).

use core::fmt;
use core::str::FromStr;

use nostr::prelude::PublicKey;

use crate::kinds;
use crate::text::quote;

/// Longest repository id, in bytes.
pub const MAX_REPO_ID_LEN: usize = 128;

/// Why a string is not a repository id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid repository id {value:?}: {reason}")]
pub struct RepoIdError {
    /// The offending value (cut to a readable length).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A repository id: the `d` tag of its announcement and state events.
///
/// 1 to 128 characters from `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`, so that it is safe
/// as a directory name and inside a coordinate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoId(String);

impl RepoId {
    /// Validates `value` as a repository id.
    ///
    /// # Errors
    /// [`RepoIdError`] saying which rule the value breaks.
    pub fn new(value: impl Into<String>) -> Result<Self, RepoIdError> {
        let value = value.into();
        let fail = |reason| {
            Err(RepoIdError {
                value: quote(&value),
                reason,
            })
        };
        if value.is_empty() {
            return fail("it is empty");
        }
        if value.len() > MAX_REPO_ID_LEN {
            return fail("it is longer than 128 bytes");
        }
        if value.starts_with(['.', '-']) {
            return fail("it starts with '.' or '-'");
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return fail("only A-Z, a-z, 0-9, '.', '_' and '-' are allowed");
        }
        Ok(Self(value))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RepoId {
    type Err = RepoIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for RepoId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Where a repository lives on Nostr: its owner's key and its id, written
/// `30717:<owner pubkey hex>:<repository id>` as a NIP-01 `a` tag value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoCoordinate {
    /// The key that signs the repository's announcement.
    pub owner: PublicKey,
    /// The repository id (`d` tag).
    pub id: RepoId,
}

impl RepoCoordinate {
    /// The coordinate of `owner`'s repository `id`.
    pub fn new(owner: PublicKey, id: RepoId) -> Self {
        Self { owner, id }
    }
}

impl fmt::Display for RepoCoordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            kinds::REPO_ANNOUNCEMENT,
            self.owner.to_hex(),
            self.id
        )
    }
}

/// Why a string is not a repository coordinate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinateError {
    /// It is not `30717:<owner pubkey hex>:<repository id>`.
    #[error(
        "{value:?} is not a repository coordinate (\"30717:<owner pubkey hex>:<repository id>\"): {reason}"
    )]
    Malformed {
        /// The offending value (cut to a readable length).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Its repository id is not valid.
    #[error(transparent)]
    RepoId(#[from] RepoIdError),
}

impl FromStr for RepoCoordinate {
    type Err = CoordinateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| CoordinateError::Malformed {
            value: quote(s),
            reason,
        };
        let mut parts = s.splitn(3, ':');
        let (Some(kind), Some(owner), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(fail("it needs three parts separated by ':'"));
        };
        if kind != "30717" {
            return Err(fail("the kind must be 30717, a repository announcement"));
        }
        let owner =
            parse_public_key(owner).ok_or_else(|| fail("the owner is not a valid public key"))?;
        Ok(Self {
            owner,
            id: RepoId::new(id)?,
        })
    }
}

/// Parses a 64-character lowercase hex x-only public key that lies on the curve.
pub(crate) fn parse_public_key(value: &str) -> Option<PublicKey> {
    // `PublicKey::from_hex` also accepts uppercase; the protocol writes lowercase only, so an id
    // is one string and tags compare as strings.
    if value.len() != 64
        || !value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let key = PublicKey::from_hex(value).ok()?;
    key.xonly().ok().map(|_| key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        for ok in ["a", "my-model", "Llama_3.1-8B", &"x".repeat(128)] {
            assert!(RepoId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-flag",
            "a b",
            "a/b",
            "a:b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(RepoId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn coordinates_round_trip_and_reject_garbage() -> Result<(), CoordinateError> {
        let owner = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
        let text = format!("30717:{owner}:model");
        let coordinate: RepoCoordinate = text.parse()?;
        assert_eq!(coordinate.to_string(), text);
        for bad in [
            "30717:".to_owned(),
            format!("30617:{owner}:model"),
            format!("30717:{}:model", owner.to_uppercase()),
            format!("30717:{owner}:"),
            format!("30717:{owner}:a:b"),
            // BIP-340 test vector 5: not the x coordinate of a point on secp256k1.
            "30717:eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34:model"
                .to_owned(),
        ] {
            assert!(bad.parse::<RepoCoordinate>().is_err(), "{bad}");
        }
        Ok(())
    }
}
