//! Remote garbage collection: the blobs an owner's key holds on its push servers (BUD-12 list)
//! that no repository of that owner references any more — no pack reachable from the refs of
//! any of its repositories' newest states — are deleted (BUD-12, the owner's own claim only;
//! the server deletes a blob when no claim is left), once older than a grace period.
//!
//! What is referenced is worked out before anything is deleted, from every repository the
//! relays hold for the owner; anything that cannot be worked out (a private repository without
//! its key, a manifest no server has) stops the collection with nothing deleted. The grace
//! period protects a push in flight: its shards are uploaded before its state names them.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agigit_event::nostr::prelude::{Filter, Kind, PublicKey};
use agigit_event::{RepoCoordinate, RepoId};
use agigit_hash::BlobHash;
use agigit_net::Transport;

use super::audit::reachable_packs;
use super::packs::fetch_manifest;
use super::state::open_keys;
use super::*;
use crate::error::Error;
use crate::repository::Repository;

/// How to collect.
#[derive(Clone, Copy, Debug)]
pub struct GcOptions<'a> {
    /// The secret key that opens the owner's private repositories (each must open, or nothing
    /// is deleted).
    pub fetch: FetchOptions<'a>,
    /// Blobs uploaded more recently than this are kept whatever references them.
    pub grace: Duration,
    /// Say what would be deleted; delete nothing.
    pub dry_run: bool,
}

impl Default for GcOptions<'_> {
    fn default() -> Self {
        Self {
            fetch: FetchOptions::default(),
            grace: crate::config::defaults::GC_GRACE,
            dry_run: false,
        }
    }
}

/// What a collection did (or, dry, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// The owner's repositories whose references were kept.
    pub repositories: Vec<String>,
    /// Blobs they reference (manifests and shards).
    pub referenced: usize,
    /// Per push server.
    pub servers: Vec<ServerGc>,
}

/// One server's collection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerGc {
    /// The server.
    pub server: String,
    /// Blobs it lists for the owner.
    pub listed: usize,
    /// Kept: referenced.
    pub referenced: usize,
    /// Kept: unreferenced, but uploaded within the grace period.
    pub young: usize,
    /// Deleted (dry run: to delete).
    pub deleted: usize,
    /// Their bytes, as the server lists them.
    pub bytes: u64,
    /// What failed (listing, deletions).
    pub errors: Vec<String>,
}

impl Repository {
    /// Deletes the blobs `owner`'s key holds on the push servers that no repository of
    /// `owner` references any more, once older than `options.grace` (see the module's
    /// documentation). `transport` must sign as `owner` (only its own claims can go).
    ///
    /// # Errors
    /// [`Error::Network`] when the owner's repositories cannot be listed or a referenced pack's
    /// manifest is on no server; [`Error::NeedsKey`] / [`Error::NotAReader`] for a private
    /// repository the key does not open. Nothing is deleted then. Failures of single listings
    /// or deletions are in the report.
    pub async fn gc_remote(
        &self,
        transport: &dyn Transport,
        owner: &PublicKey,
        options: GcOptions<'_>,
    ) -> Result<GcReport, Error> {
        // Every repository the relays hold for the owner.
        let events = transport
            .query(&[Filter::new()
                .kind(Kind::Custom(agigit_event::kinds::REPO_STATE))
                .author(*owner)])
            .await
            .map_err(net)?;
        let mut ids: BTreeSet<String> = events
            .iter()
            .filter(|e| e.pubkey == *owner)
            .filter_map(|e| e.tags.identifier().map(|d| d.to_string()))
            .collect();
        // The owner's repositories this clone has seen must be among them: relays that hide a
        // repository's state must not get its blobs deleted.
        for seen in self.accepted_coordinates()? {
            if seen.owner == *owner {
                ids.insert(seen.id.as_str().to_owned());
            }
        }
        let servers = transport.fetch_servers();
        let mut referenced: HashSet<BlobHash> = HashSet::new();
        let mut report = GcReport::default();
        for id in ids {
            let Ok(repo_id) = RepoId::new(id) else {
                continue;
            };
            let coordinate = RepoCoordinate::new(*owner, repo_id);
            let remote = self.remote_state(transport, &coordinate, false).await?;
            let state = remote.current.clone();
            // Never collect against a state older than one this clone accepted (a relay
            // replaying an old state names fewer packs), nor without one it has seen.
            self.check_not_older(&coordinate, state.as_ref(), &remote.writers, false)?;
            let Some(state) = state else {
                continue;
            };
            let keys = open_keys(&coordinate, state.body(), &options.fetch)?;
            let listed = self
                .list_commits(transport, &coordinate, keys.as_ref(), &remote.writers)
                .await?;
            for (manifest, epoch, _) in reachable_packs(&listed, state.body().refs.values()) {
                let sealed = keys.as_ref().map(|k| (k, epoch));
                let (_, m) = fetch_manifest(transport, &servers, &manifest, sealed)
                    .await
                    .map_err(|e| {
                        Error::Network(format!(
                            "{coordinate} references pack {manifest}, whose shards cannot be told without its manifest ({e}); nothing was deleted"
                        ))
                    })?;
                referenced.insert(manifest);
                referenced.extend(m.all_shard_hashes().map(|(_, _, h)| *h));
            }
            report.repositories.push(coordinate.to_string());
        }
        report.referenced = referenced.len();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let cutoff = now.saturating_sub(options.grace.as_secs());
        for server in transport.push_servers() {
            let mut out = ServerGc {
                server: server.clone(),
                ..ServerGc::default()
            };
            match transport.list_blobs(&server).await {
                Ok(blobs) => {
                    out.listed = blobs.len();
                    for blob in blobs {
                        if referenced.contains(&blob.hash) {
                            out.referenced += 1;
                        } else if blob.uploaded > cutoff {
                            out.young += 1;
                        } else if options.dry_run {
                            out.deleted += 1;
                            out.bytes += blob.size;
                        } else {
                            match transport.delete_blob(&server, &blob.hash).await {
                                Ok(()) => {
                                    out.deleted += 1;
                                    out.bytes += blob.size;
                                }
                                Err(e) => out.errors.push(format!("{}: {e}", blob.hash)),
                            }
                        }
                    }
                }
                Err(e) => out.errors.push(e.to_string()),
            }
            report.servers.push(out);
        }
        Ok(report)
    }
}
