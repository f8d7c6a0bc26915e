//! Training records: how a commit's weights were made — hyperparameters, seed, metrics, notes —
//! signed with the commit (its `training` extra header). What they were trained from is the
//! commit itself: its parent, its foundation (a fork's base) and the code and data parts in its
//! tree, so a record never repeats, and can never contradict, what the commit already says.
//!
//! A record is read from a user's JSON file (`agigit commit --record train.json`):
//!
//! ```json
//! {
//!   "hyperparameters": {"learning_rate": 0.0001, "epochs": 3, "optimizer": "adamw"},
//!   "seed": 42,
//!   "metrics": {"validation_loss": 2.31},
//!   "notes": "LoRA r=16, merged"
//! }
//! ```
//!
//! Every field is optional, but a record says something. Names are 1–64 of `A-Z a-z 0-9 _ . -`;
//! a hyperparameter is a finite number, a string (at most 1024 bytes, no control character) or
//! a boolean; a metric is a finite number; the seed an unsigned 64-bit integer; the notes at
//! most 4096 bytes. It is stored as JSON with sorted keys and no spaces — one encoding per
//! record, which is all a reader accepts.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The commit extra header that holds the record.
pub const HEADER: &str = "training";

/// The largest record stored (and read from a commit).
pub const MAX_RECORD_BYTES: usize = 64 << 10;

const MAX_NAME: usize = 64;
const MAX_TEXT: usize = 1024;
const MAX_NOTES: usize = 4096;
const FIELDS: [&str; 4] = ["hyperparameters", "metrics", "notes", "seed"];

/// A hyperparameter's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// A finite number.
    Number(f64),
    /// A string.
    Text(String),
    /// A boolean.
    Flag(bool),
}

/// How a commit's weights were trained.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct TrainingRecord {
    /// Hyperparameters by name.
    pub hyperparameters: BTreeMap<String, Param>,
    /// The random seed.
    pub seed: Option<u64>,
    /// Metrics by name (validation loss, accuracy, bits per byte…).
    pub metrics: BTreeMap<String, f64>,
    /// Free text.
    pub notes: Option<String>,
}

/// Why a record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("training record: {0}")]
pub struct RecordError(pub String);

fn bad(reason: impl Into<String>) -> RecordError {
    RecordError(reason.into())
}

fn check_name(what: &str, name: &str) -> Result<(), RecordError> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(bad(format!(
            "{what} name {name:?}: use 1–{MAX_NAME} of A-Z a-z 0-9 _ . -"
        )));
    }
    Ok(())
}

fn check_text(what: &str, s: &str, max: usize) -> Result<(), RecordError> {
    if s.len() > max || s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(bad(format!(
            "{what}: at most {max} bytes, no control characters"
        )));
    }
    Ok(())
}

fn finite(what: &str, v: &Value) -> Result<f64, RecordError> {
    v.as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| bad(format!("{what} must be a finite number")))
}

impl TrainingRecord {
    /// Reads a record from a user's JSON (any formatting), checking every field.
    ///
    /// # Errors
    /// [`RecordError`] naming the field that is wrong and what it should be.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(bad(format!("larger than {MAX_RECORD_BYTES} bytes")));
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let Value::Object(top) = value else {
            return Err(bad("must be a JSON object"));
        };
        let mut record = TrainingRecord::default();
        for (key, v) in &top {
            match key.as_str() {
                "hyperparameters" => {
                    let Value::Object(map) = v else {
                        return Err(bad("hyperparameters must be an object"));
                    };
                    for (name, p) in map {
                        check_name("hyperparameter", name)?;
                        let param = match p {
                            Value::Bool(b) => Param::Flag(*b),
                            Value::String(s) => {
                                check_text(&format!("hyperparameter {name}"), s, MAX_TEXT)?;
                                Param::Text(s.clone())
                            }
                            Value::Number(_) => {
                                Param::Number(finite(&format!("hyperparameter {name}"), p)?)
                            }
                            _ => {
                                return Err(bad(format!(
                                    "hyperparameter {name} must be a number, a string or true/false"
                                )));
                            }
                        };
                        record.hyperparameters.insert(name.clone(), param);
                    }
                }
                "metrics" => {
                    let Value::Object(map) = v else {
                        return Err(bad("metrics must be an object of numbers"));
                    };
                    for (name, m) in map {
                        check_name("metric", name)?;
                        record
                            .metrics
                            .insert(name.clone(), finite(&format!("metric {name}"), m)?);
                    }
                }
                "seed" => {
                    record.seed = Some(v.as_u64().ok_or_else(|| {
                        bad("seed must be a whole number from 0 to 18446744073709551615")
                    })?);
                }
                "notes" => {
                    let Value::String(s) = v else {
                        return Err(bad("notes must be a string"));
                    };
                    check_text("notes", s, MAX_NOTES)?;
                    record.notes = Some(s.clone());
                }
                other => {
                    return Err(bad(format!(
                        "unknown field {other:?}: a record has {} (what it was trained from is the commit's own parent, foundation and parts)",
                        FIELDS.join(", ")
                    )));
                }
            }
        }
        if record == TrainingRecord::default() {
            return Err(bad("empty: give hyperparameters, a seed, metrics or notes"));
        }
        if record.encode().len() > MAX_RECORD_BYTES {
            return Err(bad(format!("larger than {MAX_RECORD_BYTES} bytes")));
        }
        Ok(record)
    }

    /// The record as stored: JSON, keys sorted, no spaces.
    pub fn encode(&self) -> Vec<u8> {
        let mut top = Map::new();
        if !self.hyperparameters.is_empty() {
            let map: Map<String, Value> = self
                .hyperparameters
                .iter()
                .map(|(k, p)| {
                    let v = match p {
                        Param::Number(n) => number(*n),
                        Param::Text(s) => Value::String(s.clone()),
                        Param::Flag(b) => Value::Bool(*b),
                    };
                    (k.clone(), v)
                })
                .collect();
            top.insert("hyperparameters".into(), Value::Object(map));
        }
        if !self.metrics.is_empty() {
            let map: Map<String, Value> = self
                .metrics
                .iter()
                .map(|(k, m)| (k.clone(), number(*m)))
                .collect();
            top.insert("metrics".into(), Value::Object(map));
        }
        if let Some(n) = &self.notes {
            top.insert("notes".into(), Value::String(n.clone()));
        }
        if let Some(s) = self.seed {
            top.insert("seed".into(), Value::from(s));
        }
        serde_json::to_vec(&Value::Object(top)).unwrap_or_default()
    }

    /// Reads a stored record (from anyone's commit): only the one encoding [`encode`] writes
    /// is accepted.
    ///
    /// [`encode`]: Self::encode
    ///
    /// # Errors
    /// [`RecordError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let record = Self::from_json(bytes)?;
        if record.encode() != bytes {
            return Err(bad("not in its stored form (sorted keys, no spaces)"));
        }
        Ok(record)
    }

    /// One line for people: `lr=0.0001 epochs=3 seed=42 · validation_loss=2.31`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .hyperparameters
            .iter()
            .map(|(k, p)| match p {
                Param::Number(n) => format!("{k}={n}"),
                Param::Text(s) => format!("{k}={s}"),
                Param::Flag(b) => format!("{k}={b}"),
            })
            .collect();
        if let Some(s) = self.seed {
            parts.push(format!("seed={s}"));
        }
        let metrics: Vec<String> = self
            .metrics
            .iter()
            .map(|(k, m)| format!("{k}={m}"))
            .collect();
        match (parts.is_empty(), metrics.is_empty()) {
            (false, false) => format!("{} · {}", parts.join(" "), metrics.join(" ")),
            (false, true) => parts.join(" "),
            (true, false) => metrics.join(" "),
            (true, true) => self.notes.clone().unwrap_or_default(),
        }
    }

    /// The record of commit `commit`, if it carries one.
    ///
    /// # Errors
    /// [`crate::Error::CorruptData`] for a record that does not decode.
    pub fn of(commit: &agigit_dag::Commit) -> Result<Option<Self>, crate::Error> {
        commit
            .extra
            .iter()
            .find(|(k, _)| k == HEADER)
            .map(|(_, v)| {
                Self::decode(v).map_err(crate::Error::corrupt_data("the commit's training record"))
            })
            .transpose()
    }
}

/// A number as JSON: integers that are exactly an `i64` as integers (so `3` stays `3`).
fn number(n: f64) -> Value {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_precision_loss,
        reason = "only when exact"
    )]
    if n.fract() == 0.0 && n.abs() < 9e15 && (n as i64) as f64 == n {
        return Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_users_file_is_checked_and_stored_in_one_form() {
        let file = br#"{
            "seed": 42,
            "hyperparameters": {"learning_rate": 1e-4, "epochs": 3, "optimizer": "adamw", "lora": true},
            "metrics": {"validation_loss": 2.31}
        }"#;
        let r = TrainingRecord::from_json(file).unwrap();
        assert_eq!(r.seed, Some(42));
        assert_eq!(r.hyperparameters["epochs"], Param::Number(3.0));
        let stored = String::from_utf8(r.encode()).unwrap();
        assert_eq!(
            stored,
            r#"{"hyperparameters":{"epochs":3,"learning_rate":0.0001,"lora":true,"optimizer":"adamw"},"metrics":{"validation_loss":2.31},"seed":42}"#
        );
        assert_eq!(TrainingRecord::decode(stored.as_bytes()).unwrap(), r);
        assert_eq!(
            r.summary(),
            "epochs=3 learning_rate=0.0001 lora=true optimizer=adamw seed=42 · validation_loss=2.31"
        );
        // The user's spelling is not the stored one.
        assert!(TrainingRecord::decode(file).is_err());
    }

    #[test]
    fn wrong_records_are_refused_with_the_field_named() {
        for (bad, says) in [
            (&br#"[]"#[..], "object"),
            (br#"{}"#, "empty"),
            (br#"{"data": "x"}"#, "unknown field"),
            (br#"{"seed": -1}"#, "seed"),
            (br#"{"seed": 1.5}"#, "seed"),
            (br#"{"metrics": {"loss": "low"}}"#, "metric loss"),
            (
                br#"{"hyperparameters": {"bad name": 1}}"#,
                "hyperparameter name",
            ),
            (br#"{"hyperparameters": {"x": [1]}}"#, "hyperparameter x"),
            (br#"{"notes": "a\u0007b"}"#, "notes"),
            (br#"{"seed": 1"#, "not JSON"),
        ] {
            let e = TrainingRecord::from_json(bad).unwrap_err();
            assert!(
                e.0.contains(says),
                "{e} for {}",
                String::from_utf8_lossy(bad)
            );
        }
        let huge = format!(r#"{{"notes": "{}"}}"#, "x".repeat(MAX_RECORD_BYTES));
        assert!(TrainingRecord::from_json(huge.as_bytes()).is_err());
    }

    fn any_record() -> impl Strategy<Value = TrainingRecord> {
        let param = prop_oneof![
            (-1e6f64..1e6).prop_map(Param::Number),
            (0i64..1000).prop_map(|n| Param::Number(n as f64)),
            "[ -~]{0,12}".prop_map(Param::Text),
            any::<bool>().prop_map(Param::Flag),
        ];
        (
            proptest::collection::btree_map("[a-z_]{1,8}", param, 0..5),
            proptest::option::of(any::<u64>()),
            proptest::collection::btree_map("[a-z_]{1,8}", -1e3f64..1e3, 0..4),
            proptest::option::of("[ -~]{1,20}"),
        )
            .prop_map(|(hyperparameters, seed, metrics, notes)| TrainingRecord {
                hyperparameters,
                seed,
                metrics,
                notes,
            })
            .prop_filter("says something", |r| *r != TrainingRecord::default())
    }

    proptest! {
        #[test]
        fn round_trips(r in any_record()) {
            let bytes = r.encode();
            let back = TrainingRecord::decode(&bytes).unwrap();
            prop_assert_eq!(back.encode(), bytes);
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(r) = TrainingRecord::decode(&bytes) {
                prop_assert_eq!(r.encode(), bytes);
            }
        }
    }
}
