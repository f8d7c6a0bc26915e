//! Model diffs: what changed between two versions of a model (or a version and the working
//! directory), file by file and — for safetensors files — tensor by tensor: dtype and shape,
//! the share of elements that changed, ‖Δ‖/‖W‖, and how each version is stored.

use std::collections::{BTreeMap, BTreeSet};

use agigit_dag::{Commit, FindExt, Kind, ObjectId, TensorObject};
use agigit_delta::codec::output_digest;
use agigit_delta::compare::{Comparison, compare};

use super::{Change, Found, existing};
use crate::Repository;
use crate::error::Error;
use crate::worktree::{self, FileSource, Part};

/// Which files an operation looks at: all, or those of some parts and under some paths — what
/// `agigit log -- <part|path>`, `diff -- …` and `checkout <rev> -- …` take.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathFilter {
    parts: BTreeSet<Part>,
    paths: Vec<String>,
}

impl PathFilter {
    /// Everything.
    pub fn all() -> Self {
        PathFilter::default()
    }

    /// From what a user typed after `--`: a part (`code`, `params`, `data/train` or `train`,
    /// `data/validation` or `validation`), else a file or directory path in the working
    /// directory's terms (`data/train/rows.csv`, `configs/`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty path or one with `..`, `.` or an empty component.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self, Error> {
        let mut filter = PathFilter::default();
        for spec in specs {
            let spec = spec.as_ref();
            let part = match spec {
                "train" => Some(Part::Train),
                "validation" => Some(Part::Validation),
                other => Part::from_name(other.trim_end_matches('/')),
            };
            if let Some(p) = part {
                filter.parts.insert(p);
                continue;
            }
            let path = spec.trim_end_matches('/');
            if path.is_empty()
                || path
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                return Err(Error::Invalid(format!(
                    "{spec:?} is neither a part (code, params, data/train, data/validation) nor a path inside the model"
                )));
            }
            filter.paths.push(path.to_owned());
        }
        Ok(filter)
    }

    /// Whether nothing is filtered out.
    pub fn is_all(&self) -> bool {
        self.parts.is_empty() && self.paths.is_empty()
    }

    /// Whether the working-directory file `rel` is selected.
    pub fn matches(&self, rel: &str) -> bool {
        self.is_all()
            || self.parts.contains(&worktree::classify(rel).0)
            || self.paths.iter().any(|p| {
                rel == p
                    || (rel.starts_with(p.as_str()) && rel.as_bytes().get(p.len()) == Some(&b'/'))
            })
    }
}

/// How one version of a tensor is stored.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TensorInfo {
    /// The safetensors dtype name.
    pub dtype: String,
    /// The shape.
    pub shape: Vec<u64>,
    /// Its encoding (`dense`, `lossless`, `lowrank`, `signscale`) and parameters (`rank`), and
    /// whether it is a delta against another tensor; `None` for a working-directory file.
    pub storage: Option<Storage>,
}

/// How a committed tensor is stored.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Storage {
    /// The encoding's name.
    pub encoding: String,
    /// Its parameters (`rank`, …).
    pub params: Vec<(String, u64)>,
    /// Whether it is a delta against another tensor (a fork's foundation).
    pub delta: bool,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Bytes of the tensor itself.
    pub dense_bytes: u64,
    /// The relative error the commit's fidelity statement records for it, when the commit
    /// that wrote it is the one looked at (0 for an exact codec).
    pub rel_error: Option<f64>,
}

impl Storage {
    /// `dense`, `lossless delta`, `lowrank r=32 delta (err 0.0123)`, …
    pub fn describe(&self) -> String {
        let mut out = self.encoding.clone();
        for (k, v) in &self.params {
            let k = if k == "rank" { "r" } else { k.as_str() };
            out.push_str(&format!(" {k}={v}"));
        }
        if self.delta {
            out.push_str(" delta");
        }
        if let Some(e) = self.rel_error.filter(|e| *e > 0.0) {
            out.push_str(&format!(" (err {e:.4})"));
        }
        out
    }
}

/// What changed in one tensor.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TensorDiff {
    /// Its name in the safetensors file.
    pub name: String,
    /// Added, modified or deleted.
    pub change: Change,
    /// Before.
    pub old: Option<TensorInfo>,
    /// After.
    pub new: Option<TensorInfo>,
    /// Element-wise comparison, when both exist with the same dtype and shape.
    pub comparison: Option<Comparison>,
}

/// What changed in one file.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FileDiff {
    /// The working-directory path.
    pub path: String,
    /// Its part.
    pub part: Part,
    /// Added, modified or deleted.
    pub change: Change,
    /// Its size before and after (plain files; `None` for a safetensors file or an absent side).
    pub bytes: (Option<u64>, Option<u64>),
    /// For a safetensors file, the tensors that changed: the largest relative change first.
    pub tensors: Vec<TensorDiff>,
}

/// A model diff: every file that changed, in path order.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ModelDiff {
    /// The files.
    pub files: Vec<FileDiff>,
}

/// One version of a file.
enum Side<'a> {
    Stored(&'a FileSource),
    Disk(std::path::PathBuf),
}

impl Repository {
    /// The diff from revision `from` to revision `to` — or, when `to` is `None`, to the working
    /// directory — restricted to `filter`.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`]; store and I/O errors; a malformed safetensors file in the
    /// working directory.
    pub fn diff(
        &self,
        from: &str,
        to: Option<&str>,
        filter: &PathFilter,
    ) -> Result<ModelDiff, Error> {
        let from = self.resolve(from)?;
        let old = self.files_of(Some(from))?;
        let errors = [self.errors_of(Some(from))?, ErrorMap::new()];
        match to {
            Some(rev) => {
                let to = self.resolve(rev)?;
                let new = self.files_of(Some(to))?;
                let errors = [errors[0].clone(), self.errors_of(Some(to))?];
                self.diff_files(&old, &new, filter, &errors)
            }
            None => self.diff_worktree(&old, filter, &errors),
        }
    }

    /// Commit `rev` and what it changed against its first parent (everything, for a root
    /// commit): what `agigit show` prints.
    ///
    /// # Errors
    /// As [`diff`](Self::diff).
    pub fn show(
        &self,
        rev: &str,
        filter: &PathFilter,
    ) -> Result<(ObjectId, Commit, ModelDiff), Error> {
        let id = self.resolve(rev)?;
        let commit = self.store().find_commit(&id)?;
        let parent = commit.parents.first().copied();
        let old = self.files_of(parent)?;
        let new = self.files_of(Some(id))?;
        let errors = [self.errors_of(parent)?, self.errors_of(Some(id))?];
        let diff = self.diff_files(&old, &new, filter, &errors)?;
        Ok((id, commit, diff))
    }

    /// The relative errors commit `id`'s fidelity statement records, by (path, tensor).
    fn errors_of(&self, id: Option<ObjectId>) -> Result<ErrorMap, Error> {
        let Some(id) = id else {
            return Ok(ErrorMap::new());
        };
        let commit = self.store().find_commit(&id)?;
        Ok(Repository::fidelity(&commit)?
            .map(|f| {
                f.records()
                    .iter()
                    .map(|r| ((r.path.clone(), r.tensor.clone()), r.rel_error))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The files of commit `id` (none for `None`).
    fn files_of(&self, id: Option<ObjectId>) -> Result<BTreeMap<String, FileSource>, Error> {
        match id {
            Some(id) => self.tree_files(&self.store().find_commit(&id)?.tree),
            None => Ok(BTreeMap::new()),
        }
    }

    fn diff_files(
        &self,
        old: &BTreeMap<String, FileSource>,
        new: &BTreeMap<String, FileSource>,
        filter: &PathFilter,
        errors: &[ErrorMap; 2],
    ) -> Result<ModelDiff, Error> {
        let paths: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        let mut files = Vec::new();
        for path in paths.into_iter().filter(|p| filter.matches(p)) {
            let (o, n) = (old.get(path), new.get(path));
            if o == n {
                continue;
            }
            if let Some(f) =
                self.file_diff(path, o.map(Side::Stored), n.map(Side::Stored), errors)?
            {
                files.push(f);
            }
        }
        Ok(ModelDiff { files })
    }

    fn diff_worktree(
        &self,
        old: &BTreeMap<String, FileSource>,
        filter: &PathFilter,
        errors: &[ErrorMap; 2],
    ) -> Result<ModelDiff, Error> {
        let status = self.status()?;
        let mut files = Vec::new();
        for (path, change) in status.iter().filter(|(p, _)| filter.matches(p)) {
            let disk = || -> Result<Side<'_>, Error> {
                match existing(self.root(), path)? {
                    Found::File(p) => Ok(Side::Disk(p)),
                    _ => Err(Error::Invalid(format!("{path} is not a regular file"))),
                }
            };
            let (o, n) = match change {
                Change::Added => (None, Some(disk()?)),
                Change::Deleted => (old.get(path).map(Side::Stored), None),
                Change::Modified => (old.get(path).map(Side::Stored), Some(disk()?)),
            };
            if let Some(f) = self.file_diff(path, o, n, errors)? {
                files.push(f);
            }
        }
        Ok(ModelDiff { files })
    }

    /// How `path` changed from `old` to `new` (`None` when it did not, tensor by tensor).
    fn file_diff(
        &self,
        path: &str,
        old: Option<Side<'_>>,
        new: Option<Side<'_>>,
        errors: &[ErrorMap; 2],
    ) -> Result<Option<FileDiff>, Error> {
        let change = match (&old, &new) {
            (None, None) => return Ok(None),
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Deleted,
            (Some(_), Some(_)) => Change::Modified,
        };
        let part = worktree::classify(path).0;
        let safetensors = |s: &Option<Side<'_>>| match s {
            Some(Side::Stored(FileSource::Safetensors(_))) => true,
            Some(Side::Disk(p)) => p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".safetensors")),
            _ => false,
        };
        let mut out = FileDiff {
            path: path.to_owned(),
            part,
            change,
            bytes: (None, None),
            tensors: Vec::new(),
        };
        if safetensors(&old) || safetensors(&new) {
            out.tensors = self.tensor_diffs(path, old.as_ref(), new.as_ref(), errors)?;
        }
        if out.tensors.is_empty() {
            out.bytes = (self.file_size(old.as_ref())?, self.file_size(new.as_ref())?);
        }
        Ok(Some(out))
    }

    fn file_size(&self, side: Option<&Side<'_>>) -> Result<Option<u64>, Error> {
        Ok(match side {
            Some(Side::Stored(FileSource::Blob { id, .. })) => match self.store().header_of(id)? {
                Some((Kind::Blob, size)) => Some(size),
                _ => None,
            },
            Some(Side::Stored(FileSource::Chunked(id))) => {
                Some(worktree::chunked_len(self.store(), id)?)
            }
            Some(Side::Disk(p)) => Some(std::fs::metadata(p).map_err(Error::io(p))?.len()),
            _ => None,
        })
    }

    /// The tensors of a safetensors file that differ between `old` and `new`.
    fn tensor_diffs(
        &self,
        path: &str,
        old: Option<&Side<'_>>,
        new: Option<&Side<'_>>,
        errors: &[ErrorMap; 2],
    ) -> Result<Vec<TensorDiff>, Error> {
        let error = |side: usize, name: &str| {
            errors[side]
                .get(&(path.to_owned(), name.to_owned()))
                .copied()
        };
        let stored = |side: Option<&Side<'_>>| -> Result<BTreeMap<String, ObjectId>, Error> {
            Ok(match side {
                Some(Side::Stored(FileSource::Safetensors(tree))) => {
                    worktree::safetensors_layout(self.store(), tree)?
                        .tensors
                        .into_iter()
                        .collect()
                }
                _ => BTreeMap::new(),
            })
        };
        let (old_ids, new_ids) = (stored(old)?, stored(new)?);
        let file = match new {
            Some(Side::Disk(p)) => {
                Some(agigit_delta::SafetensorsFile::open(p).map_err(|source| {
                    Error::Safetensors {
                        path: p.clone(),
                        source,
                    }
                })?)
            }
            _ => None,
        };
        let mut names: BTreeSet<String> = old_ids.keys().chain(new_ids.keys()).cloned().collect();
        if let Some(f) = &file {
            names.extend(f.names().map(str::to_owned));
        }
        let mut out = Vec::new();
        for name in names {
            let old_obj = old_ids
                .get(&name)
                .map(|id| Ok::<_, Error>((*id, self.store().find_tensor(id)?)))
                .transpose()?;
            let new_obj = new_ids
                .get(&name)
                .map(|id| Ok::<_, Error>((*id, self.store().find_tensor(id)?)))
                .transpose()?;
            let new_view = file.as_ref().and_then(|f| f.tensor(&name));
            let new_digest = match (&new_obj, &new_view) {
                (Some((_, o)), _) => Some(o.digest),
                (None, Some(v)) => Some(output_digest(v.dtype(), v.shape(), v.data())),
                (None, None) => None,
            };
            if let (Some((_, o)), Some(d)) = (&old_obj, new_digest)
                && o.digest == d
            {
                continue; // The same values, however each is stored.
            }
            let change = match (&old_obj, new_digest) {
                (None, _) => Change::Added,
                (Some(_), None) => Change::Deleted,
                (Some(_), Some(_)) => Change::Modified,
            };
            let comparison = match (&old_obj, &new_obj, &new_view) {
                (Some((oid, o)), Some((nid, n)), _) if o.dtype == n.dtype && o.shape == n.shape => {
                    let (a, b) = (self.tensor(&name, oid)?, self.tensor(&name, nid)?);
                    compare(a.view(), b.view())
                }
                (Some((oid, _)), None, Some(view)) => {
                    let a = self.tensor(&name, oid)?;
                    compare(a.view(), *view)
                }
                _ => None,
            };
            let (old_error, new_error) = (error(0, &name), error(1, &name));
            out.push(TensorDiff {
                name,
                change,
                old: old_obj.as_ref().map(|(_, o)| stored_info(o, old_error)),
                new: match (&new_obj, &new_view) {
                    (Some((_, n)), _) => Some(stored_info(n, new_error)),
                    (None, Some(v)) => Some(TensorInfo {
                        dtype: v.dtype().as_str().to_owned(),
                        shape: v.shape().iter().map(|&d| d as u64).collect(),
                        storage: None,
                    }),
                    (None, None) => None,
                },
                comparison,
            });
        }
        // The largest relative change first, then the largest share changed; then by name.
        out.sort_by(|a, b| {
            let key = |t: &TensorDiff| {
                t.comparison.map_or((f64::NEG_INFINITY, -1.0), |c| {
                    (c.relative_change().unwrap_or(-1.0), c.changed_share())
                })
            };
            let (ka, kb) = (key(a), key(b));
            kb.0.total_cmp(&ka.0)
                .then(kb.1.total_cmp(&ka.1))
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(out)
    }
}

/// Relative errors by (path, tensor), from a fidelity statement.
type ErrorMap = BTreeMap<(String, String), f64>;

fn stored_info(o: &TensorObject, rel_error: Option<f64>) -> TensorInfo {
    TensorInfo {
        dtype: o.dtype.clone(),
        shape: o.shape.clone(),
        storage: Some(Storage {
            encoding: o.encoding.clone(),
            params: o.params.clone(),
            delta: o.base.is_some(),
            stored_bytes: o.payload_len,
            dense_bytes: o.byte_len,
            rel_error,
        }),
    }
}
