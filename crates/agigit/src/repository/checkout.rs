//! Writing a commit's files into the work directory (checkout, pull, merge, rebase): only inside
//! it, never into `.agigit/`, never through a symlink, and never over a user's uncommitted or
//! untracked work unless told to (DESIGN §7, invariants 7 and 9).
//!
//! A move from one tree to another is planned before anything is touched: only the paths whose
//! entries differ between the two trees are written or removed (like git, local changes to other
//! files are carried over; `force` discards those too), and every such path is checked against
//! the working directory. A
//! tracked file with uncommitted changes (modified, or deleted when the target changes it), or an
//! untracked file or directory where the target puts a file, stops the command with git's message
//! and nothing changed, unless `force`. Then files are removed, then written, each one atomically
//! (a temporary file beside it, synced, renamed over it).
//!
//! Paths are built component by component from names that passed the tree name rules
//! (`agigit_dag::object::name`) again here, and each parent directory is checked with
//! `symlink_metadata` before it is used: a symlink anywhere on the way is refused, whatever
//! `force` says. What this does not defend against is a concurrent local process swapping a
//! directory for a symlink between the check and the write (no hostile remote can do that).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use agigit_dag::refs::{Expected, RefKey, Target, Transaction};
use agigit_dag::{FindExt, ObjectId};

use crate::display::Escaped;
use crate::error::Error;
use crate::repository::{CheckoutReport, Repository};
use crate::worktree::{self, FileSource};

fn unsafe_path(rel: &str, reason: impl Into<String>) -> Error {
    Error::UnsafePath {
        path: Escaped(rel).to_string(),
        reason: reason.into(),
    }
}

/// Checks one path component of a working-directory path before it is joined to a path.
fn check_component(rel: &str, name: &str) -> Result<(), Error> {
    agigit_dag::object::check_name(name).map_err(|e| unsafe_path(rel, e.to_string()))?;
    if cfg!(windows)
        && let Some(reason) = agigit_dag::object::windows_hazard(name)
    {
        return Err(unsafe_path(rel, format!("{name:?}: {reason}")));
    }
    // A checked name is exactly one ordinary component on this platform.
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) => Ok(()),
        _ => Err(unsafe_path(
            rel,
            format!("{name:?} is not a plain file name here"),
        )),
    }
}

/// `root` joined with the `/`-separated `rel`, each component checked.
///
/// # Errors
/// [`Error::UnsafePath`] for an empty path or a component the name rules refuse.
pub fn join_checked(root: &Path, rel: &str) -> Result<PathBuf, Error> {
    if rel.is_empty() {
        return Err(unsafe_path(rel, "an empty path"));
    }
    let mut path = root.to_path_buf();
    for name in rel.split('/') {
        check_component(rel, name)?;
        path.push(name);
    }
    Ok(path)
}

/// What is at a working-directory path, looked at without following symlinks.
#[derive(Debug)]
pub(crate) enum Found {
    /// Nothing.
    Absent,
    /// A regular file.
    File(PathBuf),
    /// A directory.
    Dir(PathBuf),
    /// A symlink (or a special file) at the path or at one of its parents (that path).
    Link(String),
    /// A regular file where a parent directory should be (its path).
    FileParent(String),
}

/// What is at `rel` under `root`, checking every parent on the way.
pub(crate) fn existing(root: &Path, rel: &str) -> Result<Found, Error> {
    let path = join_checked(root, rel)?;
    let mut at = root.to_path_buf();
    let mut prefix = String::new();
    let names: Vec<&str> = rel.split('/').collect();
    for (i, name) in names.iter().enumerate() {
        at.push(name);
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(name);
        let meta = match std::fs::symlink_metadata(&at) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Absent),
            Err(e) => return Err(Error::io(&at)(e)),
        };
        let last = i + 1 == names.len();
        let kind = meta.file_type();
        if kind.is_symlink() || !(kind.is_file() || kind.is_dir()) {
            return Ok(Found::Link(prefix));
        }
        if !last && kind.is_file() {
            return Ok(Found::FileParent(prefix));
        }
        if last {
            return Ok(if kind.is_dir() {
                Found::Dir(path)
            } else {
                Found::File(path)
            });
        }
    }
    Ok(Found::Absent)
}

/// Creates the parent directories of `rel` under `root`, refusing to go through a symlink.
fn ensure_parents(root: &Path, rel: &str) -> Result<PathBuf, Error> {
    let path = join_checked(root, rel)?;
    let names: Vec<&str> = rel.split('/').collect();
    let mut at = root.to_path_buf();
    for (i, name) in names[..names.len() - 1].iter().enumerate() {
        at.push(name);
        let parent = names[..=i].join("/");
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(unsafe_path(
                    &parent,
                    "it is a symlink, and checkout never writes through one: remove it",
                ));
            }
            Ok(_) => {
                return Err(unsafe_path(
                    &parent,
                    "a file is where a directory is needed",
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(&at) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_dir()) {
                        return Err(unsafe_path(&parent, "it changed while being created"));
                    }
                }
                Err(e) => return Err(Error::io(&at)(e)),
            },
            Err(e) => return Err(Error::io(&at)(e)),
        }
    }
    Ok(path)
}

/// Removes the directories above `rel` that are left empty, up to `root`.
fn prune_empty_parents(root: &Path, rel: &str) {
    let mut names: Vec<&str> = rel.split('/').collect();
    names.pop();
    while !names.is_empty() {
        let mut dir = root.to_path_buf();
        dir.extend(&names);
        // Fails (and stops here) when the directory is not empty, or is not a directory.
        if std::fs::symlink_metadata(&dir).map_or(true, |m| !m.file_type().is_dir())
            || std::fs::remove_dir(&dir).is_err()
        {
            break;
        }
        names.pop();
    }
}

/// What moving the working directory from one tree to another will do, once checked.
#[derive(Debug, Default)]
struct Plan {
    /// Files to write.
    writes: Vec<(String, FileSource)>,
    /// Tracked files to remove.
    deletes: Vec<String>,
    /// Directories in the way of a file, to remove first (only ever with `force`, or when every
    /// file in them is a tracked file being removed).
    clear: Vec<String>,
    /// Files left as they are.
    unchanged: usize,
}

impl Repository {
    /// Plans the move of the working directory from the files `from` to the files `to`, refusing
    /// (unless `force`) to lose any local work.
    fn plan_update(
        &self,
        command: &str,
        from: &BTreeMap<String, FileSource>,
        to: &BTreeMap<String, FileSource>,
        force: bool,
    ) -> Result<Plan, Error> {
        let root = self.root();
        let mut plan = Plan::default();
        let mut modified = BTreeSet::new();
        let mut untracked = BTreeSet::new();
        let link = |at: &str| {
            unsafe_path(
                at,
                "it is a symlink or special file, and checkout never goes through one: remove it",
            )
        };
        // Tracked files the target drops: removed when unchanged.
        let mut removable = BTreeSet::new();
        for (rel, source) in from {
            if to.contains_key(rel) {
                continue;
            }
            match existing(root, rel)? {
                Found::File(_) => {
                    if self.matches(rel, source)? {
                        removable.insert(rel.as_str());
                    } else {
                        modified.insert(rel.clone());
                    }
                    plan.deletes.push(rel.clone());
                }
                Found::Link(at) => return Err(link(&at)),
                Found::Absent | Found::Dir(_) | Found::FileParent(_) => {}
            }
        }
        for (rel, source) in to {
            let old = from.get(rel);
            if old == Some(source) {
                // The same in both trees: whatever the user did to it stays — unless `force`
                // discards local changes, as `git checkout -f` does.
                if !force || self.matches(rel, source)? {
                    plan.unchanged += 1;
                    continue;
                }
                match existing(root, rel)? {
                    Found::Link(at) => return Err(link(&at)),
                    Found::Dir(_) => plan.clear.push(rel.clone()),
                    Found::Absent | Found::File(_) | Found::FileParent(_) => {}
                }
                plan.writes.push((rel.clone(), source.clone()));
                continue;
            }
            match existing(root, rel)? {
                Found::Absent => {
                    if old.is_some() {
                        // Deleted here, changed there: writing it would undo the deletion.
                        modified.insert(rel.clone());
                    }
                }
                Found::File(_) => {
                    let same_as_old = match old {
                        Some(o) => self.matches(rel, o)?,
                        None => false,
                    };
                    if !same_as_old {
                        if self.matches(rel, source)? {
                            plan.unchanged += 1;
                            continue;
                        }
                        if old.is_some() {
                            modified.insert(rel.clone());
                        } else {
                            untracked.insert(rel.clone());
                        }
                    }
                }
                Found::Dir(dir) => {
                    // Fine only when every file in it is a tracked file being removed unchanged.
                    let inside = worktree::list_all_files(&dir)?;
                    if inside
                        .iter()
                        .any(|f| !removable.contains(format!("{rel}/{f}").as_str()))
                    {
                        untracked.insert(format!("{rel}/"));
                    }
                    plan.clear.push(rel.clone());
                }
                Found::FileParent(at) => {
                    if !removable.contains(at.as_str()) && !modified.contains(&at) {
                        untracked.insert(at);
                    }
                }
                Found::Link(at) => return Err(link(&at)),
            }
            plan.writes.push((rel.clone(), source.clone()));
        }
        if !force && (!modified.is_empty() || !untracked.is_empty()) {
            let show = |set: BTreeSet<String>| set.iter().map(|p| Escaped(p).to_string()).collect();
            return Err(Error::LocalChanges {
                command: command.to_owned(),
                modified: show(modified),
                untracked: show(untracked),
            });
        }
        Ok(plan)
    }

    /// Carries out `plan`: removals, then directories in the way, then writes.
    fn apply(&self, plan: Plan) -> Result<CheckoutReport, Error> {
        let root = self.root();
        let mut report = CheckoutReport {
            unchanged: plan.unchanged,
            ..CheckoutReport::default()
        };
        for rel in &plan.deletes {
            match existing(root, rel)? {
                Found::File(path) => {
                    std::fs::remove_file(&path).map_err(Error::io(&path))?;
                    report.removed += 1;
                    prune_empty_parents(root, rel);
                }
                Found::Link(at) => return Err(unsafe_path(&at, "it is a symlink")),
                Found::Absent | Found::Dir(_) | Found::FileParent(_) => {}
            }
        }
        for rel in &plan.clear {
            if let Found::Dir(path) = existing(root, rel)? {
                // `remove_dir_all` does not follow symlinks inside the directory.
                std::fs::remove_dir_all(&path).map_err(Error::io(&path))?;
            }
        }
        for (rel, source) in &plan.writes {
            if let Found::FileParent(at) = existing(root, rel)? {
                // Only here with `force` (or when the file is an unchanged tracked one, removed
                // above): the user asked for it to go.
                let path = join_checked(root, &at)?;
                std::fs::remove_file(&path).map_err(Error::io(&path))?;
            }
            let path = ensure_parents(root, rel)?;
            report.bytes += self.write_source(&path, source)?;
            report.written += 1;
        }
        Ok(report)
    }

    /// Moves the working directory from the files `from` (what the current commit tracks) to
    /// commit `to`'s, for `command` (named in a refusal). Nothing is touched when the move would
    /// lose local work, unless `force`.
    ///
    /// # Errors
    /// [`Error::LocalChanges`] (nothing changed); [`Error::UnsafePath`] for a path the tree must
    /// not write; [`Error::Corrupt`] when stored data does not match its hash; I/O and store
    /// errors.
    pub(crate) fn update_worktree(
        &self,
        command: &str,
        from: &BTreeMap<String, FileSource>,
        to: &ObjectId,
        force: bool,
    ) -> Result<CheckoutReport, Error> {
        let tree = self.store().find_commit(to)?.tree;
        let files = self.tree_files(&tree)?;
        let plan = self.plan_update(command, from, &files, force)?;
        self.apply(plan)
    }

    /// The files the commit `HEAD` points to tracks (none before the first commit).
    pub(crate) fn head_files(&self) -> Result<BTreeMap<String, FileSource>, Error> {
        match self.head()? {
            Some(h) => self.tree_files(&self.store().find_commit(&h)?.tree),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Checks out `rev`, like `git checkout`: writes the files that differ between `HEAD`'s tree
    /// and its tree (verifying every hash), removes those it lacks, and moves `HEAD` (to the
    /// branch when `rev` is one, detached otherwise). Local changes to other files are kept.
    /// Refuses, changing nothing, when a tracked file it would overwrite or delete has
    /// uncommitted changes, or an untracked file is in its way — unless `force`, which discards
    /// them.
    ///
    /// # Errors
    /// [`Error::LocalChanges`]; [`Error::UnsafePath`]; [`Error::Corrupt`] when stored data does
    /// not match its hash; I/O and store errors.
    pub fn checkout(
        &self,
        rev: &str,
        force: bool,
    ) -> Result<CheckoutReport, crate::checkout::Error> {
        let resolved = self.resolve_revision(rev)?;
        let target = resolved.id;
        let old = self.head_files()?;
        let report = self.update_worktree("checkout", &old, &target, force)?;
        // A branch is switched to; anything else (a commit, a tag, a remote branch, `HEAD~2`)
        // detaches HEAD there, as git does.
        let head = match resolved.branch {
            Some(name) => Target::Symbolic(name),
            None => Target::Id(target),
        };
        if rev != "HEAD" {
            self.refs()
                .commit(Transaction::new().edit(RefKey::Head, Expected::Any, Some(head)))?;
        }
        Ok(report)
    }

    /// Takes the files `filter` selects from `rev` into the working directory, as they are there
    /// — files it selects that `rev` lacks are removed — without moving `HEAD` or touching other
    /// files: one part from another version (new training data with the old parameters), ready
    /// to commit as a mix. Unlike git, it refuses (changing nothing) when a selected file has
    /// uncommitted changes or an untracked file is in the way, unless `force`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `filter` selects everything or nothing in `rev` and `HEAD`;
    /// as [`checkout`](Self::checkout).
    pub fn checkout_paths(
        &self,
        rev: &str,
        filter: &crate::PathFilter,
        force: bool,
    ) -> Result<CheckoutReport, crate::checkout::Error> {
        if filter.is_all() {
            return Err(Error::Invalid(
                "name the parts or paths to take (`checkout <rev> -- <part|path>`), or check out the whole revision".to_owned(),
            )
            .into());
        }
        let target = self.resolve(rev)?;
        let mut from = self.head_files()?;
        from.retain(|rel, _| filter.matches(rel));
        let mut to = self.tree_files(&self.store().find_commit(&target)?.tree)?;
        to.retain(|rel, _| filter.matches(rel));
        if from.is_empty() && to.is_empty() {
            return Err(Error::Invalid(format!(
                "nothing in {rev} or HEAD matches the parts or paths given"
            ))
            .into());
        }
        // A file the same in HEAD and `rev` but changed here would be silently kept: say so.
        if !force {
            let mut modified = Vec::new();
            for (rel, source) in &to {
                if from.get(rel) == Some(source) && !self.matches(rel, source)? {
                    modified.push(Escaped(rel).to_string());
                }
            }
            if !modified.is_empty() {
                return Err(Error::LocalChanges {
                    command: "checkout".to_owned(),
                    modified,
                    untracked: Vec::new(),
                }
                .into());
            }
        }
        let plan = self.plan_update("checkout", &from, &to, force)?;
        Ok(self.apply(plan)?)
    }

    /// Writes working-directory file `rel` from `source` (parents made, never through a
    /// symlink); returns the bytes written.
    pub(crate) fn write_file_at(&self, rel: &str, source: &FileSource) -> Result<u64, Error> {
        let path = ensure_parents(self.root(), rel)?;
        self.write_source(&path, source)
    }

    /// Writes working-directory file `rel` by `fill`, atomically (parents made, never through
    /// a symlink).
    pub(crate) fn write_new(
        &self,
        rel: &str,
        fill: impl FnOnce(&mut std::fs::File) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let path = ensure_parents(self.root(), rel)?;
        worktree::write_atomic(&path, false, fill)
    }
}
