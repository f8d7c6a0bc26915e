//! A commit's fidelity statement: for every tensor the commit encoded against a base, the codec
//! and the relative error it measured on what decoding gives (0 for exact codecs). It is the
//! commit's `fidelity` extra header, so the author's signature over the commit covers it, and a
//! reader knows before a checkout whether the weights are bit-exact or a lossy approximation.
//!
//! Encoding (UTF-8 text, one record per line, each line ending in `\n`):
//!
//! ```text
//! agigit-fidelity 1
//! <path>\t<tensor>\t<codec>\t<rank or ->\t<relative error>\t<elements>
//! ```
//!
//! Records are sorted by (path, tensor) with no repeats. `path` and `tensor` are 1–4096 bytes
//! with no control character; `codec` is 1–32 of `a-z 0-9 -`; the rank and the element count are
//! decimal without leading zeros; the error is an `f64` from 0 to 10¹² written as Rust's
//! `Display` writes it (the shortest digits that read back exactly, no exponent: `0`, `0.031`,
//! `0.00000015`). Anything else — another spelling of the same number included — does not
//! decode, so a statement has exactly one encoding.

use std::fmt::Write as _;

/// The commit extra header that holds the statement.
pub const HEADER: &str = "fidelity";

/// The most records a statement may hold.
pub const MAX_RECORDS: usize = 1 << 20;

const MAGIC: &str = "agigit-fidelity 1";
/// The largest relative error a record may state: past it, it is no measurement.
pub const MAX_ERROR: f64 = 1e12;
const MAX_NAME: usize = 4096;

/// One tensor's record.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorFidelity {
    /// The file's path in the model tree (`params/model.safetensors`).
    pub path: String,
    /// The tensor's name in it.
    pub tensor: String,
    /// The codec that stored it (`lossless`, `lowrank`, `signscale`, `dense`).
    pub codec: String,
    /// The rank kept, for a low-rank codec.
    pub rank: Option<u64>,
    /// ‖decoded − target‖_F / ‖target − base‖_F, measured on what decoding gives; 0 when exact.
    pub rel_error: f64,
    /// The tensor's element count (the weight of its error in the mean).
    pub elements: u64,
}

/// A commit's fidelity statement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fidelity {
    records: Vec<TensorFidelity>,
}

/// Why a statement does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fidelity statement, line {line}: {reason}")]
pub struct FidelityError {
    /// The line (1-based; 0 for the whole statement).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

fn bad(line: usize, reason: impl Into<String>) -> FidelityError {
    FidelityError {
        line,
        reason: reason.into(),
    }
}

fn check_name(line: usize, what: &str, s: &str) -> Result<(), FidelityError> {
    if s.is_empty() || s.len() > MAX_NAME || s.chars().any(char::is_control) {
        return Err(bad(
            line,
            format!("the {what} must be 1–{MAX_NAME} bytes with no control character"),
        ));
    }
    Ok(())
}

fn check_codec(line: usize, s: &str) -> Result<(), FidelityError> {
    if s.is_empty()
        || s.len() > 32
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad(line, "the codec must be 1–32 of a-z 0-9 -"));
    }
    Ok(())
}

fn decimal(line: usize, what: &str, s: &str) -> Result<u64, FidelityError> {
    let n: u64 = s
        .parse()
        .map_err(|_| bad(line, format!("the {what} is not a decimal number")))?;
    if n.to_string() != s {
        return Err(bad(line, format!("the {what} is not written canonically")));
    }
    Ok(n)
}

impl Fidelity {
    /// A statement of `records` (sorted here).
    ///
    /// # Errors
    /// [`FidelityError`] for a record the encoding cannot hold (a bad name, a negative or
    /// non-finite error, a repeat, too many records).
    pub fn new(mut records: Vec<TensorFidelity>) -> Result<Self, FidelityError> {
        records.sort_by(|a, b| (&a.path, &a.tensor).cmp(&(&b.path, &b.tensor)));
        let statement = Fidelity { records };
        // One check for both directions: what is built must decode back.
        Fidelity::decode(&statement.encode_unchecked())?;
        Ok(statement)
    }

    /// The records, by (path, tensor).
    pub fn records(&self) -> &[TensorFidelity] {
        &self.records
    }

    /// Whether every tensor is bit-exact.
    pub fn is_exact(&self) -> bool {
        self.records.iter().all(|r| r.rel_error == 0.0)
    }

    /// The largest relative error (0 for an empty or exact statement).
    pub fn worst(&self) -> f64 {
        self.records.iter().map(|r| r.rel_error).fold(0.0, f64::max)
    }

    /// The relative error averaged over the tensors, each weighted by its element count (never
    /// above [`worst`](Self::worst)).
    pub fn weighted_mean(&self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "weights")]
        let total: f64 = self.records.iter().map(|r| r.elements as f64).sum();
        if total == 0.0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss, reason = "weights")]
        let mean: f64 = self
            .records
            .iter()
            .map(|r| r.rel_error * (r.elements as f64 / total))
            .sum();
        mean.min(self.worst())
    }

    fn encode_unchecked(&self) -> Vec<u8> {
        let mut out = String::from(MAGIC);
        out.push('\n');
        for r in &self.records {
            let rank = r.rank.map_or_else(|| "-".to_owned(), |k| k.to_string());
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{rank}\t{}\t{}",
                r.path, r.tensor, r.codec, r.rel_error, r.elements
            );
        }
        out.into_bytes()
    }

    /// The statement's bytes (the `fidelity` header's value).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_unchecked()
    }

    /// Reads a statement (from a commit made by anyone: every field is checked).
    ///
    /// # Errors
    /// [`FidelityError`] for anything but the one encoding described in the module docs.
    pub fn decode(bytes: &[u8]) -> Result<Self, FidelityError> {
        let text = std::str::from_utf8(bytes).map_err(|_| bad(0, "not UTF-8"))?;
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad(0, "does not end with a newline"))?;
        let mut lines = body.split('\n');
        if lines.next() != Some(MAGIC) {
            return Err(bad(1, format!("does not start with {MAGIC:?}")));
        }
        let mut records: Vec<TensorFidelity> = Vec::new();
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            if records.len() == MAX_RECORDS {
                return Err(bad(n, format!("more than {MAX_RECORDS} records")));
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let [path, tensor, codec, rank, error, elements] = fields[..] else {
                return Err(bad(n, "a record has six tab-separated fields"));
            };
            check_name(n, "path", path)?;
            check_name(n, "tensor name", tensor)?;
            check_codec(n, codec)?;
            let rank = match rank {
                "-" => None,
                r => Some(decimal(n, "rank", r)?),
            };
            let rel_error: f64 = error
                .parse()
                .map_err(|_| bad(n, "the error is not a number"))?;
            if !(0.0..=MAX_ERROR).contains(&rel_error) || rel_error.to_string() != error {
                return Err(bad(
                    n,
                    format!(
                        "the error must be a number from 0 to {MAX_ERROR} in its shortest form"
                    ),
                ));
            }
            let elements = decimal(n, "element count", elements)?;
            if let Some(last) = records.last()
                && (last.path.as_str(), last.tensor.as_str()) >= (path, tensor)
            {
                return Err(bad(n, "records out of order or repeated"));
            }
            records.push(TensorFidelity {
                path: path.to_owned(),
                tensor: tensor.to_owned(),
                codec: codec.to_owned(),
                rank,
                rel_error,
                elements,
            });
        }
        Ok(Fidelity { records })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::float_cmp, reason = "tests")]
    use super::*;
    use proptest::prelude::*;

    fn record(path: &str, tensor: &str, codec: &str, err: f64, n: u64) -> TensorFidelity {
        TensorFidelity {
            path: path.to_owned(),
            tensor: tensor.to_owned(),
            codec: codec.to_owned(),
            rank: (codec == "lowrank").then_some(32),
            rel_error: err,
            elements: n,
        }
    }

    #[test]
    fn summarizes_worst_and_weighted_mean() {
        let f = Fidelity::new(vec![
            record("params/m.safetensors", "b", "lowrank", 0.04, 300),
            record("params/m.safetensors", "a", "lossless", 0.0, 100),
        ])
        .unwrap();
        assert_eq!(f.records()[0].tensor, "a", "sorted");
        assert_eq!(f.worst(), 0.04);
        assert!((f.weighted_mean() - 0.03).abs() < 1e-12);
        assert!(!f.is_exact());
        let text = String::from_utf8(f.encode()).unwrap();
        assert_eq!(
            text,
            "agigit-fidelity 1\nparams/m.safetensors\ta\tlossless\t-\t0\t100\nparams/m.safetensors\tb\tlowrank\t32\t0.04\t300\n"
        );
        assert!(Fidelity::default().is_exact());
        assert_eq!(Fidelity::default().weighted_mean(), 0.0);
    }

    #[test]
    fn every_other_spelling_is_refused() {
        let good = "agigit-fidelity 1\np\tt\tlowrank\t32\t0.04\t300\n";
        assert!(Fidelity::decode(good.as_bytes()).is_ok());
        for bad in [
            "agigit-fidelity 2\n",
            "agigit-fidelity 1",
            "agigit-fidelity 1\np\tt\tlowrank\t32\t0.040\t300\n",
            "agigit-fidelity 1\np\tt\tlowrank\t032\t0.04\t300\n",
            "agigit-fidelity 1\np\tt\tlowrank\t32\t-0.04\t300\n",
            "agigit-fidelity 1\np\tt\tlowrank\t32\tNaN\t300\n",
            "agigit-fidelity 1\np\tt\tlowrank\t32\tinf\t300\n",
            "agigit-fidelity 1\np\tt\tLowRank\t32\t0.04\t300\n",
            "agigit-fidelity 1\np\tt\tlowrank\t32\t0.04\n",
            "agigit-fidelity 1\np\t\tlowrank\t32\t0.04\t300\n",
            "agigit-fidelity 1\np\tt\x07\tlowrank\t32\t0.04\t300\n",
            "agigit-fidelity 1\np\tb\tdense\t-\t0\t1\np\ta\tdense\t-\t0\t1\n",
            "agigit-fidelity 1\np\ta\tdense\t-\t0\t1\np\ta\tdense\t-\t0\t1\n",
            "agigit-fidelity 1\n\n",
        ] {
            assert!(Fidelity::decode(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(Fidelity::new(vec![record("p", "t", "lowrank", f64::NAN, 1)]).is_err());
    }

    fn any_record() -> impl Strategy<Value = TensorFidelity> {
        (
            "[a-z/._]{1,20}",
            "[a-zA-Z0-9._]{1,20}",
            "[a-z0-9-]{1,12}",
            proptest::option::of(0u64..10_000),
            prop_oneof![Just(0.0), 0.0f64..1e3, 1e-30f64..1e-3, Just(MAX_ERROR)],
            any::<u64>(),
        )
            .prop_map(
                |(path, tensor, codec, rank, rel_error, elements)| TensorFidelity {
                    path,
                    tensor,
                    codec,
                    rank,
                    rel_error,
                    elements,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(records in proptest::collection::vec(any_record(), 0..20)) {
            let mut seen = std::collections::BTreeSet::new();
            let records: Vec<_> = records
                .into_iter()
                .filter(|r| seen.insert((r.path.clone(), r.tensor.clone())))
                .collect();
            let f = Fidelity::new(records).unwrap();
            prop_assert_eq!(Fidelity::decode(&f.encode()).unwrap(), f);
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(f) = Fidelity::decode(&bytes) {
                prop_assert_eq!(f.encode(), bytes, "one encoding per statement");
            }
        }
    }
}
