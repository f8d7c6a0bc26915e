//! Failures for the user: what happened, what to do, and what kind it is — the kind picks the
//! exit code and is the `kind` of a `--json` error, so scripts can act on it.

use agigit::ErrorKind;

/// Exit codes, one per kind of failure (also in `--help` and README).
pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   io: a file or store operation failed on this machine
  2   usage: an unknown command or flag, a missing argument
  3   invalid: a name, revision, option or file is not acceptable
  4   repository: no repository there, or there already is one
  5   would-lose-work: uncommitted or untracked files (or a key) in the way, or a merge
      conflict; nothing was changed (--force discards local work)
  6   nothing-to-commit: the working directory matches HEAD
  7   network: relays or servers did not take or give what was needed
  8   integrity: data corrupt, forged, too large or unsafe to write; none of it was used
  9   access: a private repository needs your key, or your key is not a reader's
  10  concurrent: another writer moved a ref or holds its lock
  11  diverged: the other side has commits this one does not (a push the remote is
      ahead of, a pull into a branch with commits the remote lacks, a pull of a commit
      that is not a fast-forward); pull or merge first

With --json a failure prints {\"error\": <message>, \"kind\": <name>} on stdout, the name
being the word after the code.";

/// The exit code for a kind of failure.
pub(crate) fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Invalid => 3,
        ErrorKind::Repository => 4,
        ErrorKind::WouldLoseWork => 5,
        ErrorKind::NothingToCommit => 6,
        ErrorKind::Network => 7,
        ErrorKind::Integrity => 8,
        ErrorKind::Access => 9,
        ErrorKind::Concurrent => 10,
        ErrorKind::Diverged => 11,
        // `Io`, and kinds a newer library adds before this table learns them.
        _ => 1,
    }
}

/// An error for the user: what happened and what to do, and its kind.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// The caller gave something that is not acceptable.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
}

pub(crate) type Result<T> = std::result::Result<T, Failure>;

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<agigit::Error> for Failure {
    fn from(e: agigit::Error) -> Self {
        Failure::new(e.kind(), e.to_string())
    }
}

/// Each operation's error carries its kind.
macro_rules! by_kind {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure::new(e.kind(), e.to_string())
            }
        }
    )*};
}

by_kind!(
    agigit::commit::Error,
    agigit::checkout::Error,
    agigit::merge::Error,
    agigit::push::Error,
    agigit::fetch::Error,
);

impl From<agigit::config::ConfigError> for Failure {
    fn from(e: agigit::config::ConfigError) -> Self {
        use agigit::config::ConfigError;
        let kind = match &e {
            ConfigError::Read { .. } | ConfigError::Write { .. } => ErrorKind::Io,
            _ => ErrorKind::Invalid,
        };
        Failure::new(kind, e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::new(ErrorKind::Io, e.to_string())
    }
}

impl From<agigit::net::NetError> for Failure {
    fn from(e: agigit::net::NetError) -> Self {
        let kind = match &e {
            agigit::net::NetError::Url { .. } => ErrorKind::Invalid,
            agigit::net::NetError::Corrupt { .. } => ErrorKind::Integrity,
            _ => ErrorKind::Network,
        };
        Failure::new(kind, e.to_string())
    }
}

/// Errors that only ever mean the user typed something that does not parse.
macro_rules! invalid_from {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure::invalid(e.to_string())
            }
        }
    )*};
}

invalid_from!(
    agigit::event::ParseError,
    agigit::event::CoordinateError,
    agigit::event::RepoIdError,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_code_and_the_help_lists_it() {
        let kinds = [
            ErrorKind::Io,
            ErrorKind::Invalid,
            ErrorKind::Repository,
            ErrorKind::WouldLoseWork,
            ErrorKind::NothingToCommit,
            ErrorKind::Network,
            ErrorKind::Integrity,
            ErrorKind::Access,
            ErrorKind::Concurrent,
            ErrorKind::Diverged,
        ];
        let mut codes: Vec<u8> = kinds.iter().map(|&k| exit_code(k)).collect();
        for (&kind, &code) in kinds.iter().zip(&codes) {
            let line = format!("{code:<3} {}:", kind.as_str());
            assert!(EXIT_CODES.contains(&line), "--help lacks {line:?}");
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
        assert!(!codes.contains(&0) && !codes.contains(&2));
    }
}
