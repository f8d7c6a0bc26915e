//! Partial pull: one file, or one tensor of a safetensors file, of a remote branch — fetched by
//! the pack indexes the manifests carry (`docs/format.md` §6.7), so that only the segments holding
//! its objects (and the trees above it) are downloaded, from any `k` of `n` shards each, instead
//! of whole packs.
//!
//! A private repository's packs are sealed whole (`agigit-crypt`'s STREAM, 64 KiB segments): the
//! index (inside the sealed manifest) gives plaintext ranges, which map to the sealed segments
//! holding them; those are fetched with the pack's first bytes (its header: salt and nonce
//! prefix) and opened one at a time, each authenticated under its position.
//!
//! Every object is checked against its id (and, but a blob, against the format's rules) before
//! it is stored, as in a full fetch: an index that lies costs a failed pull, never a wrong byte.
//! Nothing moves a branch or `HEAD`; the file is written as `checkout <tip> -- <file>` would, and
//! never over local changes or an untracked file unless forced.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use agigit_crypt::SegmentOpener;
use agigit_dag::pack::PackIndex;
use agigit_dag::{EntryMode, FindExt, Kind, Limits, ObjectId};
use agigit_event::RepoCoordinate;
use agigit_net::Transport;
use agigit_shard::{ErasureCode, Locator, ShardManifest};
use futures_util::{StreamExt as _, stream};

use super::packs::{fetch_manifest, pack_code};
use super::state::{open_keys, published_tip, tip_of};
use super::transfer::SegmentFetch;
use super::*;
use crate::error::Error;
use crate::private::{PrivateKeys, Sealed};
use crate::repository::Repository;
use crate::worktree::{self, FileSource};

mod objects;

use self::objects::*;

/// What a partial pull fetches and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartialWant {
    /// One file (a safetensors file whole), by working-directory path.
    File(String),
    /// One tensor of a safetensors file: written into the file when it is here with the same
    /// layout, else as a safetensors file of that tensor alone at the file's path.
    Tensor {
        /// The safetensors file's working-directory path.
        file: String,
        /// The tensor's name.
        name: String,
    },
}

/// What a partial pull did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartialReport {
    /// The remote branch's tip the file was taken from.
    pub tip: Option<ObjectId>,
    /// The working-directory path written.
    pub written: String,
    /// Bytes written to it.
    pub file_bytes: u64,
    /// Objects fetched (trees on the way included).
    pub objects: usize,
    /// Segments rebuilt.
    pub segments: usize,
    /// Bytes downloaded: shards and pack manifests.
    pub bytes: u64,
    /// The length of the packs those segments are in: what fetching them whole would rebuild.
    pub packs_bytes: u64,
    /// For a private repository, its key envelope (see [`Repository::save_envelope`]).
    pub envelope: Option<Vec<u8>>,
}

/// A segment rebuilt: (pack, segment), its bytes, and the shard bytes downloaded for it.
type FetchedSegment = ((usize, usize), Vec<u8>, u64);

impl Repository {
    /// Fetches one file, or one tensor, of branch `branch` of `repo` and writes it into the
    /// working directory, downloading only the segments that hold it (and the trees above it).
    /// No branch, ref or `HEAD` moves.
    ///
    /// # Errors
    /// [`Error::NotAReader`] for a private repository the secret in `options` cannot open;
    /// [`Error::Invalid`] for a path the branch does not have; [`Error::LocalChanges`] when the file has uncommitted changes or is untracked
    /// (unless `options.force`); [`Error::Network`] for objects of packs pushed without an
    /// index; as [`pull`](Self::pull) otherwise.
    pub async fn pull_path(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        branch: &str,
        want: &PartialWant,
        options: FetchOptions<'_>,
    ) -> Result<PartialReport, crate::fetch::Error> {
        let state::Fetched { state, writers, .. } = self.fetched_state(transport, repo).await?;
        let keys = open_keys(repo, state.body(), &options)?;
        let published = published_tip(state.body(), keys.as_ref(), branch)?;
        let listed = self
            .list_commits(transport, repo, keys.as_ref(), &writers)
            .await?;
        let tip = tip_of(&listed, published, keys.is_some(), repo)?;
        let servers = transport.fetch_servers();
        let mut partial = Partial {
            repo: self,
            keys: keys.as_ref(),
            transport,
            locator: Mutex::new(Locator::new(servers.len())),
            servers,
            packs: Vec::new(),
            places: HashMap::new(),
            segments: HashMap::new(),
            parallel: options.parallel,
            report: PartialReport {
                tip: Some(tip),
                envelope: keys.as_ref().and(state.body().keys.clone()),
                ..PartialReport::default()
            },
        };
        partial.index(&listed, published).await?;
        let file = match want {
            PartialWant::File(f) | PartialWant::Tensor { file: f, .. } => f.clone(),
        };
        let entry = partial.resolve(tip, &file).await?;
        let rel = file.as_str();
        match want {
            PartialWant::File(_) => {
                partial.ensure_all(entry.1).await?;
                let source = match entry.0 {
                    EntryMode::File => FileSource::Blob {
                        id: entry.1,
                        executable: false,
                    },
                    EntryMode::Executable => FileSource::Blob {
                        id: entry.1,
                        executable: true,
                    },
                    EntryMode::Chunked => FileSource::Chunked(entry.1),
                    EntryMode::Tree => FileSource::Safetensors(entry.1),
                    EntryMode::Tensor => {
                        return Err(
                            Error::Corrupt(format!("{rel}: a tensor outside a file")).into()
                        );
                    }
                };
                // Checking local work and writing the file (every object read and checked)
                // run on the CPU pool, not on the async thread.
                let (repo, rel, force) = (self.clone(), rel.to_owned(), options.force);
                partial.report.file_bytes = transfer::cpu(move || {
                    repo.guard_local(&rel, force)?;
                    repo.write_file_at(&rel, &source)
                })
                .await??;
            }
            PartialWant::Tensor { name, .. } => {
                if entry.0 != EntryMode::Tree {
                    return Err(Error::Invalid(format!("{rel} is not a safetensors file")).into());
                }
                partial.ensure(&[entry.1]).await?;
                let tree = self.store().find_tree(&entry.1)?;
                let header = tree
                    .get(worktree::HEADER_ENTRY)
                    .ok_or_else(|| Error::Corrupt(format!("{rel}: no safetensors header")))?
                    .id;
                let tensor = tree
                    .get(name)
                    .filter(|e| e.mode == EntryMode::Tensor)
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "{rel} has no tensor {}",
                            crate::display::Escaped(name)
                        ))
                    })?
                    .id;
                // The header and the tensor object in one round, then what the tensor names.
                partial.ensure(&[header, tensor]).await?;
                partial.ensure_all(tensor).await?;
                let (repo, rel, name, force) =
                    (self.clone(), rel.to_owned(), name.clone(), options.force);
                partial.report.file_bytes = transfer::cpu(move || {
                    repo.write_tensor_at(&rel, &name, &tensor, &header, force)
                })
                .await??;
            }
        }
        partial.report.written = file;
        // What fetching whole packs would have rebuilt: the packs any segment came from.
        let used: std::collections::BTreeSet<usize> =
            partial.segments.keys().map(|(pack, _)| *pack).collect();
        partial.report.packs_bytes = used
            .iter()
            .map(|&p| partial.packs[p].manifest.total_len())
            .sum();
        Ok(partial.report)
    }

    /// Refuses to overwrite `rel` when it holds uncommitted changes or is untracked.
    fn guard_local(&self, rel: &str, force: bool) -> Result<(), Error> {
        if force {
            return Ok(());
        }
        match crate::repository::existing(self.root(), rel)? {
            crate::repository::Found::Absent => Ok(()),
            _ => {
                let tracked = self.head_files()?.remove(rel);
                match tracked {
                    Some(source) if self.matches(rel, &source)? => Ok(()),
                    Some(_) => Err(Error::LocalChanges {
                        command: "pull --path".into(),
                        modified: vec![rel.to_owned()],
                        untracked: Vec::new(),
                    }),
                    None => Err(Error::LocalChanges {
                        command: "pull --path".into(),
                        modified: Vec::new(),
                        untracked: vec![rel.to_owned()],
                    }),
                }
            }
        }
    }

    /// Writes tensor `name` (object `id`) of the safetensors file `rel`: into the file when it
    /// is here with the header `header` names (its other tensors kept), else — the file absent —
    /// as a safetensors file of that tensor alone. Returns the bytes written.
    fn write_tensor_at(
        &self,
        rel: &str,
        name: &str,
        id: &ObjectId,
        header: &ObjectId,
        force: bool,
    ) -> Result<u64, Error> {
        let tensor = self.tensor(name, id)?;
        let mut buf = Vec::new();
        let remote_header = self.store().find_blob(header, &mut buf)?.to_vec();
        match crate::repository::existing(self.root(), rel)? {
            crate::repository::Found::Absent => {
                let one = [(name, tensor.view())];
                let mut written = 0;
                self.write_new(rel, |f| {
                    written = agigit_delta::write_safetensors(f, one, &BTreeMap::new())
                        .map_err(Error::invalid_input(format_args!("writing {rel}")))?;
                    Ok(())
                })?;
                Ok(written)
            }
            crate::repository::Found::File(path) => {
                let local = agigit_delta::SafetensorsFile::open(&path).map_err(|source| {
                    Error::Safetensors {
                        path: path.clone(),
                        source,
                    }
                })?;
                if local.header_bytes() != remote_header.as_slice() {
                    return Err(Error::Invalid(format!(
                        "{rel} is here with another layout than the remote's: pull the whole file (--path {rel}){}",
                        if force { "" } else { ", or move yours away" }
                    )));
                }
                let range = local
                    .data_range(name)
                    .ok_or_else(|| Error::Invalid(format!("{rel} has no tensor {name}")))?;
                // The file streamed from its mapping around the new bytes: memory holds the
                // tensor, not the file.
                let data = tensor.data();
                let bytes = local.as_bytes();
                if bytes.get(range.clone()).map(<[u8]>::len) != Some(data.len()) {
                    return Err(Error::Corrupt(format!(
                        "{rel}: tensor {name} does not fit its slot"
                    )));
                }
                worktree::write_atomic(&path, false, |f| {
                    use std::io::Write as _;
                    f.write_all(&bytes[..range.start])
                        .and_then(|()| f.write_all(data))
                        .and_then(|()| f.write_all(&bytes[range.end..]))
                        .map_err(Error::io(&path))
                })?;
                drop(local);
                Ok(data.len() as u64)
            }
            _ => Err(Error::Invalid(format!(
                "{rel} is not a regular file here: move it away"
            ))),
        }
    }
}
