//! Push: the objects the remote lacks, as packs (one per part), sealed when private, coded and
//! placed by [`super::transfer`], then the commit events and the state event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use agigit_dag::refs::{RefKey, RefName};
use agigit_dag::{FindExt, ObjectId};
use agigit_event::nostr::prelude::Timestamp;
use agigit_event::{CommitEvent, RepoCoordinate, RepoId, RepoState, Signed, Signer};
use agigit_hash::BlobHash;
use agigit_net::{NetError, Transport};
use agigit_shard::{
    Durability, EncodedSegment, ErasureCode, Placement, SegmentEncoder, ShardManifest, codec_for,
};
use bytes::Bytes;
use futures_util::{StreamExt as _, stream};

use super::directory::{RefDirectory, TagEntry};
use super::pending::{PendingPack, read_at};
use super::transfer::{Book, ShardUpload, cpu, tracing_failure};
use super::*;
use crate::error::Error;
use crate::pack;
use crate::private::{PrivateKeys, Sealed};
use crate::repository::Repository;

mod send;

impl Repository {
    /// Pushes `branch` to the repository `repo_id` owned by `signer`, through `transport`.
    ///
    /// # Errors
    /// As [`push_to`](Self::push_to).
    pub async fn push<S: Signer + Sync + ?Sized>(
        &self,
        transport: &dyn Transport,
        signer: &S,
        repo_id: &RepoId,
        branch: &str,
        options: PushOptions<'_>,
    ) -> Result<PushReport, crate::push::Error> {
        let coordinate = RepoCoordinate::new(signer.public_key(), repo_id.clone());
        self.push_to(transport, signer, &coordinate, branch, options)
            .await
    }

    /// Pushes `branch` to `repo`, through `transport`, as `signer`: the repository's owner, or
    /// a maintainer its owner's newest announcement lists (whose commit and state events then
    /// move the owner's repository; `docs/format.md` §2.2).
    ///
    /// # Errors
    /// [`Error::NotAWriter`] when `signer` is neither;
    /// [`Error::Network`] when fewer than `min_accepted` servers or relays take a step (nothing
    /// after that step is published: push again to resume); [`Error::NeedsKey`] for a private
    /// repository without its keys; [`Error::RemoteAhead`] when the remote branch has commits
    /// this repository lacks; [`Error::Invalid`] when the remote's privacy differs from the
    /// local one; store errors.
    pub async fn push_to<S: Signer + Sync + ?Sized>(
        &self,
        transport: &dyn Transport,
        signer: &S,
        coordinate: &RepoCoordinate,
        branch: &str,
        options: PushOptions<'_>,
    ) -> Result<PushReport, crate::push::Error> {
        let repo_id = &coordinate.id;
        let keys = options.keys;
        if keys.is_none() && self.is_private()? {
            return Err(Error::NeedsKey(
                "this repository is private: push with its keys (unwrapped with your secret key), so nothing leaves the machine unencrypted".to_owned(),
            ).into());
        }
        if keys.is_some() && !self.is_private()? {
            return Err(Error::Invalid(
                "keys given for a public repository: make it private first".to_owned(),
            )
            .into());
        }
        let name = RefName::branch(branch).map_err(Error::from)?;
        let tip = self
            .refs()
            .resolve(&RefKey::Name(name.clone()))?
            .ok_or_else(|| Error::UnknownRevision(branch.to_owned()))?;
        let tracking = RefName::remote("origin", branch).map_err(Error::from)?;
        let mut report = PushReport {
            tip: Some(tip),
            private: keys.is_some(),
            ..PushReport::default()
        };
        let publish_name = |id: &ObjectId| keys.map_or(*id, |k| k.commit_name(id));
        // The durability every pack must have, and the relays each event must reach so that
        // the servers left after losing that many still hold it.
        let servers = transport.push_servers();
        if servers.is_empty() {
            return Err(net(NetError::NoServers { role: "push" }).into());
        }
        let target = match options.durability {
            Some(d) => d,
            None => Durability::best(
                &Placement::new(servers.len(), &options.code.spec()).map_err(Error::from)?,
            ),
        };
        if target.servers_lost() >= servers.len() {
            return Err(Error::Invalid(format!(
                "a push to {} servers cannot survive {} of them lost: at least one must be left",
                servers.len(),
                target.servers_lost()
            ))
            .into());
        }
        // A target the code cannot give on these servers fails before anything is sent, naming
        // the code that would.
        let spec = options.code.spec();
        let gives = |n: usize| {
            let spec = agigit_shard::CodecSpec { n, ..spec };
            Placement::new(servers.len(), &spec).map_or(0, |p| Durability::best(&p).servers_lost())
        };
        if gives(spec.n) < target.servers_lost() {
            let enough = (spec.n + 1..=agigit_shard::MAX_SHARDS)
                .find(|&n| gives(n) >= target.servers_lost())
                .map_or_else(String::new, |n| {
                    format!("; {} of {n} would (`[push] n = {n}`)", spec.k)
                });
            return Err(Error::Invalid(format!(
                "{} of {} over {} servers survives at most {} of them lost, not {}{enough}",
                spec.k,
                spec.n,
                servers.len(),
                gives(spec.n),
                target.servers_lost()
            ))
            .into());
        }
        report.durability = Some(target);
        let min_accepted = if options.accept_weaker {
            options.min_accepted
        } else {
            options.min_accepted.max(target.servers_lost() + 1)
        };
        // What the relays say the branch is now: never move it backwards or sideways.
        let remote = self.remote_state(transport, coordinate, true).await?;
        if !remote.writers.contains(&signer.public_key()) {
            return Err(Error::NotAWriter {
                repo: coordinate.to_string(),
            }
            .into());
        }
        let current = remote.current.clone();
        // Build on nothing older than what this clone accepted: a relay replaying an old state
        // (or having lost it) must not make this push drop the branches added since.
        let accepted = self.check_not_older(
            coordinate,
            current.as_ref(),
            &remote.writers,
            signer.public_key() == coordinate.owner,
        )?;
        let after_secs = accepted.map_or(0, |a| a.at);
        if let Some(state) = &current {
            match (state.body().keys.is_some(), keys.is_some()) {
                (true, false) => {
                    return Err(Error::Invalid(format!(
                        "{coordinate} is private on the relays and this repository is public: push it under another repository id"
                    )).into());
                }
                (false, true) if !state.body().refs.is_empty() => {
                    return Err(Error::Invalid(format!(
                        "{coordinate} is public on the relays and this repository is private: push it under another repository id"
                    )).into());
                }
                _ => {}
            }
        }
        // The remote branch, under its plain name, or (private) under an opaque name of any
        // key epoch.
        let published_refs = match keys {
            Some(k) => k.branch_refs(branch)?,
            None => vec![name.clone()],
        };
        let remote_tip = current.as_ref().and_then(|s| {
            published_refs
                .iter()
                .find_map(|r| s.body().refs.get(r).copied())
        });
        let is_published_as = |id: &ObjectId, r: &ObjectId| match keys {
            Some(k) => k.is_name_of(id, r),
            None => id == r,
        };
        // A private repository's branch and tag names travel sealed in its state: the
        // directory as the remote has it, which this push updates.
        let directory = match (keys, &current) {
            (Some(k), Some(state)) => Some(RefDirectory::of(state.body(), k).unwrap_or_else(|e| {
                // Written by a writer whose directory does not open: this push starts a new
                // one (the branches it lacks are listed again as they are pushed).
                tracing::warn!(%coordinate, "the state's ref directory: {e}; starting a new one");
                RefDirectory::default()
            })),
            (Some(_), None) => Some(RefDirectory::default()),
            (None, _) => None,
        };
        // The remote's tags: refs in the clear, or the directory's.
        let remote_tags: BTreeMap<String, (ObjectId, Option<String>)> = match &directory {
            Some(d) => d
                .tags
                .iter()
                .map(|(name, t)| (name.clone(), (t.commit, t.note.clone())))
                .collect(),
            None => current
                .as_ref()
                .map(|s| {
                    let body = s.body();
                    body.refs
                        .iter()
                        .filter_map(|(name, id)| {
                            let short = name.as_str().strip_prefix("refs/tags/")?;
                            Some((short.to_owned(), (*id, body.notes.get(name).cloned())))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        // Tags on the pushed history go with the state; a tag the remote has elsewhere is kept
        // there, and said so.
        let mut tags: Vec<(RefName, ObjectId, Option<String>)> = Vec::new();
        for (short, tag) in self.tags()? {
            let name = RefName::new(format!("refs/tags/{short}")).map_err(Error::from)?;
            match remote_tags.get(&short) {
                Some((id, note)) if *id == tag.commit && *note == tag.message => {}
                Some(_) => report.tags_rejected.push(short),
                None if tag.commit == tip
                    || agigit_dag::is_ancestor(self.store(), &tag.commit, &tip)? =>
                {
                    report.tags.push(short);
                    tags.push((name, tag.commit, tag.message));
                }
                None => {}
            }
        }
        // A private state without this branch in its directory (published before directories
        // existed, or by a client that left it) gets it with this push.
        let unlisted = directory
            .as_ref()
            .is_some_and(|d| d.branches.get(branch) != Some(&tip));
        // What the remote has: the history of its tip, which must be part of the local one
        // (found by its published name), and, for a fork, the foundation's objects (fetched from
        // the foundation's own repository). Not the tracking ref: it may come from another
        // repository or from relays that lost the data since.
        let mut have: Vec<ObjectId> = Vec::new();
        if let Some(r) = remote_tip {
            if is_published_as(&tip, &r) {
                // The data is there; a private repository whose readers changed still needs a
                // new state event to carry the new envelope.
                let envelope = keys.map(PrivateKeys::envelope_bytes);
                let stale = current.as_ref().is_some_and(|s| s.body().keys != envelope);
                if stale || unlisted || !tags.is_empty() {
                    let published = publish_state(
                        transport,
                        signer,
                        current.as_ref(),
                        repo_id,
                        StateUpdate {
                            branch,
                            tip,
                            published: r,
                            tags: &tags,
                            directory,
                            after_secs,
                        },
                        keys,
                        min_accepted,
                    )
                    .await?;
                    self.record_state(coordinate, &published)?;
                } else {
                    report.up_to_date = true;
                }
                self.set_ref(tracking, tip)?;
                return Ok(report);
            }
            let history =
                agigit_dag::log(self.store(), &[tip], agigit_dag::Order::Topological, false)?;
            let Some(remote_commit) = history.into_iter().find(|id| is_published_as(id, &r)) else {
                return Err(Error::RemoteAhead {
                    branch: branch.to_owned(),
                }
                .into());
            };
            have.push(remote_commit);
        }
        let store = self.store();
        if let Some(base) = self.fork_base()? {
            have.push(base.commit);
        }
        // One pack per part (and one for the commits and the trees above the parts), so that a
        // reader can fetch only the parts it wants.
        // The walk reads (and checks) every new object: on the CPU pool, not this async thread.
        let groups = {
            let store = self.shared_store();
            cpu(move || pack::objects_by_part(store.as_ref(), &[tip], &have)).await??
        };
        let new_commits: Vec<ObjectId> = groups
            .iter()
            .filter(|(part, _)| part.is_none())
            .flat_map(|(_, objects)| objects.iter())
            .filter(|(k, _)| *k == agigit_dag::Kind::Commit)
            .map(|(_, id)| *id)
            .collect();
        let mut packs = Vec::new();
        let mut pack_parts = BTreeMap::new();
        let mut pending = Vec::new();
        let to = Destination {
            transport,
            servers: &servers,
            options,
            target,
        };
        for (part, objects) in &groups {
            let manifest = self
                .send_pack(
                    &to,
                    (part.map(|p| p.name()), objects),
                    &mut report,
                    &mut pending,
                )
                .await?;
            packs.push(manifest);
            if let Some(part) = part {
                pack_parts.insert(manifest, part.name().to_owned());
            }
        }
        report.manifest = packs.first().copied();

        // 3. Commit events, oldest first; 4. the state event.
        // Newer than the state it replaces, even within the same second.
        let now = after(current.as_ref(), after_secs);
        for id in new_commits.iter().rev() {
            let commit = store.find_commit(id)?;
            let mut buf = Vec::new();
            let body = store.find(id, &mut buf)?.data.to_vec();
            let published = publish_name(id);
            let payload = match keys {
                Some(k) => k.seal(Sealed::Commit(&published), &body)?,
                None => body,
            };
            let event = CommitEvent {
                repo: coordinate.clone(),
                commit: published,
                parents: commit.parents.iter().map(publish_name).collect(),
                packs: packs.clone(),
                pack_parts: pack_parts.clone(),
                encryption: keys.map(PrivateKeys::scheme),
                payload,
            };
            let signed = Signed::sign(event, signer, now).map_err(Error::from)?;
            transport
                .publish(signed.event(), min_accepted)
                .await
                .map_err(net)?;
        }
        let published = publish_state(
            transport,
            signer,
            current.as_ref(),
            repo_id,
            StateUpdate {
                branch,
                tip,
                published: publish_name(&tip),
                tags: &tags,
                directory,
                after_secs,
            },
            keys,
            min_accepted,
        )
        .await?;
        self.record_state(coordinate, &published)?;
        self.set_ref(tracking, tip)?;
        self.finish_pending(&pending);
        Ok(report)
    }
}

/// A time strictly after `current`'s and `after_secs` (and not before now): a state event must
/// be newer than the one it replaces, even within the same second.
fn after(current: Option<&Signed<RepoState>>, after_secs: u64) -> Timestamp {
    Timestamp::from_secs(
        current
            .map_or(0, |s| s.created_at().as_secs().saturating_add(1))
            .max(after_secs.saturating_add(1))
            .max(Timestamp::now().as_secs()),
    )
}

/// Where and how a push sends its packs.
struct Destination<'a> {
    transport: &'a dyn Transport,
    servers: &'a [String],
    options: PushOptions<'a>,
    /// The durability every pack must have.
    target: Durability,
}

/// What a push changes in the state: a branch at its published commit name, and tags.
struct StateUpdate<'a> {
    branch: &'a str,
    /// The branch's commit.
    tip: ObjectId,
    /// Its name in the state: `tip`, or its opaque name when private.
    published: ObjectId,
    tags: &'a [(RefName, ObjectId, Option<String>)],
    /// A private repository's ref directory as the remote has it (`None` when public).
    directory: Option<RefDirectory>,
    /// The state is dated after this (the state this clone accepted, which may be a removed
    /// maintainer's newer than `current`).
    after_secs: u64,
}

/// Publishes the state that replaces `current`: `branch` at its published commit name (under an
/// opaque branch name for a private repository, replacing those of earlier key epochs), `HEAD`
/// on it when the state had no default branch yet, `tags` with their notes (in the clear, or in
/// the sealed directory when private), and (private) the keyring of `keys`.
async fn publish_state<S: Signer + Sync + ?Sized>(
    transport: &dyn Transport,
    signer: &S,
    current: Option<&Signed<RepoState>>,
    repo_id: &RepoId,
    update: StateUpdate<'_>,
    keys: Option<&PrivateKeys>,
    min_accepted: usize,
) -> Result<Signed<RepoState>, Error> {
    let StateUpdate {
        branch,
        tip,
        published,
        tags,
        directory,
        after_secs,
    } = update;
    let mut state = current.map_or_else(|| RepoState::new(repo_id.clone()), |s| s.body().clone());
    let name = match keys {
        Some(k) => {
            for old in k.branch_refs(branch)? {
                state.refs.remove(&old);
            }
            k.branch_ref(branch)?
        }
        None => RefName::branch(branch)?,
    };
    state.refs.insert(name.clone(), published);
    match (keys, directory) {
        (Some(k), Some(mut directory)) => {
            directory.branches.insert(branch.to_owned(), tip);
            for (tag, id, note) in tags {
                let short = &tag.as_str()["refs/tags/".len()..];
                directory.tags.insert(
                    short.to_owned(),
                    TagEntry {
                        commit: *id,
                        note: note.clone(),
                    },
                );
            }
            state.sealed_refs = Some(directory.seal(k, repo_id)?);
        }
        _ => {
            for (tag, id, note) in tags {
                state.refs.insert(tag.clone(), *id);
                match note {
                    Some(n) => state.notes.insert(tag.clone(), n.clone()),
                    None => state.notes.remove(tag),
                };
            }
        }
    }
    // `HEAD` names the repository's default branch: set by the first push, kept after (as a
    // git remote's `HEAD` is), and moved only when the branch it named is gone.
    if state
        .head
        .as_ref()
        .is_none_or(|h| !state.refs.contains_key(h))
    {
        state.head = Some(name);
    }
    state.keys = keys.map(PrivateKeys::envelope_bytes);
    state.prev = current.map(Signed::id);
    let signed = Signed::sign(state, signer, after(current, after_secs))?;
    transport
        .publish(signed.event(), min_accepted)
        .await
        .map_err(net)?;
    Ok(signed)
}
