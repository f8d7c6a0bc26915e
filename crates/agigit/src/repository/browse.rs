//! Reading a commit's files from the store without a checkout: what a viewer (the web explorer,
//! `agigit show`) lists — every file with its part and size — and the bytes of a small one.

use agigit_dag::{FindExt as _, Kind};

use super::Repository;
use crate::error::Error;
use crate::worktree::{self, FileSource, Part};

/// A byte sink as [`std::io::Write`], keeping the sink's own error.
struct SinkWriter<F> {
    sink: F,
    failed: Option<Error>,
}

impl<F: FnMut(&[u8]) -> Result<(), Error>> std::io::Write for SinkWriter<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match (self.sink)(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                self.failed = Some(e);
                Err(std::io::Error::other("the sink failed"))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What kind of file a [`FileEntry`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A plain file stored as one blob.
    Plain,
    /// A large plain file stored as a list of content-defined chunks.
    Chunked,
    /// A safetensors file stored tensor by tensor.
    Safetensors,
}

/// One file of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileEntry {
    /// The working-directory path.
    pub path: String,
    /// Its part.
    pub part: Part,
    /// How it is stored.
    pub kind: FileKind,
    /// Its size in bytes, as a checkout writes it.
    pub bytes: u64,
}

impl Repository {
    /// Every file of revision `rev` with its part and size, in path order — in a partial
    /// clone, of the parts it holds ([`parts`](Self::parts)). Reads only the store's metadata
    /// (trees, chunk lists, safetensors headers), never a file's content.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`]; store errors (a missing or corrupt object).
    pub fn files_at(&self, rev: &str) -> Result<Vec<FileEntry>, Error> {
        let id = self.resolve(rev)?;
        let tree = self.store().find_commit(&id)?.tree;
        self.tree_files(&tree)?
            .into_iter()
            .map(|(path, source)| {
                Ok(FileEntry {
                    part: worktree::classify(&path).0,
                    bytes: self.stored_len(&source)?,
                    kind: kind_of(&source),
                    path,
                })
            })
            .collect()
    }

    /// File `path` of revision `rev`: its part, kind and size (`None` when there is no such
    /// file, or it is in a part this partial clone does not hold). Reads that one file's
    /// metadata only.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`]; store errors.
    pub fn file_at(&self, rev: &str, path: &str) -> Result<Option<FileEntry>, Error> {
        Ok(self.source_at(rev, path)?.map(|(entry, _)| entry))
    }

    /// The bytes of the plain file `path` at revision `rev`, when it exists and is at most
    /// `limit` bytes (its size is read first: a larger file is never loaded). `Ok(None)` when
    /// there is no such file, it is larger, or it is a safetensors file.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`]; store errors.
    pub fn read_file_at(
        &self,
        rev: &str,
        path: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let Some((entry, source)) = self.source_at(rev, path)? else {
            return Ok(None);
        };
        if entry.kind == FileKind::Safetensors || entry.bytes > limit {
            return Ok(None);
        }
        let mut out = Vec::new();
        self.stream_source(&source, |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(Some(out))
    }

    /// Streams file `path` of revision `rev` to `sink` as a checkout would write it — a
    /// safetensors file too, header then tensors — every object checked against its id on the
    /// way; memory holds one chunk or batch of tensors at a time. `start` is called first
    /// with the file's entry (its size, before any byte). `Ok(None)` when there is no such
    /// file; else the bytes handed over.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`]; store errors (a missing or corrupt object: the bytes
    /// already handed over must be discarded); what `start` or `sink` returns.
    pub fn read_file_with(
        &self,
        rev: &str,
        path: &str,
        start: impl FnOnce(&FileEntry) -> Result<(), Error>,
        sink: impl FnMut(&[u8]) -> Result<(), Error> + Send,
    ) -> Result<Option<u64>, Error> {
        let Some((entry, source)) = self.source_at(rev, path)? else {
            return Ok(None);
        };
        start(&entry)?;
        Ok(Some(self.stream_source(&source, sink)?))
    }

    /// Streams tensor `name` of the safetensors file `path` at revision `rev` to `sink` as a
    /// safetensors file holding that tensor alone (what `agigit pull --tensor` writes where the
    /// file is absent), its object and segments checked against their ids and its digest as it
    /// is read; `start` gets that file's size before any byte. Memory holds the one tensor.
    /// `Ok(None)` when there is no such file or tensor, or the file is not a safetensors file.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`]; store errors (a missing or corrupt object); what `start`
    /// or `sink` returns.
    pub fn read_tensor_with(
        &self,
        rev: &str,
        path: &str,
        name: &str,
        start: impl FnOnce(u64) -> Result<(), Error>,
        sink: impl FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<Option<u64>, Error> {
        let Some((_, FileSource::Safetensors(tree))) = self.source_at(rev, path)? else {
            return Ok(None);
        };
        let tree = self.store().find_tree(&tree)?;
        let Some(entry) = tree
            .get(name)
            .filter(|e| e.mode == agigit_dag::EntryMode::Tensor)
        else {
            return Ok(None);
        };
        let tensor = self.tensor(name, &entry.id)?;
        let one = || [(name, tensor.view())];
        let none = std::collections::BTreeMap::new();
        let invalid = |e| Error::invalid_input(format_args!("{path}: tensor {name}"))(e);
        // Its size first: the same bytes written nowhere, counted.
        let size =
            agigit_delta::write_safetensors(std::io::sink(), one(), &none).map_err(invalid)?;
        start(size)?;
        let mut out = SinkWriter { sink, failed: None };
        match agigit_delta::write_safetensors(&mut out, one(), &none) {
            Ok(written) => Ok(Some(written)),
            Err(e) => Err(out.failed.take().unwrap_or_else(|| invalid(e))),
        }
    }

    /// File `path` of revision `rev`: its entry and where its bytes are.
    fn source_at(&self, rev: &str, path: &str) -> Result<Option<(FileEntry, FileSource)>, Error> {
        let id = self.resolve(rev)?;
        let tree = self.store().find_commit(&id)?.tree;
        let mut files = self.tree_files(&tree)?;
        let Some(source) = files.remove(path) else {
            return Ok(None);
        };
        let entry = FileEntry {
            path: path.to_owned(),
            part: worktree::classify(path).0,
            kind: kind_of(&source),
            bytes: self.stored_len(&source)?,
        };
        Ok(Some((entry, source)))
    }

    /// The size of a stored file, as a checkout writes it.
    pub(crate) fn stored_len(&self, source: &FileSource) -> Result<u64, Error> {
        Ok(match source {
            FileSource::Blob { id, .. } => match self.store().header_of(id)? {
                Some((Kind::Blob, size)) => size,
                _ => return Err(Error::Corrupt(format!("file object {id} is not a blob"))),
            },
            FileSource::Chunked(id) => worktree::chunked_len(self.store(), id)?,
            FileSource::Safetensors(tree) => {
                let layout = worktree::safetensors_layout(self.store(), tree)?;
                layout.header.len() as u64 + layout.lens.iter().sum::<u64>()
            }
        })
    }
}

fn kind_of(source: &FileSource) -> FileKind {
    match source {
        FileSource::Blob { .. } => FileKind::Plain,
        FileSource::Chunked(_) => FileKind::Chunked,
        FileSource::Safetensors(_) => FileKind::Safetensors,
    }
}
