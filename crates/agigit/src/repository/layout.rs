//! What `.agigit/` records besides objects and refs: the foundation a fork builds on, and the
//! parts a partial clone holds.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

use agigit_dag::{FindExt, ForkBase, ObjectId};

use crate::Repository;
use crate::error::Error;
use crate::worktree::{self, DOT_DIR, FileSource, Part};

impl Repository {
    /// The foundation this repository forks, if any (set by [`set_fork_base`](Self::set_fork_base)).
    ///
    /// # Errors
    /// I/O errors; [`Error::Corrupt`] for a malformed `.agigit/fork` file.
    pub fn fork_base(&self) -> Result<Option<ForkBase>, Error> {
        let path = self.root.join(DOT_DIR).join("fork");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        let mut lines = text.lines();
        let (Some(repo), Some(commit)) = (lines.next(), lines.next()) else {
            return Err(Error::Corrupt(format!(
                "{}: expected two lines",
                path.display()
            )));
        };
        let commit = commit
            .parse()
            .map_err(|_| Error::Corrupt(format!("{}: bad commit id", path.display())))?;
        Ok(Some(ForkBase {
            repo: repo.to_owned(),
            commit,
        }))
    }

    /// Makes this repository a fork of commit `commit` of the foundation repository `repo` (its
    /// coordinate). The commit must be in the local store (pull the foundation first). From now
    /// on, commits store parameters as deltas against the foundation's tensors and record it.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`] when the commit is not local.
    pub fn set_fork_base(&self, repo: &str, commit: ObjectId) -> Result<(), Error> {
        self.store
            .find_commit(&commit)
            .map_err(|_| Error::UnknownRevision(commit.to_string()))?;
        if repo.is_empty() || repo.contains(['\n', '\r']) {
            return Err(Error::Invalid(format!(
                "bad foundation coordinate {repo:?}"
            )));
        }
        let path = self.root.join(DOT_DIR).join("fork");
        worktree::write_atomic(&path, false, |f| {
            f.write_all(format!("{repo}\n{commit}\n").as_bytes())
                .map_err(Error::io(&path))
        })
    }

    /// The parts this repository holds: `None` for all of them; a set for a partial clone
    /// (fetched with [`FetchOptions::parts`](crate::FetchOptions::parts)), whose other parts are
    /// neither checked out nor committed: commits keep `HEAD`'s version of them.
    ///
    /// # Errors
    /// I/O errors; [`Error::Corrupt`] for a malformed `.agigit/parts`.
    pub fn parts(&self) -> Result<Option<BTreeSet<Part>>, Error> {
        let path = self.root.join(DOT_DIR).join("parts");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                Part::from_name(l.trim()).ok_or_else(|| {
                    Error::Corrupt(format!("{}: unknown part {l:?}", path.display()))
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Some)
    }

    /// Records the parts this repository holds (`None`: all).
    pub(crate) fn set_parts(&self, parts: Option<&BTreeSet<Part>>) -> Result<(), Error> {
        let path = self.root.join(DOT_DIR).join("parts");
        match parts {
            Some(p) if p.len() < Part::ALL.len() => {
                let text: String = p.iter().map(|p| format!("{}\n", p.name())).collect();
                worktree::write_atomic(&path, false, |f| {
                    f.write_all(text.as_bytes()).map_err(Error::io(&path))
                })
            }
            _ => match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(&path)(e)),
            },
        }
    }

    /// The files of model tree `tree` in the parts this repository holds.
    pub(crate) fn tree_files(
        &self,
        tree: &ObjectId,
    ) -> Result<BTreeMap<String, FileSource>, Error> {
        worktree::files_in(&self.store, tree, self.parts()?.as_ref())
    }
}
