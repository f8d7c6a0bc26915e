//! Element types: every dtype the safetensors format names, with a stable one-byte code for
//! payloads.

use std::fmt;
use std::str::FromStr;

use safetensors::Dtype as StDtype;

/// The element type of a tensor: every dtype of the safetensors format.
///
/// The `code` of each variant is part of the delta payload format (`docs/format.md` §7) and never
/// changes; new dtypes get new codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
#[allow(
    non_camel_case_types,
    reason = "the names are the safetensors spellings"
)]
pub enum DType {
    /// Boolean, one byte per value.
    BOOL,
    /// MXFP4 (E2M1), two values per byte.
    F4,
    /// MXFP6 E2M3, four values per three bytes.
    F6_E2M3,
    /// MXFP6 E3M2, four values per three bytes.
    F6_E3M2,
    /// Unsigned byte.
    U8,
    /// Signed byte.
    I8,
    /// FP8 E5M2.
    F8_E5M2,
    /// FP8 E4M3.
    F8_E4M3,
    /// FP8 E8M0 (a shared scale exponent).
    F8_E8M0,
    /// FP8 E4M3, finite-only with unsigned zero (FNUZ).
    F8_E4M3FNUZ,
    /// FP8 E5M2, finite-only with unsigned zero (FNUZ).
    F8_E5M2FNUZ,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// IEEE 754 half precision.
    F16,
    /// bfloat16.
    BF16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// IEEE 754 single precision.
    F32,
    /// Complex number of two `f32` parts.
    C64,
    /// IEEE 754 double precision.
    F64,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
}

impl DType {
    /// Every dtype, in code order.
    pub const ALL: [DType; 22] = [
        DType::BOOL,
        DType::F4,
        DType::F6_E2M3,
        DType::F6_E3M2,
        DType::U8,
        DType::I8,
        DType::F8_E5M2,
        DType::F8_E4M3,
        DType::F8_E8M0,
        DType::F8_E4M3FNUZ,
        DType::F8_E5M2FNUZ,
        DType::I16,
        DType::U16,
        DType::F16,
        DType::BF16,
        DType::I32,
        DType::U32,
        DType::F32,
        DType::C64,
        DType::F64,
        DType::I64,
        DType::U64,
    ];

    /// The stable one-byte code used in delta payloads.
    pub const fn code(self) -> u8 {
        match self {
            DType::BOOL => 0,
            DType::F4 => 1,
            DType::F6_E2M3 => 2,
            DType::F6_E3M2 => 3,
            DType::U8 => 4,
            DType::I8 => 5,
            DType::F8_E5M2 => 6,
            DType::F8_E4M3 => 7,
            DType::F8_E8M0 => 8,
            DType::F8_E4M3FNUZ => 9,
            DType::F8_E5M2FNUZ => 10,
            DType::I16 => 11,
            DType::U16 => 12,
            DType::F16 => 13,
            DType::BF16 => 14,
            DType::I32 => 15,
            DType::U32 => 16,
            DType::F32 => 17,
            DType::C64 => 18,
            DType::F64 => 19,
            DType::I64 => 20,
            DType::U64 => 21,
        }
    }

    /// The dtype with this payload code.
    pub fn from_code(code: u8) -> Option<DType> {
        DType::ALL.get(usize::from(code)).copied()
    }

    /// Bits per element.
    pub const fn bits(self) -> usize {
        match self {
            DType::F4 => 4,
            DType::F6_E2M3 | DType::F6_E3M2 => 6,
            DType::BOOL
            | DType::U8
            | DType::I8
            | DType::F8_E5M2
            | DType::F8_E4M3
            | DType::F8_E8M0
            | DType::F8_E4M3FNUZ
            | DType::F8_E5M2FNUZ => 8,
            DType::I16 | DType::U16 | DType::F16 | DType::BF16 => 16,
            DType::I32 | DType::U32 | DType::F32 => 32,
            DType::C64 | DType::F64 | DType::I64 | DType::U64 => 64,
        }
    }

    /// Bytes per element, or `None` for the sub-byte dtypes (`F4`, `F6_*`).
    pub const fn size(self) -> Option<usize> {
        match self.bits() {
            4 | 6 => None,
            bits => Some(bits / 8),
        }
    }

    /// Whether values are floating point (including the 8-, 6- and 4-bit formats and `C64`).
    pub const fn is_float(self) -> bool {
        !matches!(
            self,
            DType::BOOL
                | DType::U8
                | DType::I8
                | DType::I16
                | DType::U16
                | DType::I32
                | DType::U32
                | DType::I64
                | DType::U64
        )
    }

    /// Whether the numeric codecs and merges can compute with this dtype: `F16`, `BF16`, `F32`,
    /// `F64` (values convert exactly to `f64` and round back to nearest-even).
    pub const fn is_arithmetic(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    /// The byte length of `numel` elements, or `None` if it overflows or does not fill whole bytes.
    pub fn byte_len(self, numel: usize) -> Option<usize> {
        let bits = numel.checked_mul(self.bits())?;
        (bits % 8 == 0).then_some(bits / 8)
    }

    /// The name safetensors uses (`"BF16"`, `"F8_E4M3"`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            DType::BOOL => "BOOL",
            DType::F4 => "F4",
            DType::F6_E2M3 => "F6_E2M3",
            DType::F6_E3M2 => "F6_E3M2",
            DType::U8 => "U8",
            DType::I8 => "I8",
            DType::F8_E5M2 => "F8_E5M2",
            DType::F8_E4M3 => "F8_E4M3",
            DType::F8_E8M0 => "F8_E8M0",
            DType::F8_E4M3FNUZ => "F8_E4M3FNUZ",
            DType::F8_E5M2FNUZ => "F8_E5M2FNUZ",
            DType::I16 => "I16",
            DType::U16 => "U16",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I32 => "I32",
            DType::U32 => "U32",
            DType::F32 => "F32",
            DType::C64 => "C64",
            DType::F64 => "F64",
            DType::I64 => "I64",
            DType::U64 => "U64",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dtype name that safetensors does not define.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype {0:?}: expected one of the safetensors names (F32, BF16, F8_E4M3, I64, …)")]
pub struct UnknownDType(pub String);

impl FromStr for DType {
    type Err = UnknownDType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DType::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDType(s.to_owned()))
    }
}

impl From<DType> for StDtype {
    fn from(d: DType) -> Self {
        match d {
            DType::BOOL => StDtype::BOOL,
            DType::F4 => StDtype::F4,
            DType::F6_E2M3 => StDtype::F6_E2M3,
            DType::F6_E3M2 => StDtype::F6_E3M2,
            DType::U8 => StDtype::U8,
            DType::I8 => StDtype::I8,
            DType::F8_E5M2 => StDtype::F8_E5M2,
            DType::F8_E4M3 => StDtype::F8_E4M3,
            DType::F8_E8M0 => StDtype::F8_E8M0,
            DType::F8_E4M3FNUZ => StDtype::F8_E4M3FNUZ,
            DType::F8_E5M2FNUZ => StDtype::F8_E5M2FNUZ,
            DType::I16 => StDtype::I16,
            DType::U16 => StDtype::U16,
            DType::F16 => StDtype::F16,
            DType::BF16 => StDtype::BF16,
            DType::I32 => StDtype::I32,
            DType::U32 => StDtype::U32,
            DType::F32 => StDtype::F32,
            DType::C64 => StDtype::C64,
            DType::F64 => StDtype::F64,
            DType::I64 => StDtype::I64,
            DType::U64 => StDtype::U64,
        }
    }
}

impl TryFrom<StDtype> for DType {
    type Error = UnknownDType;

    fn try_from(d: StDtype) -> Result<Self, Self::Error> {
        // safetensors' enum is non-exhaustive; go through the name so a dtype it adds later
        // is reported, not mistaken.
        format!("{d:?}").parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_and_round_trip() {
        for (i, d) in DType::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(d.code()), i);
            assert_eq!(DType::from_code(d.code()), Some(d));
            assert_eq!(d.as_str().parse::<DType>(), Ok(d));
            let st: StDtype = d.into();
            assert_eq!(DType::try_from(st), Ok(d));
            assert_eq!(st.bitsize(), d.bits(), "{d}");
        }
        assert_eq!(DType::from_code(22), None);
        assert!("f32".parse::<DType>().is_err());
    }

    #[test]
    fn byte_lengths() {
        assert_eq!(DType::F4.byte_len(3), None);
        assert_eq!(DType::F4.byte_len(4), Some(2));
        assert_eq!(DType::F6_E2M3.byte_len(4), Some(3));
        assert_eq!(DType::BF16.byte_len(5), Some(10));
        assert_eq!(DType::F64.byte_len(usize::MAX), None);
    }
}
