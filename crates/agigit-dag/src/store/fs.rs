//! A filesystem object store: one file per object under `objects/ab/cdef…`, each holding the
//! object's header and body as they are hashed.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agigit_hash::{Hasher, ObjectId};

use super::io_backend::{Io, StdIo};
use super::{Find, StoreError, Write};
use crate::object::{DecodeError, Kind, Limits, ObjectRef, compute_id, header, parse_loose};

/// Objects as files: `objects/<first two hex digits>/<other 62>`.
///
/// Writes go to `objects/tmp/` and are synced, then renamed into place, so an object is either
/// absent or complete under its name; a crash can leave a temporary file behind, never a partial
/// object. A [batch](Write::write_batch) is written the same way with two flushes of the file
/// system in all (`syncfs`: the data before the renames, then the names) instead of two syncs
/// per object, where the platform has it. Every read verifies the bytes against the id, except
/// [`try_find_unverified`](Find::try_find_unverified)'s, for bytes the caller checks by a hash
/// that covers them.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
    io: Arc<dyn Io>,
    limits: Limits,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl FsStore {
    /// A store whose objects live under `root/objects` (created when missing).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::with_io(root, Arc::new(StdIo))
    }

    /// A store doing its file operations through `io`.
    pub fn with_io(root: impl Into<PathBuf>, io: Arc<dyn Io>) -> Result<Self, StoreError> {
        let root = root.into();
        let tmp = root.join("objects").join("tmp");
        io.create_dir_all(&tmp).map_err(io_err(&tmp))?;
        Ok(FsStore {
            root,
            io,
            limits: Limits::default(),
        })
    }

    /// The directory holding the `objects` directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object `id` is stored.
    pub fn path_of(&self, id: &ObjectId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join("objects").join(&hex[..2]).join(&hex[2..])
    }

    /// Removes temporary files older than `age` from `objects/tmp/` — what writers that crashed
    /// left behind (a live writer's file is younger than any sensible `age`). Returns how many
    /// were removed. Objects are never touched.
    pub fn remove_stale_temps(&self, age: std::time::Duration) -> Result<usize, StoreError> {
        let dir = self.root.join("objects").join("tmp");
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let path = entry.path();
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(io_err(&path))?;
            if now.duration_since(modified).is_ok_and(|d| d >= age) {
                self.io.remove_file(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the temporary files in `objects/tmp/` whose writer no longer runs (their names
    /// carry its process id): what a crash left, whatever its age. Returns how many were
    /// removed. Where processes cannot be told apart, nothing is removed
    /// ([`remove_stale_temps`](Self::remove_stale_temps) goes by age instead).
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove_dead_temps(&self) -> Result<usize, StoreError> {
        let dir = self.root.join("objects").join("tmp");
        let mut removed = 0;
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("obj-")
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(pid, _)| pid.parse().ok());
            let Some(pid) = pid else { continue };
            let owner = crate::process::Owner { pid, start: None };
            if owner.is_running() == Some(false) {
                let path = entry.path();
                self.io.remove_file(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn temp_path(&self) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("objects")
            .join("tmp")
            .join(format!("obj-{}-{n}", std::process::id()))
    }

    /// Writes the temporary file of an object whose body is in memory, unsynced.
    fn write_temp_unsynced(&self, tmp: &Path, kind: Kind, body: &[u8]) -> Result<(), StoreError> {
        let mut file = self.io.create_new(tmp).map_err(io_err(tmp))?;
        file.write_all(&header(kind, body.len() as u64))
            .and_then(|()| file.write_all(body))
            .and_then(|()| file.flush())
            .map_err(io_err(tmp))
    }

    /// [`Write::write_batch`] with one flush of the file system for the data and one for the
    /// names: objects go to temporary files unsynced, the file system is synced, they are
    /// renamed into place, and it is synced again. An object already stored (or twice in the
    /// batch) is written once.
    fn write_batch_synced_once(
        &self,
        objects: &[(Kind, &[u8])],
    ) -> Result<Vec<ObjectId>, StoreError> {
        let mut ids = Vec::with_capacity(objects.len());
        // Temporary files not yet renamed, with the object each becomes.
        let mut staged: Vec<(PathBuf, ObjectId)> = Vec::new();
        let result = (|| {
            for &(kind, body) in objects {
                super::check_size(self.limits, kind, body.len() as u64)?;
                let id = compute_id(kind, body);
                ids.push(id);
                let path = self.path_of(&id);
                if staged.iter().any(|(_, s)| *s == id)
                    || self.io.exists(&path).map_err(io_err(&path))?
                {
                    continue;
                }
                let tmp = self.temp_path();
                // Named before it is created: a failed write still has its file removed.
                staged.push((tmp.clone(), id));
                self.write_temp_unsynced(&tmp, kind, body)?;
            }
            if staged.is_empty() {
                return Ok(());
            }
            let objects_dir = self.root.join("objects");
            // Every object's data is durable before any of them has its name.
            self.io
                .sync_filesystem(&objects_dir)
                .map_err(io_err(&objects_dir))?;
            while let Some((tmp, id)) = staged.pop() {
                let path = self.path_of(&id);
                if let Some(dir) = path.parent() {
                    self.io.create_dir_all(dir).map_err(io_err(dir))?;
                }
                if let Err(e) = self.io.rename_unsynced(&tmp, &path) {
                    staged.push((tmp, id));
                    return Err(io_err(&path)(e));
                }
            }
            self.io
                .sync_filesystem(&objects_dir)
                .map_err(io_err(&objects_dir))
        })();
        // Best effort, as for one object: what a crash stops here stays behind in tmp/.
        for (tmp, _) in staged {
            let _ = self.io.remove_file(&tmp);
        }
        result.map(|()| ids)
    }

    /// Writes the temporary file: header, then exactly `size` body bytes from `from`.
    fn write_temp(
        &self,
        tmp: &Path,
        kind: Kind,
        size: u64,
        from: &mut dyn Read,
    ) -> Result<ObjectId, StoreError> {
        let mut file = self.io.create_new(tmp).map_err(io_err(tmp))?;
        let head = header(kind, size);
        let mut hasher = Hasher::new();
        hasher.update(&head);
        file.write_all(&head).map_err(io_err(tmp))?;
        let mut buf = vec![0u8; 64 << 10];
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = match from.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(StoreError::SizeMismatch {
                        declared: size,
                        actual: size - left,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::Source(e)),
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(io_err(tmp))?;
            left -= n as u64;
        }
        // The source must end where it said it would.
        let mut probe = [0u8; 1];
        loop {
            match from.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(StoreError::SizeMismatch {
                        declared: size,
                        actual: size + 1,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StoreError::Source(e)),
            }
        }
        file.flush().map_err(io_err(tmp))?;
        file.sync().map_err(io_err(tmp))?;
        Ok(ObjectId::from_hasher(hasher))
    }
}

impl Find for FsStore {
    fn ids_with_prefix(
        &self,
        prefix: &crate::rev::HexPrefix,
        limit: usize,
    ) -> Result<Vec<ObjectId>, StoreError> {
        // A prefix has at least four digits: the first two name the one directory to list.
        let (dir_name, rest) = prefix.as_str().split_at(2);
        let dir = self.root.join("objects").join(dir_name);
        let names = self.io.list_dir(&dir).map_err(io_err(&dir))?;
        let mut ids: Vec<ObjectId> = names
            .iter()
            .filter(|n| n.starts_with(rest))
            .filter_map(|n| format!("{dir_name}{n}").parse().ok())
            .collect();
        ids.sort();
        ids.truncate(limit);
        Ok(ids)
    }

    fn contains(&self, id: &ObjectId) -> Result<bool, StoreError> {
        let path = self.path_of(id);
        self.io.exists(&path).map_err(io_err(&path))
    }

    fn header_of(&self, id: &ObjectId) -> Result<Option<(Kind, u64)>, StoreError> {
        let path = self.path_of(id);
        let mut head = [0u8; crate::object::MAX_HEADER_LEN];
        let Some(n) = self
            .io
            .read_prefix(&path, &mut head)
            .map_err(io_err(&path))?
        else {
            return Ok(None);
        };
        let corrupt = |source| StoreError::Corrupt { id: *id, source };
        let (kind, len, _) =
            crate::object::parse_header(&head[..n], self.limits).map_err(corrupt)?;
        Ok(Some((kind, len)))
    }

    fn try_find<'a>(
        &self,
        id: &ObjectId,
        buf: &'a mut Vec<u8>,
    ) -> Result<Option<ObjectRef<'a>>, StoreError> {
        self.read(id, buf, true)
    }

    fn try_find_unverified<'a>(
        &self,
        id: &ObjectId,
        buf: &'a mut Vec<u8>,
    ) -> Result<Option<ObjectRef<'a>>, StoreError> {
        self.read(id, buf, false)
    }
}

impl FsStore {
    /// Object `id`'s file into `buf`, its header parsed and, when `verify`, its bytes hashed
    /// against `id`.
    fn read<'a>(
        &self,
        id: &ObjectId,
        buf: &'a mut Vec<u8>,
        verify: bool,
    ) -> Result<Option<ObjectRef<'a>>, StoreError> {
        let path = self.path_of(id);
        if !self.io.read_into(&path, buf).map_err(io_err(&path))? {
            return Ok(None);
        }
        let corrupt = |source| StoreError::Corrupt { id: *id, source };
        let (kind, body) = parse_loose(buf, self.limits).map_err(corrupt)?;
        if verify {
            let actual = compute_id(kind, body);
            if actual != *id {
                return Err(corrupt(DecodeError::IdMismatch {
                    expected: *id,
                    actual,
                }));
            }
        }
        let start = buf.len() - body.len();
        Ok(Some(ObjectRef {
            kind,
            data: &buf[start..],
        }))
    }
}

impl Write for FsStore {
    fn write_stream(
        &self,
        kind: Kind,
        size: u64,
        from: &mut dyn Read,
    ) -> Result<ObjectId, StoreError> {
        super::check_size(self.limits, kind, size)?;
        let tmp = self.temp_path();
        let result = self.write_temp(&tmp, kind, size, from).and_then(|id| {
            let path = self.path_of(&id);
            if self.io.exists(&path).map_err(io_err(&path))? {
                // Already stored (content-addressed: the same bytes). Keep the existing file.
                let _ = self.io.remove_file(&tmp);
                return Ok(id);
            }
            if let Some(dir) = path.parent() {
                self.io.create_dir_all(dir).map_err(io_err(dir))?;
            }
            self.io.rename(&tmp, &path).map_err(io_err(&path))?;
            Ok(id)
        });
        if result.is_err() {
            // Best effort: after a crash this fails too, and a temporary file stays behind,
            // never a partial object under its name.
            let _ = self.io.remove_file(&tmp);
        }
        result
    }

    fn write_batch(&self, objects: &[(Kind, &[u8])]) -> Result<Vec<ObjectId>, StoreError> {
        if objects.len() < 2 || !self.io.can_sync_filesystem() {
            return objects
                .iter()
                .map(|(kind, body)| self.write_buf(*kind, body))
                .collect();
        }
        self.write_batch_synced_once(objects)
    }
}
