//! The file operations the filesystem store and refs use, behind a trait so tests can inject
//! failures ([`FaultyIo`]) the way redb's `StorageBackend` does.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A file being written that can be flushed to stable storage.
pub trait SyncWrite: Write + Send {
    /// Flushes the file's data to stable storage.
    fn sync(&mut self) -> io::Result<()>;
}

impl SyncWrite for File {
    fn sync(&mut self) -> io::Result<()> {
        self.sync_all()
    }
}

/// File operations.
pub trait Io: Send + Sync + fmt::Debug {
    /// Creates `path`, failing with `AlreadyExists` if it exists (`O_EXCL`).
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SyncWrite>>;
    /// Renames `from` to `to`, replacing `to` atomically, and makes the rename durable.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Renames `from` to `to` as [`rename`](Self::rename) does, without making the new name
    /// durable: for a batch whose names one [`sync_filesystem`](Self::sync_filesystem) makes
    /// durable together.
    fn rename_unsynced(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.rename(from, to)
    }
    /// Whether [`sync_filesystem`](Self::sync_filesystem) works here.
    fn can_sync_filesystem(&self) -> bool {
        false
    }
    /// Flushes every written file's data and every name of the file system holding `path` to
    /// stable storage at once (`syncfs`): what a batch of writes does instead of syncing each
    /// file and directory. Fails with `Unsupported` where [`can_sync_filesystem`] is false.
    ///
    /// [`can_sync_filesystem`]: Self::can_sync_filesystem
    fn sync_filesystem(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Reads `path` into `buf`; `Ok(false)` when it does not exist.
    fn read_into(&self, path: &Path, buf: &mut Vec<u8>) -> io::Result<bool>;
    /// Reads at most `buf.len()` bytes from the start of `path` into `buf`; `Ok(None)` when it
    /// does not exist, else how many bytes were read (fewer only at the end of the file).
    fn read_prefix(&self, path: &Path, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut all = Vec::new();
        if !self.read_into(path, &mut all)? {
            return Ok(None);
        }
        let n = all.len().min(buf.len());
        buf[..n].copy_from_slice(&all[..n]);
        Ok(Some(n))
    }
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names in directory `path` that are UTF-8 (others are not the store's); empty when
    /// it does not exist.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        match fs::read_dir(path) {
            Ok(entries) => entries
                .map(|e| e.map(|e| e.file_name().into_string().ok()))
                .filter_map(Result::transpose)
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdIo;

impl Io for StdIo {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SyncWrite>> {
        let f = OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Box::new(f))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)?;
        // Make the new directory entry durable (POSIX); where directories cannot be opened
        // this way, the rename is still atomic.
        if let Some(dir) = to.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn rename_unsynced(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn can_sync_filesystem(&self) -> bool {
        cfg!(target_os = "linux")
    }

    #[cfg(target_os = "linux")]
    fn sync_filesystem(&self, path: &Path) -> io::Result<()> {
        let file = File::open(path)?;
        rustix::fs::syncfs(&file).map_err(io::Error::from)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn read_into(&self, path: &Path, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(buf)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn read_prefix(&self, path: &Path, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(filled))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
}

/// The real file system, made to crash: after a chosen number of operations (and part-way
/// through the write that crosses it) every operation fails, as if the process had died there.
/// Reads are not counted and keep working until the crash.
///
/// The crash is a power loss too: every file written since it was last synced (by its own
/// sync or a [`sync_filesystem`](Io::sync_filesystem)) loses its data — it is truncated to
/// nothing, under whatever name it has then — so a writer that renames a file into place before
/// its data is durable is caught.
#[derive(Debug)]
pub struct FaultyIo {
    state: std::sync::Arc<Mutex<FaultState>>,
}

#[derive(Debug)]
struct FaultState {
    /// Operations (and written bytes, one per 4 KiB) left before the crash.
    budget: u64,
    crashed: bool,
    /// Files written and not synced since.
    dirty: HashSet<PathBuf>,
}

impl FaultState {
    /// The power goes: what was not synced is lost.
    fn lose_unsynced(&mut self) {
        for path in self.dirty.drain() {
            if let Ok(file) = OpenOptions::new().write(true).open(&path) {
                let _ = file.set_len(0);
            }
        }
    }
}

fn crashed() -> io::Error {
    io::Error::other("injected crash")
}

impl FaultyIo {
    /// A file system that crashes after `budget` operations (each write of up to 4 KiB counts
    /// one, so a large write can stop half-way).
    pub fn new(budget: u64) -> Self {
        FaultyIo {
            state: std::sync::Arc::new(Mutex::new(FaultState {
                budget,
                crashed: false,
                dirty: HashSet::new(),
            })),
        }
    }

    /// Whether the crash has happened.
    pub fn has_crashed(&self) -> bool {
        self.state.lock().map_or(true, |s| s.crashed)
    }

    /// Runs `f` on the state when the crash has not happened.
    fn with_state(&self, f: impl FnOnce(&mut FaultState)) {
        if let Ok(mut s) = self.state.lock()
            && !s.crashed
        {
            f(&mut s);
        }
    }

    /// A file renamed keeps its unsynced data unsynced under its new name.
    fn moved(&self, from: &Path, to: &Path) {
        self.with_state(|s| {
            if s.dirty.remove(from) {
                s.dirty.insert(to.to_path_buf());
            }
        });
    }

    fn spend(state: &Mutex<FaultState>) -> io::Result<()> {
        let mut s = state.lock().map_err(|_| crashed())?;
        if s.crashed || s.budget == 0 {
            if !s.crashed {
                s.crashed = true;
                s.lose_unsynced();
            }
            return Err(crashed());
        }
        s.budget -= 1;
        Ok(())
    }
}

struct FaultyFile {
    inner: File,
    path: PathBuf,
    state: std::sync::Arc<Mutex<FaultState>>,
}

impl Write for FaultyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        FaultyIo::spend(&self.state)?;
        // At most 4 KiB per operation: a crash can land inside a large write.
        let n = buf.len().min(4096);
        self.inner.write(&buf[..n])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl SyncWrite for FaultyFile {
    fn sync(&mut self) -> io::Result<()> {
        FaultyIo::spend(&self.state)?;
        self.inner.sync_all()?;
        if let Ok(mut s) = self.state.lock() {
            s.dirty.remove(&self.path);
        }
        Ok(())
    }
}

impl Io for FaultyIo {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SyncWrite>> {
        Self::spend(&self.state)?;
        let inner = OpenOptions::new().write(true).create_new(true).open(path)?;
        self.with_state(|s| {
            s.dirty.insert(path.to_path_buf());
        });
        Ok(Box::new(FaultyFile {
            inner,
            path: path.to_path_buf(),
            state: self.state.clone(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        Self::spend(&self.state)?;
        StdIo.rename(from, to)?;
        self.moved(from, to);
        Ok(())
    }

    fn rename_unsynced(&self, from: &Path, to: &Path) -> io::Result<()> {
        Self::spend(&self.state)?;
        StdIo.rename_unsynced(from, to)?;
        self.moved(from, to);
        Ok(())
    }

    fn can_sync_filesystem(&self) -> bool {
        true
    }

    fn sync_filesystem(&self, path: &Path) -> io::Result<()> {
        Self::spend(&self.state)?;
        // Where the real one is missing, syncing every file written does the same here.
        if StdIo.can_sync_filesystem() {
            StdIo.sync_filesystem(path)?;
        } else {
            for file in self.state.lock().map_err(|_| crashed())?.dirty.iter() {
                File::open(file)?.sync_all()?;
            }
        }
        self.with_state(|s| s.dirty.clear());
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        Self::spend(&self.state)?;
        StdIo.remove_file(path)?;
        self.with_state(|s| {
            s.dirty.remove(path);
        });
        Ok(())
    }

    fn read_into(&self, path: &Path, buf: &mut Vec<u8>) -> io::Result<bool> {
        if self.has_crashed() {
            return Err(crashed());
        }
        StdIo.read_into(path, buf)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        Self::spend(&self.state)?;
        StdIo.create_dir_all(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        if self.has_crashed() {
            return Err(crashed());
        }
        StdIo.exists(path)
    }
}
