//! The facade's error: what happened and, where it helps, what to do.

use std::path::{Path, PathBuf};

use agigit_dag::ObjectId;

/// A repository operation failed. Nothing is left half-written: objects are content-addressed
/// and written atomically, refs move by compare-and-swap, files are replaced by rename.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not an agigit repository.
    #[error("{0} is not an agigit repository (no .agigit directory): run `agigit init` there")]
    NotARepository(PathBuf),
    /// A repository is already there.
    #[error("{0} is already an agigit repository")]
    AlreadyExists(PathBuf),
    /// A safetensors file in the working directory is malformed or unreadable.
    #[error("{}", Error::safetensors_message(.path, .source))]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong (`agigit_delta::SafetensorsError::Io` when it could not be read).
        source: agigit_delta::SafetensorsError,
    },
    /// A name, revision or input is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// An input is not acceptable, with the parser's or checker's error kept as the cause
    /// ([`std::error::Error::source`]: a `nostr` key error, a URL error, a
    /// `agigit_delta::MergeError`, …).
    #[error("{what}: {source}")]
    InvalidInput {
        /// What was given (a maintainer key, a relay URL, a tensor to merge).
        what: String,
        /// Why it is refused.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A worker of this process stopped without an answer (a thread that panicked, a pool that
    /// shut down): a bug or a process being torn down, not anything the input did.
    #[error("internal: {0}")]
    Internal(&'static str),
    /// A revision does not name a commit.
    #[error(
        "unknown revision {0:?}: name a branch, a tag, a remote branch (origin/master), HEAD, or a \
         commit by 4 or more digits of its id, optionally followed by ~n or ^n"
    )]
    UnknownRevision(String),
    /// A commit-id prefix names more than one commit.
    #[error(
        "revision {rev:?} is ambiguous: it is the start of {} — type more digits",
        .candidates.join(", ")
    )]
    AmbiguousRevision {
        /// What was typed.
        rev: String,
        /// The commits it could name, each as its id and first line.
        candidates: Vec<String>,
    },
    /// Stored data does not match its hash or shape.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// Data that does not decode or check, with the decoder's error kept as the cause
    /// ([`std::error::Error::source`]: an `agigit_delta::DecodeError`, a `serde_json::Error`,
    /// an `agigit_crypt::CryptError`, …).
    #[error("corrupt: {what}: {source}")]
    CorruptData {
        /// What it is (a tensor and its file, the keyring, a stored header).
        what: String,
        /// Why it does not decode.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The network did not take or give what was needed (with each server's reason).
    #[error("network: {0}")]
    Network(String),
    /// The shards a push stored do not meet its durability target; nothing was published.
    #[error(
        "{pack}: the shards stored survive any {achieved} of {servers} servers lost, the target is \
         {wanted}{}; push again when the servers are back, add servers (`agigit relay add`), or \
         accept what was stored (--accept-weaker)",
        if .reasons.is_empty() { String::new() } else { format!(" ({})", .reasons) }
    )]
    Weaker {
        /// Which pack (its part, or "commits").
        pack: String,
        /// Push servers.
        servers: usize,
        /// Servers that may be lost, wanted.
        wanted: usize,
        /// Servers that may be lost with what was stored.
        achieved: usize,
        /// What the servers that failed said.
        reasons: String,
    },
    /// The repository is private and the key given is not one of its readers.
    #[error(
        "this repository is private and your key is not one of its readers: ask its owner to run `agigit reader add <your npub>` and push"
    )]
    NotAReader,
    /// The repository is private and no key was given to open or seal it.
    #[error("{0}")]
    NeedsKey(String),
    /// A push to another key's repository by a key its owner's newest announcement does not
    /// list as a maintainer.
    #[error(
        "your key is neither the owner of {repo} nor a maintainer its owner's announcement lists: ask the owner to add your npub to `[announce] maintainers` in .agigit/config.toml and push, or push to a repository of your own (`agigit fork`)"
    )]
    NotAWriter {
        /// The repository's coordinate.
        repo: String,
    },
    /// A merge or rebase stopped: these paths conflict (nothing was changed).
    #[error(
        "{}\nnothing was changed: resolve by committing on one side, or merge tensors with --strategy (ours, theirs, average, task-arithmetic, ties; ours/theirs also settle files)",
        .0.join("\n")
    )]
    Conflict(Vec<String>),
    /// A tree from the network names a path that checkout must not write: outside the work
    /// tree, into `.agigit/`, through a symlink, or with a name this platform cannot hold.
    #[error("refusing to write {path}: {reason}")]
    UnsafePath {
        /// The path, relative to the work tree (control characters escaped).
        path: String,
        /// Why.
        reason: String,
    },
    /// A command would overwrite or delete work that is not committed (nothing was changed).
    #[error("{}", local_changes_message(.command, .modified, .untracked))]
    LocalChanges {
        /// The command (`checkout`, `pull`, `merge`, `rebase`).
        command: String,
        /// Tracked files with uncommitted changes (modified or deleted) that it would overwrite
        /// or delete.
        modified: Vec<String>,
        /// Untracked files (or directories holding them) at paths the target tracks.
        untracked: Vec<String>,
    },
    /// Something from the network is larger than this build accepts (nothing was written).
    #[error("{what}: {size} is over the limit of {limit}")]
    Limit {
        /// What.
        what: String,
        /// Its size (bytes, depth or count).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An object from the network does not decode: a tree entry name that breaks the name rules
    /// (`source` is then [`agigit_dag::DecodeError::Name`], naming the entry), or any other rule
    /// of the format. Nothing of it was stored.
    #[error("{what}: {source}")]
    Decode {
        /// Which object, where.
        what: String,
        /// Why.
        source: agigit_dag::DecodeError,
    },
    /// The relays offer a state of the repository older than one this clone has accepted: a
    /// relay replaying an old state cannot roll the clone back.
    #[error(
        "the relays offer a state of {repo} dated {offered}, older than the one this clone accepted (dated {accepted}): a relay may be replaying an old state; fetch from other relays"
    )]
    StaleState {
        /// The repository's coordinate.
        repo: String,
        /// The offered state's `created_at`.
        offered: u64,
        /// The accepted state's `created_at`.
        accepted: u64,
    },
    /// The relays offer an announcement of the repository older than one this clone accepted,
    /// or none: who may write it cannot be told.
    #[error(
        "the relays offer {}, older than the one this clone accepted (dated {accepted}): a relay may be hiding the newest; fetch from other relays",
        offered.map_or_else(|| format!("no announcement of {repo}"), |o| format!("an announcement of {repo} dated {o}"))
    )]
    StaleAnnouncement {
        /// The repository's coordinate.
        repo: String,
        /// The offered announcement's `created_at`, if any.
        offered: Option<u64>,
        /// The accepted announcement's `created_at`.
        accepted: u64,
    },
    /// The newest state this clone accepted was signed by a maintainer the owner has since
    /// removed, and the owner has published no newer state yet.
    #[error(
        "the newest state of {repo} this clone accepted was signed by {author}, whom the owner's announcement no longer lists as a maintainer, and the owner has published no newer state: nothing was changed; fetch again after the owner pushes"
    )]
    RevokedWriter {
        /// The repository's coordinate.
        repo: String,
        /// The removed maintainer's key (hex).
        author: String,
    },
    /// Nothing to commit.
    #[error("nothing to commit: the working directory matches HEAD")]
    NothingToCommit,
    /// A push the remote is ahead of: its branch has commits this repository does not, which
    /// the push would drop. Nothing was published.
    #[error(
        "the remote branch {branch} has commits this repository does not: pull, merge, then push"
    )]
    RemoteAhead {
        /// The branch.
        branch: String,
    },
    /// A move that must be a fast-forward (`pull <commit>`) is not: the target does not
    /// descend from `HEAD`. Nothing was changed.
    #[error(
        "{rev} ({}) does not descend from HEAD ({}): not a fast-forward; merge it instead (`agigit merge {rev}`)",
        .target.short(),
        .head.short()
    )]
    NotFastForward {
        /// The revision as given.
        rev: String,
        /// The commit it names.
        target: ObjectId,
        /// `HEAD`'s commit.
        head: ObjectId,
    },
    /// A pull of a branch that has commits the remote's does not: it cannot fast-forward. The
    /// remote branch was fetched (`origin/<branch>`); the local branch and files are unchanged.
    #[error(
        "branch {branch} ({}) has diverged from origin/{branch} ({}): merge origin/{branch} into it, then push",
        .local.short(),
        .remote.short()
    )]
    Diverged {
        /// The branch.
        branch: String,
        /// Where the local branch is.
        local: ObjectId,
        /// Where the remote's is.
        remote: ObjectId,
    },
    /// A branch to delete has commits `HEAD` does not contain, which deleting it would lose.
    /// Nothing was changed.
    #[error(
        "branch {name} ({}) has commits HEAD does not contain: merge it first, or delete it anyway with -D",
        .at.short()
    )]
    BranchNotMerged {
        /// The branch.
        name: String,
        /// Its commit.
        at: ObjectId,
    },
    /// A tag of that name exists; moving it needs `force`. Nothing was changed.
    #[error("tag {name} already exists (at {}): pass --force to move it", .at.short())]
    TagExists {
        /// The tag.
        name: String,
        /// The commit it names.
        at: ObjectId,
    },
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] agigit_dag::StoreError),
    /// An object is missing or unreadable.
    #[error(transparent)]
    Find(#[from] agigit_dag::FindError),
    /// Writing an object failed.
    #[error(transparent)]
    Write(#[from] agigit_dag::WriteError),
    /// A ref update failed (another process moved it, or a lock is held).
    #[error(transparent)]
    Ref(#[from] agigit_dag::RefError),
    /// A working-directory path cannot go into a tree (a name the format refuses, or a path
    /// given as both a file and a directory).
    #[error(transparent)]
    Tree(agigit_dag::BuildError),
    /// A branch or ref name breaks the rules (git's `check-ref-format`).
    #[error(transparent)]
    RefName(#[from] agigit_dag::refs::RefNameError),
    /// A revision is not written as revisions are (`HEAD~2`, `main^2`, an id or a prefix).
    #[error(transparent)]
    Revision(#[from] agigit_dag::RevError),
    /// A tree entry's name breaks the format's rules.
    #[error(transparent)]
    Name(#[from] agigit_dag::object::NameError),
    /// The signer did not sign (a remote signer refused, or could not be reached).
    #[error("the signer did not sign: {0}")]
    Sign(#[from] agigit_event::SignError),
    /// The servers cannot hold the shards as the erasure code and durability ask.
    #[error(transparent)]
    Placement(#[from] agigit_shard::PlacementError),
    /// A pack manifest from the servers does not decode. Nothing of its pack was stored.
    #[error("a pack manifest from the servers: {0}")]
    BadManifest(#[source] agigit_shard::ManifestError),
    /// A pack's shards from the servers break the shard format's rules: its manifest names a
    /// code this client cannot build, or the shards do not rebuild to what it lists. Nothing of
    /// its pack was stored.
    #[error("a pack's shards from the servers: {0}")]
    BadShards(#[source] agigit_shard::ShardError),
    /// Erasure coding failed (a code the shard crate cannot build, or a segment it refuses).
    #[error("erasure coding: {0}")]
    Shard(#[from] agigit_shard::ShardError),
    /// A pack's manifest cannot be written (too many segments or servers for the format).
    #[error(transparent)]
    Manifest(#[from] agigit_shard::ManifestError),
}

impl From<agigit_dag::BuildError> for Error {
    fn from(e: agigit_dag::BuildError) -> Self {
        match e {
            agigit_dag::BuildError::Write(e) => Error::Write(e),
            other => Error::Tree(other),
        }
    }
}

pub(crate) fn local_changes_message(
    command: &str,
    modified: &[String],
    untracked: &[String],
) -> String {
    let mut out = String::new();
    if !modified.is_empty() {
        out.push_str(&format!(
            "your local changes to the following files would be overwritten by {command}:\n"
        ));
        for path in modified {
            out.push_str(&format!("\t{path}\n"));
        }
        out.push_str("commit your changes, or run the command with --force to discard them");
    }
    if !untracked.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "the following untracked working tree files would be overwritten by {command}:\n"
        ));
        for path in untracked {
            out.push_str(&format!("\t{path}\n"));
        }
        out.push_str("move or remove them, or run the command with --force to discard them");
    }
    out.push_str("\nnothing was changed");
    out
}

/// What kind of failure an [`Error`] is, for a caller that acts on it rather than printing it
/// (retry, ask for a key, tell the user to commit first). The names ([`ErrorKind::as_str`]) are
/// stable: the command line prints them as `--json` errors' `kind` and maps them to exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file or object-store operation failed on this machine.
    Io,
    /// There is no repository there, or there already is one.
    Repository,
    /// A name, revision, option or file given by the caller is not acceptable.
    Invalid,
    /// The command would overwrite or delete work that is not committed, or a merge conflicts;
    /// nothing was changed.
    WouldLoseWork,
    /// Nothing to commit.
    NothingToCommit,
    /// The relays or servers did not take or give what was needed.
    Network,
    /// Data is corrupt, forged, too large or unsafe to write: from a hostile or broken peer, or
    /// a damaged store. Nothing of it was used.
    Integrity,
    /// A private repository needs a key, or the key is not a reader's.
    Access,
    /// Another writer moved a ref or holds its lock.
    Concurrent,
    /// The other side has commits this one does not — a push the remote is ahead of, a
    /// `pull <commit>` that is not a fast-forward: pull or merge first. Nothing was changed.
    Diverged,
}

impl ErrorKind {
    /// The stable name: `io`, `repository`, `invalid`, `would-lose-work`, `nothing-to-commit`,
    /// `network`, `integrity`, `access`, `concurrent`, `diverged`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Repository => "repository",
            ErrorKind::Invalid => "invalid",
            ErrorKind::WouldLoseWork => "would-lose-work",
            ErrorKind::NothingToCommit => "nothing-to-commit",
            ErrorKind::Network => "network",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Access => "access",
            ErrorKind::Concurrent => "concurrent",
            ErrorKind::Diverged => "diverged",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<agigit_dag::pack::PackError> for Error {
    fn from(e: agigit_dag::pack::PackError) -> Self {
        use agigit_dag::pack::PackError;
        match e {
            PackError::Decode { what, source } => Error::Decode { what, source },
            PackError::Io(source) => Error::Io {
                path: "(pack stream)".into(),
                source,
            },
            PackError::Find(e) => Error::Find(e),
            PackError::Write(e) => Error::Write(e),
            PackError::Store(e) => Error::Store(e),
            PackError::Corrupt(_) => Error::CorruptData {
                what: "a pack".into(),
                source: Box::new(e),
            },
            PackError::TooManyObjects => Error::InvalidInput {
                what: "a pack to write".into(),
                source: Box::new(e),
            },
            // `PackError` is non-exhaustive: what a newer agigit-dag adds is about a pack's
            // content until it says otherwise.
            other => Error::CorruptData {
                what: "a pack".into(),
                source: Box::new(other),
            },
        }
    }
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use agigit_dag::{FindError, RefError, StoreError, WriteError};
        let store = |e: &StoreError| match e {
            StoreError::Corrupt { .. } | StoreError::SizeMismatch { .. } => ErrorKind::Integrity,
            StoreError::TooLarge { .. } => ErrorKind::Integrity,
            _ => ErrorKind::Io,
        };
        match self {
            Error::Io { .. }
            | Error::Internal(_)
            | Error::Safetensors {
                source: agigit_delta::SafetensorsError::Io { .. },
                ..
            } => ErrorKind::Io,
            Error::NotARepository(_) | Error::AlreadyExists(_) => ErrorKind::Repository,
            Error::Invalid(_)
            | Error::InvalidInput { .. }
            | Error::UnknownRevision(_)
            | Error::AmbiguousRevision { .. }
            | Error::Safetensors { .. }
            | Error::Tree(_)
            | Error::RefName(_)
            | Error::Revision(_)
            | Error::Name(_)
            | Error::Placement(_)
            | Error::Manifest(_)
            | Error::Shard(_)
            | Error::TagExists { .. } => ErrorKind::Invalid,
            Error::Sign(_) => ErrorKind::Access,
            Error::Corrupt(_)
            | Error::CorruptData { .. }
            | Error::UnsafePath { .. }
            | Error::Limit { .. }
            | Error::Decode { .. }
            | Error::BadManifest(_)
            | Error::BadShards(_)
            | Error::StaleState { .. }
            | Error::StaleAnnouncement { .. } => ErrorKind::Integrity,
            Error::Network(_) | Error::Weaker { .. } | Error::RevokedWriter { .. } => {
                ErrorKind::Network
            }
            Error::NotAReader | Error::NeedsKey(_) | Error::NotAWriter { .. } => ErrorKind::Access,
            Error::Conflict(_) | Error::LocalChanges { .. } | Error::BranchNotMerged { .. } => {
                ErrorKind::WouldLoseWork
            }
            Error::RemoteAhead { .. } | Error::NotFastForward { .. } | Error::Diverged { .. } => {
                ErrorKind::Diverged
            }
            Error::NothingToCommit => ErrorKind::NothingToCommit,
            Error::Store(e) => store(e),
            Error::Find(FindError::Store(e)) | Error::Write(WriteError::Store(e)) => store(e),
            Error::Find(_) => ErrorKind::Integrity,
            Error::Write(_) => ErrorKind::Invalid,
            Error::Ref(RefError::Locked { .. } | RefError::Conflict { .. }) => {
                ErrorKind::Concurrent
            }
            Error::Ref(RefError::Io { .. }) => ErrorKind::Io,
            Error::Ref(_) => ErrorKind::Integrity,
        }
    }

    /// A closure turning a decoder's error into [`Error::CorruptData`] about `what`.
    pub(crate) fn corrupt_data<E: std::error::Error + Send + Sync + 'static>(
        what: impl std::fmt::Display,
    ) -> impl FnOnce(E) -> Error {
        move |source| Error::CorruptData {
            what: what.to_string(),
            source: Box::new(source),
        }
    }

    /// A malformed safetensors file's message: its path and what is wrong (a read error names
    /// the path itself).
    pub(crate) fn safetensors_message(
        path: &Path,
        source: &agigit_delta::SafetensorsError,
    ) -> String {
        match source {
            agigit_delta::SafetensorsError::Io { .. } => source.to_string(),
            _ => format!("{}: {source}", path.display()),
        }
    }

    /// A closure turning a parser's or checker's error into [`Error::InvalidInput`] about `what`.
    pub(crate) fn invalid_input<E: std::error::Error + Send + Sync + 'static>(
        what: impl std::fmt::Display,
    ) -> impl FnOnce(E) -> Error {
        move |source| Error::InvalidInput {
            what: what.to_string(),
            source: Box::new(source),
        }
    }

    /// A closure turning an I/O error on `path` into [`Error::Io`].
    pub(crate) fn io(path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.as_ref().to_owned();
        move |source| Error::Io { path, source }
    }
}
