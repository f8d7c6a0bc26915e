//! History: walks (`log`), ancestry and merge bases over any DAG of commits.

use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};

use agigit_hash::ObjectId;

use crate::object::{Commit, Kind};
use crate::store::{Find, FindError, FindExt};

/// The order of a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Every commit before its parents; among those ready, newest first (git's `--topo-order`).
    Topological,
    /// Newest first by commit time (git's default); a parent may precede a child only when
    /// their times are skewed.
    Time,
}

/// What a walk needs of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    time: i64,
    parents: Vec<ObjectId>,
}

/// Commits loaded once for a walk.
struct Graph<'s, S: ?Sized> {
    store: &'s S,
    nodes: HashMap<ObjectId, Node>,
    first_parent: bool,
    buf: Vec<u8>,
}

impl<'s, S: Find + ?Sized> Graph<'s, S> {
    fn new(store: &'s S, first_parent: bool) -> Self {
        Graph {
            store,
            nodes: HashMap::new(),
            first_parent,
            buf: Vec::new(),
        }
    }

    fn node(&mut self, id: &ObjectId) -> Result<&Node, FindError> {
        if !self.nodes.contains_key(id) {
            // Only the links: a walk over a long history need not decode every message.
            let body = self.store.find_kind(id, Kind::Commit, &mut self.buf)?;
            let (mut parents, time) = Commit::decode_links(body)
                .map_err(|source| FindError::Decode { id: *id, source })?;
            if self.first_parent {
                parents.truncate(1);
            }
            self.nodes.insert(*id, Node { time, parents });
        }
        Ok(&self.nodes[id])
    }

    /// Every commit reachable from `tips`, tips included.
    fn reachable(&mut self, tips: &[ObjectId]) -> Result<HashSet<ObjectId>, FindError> {
        let mut seen: HashSet<ObjectId> = tips.iter().copied().collect();
        let mut queue: VecDeque<ObjectId> = tips.iter().copied().collect();
        while let Some(id) = queue.pop_front() {
            let parents = self.node(&id)?.parents.clone();
            for p in parents {
                if seen.insert(p) {
                    queue.push_back(p);
                }
            }
        }
        Ok(seen)
    }
}

/// The commits reachable from `tips` in `order`, following only first parents if asked.
pub fn log<S: Find + ?Sized>(
    store: &S,
    tips: &[ObjectId],
    order: Order,
    first_parent: bool,
) -> Result<Vec<ObjectId>, FindError> {
    let mut g = Graph::new(store, first_parent);
    match order {
        Order::Time => {
            let mut out = Vec::new();
            let mut seen = HashSet::new();
            let mut heap = BinaryHeap::new();
            for t in tips {
                if seen.insert(*t) {
                    heap.push((g.node(t)?.time, *t));
                }
            }
            while let Some((_, id)) = heap.pop() {
                out.push(id);
                let parents = g.node(&id)?.parents.clone();
                for p in parents {
                    if seen.insert(p) {
                        heap.push((g.node(&p)?.time, p));
                    }
                }
            }
            Ok(out)
        }
        Order::Topological => {
            let all = g.reachable(tips)?;
            // Kahn's algorithm on the child → parent edges: a commit is ready once every child
            // (within the walk) has been emitted.
            let mut children: HashMap<ObjectId, usize> = all.iter().map(|id| (*id, 0)).collect();
            for id in &all {
                for p in &g.nodes[id].parents {
                    if let Some(c) = children.get_mut(p) {
                        *c += 1;
                    }
                }
            }
            let mut ready: BinaryHeap<(i64, ObjectId)> = children
                .iter()
                .filter(|(_, c)| **c == 0)
                .map(|(id, _)| (g.nodes[id].time, *id))
                .collect();
            let mut out = Vec::with_capacity(all.len());
            while let Some((_, id)) = ready.pop() {
                out.push(id);
                for p in &g.nodes[&id].parents {
                    if let Some(c) = children.get_mut(p) {
                        *c -= 1;
                        if *c == 0 {
                            ready.push((g.nodes[p].time, *p));
                        }
                    }
                }
            }
            Ok(out)
        }
    }
}

/// Whether `ancestor` is reachable from `descendant` (a commit is its own ancestor).
pub fn is_ancestor<S: Find + ?Sized>(
    store: &S,
    ancestor: &ObjectId,
    descendant: &ObjectId,
) -> Result<bool, FindError> {
    if ancestor == descendant {
        return Ok(true);
    }
    let mut g = Graph::new(store, false);
    let mut seen = HashSet::from([*descendant]);
    let mut queue = VecDeque::from([*descendant]);
    while let Some(id) = queue.pop_front() {
        let parents = g.node(&id)?.parents.clone();
        for p in parents {
            if p == *ancestor {
                return Ok(true);
            }
            if seen.insert(p) {
                queue.push_back(p);
            }
        }
    }
    Ok(false)
}

/// All best common ancestors of `a` and `b`: the common ancestors that are not ancestors of
/// another common ancestor. One in the usual case; several after criss-cross merges; none for
/// unrelated histories. Sorted by id.
pub fn merge_bases<S: Find + ?Sized>(
    store: &S,
    a: &ObjectId,
    b: &ObjectId,
) -> Result<Vec<ObjectId>, FindError> {
    let mut g = Graph::new(store, false);
    let from_a = g.reachable(&[*a])?;
    let from_b = g.reachable(&[*b])?;
    let common: HashSet<ObjectId> = from_a.intersection(&from_b).copied().collect();
    // Every proper ancestor of a common ancestor is common too, and not best: mark them by
    // walking down from the parents of every common ancestor.
    let mut dominated: HashSet<ObjectId> = HashSet::new();
    let mut queue: VecDeque<ObjectId> = common
        .iter()
        .flat_map(|id| g.nodes[id].parents.iter().copied())
        .collect();
    while let Some(id) = queue.pop_front() {
        if dominated.insert(id) {
            queue.extend(g.nodes[&id].parents.iter().copied());
        }
    }
    let best: BTreeSet<ObjectId> = common.difference(&dominated).copied().collect();
    Ok(best.into_iter().collect())
}
