//! The library's defaults, in one place, and the configuration files that override them:
//! `.agigit/config.toml` in a repository ([`RepoConfig`]) and the user-level file
//! ([`UserConfig`], `$AGIGIT_HOME/config.toml` or `~/.config/agigit/config.toml` by the command
//! line's convention). A repository's settings win over the user's, the user's over the
//! defaults ([`effective`]).
//!
//! ```toml
//! id = "my-model"                     # the repository id pushed under
//! remote = "30717:<owner hex>:<id>"   # where it was cloned from
//!
//! [[relay]]
//! url = "ws://127.0.0.1:7701"
//! fetch = true
//! push = true
//!
//! [push]
//! k = 4                   # data shards per segment
//! n = 10                  # shards per segment; any k of them rebuild it
//! segment_size = 4194304  # bytes
//! min_accepted = 1        # relays that must accept each event (at least survive + 1)
//! survive = 1             # push servers that may be lost with everything still rebuildable
//!                         # (default: the most k-of-n gives on the push servers)
//! availability = 0.9      # P(a server is up), for the push report's rebuild odds
//!
//! [commit]                # how a fork's commits store tensors (flags of `commit` win)
//! codec = "lowrank"       # lossless (default), lowrank or signscale
//! rank = 32               # lowrank: a fixed rank; or max_error = 0.05, or energy = 0.99
//! factor_storage = "banded"   # lowrank: f16, bf16, f32 or banded (8/3/2-bit bands)
//! ```

use std::path::{Path, PathBuf};

use agigit_shard::{Leopard, ShardError};
use serde::{Deserialize, Serialize};

use crate::Error;

mod codec;

pub use self::codec::*;

/// The defaults every entry point uses: [`PushOptions::new`](crate::PushOptions::new), the
/// command line, the configuration files when they say nothing.
pub mod defaults {
    /// Bytes per segment: each is erasure-coded on its own, and a transfer holds a few in memory
    /// (segment size × segments in flight).
    pub const SEGMENT_SIZE: usize = 4 << 20;
    /// Data shards per segment (`k`): any `k` shards rebuild it.
    pub const DATA_SHARDS: usize = 4;
    /// Shards per segment (`n`): `n − k` servers may be lost.
    pub const TOTAL_SHARDS: usize = 10;
    /// Relays and servers that must accept each event and shard.
    pub const MIN_ACCEPTED: usize = 1;
    /// The probability that a server is up, for a push report's rebuild odds.
    pub const AVAILABILITY: f64 = 0.9;
    /// Packs at least this large keep their rebuilt segments on disk while they are fetched, so
    /// that an interrupted fetch resumes (smaller ones are fetched again whole).
    pub const RESUME_PACK_BYTES: u64 = 64 << 20;
    /// `gc --remote` keeps unreferenced blobs uploaded more recently than this (a push in
    /// flight uploads its shards before its state names them).
    pub const GC_GRACE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
    /// Transfers in flight at once.
    pub const PARALLEL: usize = 16;
    /// The rank `lowrank` keeps when no rank, error bound or energy is given: on a bf16 full
    /// fine-tune of a small transformer, rank 32 with banded factors stored the fork 44.6×
    /// smaller than its dense tensors at task-level cosine 0.999 to the fine-tune.
    pub const LOWRANK_RANK: usize = 32;
}

/// Why a configuration file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for its kind (an unknown key, a wrong type).
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said (with the line).
        #[source]
        source: toml::de::Error,
    },
    /// The file cannot be written (nothing was changed: it is replaced atomically).
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The settings cannot be written as TOML.
    #[error("cannot write the configuration as TOML: {0}")]
    Serialize(#[from] toml::ser::Error),
    /// The push settings do not make an erasure code.
    #[error("[push] k = {k}, n = {n}: {source}")]
    Code {
        /// Data shards asked for.
        k: usize,
        /// Shards asked for.
        n: usize,
        /// What the code said.
        #[source]
        source: ShardError,
    },
    /// The commit settings do not make a codec.
    #[error("commit codec: {reason}")]
    Codec {
        /// What is wrong, and what to use instead.
        reason: String,
    },
}

/// One relay: a `wss://` (or `ws://`) URL (its Blossom server is the same host over `https://`
/// or `http://`), the key it is pinned to, and what it is used for (both roles when the file
/// does not say).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RelayEntry {
    /// The relay's URL.
    pub url: String,
    /// The relay's own key (64 hex digits) as it named itself when added: the network refuses
    /// the relay if its NIP-11 document names another. `None`: not pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Read from on fetch and pull.
    #[serde(default = "yes")]
    pub fetch: bool,
    /// Written to on push.
    #[serde(default = "yes")]
    pub push: bool,
}

fn yes() -> bool {
    true
}

/// A Blossom server that is not a relay's own port (`[[blob_server]]`): one the repository's
/// announcement or its owner's BUD-03 list names, which a clone fetches blobs from too.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BlobServerEntry {
    /// The server's `http://` or `https://` URL.
    pub url: String,
    /// Read from on fetch and pull.
    #[serde(default = "yes")]
    pub fetch: bool,
    /// Written to on push (off unless set: a server someone else named is theirs).
    #[serde(default)]
    pub push: bool,
}

impl RelayEntry {
    /// An unpinned relay with both roles.
    pub fn new(url: impl Into<String>) -> Self {
        RelayEntry {
            url: url.into(),
            key: None,
            fetch: true,
            push: true,
        }
    }
}

/// Erasure coding, durability and acceptance for pushes (a field left out keeps its default).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Data shards per segment.
    pub k: usize,
    /// Shards per segment.
    pub n: usize,
    /// Bytes per segment.
    pub segment_size: usize,
    /// Relays that must accept each event, servers each pack manifest must be on (at least).
    pub min_accepted: usize,
    /// Push servers that may be lost, whichever they are, with everything still rebuildable
    /// from the others; `None`: the most the code gives on the push servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub survive: Option<usize>,
    /// The probability that a server is up, for the push report's rebuild odds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            k: defaults::DATA_SHARDS,
            n: defaults::TOTAL_SHARDS,
            segment_size: defaults::SEGMENT_SIZE,
            min_accepted: defaults::MIN_ACCEPTED,
            survive: None,
            availability: None,
        }
    }
}

impl PushConfig {
    /// The erasure code these settings name (Leopard, `k` of `n`).
    ///
    /// # Errors
    /// [`ConfigError::Code`] when `k` and `n` make no code.
    pub fn code(&self) -> Result<Leopard, ConfigError> {
        Leopard::new(self.k, self.n).map_err(|source| ConfigError::Code {
            k: self.k,
            n: self.n,
            source,
        })
    }
}

/// A repository's `.agigit/config.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// The repository id used when pushing.
    #[serde(default)]
    pub id: Option<String>,
    /// The repository this one was cloned from (a `30717:<owner>:<id>` coordinate).
    #[serde(default)]
    pub remote: Option<String>,
    /// The repository's relays; the user's when empty.
    #[serde(default, rename = "relay")]
    pub relays: Vec<RelayEntry>,
    /// Blob servers besides the relays' own ports.
    #[serde(default, rename = "blob_server", skip_serializing_if = "Vec::is_empty")]
    pub blob_servers: Vec<BlobServerEntry>,
    /// Erasure coding and acceptance; the user-level file's, else the defaults, when absent.
    #[serde(default)]
    pub push: Option<PushConfig>,
    /// How a fork's commits store tensors (`[commit]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<CodecConfig>,
    /// What the repository's announcement says of it (`[announce]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<AnnounceConfig>,
}

/// What a repository's announcement (kind 30717) says of it, besides what the repository
/// knows itself (visibility, foundation, relays, blob servers).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AnnounceConfig {
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An SPDX licence expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Keys besides the owner's that may move its branches (npub… or hex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintainers: Vec<String>,
    /// Topics (lowercase words: `llm`, `vision`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
}

impl AnnounceConfig {
    /// What a copy fetched to be shown (an explorer's) says of its repository: the name,
    /// description, licence and topics its owner announces.
    pub fn shown_from(announcement: &agigit_event::RepoAnnouncement) -> Self {
        AnnounceConfig {
            name: announcement.name.clone(),
            description: announcement.description.clone(),
            license: announcement.license.clone(),
            topics: announcement.topics.clone(),
            ..AnnounceConfig::default()
        }
    }
}

/// The user-level configuration: defaults for every repository of this user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Relays used by repositories that list none.
    #[serde(default, rename = "relay")]
    pub relays: Vec<RelayEntry>,
    /// Push settings for repositories that set none.
    #[serde(default)]
    pub push: Option<PushConfig>,
    /// Settings for new repositories.
    #[serde(default)]
    pub init: Option<InitConfig>,
    /// What `wss://` relays and `https://` servers must prove.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    /// The market's wallet.
    #[serde(default)]
    pub wallet: Option<WalletSettings>,
}

/// The market's wallet (`[wallet]` in the user-level file).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WalletSettings {
    /// The Cashu mint the wallet holds ecash at (`http://` or `https://`).
    #[serde(default)]
    pub mint: Option<String>,
    /// The most sats one command pays blob servers that charge for serving (BUD-07 `402`,
    /// paid per request from the wallet); unset or 0: nothing is paid.
    #[serde(default)]
    pub budget: Option<u64>,
}

/// TLS trust (`[tls]` in the user-level file): Mozilla's roots are always trusted, and
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` when set; this adds a CA, for a self-hosted relay.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// A PEM file of CA certificates to trust as well.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl UserConfig {
    /// The branch `agigit init` starts on: the user's `[init] default_branch`, else
    /// [`DEFAULT_BRANCH`](crate::DEFAULT_BRANCH).
    pub fn initial_branch(&self) -> &str {
        self.init
            .as_ref()
            .and_then(|i| i.default_branch.as_deref())
            .unwrap_or(crate::DEFAULT_BRANCH)
    }
}

/// Settings for new repositories (`[init]` in the user-level file).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// The branch a new repository starts on (git's `init.defaultBranch`).
    #[serde(default)]
    pub default_branch: Option<String>,
}

/// Reads a TOML file of type `T`; a missing file is `T::default()`.
fn load<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `value` as TOML to `path`, atomically (a crash leaves the old file or the new).
fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), ConfigError> {
    let text = toml::to_string_pretty(value)?;
    crate::worktree::write_atomic(path, false, |file| {
        std::io::Write::write_all(file, text.as_bytes()).map_err(Error::io(path))
    })
    .map_err(|e| match e {
        Error::Io { path, source } => ConfigError::Write { path, source },
        other => ConfigError::Write {
            path: path.to_owned(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

impl RepoConfig {
    /// The file at `path`, or the defaults when there is none.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load(path)
    }

    /// Writes the file at `path`, atomically.
    ///
    /// # Errors
    /// [`ConfigError::Write`] (the old file is left as it was).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        save(path, self)
    }
}

impl UserConfig {
    /// The file at `path`, or the defaults when there is none.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load(path)
    }

    /// Writes the file at `path`, atomically.
    ///
    /// # Errors
    /// [`ConfigError::Write`] (the old file is left as it was).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        save(path, self)
    }
}

impl crate::Repository {
    /// Where this repository's configuration lives: `.agigit/config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root().join(".agigit").join("config.toml")
    }

    /// This repository's configuration (the defaults when it has no file).
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`].
    pub fn config(&self) -> Result<RepoConfig, ConfigError> {
        RepoConfig::load(&self.config_path())
    }

    /// Replaces this repository's configuration, atomically.
    ///
    /// # Errors
    /// [`ConfigError::Write`] (the old file is left as it was).
    pub fn set_config(&self, config: &RepoConfig) -> Result<(), ConfigError> {
        config.save(&self.config_path())
    }

    /// Records `said` as what this repository's announcement says (`[announce]`), writing the
    /// configuration only when it changes: what a copy fetched to be shown keeps of its owner's
    /// announcement.
    ///
    /// # Errors
    /// As [`config`](Self::config) and [`set_config`](Self::set_config).
    pub fn keep_announced(&self, said: AnnounceConfig) -> Result<(), ConfigError> {
        let mut config = self.config()?;
        if config.announce.as_ref() != Some(&said) {
            config.announce = Some(said);
            self.set_config(&config)?;
        }
        Ok(())
    }
}

/// The relays and push settings in effect: the repository's, else the user's, else the
/// defaults. The relay list may be empty (the caller says what to do about it).
pub fn effective(repo: &RepoConfig, user: &UserConfig) -> (Vec<RelayEntry>, PushConfig) {
    let relays = if repo.relays.is_empty() {
        user.relays.clone()
    } else {
        repo.relays.clone()
    };
    (relays, repo.push.or(user.push).unwrap_or_default())
}

#[cfg(test)]
mod tests;
