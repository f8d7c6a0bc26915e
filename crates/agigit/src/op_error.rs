//! One error type per operation (as gitoxide has `gix::remote::fetch::Error` and friends): what
//! can go wrong in a commit, a checkout, a merge or rebase, a push, a fetch or pull, as variants
//! a caller can match on, with the cause kept as the `source`. Every one has a
//! [`kind`](crate::ErrorKind) — the same classification as [`crate::Error::kind`] — and converts
//! from the facade's [`crate::Error`], which the operations' building blocks return.

use std::path::PathBuf;

use agigit_dag::RefError;

use crate::error::{Error as Any, ErrorKind};

/// A file operation on this machine failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct IoError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Uncommitted or untracked work in the way of an operation, which changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", crate::error::local_changes_message(.command, .modified, .untracked))]
pub struct LocalChanges {
    /// The operation (`checkout`, `pull`, `merge`, `rebase`).
    pub command: String,
    /// Tracked files with uncommitted changes it would overwrite or delete.
    pub modified: Vec<String>,
    /// Untracked files at paths the target tracks.
    pub untracked: Vec<String>,
}

/// Paths a merge or rebase could not settle (tensors both sides changed, files both sides
/// changed differently); nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Any::Conflict(.paths.clone()))]
pub struct Conflicts {
    /// The conflicting paths, with what conflicts in each.
    pub paths: Vec<String>,
}

/// The parts of an operation's error that every operation shares: `kind` (its own variants'
/// kinds given, the shared ones' fixed) and the conversion from [`crate::Error`] (its own
/// variants first, by the given patterns; then the shared ones; anything else as `Other`).
macro_rules! op_error_impls {
    (
        $name:ident {
            $( $variant:ident => $kind:ident ),* $(,)?
        }
        from {
            $( $from:pat => $build:expr ),* $(,)?
        }
    ) => {
        impl $name {
            /// What kind of failure this is.
            pub fn kind(&self) -> ErrorKind {
                match self {
                    $( Self::$variant { .. } => ErrorKind::$kind, )*
                    Self::Io(_) => ErrorKind::Io,
                    Self::Concurrent(_) => ErrorKind::Concurrent,
                    Self::Other(e) => e.kind(),
                }
            }
        }

        impl From<Any> for $name {
            fn from(e: Any) -> Self {
                match e {
                    $( $from => $build, )*
                    Any::Io { path, source } => Self::Io(IoError { path, source }),
                    Any::Ref(r @ (RefError::Locked { .. } | RefError::Conflict { .. })) => {
                        Self::Concurrent(r)
                    }
                    other => Self::Other(Box::new(other)),
                }
            }
        }

        op_error_impls!(@via $name: agigit_dag::FindError, agigit_dag::StoreError,
            agigit_dag::WriteError, RefError, agigit_dag::pack::PackError);
    };
    (@via $name:ident: $($t:ty),*) => {$(
        impl From<$t> for $name {
            fn from(e: $t) -> Self {
                Any::from(e).into()
            }
        }
    )*};
}

/// [`Repository::commit`](crate::Repository::commit) and
/// [`commit_with`](crate::Repository::commit_with).
pub mod commit {
    use super::*;

    /// Why a commit failed; nothing was recorded.
    #[derive(Debug, thiserror::Error)]
    #[non_exhaustive]
    pub enum Error {
        /// The working directory matches `HEAD`.
        #[error("nothing to commit: the working directory matches HEAD")]
        NothingToCommit,
        /// A safetensors file is malformed (the commit names it).
        #[error("{}", Any::safetensors_message(.path, .source))]
        Safetensors {
            /// The path.
            path: PathBuf,
            /// What is wrong with it.
            source: agigit_delta::SafetensorsError,
        },
        /// The directory holds something a commit cannot record (a file in a part a partial
        /// clone lacks, a symlink, a name the format refuses).
        #[error("{0}")]
        Invalid(String),
        /// A file operation on this machine failed.
        #[error(transparent)]
        Io(#[from] IoError),
        /// Another writer moved a ref or holds its lock; nothing was changed.
        #[error(transparent)]
        Concurrent(RefError),
        /// Anything else: the object store, stored data, an input.
        #[error(transparent)]
        Other(Box<Any>),
    }

    op_error_impls! {
    Error {
        NothingToCommit => NothingToCommit,
        Safetensors => Invalid,
        Invalid => Invalid,
    }
    from {
        Any::NothingToCommit => Error::NothingToCommit,
        Any::Safetensors { path, source } => Error::Safetensors { path, source },
        Any::Invalid(m) => Error::Invalid(m),
    }
    }
}

/// [`Repository::checkout`](crate::Repository::checkout).
pub mod checkout {
    use super::*;

    /// Why a checkout failed; the working directory and `HEAD` are as they were.
    #[derive(Debug, thiserror::Error)]
    #[non_exhaustive]
    pub enum Error {
        /// The revision names no commit.
        #[error("{}", Any::UnknownRevision(.0.clone()))]
        UnknownRevision(String),
        /// Local work is in the way (`force` discards it).
        #[error(transparent)]
        LocalChanges(LocalChanges),
        /// The target tree names a path checkout must not write (outside the work tree,
        /// into `.agigit/`, through a symlink, or unrepresentable here).
        #[error("refusing to write {path}: {reason}")]
        UnsafePath {
            /// The path.
            path: String,
            /// What is wrong with it.
            reason: String,
        },
        /// A file operation on this machine failed.
        #[error(transparent)]
        Io(#[from] IoError),
        /// Another writer moved a ref or holds its lock; nothing was changed.
        #[error(transparent)]
        Concurrent(RefError),
        /// Anything else: the object store, stored data, an input.
        #[error(transparent)]
        Other(Box<Any>),
    }

    op_error_impls! {
    Error {
        UnknownRevision => Invalid,
        LocalChanges => WouldLoseWork,
        UnsafePath => Integrity,
    }
    from {
        Any::UnknownRevision(r) => Error::UnknownRevision(r),
        Any::LocalChanges { command, modified, untracked } => Error::LocalChanges(LocalChanges { command, modified, untracked }),
        Any::UnsafePath { path, reason } => Error::UnsafePath { path, reason },
    }
    }
}

/// [`Repository::merge`](crate::Repository::merge), [`rebase`](crate::Repository::rebase) and
/// [`rebase_fork`](crate::Repository::rebase_fork).
pub mod merge {
    use super::*;

    /// Why a merge or rebase stopped; nothing was changed.
    #[derive(Debug, thiserror::Error)]
    #[non_exhaustive]
    pub enum Error {
        /// The revision names no commit.
        #[error("{}", Any::UnknownRevision(.0.clone()))]
        UnknownRevision(String),
        /// These paths conflict (tensors both sides changed, without a strategy).
        #[error(transparent)]
        Conflict(Conflicts),
        /// Local work is in the way (`force` discards it).
        #[error(transparent)]
        LocalChanges(LocalChanges),
        /// The request cannot be done as asked (a detached `HEAD`, no fork to re-base, a
        /// strategy that does not apply).
        #[error("{0}")]
        Invalid(String),
        /// A fast-forward was asked for (`pull <commit>`) and `target` does not descend from
        /// `HEAD`: merge it instead.
        #[error("{}", not_fast_forward(.rev, .target, .head))]
        NotFastForward {
            /// The revision as given.
            rev: String,
            /// The commit it names.
            target: agigit_dag::ObjectId,
            /// `HEAD`'s commit.
            head: agigit_dag::ObjectId,
        },
        /// A file operation on this machine failed.
        #[error(transparent)]
        Io(#[from] IoError),
        /// Another writer moved a ref or holds its lock; nothing was changed.
        #[error(transparent)]
        Concurrent(RefError),
        /// Anything else: the object store, stored data, an input.
        #[error(transparent)]
        Other(Box<Any>),
    }

    fn not_fast_forward(
        rev: &str,
        target: &agigit_dag::ObjectId,
        head: &agigit_dag::ObjectId,
    ) -> String {
        Any::NotFastForward {
            rev: rev.to_owned(),
            target: *target,
            head: *head,
        }
        .to_string()
    }

    op_error_impls! {
    Error {
        UnknownRevision => Invalid,
        Conflict => WouldLoseWork,
        LocalChanges => WouldLoseWork,
        Invalid => Invalid,
        NotFastForward => Diverged,
    }
    from {
        Any::UnknownRevision(r) => Error::UnknownRevision(r),
        Any::Conflict(paths) => Error::Conflict(Conflicts { paths }),
        Any::LocalChanges { command, modified, untracked } => Error::LocalChanges(LocalChanges { command, modified, untracked }),
        Any::Invalid(m) => Error::Invalid(m),
        Any::NotFastForward { rev, target, head } => Error::NotFastForward { rev, target, head },
    }
    }
}

/// [`Repository::push`](crate::Repository::push) and [`Remote::push`](crate::Remote::push).
pub mod push {
    use super::*;

    /// Why a push stopped. What was published before the failed step is content-addressed
    /// and harmless; nothing after it was published: push again to resume.
    #[derive(Debug, thiserror::Error)]
    #[non_exhaustive]
    pub enum Error {
        /// Too few servers or relays took a step.
        #[error("network: {0}")]
        Network(String),
        /// The shards stored do not meet the durability target (servers failed or refused);
        /// nothing was published. [`PushOptions::accept_weaker`](crate::PushOptions) takes
        /// what was stored instead.
        #[error(transparent)]
        Weaker(Box<Any>),
        /// A private repository needs its keys to push.
        #[error("{0}")]
        NeedsKey(String),
        /// The signer is neither the repository's owner nor one of its maintainers; nothing
        /// was published.
        #[error("{}", not_a_writer(.0))]
        NotAWriter(String),
        /// The remote branch has commits this repository lacks, which the push would drop:
        /// pull, merge, then push.
        #[error("{}", remote_ahead(.branch))]
        RemoteAhead {
            /// The branch.
            branch: String,
        },
        /// The remote cannot take this push as asked (its privacy differs, the servers cannot
        /// hold the code asked for).
        #[error("{0}")]
        Rejected(String),
        /// The relays offer a state of the repository older than one this clone accepted, or
        /// other data that does not verify: nothing was published on top of it.
        #[error(transparent)]
        Hostile(Box<Any>),
        /// A file operation on this machine failed.
        #[error(transparent)]
        Io(#[from] IoError),
        /// Another writer moved a ref or holds its lock; nothing was changed.
        #[error(transparent)]
        Concurrent(RefError),
        /// Anything else: the object store, stored data, an input.
        #[error(transparent)]
        Other(Box<Any>),
    }

    fn remote_ahead(branch: &str) -> String {
        Any::RemoteAhead {
            branch: branch.to_owned(),
        }
        .to_string()
    }

    fn not_a_writer(repo: &str) -> String {
        Any::NotAWriter {
            repo: repo.to_owned(),
        }
        .to_string()
    }

    op_error_impls! {
    Error {
        Network => Network,
        Weaker => Network,
        NeedsKey => Access,
        NotAWriter => Access,
        RemoteAhead => Diverged,
        Rejected => Invalid,
        Hostile => Integrity,
    }
    from {
        Any::Network(m) => Error::Network(m),
        e @ Any::RevokedWriter { .. } => Error::Network(e.to_string()),
        e @ Any::Weaker { .. } => Error::Weaker(Box::new(e)),
        Any::NeedsKey(m) => Error::NeedsKey(m),
        Any::NotAWriter { repo } => Error::NotAWriter(repo),
        Any::RemoteAhead { branch } => Error::RemoteAhead { branch },
        Any::Invalid(m) => Error::Rejected(m),
        e @ (Any::Corrupt(_) | Any::CorruptData { .. } | Any::Decode { .. } | Any::BadManifest(_) | Any::BadShards(_) | Any::Limit { .. } | Any::StaleState { .. } | Any::StaleAnnouncement { .. }) => Error::Hostile(Box::new(e)),
    }
    }
}

/// [`Repository::fetch`](crate::Repository::fetch), [`pull`](crate::Repository::pull) and
/// their [`Remote`](crate::Remote) forms.
pub mod fetch {
    use super::*;

    /// Why a fetch or pull stopped. Nothing unverified was stored, and local branches and
    /// files are as they were unless the fast-forward itself succeeded.
    #[derive(Debug, thiserror::Error)]
    #[non_exhaustive]
    pub enum Error {
        /// No valid state, or too few servers answered for a pack to rebuild.
        #[error("network: {0}")]
        Network(String),
        /// The repository is private and the key given opens nothing.
        #[error("{}", Any::NotAReader)]
        NotAReader,
        /// The repository is private and no key was given.
        #[error("{0}")]
        NeedsKey(String),
        /// Data from the network is corrupt, forged, too large, unsafe to write, or an older
        /// state than one accepted: none of it was used.
        #[error(transparent)]
        Hostile(Box<Any>),
        /// The request cannot be done as asked (a branch name that is not valid, fewer parts
        /// than the clone holds).
        #[error("{0}")]
        Invalid(String),
        /// The local branch has commits the remote's does not: the pull fetched the remote
        /// branch (`origin/<branch>`) and cannot fast-forward; merge it.
        #[error("{}", diverged(.branch, .local, .remote))]
        Diverged {
            /// The branch.
            branch: String,
            /// Where the local branch is.
            local: agigit_dag::ObjectId,
            /// Where the remote's is.
            remote: agigit_dag::ObjectId,
        },
        /// Local work is in the way of the fast-forward (`force` discards it).
        #[error(transparent)]
        LocalChanges(LocalChanges),
        /// A file operation on this machine failed.
        #[error(transparent)]
        Io(#[from] IoError),
        /// Another writer moved a ref or holds its lock; nothing was changed.
        #[error(transparent)]
        Concurrent(RefError),
        /// Anything else: the object store, stored data, an input.
        #[error(transparent)]
        Other(Box<Any>),
    }

    fn diverged(
        branch: &str,
        local: &agigit_dag::ObjectId,
        remote: &agigit_dag::ObjectId,
    ) -> String {
        Any::Diverged {
            branch: branch.to_owned(),
            local: *local,
            remote: *remote,
        }
        .to_string()
    }

    op_error_impls! {
    Error {
        Network => Network,
        NotAReader => Access,
        NeedsKey => Access,
        Hostile => Integrity,
        Invalid => Invalid,
        Diverged => Diverged,
        LocalChanges => WouldLoseWork,
    }
    from {
        Any::Network(m) => Error::Network(m),
        Any::Diverged { branch, local, remote } => Error::Diverged { branch, local, remote },
        e @ Any::RevokedWriter { .. } => Error::Network(e.to_string()),
        Any::NotAReader => Error::NotAReader,
        Any::NeedsKey(m) => Error::NeedsKey(m),
        e @ (Any::Corrupt(_) | Any::CorruptData { .. } | Any::Decode { .. } | Any::BadManifest(_) | Any::BadShards(_) | Any::Limit { .. } | Any::UnsafePath { .. } | Any::StaleState { .. } | Any::StaleAnnouncement { .. }) => Error::Hostile(Box::new(e)),
        Any::Invalid(m) => Error::Invalid(m),
        Any::LocalChanges { command, modified, untracked } => Error::LocalChanges(LocalChanges { command, modified, untracked }),
    }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn each_operation_keeps_its_own_variants_kinds_and_causes() {
        let e = commit::Error::from(Any::NothingToCommit);
        assert!(matches!(e, commit::Error::NothingToCommit));
        assert_eq!(e.kind(), ErrorKind::NothingToCommit);

        let local = || Any::LocalChanges {
            command: "checkout".into(),
            modified: vec!["a".into()],
            untracked: vec![],
        };
        let e = checkout::Error::from(local());
        assert_eq!(e.kind(), ErrorKind::WouldLoseWork);
        assert_eq!(
            e.to_string(),
            local().to_string(),
            "the message is the facade's"
        );
        assert!(
            matches!(&e, checkout::Error::LocalChanges(c) if c.modified == ["a"] && c.command == "checkout")
        );

        let e = merge::Error::from(Any::Conflict(vec!["params/m/a.weight".into()]));
        assert_eq!(e.kind(), ErrorKind::WouldLoseWork);
        assert!(e.to_string().contains("--strategy"));

        let stale = Any::StaleState {
            repo: "r".into(),
            offered: 1,
            accepted: 2,
        };
        let e = fetch::Error::from(stale);
        assert_eq!(e.kind(), ErrorKind::Integrity);
        assert!(matches!(&e, fetch::Error::Hostile(b) if matches!(**b, Any::StaleState { .. })));
        let e = push::Error::from(Any::Network("two of five".into()));
        assert!(matches!(e, push::Error::Network(_)));
        assert_eq!(e.kind(), ErrorKind::Network);

        // An I/O failure keeps the path and the cause as its source.
        let io = Any::Io {
            path: "x".into(),
            source: std::io::Error::other("disk full"),
        };
        let e = commit::Error::from(io);
        assert_eq!(e.kind(), ErrorKind::Io);
        let cause = e.source().expect("a cause");
        assert!(cause.to_string().contains("disk full"), "{cause}");

        // What an operation has no variant of stays classified.
        let e = push::Error::from(Any::NotAReader);
        assert!(matches!(&e, push::Error::Other(_)));
        assert_eq!(e.kind(), ErrorKind::Access);
    }
}
