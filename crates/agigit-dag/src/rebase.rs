//! Rebase planning: which commits to replay onto a new base, and for a fork, how to move its
//! tensor deltas from one foundation commit to another.

use std::collections::HashSet;

use agigit_hash::ObjectId;

use crate::history::{Order, log};
use crate::object::{EntryMode, Tree};
use crate::store::{Find, FindError, FindExt};

/// The commits `git rebase --onto <onto> <upstream> <branch>` would replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebasePlan {
    /// The new base.
    pub onto: ObjectId,
    /// Commits on `branch` and not on `upstream`, oldest first, merges left out.
    pub replay: Vec<ObjectId>,
    /// The merge commits left out (their changes come with the commits replayed).
    pub skipped_merges: Vec<ObjectId>,
}

/// Plans replaying the commits of `branch` that `upstream` lacks onto `onto`.
pub fn plan_rebase<S: Find + ?Sized>(
    store: &S,
    upstream: &ObjectId,
    branch: &ObjectId,
    onto: &ObjectId,
) -> Result<RebasePlan, FindError> {
    let excluded: HashSet<ObjectId> = log(store, &[*upstream], Order::Topological, false)?
        .into_iter()
        .collect();
    let mut replay = Vec::new();
    let mut skipped_merges = Vec::new();
    for id in log(store, &[*branch], Order::Topological, false)?
        .into_iter()
        .rev()
    {
        if excluded.contains(&id) {
            continue;
        }
        if store.find_commit(&id)?.parents.len() > 1 {
            skipped_merges.push(id);
        } else {
            replay.push(id);
        }
    }
    Ok(RebasePlan {
        onto: *onto,
        replay,
        skipped_merges,
    })
}

/// What re-basing a fork does to one of its tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForkAction {
    /// The foundation's tensor is the same in both commits: the delta stays as it is.
    Keep,
    /// The foundation changed the tensor: re-encode the fork's tensor against `to` (materialize
    /// against the old base, encode against the new).
    Rebase {
        /// The old base tensor.
        from: ObjectId,
        /// The new base tensor.
        to: ObjectId,
    },
    /// The new foundation commit no longer has the tensor: store the fork's tensor whole.
    BaseRemoved {
        /// The old base tensor.
        from: ObjectId,
    },
    /// The fork stores this tensor whole (no base): nothing to do.
    NotADelta,
    /// The tensor's recorded base is not the old foundation's tensor at this path: the fork was
    /// not made from that commit, or was edited by hand.
    BaseMismatch {
        /// The base the tensor records.
        recorded: ObjectId,
        /// The old foundation's tensor at this path, if any.
        expected: Option<ObjectId>,
    },
}

/// One tensor of a fork re-base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRebase {
    /// Its path in the model tree.
    pub path: String,
    /// The fork's tensor object.
    pub tensor: ObjectId,
    /// What to do.
    pub action: ForkAction,
}

/// Plans moving a fork's tensors (tree `fork`) from the foundation tree `old` to `new`: every
/// tensor in the fork, in path order, with what its delta needs.
pub fn plan_fork_rebase<S: Find + ?Sized>(
    store: &S,
    fork: &ObjectId,
    old: &ObjectId,
    new: &ObjectId,
) -> Result<Vec<TensorRebase>, FindError> {
    let mut out = Vec::new();
    let (f, o, n) = (
        store.find_tree(fork)?,
        store.find_tree(old)?,
        store.find_tree(new)?,
    );
    fork_walk(store, "", &f, Some(&o), Some(&n), &mut out)?;
    Ok(out)
}

fn fork_walk<S: Find + ?Sized>(
    store: &S,
    prefix: &str,
    fork: &Tree,
    old: Option<&Tree>,
    new: Option<&Tree>,
    out: &mut Vec<TensorRebase>,
) -> Result<(), FindError> {
    for e in fork.entries() {
        let path = if prefix.is_empty() {
            e.name.clone()
        } else {
            format!("{prefix}/{}", e.name)
        };
        let at = |t: Option<&Tree>, mode: EntryMode| {
            t.and_then(|t| t.get(&e.name))
                .filter(|x| x.mode == mode)
                .map(|x| x.id)
        };
        match e.mode {
            EntryMode::Tree => {
                let load = |id: Option<ObjectId>| id.map(|id| store.find_tree(&id)).transpose();
                let (o, n) = (
                    load(at(old, EntryMode::Tree))?,
                    load(at(new, EntryMode::Tree))?,
                );
                let f = store.find_tree(&e.id)?;
                fork_walk(store, &path, &f, o.as_ref(), n.as_ref(), out)?;
            }
            EntryMode::Tensor => {
                let t = store.find_tensor(&e.id)?;
                let (old_id, new_id) = (at(old, EntryMode::Tensor), at(new, EntryMode::Tensor));
                let action = match t.base {
                    None => ForkAction::NotADelta,
                    Some(recorded) if Some(recorded) != old_id => ForkAction::BaseMismatch {
                        recorded,
                        expected: old_id,
                    },
                    Some(from) => match new_id {
                        Some(to) if to == from => ForkAction::Keep,
                        Some(to) => ForkAction::Rebase { from, to },
                        None => ForkAction::BaseRemoved { from },
                    },
                };
                out.push(TensorRebase {
                    path,
                    tensor: e.id,
                    action,
                });
            }
            EntryMode::File | EntryMode::Executable | EntryMode::Chunked => {}
        }
    }
    Ok(())
}
