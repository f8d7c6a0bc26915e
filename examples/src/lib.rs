//! Runnable examples for the agigit crates: see `cargo run --example <name>` in the README.
