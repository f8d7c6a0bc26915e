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
use super::transfer::SegmentFetch;
use super::*;
use crate::error::Error;
use crate::private::{PrivateKeys, Sealed};
use crate::repository::Repository;
use crate::worktree::{self, FileSource};

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

/// Where an object is: its pack's manifest and code, and its byte range in the pack.
struct Place {
    pack: usize,
    kind: Kind,
    range: Range<u64>,
}

/// A segment rebuilt: (pack, segment), its bytes, and the shard bytes downloaded for it.
type FetchedSegment = ((usize, usize), Vec<u8>, u64);

/// A pack the partial pull may read from: its manifest and code, and how it is sealed.
struct IndexedPack {
    hash: BlobHash,
    manifest: ShardManifest,
    code: Arc<dyn ErasureCode>,
    sealed: Option<SealedPack>,
}

/// A private pack: the key epoch it is sealed in, the plaintext length its index describes, and
/// — once its header is fetched — the opener of its sealed segments.
struct SealedPack {
    epoch: u32,
    plain_len: u64,
    opener: Option<SegmentOpener>,
}

/// The objects of the remote's packs, by id, and the segments fetched so far.
struct Partial<'a> {
    repo: &'a Repository,
    keys: Option<&'a PrivateKeys>,
    transport: &'a dyn Transport,
    servers: Vec<String>,
    packs: Vec<IndexedPack>,
    places: HashMap<ObjectId, Place>,
    segments: HashMap<(usize, usize), Arc<Vec<u8>>>,
    locator: Mutex<Locator>,
    parallel: usize,
    report: PartialReport,
}

impl Partial<'_> {
    /// Fetches the objects of `ids` the store lacks, by their packs' indexes.
    async fn ensure(&mut self, ids: &[ObjectId]) -> Result<(), Error> {
        let mut wanted = Vec::new();
        for id in ids {
            if !self.repo.store().contains(id)? && !wanted.contains(id) {
                wanted.push(*id);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let places: Vec<(usize, Range<u64>)> = wanted
            .iter()
            .map(|id| {
                self.places
                    .get(id)
                    .map(|p| (p.pack, p.range.clone()))
                    .ok_or_else(|| {
                        Error::Network(format!(
                            "object {id} is in no pack index the relays list (packs pushed before pack indexes cannot be read in part: pull the part)"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        // A sealed pack's header first (its first segment), to know where its sealed segments
        // are.
        let unopened: Vec<(usize, usize)> = places
            .iter()
            .map(|(pack, _)| *pack)
            .filter(|&p| {
                self.packs[p]
                    .sealed
                    .as_ref()
                    .is_some_and(|s| s.opener.is_none())
            })
            .map(|p| (p, 0))
            .collect();
        self.fetch_segments(unopened).await?;
        self.open_headers()?;
        // The segments holding them, fetched a few at once.
        let mut needed: Vec<(usize, usize)> = Vec::new();
        for (pack, range) in places {
            let stored = self.stored_range(pack, range)?;
            let size = self.packs[pack].manifest.segment_size();
            let (first, last) = (stored.start / size, (stored.end - 1) / size);
            for s in first..=last {
                let s = usize::try_from(s).map_err(|_| Error::Corrupt("segment index".into()))?;
                needed.push((pack, s));
            }
        }
        self.fetch_segments(needed).await?;
        for id in wanted {
            let bytes = self.object_bytes(&id)?;
            let kind = self.places[&id].kind;
            let (parsed, body) = agigit_dag::object::parse_loose(&bytes, Limits::default())
                .map_err(|e| Error::Corrupt(format!("object {id} in its pack: {e}")))?;
            if parsed != kind || agigit_dag::object::compute_id(kind, body) != id {
                return Err(Error::Corrupt(format!(
                    "the pack index places object {id} where other bytes are"
                )));
            }
            if kind != Kind::Blob {
                agigit_dag::Object::decode(kind, body).map_err(|source| Error::Decode {
                    what: format!("object {id}"),
                    source,
                })?;
            }
            self.repo.store().write_buf(kind, body)?;
            self.report.objects += 1;
        }
        Ok(())
    }

    /// Fetches the segments of `keys` not fetched yet, a few at once.
    async fn fetch_segments(&mut self, mut keys: Vec<(usize, usize)>) -> Result<(), Error> {
        keys.sort_unstable();
        keys.dedup();
        keys.retain(|k| !self.segments.contains_key(k));
        let fetched: Vec<Result<FetchedSegment, Error>> = {
            let this = &*self;
            stream::iter(keys)
                .map(|(pack, segment)| async move {
                    let p = &this.packs[pack];
                    let context = SegmentFetch {
                        transport: this.transport,
                        servers: &this.servers,
                        manifest: &p.manifest,
                        code: Arc::clone(&p.code),
                        locator: &this.locator,
                    };
                    let downloaded = context.fetch(segment).await?;
                    let bytes = downloaded.downloaded;
                    let (data, _) = downloaded.rebuild(Arc::clone(&p.code)).await?;
                    Ok(((pack, segment), data, bytes))
                })
                .buffer_unordered(self.parallel.clamp(1, 8))
                .collect()
                .await
        };
        for got in fetched {
            let (key, data, bytes) = got?;
            self.report.segments += 1;
            self.report.bytes += bytes;
            self.segments.insert(key, Arc::new(data));
        }
        Ok(())
    }

    /// Makes the opener of every sealed pack whose first segment is here, and checks that the
    /// pack's index describes the plaintext its sealed length holds.
    fn open_headers(&mut self) -> Result<(), Error> {
        let Some(keys) = self.keys else {
            return Ok(());
        };
        for (i, pack) in self.packs.iter_mut().enumerate() {
            let Some(sealed) = pack.sealed.as_mut() else {
                continue;
            };
            let Some(first) = self.segments.get(&(i, 0)) else {
                continue;
            };
            if sealed.opener.is_some() {
                continue;
            }
            let header = first.get(..agigit_crypt::HEADER_LEN).ok_or_else(|| {
                Error::Corrupt(format!(
                    "pack {}: shorter than its sealed header",
                    pack.hash
                ))
            })?;
            let opener = keys.segment_opener(
                Sealed::Pack,
                sealed.epoch,
                header,
                pack.manifest.total_len(),
            )?;
            if opener.plaintext_len() != sealed.plain_len {
                return Err(Error::Corrupt(format!(
                    "pack {}: its index describes {} bytes, its sealed length holds {}",
                    pack.hash,
                    sealed.plain_len,
                    opener.plaintext_len()
                )));
            }
            sealed.opener = Some(opener);
        }
        Ok(())
    }

    /// Where plaintext bytes `range` of pack `pack` are in the pack as stored: the same bytes
    /// for a public pack, the sealed segments holding them for a private one.
    fn stored_range(&self, pack: usize, range: Range<u64>) -> Result<Range<u64>, Error> {
        let p = &self.packs[pack];
        if range.is_empty() || (p.sealed.is_none() && range.end > p.manifest.total_len()) {
            return Err(Error::Corrupt(format!(
                "pack {}: its index places an object at {range:?}, outside the pack",
                p.hash
            )));
        }
        let Some(sealed) = &p.sealed else {
            return Ok(range);
        };
        let opener = sealed.opener.as_ref().ok_or_else(|| {
            Error::Corrupt(format!("pack {}: its sealed header was not read", p.hash))
        })?;
        if range.end > opener.plaintext_len() {
            return Err(Error::Corrupt(format!(
                "pack {}: its index places an object at {range:?}, outside the pack",
                p.hash
            )));
        }
        let segments = opener.segments_of(range);
        Ok(opener.sealed_range(segments.start).start..opener.sealed_range(segments.end - 1).end)
    }

    /// Bytes `range` of pack `pack` as stored, cut from the segments fetched.
    fn read_stored(&self, pack: usize, range: Range<u64>) -> Result<Vec<u8>, Error> {
        let size = self.packs[pack].manifest.segment_size();
        let mut out =
            Vec::with_capacity(usize::try_from(range.end - range.start).unwrap_or_default());
        let mut at = range.start;
        while at < range.end {
            let segment = usize::try_from(at / size).unwrap_or(usize::MAX);
            let data = self
                .segments
                .get(&(pack, segment))
                .ok_or_else(|| Error::Corrupt(format!("segment {segment} was not fetched")))?;
            let from = usize::try_from(at % size).unwrap_or(usize::MAX);
            let to = usize::try_from((range.end - segment as u64 * size).min(size))
                .unwrap_or(usize::MAX);
            let slice = data.get(from..to).ok_or_else(|| {
                Error::Corrupt(format!(
                    "pack {}: bytes {range:?} are past its end",
                    self.packs[pack].hash
                ))
            })?;
            out.extend_from_slice(slice);
            at += slice.len() as u64;
        }
        Ok(out)
    }

    /// Object `id`'s header and body, cut from the segments fetched (opened, for a sealed
    /// pack: each sealed segment authenticated on its own).
    fn object_bytes(&self, id: &ObjectId) -> Result<Vec<u8>, Error> {
        let place = &self.places[id];
        let pack = &self.packs[place.pack];
        let Some(opener) = pack.sealed.as_ref().and_then(|s| s.opener.as_ref()) else {
            return self.read_stored(place.pack, place.range.clone());
        };
        let segments = opener.segments_of(place.range.clone());
        let first = opener.sealed_range(segments.start).start;
        let sealed = self.read_stored(
            place.pack,
            self.stored_range(place.pack, place.range.clone())?,
        )?;
        let mut plain = Vec::new();
        for i in segments.clone() {
            let r = opener.sealed_range(i);
            let bytes = sealed
                .get(
                    usize::try_from(r.start - first).unwrap_or(usize::MAX)
                        ..usize::try_from(r.end - first).unwrap_or(usize::MAX),
                )
                .ok_or_else(|| Error::Corrupt(format!("pack {}: a short segment", pack.hash)))?;
            plain.extend_from_slice(&opener.open(i, bytes).map_err(|_| {
                Error::Corrupt(format!(
                    "pack {}: sealed segment {i} does not open with this repository's key (altered, or sealed under another key)",
                    pack.hash
                ))
            })?);
        }
        let skip = place.range.start - opener.plaintext_range(segments.start).start;
        let len = place.range.end - place.range.start;
        plain
            .get(usize::try_from(skip).unwrap_or(usize::MAX)..)
            .and_then(|p| p.get(..usize::try_from(len).unwrap_or(usize::MAX)))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::Corrupt(format!("pack {}: object {id} past its end", pack.hash)))
    }

    /// Fetches everything `root` refers to, level by level (`pack::links`): a tree's entries, a
    /// chunk list's chunks, a tensor's blobs and base.
    async fn ensure_all(&mut self, root: ObjectId) -> Result<(), Error> {
        let mut frontier = vec![root];
        while !frontier.is_empty() {
            self.ensure(&frontier).await?;
            let mut next = Vec::new();
            for id in frontier {
                if let Some((kind, _)) = self.repo.store().header_of(&id)? {
                    next.extend(
                        agigit_dag::pack::links(self.repo.store(), kind, &id)?
                            .into_iter()
                            .map(|(_, id)| id),
                    );
                }
            }
            next.sort_unstable();
            next.dedup();
            frontier = next;
        }
        Ok(())
    }
}

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
        let keys = fetch::open_keys(repo, state.body(), &options)?;
        let published = fetch::published_tip(state.body(), keys.as_ref(), branch)?;
        let listed = self
            .list_commits(transport, repo, keys.as_ref(), &writers)
            .await?;
        let tip = fetch::tip_of(&listed, published, keys.is_some(), repo)?;
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
                self.guard_local(rel, options.force)?;
                partial.report.file_bytes = self.write_file_at(rel, &source)?;
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
                partial.report.file_bytes =
                    self.write_tensor_at(rel, name, &tensor, &header, options.force)?;
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
                        .map_err(|e| Error::Invalid(e.to_string()))?;
                    Ok(())
                })?;
                Ok(written)
            }
            crate::repository::Found::File(path) => {
                let local =
                    agigit_delta::SafetensorsFile::open(&path).map_err(|e| Error::Safetensors {
                        path: path.clone(),
                        reason: e.to_string(),
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

impl Partial<'_> {
    /// The manifests (and indexes) of every pack of the commits `listed` reachable from
    /// `published` (the tip as its event names it: opaque, for a private repository).
    async fn index(&mut self, listed: &[fetch::Listed], published: ObjectId) -> Result<(), Error> {
        let hashes = audit::reachable_packs(listed, std::iter::once(&published));
        for (hash, epoch, _) in hashes {
            let keys = self.keys.map(|k| (k, epoch));
            let (stored, manifest) =
                fetch_manifest(self.transport, &self.servers, &hash, keys).await?;
            self.report.bytes += stored.len() as u64;
            let Some(annex) = manifest.annex() else {
                continue;
            };
            let index = PackIndex::decode(annex, Limits::default())?;
            // A sealed pack's plaintext length is checked once its header is read.
            let sealed = self.keys.map(|_| SealedPack {
                epoch,
                plain_len: index.pack_len(),
                opener: None,
            });
            if sealed.is_none() && index.pack_len() != manifest.total_len() {
                return Err(Error::Corrupt(format!(
                    "pack {hash}: its index describes {} bytes, its manifest {}",
                    index.pack_len(),
                    manifest.total_len()
                )));
            }
            let code = pack_code(&manifest, &hash)?;
            let pack = self.packs.len();
            for (entry, range) in index.ranges() {
                self.places.entry(entry.id).or_insert(Place {
                    pack,
                    kind: entry.kind,
                    range,
                });
            }
            self.packs.push(IndexedPack {
                hash,
                manifest,
                code,
                sealed,
            });
        }
        Ok(())
    }

    /// The tree entry (mode and id) at working-directory path `rel` in commit `tip`, fetching
    /// the commit and the trees on the way.
    async fn resolve(&mut self, tip: ObjectId, rel: &str) -> Result<(EntryMode, ObjectId), Error> {
        self.ensure(&[tip]).await?;
        let model = self.repo.store().find_commit(&tip)?.tree;
        self.ensure(&[model]).await?;
        if let Some(data) = self
            .repo
            .store()
            .find_tree(&model)?
            .get(agigit_dag::model::DATA)
        {
            let data = data.id;
            self.ensure(&[data]).await?;
        }
        let (part, inner) = worktree::classify(rel);
        let parts = agigit_dag::ModelParts::read(self.repo.store(), &model)?;
        let missing = || Error::Invalid(format!("{rel} is not in the remote's tip {tip}"));
        let mut tree = part.get(&parts).ok_or_else(missing)?;
        let names: Vec<&str> = inner.split('/').collect();
        for (i, name) in names.iter().enumerate() {
            self.ensure(&[tree]).await?;
            let entry = self
                .repo
                .store()
                .find_tree(&tree)?
                .get(name)
                .cloned()
                .ok_or_else(missing)?;
            if i + 1 == names.len() {
                return Ok((entry.mode, entry.id));
            }
            if entry.mode != EntryMode::Tree {
                return Err(missing());
            }
            tree = entry.id;
        }
        Err(missing())
    }
}
