//! Three-way merge planning per tree entry, in the spirit of git-theta: which entries to take
//! from which side, which tensors need a numeric merge (`agigit-delta`'s strategies), and which
//! paths conflict.

use std::collections::BTreeSet;

use agigit_hash::ObjectId;

use crate::object::{EntryMode, Tree, TreeEntry};
use crate::store::{Find, FindError, FindExt};

/// One side of a merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The branch being merged into.
    Ours,
    /// The branch being merged.
    Theirs,
}

/// Why a path conflicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictKind {
    /// Both sides changed a file (not a tensor) differently.
    BothModified,
    /// Both sides added a file at the path, differently.
    BothAdded,
    /// One side deleted what the other modified.
    DeleteModify {
        /// The side that deleted.
        deleted_by: Side,
    },
    /// The sides disagree on what the path is (a tree on one, a file or tensor on the other).
    KindChanged,
}

/// What to do with one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Only one side changed it: take that side (`None`: it deleted the entry).
    Take {
        /// The side that changed it.
        side: Side,
        /// Its entry.
        entry: Option<TreeEntry>,
    },
    /// Both sides made the same change.
    Same(Option<TreeEntry>),
    /// Both sides changed a tensor differently: merge the numbers with a strategy (ours, theirs,
    /// average, task arithmetic, TIES); `base` is `None` when both added it.
    Numeric {
        /// The tensor in the merge base.
        base: Option<TreeEntry>,
        /// Our tensor.
        ours: TreeEntry,
        /// Their tensor.
        theirs: TreeEntry,
    },
    /// The sides disagree in a way no strategy resolves.
    Conflict {
        /// Why.
        kind: ConflictKind,
        /// The entry in the base.
        base: Option<TreeEntry>,
        /// Ours.
        ours: Option<TreeEntry>,
        /// Theirs.
        theirs: Option<TreeEntry>,
    },
}

/// A merge plan: every path either side changed, with its resolution, in path order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergePlan {
    /// `(path, resolution)`, paths `/`-separated.
    pub entries: Vec<(String, Resolution)>,
}

impl MergePlan {
    /// Paths that conflict.
    pub fn conflicts(&self) -> impl Iterator<Item = (&str, &Resolution)> {
        self.entries
            .iter()
            .filter(|(_, r)| matches!(r, Resolution::Conflict { .. }))
            .map(|(p, r)| (p.as_str(), r))
    }

    /// Tensors that need a numeric strategy.
    pub fn numeric(&self) -> impl Iterator<Item = (&str, &Resolution)> {
        self.entries
            .iter()
            .filter(|(_, r)| matches!(r, Resolution::Numeric { .. }))
            .map(|(p, r)| (p.as_str(), r))
    }

    /// Whether the merge needs no decision: no conflicts and no numeric merges.
    pub fn is_clean(&self) -> bool {
        self.conflicts().next().is_none() && self.numeric().next().is_none()
    }
}

/// Plans the three-way merge of the trees `ours` and `theirs` whose merge base has tree `base`
/// (`None` for unrelated histories). Equal trees give an empty plan. Subtrees equal on both sides are not entered, so a merge
/// that touches one part of a model reads only that part.
pub fn plan_merge<S: Find + ?Sized>(
    store: &S,
    base: Option<&ObjectId>,
    ours: &ObjectId,
    theirs: &ObjectId,
) -> Result<MergePlan, FindError> {
    let mut plan = MergePlan::default();
    let load = |id: Option<&ObjectId>| -> Result<Tree, FindError> {
        id.map_or_else(|| Ok(Tree::default()), |id| store.find_tree(id))
    };
    if ours == theirs {
        // Nothing to reconcile: the result is either tree.
        return Ok(plan);
    }
    walk(
        store,
        "",
        &load(base)?,
        &load(Some(ours))?,
        &load(Some(theirs))?,
        &mut plan,
    )?;
    Ok(plan)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

fn walk<S: Find + ?Sized>(
    store: &S,
    prefix: &str,
    base: &Tree,
    ours: &Tree,
    theirs: &Tree,
    plan: &mut MergePlan,
) -> Result<(), FindError> {
    let names: BTreeSet<&str> = [base, ours, theirs]
        .iter()
        .flat_map(|t| t.entries().iter().map(|e| e.name.as_str()))
        .collect();
    for name in names {
        let (b, o, t) = (base.get(name), ours.get(name), theirs.get(name));
        let path = join(prefix, name);
        let same = |x: Option<&TreeEntry>, y: Option<&TreeEntry>| {
            x.map(|e| (e.mode, e.id)) == y.map(|e| (e.mode, e.id))
        };
        if same(o, t) {
            if !same(o, b) {
                plan.entries.push((path, Resolution::Same(o.cloned())));
            }
            continue;
        }
        if same(o, b) {
            plan.entries.push((
                path,
                Resolution::Take {
                    side: Side::Theirs,
                    entry: t.cloned(),
                },
            ));
            continue;
        }
        if same(t, b) {
            plan.entries.push((
                path,
                Resolution::Take {
                    side: Side::Ours,
                    entry: o.cloned(),
                },
            ));
            continue;
        }
        // Both changed, differently.
        let conflict = |kind| Resolution::Conflict {
            kind,
            base: b.cloned(),
            ours: o.cloned(),
            theirs: t.cloned(),
        };
        let resolution = match (o, t) {
            (Some(oe), Some(te)) if oe.mode == EntryMode::Tree && te.mode == EntryMode::Tree => {
                let sub_base = match b {
                    Some(be) if be.mode == EntryMode::Tree => store.find_tree(&be.id)?,
                    _ => Tree::default(),
                };
                let (so, st) = (store.find_tree(&oe.id)?, store.find_tree(&te.id)?);
                walk(store, &path, &sub_base, &so, &st, plan)?;
                continue;
            }
            (Some(oe), Some(te))
                if oe.mode == EntryMode::Tensor && te.mode == EntryMode::Tensor =>
            {
                Resolution::Numeric {
                    base: b.filter(|e| e.mode == EntryMode::Tensor).cloned(),
                    ours: oe.clone(),
                    theirs: te.clone(),
                }
            }
            (Some(oe), Some(te))
                if (oe.mode == EntryMode::Tree) != (te.mode == EntryMode::Tree) =>
            {
                conflict(ConflictKind::KindChanged)
            }
            (Some(oe), Some(te))
                if (oe.mode == EntryMode::Tensor) != (te.mode == EntryMode::Tensor) =>
            {
                conflict(ConflictKind::KindChanged)
            }
            (Some(_), Some(_)) if b.is_none() => conflict(ConflictKind::BothAdded),
            (Some(_), Some(_)) => conflict(ConflictKind::BothModified),
            (None, _) => conflict(ConflictKind::DeleteModify {
                deleted_by: Side::Ours,
            }),
            (_, None) => conflict(ConflictKind::DeleteModify {
                deleted_by: Side::Theirs,
            }),
        };
        plan.entries.push((path, resolution));
    }
    Ok(())
}
