//! Revisions as git users type them: `HEAD`, `@`, a branch, a remote branch (`origin/main`), a
//! tag, `refs/…`, a full commit id or a unique hex prefix of at least [`MIN_PREFIX`] digits,
//! each followed by any number of `~n` (the `n`th first-parent ancestor) and `^n` (the `n`th
//! parent; `^0` is the commit itself). Parsing is pure; walking the steps reads commits from a
//! store; naming the base (refs, prefixes) is the caller's.

use agigit_hash::ObjectId;

use crate::store::{Find, FindError, FindExt as _};

/// The fewest hex digits a prefix may have.
pub const MIN_PREFIX: usize = 4;

/// How long a revision may be (a full ref name and a few steps fit easily).
pub const MAX_REV_LEN: usize = 1024;

/// Why a revision does not parse or cannot be followed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevError {
    /// The text is not a revision.
    #[error("{rev:?} is not a revision: {reason}")]
    Syntax {
        /// What was typed.
        rev: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A step asks for a parent the commit does not have.
    #[error("{rev}: commit {commit} has {parents} parent(s), not a parent number {wanted}")]
    NoParent {
        /// The revision up to and including the failing step.
        rev: String,
        /// The commit the step started from.
        commit: ObjectId,
        /// Its parent count.
        parents: usize,
        /// The parent asked for (1-based).
        wanted: usize,
    },
    /// A commit on the way could not be read.
    #[error("{rev}: {source}")]
    Find {
        /// The revision being followed.
        rev: String,
        /// Why.
        #[source]
        source: Box<FindError>,
    },
}

/// A hex prefix of an object id: lower-case, [`MIN_PREFIX`] to 64 digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HexPrefix(String);

impl HexPrefix {
    /// `text` as a prefix, if it is [`MIN_PREFIX`]..=64 hex digits (either case).
    pub fn new(text: &str) -> Option<Self> {
        let ok =
            (MIN_PREFIX..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| HexPrefix(text.to_ascii_lowercase()))
    }

    /// The digits, lower-case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `id` starts with this prefix.
    pub fn matches(&self, id: &ObjectId) -> bool {
        id.to_hex_array().starts_with(self.0.as_bytes())
    }
}

impl std::fmt::Display for HexPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One step from a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `~n`: the `n`th ancestor by first parents.
    Ancestor(usize),
    /// `^n`: the `n`th parent (`^0`: the commit itself).
    Parent(usize),
}

/// A parsed revision: what names the starting commit, then the steps from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevSpec {
    /// The starting point as typed (`HEAD` for `@`).
    pub base: String,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl RevSpec {
    /// Parses `rev`.
    ///
    /// # Errors
    /// [`RevError::Syntax`] for empty text, a step without a base, a bad count.
    pub fn parse(rev: &str) -> Result<Self, RevError> {
        let syntax = |reason| RevError::Syntax {
            rev: rev.chars().take(80).collect(),
            reason,
        };
        if rev.len() > MAX_REV_LEN {
            return Err(syntax("longer than any revision"));
        }
        let cut = rev.find(['~', '^']).unwrap_or(rev.len());
        let (base, mut rest) = rev.split_at(cut);
        if base.is_empty() {
            return Err(syntax("it starts with a step (~ or ^) but names no commit"));
        }
        let mut steps = Vec::new();
        while let Some(op) = rest.chars().next() {
            rest = &rest[1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let n = if digits == 0 {
                1
            } else {
                rest[..digits]
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n <= 1 << 20)
                    .ok_or_else(|| syntax("a step count is too large"))?
            };
            rest = &rest[digits..];
            steps.push(if op == '~' {
                Step::Ancestor(n)
            } else {
                Step::Parent(n)
            });
            if let Some(c) = rest.chars().next()
                && c != '~'
                && c != '^'
            {
                return Err(syntax("only ~n and ^n may follow the commit"));
            }
        }
        Ok(RevSpec {
            base: if base == "@" { "HEAD" } else { base }.to_owned(),
            steps,
        })
    }

    /// Follows the steps from `start` through the commits of `store`.
    ///
    /// # Errors
    /// [`RevError::NoParent`] when a commit lacks the parent a step asks for;
    /// [`RevError::Find`] when a commit cannot be read.
    pub fn walk<S: Find + ?Sized>(&self, store: &S, start: ObjectId) -> Result<ObjectId, RevError> {
        let mut at = start;
        let mut typed = self.base.clone();
        for step in &self.steps {
            let (hops, parent) = match *step {
                Step::Ancestor(n) => {
                    typed.push_str(&format!("~{n}"));
                    (n, 1)
                }
                Step::Parent(0) => {
                    typed.push_str("^0");
                    continue;
                }
                Step::Parent(n) => {
                    typed.push_str(&format!("^{n}"));
                    (1, n)
                }
            };
            for _ in 0..hops {
                let commit = store.find_commit(&at).map_err(|source| RevError::Find {
                    rev: typed.clone(),
                    source: Box::new(source),
                })?;
                at = *commit
                    .parents
                    .get(parent - 1)
                    .ok_or_else(|| RevError::NoParent {
                        rev: typed.clone(),
                        commit: at,
                        parents: commit.parents.len(),
                        wanted: parent,
                    })?;
            }
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, WriteExt as _};
    use crate::{Commit, ObjectId};

    fn commit(store: &MemoryStore, parents: Vec<ObjectId>, message: &str) -> ObjectId {
        store
            .write_commit(&Commit {
                tree: ObjectId::digest(b"tree"),
                parents,
                author: [1; 32],
                time: 1,
                message: message.into(),
                base: None,
                extra: Vec::new(),
            })
            .expect("write")
    }

    #[test]
    fn parses_the_forms_git_users_type() {
        let p = |s| RevSpec::parse(s).expect(s);
        assert_eq!(p("HEAD").steps, vec![]);
        assert_eq!(p("@").base, "HEAD");
        assert_eq!(p("HEAD~").steps, vec![Step::Ancestor(1)]);
        assert_eq!(p("HEAD~3").steps, vec![Step::Ancestor(3)]);
        assert_eq!(
            p("main^2~1^").steps,
            vec![Step::Parent(2), Step::Ancestor(1), Step::Parent(1)]
        );
        assert_eq!(p("origin/main^0").base, "origin/main");
        for bad in [
            "",
            "~1",
            "^",
            "HEAD~x",
            "HEAD~1x",
            "HEAD~99999999999999999999",
        ] {
            assert!(RevSpec::parse(bad).is_err(), "{bad:?}");
        }
        assert!(HexPrefix::new("abc").is_none());
        assert!(HexPrefix::new("abcg").is_none());
        assert_eq!(HexPrefix::new("ABCD").expect("hex").as_str(), "abcd");
    }

    #[test]
    fn walks_first_parents_and_numbered_parents() {
        let store = MemoryStore::new();
        let a = commit(&store, vec![], "a");
        let b = commit(&store, vec![a], "b");
        let side = commit(&store, vec![a], "side");
        let merge = commit(&store, vec![b, side], "merge");
        let walk = |s: &str| RevSpec::parse(s).expect("parse").walk(&store, merge);
        assert_eq!(walk("M").expect("M"), merge);
        assert_eq!(walk("M^").expect("^"), b);
        assert_eq!(walk("M^2").expect("^2"), side);
        assert_eq!(walk("M~2").expect("~2"), a);
        assert_eq!(walk("M^2~1").expect("^2~1"), a);
        assert_eq!(walk("M^0").expect("^0"), merge);
        match walk("M~3") {
            Err(RevError::NoParent {
                commit, parents, ..
            }) => assert_eq!((commit, parents), (a, 0)),
            other => panic!("past the root: {other:?}"),
        }
        assert!(matches!(
            walk("M^3"),
            Err(RevError::NoParent { wanted: 3, .. })
        ));
    }
}
