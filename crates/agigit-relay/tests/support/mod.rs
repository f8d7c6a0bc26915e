//! Fixtures shared by the relay's integration tests.

pub(crate) mod postgres;
