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

pub use agigit_validate::{MAX_REF_NAME_LEN, RefName, RefNameError};

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
    /// Another writer holds the ref's lock (or a crashed one left it).
    #[error("{key} is locked: {lock} exists{}", locked_by(.owner))]
    Locked {
        /// The ref.
        key: RefKey,
        /// The lock file.
        lock: PathBuf,
        /// The process that made it, when the lock says (and whether it still runs).
        owner: Option<(crate::process::Owner, Option<bool>)>,
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

/// Whether `path` is an empty file last changed more than a minute ago.
fn is_old_and_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| {
        m.len() == 0
            && m.modified().is_ok_and(|t| {
                t.elapsed()
                    .is_ok_and(|age| age >= std::time::Duration::from_secs(60))
            })
    })
}

fn locked_by(owner: &Option<(crate::process::Owner, Option<bool>)>) -> String {
    match owner {
        Some((o, Some(true))) => format!(" (process {} is using it: wait for it to finish)", o.pid),
        Some((o, Some(false))) => format!(
            " (left by process {}, which crashed: opening the repository again clears it, or remove the file)",
            o.pid
        ),
        Some((o, None)) => format!(
            " (made by process {}: remove the file once that process is gone)",
            o.pid
        ),
        None => " (remove the file once no agigit process is running)".to_owned(),
    }
}

/// Every file under `dir` (none when it does not exist): its path, and its name relative to
/// `dir` with `prefix` in front (`/`-separated).
fn files_under(dir: &Path, prefix: &str) -> Result<Vec<(PathBuf, String)>, RefError> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), prefix.to_owned())];
    while let Some((dir, name)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            let full = if name.is_empty() {
                file
            } else {
                format!("{name}/{file}")
            };
            let path = entry.path();
            if entry.file_type().map_err(io_err(&path))?.is_dir() {
                stack.push((path, full));
            } else {
                out.push((path, full));
            }
        }
    }
    Ok(out)
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

    /// Where a new value of `key` is written before it is renamed over the ref: beside it, named
    /// with a leading `.` (never a ref name) and this process's id.
    fn temp_path(&self, key: &RefKey) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let path = self.path(key);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        path.with_file_name(format!(".{name}.{}-{n}.new", std::process::id()))
    }

    /// The process a lock file names, if it names one.
    fn lock_owner(&self, lock: &Path) -> Option<crate::process::Owner> {
        let mut buf = Vec::new();
        self.io.read_into(lock, &mut buf).ok()?;
        crate::process::Owner::decode(&String::from_utf8_lossy(&buf))
    }

    /// Removes the lock files (and new values not yet renamed into place) that processes which
    /// no longer run left behind, a crash in the middle of a transaction; returns how many.
    /// Locks of running processes, and those whose maker cannot be told, stay — except an empty
    /// lock older than a minute: a power loss that took the owner line it had not synced (a live
    /// writer fills its lock as soon as it makes it).
    ///
    /// # Errors
    /// I/O errors reading the directories or removing a file.
    pub fn clear_stale_locks(&self) -> Result<usize, RefError> {
        let mut removed = 0;
        for (path, name) in files_under(&self.root, "")? {
            let file = name.rsplit('/').next().unwrap_or_default();
            if file.ends_with(".lock") && is_old_and_empty(&path) {
                self.io.remove_file(&path).map_err(io_err(&path))?;
                removed += 1;
                continue;
            }
            let owner = if file.ends_with(".lock") {
                self.lock_owner(&path)
            } else if file.starts_with('.') && file.ends_with(".new") {
                file.rsplit_once('.')
                    .and_then(|(stem, _)| stem.rsplit_once('.'))
                    .and_then(|(_, tail)| tail.split_once('-'))
                    .and_then(|(pid, _)| pid.parse().ok())
                    .map(|pid| crate::process::Owner { pid, start: None })
            } else {
                None
            };
            if owner.and_then(|o| o.is_running()) == Some(false) {
                self.io.remove_file(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
        Ok(removed)
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
        for (_, name) in files_under(&self.root.join("refs"), "refs")? {
            // Lock files and other strays are not refs; `RefName` rejects `.lock`.
            if let Ok(ref_name) = RefName::new(&name)
                && ref_name.as_str().starts_with(prefix)
                && let Some(t) = self.read(&RefKey::Name(ref_name.clone()))?
            {
                out.insert(ref_name, t);
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
        // The locks this transaction holds, and the files of new values it has written.
        let mut held: Vec<PathBuf> = Vec::with_capacity(edits.len());
        let mut temps: Vec<PathBuf> = Vec::with_capacity(edits.len());
        let result = self.commit_locked(&edits, &mut held, &mut temps);
        // New values not renamed into place (a failure midway), then the locks.
        for path in temps.into_iter().chain(held) {
            let _ = self.io.remove_file(&path);
        }
        result
    }

    fn commit_locked(
        &self,
        edits: &[RefEdit],
        held: &mut Vec<PathBuf>,
        temps: &mut Vec<PathBuf>,
    ) -> Result<(), RefError> {
        for e in edits {
            let path = self.path(&e.key);
            if let Some(dir) = path.parent() {
                self.io.create_dir_all(dir).map_err(io_err(dir))?;
            }
            let lock = self.lock_path(&e.key);
            match self.io.create_new(&lock) {
                Ok(mut f) => {
                    held.push(lock.clone());
                    // Who holds it: a lock a crash leaves behind can be told from a live one.
                    f.write_all(crate::process::Owner::current().encode().as_bytes())
                        .map_err(io_err(&lock))?;
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    let owner = self.lock_owner(&lock).map(|o| (o, o.is_running()));
                    return Err(RefError::Locked {
                        key: e.key.clone(),
                        lock,
                        owner,
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
        // Each new value goes to a file of its own, synced, then renamed over its ref: the lock
        // only says who is writing.
        let mut written = Vec::with_capacity(edits.len());
        for e in edits {
            if let Some(new) = &e.new {
                let temp = self.temp_path(&e.key);
                let mut f = self.io.create_new(&temp).map_err(io_err(&temp))?;
                temps.push(temp.clone());
                f.write_all(new.encode().as_bytes())
                    .map_err(io_err(&temp))?;
                f.sync().map_err(io_err(&temp))?;
                written.push(temp);
            }
        }
        let mut written = written.into_iter();
        for e in edits {
            let path = self.path(&e.key);
            match &e.new {
                Some(_) => {
                    let temp = written.next().unwrap_or_else(|| self.temp_path(&e.key));
                    self.io.rename(&temp, &path).map_err(io_err(&path))?;
                    temps.retain(|t| *t != temp);
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
