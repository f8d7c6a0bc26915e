#![doc = include_str!("../README.md")]

pub mod refname;

pub use refname::{MAX_REF_NAME_LEN, RefName, RefNameError};
