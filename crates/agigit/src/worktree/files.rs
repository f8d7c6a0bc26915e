//! A model tree → the files of a working directory: where each goes and what produces its
//! bytes, with a hostile tree's depth, paths and part placement checked.

use std::collections::{BTreeMap, BTreeSet};

use agigit_dag::model::ModelParts;
use agigit_dag::{EntryMode, FindExt, Kind, ObjectId};

use crate::error::Error;

use super::{HEADER_ENTRY, Part, classify};

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
    /// A large plain file's chunk list.
    Chunked(ObjectId),
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
                EntryMode::Chunked => {
                    let (rel, source) = file(FileSource::Chunked(entry.id))?;
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
    /// Each tensor's bytes in the file, in the same order (its object's `byte_len`, which the
    /// header's offsets were checked against).
    pub lens: Vec<u64>,
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
        .map_err(Error::corrupt_data("the safetensors header (not JSON)"))?;
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
        lens: order.iter().map(|(start, end, _, _)| end - start).collect(),
        tensors: order.into_iter().map(|(_, _, n, id)| (n, id)).collect(),
    })
}
