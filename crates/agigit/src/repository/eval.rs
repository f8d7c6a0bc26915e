//! `agigit eval`: a commit's model evaluated on held-out data (feature `eval`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agigit_dag::FindExt as _;
use agigit_eval::{Document, EvalOptions, Evaluation, ModelFiles};
use agigit_hash::ObjectId;

use super::Repository;
use crate::worktree::{self, FileSource, Part};
use crate::{Error, display::Escaped};

/// The held-out text to evaluate on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalData {
    /// A part of the evaluated commit (its validation data by default).
    Part(Part),
    /// A part of another commit in this repository's store (a competition round's revealed
    /// test set: the organizer's commit that holds it). A receipt names its tree.
    Commit {
        /// The commit (any revision).
        rev: String,
        /// Its part.
        part: Part,
    },
    /// A file or a directory on this machine (every file under it), outside any commit.
    Path(PathBuf),
}

impl Default for EvalData {
    fn default() -> Self {
        EvalData::Part(Part::Validation)
    }
}

/// What [`Repository::evaluate`] measured.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EvalReport {
    /// The commit evaluated.
    pub commit: ObjectId,
    /// The data: `data/validation` (a part) or the path given.
    pub data: String,
    /// The part's tree, when the data is a part of the commit: what a receipt names.
    pub data_tree: Option<ObjectId>,
    /// Files of the data that hold no documents (not `.txt`, `.md`, `.jsonl`).
    pub skipped: Vec<String>,
    /// The result, every document's loss kept.
    pub evaluation: Evaluation,
    /// Seconds the evaluation took (loading the model included).
    pub seconds: f64,
}

impl EvalReport {
    /// The signed receipt's body for this evaluation of a commit of `repo` (sign it with
    /// [`agigit_event::Signed::sign`] and publish it).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the data was a path: a receipt names held-out data by its tree in
    /// the commit, which anyone can fetch and evaluate again.
    pub fn receipt(
        &self,
        repo: agigit_event::RepoCoordinate,
        note: impl Into<String>,
    ) -> Result<agigit_event::EvalReceipt, Error> {
        let data = self.data_tree.ok_or_else(|| {
            Error::Invalid(format!(
                "{} is not part of the commit: a receipt names data others can fetch; commit it to data/validation",
                self.data
            ))
        })?;
        Ok(self.evaluation.receipt(
            repo,
            self.commit,
            data,
            concat!("agigit ", env!("CARGO_PKG_VERSION")),
            note,
        ))
    }
}

/// The most bytes of held-out files read from a path outside the repository (a directory of a
/// few gigabytes of text is already hours of evaluation).
const MAX_PATH_DATA: u64 = 16 << 30;

impl Repository {
    /// Evaluates the model of commit `rev` on `data`: its `config.json` and `tokenizer.json`
    /// (code part, at the top), every tensor of its safetensors files, and the documents of
    /// `data` ([`agigit_eval::add_documents`]). The parameters are materialized from the store
    /// (deltas decoded, every hash checked); nothing in the working directory is read or
    /// written.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] with an [`agigit_eval::EvalError`] for a model that cannot be
    /// evaluated (unsupported architecture, inconsistent configuration, no held-out text) or
    /// data that is not documents; [`Error::Invalid`] for a commit without `config.json` or
    /// `tokenizer.json`; store and I/O errors.
    pub fn evaluate(
        &self,
        rev: &str,
        data: &EvalData,
        options: EvalOptions,
    ) -> Result<EvalReport, Error> {
        let started = std::time::Instant::now();
        let commit = self.resolve(rev)?;
        let tree = self.store().find_commit(&commit)?.tree;
        let files = self.tree_files(&tree)?;
        let blob = |rel: &str| -> Result<Vec<u8>, Error> {
            match files.get(rel) {
                Some(source) => self.file_bytes(rel, source),
                None => Err(Error::Invalid(format!(
                    "{rev} has no {rel} at the top of its code part: the model's architecture and tokenizer come from there"
                ))),
            }
        };
        let config = blob("config.json")?;
        let tokenizer = blob("tokenizer.json")?;
        // The documents first: a bad data file fails before the model is loaded.
        let (documents, skipped, label, data_tree) = match data {
            EvalData::Part(part) => {
                let (docs, skipped) = self.part_documents(&files, *part)?;
                let parts = agigit_dag::ModelParts::read(self.store(), &tree)?;
                (docs, skipped, part.name().to_owned(), part.get(&parts))
            }
            EvalData::Commit { rev: other, part } => {
                let holder = self.resolve(other)?;
                let holder_tree = self.store().find_commit(&holder)?.tree;
                let (docs, skipped) =
                    self.part_documents(&self.tree_files(&holder_tree)?, *part)?;
                let parts = agigit_dag::ModelParts::read(self.store(), &holder_tree)?;
                let label = format!("{} of {}", part.name(), holder.short());
                (docs, skipped, label, part.get(&parts))
            }
            EvalData::Path(path) => {
                let (docs, skipped) = path_documents(path)?;
                (docs, skipped, path.display().to_string(), None)
            }
        };
        let mut tensors = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (rel, source) in &files {
            let FileSource::Safetensors(file) = source else {
                continue;
            };
            let layout = worktree::safetensors_layout(self.store(), file)?;
            for (name, id) in layout.tensors {
                if !seen.insert(name.clone()) {
                    return Err(Error::Invalid(format!(
                        "tensor {} is in two safetensors files (the second: {})",
                        Escaped(&name),
                        Escaped(rel)
                    )));
                }
                let tensor = self.tensor(&name, &id)?;
                tensors.push((name, tensor));
            }
        }
        let model = ModelFiles {
            config,
            tokenizer,
            tensors,
        };
        let evaluation = agigit_eval::evaluate(&model, &documents, options).map_err(|e| {
            Error::InvalidInput {
                what: format!("evaluating {rev} on {label}"),
                source: Box::new(e),
            }
        })?;
        Ok(EvalReport {
            commit,
            data: label,
            data_tree,
            skipped,
            evaluation,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// A plain file's bytes from the store (checked against its id).
    fn file_bytes(&self, rel: &str, source: &FileSource) -> Result<Vec<u8>, Error> {
        match source {
            FileSource::Blob { id, .. } => {
                Ok(self.store().find_blob(id, &mut Vec::new())?.to_vec())
            }
            FileSource::Chunked(id) => {
                let mut out = Vec::new();
                worktree::read_chunked(self.store(), id, |chunk| {
                    out.extend_from_slice(chunk);
                    Ok(())
                })?;
                Ok(out)
            }
            FileSource::Safetensors(_) => Err(Error::Invalid(format!(
                "{} is a safetensors file, not text",
                Escaped(rel)
            ))),
        }
    }

    /// The documents of `part` of a commit whose files are `files`, and the files skipped.
    fn part_documents(
        &self,
        files: &BTreeMap<String, FileSource>,
        part: Part,
    ) -> Result<(Vec<Document>, Vec<String>), Error> {
        let mut docs = Vec::new();
        let mut skipped = Vec::new();
        for (rel, source) in files {
            if worktree::classify(rel).0 != part {
                continue;
            }
            if agigit_eval::documents::FileKind::of(rel)
                == agigit_eval::documents::FileKind::Skipped
                || matches!(source, FileSource::Safetensors(_))
            {
                skipped.push(rel.clone());
                continue;
            }
            let bytes = self.file_bytes(rel, source)?;
            add_documents(rel, &bytes, &mut docs)?;
        }
        Ok((docs, skipped))
    }
}

fn add_documents(rel: &str, bytes: &[u8], docs: &mut Vec<Document>) -> Result<(), Error> {
    agigit_eval::add_documents(rel, bytes, docs)
        .map(|_| ())
        .map_err(|e| Error::InvalidInput {
            what: "held-out data".into(),
            source: Box::new(e),
        })
}

/// The documents of a file, or of every file under a directory (in path order; links are not
/// followed), and the files skipped.
fn path_documents(path: &Path) -> Result<(Vec<Document>, Vec<String>), Error> {
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(at) = stack.pop() {
        let meta = std::fs::symlink_metadata(&at).map_err(Error::io(&at))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&at).map_err(Error::io(&at))? {
                stack.push(entry.map_err(Error::io(&at))?.path());
            }
        } else if meta.is_file() {
            files.push((at, meta.len()));
        }
    }
    files.sort();
    let total: u64 = files.iter().map(|(_, len)| len).sum();
    if total > MAX_PATH_DATA {
        return Err(Error::Invalid(format!(
            "{} holds {total} bytes; evaluate at most {MAX_PATH_DATA} bytes at once",
            path.display()
        )));
    }
    let mut docs = Vec::new();
    let mut skipped = Vec::new();
    for (file, _) in files {
        // Named from the directory given (a file given alone, by its name).
        let name = match file.strip_prefix(path) {
            Ok(inner) if !inner.as_os_str().is_empty() => inner,
            _ => Path::new(file.file_name().unwrap_or(file.as_os_str())),
        }
        .to_string_lossy()
        .replace('\\', "/");
        if agigit_eval::documents::FileKind::of(&name) == agigit_eval::documents::FileKind::Skipped
        {
            skipped.push(name);
            continue;
        }
        let bytes = std::fs::read(&file).map_err(Error::io(&file))?;
        add_documents(&name, &bytes, &mut docs)?;
    }
    Ok((docs, skipped))
}
