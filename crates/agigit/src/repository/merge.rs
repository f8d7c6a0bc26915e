//! Merge and rebase: three-way merges of model trees (`agigit-dag`'s plan), tensors that both
//! sides changed merged numerically (`agigit-delta`'s strategies), and a fork moved onto a new
//! foundation commit by replaying its deltas.
//!
//! Nothing moves until the whole result is built: a conflict stops the operation with every
//! conflicting path listed, and the branch, `HEAD` and the files are as they were.

use std::collections::BTreeMap;

use agigit_dag::refs::{Expected, RefKey, Target, Transaction};
use agigit_dag::{
    Commit, ConflictKind, EntryMode, FindExt, ForkBase, ObjectId, Resolution, Side, Tree,
    TreeEntry, WriteExt, is_ancestor, merge_bases, plan_merge, plan_rebase,
};

use super::strategy::MergeStrategy;
use crate::error::Error;
use crate::repository::Repository;
use crate::worktree;

/// The merge commit header that records the strategy used.
pub const MERGE_STRATEGY_HEADER: &str = "merge-strategy";

/// What a merge, a rebase or a fork rebase did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// The commit the branch points at now.
    pub commit: Option<ObjectId>,
    /// The branch already contained the other side: nothing changed.
    pub up_to_date: bool,
    /// The branch moved forward to the other side (no merge commit).
    pub fast_forward: bool,
    /// Tensors merged numerically, by path.
    pub merged_tensors: Vec<String>,
    /// Conflicting files resolved by taking one side (`--strategy ours|theirs`).
    pub resolved_by_side: Vec<String>,
    /// Commits written (a merge: 1; a rebase: one per commit replayed).
    pub commits: usize,
}

fn conflict_name(kind: &ConflictKind) -> &'static str {
    match kind {
        ConflictKind::BothModified => "both modified",
        ConflictKind::BothAdded => "both added",
        ConflictKind::DeleteModify {
            deleted_by: Side::Ours,
        } => "deleted by us",
        ConflictKind::DeleteModify {
            deleted_by: Side::Theirs,
        } => "deleted by them",
        ConflictKind::KindChanged => "file and directory",
    }
}

/// Path edits to a tree: `path → entry` (`None` removes it).
type Edits = BTreeMap<String, Option<TreeEntry>>;

/// Applies `edits` (paths relative to `tree`) and writes the trees that changed. Empty trees are
/// dropped, as a snapshot never writes one.
fn apply_edits(
    repo: &Repository,
    tree: Option<ObjectId>,
    edits: &Edits,
) -> Result<Option<ObjectId>, Error> {
    let mut current = match tree {
        Some(id) => repo.store().find_tree(&id)?,
        None => Tree::default(),
    };
    let mut nested: BTreeMap<&str, Edits> = BTreeMap::new();
    for (path, entry) in edits {
        match path.split_once('/') {
            None => match entry {
                Some(e) => {
                    let mut e = e.clone();
                    path.clone_into(&mut e.name);
                    current.insert(e)?;
                }
                None => {
                    current.remove(path);
                }
            },
            Some((first, rest)) => {
                nested
                    .entry(first)
                    .or_default()
                    .insert(rest.to_owned(), entry.clone());
            }
        }
    }
    for (name, sub) in nested {
        let existing = current
            .get(name)
            .filter(|e| e.mode == EntryMode::Tree)
            .map(|e| e.id);
        match apply_edits(repo, existing, &sub)? {
            Some(id) => {
                current.insert(TreeEntry::new(name, EntryMode::Tree, id))?;
            }
            None => {
                current.remove(name);
            }
        }
    }
    if current.is_empty() {
        return Ok(None);
    }
    Ok(Some(repo.store().write_tree(&current)?))
}

impl Repository {
    /// The tensors of a fork's foundation by (safetensors file path, tensor name), to store new
    /// tensors as deltas against.
    pub(crate) fn foundation_tensors(
        &self,
        base: &ForkBase,
    ) -> Result<BTreeMap<String, BTreeMap<String, ObjectId>>, Error> {
        let base_tree = self.store().find_commit(&base.commit)?.tree;
        let mut layouts = BTreeMap::new();
        for (rel, source) in self.tree_files(&base_tree)? {
            if let worktree::FileSource::Safetensors(t) = source {
                let layout = worktree::safetensors_layout(self.store(), &t)?;
                layouts.insert(rel, layout.tensors.into_iter().collect());
            }
        }
        Ok(layouts)
    }

    /// The lookup a [`worktree::DeltaPlan`] needs, over `layouts` (from
    /// [`foundation_tensors`](Self::foundation_tensors)).
    pub(crate) fn foundation_lookup<'a>(
        &'a self,
        layouts: &'a BTreeMap<String, BTreeMap<String, ObjectId>>,
    ) -> impl Fn(&str, &str) -> Result<Option<(ObjectId, agigit_delta::Tensor)>, Error> + 'a {
        move |rel, name| {
            let Some(id) = layouts.get(rel).and_then(|m| m.get(name)) else {
                return Ok(None);
            };
            Ok(Some((*id, self.tensor(name, id)?)))
        }
    }

    /// Stores a merged tensor at model-tree path `path`: in a fork, as a delta against the
    /// foundation's tensor when that pays; dense otherwise.
    fn write_merged_tensor(
        &self,
        foundation: Option<&BTreeMap<String, BTreeMap<String, ObjectId>>>,
        path: &str,
        tensor: &agigit_delta::Tensor,
    ) -> Result<ObjectId, Error> {
        let (file, name) = path.rsplit_once('/').unwrap_or(("", path));
        let rel = file.strip_prefix("params/").unwrap_or(file);
        if let Some(layouts) = foundation {
            let lookup = self.foundation_lookup(layouts);
            let plan = worktree::DeltaPlan {
                codec: &agigit_delta::Lossless::default(),
                base: &lookup,
                stats: std::sync::Mutex::new(worktree::DeltaStats::default()),
            };
            return worktree::write_fork_tensor(self.store(), &plan, rel, name, tensor.view());
        }
        worktree::write_dense_tensor(self.store(), tensor.dtype(), tensor.shape(), tensor.data())
    }

    /// Merges the model trees `ours` and `theirs` whose merge base has tree `base`. Returns the
    /// merged tree and what was merged; a conflict is an error listing every conflicting path.
    fn merge_trees(
        &self,
        base: Option<ObjectId>,
        ours: ObjectId,
        theirs: ObjectId,
        strategy: Option<MergeStrategy>,
        report: &mut MergeReport,
    ) -> Result<ObjectId, Error> {
        let plan = plan_merge(self.store(), base.as_ref(), &ours, &theirs)?;
        let foundation = match self.fork_base()? {
            Some(b) => Some(self.foundation_tensors(&b)?),
            None => None,
        };
        let mut edits = Edits::new();
        let mut conflicts = Vec::new();
        for (path, resolution) in plan.entries {
            match resolution {
                Resolution::Take {
                    side: Side::Ours, ..
                } => {}
                Resolution::Take { entry, .. } | Resolution::Same(entry) => {
                    edits.insert(path, entry);
                }
                Resolution::Numeric {
                    base,
                    ours: o,
                    theirs: t,
                } => {
                    let Some(strategy) = strategy else {
                        conflicts.push(format!("CONFLICT (tensor changed on both sides): {path}"));
                        continue;
                    };
                    let name = path.rsplit('/').next().unwrap_or(&path);
                    let (o_t, t_t) = (self.tensor(name, &o.id)?, self.tensor(name, &t.id)?);
                    let b_t = base.map(|b| self.tensor(name, &b.id)).transpose()?;
                    let merged = agigit_delta::merge::merge(
                        b_t.as_ref().map(agigit_delta::Tensor::view),
                        &[o_t.view(), t_t.view()],
                        &strategy.tensor_strategy(),
                    )
                    .map_err(Error::invalid_input(format_args!("merging tensor {path}")))?;
                    let id = self.write_merged_tensor(foundation.as_ref(), &path, &merged)?;
                    edits.insert(
                        path.clone(),
                        Some(TreeEntry::new(name, EntryMode::Tensor, id)),
                    );
                    report.merged_tensors.push(path);
                }
                Resolution::Conflict {
                    kind, theirs: t, ..
                } => match strategy.and_then(MergeStrategy::side) {
                    Some(Side::Ours) => report.resolved_by_side.push(path),
                    Some(Side::Theirs) => {
                        edits.insert(path.clone(), t);
                        report.resolved_by_side.push(path);
                    }
                    None => {
                        conflicts.push(format!("CONFLICT ({}): {path}", conflict_name(&kind)));
                    }
                },
            }
        }
        if !conflicts.is_empty() {
            return Err(Error::Conflict(conflicts));
        }
        apply_edits(self, Some(ours), &edits)?
            .ok_or_else(|| Error::Invalid("the merge leaves the model empty".to_owned()))
    }

    /// Moves the working directory from commit `old`'s files to `new`'s (refusing, unless
    /// `force`, to lose local work), then the current branch (or `HEAD`) from `old` to `new`.
    fn advance(
        &self,
        command: &str,
        old: ObjectId,
        new: ObjectId,
        force: bool,
    ) -> Result<(), Error> {
        let previous = self.tree_files(&self.store().find_commit(&old)?.tree)?;
        self.update_worktree(command, &previous, &new, force)?;
        let key = match self.current_branch()? {
            Some(b) => RefKey::Name(b),
            None => RefKey::Head,
        };
        self.refs().commit(Transaction::new().edit(
            key,
            Expected::Value(Target::Id(old)),
            Some(Target::Id(new)),
        ))?;
        Ok(())
    }

    /// Merges `rev` into the current branch, like `git merge`: nothing when it is already
    /// contained, a fast-forward when the branch is behind, else a merge commit with both as
    /// parents. Tensors both sides changed are merged by `strategy`; without one they conflict.
    /// Local changes to files the merge does not touch are kept; `force` discards those it would
    /// overwrite.
    ///
    /// # Errors
    /// [`Error::Conflict`] listing every conflicting path (nothing changed);
    /// [`Error::LocalChanges`] when it would overwrite uncommitted or untracked work (nothing
    /// changed); [`Error::UnknownRevision`].
    pub fn merge(
        &self,
        rev: &str,
        strategy: Option<MergeStrategy>,
        author: [u8; 32],
        force: bool,
    ) -> Result<MergeReport, crate::merge::Error> {
        self.merge_all(&[rev], strategy, author, force)
    }

    /// Merges every revision of `revs` into the current branch, as `git merge A B …` does:
    /// revisions the branch (or another of `revs`) already contains drop out; one left merges
    /// as [`merge`](Self::merge) does (a fast-forward when it can); several make one merge
    /// commit whose parents are `HEAD` and each of them in order (an octopus merge), their
    /// trees merged in turn, each against its merge base with `HEAD`.
    ///
    /// # Errors
    /// As [`merge`](Self::merge); [`Error::Invalid`] for an empty `revs`.
    pub fn merge_all(
        &self,
        revs: &[&str],
        strategy: Option<MergeStrategy>,
        author: [u8; 32],
        force: bool,
    ) -> Result<MergeReport, crate::merge::Error> {
        self.merge_revs(revs, strategy, author, force, None)
    }

    /// Merges `rev` into the current branch with a merge commit whose message is `message`,
    /// even where a fast-forward would do (`git merge --no-ff -m`): a record, in the branch's
    /// own history, of what was merged and why. Nothing when the branch already contains `rev`.
    ///
    /// # Errors
    /// As [`merge`](Self::merge).
    pub fn merge_no_ff(
        &self,
        rev: &str,
        message: &str,
        strategy: Option<MergeStrategy>,
        author: [u8; 32],
        force: bool,
    ) -> Result<MergeReport, crate::merge::Error> {
        self.merge_revs(&[rev], strategy, author, force, Some(message))
    }

    /// [`merge_all`](Self::merge_all); with `no_ff`, always a merge commit with that message.
    fn merge_revs(
        &self,
        revs: &[&str],
        strategy: Option<MergeStrategy>,
        author: [u8; 32],
        force: bool,
        no_ff: Option<&str>,
    ) -> Result<MergeReport, crate::merge::Error> {
        if revs.is_empty() {
            return Err(Error::Invalid("nothing to merge: name a revision".to_owned()).into());
        }
        let ours = self
            .head()?
            .ok_or_else(|| Error::UnknownRevision("HEAD".to_owned()))?;
        let resolved = revs
            .iter()
            .map(|r| Ok((*r, self.resolve(r)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        let contains =
            |a: &ObjectId, b: &ObjectId| is_ancestor(self.store(), b, a).map_err(Error::from);
        // What is left once HEAD's history and each other's are taken out (git's reduce_heads).
        let mut heads: Vec<(&str, ObjectId)> = Vec::new();
        for (i, (name, id)) in resolved.iter().enumerate() {
            if contains(&ours, id)? || heads.iter().any(|(_, h)| h == id) {
                continue;
            }
            let mut subsumed = false;
            for (j, (_, other)) in resolved.iter().enumerate() {
                if j != i && other != id && contains(other, id)? {
                    subsumed = true;
                    break;
                }
            }
            if !subsumed {
                heads.push((name, *id));
            }
        }
        let mut report = MergeReport {
            commit: Some(ours),
            ..MergeReport::default()
        };
        let theirs = match heads.as_slice() {
            [] => {
                report.up_to_date = true;
                return Ok(report);
            }
            [(_, only)] if no_ff.is_none() && contains(only, &ours)? => {
                self.advance("merge", ours, *only, force)?;
                report.fast_forward = true;
                report.commit = Some(*only);
                return Ok(report);
            }
            _ => heads,
        };
        let ours_commit = self.store().find_commit(&ours)?;
        let mut tree = ours_commit.tree;
        for (_, id) in &theirs {
            let base = merge_bases(self.store(), &ours, id)?.first().copied();
            let base_tree = base
                .map(|b| self.store().find_commit(&b).map(|c| c.tree))
                .transpose()?;
            let their_tree = self.store().find_commit(id)?.tree;
            tree = self.merge_trees(base_tree, tree, their_tree, strategy, &mut report)?;
        }
        let names: Vec<&str> = theirs.iter().map(|(n, _)| *n).collect();
        let mut parents = vec![ours];
        parents.extend(theirs.iter().map(|(_, id)| *id));
        // The strategy is recorded when it decided something: a tensor merged, a side taken.
        let extra = match strategy {
            Some(s) if !report.merged_tensors.is_empty() || !report.resolved_by_side.is_empty() => {
                vec![(MERGE_STRATEGY_HEADER.to_owned(), s.to_string().into_bytes())]
            }
            _ => Vec::new(),
        };
        let commit = Commit {
            tree,
            parents,
            base: ours_commit.base.clone(),
            author,
            time: crate::repository::now(),
            message: no_ff.map_or_else(|| format!("Merge {}", names.join(", ")), str::to_owned),
            extra,
        };
        let id = self.store().write_commit(&commit)?;
        self.advance("merge", ours, id, force)?;
        report.commit = Some(id);
        report.commits = 1;
        Ok(report)
    }

    /// Moves the current branch (or a detached `HEAD`) and the files forward to `rev`, which
    /// must descend from `HEAD` — what `pull <commit>` does once the commit is fetched. Nothing
    /// when `HEAD` already contains it.
    ///
    /// # Errors
    /// [`merge::Error::NotFastForward`](crate::merge::Error::NotFastForward) when `rev` does
    /// not descend from `HEAD` (merge it instead);
    /// [`Error::LocalChanges`] and [`Error::UnknownRevision`] as [`merge`](Self::merge).
    pub fn fast_forward_to(
        &self,
        rev: &str,
        force: bool,
    ) -> Result<MergeReport, crate::merge::Error> {
        let target = self.resolve(rev)?;
        let mut report = MergeReport::default();
        let Some(head) = self.head()? else {
            return Err(Error::UnknownRevision("HEAD".to_owned()).into());
        };
        report.commit = Some(head);
        let ancestor =
            |a: &ObjectId, b: &ObjectId| is_ancestor(self.store(), a, b).map_err(Error::from);
        if ancestor(&target, &head)? {
            report.up_to_date = true;
            return Ok(report);
        }
        if !ancestor(&head, &target)? {
            return Err(Error::NotFastForward {
                rev: rev.to_owned(),
                target,
                head,
            }
            .into());
        }
        self.advance("pull", head, target, force)?;
        report.fast_forward = true;
        report.commit = Some(target);
        Ok(report)
    }

    /// Replays the current branch's commits that `onto` lacks on top of `onto`, like
    /// `git rebase <onto>`: each commit's changes are merged into the new tip in turn (tensors
    /// both changed by `strategy`), keeping its author, time and message. Merge commits are left
    /// out (their changes come with the commits replayed).
    ///
    /// # Errors
    /// [`Error::Conflict`] for the first commit that does not apply (nothing changed);
    /// as [`merge`](Self::merge).
    pub fn rebase(
        &self,
        onto: &str,
        strategy: Option<MergeStrategy>,
        force: bool,
    ) -> Result<MergeReport, crate::merge::Error> {
        let head = self
            .head()?
            .ok_or_else(|| Error::UnknownRevision("HEAD".to_owned()))?;
        let onto_id = self.resolve(onto)?;
        let mut report = MergeReport {
            commit: Some(head),
            ..MergeReport::default()
        };
        if is_ancestor(self.store(), &onto_id, &head)? {
            report.up_to_date = true;
            return Ok(report);
        }
        let plan = plan_rebase(self.store(), &onto_id, &head, &onto_id)?;
        let mut tip = onto_id;
        for id in &plan.replay {
            let commit = self.store().find_commit(id)?;
            let parent_tree = match commit.parents.first() {
                Some(p) => Some(self.store().find_commit(p)?.tree),
                None => None,
            };
            let tip_tree = self.store().find_commit(&tip)?.tree;
            let tree = self
                .merge_trees(parent_tree, tip_tree, commit.tree, strategy, &mut report)
                .map_err(|e| match e {
                    Error::Conflict(mut list) => {
                        list.insert(
                            0,
                            format!("replaying {} ({:?})", id.short(), commit.message),
                        );
                        Error::Conflict(list)
                    }
                    other => other,
                })?;
            if tree == tip_tree {
                continue; // Already applied upstream.
            }
            let replayed = Commit {
                tree,
                parents: vec![tip],
                ..commit
            };
            tip = self.store().write_commit(&replayed)?;
            report.commits += 1;
        }
        self.advance("rebase", head, tip, force)?;
        report.commit = Some(tip);
        report.fast_forward = plan.replay.is_empty();
        Ok(report)
    }

    /// Moves this fork onto commit `new_base` of its foundation (which must be local: pull the
    /// foundation first): every tensor becomes `new + (fork − old)` — the fine-tune's change
    /// replayed on the new foundation — and is stored as a delta against the new foundation's
    /// tensor; tensors the fork left alone follow the new foundation. One commit records it.
    ///
    /// # Errors
    /// [`Error::Invalid`] when this repository is not a fork; [`Error::Conflict`] when a file
    /// changed on both sides; as [`merge`](Self::merge).
    pub fn rebase_fork(
        &self,
        new_base: &str,
        author: [u8; 32],
        force: bool,
    ) -> Result<MergeReport, crate::merge::Error> {
        let Some(old) = self.fork_base()? else {
            return Err(Error::Invalid(
                "this repository is not a fork: nothing to re-base".to_owned(),
            )
            .into());
        };
        let new_id = self.resolve(new_base)?;
        let head = self
            .head()?
            .ok_or_else(|| Error::UnknownRevision("HEAD".to_owned()))?;
        let mut report = MergeReport {
            commit: Some(head),
            ..MergeReport::default()
        };
        if new_id == old.commit {
            report.up_to_date = true;
            return Ok(report);
        }
        let (old_tree, new_tree) = (
            self.store().find_commit(&old.commit)?.tree,
            self.store().find_commit(&new_id)?.tree,
        );
        let fork_tree = self.store().find_commit(&head)?.tree;
        // Deltas are written against the new foundation from here on.
        self.set_fork_base(&old.repo, new_id)?;
        let merged = self.merge_trees(
            Some(old_tree),
            new_tree,
            fork_tree,
            Some(MergeStrategy::task_arithmetic()),
            &mut report,
        );
        let tree = match merged {
            Ok(tree) => tree,
            Err(e) => {
                self.set_fork_base(&old.repo, old.commit)?;
                return Err(e.into());
            }
        };
        let commit = Commit {
            tree,
            parents: vec![head],
            base: Some(ForkBase {
                repo: old.repo.clone(),
                commit: new_id,
            }),
            author,
            time: crate::repository::now(),
            message: format!("Re-base the fork onto {}", new_id.short()),
            extra: Vec::new(),
        };
        let id = self.store().write_commit(&commit)?;
        if let Err(e) = self.advance("rebase --fork", head, id, force) {
            self.set_fork_base(&old.repo, old.commit)?;
            return Err(e.into());
        }
        report.commit = Some(id);
        report.commits = 1;
        Ok(report)
    }
}
