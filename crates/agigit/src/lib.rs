#![doc = include_str!("../README.md")]

pub mod config;
pub mod display;
mod error;
mod op_error;
/// The pack format (agigit-dag's), re-exported where it used to live.
pub use agigit_dag::pack;
pub mod private;
pub mod record;
mod remote;
mod repository;
pub mod worktree;

pub use error::{Error, ErrorKind};
pub use op_error::{Conflicts, IoError, LocalChanges, checkout, commit, fetch, merge, push};
pub use private::PrivateKeys;
pub use remote::receipts::{MAX_RECEIPTS, Receipts};
#[cfg(feature = "eval")]
pub use remote::rounds::{MAX_LOSS_LIST, RoundEvents};
pub use remote::{
    AuditOptions, AuditReport, DEFAULT_PARALLEL, FetchOptions, GcOptions, GcReport, HeldBlob,
    MAX_FETCH_SEGMENT, MAX_MANIFEST_BYTES, PackAudit, PackDurability, PartialReport, PartialWant,
    Progress, PullReport, PushOptions, PushReport, RefDirectory, Remote, RemoteRefs, RepairReport,
    SegmentHolding, ServerGc, ServerHolding, StageTimes, TagEntry,
};
pub use repository::{
    Change, CheckoutReport, DEFAULT_BRANCH, FileDiff, FileEntry, FileKind, LineageStep,
    MERGE_STRATEGY_HEADER, MergeReport, MergeStrategy, ModelDiff, PathFilter, Recovered,
    Repository, Resolved, Storage, Tag, TensorDiff, TensorInfo, TensorLimits, join_checked,
};
#[cfg(feature = "eval")]
pub use repository::{EvalData, EvalReport};
pub use worktree::Part;

/// Evaluation on held-out data (feature `eval`).
#[cfg(feature = "eval")]
pub use agigit_eval as eval;
/// The crates below the facade, for what it does not wrap.
pub use {agigit_crypt as crypt, agigit_dag as dag, agigit_delta as delta};
pub use {agigit_event as event, agigit_hash as hash, agigit_net as net, agigit_shard as shard};
