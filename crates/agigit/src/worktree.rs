//! A model directory ↔ a model tree of objects.
//!
//! Every file goes to one of the four parts by a fixed, reversible rule:
//! `data/train/**` → training data, `data/validation/**` → validation data, `*.safetensors` and
//! `*.safetensors.index.json` elsewhere → parameters, everything else → code. Code and parameter
//! paths keep their place relative to the directory's root, data paths relative to their part.
//!
//! A safetensors file becomes a tree named like the file: its header (length prefix and JSON,
//! byte for byte) under [`HEADER_ENTRY`], and one tensor object per tensor, its bytes cut into
//! blobs of at most [`SEGMENT`] bytes. Checkout writes the header and then the tensors in their
//! offsets' order, so the file comes back bit for bit while each tensor is versioned (and can be
//! stored as a delta) on its own. Memory stays bounded by one segment, whatever the file's size.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

use agigit_dag::model::ModelParts;
use agigit_dag::{
    EntryMode, FindExt, Kind, ObjectId, TensorObject, Tree, TreeEntry, Write, WriteExt,
};
use agigit_delta::SafetensorsFile;
use agigit_delta::codec::output_digest;

use crate::error::Error;

/// The tree entry holding a safetensors file's header.
pub const HEADER_ENTRY: &str = ".safetensors-header";

/// The largest blob a tensor's bytes are cut into.
pub const SEGMENT: usize = 4 << 20;

/// How a fork's tensors are stored: as deltas against the foundation's same-named tensors.
pub struct DeltaPlan<'a> {
    /// The codec (Lossless by default: bit-exact).
    pub codec: &'a dyn agigit_delta::DeltaCodec,
    /// The foundation's tensor for (safetensors file path, tensor name): its object id and its
    /// bytes. `None`: store the tensor dense.
    #[allow(clippy::type_complexity, reason = "a lookup callback")]
    pub base: &'a dyn Fn(&str, &str) -> Result<Option<(ObjectId, agigit_delta::Tensor)>, Error>,
    /// What encoding did, summed.
    pub stats: std::sync::Mutex<DeltaStats>,
}

impl DeltaPlan<'_> {
    /// Updates the totals.
    fn record(&self, update: impl FnOnce(&mut DeltaStats)) -> Result<(), Error> {
        let mut stats = self
            .stats
            .lock()
            .map_err(|_| Error::Invalid("the delta statistics lock is poisoned".into()))?;
        update(&mut stats);
        Ok(())
    }
}

impl std::fmt::Debug for DeltaPlan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaPlan")
            .field("codec", &self.codec.kind())
            .finish_non_exhaustive()
    }
}

/// Totals of a fork's delta encoding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeltaStats {
    /// Tensors stored as deltas.
    pub delta_tensors: usize,
    /// Tensors stored dense (no base, another shape, or a delta that did not pay).
    pub dense_tensors: usize,
    /// Tensors identical to their base (stored by reference to it).
    pub unchanged_tensors: usize,
    /// The dense size of every tensor (unchanged ones included).
    pub dense_bytes: u64,
    /// The dense size of the unchanged tensors.
    pub unchanged_bytes: u64,
    /// What was stored for them.
    pub stored_bytes: u64,
    /// The largest relative error of a lossy codec (0 for exact ones).
    pub max_rel_error: f64,
}

/// The directory agigit keeps its own state in, never part of a snapshot.
pub const DOT_DIR: &str = ".agigit";

/// One of a model's four parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// `code/`: configuration, tokenizer, scripts, everything not otherwise placed.
    Code,
    /// `params/`: safetensors files and their index.
    Params,
    /// `data/train/`.
    Train,
    /// `data/validation/`.
    Validation,
}

impl Part {
    /// All four, in tree order.
    pub const ALL: [Part; 4] = [Part::Code, Part::Params, Part::Train, Part::Validation];

    /// The part's name as `status` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Part::Code => "code",
            Part::Params => "params",
            Part::Train => "data/train",
            Part::Validation => "data/validation",
        }
    }

    /// The part `name` (as [`name`](Self::name) prints it).
    pub fn from_name(name: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.name() == name)
    }

    pub(crate) fn get(self, parts: &ModelParts) -> Option<ObjectId> {
        match self {
            Part::Code => parts.code,
            Part::Params => parts.params,
            Part::Train => parts.train,
            Part::Validation => parts.validation,
        }
    }

    pub(crate) fn set(self, parts: &mut ModelParts, id: Option<ObjectId>) {
        match self {
            Part::Code => parts.code = id,
            Part::Params => parts.params = id,
            Part::Train => parts.train = id,
            Part::Validation => parts.validation = id,
        }
    }

    /// Where a path inside this part (`/`-separated) lives in the working directory, relative to
    /// its root and `/`-separated.
    fn to_worktree(self, inner: &str) -> String {
        match self {
            Part::Code | Part::Params => inner.to_owned(),
            Part::Train => format!("data/train/{inner}"),
            Part::Validation => format!("data/validation/{inner}"),
        }
    }
}

/// Which part a working-directory path (`/`-separated, relative) belongs to, and its path there.
pub fn classify(rel: &str) -> (Part, &str) {
    if let Some(rest) = rel.strip_prefix("data/train/") {
        return (Part::Train, rest);
    }
    if let Some(rest) = rel.strip_prefix("data/validation/") {
        return (Part::Validation, rest);
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json") {
        (Part::Params, rel)
    } else {
        (Part::Code, rel)
    }
}

/// A node of a part's directory tree while it is built.
enum Node {
    Leaf(EntryMode, ObjectId),
    Dir(BTreeMap<String, Node>),
}

fn insert(dir: &mut BTreeMap<String, Node>, path: &str, mode: EntryMode, id: ObjectId) {
    match path.split_once('/') {
        None => {
            dir.insert(path.to_owned(), Node::Leaf(mode, id));
        }
        Some((head, rest)) => {
            let sub = dir
                .entry(head.to_owned())
                .or_insert_with(|| Node::Dir(BTreeMap::new()));
            if let Node::Dir(sub) = sub {
                insert(sub, rest, mode, id);
            }
        }
    }
}

fn write_dir<S: Write + ?Sized>(
    store: &S,
    dir: &BTreeMap<String, Node>,
) -> Result<ObjectId, Error> {
    let mut entries = Vec::with_capacity(dir.len());
    for (name, node) in dir {
        let (mode, id) = match node {
            Node::Leaf(mode, id) => (*mode, *id),
            Node::Dir(sub) => (EntryMode::Tree, write_dir(store, sub)?),
        };
        entries.push(TreeEntry::new(name.clone(), mode, id));
    }
    let tree = Tree::new(entries).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(store.write_tree(&tree)?)
}

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

fn is_executable(meta: &std::fs::Metadata) -> bool {
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

/// Stores one file as a blob (streamed: bounded memory).
fn write_file<S: Write + ?Sized>(store: &S, path: &Path) -> Result<(EntryMode, ObjectId), Error> {
    let mut file = File::open(path).map_err(Error::io(path))?;
    let meta = file.metadata().map_err(Error::io(path))?;
    let id = store.write_stream(Kind::Blob, meta.len(), &mut file)?;
    let mode = if is_executable(&meta) {
        EntryMode::Executable
    } else {
        EntryMode::File
    };
    Ok((mode, id))
}

/// Stores a tensor's payload as blobs of at most [`SEGMENT`] bytes, no blob twice: readers refuse a
/// tensor that lists a blob twice (it would let a few bytes on the wire stand for any number in
/// memory). Segments are [`SEGMENT`] bytes each, so that a tensor's unchanged segments keep their
/// ids from version to version; a payload with repeated segments (a run of zeros, say) is cut into
/// segments of strictly decreasing lengths instead, which are all different blobs.
fn write_segments<S: Write + ?Sized>(store: &S, data: &[u8]) -> Result<Vec<ObjectId>, Error> {
    let mut blobs = Vec::with_capacity(data.len().div_ceil(SEGMENT));
    let mut seen = BTreeSet::new();
    for chunk in data.chunks(SEGMENT) {
        let id = store.write_buf(Kind::Blob, chunk)?;
        if !seen.insert(id) {
            return write_distinct_segments(store, data);
        }
        blobs.push(id);
    }
    Ok(blobs)
}

/// Cuts `data` into segments of `SEGMENT`, `SEGMENT − 1`, `SEGMENT − 2`, … bytes: blobs of
/// different lengths are different blobs, whatever their bytes.
fn write_distinct_segments<S: Write + ?Sized>(
    store: &S,
    data: &[u8],
) -> Result<Vec<ObjectId>, Error> {
    let mut blobs = Vec::new();
    let (mut at, mut len) = (0, SEGMENT);
    while at < data.len() {
        if len == 0 {
            return Err(Error::Invalid(format!(
                "a payload of {} bytes has too many repeated segments to store",
                data.len()
            )));
        }
        let end = (at + len).min(data.len());
        blobs.push(store.write_buf(Kind::Blob, &data[at..end])?);
        at = end;
        len -= 1;
    }
    Ok(blobs)
}

/// Stores one tensor's bytes as dense segments; returns its object id.
pub fn write_dense_tensor<S: Write + ?Sized>(
    store: &S,
    dtype: agigit_delta::DType,
    shape: &[usize],
    data: &[u8],
) -> Result<ObjectId, Error> {
    let blobs = write_segments(store, data)?;
    let tensor = TensorObject {
        dtype: dtype.as_str().to_owned(),
        shape: shape.iter().map(|&d| d as u64).collect(),
        encoding: "dense".to_owned(),
        params: Vec::new(),
        base: None,
        byte_len: data.len() as u64,
        digest: output_digest(dtype, shape, data),
        payload_len: data.len() as u64,
        blobs,
    };
    Ok(store.write_tensor(&tensor)?)
}

/// Stores one tensor of a fork: a reference to the base when identical, a delta when it pays,
/// dense otherwise. The delta is decoded once before it is stored, so what is committed is
/// known to read back, and its digest is that of what a reader will materialize.
pub(crate) fn write_fork_tensor<S: Write + ?Sized>(
    store: &S,
    plan: &DeltaPlan<'_>,
    rel: &str,
    name: &str,
    view: agigit_delta::TensorView<'_>,
) -> Result<ObjectId, Error> {
    let dense = |stats: &mut DeltaStats| {
        stats.dense_tensors += 1;
        stats.dense_bytes += view.data().len() as u64;
        stats.stored_bytes += view.data().len() as u64;
    };
    let base = (plan.base)(rel, name)?
        .filter(|(_, b)| b.dtype() == view.dtype() && b.shape() == view.shape());
    let Some((base_id, base)) = base else {
        plan.record(dense)?;
        return write_dense_tensor(store, view.dtype(), view.shape(), view.data());
    };
    if base.data() == view.data() {
        plan.record(|stats| {
            stats.unchanged_tensors += 1;
            stats.dense_bytes += view.data().len() as u64;
            stats.unchanged_bytes += view.data().len() as u64;
        })?;
        return Ok(base_id);
    }
    let encoded = plan
        .codec
        .encode(view, Some(base.view()))
        .map_err(|e| Error::Invalid(format!("{rel}: tensor {name}: {e}")))?;
    if encoded.payload.len() >= view.data().len() {
        plan.record(dense)?;
        return write_dense_tensor(store, view.dtype(), view.shape(), view.data());
    }
    let decoded =
        agigit_delta::codec::decode(&encoded.payload, Some(base.view())).map_err(|e| {
            Error::Corrupt(format!(
                "{rel}: tensor {name}: the delta does not read back: {e}"
            ))
        })?;
    let blobs = write_segments(store, &encoded.payload)?;
    let tensor = TensorObject {
        dtype: view.dtype().as_str().to_owned(),
        shape: view.shape().iter().map(|&d| d as u64).collect(),
        encoding: encoded.report.codec.name().to_owned(),
        params: Vec::new(),
        base: Some(base_id),
        byte_len: decoded.data().len() as u64,
        digest: output_digest(decoded.dtype(), decoded.shape(), decoded.data()),
        payload_len: encoded.payload.len() as u64,
        blobs,
    };
    plan.record(|stats| {
        stats.delta_tensors += 1;
        stats.dense_bytes += view.data().len() as u64;
        stats.stored_bytes += encoded.payload.len() as u64;
        stats.max_rel_error = stats.max_rel_error.max(encoded.report.rel_error);
    })?;
    Ok(store.write_tensor(&tensor)?)
}

/// Stores a safetensors file as a tree of its header and tensors; `None` when the file cannot be
/// split that way (a tensor name that is not a valid tree entry name, or bytes outside the
/// tensors), in which case it is stored as a plain file.
fn write_safetensors<S: Write + ?Sized>(
    store: &S,
    path: &Path,
    rel: &str,
    plan: Option<&DeltaPlan<'_>>,
) -> Result<Option<ObjectId>, Error> {
    let file = SafetensorsFile::open(path).map_err(|e| Error::Safetensors {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let header = file.header_bytes();
    let total = file.as_bytes().len();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for name in file.names() {
        if agigit_dag::object::check_name(name).is_err() || name == HEADER_ENTRY {
            return Ok(None);
        }
        let r = file
            .data_range(name)
            .ok_or_else(|| Error::Invalid(name.to_owned()))?;
        ranges.push((r.start, r.end));
    }
    ranges.sort_unstable();
    let mut at = header.len();
    for (start, end) in &ranges {
        if *start != at {
            return Ok(None);
        }
        at = *end;
    }
    if at != total {
        return Ok(None);
    }
    let mut entries = vec![TreeEntry::new(
        HEADER_ENTRY,
        EntryMode::File,
        store.write_buf(Kind::Blob, header)?,
    )];
    for (name, view) in file.tensors() {
        let id = match plan {
            Some(plan) => write_fork_tensor(store, plan, rel, name, view)?,
            None => write_dense_tensor(store, view.dtype(), view.shape(), view.data())?,
        };
        entries.push(TreeEntry::new(name, EntryMode::Tensor, id));
    }
    let tree = Tree::new(entries).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(Some(store.write_tree(&tree)?))
}

/// Snapshots the model directory `root` into `store`; returns the model tree's id.
///
/// # Errors
/// [`Error::Safetensors`] for a malformed safetensors file (naming it), I/O and store errors.
pub fn snapshot<S: Write + ?Sized>(store: &S, root: &Path) -> Result<ObjectId, Error> {
    snapshot_with(store, root, None)
}

/// [`snapshot`], storing the parameters of a fork as deltas by `plan`.
///
/// # Errors
/// As [`snapshot`]; a codec failure names the file and tensor.
pub fn snapshot_with<S: Write + ?Sized>(
    store: &S,
    root: &Path,
    plan: Option<&DeltaPlan<'_>>,
) -> Result<ObjectId, Error> {
    let mut parts: BTreeMap<Part, BTreeMap<String, Node>> = BTreeMap::new();
    for rel in list_files(root)? {
        let path = root.join(&rel);
        let (part, inner) = classify(&rel);
        let (mode, id) = if part == Part::Params && rel.ends_with(".safetensors") {
            match write_safetensors(store, &path, &rel, plan)? {
                Some(id) => (EntryMode::Tree, id),
                None => write_file(store, &path)?,
            }
        } else {
            write_file(store, &path)?
        };
        insert(parts.entry(part).or_default(), inner, mode, id);
    }
    let mut model = ModelParts::default();
    for (part, dir) in &parts {
        part.set(&mut model, Some(write_dir(store, dir)?));
    }
    Ok(model.write(store)?)
}

/// A file of a model tree: where it goes and what produces its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSource {
    /// A plain file's blob.
    Blob {
        /// The blob.
        id: ObjectId,
        /// Whether it is executable.
        executable: bool,
    },
    /// A safetensors file's tree (header and tensors).
    Safetensors(ObjectId),
}

/// Every file of the model tree `model`, by working-directory path.
///
/// # Errors
/// Store errors (a missing or corrupt object).
pub fn files<S: FindExt + ?Sized>(
    store: &S,
    model: &ObjectId,
) -> Result<BTreeMap<String, FileSource>, Error> {
    files_in(store, model, None)
}

/// The files of `model` in the parts `only` (all parts when `None`), by working-directory path.
///
/// # Errors
/// As [`files`].
pub fn files_in<S: FindExt + ?Sized>(
    store: &S,
    model: &ObjectId,
    only: Option<&BTreeSet<Part>>,
) -> Result<BTreeMap<String, FileSource>, Error> {
    let parts = ModelParts::read(store, model)?;
    let mut out = BTreeMap::new();
    for part in Part::ALL {
        if only.is_some_and(|o| !o.contains(&part)) {
            continue;
        }
        if let Some(tree) = part.get(&parts) {
            walk(store, &tree, part, &mut out)?;
        }
    }
    // A file cannot also be a directory of another file (a code file `data` beside training
    // data, say): such a tree has no checkout.
    for rel in out.keys() {
        let mut at = 0;
        while let Some(i) = rel[at..].find('/') {
            let parent = &rel[..at + i];
            if out.contains_key(parent) {
                return Err(Error::Corrupt(format!(
                    "{} is a file and also the directory of {}",
                    crate::display::Escaped(parent),
                    crate::display::Escaped(rel)
                )));
            }
            at += i + 1;
        }
    }
    Ok(out)
}

/// The deepest directory nesting a tree may have (git's `core.maxTreeDepth` is 2048; a model's
/// directories are far shallower). Deeper trees are refused rather than walked.
pub const MAX_TREE_DEPTH: usize = 256;

/// The longest working-directory path a tree may produce, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;

/// Walks a part's tree without recursion (a hostile tree's depth is capped, not trusted), adding
/// every file by working-directory path. Every name was checked when its tree decoded; here each
/// file must also belong to the part it is stored in, so that two parts never claim one path.
fn walk<S: FindExt + ?Sized>(
    store: &S,
    root: &ObjectId,
    part: Part,
    out: &mut BTreeMap<String, FileSource>,
) -> Result<(), Error> {
    let mut stack = vec![(*root, String::new(), 0usize)];
    while let Some((tree_id, prefix, depth)) = stack.pop() {
        if depth > MAX_TREE_DEPTH {
            return Err(Error::Limit {
                what: format!("{} tree depth at {prefix:?}", part.name()),
                size: depth as u64,
                limit: MAX_TREE_DEPTH as u64,
            });
        }
        let tree = store.find_tree(&tree_id)?;
        for entry in tree.entries() {
            let inner = format!("{prefix}{}", entry.name);
            let rel = part.to_worktree(&inner);
            if rel.len() > MAX_PATH_LEN {
                return Err(Error::Limit {
                    what: format!("path length of {}…", &rel[..64.min(rel.len())]),
                    size: rel.len() as u64,
                    limit: MAX_PATH_LEN as u64,
                });
            }
            let file = |source| -> Result<(String, FileSource), Error> {
                let (actual, _) = classify(&rel);
                if actual != part {
                    return Err(Error::Corrupt(format!(
                        "{}: a {} file stored in the {} part",
                        crate::display::Escaped(&rel),
                        actual.name(),
                        part.name()
                    )));
                }
                Ok((rel.clone(), source))
            };
            match entry.mode {
                EntryMode::File | EntryMode::Executable => {
                    let (rel, source) = file(FileSource::Blob {
                        id: entry.id,
                        executable: entry.mode == EntryMode::Executable,
                    })?;
                    out.insert(rel, source);
                }
                EntryMode::Tree if part == Part::Params && entry.name.ends_with(".safetensors") => {
                    let (rel, source) = file(FileSource::Safetensors(entry.id))?;
                    out.insert(rel, source);
                }
                EntryMode::Tree => stack.push((entry.id, format!("{inner}/"), depth + 1)),
                EntryMode::Tensor => {
                    return Err(Error::Corrupt(format!(
                        "{}: a tensor outside a safetensors file",
                        crate::display::Escaped(&rel)
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A safetensors tree, ready to be written as a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetensorsLayout {
    /// The header, byte for byte (length prefix and JSON).
    pub header: Vec<u8>,
    /// The tensors' names and objects, in file order.
    pub tensors: Vec<(String, ObjectId)>,
}

/// The tensor entries of a safetensors tree in file order, and its header bytes.
///
/// # Errors
/// [`Error::Corrupt`] when the header does not list exactly the tree's tensors.
pub fn safetensors_layout<S: FindExt + ?Sized>(
    store: &S,
    tree: &ObjectId,
) -> Result<SafetensorsLayout, Error> {
    let tree_id = *tree;
    let tree = store.find_tree(tree)?;
    let header_id = tree
        .get(HEADER_ENTRY)
        .filter(|e| e.mode == EntryMode::File)
        .ok_or_else(|| Error::Corrupt(format!("safetensors tree {tree_id} has no header")))?
        .id;
    // The header's size before it is read: the safetensors format's own cap, plus its prefix.
    let limit = 8 + agigit_delta::MAX_HEADER_LEN as u64;
    match store.header_of(&header_id)? {
        Some((Kind::Blob, size)) if size > limit => {
            return Err(Error::Limit {
                what: format!("the safetensors header of tree {tree_id}"),
                size,
                limit,
            });
        }
        _ => {}
    }
    let mut buf = Vec::new();
    let header = store.find_blob(&header_id, &mut buf)?.to_vec();
    let json = header
        .get(8..)
        .ok_or_else(|| Error::Corrupt("safetensors header shorter than 8 bytes".into()))?;
    let parsed: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| Error::Corrupt(format!("safetensors header is not JSON: {e}")))?;
    let object = parsed
        .as_object()
        .ok_or_else(|| Error::Corrupt("safetensors header is not an object".into()))?;
    let mut order = Vec::new();
    for (name, info) in object {
        if name == "__metadata__" {
            continue;
        }
        let shown = crate::display::Escaped(name);
        let (Some(start), Some(end)) = (
            info["data_offsets"][0].as_u64(),
            info["data_offsets"][1].as_u64(),
        ) else {
            return Err(Error::Corrupt(format!("tensor {shown}: no data_offsets")));
        };
        let entry = tree
            .get(name)
            .filter(|e| e.mode == EntryMode::Tensor)
            .ok_or_else(|| Error::Corrupt(format!("tensor {shown} is in the header only")))?;
        let object = store.find_tensor(&entry.id)?;
        if end.checked_sub(start) != Some(object.byte_len) {
            return Err(Error::Corrupt(format!(
                "tensor {shown}: the header gives it bytes {start}..{end}, its object {}",
                object.byte_len
            )));
        }
        order.push((start, end, name.clone(), entry.id));
    }
    let tensors = tree
        .entries()
        .iter()
        .filter(|e| e.mode == EntryMode::Tensor)
        .count();
    if tensors != order.len() {
        return Err(Error::Corrupt(
            "the safetensors tree has tensors its header does not list".into(),
        ));
    }
    order.sort();
    // The tensors fill the data section end to end, as the file will be written.
    let mut at = 0;
    for (start, end, name, _) in &order {
        if *start != at {
            return Err(Error::Corrupt(format!(
                "tensor {}: the header's data offsets leave a gap or overlap at {at}",
                crate::display::Escaped(name)
            )));
        }
        at = *end;
    }
    Ok(SafetensorsLayout {
        header,
        tensors: order.into_iter().map(|(_, _, n, id)| (n, id)).collect(),
    })
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
