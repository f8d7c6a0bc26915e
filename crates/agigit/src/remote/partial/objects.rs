//! The objects of a partial pull: the pack indexes read from the manifests, the segments that
//! hold the wanted objects fetched (and opened, when sealed), each object checked and stored.

use super::*;

/// Where an object is: its pack's manifest and code, and its byte range in the pack.
pub(super) struct Place {
    pack: usize,
    kind: Kind,
    range: Range<u64>,
}

/// A pack the partial pull may read from: its manifest and code, and how it is sealed.
pub(super) struct IndexedPack {
    hash: BlobHash,
    pub(super) manifest: ShardManifest,
    code: Arc<dyn ErasureCode>,
    sealed: Option<SealedPack>,
}

/// A private pack: the key epoch it is sealed in, the plaintext length its index describes, and
/// — once its header is fetched — the opener of its sealed segments.
pub(super) struct SealedPack {
    epoch: u32,
    plain_len: u64,
    opener: Option<SegmentOpener>,
}

/// The objects of the remote's packs, by id, and the segments fetched so far.
pub(super) struct Partial<'a> {
    pub(super) repo: &'a Repository,
    pub(super) keys: Option<&'a PrivateKeys>,
    pub(super) transport: &'a dyn Transport,
    pub(super) servers: Vec<String>,
    pub(super) packs: Vec<IndexedPack>,
    pub(super) places: HashMap<ObjectId, Place>,
    pub(super) segments: HashMap<(usize, usize), Arc<Vec<u8>>>,
    pub(super) locator: Mutex<Locator>,
    pub(super) parallel: usize,
    pub(super) report: PartialReport,
}

impl Partial<'_> {
    /// Fetches the objects of `ids` the store lacks, by their packs' indexes.
    pub(super) async fn ensure(&mut self, ids: &[ObjectId]) -> Result<(), Error> {
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
                .map_err(Error::corrupt_data(format_args!("object {id} in its pack")))?;
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
    pub(super) async fn fetch_segments(
        &mut self,
        mut keys: Vec<(usize, usize)>,
    ) -> Result<(), Error> {
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
    pub(super) fn open_headers(&mut self) -> Result<(), Error> {
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
    pub(super) fn stored_range(&self, pack: usize, range: Range<u64>) -> Result<Range<u64>, Error> {
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
    pub(super) fn read_stored(&self, pack: usize, range: Range<u64>) -> Result<Vec<u8>, Error> {
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
    pub(super) fn object_bytes(&self, id: &ObjectId) -> Result<Vec<u8>, Error> {
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
    pub(super) async fn ensure_all(&mut self, root: ObjectId) -> Result<(), Error> {
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

impl Partial<'_> {
    /// The manifests (and indexes) of every pack of the commits `listed` reachable from
    /// `published` (the tip as its event names it: opaque, for a private repository).
    pub(super) async fn index(
        &mut self,
        listed: &[fetch::Listed],
        published: ObjectId,
    ) -> Result<(), Error> {
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
    pub(super) async fn resolve(
        &mut self,
        tip: ObjectId,
        rel: &str,
    ) -> Result<(EntryMode, ObjectId), Error> {
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
