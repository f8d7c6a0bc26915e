//! Fetching packs: for each pack a fetch wants, its manifest from any server, then its segments
//! rebuilt by [`super::transfer`] from shards of any servers, then every object checked against
//! its id and stored.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use agigit_dag::ObjectId;
use agigit_hash::BlobHash;
use agigit_net::Transport;
use agigit_shard::{Placement, ShardManifest, codec_for};
use futures_util::{StreamExt as _, stream};

use super::fetch::{Listed, Want};
use super::transfer::{SegmentFetch, cpu};
use super::*;
use crate::error::Error;
use crate::pack;
use crate::private::{PrivateKeys, Sealed};
use crate::repository::Repository;

/// About how many bytes of segments a fetch keeps in flight at most.
const FETCH_MEMORY: u64 = 256 << 20;

impl Repository {
    /// Fetches the packs that `want` asks for of the commits of `listed` reachable from `tips`
    /// (commit ids): a commit already local ends the walk there unless parts are being added.
    /// Packs of listed commits that no tip reaches are never downloaded.
    #[allow(
        clippy::too_many_arguments,
        reason = "one private helper of fetch, called once"
    )]
    pub(super) async fn fetch_packs(
        &self,
        transport: &dyn Transport,
        listed: &[Listed],
        tips: &[ObjectId],
        keys: Option<&PrivateKeys>,
        want: &Want,
        options: FetchOptions<'_>,
        report: &mut PullReport,
    ) -> Result<(), Error> {
        let by_id: std::collections::HashMap<ObjectId, &Listed> =
            listed.iter().map(|l| (l.id, l)).collect();
        let widening = !want.held.is_superset(&want.wanted);
        let mut packs: Vec<(BlobHash, u32)> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&Listed> = tips.iter().filter_map(|t| by_id.get(t).copied()).collect();
        while let Some(l) = stack.pop() {
            if !seen.insert(l.id) {
                continue;
            }
            let local = self.store().contains(&l.id)?;
            for p in &l.packs {
                if want.wants(local, l.parts.get(p)) && !packs.iter().any(|(q, _)| q == p) {
                    packs.push((*p, l.epoch));
                }
            }
            if !local || widening {
                stack.extend(l.parents.iter().filter_map(|p| by_id.get(p).copied()));
            }
        }
        for (manifest, epoch) in packs {
            let sealed = keys.map(|k| (k, epoch));
            self.fetch_pack(transport, &manifest, sealed, options, report)
                .await?;
            report.packs += 1;
        }
        Ok(())
    }

    /// Downloads pack `manifest_hash` from any servers and stores its objects.
    async fn fetch_pack(
        &self,
        transport: &dyn Transport,
        manifest_hash: &BlobHash,
        keys: Option<(&PrivateKeys, u32)>,
        options: FetchOptions<'_>,
        report: &mut PullReport,
    ) -> Result<(), Error> {
        let servers = transport.fetch_servers();
        let mut errors = Vec::new();
        let mut manifest = None;
        for s in &servers {
            let decoded = match transport
                .get_blob(s, manifest_hash, MAX_MANIFEST_BYTES)
                .await
            {
                Ok(bytes) => {
                    report.bytes += bytes.len() as u64;
                    let plain = match keys {
                        Some((k, epoch)) => k.open_sealed(Sealed::Manifest, epoch, &bytes),
                        None => Ok(bytes.to_vec()),
                    };
                    plain.and_then(|p| {
                        ShardManifest::decode(&p).map_err(|e| Error::Corrupt(e.to_string()))
                    })
                }
                Err(e) => Err(net(e)),
            };
            match decoded {
                Ok(m) => {
                    manifest = Some(m);
                    break;
                }
                Err(e) => errors.push(format!("{s}: {e}")),
            }
        }
        let manifest = manifest.ok_or_else(|| {
            Error::Network(format!(
                "no server has pack manifest {manifest_hash}: {}",
                errors.join("; ")
            ))
        })?;
        // Memory holds the segments in flight: the manifest's segment size, which its author
        // chose, is bounded here, and fewer segments fly at once when they are large.
        if manifest.segment_size() > MAX_FETCH_SEGMENT {
            return Err(Error::Limit {
                what: format!("the segment size of pack {manifest_hash}"),
                size: manifest.segment_size(),
                limit: MAX_FETCH_SEGMENT,
            });
        }
        let code: Arc<dyn ErasureCode> =
            Arc::from(codec_for(&manifest.codec()).map_err(|e| Error::Corrupt(e.to_string()))?);
        // Where the pusher put each shard, if these are its servers in its order; others after.
        let placement = Placement::new(servers.len().max(1), &manifest.codec())
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        let context = SegmentFetch {
            transport,
            servers: &servers,
            manifest: &manifest,
            code: Arc::clone(&code),
            placement: &placement,
        };
        // Two stages: segments downloading, `k` shards each, about `parallel` shards at once;
        // and segments rebuilding on the CPU pool, one per core and one waiting. Memory holds
        // the segments in both, bounded by FETCH_MEMORY.
        let by_memory = usize::try_from(FETCH_MEMORY / manifest.segment_size().max(1))
            .unwrap_or(usize::MAX)
            .max(2);
        let rebuilding = (rayon::current_num_threads() + 1).min(by_memory / 2);
        let downloading = options
            .parallel
            .div_ceil(manifest.codec().k)
            .clamp(1, by_memory - rebuilding);
        let mut segments = stream::iter(0..manifest.segment_count())
            .map(|segment| context.fetch(segment))
            .buffered(downloading)
            .map(|downloaded| {
                let code = Arc::clone(&code);
                async move {
                    let downloaded = downloaded?;
                    let (shards, bytes) = (downloaded.shards, downloaded.downloaded);
                    let (segment, took) = downloaded.rebuild(code).await?;
                    Ok::<_, Error>((segment, shards, bytes, took))
                }
            })
            .buffered(rebuilding.max(1));
        // Segments arrive in order and go to a temporary file, written on the CPU pool: memory
        // holds the segments in flight, not the pack.
        let pack_file = TempFile::new(self, "fetch")?;
        let path = pack_file.path.clone();
        let mut out = Some(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&path).map_err(Error::io(&path))?,
        ));
        if let Some(p) = options.progress {
            p.begin("download pack", manifest.total_len());
        }
        let started = Instant::now();
        while let Some(result) = segments.next().await {
            let (segment, shards, downloaded, took) = result?;
            report.stages.rebuild += took;
            if let Some(p) = options.progress {
                p.advance(segment.len() as u64);
            }
            report.shards += shards;
            report.bytes += downloaded;
            let (mut file, path) = (out.take(), path.clone());
            let (written, took) = cpu(move || {
                timed(|| {
                    if let Some(f) = &mut file {
                        std::io::Write::write_all(f, &segment).map_err(Error::io(&path))?;
                    }
                    Ok::<_, Error>(file)
                })
            })
            .await?;
            report.stages.spool += took;
            out = written?;
        }
        drop(segments);
        report.stages.transfer += started.elapsed();
        if let Some(p) = options.progress {
            p.end();
        }
        // Every object is checked against its id and stored, on the CPU pool.
        let (store, keys) = (self.shared_store(), keys.map(|(k, e)| (k.clone(), e)));
        let (ids, took) = cpu(move || {
            timed(|| {
                if let Some(mut f) = out {
                    std::io::Write::flush(&mut f).map_err(Error::io(&path))?;
                }
                let input = std::fs::File::open(&path).map_err(Error::io(&path))?;
                Ok::<_, Error>(match keys {
                    Some((k, epoch)) => {
                        pack::read_pack_from(&store, k.opening_reader(Sealed::Pack, epoch, input)?)?
                    }
                    None => pack::read_pack_from(&store, input)?,
                })
            })
        })
        .await?;
        report.stages.store += took;
        let ids = ids?;
        drop(pack_file);
        report.objects += ids.len();
        Ok(())
    }
}
