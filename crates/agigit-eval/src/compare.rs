//! Whether one model beats another on the same documents, and by how much: the paired bootstrap
//! over documents that decides a round's champion, and the rule that gives ties and near-copies
//! to the earlier submission.
//!
//! Everything here is integer and f64 arithmetic in a fixed order from a stated seed: anyone
//! holding the same per-document losses computes the same bounds, bit for bit.

use crate::{DocumentLoss, Evaluation};

/// How the bootstrap runs. Part of a round's rules: every party must use the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bootstrap {
    /// Resamples drawn (at most [`MAX_SAMPLES`](Self::MAX_SAMPLES)).
    pub samples: u32,
    /// The one-sided confidence of the lower bound, in percent (50 to 99).
    pub confidence: u8,
    /// Where the resampling starts (a round takes it from its announcement's id).
    pub seed: u64,
}

impl Bootstrap {
    /// The most resamples.
    pub const MAX_SAMPLES: u32 = 100_000;
    /// The default: 1000 resamples, 95 % one-sided.
    pub const fn new(seed: u64) -> Self {
        Bootstrap {
            samples: 1000,
            confidence: 95,
            seed,
        }
    }

    /// These options with `samples` resamples and `confidence` percent.
    ///
    /// # Errors
    /// [`CompareError::Options`] outside 1..=[`MAX_SAMPLES`](Self::MAX_SAMPLES) and 50..=99.
    pub fn with(self, samples: u32, confidence: u8) -> Result<Self, CompareError> {
        if samples == 0 || samples > Self::MAX_SAMPLES || !(50..=99).contains(&confidence) {
            return Err(CompareError::Options {
                samples,
                confidence,
            });
        }
        Ok(Bootstrap {
            samples,
            confidence,
            ..self
        })
    }
}

/// Why two evaluations cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// Not the same documents, in the same order, with the same bytes.
    #[error("the evaluations are not of the same documents: {0}")]
    Documents(String),
    /// Options out of range.
    #[error(
        "a bootstrap of {samples} samples at {confidence} % is not allowed: 1 to 100000 samples, 50 to 99 %"
    )]
    Options {
        /// Samples asked for.
        samples: u32,
        /// Confidence asked for.
        confidence: u8,
    },
    /// A loss that is not a finite, non-negative number of bits.
    #[error("document {index} has a loss of {bits} bits")]
    Loss {
        /// Which document.
        index: usize,
        /// What it says.
        bits: f64,
    },
}

/// How much better `candidate` is than `base`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Bits `candidate` saves on the documents (negative when it is worse).
    pub bits_saved: f64,
    /// Those bits per byte of the documents.
    pub saved_per_byte: f64,
    /// The lower confidence bound of `saved_per_byte` over documents resampled.
    pub lower: f64,
    /// The bytes of the documents.
    pub bytes: u64,
}

/// SplitMix64: the same stream on every machine.
pub(crate) struct Stream(pub(crate) u64);

impl Stream {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias (Lemire's method).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        loop {
            let m = u128::from(self.next()) * u128::from(n);
            #[allow(clippy::cast_possible_truncation, reason = "the low half of a u128")]
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }
}

/// Whether `base` and `candidate` can be compared: the same documents (names and bytes, in
/// order), none empty of bytes all together, every loss a finite, non-negative number of bits.
///
/// # Errors
/// [`CompareError`] saying what differs.
pub fn comparable(base: &Evaluation, candidate: &Evaluation) -> Result<(), CompareError> {
    check(&base.documents, &candidate.documents)
}

fn check(base: &[DocumentLoss], candidate: &[DocumentLoss]) -> Result<(), CompareError> {
    if base.len() != candidate.len() {
        return Err(CompareError::Documents(format!(
            "{} documents against {}",
            base.len(),
            candidate.len()
        )));
    }
    if base.is_empty() {
        return Err(CompareError::Documents("there are none".into()));
    }
    for (index, (b, c)) in base.iter().zip(candidate).enumerate() {
        if b.name != c.name || b.bytes != c.bytes {
            return Err(CompareError::Documents(format!(
                "document {index} is {:?} ({} bytes) in one and {:?} ({} bytes) in the other",
                b.name, b.bytes, c.name, c.bytes
            )));
        }
        for bits in [b.bits, c.bits] {
            if !bits.is_finite() || bits < 0.0 {
                return Err(CompareError::Loss { index, bits });
            }
        }
    }
    if base.iter().all(|d| d.bytes == 0) {
        return Err(CompareError::Documents("they hold no bytes".into()));
    }
    Ok(())
}

/// Compares `candidate` with `base` on the same documents: the bits saved and a one-sided lower
/// confidence bound on the bits saved per byte, by a paired bootstrap over documents (each
/// resample draws as many documents as there are, with replacement, and takes the ratio of the
/// saved bits to the bytes drawn; the bound is the resamples' `100 − confidence` percentile).
///
/// Costs `samples × documents` steps.
///
/// # Errors
/// [`CompareError`]: different documents, a loss that is not a finite non-negative number.
#[allow(clippy::cast_precision_loss, reason = "byte counts as f64 ratios")]
pub fn compare(
    base: &Evaluation,
    candidate: &Evaluation,
    options: Bootstrap,
) -> Result<Comparison, CompareError> {
    let (b, c) = (&base.documents, &candidate.documents);
    check(b, c)?;
    let options = options.with(options.samples, options.confidence)?;
    let saved: Vec<f64> = b.iter().zip(c).map(|(b, c)| b.bits - c.bits).collect();
    let bytes: u64 = b.iter().map(|d| d.bytes).sum();
    let bits_saved: f64 = saved.iter().sum();
    let n = saved.len() as u64;
    let mut stream = Stream(options.seed);
    let mut ratios = Vec::with_capacity(options.samples as usize);
    for _ in 0..options.samples {
        let (mut s, mut by) = (0f64, 0u64);
        for _ in 0..n {
            #[allow(clippy::cast_possible_truncation, reason = "below n = len")]
            let i = stream.below(n) as usize;
            s += saved[i];
            by += b[i].bytes;
        }
        // A resample of empty documents only says nothing: count it as no saving.
        ratios.push(if by == 0 { 0.0 } else { s / by as f64 });
    }
    ratios.sort_by(f64::total_cmp);
    let at = (u64::from(100 - options.confidence) * u64::from(options.samples)) / 100;
    #[allow(clippy::cast_possible_truncation, reason = "below samples")]
    let lower = ratios[(at as usize).min(ratios.len() - 1)];
    Ok(Comparison {
        bits_saved,
        saved_per_byte: bits_saved / bytes as f64,
        lower,
        bytes,
    })
}

/// One step of a round's ladder: a submission that beat the leader before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// Its index in the submissions given.
    pub index: usize,
    /// How it compared with the leader it replaced (the incumbent for the first).
    pub over: Comparison,
}

/// Who leads after `submissions`, taken in the order given (the order they were submitted), each
/// compared with the leader so far — the incumbent first: a submission replaces the leader when
/// the lower bound of its saving over it is above `margin` bits per byte. The ladder is every
/// submission that took the lead, in order; the last is the champion.
///
/// So a tie or a near-copy of the leader never takes the lead (its saving over it is about
/// zero), whoever submitted it later, and a later, better model must beat the leader by the
/// margin; the bits each step saves over the one before add up to the champion's saving over
/// the incumbent.
///
/// # Errors
/// [`CompareError`] from any comparison: every evaluation must be of the incumbent's documents.
pub fn ladder(
    incumbent: &Evaluation,
    submissions: &[&Evaluation],
    margin: f64,
    options: Bootstrap,
) -> Result<Vec<Step>, CompareError> {
    let mut steps: Vec<Step> = Vec::new();
    for (index, s) in submissions.iter().enumerate() {
        let leader = steps.last().map_or(incumbent, |l| submissions[l.index]);
        let over = compare(leader, s, options)?;
        if over.lower > margin {
            steps.push(Step { index, over });
        }
    }
    Ok(steps)
}
