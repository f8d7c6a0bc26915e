//! Fixtures shared by the relay's integration tests.

#![allow(dead_code, reason = "each test binary uses a part")]

pub(crate) mod postgres;
pub(crate) mod s3;

/// The bytes of the files directly in `dir` (0 when it does not exist).
pub(crate) fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
