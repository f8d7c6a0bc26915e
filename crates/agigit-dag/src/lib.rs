#![doc = include_str!("../README.md")]

pub mod fidelity;
pub mod history;
pub mod merge;
pub mod model;
pub mod object;
pub mod pack;
pub mod process;
pub mod rebase;
pub mod refs;
pub mod rev;
pub mod store;

pub use agigit_hash::ObjectId;
pub use history::{Order, is_ancestor, log, merge_bases};
pub use merge::{ConflictKind, MergePlan, Resolution, Side, plan_merge};
pub use model::{BuildError, ModelBuilder, ModelParts, Part, classify};
pub use object::{
    ChunkEntry, ChunkList, Commit, DecodeError, EntryMode, ForkBase, Kind, Limits, Object,
    ObjectRef, TensorObject, Tree, TreeEntry,
};
pub use rebase::{ForkAction, RebasePlan, TensorRebase, plan_fork_rebase, plan_rebase};
pub use refs::{Expected, FsRefs, RefError, RefKey, RefName, Target, Transaction};
pub use rev::{HexPrefix, RevError, RevSpec, Step};
pub use store::{
    Find, FindError, FindExt, FsStore, MemoryStore, ObjectStore, StoreError, Write, WriteError,
    WriteExt,
};
