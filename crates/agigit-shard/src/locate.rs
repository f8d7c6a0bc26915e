//! Finding shards on servers whose order the reader does not know.
//!
//! A writer with `S` servers puts shard `i` of segment `j` on its server `(i + j) mod S`
//! ([`Placement`](crate::Placement)). A reader that lists the same servers in the same order
//! finds every shard at the first try; one that lists a subset, a superset or another order
//! (a clone made from other relays, servers down) does not, and a wrong first guess costs a
//! round trip. A [`Locator`] learns the writer's placement from where shards turn up: it keeps
//! the latest answers (found here, not here) and the smallest period `S` and server for each
//! residue `(i + j) mod S` that explain them all, and guesses from that. It does no I/O: the
//! caller asks servers and tells it what they said.
//!
//! A shard the writer re-routed (its server refused it at push) breaks the pattern: no period
//! explains the answers until it ages out of the window, and meanwhile the locator guesses
//! nothing — the caller asks every server at once, as it would without one.

use std::collections::VecDeque;

/// Answers of each kind kept to learn from: found shards on this many distinct diagonals
/// `i + j` (a period is pinned once the diagonals found span more than it, so up to
/// [`MAX_PERIOD`] with room to spare), and as many "not here" answers — few enough to forget
/// an outlier soon. Found and missing answers are kept apart: a search asks every server, so
/// "not here" answers outnumber found ones by the server count, and in one window they would
/// crowd out the found diagonals until a period shorter than the writer's explained them all.
const WINDOW: usize = 96;

/// The largest writer server count learned. A writer with more servers is not modelled: its
/// shards are searched for, as without a locator.
pub const MAX_PERIOD: usize = 64;

/// What the locator believes: shard `(j, i)` sits on `at[(i + j) mod at.len()]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Model {
    at: Vec<Option<usize>>,
}

impl Model {
    fn server(&self, diagonal: u64) -> Option<usize> {
        self.at[residue(diagonal, self.at.len())]
    }

    fn is_mapped(&self, server: usize) -> bool {
        self.at.contains(&Some(server))
    }
}

/// `diagonal mod period`, for a period of at most [`MAX_PERIOD`].
#[allow(
    clippy::cast_possible_truncation,
    reason = "the residue is below the period, at most MAX_PERIOD"
)]
fn residue(diagonal: u64, period: usize) -> usize {
    (diagonal % period as u64) as usize
}

/// How a shard ranks for asking: lower is asked first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rank {
    /// Guessed on a server that is up: one round trip.
    Guessed,
    /// Where it is is unknown, and some reachable server may hold it.
    Unknown,
    /// Believed to sit on a server that is down or not listed: only a search may find it
    /// (the writer may have re-routed it).
    Unreachable,
}

/// Learns where a writer put its shards from the answers of the reader's servers.
///
/// A writer with `S` servers puts shard `i` of segment `j` on its server `(i + j) mod S`
/// ([`Placement`](crate::Placement)). A reader listing the same servers in the same order finds
/// every shard at the first try; one listing a subset, a superset or another order does not,
/// and a wrong guess costs a round trip. The locator keeps the latest answers (found here, not
/// here) and the smallest period and server per residue `(i + j) mod period` that explain
/// them all, and guesses from that; it starts from the reader's own placement. It does no
/// I/O: the caller asks servers and tells it what they said ([`found`](Self::found),
/// [`missing`](Self::missing), [`unreachable`](Self::unreachable)). A shard the writer
/// re-routed breaks the pattern: until it ages out of the window the locator guesses nothing
/// and the caller searches every server, as it would without one.
#[derive(Debug, Clone)]
pub struct Locator {
    servers: usize,
    down: Vec<bool>,
    /// `(i + j, server)`: server `server` had a shard on diagonal `i + j` — the latest answer
    /// per diagonal, oldest first.
    found: VecDeque<(u64, usize)>,
    /// `(i + j, server)`: server `server` had no shard on diagonal `i + j`, oldest first.
    missing: VecDeque<(u64, usize)>,
    model: Option<Model>,
}

impl Locator {
    /// A locator for a reader with `servers` servers, guessing at first that the writer had
    /// the same servers in the same order.
    pub fn new(servers: usize) -> Self {
        Locator {
            servers,
            down: vec![false; servers],
            found: VecDeque::with_capacity(WINDOW),
            missing: VecDeque::with_capacity(WINDOW),
            model: (servers > 0).then(|| Model {
                at: (0..servers.min(MAX_PERIOD)).map(Some).collect(),
            }),
        }
    }

    /// The reader's server count.
    pub fn servers(&self) -> usize {
        self.servers
    }

    fn diagonal(segment: usize, index: usize) -> u64 {
        segment as u64 + index as u64
    }

    fn up(&self, server: usize) -> bool {
        self.down.get(server).is_some_and(|d| !d)
    }

    /// The server to ask first for shard `index` of `segment`, if the locator has a guess on a
    /// server that is up.
    pub fn guess(&self, segment: usize, index: usize) -> Option<usize> {
        self.model
            .as_ref()?
            .server(Self::diagonal(segment, index))
            .filter(|&s| self.up(s))
    }

    /// The servers to search at once for a shard, other than `asked` (the guess already
    /// asked): every server that is up — or, when none is left up, every server, as a last
    /// resort.
    pub fn search(&self, asked: Option<usize>) -> Vec<usize> {
        let any_up = (0..self.servers).any(|s| self.up(s));
        (0..self.servers)
            .filter(|&s| Some(s) != asked && (self.up(s) || !any_up))
            .collect()
    }

    /// How shard `index` of `segment` ranks for asking (see [`Rank`]).
    pub fn rank(&self, segment: usize, index: usize) -> Rank {
        let Some(model) = &self.model else {
            return Rank::Unknown;
        };
        match model.server(Self::diagonal(segment, index)) {
            Some(s) if self.up(s) => Rank::Guessed,
            Some(_) => Rank::Unreachable,
            // A residue no answer placed: on a reachable server the model has not placed yet,
            // if there is one; else on a server the reader does not reach.
            None if (0..self.servers).any(|s| self.up(s) && !model.is_mapped(s)) => Rank::Unknown,
            None => Rank::Unreachable,
        }
    }

    /// Server `server` had shard `index` of `segment`.
    pub fn found(&mut self, segment: usize, index: usize, server: usize) {
        self.answer(Self::diagonal(segment, index), server, true);
    }

    /// Server `server` answered that it does not have shard `index` of `segment`.
    pub fn missing(&mut self, segment: usize, index: usize, server: usize) {
        self.answer(Self::diagonal(segment, index), server, false);
    }

    /// Server `server` could not be reached: it is neither guessed nor searched again.
    pub fn unreachable(&mut self, server: usize) {
        if let Some(d) = self.down.get_mut(server) {
            *d = true;
        }
    }

    fn answer(&mut self, diagonal: u64, server: usize, found: bool) {
        if server >= self.servers {
            return;
        }
        if found {
            // One answer per diagonal: the same diagonal found again moves to the back.
            self.found.retain(|&(d, _)| d != diagonal);
            if self.found.len() == WINDOW {
                self.found.pop_front();
            }
            self.found.push_back((diagonal, server));
        } else {
            if self.missing.len() == WINDOW {
                self.missing.pop_front();
            }
            self.missing.push_back((diagonal, server));
        }
        let explained = self.model.as_ref().is_some_and(|m| {
            let at = m.server(diagonal);
            if found {
                at == Some(server)
            } else {
                at != Some(server)
            }
        });
        if !explained {
            self.model = self.fit();
        }
    }

    /// The smallest period, and the server of each residue, that explain every answer kept:
    /// each found shard on its residue's server, no server on two residues, no missing shard
    /// on its residue's server.
    fn fit(&self) -> Option<Model> {
        'period: for period in 1..=MAX_PERIOD {
            let mut at: Vec<Option<usize>> = vec![None; period];
            for &(diagonal, server) in &self.found {
                let slot = &mut at[residue(diagonal, period)];
                match *slot {
                    Some(s) if s != server => continue 'period,
                    Some(_) => {}
                    None => *slot = Some(server),
                }
            }
            let mut placed: Vec<usize> = at.iter().flatten().copied().collect();
            placed.sort_unstable();
            if placed.windows(2).any(|w| w[0] == w[1]) {
                continue;
            }
            let model = Model { at };
            if self
                .missing
                .iter()
                .any(|&(d, s)| model.server(d) == Some(s))
            {
                continue;
            }
            return Some(model);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Where a writer with `order` (reader's server index, or `None` for a server the reader
    /// does not list) put shard `index` of `segment`.
    fn placed(order: &[Option<usize>], segment: usize, index: usize) -> Option<usize> {
        order[(segment + index) % order.len()]
    }

    /// Reads `segments` segments of `n` shards, `k` needed, from a writer with `order`, the
    /// reader's servers `down` unreachable; returns the requests made per segment.
    fn read(
        locator: &mut Locator,
        order: &[Option<usize>],
        down: &[usize],
        segments: usize,
        (k, n): (usize, usize),
    ) -> Vec<usize> {
        let mut requests = Vec::new();
        for segment in 0..segments {
            let mut ranked: Vec<usize> = (0..n).collect();
            ranked.sort_by_key(|&i| (locator.rank(segment, i), i));
            let (mut good, mut asked) = (0, 0);
            for index in ranked {
                if good == k {
                    break;
                }
                let at = placed(order, segment, index);
                // Asks server `s` for the shard, tells the locator the answer; whether it had it.
                let mut ask = |locator: &mut Locator, s: usize| {
                    asked += 1;
                    if down.contains(&s) {
                        locator.unreachable(s);
                    } else if at == Some(s) {
                        locator.found(segment, index, s);
                        good += 1;
                        return true;
                    } else {
                        locator.missing(segment, index, s);
                    }
                    false
                };
                let first = locator.guess(segment, index);
                if first.is_some_and(|s| ask(locator, s)) {
                    continue;
                }
                for s in locator.search(first) {
                    ask(locator, s);
                }
            }
            assert_eq!(good, k, "segment {segment} not rebuilt");
            requests.push(asked);
        }
        requests
    }

    #[test]
    fn the_same_servers_in_the_same_order_are_found_at_the_first_try() {
        let mut locator = Locator::new(5);
        let order: Vec<Option<usize>> = (0..5).map(Some).collect();
        let requests = read(&mut locator, &order, &[], 20, (4, 10));
        assert!(requests.iter().all(|&r| r == 4), "{requests:?}");
    }

    #[test]
    fn a_subset_in_another_order_is_learned() {
        // The writer had five servers; the reader lists three of them, reversed, and not the
        // two others (down for it).
        let order = [Some(2), Some(1), Some(0), None, None];
        let mut locator = Locator::new(3);
        let requests = read(&mut locator, &order, &[], 40, (4, 10));
        // Once learned, each segment costs its four shards and nothing more.
        assert!(
            requests[10..].iter().all(|&r| r == 4),
            "after learning: {requests:?}"
        );
        let model = locator.model.as_ref().expect("a model");
        assert_eq!(model.at, vec![Some(2), Some(1), Some(0), None, None]);
        assert_eq!(locator.rank(0, 3), Rank::Unreachable);
        assert_eq!(locator.rank(0, 0), Rank::Guessed);
    }

    #[test]
    fn a_server_that_is_down_is_not_asked_again() {
        let order: Vec<Option<usize>> = (0..5).map(Some).collect();
        let mut locator = Locator::new(5);
        let requests = read(&mut locator, &order, &[1, 3], 30, (4, 10));
        assert!(locator.down[1] && locator.down[3]);
        assert!(requests[2..].iter().all(|&r| r == 4), "{requests:?}");
        assert!(locator.search(None).iter().all(|s| ![1, 3].contains(s)));
    }

    #[test]
    fn an_outlier_clears_the_model_until_it_ages_out() {
        let mut locator = Locator::new(3);
        for segment in 0..12 {
            for index in 0..3 {
                locator.found(segment, index, (segment + index) % 3);
            }
        }
        assert!(locator.guess(20, 0).is_some());
        // A re-routed shard: on server 1 where the pattern says 0.
        locator.found(12, 0, 1);
        assert_eq!(locator.guess(12, 1), None, "no period explains the answers");
        assert_eq!(locator.rank(12, 1), Rank::Unknown);
        for segment in 13..13 + WINDOW {
            for index in 0..3 {
                locator.found(segment, index, (segment + index) % 3);
            }
        }
        assert_eq!(locator.guess(200, 0), Some(2));
    }

    #[test]
    fn not_here_answers_do_not_crowd_out_the_writers_period() {
        // Eleven servers in another order, three shards of twelve needed: each segment's
        // search leaves ten "not here" answers for three found ones. Kept in one window they
        // left ~9 found diagonals, a period of 9 explained them, and every segment cost a
        // wrong guess and a search (13 requests) for ever (CI, proptest seed).
        let order: Vec<Option<usize>> = [2, 10, 1, 0, 6, 9, 8, 4, 3, 7, 5]
            .into_iter()
            .map(Some)
            .collect();
        let mut locator = Locator::new(11);
        let requests = read(&mut locator, &order, &[], 41, (3, 12));
        assert!(requests[30..].iter().all(|&r| r == 3), "{requests:?}");
        let model = locator.model.as_ref().expect("a model");
        assert_eq!(model.at, order);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Whatever the writer's servers and the reader's subset, every segment is rebuilt,
        /// and after a few segments no request is wasted when the writer's period fits.
        #[test]
        fn any_writer_order_is_read(
            writer in 1usize..12,
            reader_pick in proptest::collection::vec(any::<bool>(), 12),
            shuffle in any::<u64>(),
        ) {
            let (k, n) = (3usize, 12usize);
            // The reader lists the writer's servers it picked, in a shuffled order.
            let mut listed: Vec<usize> = (0..writer).filter(|&w| reader_pick[w]).collect();
            let mut state = shuffle | 1;
            for i in (1..listed.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                listed.swap(i, residue(state, i + 1));
            }
            let order: Vec<Option<usize>> = (0..writer)
                .map(|w| listed.iter().position(|&l| l == w))
                .collect();
            // Only readable when every segment has k shards on listed servers.
            let readable = (0..writer).all(|segment| {
                (0..n).filter(|&i| placed(&order, segment, i).is_some()).count() >= k
            });
            prop_assume!(readable && !listed.is_empty());
            let mut locator = Locator::new(listed.len());
            let requests = read(&mut locator, &order, &[], 3 * writer + 8, (k, n));
            let tail = &requests[2 * writer + 8..];
            prop_assert!(tail.iter().all(|&r| r == k), "{:?}", requests);
        }
    }
}
