//! Refs and `HEAD`: the current branch, revisions, history, branches.

use std::collections::BTreeMap;

use agigit_dag::refs::{Expected, RefKey, RefName, Target, Transaction};
use agigit_dag::{Commit, FindExt, ObjectId, Order};

use crate::Repository;
use crate::error::Error;

impl Repository {
    /// The branch `HEAD` points to, if it is not detached.
    ///
    /// # Errors
    /// Ref errors.
    pub fn current_branch(&self) -> Result<Option<RefName>, Error> {
        Ok(match self.refs.read(&RefKey::Head)? {
            Some(Target::Symbolic(name)) => Some(name),
            _ => None,
        })
    }

    /// The commit `HEAD` resolves to (`None` before the first commit).
    ///
    /// # Errors
    /// Ref errors.
    pub fn head(&self) -> Result<Option<ObjectId>, Error> {
        Ok(self.refs.resolve(&RefKey::Head)?)
    }

    /// The commit `rev` names: `HEAD`, a branch, `refs/…`, or a full commit id.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`].
    pub fn resolve(&self, rev: &str) -> Result<ObjectId, Error> {
        let unknown = || Error::UnknownRevision(rev.to_owned());
        if rev == "HEAD" {
            return self.head()?.ok_or_else(unknown);
        }
        if let Ok(id) = rev.parse::<ObjectId>() {
            self.store.find_commit(&id).map_err(|_| unknown())?;
            return Ok(id);
        }
        let name = if rev.starts_with("refs/") {
            RefName::new(rev)
        } else {
            RefName::branch(rev)
        }
        .map_err(|_| unknown())?;
        self.refs.resolve(&RefKey::Name(name))?.ok_or_else(unknown)
    }

    /// Moves the current branch (or detached `HEAD`) from `old` to `new`, atomically.
    pub(super) fn move_head(&self, old: Option<ObjectId>, new: ObjectId) -> Result<(), Error> {
        let key = match self.current_branch()? {
            Some(branch) => RefKey::Name(branch),
            None => RefKey::Head,
        };
        let expected = old.map_or(Expected::Absent, |o| Expected::Value(Target::Id(o)));
        self.refs
            .commit(Transaction::new().edit(key, expected, Some(Target::Id(new))))?;
        Ok(())
    }

    /// History from `rev`, newest first (topological), at most `limit` commits.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`], store errors.
    pub fn log(&self, rev: &str, limit: usize) -> Result<Vec<(ObjectId, Commit)>, Error> {
        let tip = self.resolve(rev)?;
        let ids = agigit_dag::log(&self.store, &[tip], Order::Topological, false)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        ids.into_iter()
            .take(limit)
            .map(|id| Ok((id, self.store.find_commit(&id)?)))
            .collect()
    }

    /// Every branch and the commit it points to.
    ///
    /// # Errors
    /// Ref errors.
    pub fn branches(&self) -> Result<BTreeMap<String, ObjectId>, Error> {
        let mut out = BTreeMap::new();
        for (name, target) in self.refs.list("refs/heads/")? {
            if let (Some(b), Target::Id(id)) = (name.branch_name(), target) {
                out.insert(b.to_owned(), id);
            }
        }
        Ok(out)
    }

    /// Creates branch `name` at `rev`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; a ref error when it exists.
    pub fn create_branch(&self, name: &str, rev: &str) -> Result<ObjectId, Error> {
        let at = self.resolve(rev)?;
        let name = RefName::branch(name).map_err(|e| Error::Invalid(e.to_string()))?;
        self.refs.commit(Transaction::new().edit(
            RefKey::Name(name),
            Expected::Absent,
            Some(Target::Id(at)),
        ))?;
        Ok(at)
    }
}
