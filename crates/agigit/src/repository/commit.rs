//! Snapshots of the working directory: commit, status, and whether a file matches what a tree
//! records.

use std::collections::BTreeMap;
use std::path::Path;

use agigit_dag::fidelity::{self, Fidelity};
use agigit_dag::model::ModelParts;
use agigit_dag::{Commit, FindExt, ForkBase, ObjectId, WriteExt};
use agigit_delta::codec::output_digest;

use super::{Change, absent_part, now};
use crate::Repository;
use crate::error::Error;
use crate::worktree::{self, FileSource, Part};

impl Repository {
    /// Commits the working directory on the current branch (or detached `HEAD`).
    ///
    /// # Errors
    /// [`Error::NothingToCommit`] when nothing changed; a malformed safetensors file, I/O and
    /// store errors; a ref error when another process moved the branch meanwhile.
    pub fn commit(
        &self,
        message: &str,
        author: [u8; 32],
    ) -> Result<ObjectId, crate::commit::Error> {
        self.commit_with(message, author, &agigit_delta::Lossless::default())
            .map(|(id, _)| id)
    }

    /// Commits the working directory; in a fork, tensors are stored with `codec` as deltas
    /// against the foundation's (when that pays), the statistics say what it did, and the
    /// commit carries its fidelity statement (every tensor written: its codec and the relative
    /// error measured on what decoding gives; see [`fidelity`](Self::fidelity)).
    ///
    /// # Errors
    /// As [`commit`](Self::commit); [`Error::Invalid`] for a lossy codec outside a fork.
    pub fn commit_with(
        &self,
        message: &str,
        author: [u8; 32],
        codec: &dyn agigit_delta::DeltaCodec,
    ) -> Result<(ObjectId, worktree::DeltaStats), crate::commit::Error> {
        self.commit_with_record(message, author, codec, None)
    }

    /// As [`commit_with`](Self::commit_with), the commit also carrying `record` — how its
    /// weights were trained (see [`crate::record`]), signed with it.
    ///
    /// # Errors
    /// As [`commit_with`](Self::commit_with).
    pub fn commit_with_record(
        &self,
        message: &str,
        author: [u8; 32],
        codec: &dyn agigit_delta::DeltaCodec,
        record: Option<&crate::record::TrainingRecord>,
    ) -> Result<(ObjectId, worktree::DeltaStats), crate::commit::Error> {
        let mut extra = Vec::new();
        if let Some(r) = record {
            extra.push((crate::record::HEADER.to_owned(), r.encode()));
        }
        if let Some(held) = self.parts()? {
            for rel in worktree::list_files(&self.root)? {
                let part = worktree::classify(&rel).0;
                if !held.contains(&part) {
                    return Err(absent_part(part, Some(&rel)).into());
                }
            }
        }
        let fork = self.fork_base()?;
        if fork.is_none() && !codec.kind().is_exact() {
            return Err(Error::Invalid(format!(
                "{} stores a fork's change against its foundation, and this repository is not a fork: its tensors are stored whole (start a fine-tune with `agigit fork`)",
                codec.kind()
            ))
            .into());
        }
        let tree = match &fork {
            None => worktree::snapshot(&self.store, &self.root)?,
            Some(base) => {
                let layouts = self.foundation_tensors(base)?;
                let lookup = self.foundation_lookup(&layouts);
                let plan = worktree::DeltaPlan {
                    codec,
                    base: &lookup,
                    stats: std::sync::Mutex::new(worktree::DeltaStats::default()),
                };
                let tree = worktree::snapshot_with(&self.store, &self.root, Some(&plan))?;
                let stats = plan.stats.lock().map(|s| s.clone()).unwrap_or_default();
                // The fidelity statement: what each tensor written is, exactly or not, signed
                // with the commit.
                if !stats.fidelity.is_empty() {
                    let statement = Fidelity::new(stats.fidelity.clone())
                        .map_err(Error::invalid_input("the commit's fidelity statement"))?;
                    extra.push((fidelity::HEADER.to_owned(), statement.encode()));
                }
                let id = self.commit_tree(tree, message, author, fork.clone(), extra)?;
                return Ok((id, stats));
            }
        };
        Ok((
            self.commit_tree(tree, message, author, None, extra)?,
            worktree::DeltaStats::default(),
        ))
    }

    /// Commit `commit`'s fidelity statement: `None` when it has none (a commit outside a fork,
    /// whose tensors are all stored dense, is exact).
    ///
    /// # Errors
    /// [`Error::CorruptData`] for a statement that does not decode.
    pub fn fidelity(commit: &Commit) -> Result<Option<Fidelity>, Error> {
        commit
            .extra
            .iter()
            .find(|(k, _)| k == fidelity::HEADER)
            .map(|(_, v)| {
                Fidelity::decode(v).map_err(Error::corrupt_data("the commit's fidelity statement"))
            })
            .transpose()
    }

    fn commit_tree(
        &self,
        tree: ObjectId,
        message: &str,
        author: [u8; 32],
        base: Option<ForkBase>,
        mut extra: Vec<(String, Vec<u8>)>,
    ) -> Result<ObjectId, Error> {
        // Extra headers are sorted by name.
        extra.sort_by(|a, b| a.0.cmp(&b.0));
        let parent = self.head()?;
        let tree = self.keep_absent_parts(tree, parent)?;
        if let Some(p) = parent
            && self.store.find_commit(&p)?.tree == tree
        {
            return Err(Error::NothingToCommit);
        }
        let commit = Commit {
            tree,
            parents: parent.into_iter().collect(),
            base,
            author,
            time: now(),
            message: message.to_owned(),
            extra,
        };
        let id = self.store.write_commit(&commit)?;
        self.move_head(parent, id)?;
        Ok(id)
    }

    /// In a partial clone, a snapshot of the working directory has nothing in the parts it lacks:
    /// take those from `parent`. A file placed in such a part is refused rather than dropped.
    fn keep_absent_parts(
        &self,
        tree: ObjectId,
        parent: Option<ObjectId>,
    ) -> Result<ObjectId, Error> {
        let Some(held) = self.parts()? else {
            return Ok(tree);
        };
        let mut parts = ModelParts::read(&self.store, &tree)?;
        let before = match parent {
            Some(p) => ModelParts::read(&self.store, &self.store.find_commit(&p)?.tree)?,
            None => ModelParts::default(),
        };
        for part in Part::ALL.into_iter().filter(|p| !held.contains(p)) {
            if part.get(&parts).is_some() {
                return Err(absent_part(part, None));
            }
            part.set(&mut parts, part.get(&before));
        }
        Ok(parts.write(&self.store)?)
    }

    /// How the working directory differs from `HEAD`, by path.
    ///
    /// # Errors
    /// I/O and store errors; a malformed safetensors file.
    pub fn status(&self) -> Result<BTreeMap<String, Change>, Error> {
        let tracked = match self.head()? {
            Some(h) => self.tree_files(&self.store.find_commit(&h)?.tree)?,
            None => BTreeMap::new(),
        };
        let mut out = BTreeMap::new();
        // In a partial clone, files of the parts it lacks are not tracked here.
        let parts = self.parts()?;
        let present: Vec<String> = worktree::list_files(&self.root)?
            .into_iter()
            .filter(|rel| {
                parts
                    .as_ref()
                    .is_none_or(|p| p.contains(&worktree::classify(rel).0))
            })
            .collect();
        for rel in &present {
            match tracked.get(rel) {
                None => {
                    out.insert(rel.clone(), Change::Added);
                }
                Some(source) => {
                    if !self.matches(rel, source)? {
                        out.insert(rel.clone(), Change::Modified);
                    }
                }
            }
        }
        for rel in tracked.keys() {
            if present.binary_search(rel).is_err() {
                out.insert(rel.clone(), Change::Deleted);
            }
        }
        Ok(out)
    }

    /// Whether the working file `rel` holds what `source` describes (`false` when it is absent, or
    /// not a regular file, or under a symlinked directory).
    pub(crate) fn matches(&self, rel: &str, source: &FileSource) -> Result<bool, Error> {
        let path = match crate::repository::existing(&self.root, rel)? {
            crate::repository::Found::File(path) => path,
            _ => return Ok(false),
        };
        Ok(match source {
            FileSource::Blob { id, .. } => worktree::blob_id_of_file(&path)? == *id,
            // A chunked file is stored as one only above the threshold: a file that shrank
            // below it is a blob now, and modified either way.
            FileSource::Chunked(id) => {
                std::fs::metadata(&path).map_err(Error::io(&path))?.len()
                    == worktree::chunked_len(&self.store, id)?
                    && worktree::chunked_id_of_file(&path)? == *id
            }
            FileSource::Safetensors(id) => self.safetensors_matches(&path, id)?,
        })
    }

    /// Whether the safetensors file at `path` materializes tree `id`: the same header bytes and,
    /// tensor by tensor, the digest each object records (dense or delta alike).
    fn safetensors_matches(&self, path: &Path, id: &ObjectId) -> Result<bool, Error> {
        let layout = worktree::safetensors_layout(&self.store, id)?;
        let Ok(file) = agigit_delta::SafetensorsFile::open(path) else {
            return Ok(false);
        };
        if file.header_bytes() != layout.header.as_slice() || file.len() != layout.tensors.len() {
            return Ok(false);
        }
        for (name, tensor) in &layout.tensors {
            let Some(view) = file.tensor(name) else {
                return Ok(false);
            };
            let digest = output_digest(view.dtype(), view.shape(), view.data());
            if self.store.find_tensor(tensor)?.digest != digest {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
