//! Repair: the shards the audit found missing rebuilt from any `k` of each segment (verified by
//! hash, as every fetch), re-encoded, checked against the manifest's hashes, and uploaded until
//! every segment meets the durability target again.

use std::collections::BTreeSet;
use std::sync::Arc;

use agigit_event::RepoCoordinate;
use agigit_net::Transport;
use agigit_shard::{ErasureCode, Locator, SegmentEncoder, codec_for};
use bytes::Bytes;
use futures_util::{StreamExt as _, stream};

use super::audit::*;
use super::transfer::SegmentFetch;
use super::*;
use crate::error::Error;
use crate::repository::Repository;

impl Repository {
    /// Audits `repo` (see [`audit`](Self::audit)), then, for every segment below its target,
    /// rebuilds it from any `k` shards and uploads the shards its repair plan names to the push
    /// servers that answer — the least loaded first — and the pack manifest where it is
    /// missing. Idempotent: a repair of a healthy repository uploads nothing, and one cut short
    /// is finished by the next.
    ///
    /// # Errors
    /// As [`audit`](Self::audit); [`Error::Corrupt`] when a rebuilt segment's shards do not
    /// match its manifest. Uploads that fail are listed in the report, not raised.
    pub async fn repair(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        options: AuditOptions<'_>,
    ) -> Result<RepairReport, Error> {
        let servers = audit_servers(transport);
        let (mut audited, unreachable) = self.survey(transport, repo, &servers, options).await?;
        let before = report(&servers, &unreachable, &audited, options)?;
        let push: BTreeSet<String> = transport.push_servers().into_iter().collect();
        let usable: u64 = servers
            .iter()
            .enumerate()
            .filter(|(_, s)| push.contains(*s) && !unreachable.contains(s))
            .fold(0, |mask, (i, _)| mask | 1 << i);
        let mut out = RepairReport {
            before: before.clone(),
            after: before.clone(),
            segments_repaired: 0,
            shards_uploaded: 0,
            manifests_uploaded: 0,
            bytes_down: 0,
            bytes_up: 0,
            errors: Vec::new(),
        };
        for (pack, audit) in audited.iter_mut().zip(&before.packs) {
            let (Some((stored, manifest)), Some(map)) = (&pack.manifest, &mut pack.map) else {
                out.errors.push(format!(
                    "pack {}: no server has its manifest; it cannot be repaired",
                    pack.manifest_hash
                ));
                continue;
            };
            // The manifest where it is missing, first: shards without it rebuild nothing.
            for (i, server) in servers.iter().enumerate() {
                if usable & (1 << i) != 0 && !pack.holds_manifest[i] {
                    match transport.put_blob(server, stored.clone()).await {
                        Ok(_) => {
                            pack.holds_manifest[i] = true;
                            out.manifests_uploaded += 1;
                            out.bytes_up += stored.len() as u64;
                        }
                        Err(e) => out.errors.push(format!("{server}: {e}")),
                    }
                }
            }
            let target = audit.target.servers_lost();
            let code: Arc<dyn ErasureCode> =
                Arc::from(codec_for(&manifest.codec()).map_err(Error::BadShards)?);
            let reachable: Vec<String> = servers
                .iter()
                .filter(|s| !unreachable.contains(s))
                .cloned()
                .collect();
            // Indexes into `reachable`, the list the fetches below name servers by.
            let locator = std::sync::Mutex::new(Locator::new(reachable.len()));
            for segment in audit.below_target.iter().copied() {
                let plan = map.plan_repair(segment, target, usable);
                if plan.is_empty() {
                    continue;
                }
                // Rebuild it from any k shards, and make them all again.
                let fetch = SegmentFetch {
                    transport,
                    servers: &reachable,
                    manifest,
                    code: Arc::clone(&code),
                    locator: &locator,
                };
                let downloaded = match fetch.fetch(segment).await {
                    Ok(d) => d,
                    Err(e) => {
                        out.errors.push(format!("segment {segment}: {e}"));
                        continue;
                    }
                };
                out.bytes_down += downloaded.downloaded;
                let (data, _) = match downloaded.rebuild(Arc::clone(&code)).await {
                    Ok(d) => d,
                    Err(e) => {
                        out.errors.push(format!("segment {segment}: {e}"));
                        continue;
                    }
                };
                let code_for_cpu = Arc::clone(&code);
                let encoded = transfer::cpu(move || {
                    SegmentEncoder::new(code_for_cpu.as_ref()).encode(segment, &data)
                })
                .await??;
                let expected = manifest.shard_hashes(segment).unwrap_or_default();
                if encoded.hashes.as_slice() != expected {
                    return Err(Error::Corrupt(format!(
                        "pack {}: segment {segment} rebuilt into shards its manifest does not name",
                        pack.manifest_hash
                    )));
                }
                let uploads = plan.iter().map(|&(shard, server)| {
                    let data = Bytes::from(encoded.shards[shard].clone());
                    let hash = encoded.hashes[shard];
                    let url = &servers[server];
                    async move {
                        let len = data.len() as u64;
                        let result = transport.put_blob_hashed(url, &hash, data).await;
                        (shard, server, len, result)
                    }
                });
                let results: Vec<_> = stream::iter(uploads)
                    .buffer_unordered(options.fetch.parallel.max(1))
                    .collect()
                    .await;
                let mut any = false;
                for (shard, server, len, result) in results {
                    match result {
                        Ok(_) => {
                            map.set(segment, shard, server);
                            out.shards_uploaded += 1;
                            out.bytes_up += len;
                            any = true;
                        }
                        Err(e) => out.errors.push(format!("{}: {e}", servers[server])),
                    }
                }
                out.segments_repaired += usize::from(any);
            }
        }
        out.after = report(&servers, &unreachable, &audited, options)?;
        Ok(out)
    }
}
