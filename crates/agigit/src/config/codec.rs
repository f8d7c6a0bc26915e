//! `[push.codec]`: how a commit codes the tensors of a fork — the codec and its knobs.

use super::*;

/// How a fork's commits store tensors: the codec and its knobs (`[commit]` in the repository's
/// file; `agigit commit --codec …` overrides it field by field).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CodecConfig {
    /// `lossless` (bit-exact; the default), `lowrank` or `signscale` (lossy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// `lowrank`: keep exactly this rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<usize>,
    /// `lowrank`: the smallest rank within this relative error (‖decoded − target‖ / ‖Δ‖).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error: Option<f64>,
    /// `lowrank`: the smallest rank keeping this share (0–1) of ‖Δ‖².
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<f64>,
    /// `lowrank`: how singular vectors are stored: `f16`, `bf16`, `f32` or `banded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor_storage: Option<String>,
}

impl CodecConfig {
    /// The codecs' names, as `codec` takes them.
    pub const CODECS: [&'static str; 3] = ["lossless", "lowrank", "signscale"];

    /// `self` with every field `over` sets taken from it.
    #[must_use]
    pub fn overlay(&self, over: &CodecConfig) -> CodecConfig {
        CodecConfig {
            codec: over.codec.clone().or_else(|| self.codec.clone()),
            rank: over.rank.or(self.rank),
            max_error: over.max_error.or(self.max_error),
            energy: over.energy.or(self.energy),
            factor_storage: over
                .factor_storage
                .clone()
                .or_else(|| self.factor_storage.clone()),
        }
    }

    /// The codec's name (`lossless` when none is set).
    pub fn name(&self) -> &str {
        self.codec.as_deref().unwrap_or("lossless")
    }

    /// The codec these settings describe, running its products on the GPU when `cuda` (in a
    /// build with the `cuda` feature). Low-rank without a rank, error bound or energy keeps
    /// [`defaults::LOWRANK_RANK`] with banded factors.
    ///
    /// # Errors
    /// [`ConfigError::Codec`] for an unknown codec or storage, a knob the codec does not take,
    /// more than one way of choosing the rank, a value out of range, `lowrank` in a build
    /// without the `lowrank` feature, or `cuda` without the `cuda` feature.
    pub fn build(&self, cuda: bool) -> Result<Box<dyn agigit_delta::DeltaCodec>, ConfigError> {
        let bad = |reason: String| ConfigError::Codec { reason };
        let lowrank_knobs = self.rank.is_some()
            || self.max_error.is_some()
            || self.energy.is_some()
            || self.factor_storage.is_some();
        match self.name() {
            "lossless" | "signscale" if lowrank_knobs => Err(bad(format!(
                "--rank, --max-error, --energy and --factor-storage are for --codec lowrank, not {}",
                self.name()
            ))),
            "lossless" | "signscale" if cuda => Err(bad(format!(
                "--device cuda is for --codec lowrank; {} runs on the CPU",
                self.name()
            ))),
            "lossless" => Ok(Box::new(agigit_delta::Lossless::default())),
            "signscale" => Ok(Box::new(agigit_delta::SignScale)),
            "lowrank" => self.lowrank(cuda),
            other => Err(bad(format!(
                "unknown codec {other:?}: use one of {}",
                Self::CODECS.join(", ")
            ))),
        }
    }

    #[cfg(feature = "lowrank")]
    pub(super) fn lowrank(
        &self,
        cuda: bool,
    ) -> Result<Box<dyn agigit_delta::DeltaCodec>, ConfigError> {
        use agigit_delta::{FactorStorage, RankPolicy};
        let bad = |reason: String| ConfigError::Codec { reason };
        let policy = match (self.rank, self.max_error, self.energy) {
            (None, None, None) => RankPolicy::Fixed(defaults::LOWRANK_RANK),
            (Some(r), None, None) if r > 0 => RankPolicy::Fixed(r),
            (None, Some(e), None) if e > 0.0 && e.is_finite() => RankPolicy::RelError(e),
            (None, None, Some(s)) if s > 0.0 && s <= 1.0 => RankPolicy::Energy(s),
            (Some(_), None, None) => return Err(bad("--rank must be at least 1".to_owned())),
            (None, Some(_), None) => {
                return Err(bad("--max-error must be a positive number".to_owned()));
            }
            (None, None, Some(_)) => {
                return Err(bad("--energy must be in (0, 1]".to_owned()));
            }
            _ => {
                return Err(bad(
                    "give one of --rank, --max-error and --energy".to_owned()
                ));
            }
        };
        let storage = match self.factor_storage.as_deref() {
            None | Some("banded") => FactorStorage::delta_come(),
            Some("f16") => FactorStorage::F16,
            Some("bf16") => FactorStorage::BF16,
            Some("f32") => FactorStorage::F32,
            Some(other) => {
                return Err(bad(format!(
                    "unknown factor storage {other:?}: use f16, bf16, f32 or banded"
                )));
            }
        };
        let device = if cuda {
            #[cfg(feature = "cuda")]
            {
                agigit_delta::Device::new_cuda(0)
                    .map_err(|e| bad(format!("no CUDA device: {e}")))?
            }
            #[cfg(not(feature = "cuda"))]
            {
                return Err(bad(
                    "this build has no CUDA: build agigit with `--features cuda`".to_owned(),
                ));
            }
        } else {
            agigit_delta::Device::Cpu
        };
        let mut codec = agigit_delta::LowRank::new(device, policy);
        codec.storage = storage;
        Ok(Box::new(codec))
    }

    #[cfg(not(feature = "lowrank"))]
    pub(super) fn lowrank(
        &self,
        _cuda: bool,
    ) -> Result<Box<dyn agigit_delta::DeltaCodec>, ConfigError> {
        Err(ConfigError::Codec {
            reason: "this build has no low-rank encoder: build agigit with the `lowrank` feature"
                .to_owned(),
        })
    }
}
