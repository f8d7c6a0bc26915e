//! Ref names, validated by git's `check-ref-format` rules.

use core::fmt;
use core::str::FromStr;

/// Longest ref name, in bytes.
pub const MAX_REF_NAME_LEN: usize = 255;

/// The longest part of a rejected value quoted back in an error.
const QUOTE_LIMIT: usize = 80;

fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// Why a string is not a ref name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ref name {value:?}: {reason}")]
pub struct RefNameError {
    /// The offending value (cut to a readable length).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A full ref name such as `refs/heads/main`, validated by git's `check-ref-format` rules.
///
/// It starts with `refs/` and has at least one more component; no component is empty, starts
/// with `.` or ends with `.lock`; it contains no `..`, `@{`, control characters, spaces or any of
/// `~ ^ : ? * [ \`; it does not end with `/` or `.`; and it is at most 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefName(String);

impl RefName {
    /// The prefix of branch refs.
    pub const HEADS: &'static str = "refs/heads/";
    /// The prefix of tag refs.
    pub const TAGS: &'static str = "refs/tags/";

    /// Validates a full ref name.
    ///
    /// # Errors
    /// [`RefNameError`] saying which rule the name breaks.
    pub fn new(value: impl Into<String>) -> Result<Self, RefNameError> {
        let value = value.into();
        match check_ref_name(&value) {
            Ok(()) => Ok(Self(value)),
            Err(reason) => Err(RefNameError {
                value: quote(&value),
                reason,
            }),
        }
    }

    /// `refs/heads/<branch>`.
    ///
    /// # Errors
    /// [`RefNameError`] when `branch` does not make a valid ref name.
    pub fn branch(branch: &str) -> Result<Self, RefNameError> {
        Self::new(format!("{}{branch}", Self::HEADS))
    }

    /// The prefix of remote-tracking refs.
    pub const REMOTES: &'static str = "refs/remotes/";

    /// `refs/remotes/<remote>/<branch>`.
    ///
    /// # Errors
    /// [`RefNameError`] when the parts do not make a valid ref name.
    pub fn remote(remote: &str, branch: &str) -> Result<Self, RefNameError> {
        if remote.contains('/') {
            return Err(RefNameError {
                value: quote(remote),
                reason: "a remote's name must not contain '/'",
            });
        }
        Self::new(format!("{}{remote}/{branch}", Self::REMOTES))
    }

    /// The branch name when this is `refs/heads/<branch>`.
    pub fn branch_name(&self) -> Option<&str> {
        self.0.strip_prefix(Self::HEADS)
    }

    /// The full name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_ref_name(name: &str) -> Result<(), &'static str> {
    if name.len() > MAX_REF_NAME_LEN {
        return Err("it is longer than 255 bytes");
    }
    let Some(rest) = name.strip_prefix("refs/") else {
        return Err("it must start with \"refs/\"");
    };
    if rest.is_empty() {
        return Err("it needs a name after \"refs/\"");
    }
    if name.ends_with('/') || name.ends_with('.') {
        return Err("it must not end with '/' or '.'");
    }
    if name.contains("..") {
        return Err("it must not contain \"..\"");
    }
    if name.contains("@{") {
        return Err("it must not contain \"@{\"");
    }
    if name.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("it must not contain control characters");
    }
    if name.contains([' ', '~', '^', ':', '?', '*', '[', '\\']) {
        return Err("it must not contain spaces or any of ~ ^ : ? * [ \\");
    }
    for component in name.split('/') {
        if component.is_empty() {
            return Err("it must not contain an empty component (\"//\")");
        }
        if component.starts_with('.') {
            return Err("no component may start with '.'");
        }
        if component.ends_with(".lock") {
            return Err("no component may end with \".lock\"");
        }
    }
    Ok(())
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RefName {
    type Err = RefNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for RefName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_follow_git() {
        for ok in [
            "refs/heads/main",
            "refs/heads/feature/x-1",
            "refs/tags/v1.0",
            "refs/stash",
        ] {
            assert!(RefName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "main",
            "refs/",
            "refs/heads/",
            "refs/heads/a..b",
            "refs/heads/.hidden",
            "refs/heads/x.lock",
            "refs/heads/a//b",
            "refs/heads/a.",
            "refs/heads/a b",
            "refs/heads/a~1",
            "refs/heads/a^",
            "refs/heads/a:b",
            "refs/heads/a?",
            "refs/heads/a*",
            "refs/heads/a[",
            "refs/heads/a\\b",
            "refs/heads/a@{1}",
            "refs/heads/a\u{7f}",
            "refs/heads/a\nb",
        ] {
            assert!(RefName::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            RefName::branch("dev").map(|r| r.branch_name().map(str::to_owned)),
            Ok(Some("dev".into()))
        );
    }
}
