//! One pack sent: written to a pending file (sealed when private), coded segment by segment on
//! the CPU pool, its shards placed and uploaded, then its manifest.

use super::*;

impl Repository {
    /// Sends one pack of `objects`: written to a pending file (sealed when private), cut into
    /// segments, each erasure-coded and its shards uploaded by placement; then the manifest
    /// (sealed when private) on every server. Checks what was stored against `target` and says
    /// in `report` what it guarantees. Returns the manifest's blob hash.
    pub(super) async fn send_pack(
        &self,
        to: &Destination<'_>,
        (part, objects): (Option<&str>, &[(agigit_dag::Kind, ObjectId)]),
        report: &mut PushReport,
        pending: &mut Vec<PendingPack>,
    ) -> Result<BlobHash, Error> {
        let Destination {
            transport,
            servers,
            options,
            target,
        } = *to;
        let keys = options.keys;
        let segment_size = options.segment_size;
        if segment_size == 0 || segment_size as u64 > agigit_shard::MAX_SEGMENT_SIZE {
            return Err(Error::Invalid(format!(
                "segment size {segment_size}: use 1 byte to 1 GiB"
            )));
        }
        let spec = options.code.spec();
        // The same algorithm as `options.code`, owned, for the CPU pool.
        let code: Arc<dyn ErasureCode> = Arc::from(codec_for(&spec)?);
        let placement = Placement::new(servers.len(), &spec)?;

        // The pack's index (each object's kind and length, from the stored headers): its
        // length, and later the manifest's annex.
        let index = {
            let (store, list) = (self.shared_store(), objects.to_vec());
            cpu(move || pack::index_of(&*store, &list)).await??
        };
        let expected = match keys {
            Some(k) => k.sealed_len(index.pack_len()),
            None => index.pack_len(),
        };

        // The pack goes to a pending file (sealed on the way when private), written on a
        // thread of its own while the segments written so far are coded and sent: memory
        // holds one object while it is written and a few segments while they are sent. An
        // interrupted push left it whole when it is there already.
        let started = Instant::now();
        let mut pack = {
            let (store, sealing, list) = (self.shared_store(), keys.cloned(), objects.to_vec());
            self.start_pending_pack(
                objects,
                keys,
                expected,
                segment_size as u64,
                Box::new(move |out, path| write_pack(out, path, &*store, &list, sealing.as_ref())),
            )
            .await?
        };
        report.stages.pack += started.elapsed();
        let pack_len = pack.pack().len;
        report.objects += objects.len();
        report.pack_bytes += pack_len;

        // 1. Shards. Segments are read, coded and hashed on the CPU pool, a few ahead of the
        //    uploads, each as soon as the pack's writer has put all of it in the file; each
        //    shard goes to the server the placement names, or to the working server holding
        //    the fewest of its segment when that one fails, with `parallel` uploads in flight.
        let count = pack.count();
        let progress = options.progress;
        if let Some(p) = progress {
            let shard_len = options.code.shard_len(segment_size) as u64;
            p.begin("upload shards", shard_len * spec.n as u64 * count as u64);
        }
        let uploader = ShardUpload {
            transport,
            servers,
            progress,
            resume: pack.pack().resumed,
            book: std::sync::Mutex::new(Book::new(&placement, count, &spec)),
        };
        let ahead = rayon::current_num_threads().max(1) + 1;
        let (file, path) = (Arc::clone(&pack.file), pack.pack().path.clone());
        let encoded = pack
            .segments()
            .map(|index| {
                let (code, file, path) = (Arc::clone(&code), Arc::clone(&file), path.clone());
                let offset = index as u64 * segment_size as u64;
                let len = usize::try_from((pack_len - offset).min(segment_size as u64))
                    .unwrap_or(segment_size);
                async move {
                    let data = cpu(move || read_at(&file, &path, offset, len)).await??;
                    cpu(move || timed(|| SegmentEncoder::new(code.as_ref()).encode(index, &data)))
                        .await
                }
            })
            .buffered(ahead);
        let mut hashes: Vec<Vec<BlobHash>> = vec![Vec::new(); count];
        let mut shards = encoded
            .map(|segment| match segment {
                Ok((Ok(segment), took)) => {
                    report.stages.encode += took;
                    let EncodedSegment {
                        index,
                        shards,
                        hashes: shard_hashes,
                        ..
                    } = segment;
                    hashes[index].clone_from(&shard_hashes);
                    let each = shards.into_iter().zip(shard_hashes).enumerate();
                    stream::iter(each.map(move |(i, (shard, hash))| Ok((index, i, hash, shard))))
                        .left_stream()
                }
                Ok((Err(e), _)) => stream::iter([Err(Error::from(e))]).right_stream(),
                Err(e) => stream::iter([Err(e)]).right_stream(),
            })
            .flatten()
            .map(|shard| {
                let (uploader, placement) = (&uploader, &placement);
                async move {
                    let (index, i, hash, shard) = shard?;
                    let first = placement.server_of(index, i);
                    Ok::<_, Error>(
                        uploader
                            .upload(index, first, &hash, Bytes::from(shard))
                            .await,
                    )
                }
            })
            .buffer_unordered(options.parallel.max(1));
        let started = Instant::now();
        let mut failures = BTreeSet::new();
        while let Some(result) = shards.next().await {
            let upload = result?;
            failures.extend(upload.errors);
            match upload.stored {
                Some((server, sent)) => {
                    report.shards += 1;
                    report.rerouted += usize::from(server != upload.first);
                    if sent == 0 {
                        report.resumed += 1;
                    }
                    *report
                        .bytes_per_server
                        .entry(servers[server].clone())
                        .or_default() += sent;
                }
                None => report.lost += 1,
            }
        }
        drop(shards);
        // A writer that failed ended the segments early: say why.
        let (pack, writing) = pack.finish().await?;
        report.stages.pack += writing;
        report.stages.transfer += started.elapsed();
        if let Some(p) = progress {
            p.end();
        }
        let book = uploader
            .book
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);

        // Every segment must still be rebuildable from what was stored.
        if let Some(&index) = book.holdings.lost_segments().first() {
            return Err(Error::Network(format!(
                "segment {index} has only {} of the {} shards it needs stored: {}; push again when the servers are back",
                book.holdings.held(index),
                spec.k,
                failures
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("; "),
            )));
        }
        pending.push(pack);
        let manifest = ShardManifest::new(spec, segment_size as u64, pack_len, hashes)?;
        // The pack's index as the manifest's annex: where each object is, for a reader that
        // wants a few of them. Left out when the manifest would grow past what readers fetch.
        let index = index.encode();
        let table = manifest.encode().len() as u64;
        let manifest = if table + 4 + index.len() as u64 <= MAX_MANIFEST_BYTES {
            manifest.with_annex(index)?
        } else {
            tracing::debug!(
                objects = objects.len(),
                "pack index left out of an oversized manifest"
            );
            manifest
        };

        // 2. The manifest (sealed when private), on every push server.
        let mut manifest_bytes = manifest.encode();
        if let Some(k) = keys {
            manifest_bytes = k.seal(Sealed::Manifest, &manifest_bytes)?;
        }
        let manifest_bytes = Bytes::from(manifest_bytes);
        let manifest_hash = BlobHash::digest(&manifest_bytes);
        let results = futures_util::future::join_all(
            servers
                .iter()
                .map(|s| transport.put_blob(s, manifest_bytes.clone())),
        )
        .await;
        let mut holds_manifest = vec![false; servers.len()];
        let mut errors = Vec::new();
        for ((server, result), holds) in servers.iter().zip(results).zip(&mut holds_manifest) {
            match result {
                Ok(_) => {
                    *holds = true;
                    *report.bytes_per_server.entry(server.clone()).or_default() +=
                        manifest_bytes.len() as u64;
                }
                Err(e) => {
                    tracing_failure(server, &e);
                    errors.push(e.to_string());
                    failures.insert(e.to_string());
                }
            }
        }
        let stored = holds_manifest.iter().filter(|h| **h).count();
        // 3. What it guarantees: the shards' margin, and no more than the manifest's (any
        //    servers left must include one holding it).
        let survives = book
            .holdings
            .margin()
            .unwrap_or(0)
            .min(stored.saturating_sub(1));
        let name = part.unwrap_or("commits");
        if survives < target.servers_lost() && !options.accept_weaker {
            let reasons = failures.into_iter().collect::<Vec<_>>().join("; ");
            return Err(Error::Weaker {
                pack: format!("pack {name}"),
                servers: servers.len(),
                wanted: target.servers_lost(),
                achieved: survives,
                reasons,
            });
        }
        if stored < options.min_accepted.min(servers.len()).max(1) {
            return Err(Error::Network(format!(
                "the pack manifest is stored on {stored} servers, {} required: {}; push again when the servers are back",
                options.min_accepted.max(1),
                errors.join("; ")
            )));
        }

        let rebuild = book.holdings.rebuild_odds(options.availability)?;
        report.packs.push(PackDurability {
            manifest: manifest_hash,
            part: part.map(str::to_owned),
            code: (spec.k, spec.n),
            segments: count,
            servers: servers
                .iter()
                .enumerate()
                .map(|(i, server)| ServerHolding {
                    server: server.clone(),
                    shards: book.holdings.on_server(i),
                    manifest: holds_manifest[i],
                })
                .collect(),
            survives,
            servers_needed: servers.len().saturating_sub(survives).max(1),
            rebuild,
            availability: options.availability,
        });
        Ok(manifest_hash)
    }
}

/// Writes the pack of `objects` into `out` (on the file at `path`), sealed when `keys` are
/// given.
pub(super) fn write_pack(
    out: &mut dyn std::io::Write,
    path: &std::path::Path,
    store: &dyn agigit_dag::ObjectStore,
    objects: &[(agigit_dag::Kind, ObjectId)],
    keys: Option<&PrivateKeys>,
) -> Result<(), Error> {
    match keys {
        Some(k) => {
            let mut sealer = k.sealing_writer(Sealed::Pack, out)?;
            pack::write_pack_to(store, objects, &mut sealer)?;
            sealer.finish().map_err(Error::io(path))?;
            Ok(())
        }
        None => Ok(pack::write_pack_to(store, objects, out).map(|_| ())?),
    }
}
