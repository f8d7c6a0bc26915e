//! Criterion benchmarks for the agigit crates: `cargo bench -p agigit-benches`.
