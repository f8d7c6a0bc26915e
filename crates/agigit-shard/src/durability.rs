//! Durability: what a set of stored shards guarantees, in the seed's terms — "any `m` of these
//! `S` servers rebuild everything", or equivalently "any `f = S − m` servers may be lost".
//!
//! [`Holdings`] records how many shards of each segment each server holds (what a push stored,
//! what an audit found); its [`margin`](Holdings::margin) is the number of servers that may be
//! lost, whichever they are, with every segment still rebuildable, and
//! [`rebuild_odds`](Holdings::rebuild_odds) the probability that the servers that are up hold
//! `k` shards of every segment when each is up with probability `p`. A [`Durability`] is a
//! target a push must meet. Pure arithmetic: no I/O.

use std::collections::BTreeSet;

use crate::placement::{Placement, PlacementError};

/// Above this many servers, [`Holdings::rebuild_odds`] no longer enumerates every subset of
/// servers that may be up (2^S of them) and gives a lower bound instead.
pub const EXACT_ODDS_SERVERS: usize = 16;

/// A durability target: any `survive` servers may be lost and everything still rebuilds from
/// the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Durability {
    survive: usize,
}

impl Durability {
    /// Any `servers_lost` servers may be lost.
    pub fn survive(servers_lost: usize) -> Self {
        Self {
            survive: servers_lost,
        }
    }

    /// Any `m` of `servers` servers rebuild everything (`m ≥ 1`).
    ///
    /// # Errors
    /// [`PlacementError::Reached`] when `m` is 0 or more than `servers`.
    pub fn any_of(m: usize, servers: usize) -> Result<Self, PlacementError> {
        if m == 0 || m > servers {
            return Err(PlacementError::Reached {
                reached: m,
                servers,
            });
        }
        Ok(Self::survive(servers - m))
    }

    /// The most a placement's code gives on its servers with every shard where the placement
    /// puts it: the default target of a push.
    pub fn best(placement: &Placement) -> Self {
        Self::survive(
            placement
                .servers_needed()
                .map_or(0, |m| placement.servers() - m),
        )
    }

    /// How many servers may be lost.
    pub fn servers_lost(&self) -> usize {
        self.survive
    }

    /// `m`: how many of `servers` servers rebuild everything (at least 1).
    pub fn servers_needed(&self, servers: usize) -> usize {
        servers.saturating_sub(self.survive).max(1)
    }

    /// Whether `holdings` meet this target.
    pub fn is_met_by(&self, holdings: &Holdings) -> bool {
        holdings.margin().is_some_and(|m| m >= self.survive)
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "any {} servers lost", self.survive)
    }
}

/// The probability of rebuilding, with whether it is exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RebuildOdds {
    /// The probability that every segment can be rebuilt.
    pub probability: f64,
    /// `1 − probability`, computed on its own so that tiny values keep their precision.
    pub failure: f64,
    /// Exact (every subset of servers enumerated), or a lower bound on `probability` (the union
    /// bound over the segments' distinct holdings) above [`EXACT_ODDS_SERVERS`] servers.
    pub exact: bool,
}

/// How many shards of each segment each server holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holdings {
    servers: usize,
    k: usize,
    /// `segments × servers`, row-major.
    counts: Vec<u32>,
}

impl Holdings {
    /// No shards yet, for `segments` segments of a `k`-of-`n` code over `servers` servers.
    pub fn new(servers: usize, segments: usize, k: usize) -> Self {
        Self {
            servers,
            k,
            counts: vec![0; servers.saturating_mul(segments)],
        }
    }

    /// Number of servers.
    pub fn servers(&self) -> usize {
        self.servers
    }

    /// Number of segments.
    pub fn segments(&self) -> usize {
        self.counts.len().checked_div(self.servers).unwrap_or(0)
    }

    /// Shards needed to rebuild a segment.
    pub fn k(&self) -> usize {
        self.k
    }

    fn row(&self, segment: usize) -> &[u32] {
        &self.counts[segment * self.servers..(segment + 1) * self.servers]
    }

    /// Records one more shard of `segment` on `server`.
    ///
    /// # Panics
    /// When `segment` or `server` is out of range.
    pub fn add(&mut self, segment: usize, server: usize) {
        assert!(server < self.servers, "server {server} out of range");
        self.counts[segment * self.servers + server] += 1;
    }

    /// Records one shard fewer of `segment` on `server` (none left stays none).
    ///
    /// # Panics
    /// When `segment` or `server` is out of range.
    pub fn remove(&mut self, segment: usize, server: usize) {
        assert!(server < self.servers, "server {server} out of range");
        let c = &mut self.counts[segment * self.servers + server];
        *c = c.saturating_sub(1);
    }

    /// Shards of `segment` on `server`.
    pub fn count(&self, segment: usize, server: usize) -> usize {
        self.row(segment)[server] as usize
    }

    /// Shards of `segment` on all servers.
    pub fn held(&self, segment: usize) -> usize {
        self.row(segment).iter().map(|&c| c as usize).sum()
    }

    /// Shards of every segment on `server`.
    pub fn on_server(&self, server: usize) -> usize {
        (0..self.segments()).map(|s| self.count(s, server)).sum()
    }

    /// How many servers may be lost, whichever they are, with `segment` still rebuildable;
    /// `None` when the servers together hold fewer than `k` of its shards (it cannot be rebuilt
    /// now).
    pub fn segment_margin(&self, segment: usize) -> Option<usize> {
        margin_of(self.row(segment), self.k)
    }

    /// The least [`segment_margin`](Self::segment_margin) over all segments: how many servers
    /// may be lost with everything still rebuildable. `None` when some segment cannot be
    /// rebuilt now; `Some(servers)` when there are no segments.
    pub fn margin(&self) -> Option<usize> {
        (0..self.segments()).try_fold(self.servers, |least, s| {
            Some(least.min(self.segment_margin(s)?))
        })
    }

    /// Segments that cannot be rebuilt from all servers together.
    pub fn lost_segments(&self) -> Vec<usize> {
        (0..self.segments())
            .filter(|&s| self.held(s) < self.k)
            .collect()
    }

    /// `m`: how many servers, whichever they are, rebuild everything; `None` when something
    /// cannot be rebuilt now.
    pub fn servers_needed(&self) -> Option<usize> {
        self.margin().map(|f| (self.servers - f).max(1))
    }

    /// The [`Durability`] these holdings give; `None` when something cannot be rebuilt now.
    pub fn durability(&self) -> Option<Durability> {
        self.margin().map(Durability::survive)
    }

    /// Among the servers `usable` allows, the one holding the fewest shards of `segment`, ties
    /// broken by the order starting at `first` (the placement's choice): where a shard that
    /// cannot go where the placement says should go so that the margin suffers least.
    pub fn least_loaded(
        &self,
        segment: usize,
        first: usize,
        usable: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let row = self.row(segment);
        (0..self.servers)
            .map(|j| (first + j) % self.servers)
            .filter(|&s| usable(s))
            .min_by_key(|&s| row[s])
    }

    /// The probability that a client reaching every server, each up independently with
    /// probability `p`, rebuilds every segment.
    ///
    /// # Errors
    /// [`PlacementError::Probability`] for `p` outside `[0, 1]`.
    pub fn rebuild_odds(&self, p: f64) -> Result<RebuildOdds, PlacementError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(PlacementError::Probability {
                name: "p",
                value: p,
            });
        }
        // Segments with the same holdings fail together: each distinct row once.
        let rows: BTreeSet<&[u32]> = (0..self.segments()).map(|s| self.row(s)).collect();
        if rows.is_empty() {
            return Ok(RebuildOdds {
                probability: 1.0,
                failure: 0.0,
                exact: true,
            });
        }
        if self.servers <= EXACT_ODDS_SERVERS {
            return Ok(enumerate_odds(self.servers, p, |up| {
                rows.iter().all(|row| {
                    let held: usize = row
                        .iter()
                        .enumerate()
                        .filter(|(s, _)| up & (1 << s) != 0)
                        .map(|(_, &c)| c as usize)
                        .sum();
                    held >= self.k
                })
            }));
        }
        // Union bound: P(some segment fails) ≤ Σ P(this row fails), each exact by a
        // distribution over the shards the up servers hold.
        let failure: f64 = rows.iter().map(|row| row_failure(row, self.k, p)).sum();
        let failure = failure.min(1.0);
        Ok(RebuildOdds {
            probability: 1.0 - failure,
            failure,
            exact: false,
        })
    }
}

/// Which servers hold each shard of each segment, as an audit finds them: a shard may be on
/// several servers (a re-sent or repaired copy) or on none. The margin and the odds count
/// distinct shards: exact up to [`EXACT_ODDS_SERVERS`] servers (every subset enumerated), a
/// lower bound above (each shard counted on one of its holders only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    servers: usize,
    n: usize,
    k: usize,
    /// `segments × n` bitmasks of the servers holding each shard.
    holders: Vec<u64>,
}

impl ShardMap {
    /// The most servers a map can name.
    pub const MAX_SERVERS: usize = 64;

    /// No shards held yet, for `segments` segments of a `k`-of-`n` code over `servers` servers.
    ///
    /// # Errors
    /// [`PlacementError::NoServers`] for none, [`PlacementError::Reached`] for more than
    /// [`MAX_SERVERS`](Self::MAX_SERVERS).
    pub fn new(
        servers: usize,
        segments: usize,
        k: usize,
        n: usize,
    ) -> Result<Self, PlacementError> {
        if servers == 0 {
            return Err(PlacementError::NoServers);
        }
        if servers > Self::MAX_SERVERS {
            return Err(PlacementError::Reached {
                reached: servers,
                servers: Self::MAX_SERVERS,
            });
        }
        Ok(Self {
            servers,
            n,
            k,
            holders: vec![0; segments.saturating_mul(n)],
        })
    }

    /// Number of servers.
    pub fn servers(&self) -> usize {
        self.servers
    }

    /// Number of segments.
    pub fn segments(&self) -> usize {
        self.holders.len().checked_div(self.n).unwrap_or(0)
    }

    fn row(&self, segment: usize) -> &[u64] {
        &self.holders[segment * self.n..(segment + 1) * self.n]
    }

    /// Records that `server` holds shard `shard` of `segment`.
    ///
    /// # Panics
    /// When an index is out of range.
    pub fn set(&mut self, segment: usize, shard: usize, server: usize) {
        assert!(server < self.servers && shard < self.n, "out of range");
        self.holders[segment * self.n + shard] |= 1 << server;
    }

    /// Whether `server` holds shard `shard` of `segment`.
    pub fn holds(&self, segment: usize, shard: usize, server: usize) -> bool {
        self.row(segment)[shard] & (1 << server) != 0
    }

    /// Distinct shards of `segment` held anywhere.
    pub fn distinct(&self, segment: usize) -> usize {
        self.row(segment).iter().filter(|&&h| h != 0).count()
    }

    /// Shards of `segment` on `server`.
    pub fn count(&self, segment: usize, server: usize) -> usize {
        self.row(segment)
            .iter()
            .filter(|&&h| h & (1 << server) != 0)
            .count()
    }

    /// Shards of every segment on `server`.
    pub fn on_server(&self, server: usize) -> usize {
        self.holders
            .iter()
            .filter(|&&h| h & (1 << server) != 0)
            .count()
    }

    /// Segments fewer than `k` of whose shards are held anywhere: lost until more turn up.
    pub fn lost_segments(&self) -> Vec<usize> {
        (0..self.segments())
            .filter(|&s| self.distinct(s) < self.k)
            .collect()
    }

    /// Whether margins and odds are exact (every subset of servers enumerated).
    pub fn is_exact(&self) -> bool {
        self.servers <= EXACT_ODDS_SERVERS
    }

    /// Whether the servers in `up` hold `k` distinct shards of `row`.
    fn rebuilds(row: &[u64], up: u64, k: usize) -> bool {
        row.iter().filter(|&&h| h & up != 0).count() >= k
    }

    /// How many servers may be lost, whichever they are, with `segment` still rebuildable;
    /// `None` when all of them together cannot rebuild it.
    pub fn segment_margin(&self, segment: usize) -> Option<usize> {
        let row = self.row(segment);
        if !self.is_exact() {
            return self.lower_bound(&[segment]).segment_margin(0);
        }
        let all = (1u64 << self.servers) - 1;
        if !Self::rebuilds(row, all, self.k) {
            return None;
        }
        // The most servers up in a subset that cannot rebuild: any one more can.
        let worst = (0..all)
            .filter(|&up| !Self::rebuilds(row, up, self.k))
            .map(|up| up.count_ones() as usize)
            .max();
        Some(match worst {
            Some(up) => self.servers - (up + 1),
            None => self.servers,
        })
    }

    /// The least [`segment_margin`](Self::segment_margin) over all segments.
    pub fn margin(&self) -> Option<usize> {
        self.distinct_rows()
            .into_iter()
            .try_fold(self.servers, |least, s| {
                Some(least.min(self.segment_margin(s)?))
            })
    }

    /// One segment of each distinct row of holders.
    fn distinct_rows(&self) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        (0..self.segments())
            .filter(|&s| seen.insert(self.row(s)))
            .collect()
    }

    /// [`Holdings`] of `segments` with each shard on its lowest-numbered holder only: a lower
    /// bound on what the map guarantees.
    fn lower_bound(&self, segments: &[usize]) -> Holdings {
        let mut h = Holdings::new(self.servers, segments.len(), self.k);
        for (i, &s) in segments.iter().enumerate() {
            for &holders in self.row(s) {
                if holders != 0 {
                    h.add(i, holders.trailing_zeros() as usize);
                }
            }
        }
        h
    }

    /// The probability that a client reaching every server, each up independently with
    /// probability `p`, rebuilds every segment.
    ///
    /// # Errors
    /// [`PlacementError::Probability`] for `p` outside `[0, 1]`.
    pub fn rebuild_odds(&self, p: f64) -> Result<RebuildOdds, PlacementError> {
        let rows = self.distinct_rows();
        if !self.is_exact() {
            return self.lower_bound(&rows).rebuild_odds(p);
        }
        if !(0.0..=1.0).contains(&p) {
            return Err(PlacementError::Probability {
                name: "p",
                value: p,
            });
        }
        Ok(enumerate_odds(self.servers, p, |up| {
            rows.iter()
                .all(|&s| Self::rebuilds(self.row(s), up, self.k))
        }))
    }

    /// The copies to make so that `segment` survives `target` servers lost, using only the
    /// servers in `usable` (a bitmask), as (shard, server) pairs: first each shard held nowhere,
    /// on the usable server holding the fewest shards of the segment; then, while the margin is
    /// short, a shard of the busiest server (one on the fewest servers) copied to the least
    /// loaded usable server without it. Stops when the target holds or every usable server
    /// holds every shard (none for a segment that cannot be rebuilt); what it reaches is
    /// [`segment_margin`](Self::segment_margin) after [`set`](Self::set)ting the copies.
    pub fn plan_repair(&self, segment: usize, target: usize, usable: u64) -> Vec<(usize, usize)> {
        let mut map = Self {
            servers: self.servers,
            n: self.n,
            k: self.k,
            holders: self.row(segment).to_vec(),
        };
        let usable = usable & ((1u64 << self.servers) - 1);
        let mut copies = Vec::new();
        if map.distinct(0) < self.k {
            // Lost: nothing to rebuild the missing shards from.
            return copies;
        }
        let least_loaded = |map: &Self, shard: usize| {
            (0..map.servers)
                .filter(|&s| usable & (1 << s) != 0 && !map.holds(0, shard, s))
                .min_by_key(|&s| (map.count(0, s), s))
        };
        for shard in 0..self.n {
            if map.holders[shard] == 0
                && let Some(s) = least_loaded(&map, shard)
            {
                map.set(0, shard, s);
                copies.push((shard, s));
            }
        }
        for _ in 0..self.n * self.servers {
            if map.segment_margin(0).is_some_and(|m| m >= target) {
                break;
            }
            // A shard of the busiest server, the one on fewest servers first: the copy that
            // takes the most from the worst loss.
            let mut busiest: Vec<usize> = (0..map.servers).collect();
            busiest.sort_by_key(|&s| std::cmp::Reverse(map.count(0, s)));
            let step = busiest.iter().find_map(|&from| {
                let mut held: Vec<usize> = (0..map.n).filter(|&i| map.holds(0, i, from)).collect();
                held.sort_by_key(|&i| map.holders[i].count_ones());
                held.into_iter()
                    .find_map(|shard| least_loaded(&map, shard).map(|to| (shard, to)))
            });
            let Some((shard, to)) = step else { break };
            map.set(0, shard, to);
            copies.push((shard, to));
        }
        copies
    }
}

/// The odds over every subset of `servers` servers being up (each with probability `p`, the
/// subset as a bitmask), `rebuilds` saying whether that subset rebuilds everything. `servers` is
/// at most [`EXACT_ODDS_SERVERS`] here (2^S subsets).
fn enumerate_odds(servers: usize, p: f64, rebuilds: impl Fn(u64) -> bool) -> RebuildOdds {
    let (mut success, mut failure) = (0.0, 0.0);
    for up in 0u64..(1 << servers) {
        let ups = up.count_ones() as usize;
        let mass = p.powi(exponent(ups)) * (1.0 - p).powi(exponent(servers - ups));
        if rebuilds(up) {
            success += mass;
        } else {
            failure += mass;
        }
    }
    RebuildOdds {
        probability: success,
        failure,
        exact: true,
    }
}

/// Servers that may be lost from `row` with `k` shards left: the busiest go first.
fn margin_of(row: &[u32], k: usize) -> Option<usize> {
    let mut sorted: Vec<usize> = row.iter().map(|&c| c as usize).collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut left: usize = sorted.iter().sum();
    if left < k {
        return None;
    }
    let mut lost = 0;
    for c in sorted {
        if left - c < k {
            break;
        }
        left -= c;
        lost += 1;
    }
    Some(lost)
}

/// P(the up servers of `row` hold fewer than `k` shards), each up with probability `p`.
fn row_failure(row: &[u32], k: usize, p: f64) -> f64 {
    // dist[h]: P(the servers so far that are up hold h shards), h capped at k.
    let mut dist = vec![0.0; k + 1];
    dist[0] = 1.0;
    for &c in row {
        let mut next = vec![0.0; k + 1];
        for (h, &mass) in dist.iter().enumerate() {
            next[h] += mass * (1.0 - p);
            next[(h + c as usize).min(k)] += mass * p;
        }
        dist = next;
    }
    dist[..k].iter().sum()
}

fn exponent(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::{CodecKind, CodecSpec};
    use proptest::prelude::*;

    fn placed(servers: usize, k: usize, n: usize, segments: usize) -> Holdings {
        let placement = Placement::new(
            servers,
            &CodecSpec {
                kind: CodecKind::Leopard,
                k,
                n,
            },
        )
        .unwrap();
        let mut h = Holdings::new(servers, segments, k);
        for seg in 0..segments {
            for i in 0..n {
                h.add(seg, placement.server_of(seg, i));
            }
        }
        h
    }

    /// The margin by brute force: the largest f such that every set of f lost servers leaves
    /// k shards of every segment.
    fn brute_margin(h: &Holdings) -> Option<usize> {
        let s = h.servers();
        if !h.lost_segments().is_empty() {
            return None;
        }
        let mut best = 0;
        for f in 0..=s {
            let ok = (0u32..(1 << s))
                .filter(|m| m.count_ones() as usize == f)
                .all(|lost| {
                    (0..h.segments()).all(|seg| {
                        (0..s)
                            .filter(|x| lost & (1 << x) == 0)
                            .map(|x| h.count(seg, x))
                            .sum::<usize>()
                            >= h.k()
                    })
                });
            if ok {
                best = f;
            } else {
                break;
            }
        }
        Some(best)
    }

    #[test]
    fn the_default_code_on_five_servers_survives_three_lost() {
        // 4 of 10 over 5 servers: two shards each, any two servers hold four.
        let h = placed(5, 4, 10, 7);
        assert_eq!(h.margin(), Some(3));
        assert_eq!(h.servers_needed(), Some(2));
        let placement = Placement::new(
            5,
            &CodecSpec {
                kind: CodecKind::Leopard,
                k: 4,
                n: 10,
            },
        )
        .unwrap();
        assert_eq!(Durability::best(&placement), Durability::survive(3));
        assert!(Durability::survive(3).is_met_by(&h));
        assert!(!Durability::survive(4).is_met_by(&h));
    }

    #[test]
    fn shards_rerouted_to_the_least_loaded_servers_keep_the_margin() {
        // 4 of 10 over 3 servers (4, 3, 3): any 2 rebuild, one may be lost. Server 2 is down
        // during the push: its three shards go to the least loaded of the others, 5 and 5,
        // and one server may still be lost.
        let mut h = Holdings::new(3, 1, 4);
        for (s, c) in [(0, 4), (1, 3)] {
            for _ in 0..c {
                h.add(0, s);
            }
        }
        for _ in 0..3 {
            let s = h.least_loaded(0, 2, |s| s != 2).unwrap();
            h.add(0, s);
        }
        assert_eq!((h.count(0, 0), h.count(0, 1), h.count(0, 2)), (5, 5, 0));
        assert_eq!(h.held(0), 10);
        assert_eq!(h.margin(), Some(1));
        assert_eq!(placed(3, 4, 10, 1).margin(), Some(1));
        // Piling them on the next server instead (as "the next one that works" did): 7 and 3,
        // and losing the busy one loses the segment.
        let mut piled = Holdings::new(3, 1, 4);
        for (s, c) in [(0, 7), (1, 3)] {
            for _ in 0..c {
                piled.add(0, s);
            }
        }
        assert_eq!(piled.margin(), Some(0));
        assert_eq!(h.least_loaded(0, 0, |_| false), None);
    }

    #[test]
    fn a_segment_below_k_has_no_margin_and_is_listed() {
        let mut h = placed(3, 4, 6, 2);
        for s in 0..3 {
            h.remove(1, s);
            h.remove(1, s);
        }
        assert_eq!(h.held(1), 0);
        assert_eq!(h.segment_margin(1), None);
        assert_eq!(h.margin(), None);
        assert_eq!(h.lost_segments(), vec![1]);
        assert_eq!(h.servers_needed(), None);
        let odds = h.rebuild_odds(0.99).unwrap();
        assert_eq!(odds.probability, 0.0);
        assert!((odds.failure - 1.0).abs() < 1e-12);
    }

    #[test]
    fn odds_match_the_placement_formula_when_every_segment_is_alike() {
        // S divides N: every segment has the same row, so the whole pack's odds are one
        // segment's, which `Placement` computes in closed form.
        for (servers, k, n) in [(5, 4, 10), (4, 3, 8), (3, 2, 6), (2, 1, 2)] {
            let h = placed(servers, k, n, 4);
            let placement = Placement::new(
                servers,
                &CodecSpec {
                    kind: CodecKind::Leopard,
                    k,
                    n,
                },
            )
            .unwrap();
            for p in [0.5, 0.9, 0.99] {
                let ours = h.rebuild_odds(p).unwrap();
                let theirs = placement.rebuild_probability(p, servers).unwrap();
                assert!(ours.exact);
                assert!(
                    (ours.probability - theirs).abs() < 1e-12,
                    "{servers} {k}/{n} p={p}: {} vs {theirs}",
                    ours.probability
                );
                assert!((ours.probability + ours.failure - 1.0).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn the_bound_above_sixteen_servers_is_below_the_truth() {
        // 20 servers, 4 of 20: one shard each. Exact: P(at least 4 of 20 up).
        let h = placed(20, 4, 20, 3);
        let p: f64 = 0.3;
        let odds = h.rebuild_odds(p).unwrap();
        assert!(!odds.exact);
        let exact: f64 = (4..=20)
            .map(|j| {
                let ways = (0..j).fold(1.0, |acc, i| acc * (20 - i) as f64 / (i + 1) as f64);
                ways * p.powi(j) * (1.0 - p).powi(20 - j)
            })
            .sum();
        // Every row is alike here, so the bound is the exact value.
        assert!(
            (odds.probability - exact).abs() < 1e-9,
            "{odds:?} vs {exact}"
        );
    }

    #[test]
    fn any_of_and_survive_are_the_same_target() {
        assert_eq!(Durability::any_of(3, 5).unwrap(), Durability::survive(2));
        assert_eq!(Durability::survive(2).servers_needed(5), 3);
        assert!(Durability::any_of(0, 5).is_err());
        assert!(Durability::any_of(6, 5).is_err());
        assert!(Holdings::new(3, 1, 2).rebuild_odds(1.5).is_err());
    }

    #[test]
    fn a_shard_map_counts_copies_once_and_matches_holdings_without_them() {
        // Without copies a map is its holdings.
        let h = placed(5, 4, 10, 3);
        let mut map = ShardMap::new(5, 3, 4, 10).unwrap();
        let placement = Placement::new(
            5,
            &CodecSpec {
                kind: CodecKind::Leopard,
                k: 4,
                n: 10,
            },
        )
        .unwrap();
        for seg in 0..3 {
            for i in 0..10 {
                map.set(seg, i, placement.server_of(seg, i));
            }
        }
        assert_eq!(map.margin(), h.margin());
        assert_eq!(
            map.rebuild_odds(0.9).unwrap().probability,
            h.rebuild_odds(0.9).unwrap().probability
        );
        // The same shard on every server is one shard: nothing rebuilds a 4-of-10 segment.
        let mut same = ShardMap::new(3, 1, 4, 10).unwrap();
        for s in 0..3 {
            same.set(0, 0, s);
        }
        assert_eq!(same.distinct(0), 1);
        assert_eq!(same.margin(), None);
        assert_eq!(same.lost_segments(), vec![0]);
        assert!(ShardMap::new(65, 1, 1, 2).is_err());
    }

    #[test]
    fn a_repair_plan_restores_the_target_on_the_servers_left() {
        // 4 of 10 over 5 servers, two shards each; s1 and s3 lost theirs, s4 is down.
        let mut map = ShardMap::new(5, 1, 4, 10).unwrap();
        for i in 0..10 {
            let server = i % 5;
            if server == 0 || server == 2 {
                map.set(0, i, server);
            }
        }
        assert_eq!(map.distinct(0), 4);
        assert_eq!(map.segment_margin(0), Some(0));
        // Any 3 of the 5 must rebuild (2 lost), with s4 unusable.
        let usable = 0b01111;
        let plan = map.plan_repair(0, 2, usable);
        assert!(plan.iter().all(|&(_, s)| s != 4), "{plan:?}");
        for &(shard, server) in &plan {
            assert!(!map.holds(0, shard, server));
            map.set(0, shard, server);
        }
        assert!(map.segment_margin(0).unwrap() >= 2, "{plan:?} → {map:?}");
        // Nothing to do when the target holds.
        assert!(map.plan_repair(0, 2, usable).is_empty());
    }

    proptest! {
        #[test]
        fn a_map_margin_is_the_brute_force_margin(
            servers in 1usize..6,
            k in 1usize..5,
            rows in proptest::collection::vec(proptest::collection::vec(0u64..64, 6), 1..3),
        ) {
            let n = 6;
            let mut map = ShardMap::new(servers, rows.len(), k, n).unwrap();
            for (seg, row) in rows.iter().enumerate() {
                for (shard, &mask) in row.iter().enumerate() {
                    for s in 0..servers {
                        if mask & (1 << s) != 0 {
                            map.set(seg, shard, s);
                        }
                    }
                }
            }
            // Brute force: the largest f such that every f servers lost leave k distinct shards.
            let all = (1u64 << servers) - 1;
            let ok = |up: u64| (0..rows.len()).all(|seg| {
                (0..n).filter(|&i| (0..servers).any(|s| up & (1 << s) != 0 && map.holds(seg, i, s))).count() >= k
            });
            let expected = if ok(all) {
                Some((0..=servers).take_while(|&f| {
                    (0..=all).filter(|m| (all & !m).count_ones() as usize == f).all(ok)
                }).last().unwrap_or(0))
            } else {
                None
            };
            prop_assert_eq!(map.margin(), expected);
            // With every server usable, a plan reaches any target up to S − 1 (at worst every
            // server holds every shard), for each segment with k shards somewhere; copies only
            // go where the shard is not.
            for seg in 0..rows.len() {
                let target = servers - 1;
                let plan = map.plan_repair(seg, target, all);
                let mut repaired = map.clone();
                for &(shard, s) in &plan {
                    prop_assert!(!repaired.holds(seg, shard, s));
                    repaired.set(seg, shard, s);
                }
                if map.distinct(seg) >= k {
                    prop_assert!(repaired.segment_margin(seg).is_some_and(|m| m >= target));
                } else {
                    prop_assert!(plan.is_empty());
                }
            }
        }

        #[test]
        fn the_margin_is_the_brute_force_margin(
            servers in 1usize..7,
            k in 1usize..6,
            rows in proptest::collection::vec(proptest::collection::vec(0u32..4, 7), 1..4),
        ) {
            let mut h = Holdings::new(servers, rows.len(), k);
            for (seg, row) in rows.iter().enumerate() {
                for (s, &c) in row.iter().take(servers).enumerate() {
                    for _ in 0..c {
                        h.add(seg, s);
                    }
                }
            }
            prop_assert_eq!(h.margin(), brute_margin(&h));
            // The exact odds and the union bound agree on which side of the truth they are.
            let odds = h.rebuild_odds(0.8).unwrap();
            let bound = 1.0 - (0..h.segments())
                .map(|s| row_failure(h.row(s), k, 0.8))
                .sum::<f64>().min(1.0);
            prop_assert!(odds.probability + 1e-12 >= bound);
        }
    }
}
