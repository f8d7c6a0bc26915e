//! Fixtures shared by the relay's integration tests.

pub mod postgres;
