//! The working directory's files: listing them, hashing one, replacing one atomically.

use std::fs::File;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

use agigit_dag::{Kind, ObjectId};

use crate::error::Error;

use super::DOT_DIR;

/// Lists the files under `root` (relative, `/`-separated, sorted), skipping [`DOT_DIR`].
///
/// # Errors
/// [`Error::Io`]; [`Error::Invalid`] for a symlink or a name that is not UTF-8.
pub fn list_files(root: &Path) -> Result<Vec<String>, Error> {
    list_files_in(root, true)
}

/// Lists every file under `dir`, a `.agigit` directory in it included (a nested repository a
/// checkout must not remove silently).
pub(crate) fn list_all_files(dir: &Path) -> Result<Vec<String>, Error> {
    list_files_in(dir, false)
}

fn list_files_in(root: &Path, skip_dot_dir: bool) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(Error::io(&dir))?;
        for entry in entries {
            let entry = entry.map_err(Error::io(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(Error::Invalid(format!(
                    "{}: file names must be UTF-8",
                    entry.path().display()
                )));
            };
            if skip_dot_dir && rel.as_os_str().is_empty() && name == DOT_DIR {
                continue;
            }
            let child = rel.join(name);
            let kind = entry.file_type().map_err(Error::io(entry.path()))?;
            if kind.is_dir() {
                stack.push(child);
            } else if kind.is_file() {
                out.push(
                    child
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            } else {
                return Err(Error::Invalid(format!(
                    "{}: symlinks and special files are not supported; copy the file in",
                    entry.path().display()
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

pub(super) fn is_executable(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// What the temporary files of [`write_atomic`] have in their names (`.<name>.agigit-tmp-…`).
pub(crate) const TEMP_MARK: &str = "agigit-tmp";

/// Writes `bytes` to `path` through a temporary file in the same directory, then renames it.
pub(crate) fn write_atomic(
    path: &Path,
    executable: bool,
    fill: impl FnOnce(&mut File) -> Result<(), Error>,
) -> Result<(), Error> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // Unique per process and call: two writers never share a temporary file, and `create_new`
    // never opens one planted there (or a symlink) in its place.
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = dir.join(format!(".{name}.{TEMP_MARK}-{}-{n}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(Error::io(&temp))?;
        fill(&mut file)?;
        file.flush().map_err(Error::io(&temp))?;
        file.sync_all().map_err(Error::io(&temp))?;
        #[cfg(unix)]
        if executable {
            use std::os::unix::fs::PermissionsExt as _;
            let mut perms = file.metadata().map_err(Error::io(&temp))?.permissions();
            perms.set_mode(perms.mode() | 0o111);
            std::fs::set_permissions(&temp, perms).map_err(Error::io(&temp))?;
        }
        #[cfg(not(unix))]
        let _ = executable;
        std::fs::rename(&temp, path).map_err(Error::io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Bytes written to a file between two early syncs of [`EarlySync`].
const EARLY_SYNC_EVERY: u64 = 8 << 20;

/// Writes a large file and has what it has written so far synced on a thread of its own every
/// [`EARLY_SYNC_EVERY`] bytes, so that the disk writes while the next part is being produced and
/// the sync that ends [`write_atomic`] waits only for the last part. Durability is the same: that
/// final sync still covers every byte.
pub(crate) struct EarlySync<'f> {
    file: &'f mut File,
    path: &'f Path,
    since: u64,
    pending: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl<'f> EarlySync<'f> {
    pub(crate) fn new(file: &'f mut File, path: &'f Path) -> Self {
        EarlySync {
            file,
            path,
            since: 0,
            pending: None,
        }
    }

    /// Writes `data`; past every [`EARLY_SYNC_EVERY`] bytes, starts a sync of what is written.
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.file.write_all(data).map_err(Error::io(self.path))?;
        self.since += data.len() as u64;
        // One sync at a time, and the writer never waits for it: while one runs, the next
        // starts at the first write after it ends.
        let idle = self
            .pending
            .as_ref()
            .is_none_or(std::thread::JoinHandle::is_finished);
        if self.since >= EARLY_SYNC_EVERY && idle {
            self.since = 0;
            self.wait()?;
            let file = self.file.try_clone().map_err(Error::io(self.path))?;
            self.pending = Some(std::thread::spawn(move || file.sync_data()));
        }
        Ok(())
    }

    /// Waits for the sync under way, if any; its error, if it failed.
    pub(crate) fn wait(&mut self) -> Result<(), Error> {
        match self.pending.take().map(std::thread::JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(Error::io(self.path)(e)),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for EarlySync<'_> {
    fn drop(&mut self) {
        // A write that failed leaves its sync to finish before the file is removed.
        if let Some(pending) = self.pending.take() {
            let _ = pending.join();
        }
    }
}

/// Hashes a file the way a blob of its bytes would be named.
pub(crate) fn blob_id_of_file(path: &Path) -> Result<ObjectId, Error> {
    let mut file = File::open(path).map_err(Error::io(path))?;
    let len = file.metadata().map_err(Error::io(path))?.len();
    let mut hasher = agigit_hash::Hasher::new();
    hasher.update(&agigit_dag::object::header(Kind::Blob, len));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(Error::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(ObjectId::from_hasher(hasher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_syncs_write_every_byte_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("big");
        // Three syncs' worth and a tail, in writes of uneven sizes.
        let data: Vec<u8> = (0..(3 * EARLY_SYNC_EVERY + 12_345))
            .map(|i| u8::try_from(i % 251).unwrap_or(0))
            .collect();
        write_atomic(&path, false, |f| {
            let mut out = EarlySync::new(f, &path);
            for piece in data.chunks(3_000_017) {
                out.write(piece)?;
            }
            out.wait()
        })
        .expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), data);
        // A fill that fails after early syncs began leaves nothing behind, the file or its
        // temporary.
        let failed = write_atomic(&dir.path().join("failed"), false, |f| {
            let mut out = EarlySync::new(f, &path);
            out.write(&data)?;
            Err(Error::Invalid("stopped".into()))
        });
        assert!(failed.is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("big")]);
    }
}
