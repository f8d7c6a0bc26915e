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

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use agigit_dag::ModelBuilder;
pub use agigit_dag::model::{Part, classify};
use agigit_dag::{EntryMode, Kind, ObjectId, TensorObject, Tree, TreeEntry, Write, WriteExt};
use agigit_delta::SafetensorsFile;
use agigit_delta::codec::output_digest;

use crate::error::Error;

mod chunked;
mod files;
mod fs;

pub use chunked::{CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, CHUNKED_ABOVE, cut_chunks};
pub(crate) use chunked::{IdOnly, Store as StoreSink, chunked_len, read_chunked, write_chunked};

pub use files::{
    FileSource, MAX_PATH_LEN, MAX_TREE_DEPTH, SafetensorsLayout, files, files_in,
    safetensors_layout,
};
use fs::is_executable;
pub use fs::list_files;
pub(crate) use fs::{EarlySync, blob_id_of_file, list_all_files, write_atomic};

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
            .map_err(|_| Error::Internal("a thread panicked while counting delta statistics"))?;
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
    /// Every tensor written (not the unchanged ones): its codec and the relative error measured
    /// on what decoding gives — the commit's fidelity statement.
    pub fidelity: Vec<agigit_dag::fidelity::TensorFidelity>,
}

/// The directory agigit keeps its own state in, never part of a snapshot.
pub const DOT_DIR: &str = ".agigit";

/// Stores one file (streamed: bounded memory): as one blob, or — a plain file above
/// [`CHUNKED_ABOVE`] bytes — as its content-defined chunks.
fn write_file<S: Write + Sync + ?Sized>(
    store: &S,
    path: &Path,
) -> Result<(EntryMode, ObjectId), Error> {
    let mut file = File::open(path).map_err(Error::io(path))?;
    let meta = file.metadata().map_err(Error::io(path))?;
    if is_executable(&meta) {
        let id = store.write_stream(Kind::Blob, meta.len(), &mut file)?;
        return Ok((EntryMode::Executable, id));
    }
    if meta.len() > CHUNKED_ABOVE {
        let (id, _) = write_chunked(path, file, &StoreSink(store))?;
        return Ok((EntryMode::Chunked, id));
    }
    let id = store.write_stream(Kind::Blob, meta.len(), &mut file)?;
    Ok((EntryMode::File, id))
}

/// The chunk list id the file at `path` would be stored as, reading it a buffer at a time
/// without storing anything.
///
/// # Errors
/// Reading the file; an empty file has no chunk list.
pub fn chunked_id_of_file(path: &Path) -> Result<ObjectId, Error> {
    let file = File::open(path).map_err(Error::io(path))?;
    Ok(write_chunked(path, file, &IdOnly)?.0)
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
    let record =
        |codec: &str, rank: Option<usize>, rel_error: f64| agigit_dag::fidelity::TensorFidelity {
            path: rel.to_owned(),
            tensor: name.to_owned(),
            codec: codec.to_owned(),
            rank: rank.map(|r| r as u64),
            rel_error,
            elements: view.numel() as u64,
        };
    let dense = |stats: &mut DeltaStats| {
        stats.dense_tensors += 1;
        stats.dense_bytes += view.data().len() as u64;
        stats.stored_bytes += view.data().len() as u64;
        stats.fidelity.push(record("dense", None, 0.0));
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
        .map_err(Error::invalid_input(format_args!("{rel}: tensor {name}")))?;
    if encoded.payload.len() >= view.data().len() {
        plan.record(dense)?;
        return write_dense_tensor(store, view.dtype(), view.shape(), view.data());
    }
    let decoded = agigit_delta::codec::decode(&encoded.payload, Some(base.view())).map_err(
        Error::corrupt_data(format_args!(
            "{rel}: tensor {name}: the delta does not read back"
        )),
    )?;
    let blobs = write_segments(store, &encoded.payload)?;
    let tensor = TensorObject {
        dtype: view.dtype().as_str().to_owned(),
        shape: view.shape().iter().map(|&d| d as u64).collect(),
        encoding: encoded.report.codec.name().to_owned(),
        params: encoded
            .report
            .rank
            .map(|r| vec![("rank".to_owned(), r as u64)])
            .unwrap_or_default(),
        base: Some(base_id),
        byte_len: decoded.data().len() as u64,
        // What decoding checked the result against: the digest of what a reader materializes.
        digest: agigit_delta::inspect(&encoded.payload)
            .map_err(Error::corrupt_data(format_args!("{rel}: tensor {name}")))?
            .output,
        payload_len: encoded.payload.len() as u64,
        blobs,
    };
    plan.record(|stats| {
        stats.delta_tensors += 1;
        stats.dense_bytes += view.data().len() as u64;
        stats.stored_bytes += encoded.payload.len() as u64;
        stats.max_rel_error = stats.max_rel_error.max(encoded.report.rel_error);
        stats.fidelity.push(record(
            encoded.report.codec.name(),
            encoded.report.rank,
            encoded.report.rel_error,
        ));
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
    let file = SafetensorsFile::open(path).map_err(|source| Error::Safetensors {
        path: path.to_owned(),
        source,
    })?;
    let header = file.header_bytes();
    let total = file.as_bytes().len();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for name in file.names() {
        if agigit_dag::object::check_name(name).is_err() || name == HEADER_ENTRY {
            return Ok(None);
        }
        let r = file.data_range(name).ok_or_else(|| {
            Error::Invalid(format!(
                "{rel}: tensor {} is listed but has no data range",
                crate::display::Escaped(name)
            ))
        })?;
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
    let tree = Tree::new(entries)?;
    Ok(Some(store.write_tree(&tree)?))
}

/// Snapshots the model directory `root` into `store`; returns the model tree's id.
///
/// # Errors
/// [`Error::Safetensors`] for a malformed safetensors file (naming it), I/O and store errors.
pub fn snapshot<S: Write + Sync + ?Sized>(store: &S, root: &Path) -> Result<ObjectId, Error> {
    snapshot_with(store, root, None)
}

/// [`snapshot`], storing the parameters of a fork as deltas by `plan`.
///
/// # Errors
/// As [`snapshot`]; a codec failure names the file and tensor.
pub fn snapshot_with<S: Write + Sync + ?Sized>(
    store: &S,
    root: &Path,
    plan: Option<&DeltaPlan<'_>>,
) -> Result<ObjectId, Error> {
    let mut model = ModelBuilder::new();
    for rel in list_files(root)? {
        let path = root.join(&rel);
        let (part, _) = classify(&rel);
        let (mode, id) = if part == Part::Params && rel.ends_with(".safetensors") {
            match write_safetensors(store, &path, &rel, plan)? {
                Some(id) => (EntryMode::Tree, id),
                None => write_file(store, &path)?,
            }
        } else {
            write_file(store, &path)?
        };
        model.add(&rel, mode, id)?;
    }
    Ok(model.write(store)?)
}
