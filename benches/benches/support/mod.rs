//! What several benches share.

use std::time::Instant;

/// The least time of `rounds` runs of `run`, in seconds: noise on a shared machine only ever
/// slows a run down, so the minimum is the least disturbed figure.
pub(crate) fn best_of(rounds: usize, mut run: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}
