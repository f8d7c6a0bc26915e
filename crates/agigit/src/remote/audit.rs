//! Audit and repair: which shards each server still holds of every pack reachable from the
//! remote's refs (HEAD requests, `parallel` at once), what that guarantees now, and — for a
//! repair — the missing shards rebuilt from any `k` and uploaded until every segment meets the
//! durability target again.
//!
//! An audit asks; it never downloads a shard. A server's "yes" is its word (only a download
//! verifies), its "no" is believed, and a server that does not answer is counted as holding
//! nothing. A repair downloads `k` shards of each segment it mends (verified by hash, as every
//! fetch), re-encodes the segment, checks that every shard it made has the hash the manifest
//! gives, and uploads only those.

use std::collections::{BTreeSet, HashMap};

use agigit_dag::ObjectId;
use agigit_event::RepoCoordinate;
use agigit_hash::BlobHash;
use agigit_net::{NetError, Transport};
use agigit_shard::{
    Durability, ErasureCode, Placement, RebuildOdds, ShardManifest, ShardMap, codec_for,
};
use bytes::Bytes;
use futures_util::{StreamExt as _, stream};

use super::fetch::Listed;
use super::packs::fetch_manifest;
use super::state::open_keys;
use super::*;
use crate::error::Error;
use crate::repository::Repository;

/// How to audit or repair.
#[derive(Clone, Copy, Debug)]
pub struct AuditOptions<'a> {
    /// The secret key to open a private repository's manifests with, the key wrap, and
    /// requests in flight at once.
    pub fetch: FetchOptions<'a>,
    /// The target each pack is measured against (and a repair restores); `None`: the most each
    /// pack's code gives on the servers.
    pub durability: Option<Durability>,
    /// The probability that each server is up, for the odds reported.
    pub availability: f64,
}

impl Default for AuditOptions<'_> {
    fn default() -> Self {
        Self {
            fetch: FetchOptions::default(),
            durability: None,
            availability: crate::config::defaults::AVAILABILITY,
        }
    }
}

/// What an audit found.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AuditReport {
    /// The servers asked, push servers first.
    pub servers: Vec<String>,
    /// Those that did not answer (counted as holding nothing).
    pub unreachable: Vec<String>,
    /// Every pack reachable from the remote's refs.
    pub packs: Vec<PackAudit>,
}

impl AuditReport {
    /// Whether every pack meets its target.
    pub fn is_healthy(&self) -> bool {
        self.packs.iter().all(PackAudit::meets_target)
    }
}

/// One pack, audited.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PackAudit {
    /// The pack manifest's blob hash.
    pub manifest: BlobHash,
    /// The part it holds, or `None` for the commits and the trees above the parts.
    pub part: Option<String>,
    /// `k` and `n` of its code (`(0, 0)` when no server has its manifest).
    pub code: (usize, usize),
    /// Segments.
    pub segments: usize,
    /// Shards and the manifest per server, in [`AuditReport::servers`] order.
    pub servers: Vec<ServerHolding>,
    /// Servers that may be lost, whichever they are, with the pack still rebuildable; `None`
    /// when it cannot be rebuilt now (segments lost, or no manifest anywhere).
    pub survives: Option<usize>,
    /// The target it is measured against.
    pub target: Durability,
    /// Segments fewer than `k` of whose shards any server holds.
    pub lost_segments: Vec<usize>,
    /// Segments whose margin is below the target.
    pub below_target: Vec<usize>,
    /// The odds of a rebuild with each server up with probability `availability`.
    pub rebuild: RebuildOdds,
    /// Each segment's shards: where they are and what that leaves (empty when no server has
    /// the manifest).
    pub segment_holdings: Vec<SegmentHolding>,
}

/// One segment of an audited pack.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentHolding {
    /// Distinct shards held on any server: the segment can be rebuilt when this is at least
    /// `k`.
    pub distinct: usize,
    /// Shards on each server, in [`AuditReport::servers`] order.
    pub per_server: Vec<usize>,
    /// Servers that may be lost, whichever they are, with the segment still rebuildable;
    /// `None` when it cannot be rebuilt now.
    pub margin: Option<usize>,
}

impl PackAudit {
    /// Whether the pack meets its target.
    pub fn meets_target(&self) -> bool {
        self.survives
            .is_some_and(|s| s >= self.target.servers_lost())
    }
}

/// What a repair did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RepairReport {
    /// The audit before the repair.
    pub before: AuditReport,
    /// What the servers hold after it (the audit's map with the uploads that succeeded).
    pub after: AuditReport,
    /// Segments rebuilt and re-spread.
    pub segments_repaired: usize,
    /// Shards uploaded.
    pub shards_uploaded: usize,
    /// Manifests uploaded to servers that lacked them.
    pub manifests_uploaded: usize,
    /// Bytes downloaded (shards to rebuild from) and uploaded.
    pub bytes_down: u64,
    /// Bytes uploaded.
    pub bytes_up: u64,
    /// What failed on the way (the repair goes on past it; run it again).
    pub errors: Vec<String>,
}

/// A blob a server holds of a repository: a pack's manifest, or one of its shards — what a
/// storage order asks the server to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldBlob {
    /// Its hash.
    pub hash: BlobHash,
    /// Its length in bytes, as the manifest gives it (a shard) or as fetched (a manifest).
    pub len: u64,
    /// The pack it belongs to: its manifest's hash.
    pub pack: BlobHash,
}

/// One pack's state during an audit.
pub(super) struct Audited {
    pub(super) manifest_hash: BlobHash,
    pub(super) part: Option<String>,
    /// The manifest as stored (sealed when private) and as read.
    pub(super) manifest: Option<(Bytes, ShardManifest)>,
    pub(super) holds_manifest: Vec<bool>,
    pub(super) map: Option<ShardMap>,
}

impl Repository {
    /// Audits every pack reachable from the refs of `repo`'s newest state: which shards each
    /// server still holds, and what that guarantees. Changes nothing, here or there.
    ///
    /// # Errors
    /// [`Error::Network`] when no valid state is found; [`Error::NeedsKey`] for a private
    /// repository without a reader's key.
    pub async fn audit(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        options: AuditOptions<'_>,
    ) -> Result<AuditReport, Error> {
        let servers = audit_servers(transport);
        let (audited, unreachable) = self.survey(transport, repo, &servers, options).await?;
        report(&servers, &unreachable, &audited, options)
    }

    /// The blobs `server` holds of the packs reachable from `repo`'s newest state: each pack's
    /// manifest and the shards of it the server answers it has (HEAD requests, as an audit
    /// asks), manifests first within each pack. Nothing is downloaded but the manifests.
    ///
    /// # Errors
    /// As [`audit`](Self::audit); [`Error::Network`] when `server` does not answer.
    pub async fn held_by(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        server: &str,
        options: AuditOptions<'_>,
    ) -> Result<Vec<HeldBlob>, Error> {
        let servers = [server.to_owned()];
        let (audited, unreachable) = self.survey(transport, repo, &servers, options).await?;
        if !unreachable.is_empty() {
            return Err(Error::Network(format!("{server} did not answer")));
        }
        let mut held = Vec::new();
        for pack in &audited {
            let (Some((stored, manifest)), Some(map)) = (&pack.manifest, &pack.map) else {
                continue;
            };
            if pack.holds_manifest[0] {
                held.push(HeldBlob {
                    hash: pack.manifest_hash,
                    len: stored.len() as u64,
                    pack: pack.manifest_hash,
                });
            }
            let code = codec_for(&manifest.codec()).map_err(Error::BadShards)?;
            for (segment, shard, hash) in manifest.all_shard_hashes() {
                if map.holds(segment, shard, 0) {
                    let segment_len = usize::try_from(manifest.segment_len(segment))
                        .map_err(|_| Error::Corrupt("a segment longer than memory".to_owned()))?;
                    held.push(HeldBlob {
                        hash: *hash,
                        len: code.shard_len(segment_len) as u64,
                        pack: pack.manifest_hash,
                    });
                }
            }
        }
        Ok(held)
    }

    /// The packs reachable from `repo`'s refs, each with its manifest and which servers hold
    /// which of its shards; and the servers that did not answer.
    pub(super) async fn survey(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        servers: &[String],
        options: AuditOptions<'_>,
    ) -> Result<(Vec<Audited>, Vec<String>), Error> {
        if servers.len() > ShardMap::MAX_SERVERS {
            return Err(Error::Invalid(format!(
                "an audit covers at most {} servers, not {}",
                ShardMap::MAX_SERVERS,
                servers.len()
            )));
        }
        let state::Fetched { state, writers, .. } = self.fetched_state(transport, repo).await?;
        let keys = open_keys(repo, state.body(), &options.fetch)?;
        let listed = self
            .list_commits(transport, repo, keys.as_ref(), &writers)
            .await?;
        let packs = reachable_packs(&listed, state.body().refs.values());
        let parallel = options.fetch.parallel.max(1);
        let mut unreachable: BTreeSet<String> = BTreeSet::new();
        let mut audited = Vec::new();
        for (manifest_hash, epoch, part) in packs {
            // Which servers hold the manifest, then the manifest from one of them.
            let asked = ask(transport, servers, &unreachable, &manifest_hash, parallel).await;
            let mut holds_manifest = vec![false; servers.len()];
            for (i, answer) in asked {
                match answer {
                    Some(held) => holds_manifest[i] = held,
                    None => {
                        unreachable.insert(servers[i].clone());
                    }
                }
            }
            let sealed = keys.as_ref().map(|k| (k, epoch));
            let holders: Vec<String> = servers
                .iter()
                .zip(&holds_manifest)
                .filter(|(_, held)| **held)
                .map(|(s, _)| s.clone())
                .collect();
            let manifest = match fetch_manifest(transport, &holders, &manifest_hash, sealed).await {
                Ok(found) => Some(found),
                Err(e) => {
                    tracing::warn!(pack = %manifest_hash, error = %e, "no good copy of a pack manifest");
                    None
                }
            };
            let map = match &manifest {
                Some((_, m)) => {
                    Some(shard_map(transport, servers, &mut unreachable, m, parallel).await?)
                }
                None => None,
            };
            audited.push(Audited {
                manifest_hash,
                part,
                manifest,
                holds_manifest,
                map,
            });
        }
        Ok((audited, unreachable.into_iter().collect()))
    }
}

/// The servers an audit asks: the push servers, then the fetch servers not among them.
pub(super) fn audit_servers(transport: &dyn Transport) -> Vec<String> {
    let mut servers = transport.push_servers();
    for s in transport.fetch_servers() {
        if !servers.contains(&s) {
            servers.push(s);
        }
    }
    servers
}

/// The packs of the commits reachable from `tips` (published commit names), each once, with
/// the key epoch it is sealed in and its part.
pub(super) fn reachable_packs<'a>(
    listed: &[Listed],
    tips: impl Iterator<Item = &'a ObjectId>,
) -> Vec<(BlobHash, u32, Option<String>)> {
    let by_published: HashMap<ObjectId, &Listed> =
        listed.iter().map(|l| (l.published, l)).collect();
    let by_id: HashMap<ObjectId, &Listed> = listed.iter().map(|l| (l.id, l)).collect();
    let mut stack: Vec<&Listed> = tips.filter_map(|t| by_published.get(t).copied()).collect();
    let mut seen = BTreeSet::new();
    let mut packs = Vec::new();
    let mut have = BTreeSet::new();
    while let Some(l) = stack.pop() {
        if !seen.insert(l.id) {
            continue;
        }
        for p in &l.packs {
            if have.insert(*p) {
                packs.push((*p, l.epoch, l.parts.get(p).cloned()));
            }
        }
        stack.extend(l.parents.iter().filter_map(|p| by_id.get(p).copied()));
    }
    packs
}

/// Asks each server not known to be unreachable whether it holds `hash`: `Some(held)`, or
/// `None` when it did not answer.
async fn ask(
    transport: &dyn Transport,
    servers: &[String],
    unreachable: &BTreeSet<String>,
    hash: &BlobHash,
    parallel: usize,
) -> Vec<(usize, Option<bool>)> {
    stream::iter(servers.iter().enumerate())
        .filter(|(_, s)| std::future::ready(!unreachable.contains(*s)))
        .map(|(i, s)| async move { (i, answer(transport.has_blob(s, hash).await)) })
        .buffer_unordered(parallel)
        .collect()
        .await
}

/// A HEAD's answer: held or not, or `None` for a server that did not answer.
fn answer(result: Result<bool, NetError>) -> Option<bool> {
    match result {
        Ok(held) => Some(held),
        Err(NetError::NotFound { .. }) => Some(false),
        Err(_) => None,
    }
}

/// Which servers hold each shard of the pack `manifest` describes.
async fn shard_map(
    transport: &dyn Transport,
    servers: &[String],
    unreachable: &mut BTreeSet<String>,
    manifest: &ShardManifest,
    parallel: usize,
) -> Result<ShardMap, Error> {
    let spec = manifest.codec();
    let mut map = ShardMap::new(servers.len(), manifest.segment_count(), spec.k, spec.n)?;
    let asks: Vec<(usize, usize, usize, BlobHash)> = manifest
        .all_shard_hashes()
        .flat_map(|(segment, shard, hash)| {
            servers
                .iter()
                .enumerate()
                .filter(|(_, s)| !unreachable.contains(*s))
                .map(move |(i, _)| (segment, shard, i, *hash))
        })
        .collect();
    let down = std::sync::Mutex::new(BTreeSet::new());
    let answers: Vec<_> = stream::iter(asks)
        .map(|(segment, shard, server, hash)| {
            let down = &down;
            async move {
                // A server that stopped answering is not asked again.
                if down
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .contains(&server)
                {
                    return (segment, shard, server, None);
                }
                let got = answer(transport.has_blob(&servers[server], &hash).await);
                if got.is_none() {
                    down.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(server);
                }
                (segment, shard, server, got)
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    for (segment, shard, server, got) in answers {
        if got == Some(true) {
            map.set(segment, shard, server);
        }
    }
    for server in down.into_inner().unwrap_or_default() {
        unreachable.insert(servers[server].clone());
    }
    Ok(map)
}

/// The report of `audited` packs.
pub(super) fn report(
    servers: &[String],
    unreachable: &[String],
    audited: &[Audited],
    options: AuditOptions<'_>,
) -> Result<AuditReport, Error> {
    let mut packs = Vec::new();
    for pack in audited {
        let (code, segments) = match &pack.manifest {
            Some((_, m)) => ((m.codec().k, m.codec().n), m.segment_count()),
            None => ((0, 0), 0),
        };
        let target = match (options.durability, &pack.manifest) {
            (Some(d), _) => d,
            (None, Some((_, m))) => Durability::best(&Placement::new(servers.len(), &m.codec())?),
            (None, None) => Durability::survive(0),
        };
        let stored = pack.holds_manifest.iter().filter(|h| **h).count();
        let segment_holdings: Vec<SegmentHolding> = match &pack.map {
            Some(map) => (0..map.segments())
                .map(|s| SegmentHolding {
                    distinct: map.distinct(s),
                    per_server: (0..servers.len()).map(|i| map.count(s, i)).collect(),
                    margin: map.segment_margin(s),
                })
                .collect(),
            None => Vec::new(),
        };
        let (survives, lost, below, rebuild, holdings) = match &pack.map {
            Some(map) => {
                let survives = map.margin().map(|m| m.min(stored.saturating_sub(1)));
                let below: Vec<usize> = (0..map.segments())
                    .filter(|&s| {
                        map.segment_margin(s)
                            .is_none_or(|m| m < target.servers_lost())
                    })
                    .collect();
                let rebuild = map.rebuild_odds(options.availability)?;
                let holdings: Vec<usize> = (0..servers.len()).map(|i| map.on_server(i)).collect();
                (survives, map.lost_segments(), below, rebuild, holdings)
            }
            None => (
                None,
                Vec::new(),
                Vec::new(),
                RebuildOdds {
                    probability: 0.0,
                    failure: 1.0,
                    exact: true,
                },
                vec![0; servers.len()],
            ),
        };
        packs.push(PackAudit {
            manifest: pack.manifest_hash,
            part: pack.part.clone(),
            code,
            segments,
            servers: servers
                .iter()
                .enumerate()
                .map(|(i, s)| ServerHolding {
                    server: s.clone(),
                    shards: holdings[i],
                    manifest: pack.holds_manifest[i],
                })
                .collect(),
            survives,
            target,
            lost_segments: lost,
            below_target: below,
            rebuild,
            segment_holdings,
        });
    }
    Ok(AuditReport {
        servers: servers.to_vec(),
        unreachable: unreachable.to_vec(),
        packs,
    })
}
