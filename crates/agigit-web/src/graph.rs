//! The commit graph's lanes, as `git log --graph` draws them: each commit on a lane, lines from
//! the commits above that name it as a parent, lines down to its parents' lanes. Pure layout;
//! [`svg`] draws one row.

use maud::{Markup, html};

/// A line of one row of the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A lane that passes this row (a commit further down is expected on it).
    Through(usize),
    /// From the top of a lane into this row's commit (a child above names it as a parent).
    In(usize),
    /// From this row's commit down to a lane (one of its parents is expected there).
    Out(usize),
}

/// One commit's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    /// The lane the commit is drawn on.
    pub(crate) lane: usize,
    /// The lines of the row.
    pub(crate) segments: Vec<Segment>,
    /// The lanes the row spans (at least `lane + 1`).
    pub(crate) width: usize,
}

/// Lays out `commits`, newest first in topological order (children before parents), each with
/// the parents to draw edges to.
pub(crate) fn layout<T: Eq + Clone>(commits: &[(T, Vec<T>)]) -> Vec<Row> {
    let mut lanes: Vec<Option<T>> = Vec::new();
    let mut rows = Vec::with_capacity(commits.len());
    for (commit, parents) in commits {
        let hits: Vec<usize> = lanes
            .iter()
            .enumerate()
            .filter(|(_, l)| l.as_ref() == Some(commit))
            .map(|(i, _)| i)
            .collect();
        let lane = match hits.first() {
            Some(&i) => i,
            None => free(&mut lanes),
        };
        let mut segments: Vec<Segment> = hits.iter().map(|&j| Segment::In(j)).collect();
        segments.extend(
            lanes
                .iter()
                .enumerate()
                .filter(|(i, l)| l.is_some() && !hits.contains(i))
                .map(|(i, _)| Segment::Through(i)),
        );
        for &j in &hits {
            lanes[j] = None;
        }
        for (n, parent) in parents.iter().enumerate() {
            let expected = lanes.iter().position(|l| l.as_ref() == Some(parent));
            let to = match expected {
                // Toward a lane on the left, which already expects it: the lines join there.
                Some(k) if k < lane || n > 0 => k,
                // The first parent stays on this commit's lane, the leftmost (a lane further
                // right that expects it too joins it at the parent's row), as git draws a
                // branch's first-parent line straight down.
                _ if n == 0 => {
                    lanes[lane] = Some(parent.clone());
                    lane
                }
                _ => {
                    let k = free(&mut lanes);
                    lanes[k] = Some(parent.clone());
                    k
                }
            };
            if !segments.contains(&Segment::Out(to)) {
                segments.push(Segment::Out(to));
            }
        }
        while lanes.last().is_some_and(Option::is_none) {
            lanes.pop();
        }
        let width = segments
            .iter()
            .map(|s| match s {
                Segment::Through(i) | Segment::In(i) | Segment::Out(i) => *i,
            })
            .chain([lane])
            .max()
            .unwrap_or(0)
            + 1;
        rows.push(Row {
            lane,
            segments,
            width,
        });
    }
    rows
}

/// The first free lane (a new one at the end when none is).
fn free<T>(lanes: &mut Vec<Option<T>>) -> usize {
    match lanes.iter().position(Option::is_none) {
        Some(i) => i,
        None => {
            lanes.push(None);
            lanes.len() - 1
        }
    }
}

const LANE: usize = 14;
const HEIGHT: usize = 28;

/// One row drawn as an SVG `HEIGHT` pixels high; `merge` draws the commit as a merge.
pub(crate) fn svg(row: &Row, width: usize, merge: bool) -> Markup {
    let x = |lane: usize| LANE / 2 + lane * LANE;
    let (mid, node) = (HEIGHT / 2, x(row.lane));
    let pixels = width.max(row.width) * LANE;
    html! {
        svg class="graph" width=(pixels) height=(HEIGHT) viewBox={ "0 0 " (pixels) " " (HEIGHT) } aria-hidden="true" {
            @for s in &row.segments {
                @match s {
                    Segment::Through(i) => line class={ "lane l" (i % 6) } x1=(x(*i)) y1="0" x2=(x(*i)) y2=(HEIGHT) {},
                    Segment::In(i) => line class={ "lane l" (i % 6) } x1=(x(*i)) y1="0" x2=(node) y2=(mid) {},
                    Segment::Out(i) => line class={ "lane l" (i % 6) } x1=(node) y1=(mid) x2=(x(*i)) y2=(HEIGHT) {},
                }
            }
            circle class={ "node l" (row.lane % 6) @if merge { " merge" } } cx=(node) cy=(mid) r=(if merge { 5 } else { 4 }) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_line_stays_on_one_lane() {
        let rows = layout(&[(3, vec![2]), (2, vec![1]), (1, vec![])]);
        assert!(rows.iter().all(|r| r.lane == 0 && r.width == 1));
        assert_eq!(rows[0].segments, vec![Segment::Out(0)]);
        assert_eq!(rows[1].segments, vec![Segment::In(0), Segment::Out(0)]);
        assert_eq!(rows[2].segments, vec![Segment::In(0)]);
    }

    #[test]
    fn a_merge_opens_a_lane_and_its_base_closes_it() {
        // 4 merges 3 (main) and 2 (a side branch); both come from 1.
        let rows = layout(&[(4, vec![3, 2]), (3, vec![1]), (2, vec![1]), (1, vec![])]);
        assert_eq!(rows[0].segments, vec![Segment::Out(0), Segment::Out(1)]);
        assert_eq!(rows[1].lane, 0);
        assert_eq!(
            rows[1].segments,
            vec![Segment::In(0), Segment::Through(1), Segment::Out(0)]
        );
        // 2 is on lane 1; its parent 1 is already expected on lane 0: the line joins it.
        assert_eq!(rows[2].lane, 1);
        assert_eq!(
            rows[2].segments,
            vec![Segment::In(1), Segment::Through(0), Segment::Out(0)]
        );
        assert_eq!(rows[3].segments, vec![Segment::In(0)]);
        assert_eq!(rows[3].width, 1);
    }

    #[test]
    fn the_first_parent_line_stays_on_the_left() {
        // 5 merges 4 (main) and 3 (side); both come from 2; 2 from 1.
        let rows = layout(&[
            (5, vec![4, 3]),
            (3, vec![2]),
            (4, vec![2]),
            (2, vec![1]),
            (1, vec![]),
        ]);
        assert_eq!(rows[1].lane, 1);
        // 4 is on lane 0; its parent 2, which lane 1 expects too, is drawn on lane 0.
        assert_eq!(rows[2].lane, 0);
        assert_eq!(
            rows[2].segments,
            vec![Segment::In(0), Segment::Through(1), Segment::Out(0)]
        );
        // At 2 both lines join it on lane 0, and the rest of the history is one lane.
        assert_eq!(rows[3].lane, 0);
        assert_eq!(
            rows[3].segments,
            vec![Segment::In(0), Segment::In(1), Segment::Out(0)]
        );
        assert_eq!((rows[4].lane, rows[4].width), (0, 1));
    }

    /// A random DAG in topological order, newest first: commit `i` may have parents among the
    /// commits after it.
    fn dag() -> impl Strategy<Value = Vec<(usize, Vec<usize>)>> {
        (1usize..40).prop_flat_map(|n| {
            proptest::collection::vec(
                proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
                n,
            )
            .prop_map(move |choices| {
                choices
                    .into_iter()
                    .enumerate()
                    .map(|(i, picks)| {
                        let mut parents: Vec<usize> = Vec::new();
                        if i + 1 < n {
                            for p in picks {
                                let parent = i + 1 + p.index(n - i - 1);
                                if !parents.contains(&parent) {
                                    parents.push(parent);
                                }
                            }
                        }
                        (i, parents)
                    })
                    .collect()
            })
        })
    }

    proptest! {
        /// Every edge is drawn: a commit that a commit above names as a parent is entered from
        /// a lane, a commit with parents leaves toward each, and nothing is drawn outside the
        /// row's width.
        #[test]
        fn every_edge_is_connected(commits in dag()) {
            let rows = layout(&commits);
            for (i, (commit, parents)) in commits.iter().enumerate() {
                let row = &rows[i];
                let named = commits[..i].iter().any(|(_, ps)| ps.contains(commit));
                let entered = row.segments.iter().any(|s| matches!(s, Segment::In(_)));
                prop_assert_eq!(named, entered);
                let outs = row.segments.iter().filter(|s| matches!(s, Segment::Out(_))).count();
                prop_assert!(outs <= parents.len());
                prop_assert_eq!(outs == 0, parents.is_empty());
                for s in &row.segments {
                    let (Segment::Through(l) | Segment::In(l) | Segment::Out(l)) = *s;
                    prop_assert!(l < row.width);
                }
                prop_assert!(row.lane < row.width);
            }
        }
    }
}
