//! [`Repository`]: a model directory with its history in `.agigit/`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use agigit_dag::model::ModelParts;
use agigit_dag::refs::{Expected, RefKey, RefName, Target, Transaction};
use agigit_dag::{Commit, FindExt, ForkBase, FsRefs, FsStore, ObjectId, Order, WriteExt};
use agigit_delta::codec::output_digest;

use crate::error::Error;
use crate::private::PrivateKeys;
use crate::worktree::{self, DOT_DIR, FileSource, Part};

/// The branch a new repository starts on.
pub const DEFAULT_BRANCH: &str = "main";

/// A local repository: the working directory, and `.agigit/` with the object store and refs.
#[derive(Debug)]
pub struct Repository {
    root: PathBuf,
    store: FsStore,
    refs: FsRefs,
    tensor_limits: crate::tensor::TensorLimits,
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
    /// Creates a repository in `root` (which may hold files already), on branch `main`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], I/O errors.
    pub fn init(root: impl AsRef<Path>) -> Result<Self, Error> {
        let root = root.as_ref().to_owned();
        let dot = root.join(DOT_DIR);
        if dot.exists() {
            return Err(Error::AlreadyExists(root));
        }
        std::fs::create_dir_all(dot.join("objects")).map_err(Error::io(&dot))?;
        std::fs::create_dir_all(dot.join("refs")).map_err(Error::io(&dot))?;
        let repo = Self::open(&root)?;
        let main = RefName::branch(DEFAULT_BRANCH).map_err(|e| Error::Invalid(e.to_string()))?;
        repo.refs.commit(Transaction::new().edit(
            RefKey::Head,
            Expected::Absent,
            Some(Target::Symbolic(main)),
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
        let refs = FsRefs::new(dot.join("refs"));
        // What a crash left: locks and temporary files of processes that no longer run.
        let recovered = Recovered {
            locks: refs.clear_stale_locks()?,
            temps: store.remove_dead_temps()?
                // Where processes cannot be told apart: by age.
                + store.remove_stale_temps(std::time::Duration::from_secs(24 * 3600))?
                + remove_dead_packs(&dot.join("tmp"))?,
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
            tensor_limits: crate::tensor::TensorLimits::default(),
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
    pub fn tensor_limits(&self) -> crate::tensor::TensorLimits {
        self.tensor_limits
    }

    /// Sets the limits on materializing tensors.
    pub fn set_tensor_limits(&mut self, limits: crate::tensor::TensorLimits) {
        self.tensor_limits = limits;
    }

    /// The working directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The object store.
    pub fn store(&self) -> &FsStore {
        &self.store
    }

    /// The refs.
    pub fn refs(&self) -> &FsRefs {
        &self.refs
    }

    /// The branch `HEAD` points to, if it is not detached.
    ///
    /// # Errors
    /// Ref errors.
    pub fn current_branch(&self) -> Result<Option<RefName>, Error> {
        Ok(match self.refs.read(&RefKey::Head)? {
            Some(Target::Symbolic(name)) => Some(name),
            _ => None,
        })
    }

    /// The commit `HEAD` resolves to (`None` before the first commit).
    ///
    /// # Errors
    /// Ref errors.
    pub fn head(&self) -> Result<Option<ObjectId>, Error> {
        Ok(self.refs.resolve(&RefKey::Head)?)
    }

    /// The commit `rev` names: `HEAD`, a branch, `refs/…`, or a full commit id.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`].
    pub fn resolve(&self, rev: &str) -> Result<ObjectId, Error> {
        let unknown = || Error::UnknownRevision(rev.to_owned());
        if rev == "HEAD" {
            return self.head()?.ok_or_else(unknown);
        }
        if let Ok(id) = rev.parse::<ObjectId>() {
            self.store.find_commit(&id).map_err(|_| unknown())?;
            return Ok(id);
        }
        let name = if rev.starts_with("refs/") {
            RefName::new(rev)
        } else {
            RefName::branch(rev)
        }
        .map_err(|_| unknown())?;
        self.refs.resolve(&RefKey::Name(name))?.ok_or_else(unknown)
    }

    /// Commits the working directory on the current branch (or detached `HEAD`).
    ///
    /// # Errors
    /// [`Error::NothingToCommit`] when nothing changed; a malformed safetensors file, I/O and
    /// store errors; a ref error when another process moved the branch meanwhile.
    pub fn commit(&self, message: &str, author: [u8; 32]) -> Result<ObjectId, Error> {
        self.commit_with(message, author, &agigit_delta::Lossless::default())
            .map(|(id, _)| id)
    }

    /// The foundation this repository forks, if any (set by [`set_fork_base`](Self::set_fork_base)).
    ///
    /// # Errors
    /// I/O errors; [`Error::Corrupt`] for a malformed `.agigit/fork` file.
    pub fn fork_base(&self) -> Result<Option<ForkBase>, Error> {
        let path = self.root.join(DOT_DIR).join("fork");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        let mut lines = text.lines();
        let (Some(repo), Some(commit)) = (lines.next(), lines.next()) else {
            return Err(Error::Corrupt(format!(
                "{}: expected two lines",
                path.display()
            )));
        };
        let commit = commit
            .parse()
            .map_err(|_| Error::Corrupt(format!("{}: bad commit id", path.display())))?;
        Ok(Some(ForkBase {
            repo: repo.to_owned(),
            commit,
        }))
    }

    /// Makes this repository a fork of commit `commit` of the foundation repository `repo` (its
    /// coordinate). The commit must be in the local store (pull the foundation first). From now
    /// on, commits store parameters as deltas against the foundation's tensors and record it.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`] when the commit is not local.
    pub fn set_fork_base(&self, repo: &str, commit: ObjectId) -> Result<(), Error> {
        self.store
            .find_commit(&commit)
            .map_err(|_| Error::UnknownRevision(commit.to_string()))?;
        if repo.is_empty() || repo.contains(['\n', '\r']) {
            return Err(Error::Invalid(format!(
                "bad foundation coordinate {repo:?}"
            )));
        }
        let path = self.root.join(DOT_DIR).join("fork");
        worktree::write_atomic(&path, false, |f| {
            f.write_all(format!("{repo}\n{commit}\n").as_bytes())
                .map_err(Error::io(&path))
        })
    }

    /// The parts this repository holds: `None` for all of them; a set for a partial clone
    /// (fetched with [`FetchOptions::parts`](crate::FetchOptions::parts)), whose other parts are
    /// neither checked out nor committed: commits keep `HEAD`'s version of them.
    ///
    /// # Errors
    /// I/O errors; [`Error::Corrupt`] for a malformed `.agigit/parts`.
    pub fn parts(&self) -> Result<Option<BTreeSet<Part>>, Error> {
        let path = self.root.join(DOT_DIR).join("parts");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                Part::from_name(l.trim()).ok_or_else(|| {
                    Error::Corrupt(format!("{}: unknown part {l:?}", path.display()))
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Some)
    }

    /// Records the parts this repository holds (`None`: all).
    pub(crate) fn set_parts(&self, parts: Option<&BTreeSet<Part>>) -> Result<(), Error> {
        let path = self.root.join(DOT_DIR).join("parts");
        match parts {
            Some(p) if p.len() < Part::ALL.len() => {
                let text: String = p.iter().map(|p| format!("{}\n", p.name())).collect();
                worktree::write_atomic(&path, false, |f| {
                    f.write_all(text.as_bytes()).map_err(Error::io(&path))
                })
            }
            _ => match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(&path)(e)),
            },
        }
    }

    /// The files of model tree `tree` in the parts this repository holds.
    pub(crate) fn tree_files(
        &self,
        tree: &ObjectId,
    ) -> Result<BTreeMap<String, FileSource>, Error> {
        worktree::files_in(&self.store, tree, self.parts()?.as_ref())
    }

    /// Whether this repository is private (it has a key envelope in `.agigit/keys`).
    ///
    /// # Errors
    /// I/O errors.
    pub fn is_private(&self) -> Result<bool, Error> {
        Ok(crate::private::read_envelope(&self.root)?.is_some())
    }

    /// Makes this repository private: a fresh content key wrapped for `owner` and `readers`.
    /// Everything pushed from now on is encrypted before it is sharded.
    ///
    /// # Errors
    /// [`Error::Invalid`] when it is private already (add readers with
    /// [`PrivateKeys::add_reader`] and [`save_private_keys`](Self::save_private_keys)); I/O errors.
    pub fn make_private(
        &self,
        owner: &crate::crypt::ReaderSecret,
        readers: &[crate::crypt::ReaderKey],
    ) -> Result<PrivateKeys, Error> {
        if self.is_private()? {
            return Err(Error::Invalid(
                "this repository is private already: add readers instead".to_owned(),
            ));
        }
        let keys = PrivateKeys::generate(owner, readers)?;
        crate::private::write_envelope(&self.root, &keys.envelope_bytes())?;
        Ok(keys)
    }

    /// The private repository's keys, unwrapped with `secret`; `None` for a public repository.
    ///
    /// # Errors
    /// [`Error::NotAReader`] when `secret` is not a reader's; [`Error::Corrupt`] for a malformed
    /// `.agigit/keys`.
    pub fn private_keys(
        &self,
        secret: &crate::crypt::ReaderSecret,
    ) -> Result<Option<PrivateKeys>, Error> {
        crate::private::read_envelope(&self.root)?
            .map(|bytes| PrivateKeys::open(&bytes, secret))
            .transpose()
    }

    /// Records `keys`' envelope (after adding or removing readers) in `.agigit/keys`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save_private_keys(&self, keys: &PrivateKeys) -> Result<(), Error> {
        crate::private::write_envelope(&self.root, &keys.envelope_bytes())
    }

    /// Commits the working directory; in a fork, tensors are stored with `codec` as deltas
    /// against the foundation's (when that pays), and the statistics say what it did.
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub fn commit_with(
        &self,
        message: &str,
        author: [u8; 32],
        codec: &dyn agigit_delta::DeltaCodec,
    ) -> Result<(ObjectId, worktree::DeltaStats), Error> {
        if let Some(held) = self.parts()? {
            for rel in worktree::list_files(&self.root)? {
                let part = worktree::classify(&rel).0;
                if !held.contains(&part) {
                    return Err(absent_part(part, Some(&rel)));
                }
            }
        }
        let fork = self.fork_base()?;
        let tree = match &fork {
            None => worktree::snapshot(&self.store, &self.root)?,
            Some(base) => {
                let layouts = self.foundation_tensors(base)?;
                let lookup = self.foundation_lookup(&layouts);
                let plan = worktree::DeltaPlan {
                    codec,
                    base: &lookup,
                    stats: std::sync::Mutex::new(worktree::DeltaStats::default()),
                };
                let tree = worktree::snapshot_with(&self.store, &self.root, Some(&plan))?;
                let stats = plan.stats.lock().map(|s| s.clone()).unwrap_or_default();
                let id = self.commit_tree(tree, message, author, fork.clone())?;
                return Ok((id, stats));
            }
        };
        Ok((
            self.commit_tree(tree, message, author, None)?,
            worktree::DeltaStats::default(),
        ))
    }

    fn commit_tree(
        &self,
        tree: ObjectId,
        message: &str,
        author: [u8; 32],
        base: Option<ForkBase>,
    ) -> Result<ObjectId, Error> {
        let parent = self.head()?;
        let tree = self.keep_absent_parts(tree, parent)?;
        if let Some(p) = parent
            && self.store.find_commit(&p)?.tree == tree
        {
            return Err(Error::NothingToCommit);
        }
        let commit = Commit {
            tree,
            parents: parent.into_iter().collect(),
            base,
            author,
            time: now(),
            message: message.to_owned(),
            extra: Vec::new(),
        };
        let id = self.store.write_commit(&commit)?;
        self.move_head(parent, id)?;
        Ok(id)
    }

    /// In a partial clone, a snapshot of the working directory has nothing in the parts it lacks:
    /// take those from `parent`. A file placed in such a part is refused rather than dropped.
    fn keep_absent_parts(
        &self,
        tree: ObjectId,
        parent: Option<ObjectId>,
    ) -> Result<ObjectId, Error> {
        let Some(held) = self.parts()? else {
            return Ok(tree);
        };
        let mut parts = ModelParts::read(&self.store, &tree)?;
        let before = match parent {
            Some(p) => ModelParts::read(&self.store, &self.store.find_commit(&p)?.tree)?,
            None => ModelParts::default(),
        };
        for part in Part::ALL.into_iter().filter(|p| !held.contains(p)) {
            if part.get(&parts).is_some() {
                return Err(absent_part(part, None));
            }
            part.set(&mut parts, part.get(&before));
        }
        Ok(parts.write(&self.store)?)
    }

    /// Moves the current branch (or detached `HEAD`) from `old` to `new`, atomically.
    fn move_head(&self, old: Option<ObjectId>, new: ObjectId) -> Result<(), Error> {
        let key = match self.current_branch()? {
            Some(branch) => RefKey::Name(branch),
            None => RefKey::Head,
        };
        let expected = old.map_or(Expected::Absent, |o| Expected::Value(Target::Id(o)));
        self.refs
            .commit(Transaction::new().edit(key, expected, Some(Target::Id(new))))?;
        Ok(())
    }

    /// History from `rev`, newest first (topological), at most `limit` commits.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`], store errors.
    pub fn log(&self, rev: &str, limit: usize) -> Result<Vec<(ObjectId, Commit)>, Error> {
        let tip = self.resolve(rev)?;
        let ids = agigit_dag::log(&self.store, &[tip], Order::Topological, false)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        ids.into_iter()
            .take(limit)
            .map(|id| Ok((id, self.store.find_commit(&id)?)))
            .collect()
    }

    /// Every branch and the commit it points to.
    ///
    /// # Errors
    /// Ref errors.
    pub fn branches(&self) -> Result<BTreeMap<String, ObjectId>, Error> {
        let mut out = BTreeMap::new();
        for (name, target) in self.refs.list("refs/heads/")? {
            if let (Some(b), Target::Id(id)) = (name.branch_name(), target) {
                out.insert(b.to_owned(), id);
            }
        }
        Ok(out)
    }

    /// Creates branch `name` at `rev`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; a ref error when it exists.
    pub fn create_branch(&self, name: &str, rev: &str) -> Result<ObjectId, Error> {
        let at = self.resolve(rev)?;
        let name = RefName::branch(name).map_err(|e| Error::Invalid(e.to_string()))?;
        self.refs.commit(Transaction::new().edit(
            RefKey::Name(name),
            Expected::Absent,
            Some(Target::Id(at)),
        ))?;
        Ok(at)
    }

    /// How the working directory differs from `HEAD`, by path.
    ///
    /// # Errors
    /// I/O and store errors; a malformed safetensors file.
    pub fn status(&self) -> Result<BTreeMap<String, Change>, Error> {
        let tracked = match self.head()? {
            Some(h) => self.tree_files(&self.store.find_commit(&h)?.tree)?,
            None => BTreeMap::new(),
        };
        let mut out = BTreeMap::new();
        // In a partial clone, files of the parts it lacks are not tracked here.
        let parts = self.parts()?;
        let present: Vec<String> = worktree::list_files(&self.root)?
            .into_iter()
            .filter(|rel| {
                parts
                    .as_ref()
                    .is_none_or(|p| p.contains(&worktree::classify(rel).0))
            })
            .collect();
        for rel in &present {
            match tracked.get(rel) {
                None => {
                    out.insert(rel.clone(), Change::Added);
                }
                Some(source) => {
                    if !self.matches(rel, source)? {
                        out.insert(rel.clone(), Change::Modified);
                    }
                }
            }
        }
        for rel in tracked.keys() {
            if present.binary_search(rel).is_err() {
                out.insert(rel.clone(), Change::Deleted);
            }
        }
        Ok(out)
    }

    /// Whether the working file `rel` holds what `source` describes (`false` when it is absent, or
    /// not a regular file, or under a symlinked directory).
    pub(crate) fn matches(&self, rel: &str, source: &FileSource) -> Result<bool, Error> {
        let path = match crate::checkout::existing(&self.root, rel)? {
            crate::checkout::Found::File(path) => path,
            _ => return Ok(false),
        };
        Ok(match source {
            FileSource::Blob { id, .. } => worktree::blob_id_of_file(&path)? == *id,
            FileSource::Safetensors(id) => self.safetensors_matches(&path, id)?,
        })
    }

    /// Whether the safetensors file at `path` materializes tree `id`: the same header bytes and,
    /// tensor by tensor, the digest each object records (dense or delta alike).
    fn safetensors_matches(&self, path: &Path, id: &ObjectId) -> Result<bool, Error> {
        let layout = worktree::safetensors_layout(&self.store, id)?;
        let Ok(file) = agigit_delta::SafetensorsFile::open(path) else {
            return Ok(false);
        };
        if file.header_bytes() != layout.header.as_slice() || file.len() != layout.tensors.len() {
            return Ok(false);
        }
        for (name, tensor) in &layout.tensors {
            let Some(view) = file.tensor(name) else {
                return Ok(false);
            };
            let digest = output_digest(view.dtype(), view.shape(), view.data());
            if self.store.find_tensor(tensor)?.digest != digest {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
