//! References: `HEAD`, branches (`refs/heads/…`), remote-tracking refs (`refs/remotes/…`) and
//! tags, each a file holding an object id or a symbolic target. They change only through
//! [`Transaction`]s that compare and swap under lock files.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agigit_hash::ObjectId;

use crate::store::io_backend::{Io, StdIo};

mod name;

pub use name::{MAX_REF_NAME_LEN, RefName, RefNameError};

/// A ref's key: `HEAD` or a full name under `refs/`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefKey {
    /// `HEAD`.
    Head,
    /// A full ref name.
    Name(RefName),
}

impl fmt::Display for RefKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefKey::Head => f.write_str("HEAD"),
            RefKey::Name(n) => f.write_str(n.as_str()),
        }
    }
}

impl From<RefName> for RefKey {
    fn from(n: RefName) -> Self {
        RefKey::Name(n)
    }
}

/// What a ref holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// An object id (usually a commit).
    Id(ObjectId),
    /// Another ref (`HEAD` → `refs/heads/main`).
    Symbolic(RefName),
}

impl Target {
    fn encode(&self) -> String {
        match self {
            Target::Id(id) => format!("{id}\n"),
            Target::Symbolic(n) => format!("ref: {n}\n"),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        let line = text.strip_suffix('\n')?;
        if let Some(name) = line.strip_prefix("ref: ") {
            return RefName::new(name).ok().map(Target::Symbolic);
        }
        line.parse().ok().map(Target::Id)
    }
}

/// What a transaction expects a ref to hold before it changes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Anything, or nothing.
    Any,
    /// Nothing: the ref must not exist.
    Absent,
    /// Exactly this.
    Value(Target),
}

/// One change in a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefEdit {
    /// The ref.
    pub key: RefKey,
    /// What it must hold now.
    pub expected: Expected,
    /// What it will hold; `None` deletes it.
    pub new: Option<Target>,
}

/// Changes to several refs, each applied only if its ref holds what the edit expects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transaction {
    edits: Vec<RefEdit>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an edit.
    pub fn edit(mut self, key: impl Into<RefKey>, expected: Expected, new: Option<Target>) -> Self {
        self.edits.push(RefEdit {
            key: key.into(),
            expected,
            new,
        });
        self
    }

    /// The edits.
    pub fn edits(&self) -> &[RefEdit] {
        &self.edits
    }
}

/// A ref operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Another writer holds the ref's lock (or a crashed one left it: remove the `.lock` file
    /// once no agigit process is running).
    #[error("{key} is locked: {lock} exists")]
    Locked {
        /// The ref.
        key: RefKey,
        /// The lock file.
        lock: PathBuf,
    },
    /// The ref does not hold what the transaction expected; nothing was changed.
    #[error("{key} holds {actual:?}, the transaction expected {expected:?}")]
    Conflict {
        /// The ref.
        key: RefKey,
        /// What was expected.
        expected: Expected,
        /// What it holds.
        actual: Option<Target>,
    },
    /// A ref file holds something that is not a ref.
    #[error("{key}: not a ref file ({content:?})")]
    Corrupt {
        /// The ref.
        key: RefKey,
        /// What it holds (cut short).
        content: String,
    },
    /// A transaction names a ref twice.
    #[error("{0} is edited twice in one transaction")]
    Duplicate(RefKey),
    /// Symbolic refs loop or nest too deep.
    #[error("{0}: symbolic refs nest more than 5 deep")]
    TooDeep(RefKey),
}

/// Refs stored as files under a directory: `HEAD`, `refs/heads/main`, …
#[derive(Debug, Clone)]
pub struct FsRefs {
    root: PathBuf,
    io: Arc<dyn Io>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RefError + '_ {
    move |source| RefError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl FsRefs {
    /// Refs under `root` (the repository's metadata directory).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_io(root, Arc::new(StdIo))
    }

    /// Refs doing their file operations through `io`.
    pub fn with_io(root: impl Into<PathBuf>, io: Arc<dyn Io>) -> Self {
        FsRefs {
            root: root.into(),
            io,
        }
    }

    /// The directory the refs live under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `key`.
    pub fn path(&self, key: &RefKey) -> PathBuf {
        match key {
            RefKey::Head => self.root.join("HEAD"),
            RefKey::Name(n) => n
                .as_str()
                .split('/')
                .fold(self.root.clone(), |p, c| p.join(c)),
        }
    }

    fn lock_path(&self, key: &RefKey) -> PathBuf {
        let mut p = self.path(key).into_os_string();
        p.push(".lock");
        PathBuf::from(p)
    }

    /// What `key` holds, if it exists.
    pub fn read(&self, key: &RefKey) -> Result<Option<Target>, RefError> {
        let path = self.path(key);
        let mut buf = Vec::new();
        if !self.io.read_into(&path, &mut buf).map_err(io_err(&path))? {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&buf);
        Target::decode(&text)
            .map(Some)
            .ok_or_else(|| RefError::Corrupt {
                key: key.clone(),
                content: text.chars().take(80).collect(),
            })
    }

    /// The object `key` points at, following symbolic refs (at most 5 deep); `None` for a ref
    /// that does not exist or an unborn branch.
    pub fn resolve(&self, key: &RefKey) -> Result<Option<ObjectId>, RefError> {
        let mut current = key.clone();
        for _ in 0..=5 {
            match self.read(&current)? {
                None => return Ok(None),
                Some(Target::Id(id)) => return Ok(Some(id)),
                Some(Target::Symbolic(n)) => current = RefKey::Name(n),
            }
        }
        Err(RefError::TooDeep(key.clone()))
    }

    /// Every ref under `refs/` whose name starts with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Result<BTreeMap<RefName, Target>, RefError> {
        let mut out = BTreeMap::new();
        let base = self.root.join("refs");
        let mut stack = vec![(base, "refs".to_owned())];
        while let Some((dir, name)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io_err(&dir))?;
                let file = entry.file_name().to_string_lossy().into_owned();
                let full = format!("{name}/{file}");
                let path = entry.path();
                if path.is_dir() {
                    stack.push((path, full));
                } else if let Ok(ref_name) = RefName::new(&full) {
                    // Lock files and other strays are not refs; `RefName` rejects `.lock`.
                    if ref_name.as_str().starts_with(prefix)
                        && let Some(t) = self.read(&RefKey::Name(ref_name.clone()))?
                    {
                        out.insert(ref_name, t);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Applies `tx`: locks every ref it names (in a fixed order, so concurrent transactions do not
    /// deadlock), checks each holds what its edit expects, then writes each new value into its
    /// lock file, syncs it and renames it over the ref. If any check fails nothing changes.
    ///
    /// Each ref changes atomically: a crash leaves it old or new, never torn (and may leave its
    /// lock file, reported as [`RefError::Locked`] until removed). A crash in the middle of a
    /// multi-ref transaction can leave some refs changed and others not.
    pub fn commit(&self, tx: Transaction) -> Result<(), RefError> {
        let mut edits = tx.edits;
        edits.sort_by(|a, b| a.key.cmp(&b.key));
        if let Some(w) = edits.windows(2).find(|w| w[0].key == w[1].key) {
            return Err(RefError::Duplicate(w[0].key.clone()));
        }
        // Locks this transaction still holds; a renamed lock is no longer ours (another writer may
        // already have created a new lock at that path), so it leaves this list.
        let mut held: Vec<Option<PathBuf>> = Vec::with_capacity(edits.len());
        let result = self.commit_locked(&edits, &mut held);
        for lock in held.into_iter().flatten() {
            let _ = self.io.remove_file(&lock);
        }
        result
    }

    fn commit_locked(
        &self,
        edits: &[RefEdit],
        held: &mut Vec<Option<PathBuf>>,
    ) -> Result<(), RefError> {
        let mut files = Vec::with_capacity(edits.len());
        for e in edits {
            let path = self.path(&e.key);
            if let Some(dir) = path.parent() {
                self.io.create_dir_all(dir).map_err(io_err(dir))?;
            }
            let lock = self.lock_path(&e.key);
            match self.io.create_new(&lock) {
                Ok(f) => {
                    held.push(Some(lock));
                    files.push(f);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(RefError::Locked {
                        key: e.key.clone(),
                        lock,
                    });
                }
                Err(err) => return Err(io_err(&lock)(err)),
            }
        }
        for e in edits {
            let actual = self.read(&e.key)?;
            let ok = match &e.expected {
                Expected::Any => true,
                Expected::Absent => actual.is_none(),
                Expected::Value(v) => actual.as_ref() == Some(v),
            };
            if !ok {
                return Err(RefError::Conflict {
                    key: e.key.clone(),
                    expected: e.expected.clone(),
                    actual,
                });
            }
        }
        for (e, mut f) in edits.iter().zip(files) {
            if let Some(new) = &e.new {
                let lock = self.lock_path(&e.key);
                f.write_all(new.encode().as_bytes())
                    .map_err(io_err(&lock))?;
                f.sync().map_err(io_err(&lock))?;
            }
        }
        for (i, e) in edits.iter().enumerate() {
            let path = self.path(&e.key);
            match &e.new {
                Some(_) => {
                    let lock = self.lock_path(&e.key);
                    self.io.rename(&lock, &path).map_err(io_err(&path))?;
                    held[i] = None;
                }
                None => match self.io.remove_file(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_err(&path)(err)),
                },
            }
        }
        Ok(())
    }
}
