//! Placement of shards on servers, and the arithmetic of availability.
//!
//! With `S` servers and `N` shards per segment, shard `i` of segment `j` goes to server
//! `(i + j) mod S`: every server holds `⌊N/S⌋` or `⌈N/S⌉` shards of each segment, and which
//! servers hold the extra one rotates from segment to segment, so no server is always the busy
//! one.

use crate::code::{CodecSpec, MAX_SHARDS};

/// Why a placement or a plan cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// No servers.
    #[error("a placement needs at least one server")]
    NoServers,
    /// A probability outside `[0, 1]` (or NaN).
    #[error("{name} = {value} is not a probability in [0, 1]")]
    Probability {
        /// Which argument.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// More servers reached than exist.
    #[error("cannot reach {reached} of {servers} servers")]
    Reached {
        /// Servers asked for.
        reached: usize,
        /// Servers that exist.
        servers: usize,
    },
    /// No number of shards reaches the target.
    #[error(
        "no N up to {max_n} reaches a failure probability of {target:e} with {servers} servers up \
         with probability {p}: the best is {best:e} — add servers or accept more risk"
    )]
    Unreachable {
        /// The target failure probability.
        target: f64,
        /// The servers' availability.
        p: f64,
        /// Number of servers.
        servers: usize,
        /// The largest N tried.
        max_n: usize,
        /// The lowest failure probability any N gives.
        best: f64,
    },
}

/// Where each shard of each segment lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    servers: usize,
    k: usize,
    n: usize,
}

impl Placement {
    /// Spreads the `n` shards of a `k`-of-`n` code over `servers` servers.
    ///
    /// # Errors
    /// [`PlacementError::NoServers`] for zero servers.
    pub fn new(servers: usize, codec: &CodecSpec) -> Result<Self, PlacementError> {
        if servers == 0 {
            return Err(PlacementError::NoServers);
        }
        Ok(Self {
            servers,
            k: codec.k,
            n: codec.n,
        })
    }

    /// Number of servers.
    pub fn servers(&self) -> usize {
        self.servers
    }

    /// The server that holds shard `shard` of segment `segment`.
    pub fn server_of(&self, segment: usize, shard: usize) -> usize {
        (shard + segment % self.servers) % self.servers
    }

    /// The shards of segment `segment` that server `server` holds, in index order.
    pub fn shards_on(&self, segment: usize, server: usize) -> impl Iterator<Item = usize> + use<> {
        let first = (server + self.servers - segment % self.servers) % self.servers;
        (first..self.n).step_by(self.servers)
    }

    /// How many shards of every segment the least-loaded server holds (`⌊N/S⌋`), and how many
    /// servers hold one more (`N mod S`).
    fn loads(&self) -> (usize, usize) {
        (self.n / self.servers, self.n % self.servers)
    }

    /// `m`: the least number of servers such that *any* `m` of them hold at least `k` shards of
    /// every segment. `None` when even all servers together hold fewer than `k` (never for a
    /// valid code, whose `n ≥ k`).
    pub fn servers_needed(&self) -> Option<usize> {
        let (q, r) = self.loads();
        // Worst case: the servers holding fewer shards answer first.
        let mut held = 0;
        for m in 1..=self.servers {
            held += if m <= self.servers - r { q } else { q + 1 };
            if held >= self.k {
                return Some(m);
            }
        }
        None
    }

    /// The probability that one segment can be rebuilt by a client that contacts `reached`
    /// servers chosen uniformly at random among the `S`, each of which answers independently with
    /// probability `p`. With `reached = S`: the probability that the servers that are up hold at
    /// least `k` of its shards.
    ///
    /// Exact (up to floating point): a hypergeometric split of the reached servers between those
    /// holding `⌈N/S⌉` and `⌊N/S⌋` shards, then a binomial over which of them are up. When `S`
    /// divides `N` every segment has the same condition, so this is also the probability for the
    /// whole object.
    ///
    /// # Errors
    /// [`PlacementError::Probability`] for `p` outside `[0, 1]`, [`PlacementError::Reached`] for
    /// `reached > S`.
    pub fn rebuild_probability(&self, p: f64, reached: usize) -> Result<f64, PlacementError> {
        Ok(self.outcome(p, reached)?.0)
    }

    /// `1 − rebuild_probability`, computed directly so that tiny failure probabilities keep their
    /// precision.
    ///
    /// # Errors
    /// As [`rebuild_probability`](Self::rebuild_probability).
    pub fn failure_probability(&self, p: f64, reached: usize) -> Result<f64, PlacementError> {
        Ok(self.outcome(p, reached)?.1)
    }

    /// (success, failure) probabilities, summed separately.
    fn outcome(&self, p: f64, reached: usize) -> Result<(f64, f64), PlacementError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(PlacementError::Probability {
                name: "p",
                value: p,
            });
        }
        if reached > self.servers {
            return Err(PlacementError::Reached {
                reached,
                servers: self.servers,
            });
        }
        let (q, r) = self.loads();
        let (big, small) = (r, self.servers - r);
        let ln = LnFactorial::new(self.servers);
        let (mut success, mut failure) = (0.0, 0.0);
        // x reached servers hold q+1 shards, reached-x hold q.
        for x in reached.saturating_sub(small)..=reached.min(big) {
            let y = reached - x;
            let split =
                (ln.choose(big, x) + ln.choose(small, y) - ln.choose(self.servers, reached)).exp();
            let up_big = binomial(x, p, &ln);
            let up_small = binomial(y, p, &ln);
            for (a, pa) in up_big.iter().enumerate() {
                for (b, pb) in up_small.iter().enumerate() {
                    let mass = split * pa * pb;
                    if a * (q + 1) + b * q >= self.k {
                        success += mass;
                    } else {
                        failure += mass;
                    }
                }
            }
        }
        Ok((success, failure))
    }
}

/// `ln(i!)` for `0 ≤ i ≤ max`.
struct LnFactorial(Vec<f64>);

impl LnFactorial {
    fn new(max: usize) -> Self {
        let mut table = Vec::with_capacity(max + 1);
        let mut acc = 0.0;
        table.push(acc);
        for i in 1..=max {
            acc += (i as f64).ln();
            table.push(acc);
        }
        Self(table)
    }

    fn choose(&self, n: usize, k: usize) -> f64 {
        if k > n {
            f64::NEG_INFINITY
        } else {
            self.0[n] - self.0[k] - self.0[n - k]
        }
    }
}

/// P(exactly j of `trials` succeed), j = 0..=trials.
fn binomial(trials: usize, p: f64, ln: &LnFactorial) -> Vec<f64> {
    (0..=trials)
        .map(|j| {
            let ways = ln.choose(trials, j).exp();
            ways * p.powi(exponent(j)) * (1.0 - p).powi(exponent(trials - j))
        })
        .collect()
}

fn exponent(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The smallest `N` for a `k`-of-`N` code over `servers` servers, each up independently with
/// probability `p`, whose chance of failing to rebuild a segment (all servers tried) is at most
/// `max_failure`.
///
/// `N` is searched from `k + 1` upward; past `k × S` every server alone holds `k` shards and
/// nothing improves, so that is where the search stops.
///
/// # Errors
/// [`PlacementError::Unreachable`] when no `N` is good enough (the floor is `(1 − p)^S`: all
/// servers down), [`PlacementError::Probability`] for arguments outside `[0, 1]`.
pub fn plan_shards(
    k: usize,
    servers: usize,
    p: f64,
    max_failure: f64,
) -> Result<usize, PlacementError> {
    if !(0.0..=1.0).contains(&max_failure) {
        return Err(PlacementError::Probability {
            name: "max_failure",
            value: max_failure,
        });
    }
    if servers == 0 {
        return Err(PlacementError::NoServers);
    }
    let max_n = k
        .saturating_mul(servers)
        .saturating_add(servers)
        .min(MAX_SHARDS);
    let mut best = f64::INFINITY;
    for n in k + 1..=max_n {
        let spec = CodecSpec {
            kind: crate::CodecKind::Leopard,
            k,
            n,
        };
        let failure = Placement::new(servers, &spec)?.failure_probability(p, servers)?;
        if failure <= max_failure {
            return Ok(n);
        }
        best = best.min(failure);
    }
    Err(PlacementError::Unreachable {
        target: max_failure,
        p,
        servers,
        max_n,
        best,
    })
}
