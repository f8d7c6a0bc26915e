//! safetensors files and sharded checkpoints: reading (memory-mapped, zero-copy), validating
//! more strictly than the `safetensors` crate, and writing byte-identical files for identical
//! input.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::{DType, TensorView};

/// The name of a sharded checkpoint's index file, beside its shards.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The name of a single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The largest header this crate reads (the `safetensors` crate's own limit).
pub const MAX_HEADER_LEN: usize = 100_000_000;

/// Reading or writing a safetensors file or a sharded checkpoint failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SafetensorsError {
    /// The file could not be opened, mapped, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The header is not valid safetensors (as the `safetensors` crate judges it).
    #[error("not a valid safetensors file: {0}")]
    Format(#[from] safetensors::SafeTensorError),
    /// The header's JSON names a tensor twice (the `safetensors` crate would keep the last).
    #[error("tensor {name:?} is named twice in the header")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A tensor name is empty or holds a control character (NUL, newline, …).
    #[error("tensor name {name:?} is empty or holds a control character")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A dtype this crate does not know.
    #[error("tensor {name:?}: {source}")]
    DType {
        /// The tensor.
        name: String,
        /// The unknown dtype.
        source: crate::dtype::UnknownDType,
    },
    /// The header is not JSON of the expected shape.
    #[error("invalid header JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A sharded checkpoint's index disagrees with its shard files.
    #[error("{index}: {reason}")]
    Index {
        /// The index file.
        index: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// Neither `model.safetensors.index.json` nor `model.safetensors` is in the directory.
    #[error("{dir}: no {INDEX_FILE} or {SINGLE_FILE} here")]
    NoCheckpoint {
        /// The directory.
        dir: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SafetensorsError + '_ {
    move |source| SafetensorsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `name` may name a tensor: non-empty, no control characters.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_control)
}

fn check_name(name: &str) -> Result<(), SafetensorsError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(SafetensorsError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// A JSON object read key by key, in order, keeping repeated keys (serde's maps keep only the
/// last, silently).
struct AllKeys<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for AllKeys<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for KeysVisitor<V> {
            type Value = AllKeys<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    out.push((key, map.next_value()?));
                }
                Ok(AllKeys(out))
            }
        }
        deserializer.deserialize_map(KeysVisitor(PhantomData))
    }
}

impl<V> AllKeys<V> {
    /// The first key (in sorted order) that appears more than once.
    fn duplicate(&self) -> Option<&str> {
        let mut keys: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    }
}

/// The first key `json` names twice, if any (`Ok(None)` when all are distinct).
fn duplicate_key(json: &str) -> Result<Option<String>, serde_json::Error> {
    let keys: AllKeys<IgnoredAny> = serde_json::from_str(json)?;
    Ok(keys.duplicate().map(str::to_owned))
}

/// The header's text, if the length prefix and UTF-8 are sound (`read_metadata` says why not).
fn header_text(bytes: &[u8]) -> Option<&str> {
    let len = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    if len > MAX_HEADER_LEN {
        return None;
    }
    std::str::from_utf8(bytes.get(8..8usize.checked_add(len)?)?).ok()
}

struct Entry {
    dtype: DType,
    shape: Vec<usize>,
    range: Range<usize>,
}

enum Backing {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// One safetensors file, validated and indexed; tensors are borrowed from it without copying.
pub struct SafetensorsFile {
    backing: Backing,
    tensors: BTreeMap<String, Entry>,
    metadata: BTreeMap<String, String>,
}

impl fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("len", &self.backing.bytes().len())
            .field("tensors", &self.tensors.len())
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl SafetensorsFile {
    /// Maps `path` into memory and validates it. Tensor data is read from the page cache on
    /// access; nothing is copied.
    ///
    /// The file must not be changed while it is open (the usual rule for memory maps: a
    /// truncation by another process would fault the reader).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SafetensorsError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        if len < 8 {
            // Mapping an empty file fails on some systems; the header check says it better.
            return Self::from_bytes(fs::read(path).map_err(io_err(path))?);
        }
        let map = map_file(&file).map_err(io_err(path))?;
        Self::parse(Backing::Mapped(map))
    }

    /// Validates a whole safetensors file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SafetensorsError> {
        Self::parse(Backing::Owned(bytes))
    }

    fn parse(backing: Backing) -> Result<Self, SafetensorsError> {
        let bytes = backing.bytes();
        // Duplicates first: `read_metadata` keeps the last of a repeated name and may then fail
        // on offsets, which would hide the real problem.
        if let Some(name) = header_text(bytes).and_then(|h| duplicate_key(h).ok().flatten()) {
            return Err(SafetensorsError::DuplicateName { name });
        }
        let (header_len, meta) = safetensors::SafeTensors::read_metadata(bytes)?;
        let data_start = 8 + header_len;
        let mut tensors = BTreeMap::new();
        for (name, info) in meta.tensors() {
            check_name(&name)?;
            let dtype = DType::try_from(info.dtype).map_err(|source| SafetensorsError::DType {
                name: name.clone(),
                source,
            })?;
            let (start, end) = info.data_offsets;
            let entry = Entry {
                dtype,
                shape: info.shape.clone(),
                range: data_start + start..data_start + end,
            };
            tensors.insert(name, entry);
        }
        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(SafetensorsFile {
            backing,
            tensors,
            metadata,
        })
    }

    /// The header: its 8-byte length prefix and the JSON, exactly as in the file.
    pub fn header_bytes(&self) -> &[u8] {
        let bytes = self.backing.bytes();
        // The length prefix was validated when the file was opened.
        let declared = bytes.first_chunk::<8>().map_or(0, |n| {
            usize::try_from(u64::from_le_bytes(*n)).unwrap_or(usize::MAX)
        });
        bytes
            .get(..8usize.saturating_add(declared))
            .unwrap_or(bytes)
    }

    /// Where tensor `name`'s bytes lie in the file.
    pub fn data_range(&self, name: &str) -> Option<Range<usize>> {
        self.tensors.get(name).map(|e| e.range.clone())
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the file holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        let e = self.tensors.get(name)?;
        let data = self.backing.bytes().get(e.range.clone())?;
        // `read_metadata` validated every tensor's size against its dtype and shape.
        TensorView::new(e.dtype, &e.shape, data).ok()
    }

    /// Every tensor, sorted by name.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, TensorView<'_>)> {
        self.names().filter_map(|n| Some((n, self.tensor(n)?)))
    }

    /// The `__metadata__` map (empty if the file has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The whole file's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.backing.bytes()
    }
}

#[allow(unsafe_code, reason = "memory-mapping a file is unsafe; see SAFETY")]
fn map_file(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private to this process. Its contents can still change
    // if another process writes the file; that is documented on `SafetensorsFile::open` (as in
    // the `safetensors` and `candle` loaders). Every read goes through bounds-checked slices of
    // the validated header, so a changed file gives wrong numbers (which the hashes recorded
    // for every tensor catch), never out-of-bounds reads within the mapped length.
    unsafe { memmap2::Mmap::map(file) }
}

/// Writes a safetensors file to `out`: tensors ordered by element width (widest first, so every
/// tensor is aligned to its element size) then name, `__metadata__` first with sorted keys, the
/// header padded with spaces to a multiple of 8. The same input always gives the same bytes.
///
/// Fails on a repeated or invalid name before writing anything.
pub fn write_safetensors<'a, W: Write>(
    mut out: W,
    tensors: impl IntoIterator<Item = (&'a str, TensorView<'a>)>,
    metadata: &BTreeMap<String, String>,
) -> Result<u64, SafetensorsError> {
    let (header, ordered) = prepare(tensors, metadata)?;
    let path = Path::new("<writer>");
    out.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io_err(path))?;
    out.write_all(&header).map_err(io_err(path))?;
    let mut total = 8 + header.len() as u64;
    for (_, t) in ordered {
        out.write_all(t.data()).map_err(io_err(path))?;
        total += t.data().len() as u64;
    }
    Ok(total)
}

/// Like [`write_safetensors`], to a file, atomically: the bytes go to a temporary file in the
/// same directory, which is synced and then renamed over `path`. A failure leaves no partial
/// file behind.
pub fn save_safetensors<'a>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (&'a str, TensorView<'a>)>,
    metadata: &BTreeMap<String, String>,
) -> Result<u64, SafetensorsError> {
    let path = path.as_ref();
    let (header, ordered) = prepare(tensors, metadata)?;
    write_atomically(path, |f| {
        f.write_all(&(header.len() as u64).to_le_bytes())?;
        f.write_all(&header)?;
        let mut total = 8 + header.len() as u64;
        for (_, t) in &ordered {
            f.write_all(t.data())?;
            total += t.data().len() as u64;
        }
        Ok(total)
    })
}

/// Writes through `body` to a temporary sibling of `path`, syncs it, and renames it into place.
pub(crate) fn write_atomically<T>(
    path: &Path,
    body: impl FnOnce(&mut io::BufWriter<File>) -> io::Result<T>,
) -> Result<T, SafetensorsError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = io::BufWriter::new(File::create(&tmp)?);
        let value = body(&mut f)?;
        let f = f.into_inner().map_err(io::IntoInnerError::into_error)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

type Prepared<'a> = (Vec<u8>, Vec<(&'a str, TensorView<'a>)>);

fn prepare<'a>(
    tensors: impl IntoIterator<Item = (&'a str, TensorView<'a>)>,
    metadata: &BTreeMap<String, String>,
) -> Result<Prepared<'a>, SafetensorsError> {
    let mut ordered: Vec<(&str, TensorView<'_>)> = tensors.into_iter().collect();
    for (name, _) in &ordered {
        check_name(name)?;
    }
    ordered
        .sort_by(|(ln, lt), (rn, rt)| rt.dtype().bits().cmp(&lt.dtype().bits()).then(ln.cmp(rn)));
    if let Some(w) = ordered.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SafetensorsError::DuplicateName {
            name: w[0].0.to_owned(),
        });
    }
    struct Header<'b, 'a> {
        metadata: &'b BTreeMap<String, String>,
        tensors: &'b [(&'a str, TensorView<'a>)],
    }
    #[derive(Serialize)]
    struct Info<'a> {
        dtype: &'static str,
        shape: &'a [usize],
        data_offsets: [usize; 2],
    }
    impl Serialize for Header<'_, '_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(None)?;
            if !self.metadata.is_empty() {
                map.serialize_entry("__metadata__", self.metadata)?;
            }
            let mut offset = 0;
            for (name, t) in self.tensors {
                let end = offset + t.data().len();
                let info = Info {
                    dtype: t.dtype().as_str(),
                    shape: t.shape(),
                    data_offsets: [offset, end],
                };
                map.serialize_entry(name, &info)?;
                offset = end;
            }
            map.end()
        }
    }
    let mut header = serde_json::to_vec(&Header {
        metadata,
        tensors: &ordered,
    })?;
    header.resize(header.len().next_multiple_of(8), b' ');
    if header.len() > MAX_HEADER_LEN {
        return Err(safetensors::SafeTensorError::HeaderTooLarge.into());
    }
    Ok((header, ordered))
}

/// The index of a sharded checkpoint (`model.safetensors.index.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointIndex {
    /// Free-form metadata; writers put `total_size` (bytes of tensor data) here.
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Which file holds each tensor.
    pub weight_map: BTreeMap<String, String>,
}

impl CheckpointIndex {
    /// Parses an index, rejecting a tensor listed twice and file names that leave the directory.
    pub fn from_json(json: &str) -> Result<Self, SafetensorsError> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            metadata: BTreeMap<String, serde_json::Value>,
            weight_map: AllKeys<String>,
        }
        let raw: Raw = serde_json::from_str(json)?;
        if let Some(name) = raw.weight_map.duplicate() {
            return Err(SafetensorsError::DuplicateName {
                name: name.to_owned(),
            });
        }
        let mut weight_map = BTreeMap::new();
        for (name, file) in raw.weight_map.0 {
            check_name(&name)?;
            weight_map.insert(name, file);
        }
        Ok(CheckpointIndex {
            metadata: raw.metadata,
            weight_map,
        })
    }
}

/// A model checkpoint: one safetensors file, or several with an index.
#[derive(Debug)]
pub struct Checkpoint {
    files: Vec<(String, SafetensorsFile)>,
    /// Tensor name → index into `files`.
    map: BTreeMap<String, usize>,
    index: Option<CheckpointIndex>,
}

fn is_plain_file_name(name: &str) -> bool {
    let p = Path::new(name);
    p.components().count() == 1
        && matches!(p.components().next(), Some(std::path::Component::Normal(_)))
}

impl Checkpoint {
    /// Opens a checkpoint: a directory (with `model.safetensors.index.json` or
    /// `model.safetensors`), an index file, or a single safetensors file.
    ///
    /// For a sharded checkpoint every tensor the index lists must be in the file it names,
    /// and every tensor in a shard must be listed — the same tensor in two shards is an error.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SafetensorsError> {
        let path = path.as_ref();
        if path.is_dir() {
            let index = path.join(INDEX_FILE);
            if index.is_file() {
                return Self::open_index(&index);
            }
            let single = path.join(SINGLE_FILE);
            if single.is_file() {
                return Self::open_single(&single);
            }
            return Err(SafetensorsError::NoCheckpoint {
                dir: path.to_path_buf(),
            });
        }
        if path.to_string_lossy().ends_with(".index.json") {
            Self::open_index(path)
        } else {
            Self::open_single(path)
        }
    }

    fn open_single(path: &Path) -> Result<Self, SafetensorsError> {
        let file = SafetensorsFile::open(path)?;
        let map = file.names().map(|n| (n.to_owned(), 0)).collect();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Checkpoint {
            files: vec![(name, file)],
            map,
            index: None,
        })
    }

    fn open_index(index_path: &Path) -> Result<Self, SafetensorsError> {
        let json = fs::read_to_string(index_path).map_err(io_err(index_path))?;
        let index = CheckpointIndex::from_json(&json)?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let bad = |reason: String| SafetensorsError::Index {
            index: index_path.to_path_buf(),
            reason,
        };
        let mut file_names: Vec<&String> = index.weight_map.values().collect();
        file_names.sort();
        file_names.dedup();
        let mut files = Vec::with_capacity(file_names.len());
        for name in file_names {
            if !is_plain_file_name(name) {
                return Err(bad(format!(
                    "shard {name:?} is not a file name in this directory"
                )));
            }
            files.push((name.clone(), SafetensorsFile::open(dir.join(name))?));
        }
        let mut map = BTreeMap::new();
        for (i, (file_name, file)) in files.iter().enumerate() {
            for tensor in file.names() {
                match index.weight_map.get(tensor) {
                    Some(listed) if listed == file_name => {
                        map.insert(tensor.to_owned(), i);
                    }
                    Some(listed) => {
                        return Err(bad(format!(
                            "tensor {tensor:?} is in {file_name} but the index puts it in {listed}"
                        )));
                    }
                    None => {
                        return Err(bad(format!(
                            "tensor {tensor:?} in {file_name} is not listed in the index"
                        )));
                    }
                }
            }
        }
        if let Some((tensor, file)) = index.weight_map.iter().find(|(t, _)| !map.contains_key(*t)) {
            return Err(bad(format!(
                "tensor {tensor:?} is listed in {file} but not there"
            )));
        }
        Ok(Checkpoint {
            files,
            map,
            index: Some(index),
        })
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the checkpoint holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        let &i = self.map.get(name)?;
        self.files.get(i)?.1.tensor(name)
    }

    /// Every tensor, sorted by name.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, TensorView<'_>)> {
        self.names().filter_map(|n| Some((n, self.tensor(n)?)))
    }

    /// The files, by name (one for a single-file checkpoint).
    pub fn files(&self) -> impl Iterator<Item = (&str, &SafetensorsFile)> {
        self.files.iter().map(|(n, f)| (n.as_str(), f))
    }

    /// The index, for a sharded checkpoint.
    pub fn index(&self) -> Option<&CheckpointIndex> {
        self.index.as_ref()
    }
}

/// Writes a sharded checkpoint into `dir`: tensors (in name order) fill
/// `model-0000i-of-0000n.safetensors` files of at most `max_shard_bytes` of tensor data each (a
/// larger tensor gets a file of its own), then `model.safetensors.index.json` with
/// `metadata.total_size`. Every file is written atomically; the index last, so a reader never
/// sees an index whose shards are missing. Returns the index.
pub fn save_sharded<'a>(
    dir: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (&'a str, TensorView<'a>)>,
    metadata: &BTreeMap<String, String>,
    max_shard_bytes: usize,
) -> Result<CheckpointIndex, SafetensorsError> {
    let dir = dir.as_ref();
    let mut all: Vec<(&str, TensorView<'_>)> = tensors.into_iter().collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    let mut groups: Vec<Vec<(&str, TensorView<'_>)>> = Vec::new();
    let mut current = 0usize;
    for (name, t) in all {
        let len = t.data().len();
        match groups.last_mut() {
            Some(g) if current + len <= max_shard_bytes => g.push((name, t)),
            _ => {
                groups.push(vec![(name, t)]);
                current = 0;
            }
        }
        current += len;
    }
    if groups.is_empty() {
        groups.push(Vec::new());
    }
    let n = groups.len();
    let mut index = CheckpointIndex::default();
    let mut total = 0u64;
    for (i, group) in groups.into_iter().enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        for (name, t) in &group {
            index.weight_map.insert((*name).to_owned(), file.clone());
            total += t.data().len() as u64;
        }
        save_safetensors(dir.join(&file), group, metadata)?;
    }
    index.metadata.insert("total_size".into(), total.into());
    let json = serde_json::to_vec_pretty(&index)?;
    write_atomically(&dir.join(INDEX_FILE), |f| {
        f.write_all(&json)?;
        f.write_all(b"\n")
    })?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_found() {
        assert_eq!(duplicate_key(r#"{"a":1,"b":2}"#).unwrap(), None);
        assert_eq!(duplicate_key(r#"{"a":1,"a":2}"#).unwrap(), Some("a".into()));
        assert_eq!(
            duplicate_key(r#"{"x\"y":1,"x\"y":{}}"#).unwrap(),
            Some("x\"y".into())
        );
        assert!(duplicate_key("[1]").is_err());
    }

    #[test]
    fn names() {
        assert!(is_valid_name("model.layers.0.weight"));
        assert!(is_valid_name("ünïcode ok"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a\0b"));
        assert!(!is_valid_name("a\nb"));
        assert!(!is_valid_name("\u{7f}"));
    }

    #[test]
    fn shard_file_names_stay_in_the_directory() {
        assert!(is_plain_file_name("model-00001-of-00002.safetensors"));
        assert!(!is_plain_file_name("../x.safetensors"));
        assert!(!is_plain_file_name("/etc/passwd"));
        assert!(!is_plain_file_name("a/b"));
        assert!(!is_plain_file_name(""));
        assert!(!is_plain_file_name(".."));
    }
}
