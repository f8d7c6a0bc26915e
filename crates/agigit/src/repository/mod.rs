//! [`Repository`]: a model directory with its history in `.agigit/`. One `impl Repository` file
//! per concern: layout and opening here; refs and `HEAD` (`refs`); what `.agigit/` records of
//! forks and partial clones (`layout`); commit and status (`commit`); checkout (`checkout`);
//! merge and rebase (`merge`); a private repository's keys (`keys`); materializing tensors
//! (`tensor`); configuration (`crate::config`); push and fetch (`crate::remote`).

use std::path::{Path, PathBuf};

use agigit_dag::refs::{Expected, RefKey, RefName, Target, Transaction};
use std::sync::Arc;

use agigit_dag::{FsRefs, FsStore, ObjectStore};

mod browse;
mod checkout;
mod commit;
mod diff;
#[cfg(feature = "eval")]
mod eval;
mod keys;
mod layout;
mod materialize;
mod merge;
mod refs;
mod strategy;
mod tags;
mod tensor;

pub use browse::{FileEntry, FileKind};
pub use checkout::join_checked;
pub(crate) use checkout::{Found, existing};
pub use diff::{FileDiff, ModelDiff, PathFilter, Storage, TensorDiff, TensorInfo};
#[cfg(feature = "eval")]
pub use eval::{EvalData, EvalReport};
pub use merge::{MERGE_STRATEGY_HEADER, MergeReport};
pub use refs::{LineageStep, Resolved};
pub use strategy::MergeStrategy;
pub use tags::Tag;
pub(crate) use tags::tag_ref;
pub use tensor::TensorLimits;

use crate::error::Error;
use crate::worktree::{DOT_DIR, Part};

/// The branch a new repository starts on.
pub const DEFAULT_BRANCH: &str = "master";

/// A local repository: the working directory, and `.agigit/` with the refs and (by default) the
/// object store. Any [`ObjectStore`] can hold the objects ([`Repository::init_with_store`]): a
/// `MemoryStore` for tests and embedders, or the caller's own.
///
/// A clone is another handle on the same repository (the same directory, store and refs), as
/// cheap as an `Arc`: it lets work move to another thread, as a pull's checkout moves to the CPU
/// pool. Ref updates stay compare-and-swap between handles as between processes.
#[derive(Clone, Debug)]
pub struct Repository {
    root: PathBuf,
    store: Arc<dyn ObjectStore>,
    refs: FsRefs,
    tensor_limits: TensorLimits,
    recovered: Recovered,
}

/// What opening a repository cleared that crashed processes had left: ref locks, and temporary
/// files of objects and packs. Only files whose maker certainly no longer runs are removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Ref lock files (and new ref values not renamed into place).
    pub locks: usize,
    /// Temporary object and pack files.
    pub temps: usize,
}

/// How a working-directory file differs from `HEAD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Not in `HEAD`.
    Added,
    /// In `HEAD`, with other bytes.
    Modified,
    /// In `HEAD`, gone from the directory.
    Deleted,
}

impl Change {
    /// `added`, `modified`, `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Modified => "modified",
            Change::Deleted => "deleted",
        }
    }
}

/// What [`Repository::checkout`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckoutReport {
    /// Files written (new or changed).
    pub written: usize,
    /// Files already right, left alone.
    pub unchanged: usize,
    /// Files removed (tracked before, absent in the target).
    pub removed: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// A file placed in a part that a partial clone does not hold.
fn absent_part(part: Part, file: Option<&str>) -> Error {
    Error::Invalid(format!(
        "this is a partial clone without {}{}: fetch that part (`agigit pull --parts all`) before changing it",
        part.name(),
        file.map(|f| format!(" (found {f})")).unwrap_or_default()
    ))
}

/// Removes the pack files in `.agigit/tmp` (named `<what>-<pid>-<n>.pack`) whose process no
/// longer runs; returns how many.
fn remove_dead_packs(dir: &Path) -> Result<usize, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(Error::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_suffix(".pack")
            .and_then(|stem| stem.split('-').rev().nth(1))
            .and_then(|pid| pid.parse().ok());
        let Some(pid) = pid else { continue };
        let owner = agigit_dag::process::Owner { pid, start: None };
        if owner.is_running() == Some(false) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(Error::io(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Repository {
    /// Creates a repository in `root` (which may hold files already), on branch `master`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], I/O errors.
    pub fn init(root: impl AsRef<Path>) -> Result<Self, Error> {
        Self::init_on_branch(root, DEFAULT_BRANCH)
    }

    /// [`init`](Self::init) with `HEAD` on branch `branch` (`agigit init --initial-branch`).
    ///
    /// # Errors
    /// As [`init`](Self::init); [`Error::RefName`] for a name that is not a branch name, before
    /// anything is made.
    pub fn init_on_branch(root: impl AsRef<Path>, branch: &str) -> Result<Self, Error> {
        let root = root.as_ref().to_owned();
        let branch = RefName::branch(branch)?;
        Self::init_in(&root, branch, || {
            let objects = root.join(DOT_DIR).join("objects");
            std::fs::create_dir_all(&objects).map_err(Error::io(&objects))?;
            Self::open(&root)
        })
    }

    /// Creates a repository in `root` whose objects live in `store` (refs, configuration and the
    /// working directory stay on disk): an in-memory repository with a `MemoryStore`.
    ///
    /// # Errors
    /// As [`init`](Self::init).
    pub fn init_with_store(
        root: impl AsRef<Path>,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Self, Error> {
        let root = root.as_ref().to_owned();
        let branch = RefName::branch(DEFAULT_BRANCH)?;
        Self::init_in(&root, branch, || Self::open_with_store(&root, store))
    }

    /// Makes `.agigit/` and `HEAD` (on branch `branch`) around `open`.
    fn init_in(
        root: &Path,
        branch: RefName,
        open: impl FnOnce() -> Result<Self, Error>,
    ) -> Result<Self, Error> {
        let dot = root.join(DOT_DIR);
        if dot.exists() {
            return Err(Error::AlreadyExists(root.to_owned()));
        }
        std::fs::create_dir_all(dot.join("refs")).map_err(Error::io(&dot))?;
        let repo = open()?;
        repo.refs.commit(Transaction::new().edit(
            RefKey::Head,
            Expected::Absent,
            Some(Target::Symbolic(branch)),
        ))?;
        Ok(repo)
    }

    /// Opens the repository in `root`.
    ///
    /// # Errors
    /// [`Error::NotARepository`] without `.agigit/`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, Error> {
        let root = root.as_ref().to_owned();
        let dot = root.join(DOT_DIR);
        if !dot.is_dir() {
            return Err(Error::NotARepository(root));
        }
        let store = FsStore::open(dot.join("objects"))?;
        // Temporary object files of processes that no longer run, and, where processes cannot
        // be told apart, by age.
        let temps = store.remove_dead_temps()?
            + store.remove_stale_temps(std::time::Duration::from_secs(24 * 3600))?;
        let mut repo = Self::open_with_store(&root, Arc::new(store))?;
        repo.recovered.temps += temps;
        Ok(repo)
    }

    /// Opens the repository in `root` with its objects in `store`.
    ///
    /// # Errors
    /// [`Error::NotARepository`] without `.agigit/`.
    pub fn open_with_store(
        root: impl AsRef<Path>,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Self, Error> {
        let root = root.as_ref().to_owned();
        let dot = root.join(DOT_DIR);
        if !dot.is_dir() {
            return Err(Error::NotARepository(root));
        }
        let refs = FsRefs::new(dot.join("refs"));
        // What a crash left: ref locks and pack files of processes that no longer run.
        let recovered = Recovered {
            locks: refs.clear_stale_locks()?,
            temps: remove_dead_packs(&dot.join("tmp"))?,
        };
        if recovered != Recovered::default() {
            tracing::warn!(
                locks = recovered.locks,
                temps = recovered.temps,
                "removed what crashed agigit processes left in {}",
                dot.display()
            );
        }
        Ok(Repository {
            root,
            store,
            refs,
            tensor_limits: TensorLimits::default(),
            recovered,
        })
    }

    /// Opens the repository containing `start` (it or a parent directory).
    ///
    /// # Errors
    /// [`Error::NotARepository`] when no parent has `.agigit/`.
    pub fn discover(start: impl AsRef<Path>) -> Result<Self, Error> {
        let start = start.as_ref();
        let mut dir = Some(start);
        while let Some(d) = dir {
            if d.join(DOT_DIR).is_dir() {
                return Self::open(d);
            }
            dir = d.parent();
        }
        Err(Error::NotARepository(start.to_owned()))
    }

    /// What opening this repository cleared that crashed processes had left.
    pub fn recovered(&self) -> Recovered {
        self.recovered
    }

    /// The limits on materializing tensors (checkout, merge, fork commits).
    pub fn tensor_limits(&self) -> TensorLimits {
        self.tensor_limits
    }

    /// Sets the limits on materializing tensors.
    pub fn set_tensor_limits(&mut self, limits: TensorLimits) {
        self.tensor_limits = limits;
    }

    /// The working directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The object store.
    pub fn store(&self) -> &dyn ObjectStore {
        &*self.store
    }

    /// The object store, shared (to move into work on another thread).
    pub fn shared_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The refs.
    pub fn refs(&self) -> &FsRefs {
        &self.refs
    }
}
