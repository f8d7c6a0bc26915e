//! Refs and `HEAD`: the current branch, revisions, history, branches.

use std::collections::BTreeMap;

use agigit_dag::refs::{Expected, RefKey, RefName, Target, Transaction};
use agigit_dag::{Commit, Find as _, FindExt, HexPrefix, ObjectId, Order, RevError, RevSpec};

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

    /// Points `HEAD` at branch `name` in a repository that has no commit yet — what a clone
    /// does once it has learnt the remote's default branch (like `git symbolic-ref HEAD`).
    ///
    /// # Errors
    /// [`Error::RefName`] for a name that is not a branch name; [`Error::Invalid`] when `HEAD`
    /// already resolves to a commit (check out a branch instead).
    pub fn set_unborn_branch(&self, name: &str) -> Result<(), Error> {
        let branch = RefName::branch(name)?;
        let current = self.refs.read(&RefKey::Head)?;
        if self.head()?.is_some() {
            return Err(Error::Invalid(format!(
                "HEAD already has commits: check out {name} instead"
            )));
        }
        self.refs.commit(Transaction::new().edit(
            RefKey::Head,
            current.map_or(Expected::Absent, Expected::Value),
            Some(Target::Symbolic(branch)),
        ))?;
        Ok(())
    }

    /// The commit `HEAD` resolves to (`None` before the first commit).
    ///
    /// # Errors
    /// Ref errors.
    pub fn head(&self) -> Result<Option<ObjectId>, Error> {
        Ok(self.refs.resolve(&RefKey::Head)?)
    }

    /// The commit `rev` names (see [`resolve_revision`](Self::resolve_revision)).
    ///
    /// # Errors
    /// As [`resolve_revision`](Self::resolve_revision).
    pub fn resolve(&self, rev: &str) -> Result<ObjectId, Error> {
        Ok(self.resolve_revision(rev)?.id)
    }

    /// What `rev` names, as git reads it: `HEAD` (or `@`); a local branch, a tag or a remote
    /// branch (`origin/master`), looked up in that order, or a full ref name (`refs/…`); a
    /// commit by its full id or by a unique prefix of at least four hex digits (names win over
    /// prefixes, as in git) — then any number of `~n` (`n`th first-parent ancestor) and `^n`
    /// (`n`th parent). The branch is set when `rev` is exactly a local branch, so a checkout
    /// of it switches to it rather than detaching.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`]; [`Error::AmbiguousRevision`] for a prefix of several
    /// commits, listing them; [`Error::Revision`] for text that is not a revision or a step
    /// past the root (the [`RevError`] says which); [`Error::Invalid`] for a prefix of an
    /// object that is not a commit.
    pub fn resolve_revision(&self, rev: &str) -> Result<Resolved, Error> {
        let spec = RevSpec::parse(rev)?;
        let (start, branch) = self.resolve_base(rev, &spec.base)?;
        let id = spec.walk(self.store(), start).map_err(|e| match e {
            RevError::Find { source, .. } => Error::from(*source),
            e => Error::Revision(e),
        })?;
        let branch = branch.filter(|_| spec.steps.is_empty());
        Ok(Resolved { id, branch })
    }

    /// The commit a revision's base names, and the local branch when it is one.
    fn resolve_base(&self, rev: &str, base: &str) -> Result<(ObjectId, Option<RefName>), Error> {
        let unknown = || Error::UnknownRevision(rev.to_owned());
        if base == "HEAD" {
            return Ok((self.head()?.ok_or_else(unknown)?, None));
        }
        if let Ok(id) = base.parse::<ObjectId>() {
            self.store.find_commit(&id).map_err(|_| unknown())?;
            return Ok((id, None));
        }
        let names: Vec<RefName> = if base.starts_with("refs/") {
            RefName::new(base).into_iter().collect()
        } else {
            [
                RefName::branch(base),
                RefName::new(format!("refs/tags/{base}")),
                RefName::new(format!("refs/remotes/{base}")),
            ]
            .into_iter()
            .flatten()
            .collect()
        };
        for name in names {
            if let Some(id) = self.refs.resolve(&RefKey::Name(name.clone()))? {
                let branch = name.as_str().starts_with("refs/heads/").then_some(name);
                return Ok((id, branch));
            }
        }
        let Some(prefix) = HexPrefix::new(base) else {
            return Err(unknown());
        };
        // A few past two, to list the candidates of an ambiguous prefix.
        let ids = self.store.ids_with_prefix(&prefix, 8)?;
        let mut commits = Vec::new();
        let mut others = Vec::new();
        for id in ids {
            match self.store.header_of(&id)? {
                Some((agigit_dag::Kind::Commit, _)) => commits.push(id),
                Some((kind, _)) => others.push((id, kind)),
                None => {}
            }
        }
        match commits.as_slice() {
            [id] => Ok((*id, None)),
            [] => match others.first() {
                Some((id, kind)) => Err(Error::Invalid(format!(
                    "{base} is {kind} {}, not a commit",
                    id.short()
                ))),
                None => Err(unknown()),
            },
            many => Err(Error::AmbiguousRevision {
                rev: rev.to_owned(),
                candidates: many
                    .iter()
                    .map(|id| {
                        let line = self
                            .store
                            .find_commit(id)
                            .map(|c| c.message.lines().next().unwrap_or_default().to_owned())
                            .unwrap_or_default();
                        format!("{} {line:?}", id.short())
                    })
                    .collect(),
            }),
        }
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
        let ids = agigit_dag::log(&self.store, &[tip], Order::Topological, false)?;
        ids.into_iter()
            .take(limit)
            .map(|id| Ok((id, self.store.find_commit(&id)?)))
            .collect()
    }

    /// History from `rev` of the files `filter` selects, newest first: the commits whose
    /// selected files differ from their first parent's (a root commit when it has any) — what
    /// `agigit log -- <part|path>` shows, each part's own history. At most `limit` commits.
    ///
    /// # Errors
    /// As [`log`](Self::log).
    pub fn log_filtered(
        &self,
        rev: &str,
        limit: usize,
        filter: &crate::PathFilter,
    ) -> Result<Vec<(ObjectId, Commit)>, Error> {
        if filter.is_all() {
            return self.log(rev, limit);
        }
        let tip = self.resolve(rev)?;
        let ids = agigit_dag::log(&self.store, &[tip], Order::Topological, false)?;
        let selected =
            |tree: &ObjectId| -> Result<BTreeMap<String, crate::worktree::FileSource>, Error> {
                let mut files = self.tree_files(tree)?;
                files.retain(|rel, _| filter.matches(rel));
                Ok(files)
            };
        let mut out = Vec::new();
        for id in ids {
            if out.len() == limit {
                break;
            }
            let commit = self.store.find_commit(&id)?;
            let mine = selected(&commit.tree)?;
            let parent = match commit.parents.first() {
                Some(p) => selected(&self.store.find_commit(p)?.tree)?,
                None => BTreeMap::new(),
            };
            if mine != parent {
                out.push((id, commit));
            }
        }
        Ok(out)
    }

    /// The part trees of commit `id`: each part it has, and its tree's id (what a training
    /// record's weights were trained from).
    ///
    /// # Errors
    /// Store errors.
    pub fn parts_of(&self, id: &ObjectId) -> Result<Vec<(crate::Part, ObjectId)>, Error> {
        let tree = self.store.find_commit(id)?.tree;
        let parts = agigit_dag::model::ModelParts::read(&self.store, &tree)?;
        Ok(crate::Part::ALL
            .into_iter()
            .filter_map(|p| p.get(&parts).map(|t| (p, t)))
            .collect())
    }

    /// Where `rev`'s weights came from: its first-parent line, across fork bases into the
    /// foundations' histories (a fork holds them), each commit with the repository it belongs
    /// to (`None`: this one; a foundation's coordinate past the commit a fork started from),
    /// its training record and its part trees. At most `limit` commits.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`]; [`Error::Corrupt`] for a record that does not decode; store
    /// errors.
    pub fn lineage(&self, rev: &str, limit: usize) -> Result<Vec<LineageStep>, Error> {
        let mut next = Some(self.resolve(rev)?);
        let mut repository: Option<String> = None;
        let mut out = Vec::new();
        while let Some(id) = next {
            if out.len() == limit {
                break;
            }
            let commit = self.store.find_commit(&id)?;
            let record = crate::record::TrainingRecord::of(&commit)?;
            let parts = self.parts_of(&id)?;
            next = commit.parents.first().copied();
            let here = repository.clone();
            // The commit a fork started from belongs to its foundation, and so does what follows.
            if let Some(base) = &commit.base
                && next == Some(base.commit)
            {
                repository = Some(base.repo.clone());
            }
            out.push(LineageStep {
                id,
                commit,
                repository: here,
                record,
                parts,
            });
        }
        Ok(out)
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
    /// [`Error::RefName`] for a bad name; a ref error when it exists.
    pub fn create_branch(&self, name: &str, rev: &str) -> Result<ObjectId, Error> {
        let at = self.resolve(rev)?;
        let name = RefName::branch(name)?;
        self.refs.commit(Transaction::new().edit(
            RefKey::Name(name),
            Expected::Absent,
            Some(Target::Id(at)),
        ))?;
        Ok(at)
    }

    /// Deletes branch `name`; returns the commit it pointed to (what `git branch -d` prints,
    /// so the user can bring it back). Refuses the branch checked out, and — unless `force` —
    /// one whose commits `HEAD` does not contain, which only it keeps reachable.
    ///
    /// # Errors
    /// [`Error::Invalid`] for the current branch; [`Error::BranchNotMerged`] for an unmerged
    /// one unless `force`;
    /// [`Error::UnknownRevision`] when there is no such branch; a ref error when another
    /// writer moved it meanwhile.
    pub fn delete_branch(&self, name: &str, force: bool) -> Result<ObjectId, Error> {
        let branch = RefName::branch(name)?;
        let at = self
            .refs
            .resolve(&RefKey::Name(branch.clone()))?
            .ok_or_else(|| Error::UnknownRevision(name.to_owned()))?;
        if self.current_branch()?.as_ref() == Some(&branch) {
            return Err(Error::Invalid(format!(
                "cannot delete branch {name}: it is checked out (check out another first)"
            )));
        }
        if !force {
            let merged = match self.head()? {
                Some(head) => agigit_dag::is_ancestor(&self.store, &at, &head)?,
                None => false,
            };
            if !merged {
                return Err(Error::BranchNotMerged {
                    name: name.to_owned(),
                    at,
                });
            }
        }
        self.refs.commit(Transaction::new().edit(
            RefKey::Name(branch),
            Expected::Value(Target::Id(at)),
            None,
        ))?;
        Ok(at)
    }
}

/// What a revision names: see [`Repository::resolve_revision`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resolved {
    /// The commit.
    pub id: ObjectId,
    /// The local branch, when the revision is exactly one.
    pub branch: Option<RefName>,
}

/// One commit of a [`Repository::lineage`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LineageStep {
    /// The commit's id.
    pub id: ObjectId,
    /// The commit.
    pub commit: Commit,
    /// The repository it belongs to: `None` for this one, else a foundation's coordinate.
    pub repository: Option<String>,
    /// Its training record, if it has one.
    pub record: Option<crate::record::TrainingRecord>,
    /// Its part trees.
    pub parts: Vec<(crate::Part, ObjectId)>,
}
