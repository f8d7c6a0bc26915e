//! The merge strategies: how tensors both sides changed are merged, and how they are named.

use agigit_dag::Side;
use agigit_delta::merge::{Strategy, Ties};

use crate::error::Error;

/// How tensors that both sides changed are merged (and, for [`Ours`](Self::Ours) and
/// [`Theirs`](Self::Theirs), how other conflicting files are resolved). Written and read as
/// `ours`, `theirs`, `average[:w]`, `task-arithmetic[:λ]`, `ties[:density]`; a merge commit
/// records the one it used (its `merge-strategy` header).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MergeStrategy {
    /// Keep our side of every conflicting tensor and file.
    Ours,
    /// Keep their side of every conflicting tensor and file.
    Theirs,
    /// `w · ours + (1 − w) · theirs` (w in [0, 1]; 0.5 by default).
    Average {
        /// Our side's weight.
        ours: f64,
    },
    /// `base + λ · ((ours − base) + (theirs − base))`: both sides' changes added, scaled (needs
    /// a merge base that has the tensor; λ = 1 by default).
    TaskArithmetic {
        /// The scale of the summed changes.
        lambda: f64,
    },
    /// TIES-merging of both sides' changes (Yadav et al., 2023), keeping this share (0–1] of
    /// each change's entries by magnitude (0.2 by default).
    Ties {
        /// The share kept.
        density: f64,
    },
}

impl MergeStrategy {
    /// Every strategy's name, as [`FromStr`](std::str::FromStr) takes it (with `:<number>`
    /// for the numeric ones).
    pub const NAMES: [&'static str; 5] = ["ours", "theirs", "average", "task-arithmetic", "ties"];

    /// The plain mean.
    pub const fn average() -> Self {
        MergeStrategy::Average { ours: 0.5 }
    }

    /// Both changes added, unscaled.
    pub const fn task_arithmetic() -> Self {
        MergeStrategy::TaskArithmetic { lambda: 1.0 }
    }

    /// TIES with the paper's defaults.
    pub const fn ties() -> Self {
        MergeStrategy::Ties { density: 0.2 }
    }

    pub(super) fn tensor_strategy(self) -> Strategy {
        match self {
            MergeStrategy::Ours => Strategy::Ours,
            MergeStrategy::Theirs => Strategy::Theirs,
            MergeStrategy::Average { ours } => Strategy::WeightedAverage(vec![ours, 1.0 - ours]),
            MergeStrategy::TaskArithmetic { lambda } => {
                Strategy::TaskArithmetic(vec![lambda, lambda])
            }
            MergeStrategy::Ties { density } => Strategy::Ties(Ties {
                density,
                ..Ties::default()
            }),
        }
    }

    /// The side that wins a conflict no number can resolve, if this strategy picks one.
    pub(super) fn side(self) -> Option<Side> {
        match self {
            MergeStrategy::Ours => Some(Side::Ours),
            MergeStrategy::Theirs => Some(Side::Theirs),
            _ => None,
        }
    }
}

impl std::fmt::Display for MergeStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MergeStrategy::Ours => f.write_str("ours"),
            MergeStrategy::Theirs => f.write_str("theirs"),
            MergeStrategy::Average { ours } => write!(f, "average:{ours}"),
            MergeStrategy::TaskArithmetic { lambda } => write!(f, "task-arithmetic:{lambda}"),
            MergeStrategy::Ties { density } => write!(f, "ties:{density}"),
        }
    }
}

impl std::str::FromStr for MergeStrategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let (name, number) = match s.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let value = |default: f64, ok: fn(f64) -> bool, range: &str| -> Result<f64, Error> {
            let Some(text) = number else {
                return Ok(default);
            };
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() && ok(v) => Ok(v),
                _ => Err(Error::Invalid(format!(
                    "merge strategy {s:?}: {name}'s number must be {range}"
                ))),
            }
        };
        Ok(match name {
            "ours" | "theirs" if number.is_some() => {
                return Err(Error::Invalid(format!(
                    "merge strategy {s:?}: {name} takes no number"
                )));
            }
            "ours" => MergeStrategy::Ours,
            "theirs" => MergeStrategy::Theirs,
            "average" => MergeStrategy::Average {
                ours: value(0.5, |v| (0.0..=1.0).contains(&v), "our weight, from 0 to 1")?,
            },
            "task-arithmetic" => MergeStrategy::TaskArithmetic {
                lambda: value(1.0, |v| v > 0.0, "a scale above 0")?,
            },
            "ties" => MergeStrategy::Ties {
                density: value(0.2, |v| v > 0.0 && v <= 1.0, "a share above 0, at most 1")?,
            },
            other => {
                return Err(Error::Invalid(format!(
                    "unknown merge strategy {other:?}: use one of {} (average:0.7, task-arithmetic:0.5, ties:0.3 set their number)",
                    Self::NAMES.join(", ")
                )));
            }
        })
    }
}
