//! Push and pull through a [`Transport`] (DESIGN §3): data first, pointers last.
//!
//! Push: the objects the remote lacks → one pack → erasure-coded segments → each shard a blob on
//! the server the placement names → the pack manifest (a blob) on every push server → one
//! commit event per new commit → the repository state event. Each step needs at least `m`
//! acceptances before the next starts, so a state event never points at data that is missing.
//!
//! Pull: the newest valid state event signed by the owner → the commit events of the repository
//! → for each pack the local store lacks, the manifest from any server, then for each segment
//! shards from any servers until `k` with the right hashes are in → rebuild → every object
//! checked against its id → the remote-tracking ref, then the branch (fast-forward only).
//!
//! Public repositories only so far: private ones (encrypted before sharding) come next.

use std::collections::{BTreeMap, HashMap};

use agigit_dag::refs::{Expected, RefKey, RefName, Target, Transaction};
use agigit_dag::{Find, FindExt, ForkBase, ObjectId, is_ancestor};
use agigit_event::nostr::prelude::{Filter, Kind, SingleLetterTag, Timestamp};
use agigit_event::{CommitEvent, RepoCoordinate, RepoId, RepoState, Signed, Signer, resolve_state};
use agigit_hash::BlobHash;
use agigit_net::{NetError, Transport};
use agigit_shard::{ErasureCode, Placement, ShardManifest, StreamOptions, codec_for};
use bytes::Bytes;

use crate::error::Error;
use crate::pack;
use crate::repo::Repository;

/// How to push.
#[derive(Clone, Copy)]
pub struct PushOptions<'a> {
    /// The erasure code every segment is coded with.
    pub code: &'a dyn ErasureCode,
    /// Bytes per segment.
    pub segment_size: usize,
    /// Acceptances each event and each shard needs (relays, servers).
    pub min_accepted: usize,
}

impl std::fmt::Debug for PushOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("code", &self.code.spec())
            .field("segment_size", &self.segment_size)
            .field("min_accepted", &self.min_accepted)
            .finish()
    }
}

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    /// The commit pushed.
    pub tip: Option<ObjectId>,
    /// Objects sent.
    pub objects: usize,
    /// The pack's size.
    pub pack_bytes: u64,
    /// Shards uploaded (each once, to its server).
    pub shards: usize,
    /// Bytes uploaded per server (shards and manifests).
    pub bytes_per_server: BTreeMap<String, u64>,
    /// The pack manifest's blob hash.
    pub manifest: Option<BlobHash>,
    /// Nothing to send: the remote already has the tip.
    pub up_to_date: bool,
}

/// What a pull did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullReport {
    /// The remote branch's commit.
    pub tip: Option<ObjectId>,
    /// Packs fetched.
    pub packs: usize,
    /// Objects received.
    pub objects: usize,
    /// Shards downloaded.
    pub shards: usize,
}

fn net(e: NetError) -> Error {
    Error::Network(e.to_string())
}

fn tag(letter: char) -> Result<SingleLetterTag, Error> {
    SingleLetterTag::from_char(letter).map_err(|e| Error::Invalid(e.to_string()))
}

impl Repository {
    /// Pushes `branch` to the repository `repo_id` owned by `signer`, through `transport`.
    ///
    /// # Errors
    /// [`Error::Network`] when fewer than `min_accepted` servers or relays take a step (nothing
    /// after that step is published); store errors.
    pub async fn push<S: Signer + Sync>(
        &self,
        transport: &dyn Transport,
        signer: &S,
        repo_id: &RepoId,
        branch: &str,
        options: PushOptions<'_>,
    ) -> Result<PushReport, Error> {
        let name = RefName::branch(branch).map_err(|e| Error::Invalid(e.to_string()))?;
        let tip = self
            .refs()
            .resolve(&RefKey::Name(name.clone()))?
            .ok_or_else(|| Error::UnknownRevision(branch.to_owned()))?;
        let tracking =
            RefName::remote("origin", branch).map_err(|e| Error::Invalid(e.to_string()))?;
        let known = self.refs().resolve(&RefKey::Name(tracking.clone()))?;
        let mut report = PushReport {
            tip: Some(tip),
            ..PushReport::default()
        };
        // What the relays say the branch is now: never move it backwards or sideways.
        let coordinate = RepoCoordinate::new(signer.public_key(), repo_id.clone());
        let current = self.remote_state(transport, &coordinate).await?;
        let remote_tip = current
            .as_ref()
            .and_then(|s| s.body().refs.get(&name).copied());
        if let Some(r) = remote_tip {
            if r == tip {
                report.up_to_date = true;
                return Ok(report);
            }
            let known_locally = self.store().contains(&r)?;
            if !known_locally
                || !is_ancestor(self.store(), &r, &tip)
                    .map_err(|e| Error::Invalid(e.to_string()))?
            {
                return Err(Error::Invalid(format!(
                    "the remote branch {branch} has commits this repository does not: pull, merge, then push"
                )));
            }
        }
        let store = self.store();
        // The remote has what it was last sent and, for a fork, the foundation's objects.
        let mut have: Vec<ObjectId> = known.into_iter().collect();
        if let Some(base) = self.fork_base()? {
            have.push(base.commit);
        }
        let objects = pack::objects_between(store, &[tip], &have)?;
        let new_commits: Vec<ObjectId> = objects
            .iter()
            .filter(|(k, _)| *k == agigit_dag::Kind::Commit)
            .map(|(_, id)| *id)
            .collect();
        let pack_bytes = pack::write_pack(store, &objects)?;
        report.objects = objects.len();
        report.pack_bytes = pack_bytes.len() as u64;

        // 1. Shards, placed.
        let servers = transport.push_servers();
        if servers.is_empty() {
            return Err(net(NetError::NoServers { role: "push" }));
        }
        let mut segments = Vec::new();
        let manifest = agigit_shard::encode_stream(
            options.code,
            StreamOptions::new(options.segment_size),
            &pack_bytes[..],
            |segment| {
                segments.push(segment);
                Ok::<(), std::io::Error>(())
            },
        )
        .map_err(|e| Error::Invalid(e.to_string()))?;
        let placement = Placement::new(servers.len(), &manifest.codec())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut uploads = Vec::new();
        for segment in &segments {
            for (i, shard) in segment.shards.iter().enumerate() {
                let server = servers[placement.server_of(segment.index, i)].clone();
                uploads.push((server, Bytes::from(shard.clone())));
            }
        }
        let results = futures_util::future::join_all(
            uploads
                .iter()
                .map(|(server, data)| transport.put_blob(server, data.clone())),
        )
        .await;
        let mut failed_servers = std::collections::BTreeSet::new();
        for ((server, data), result) in uploads.iter().zip(results) {
            match result {
                Ok(_) => {
                    report.shards += 1;
                    *report.bytes_per_server.entry(server.clone()).or_default() +=
                        data.len() as u64;
                }
                Err(e) => {
                    tracing_failure(server, &e);
                    failed_servers.insert(server.clone());
                }
            }
        }
        // Every segment must still be rebuildable from what was stored.
        for segment in &segments {
            let stored = (0..segment.shards.len())
                .filter(|&i| {
                    !failed_servers.contains(&servers[placement.server_of(segment.index, i)])
                })
                .count();
            if stored < manifest.codec().k {
                return Err(Error::Network(format!(
                    "segment {} has only {stored} of the {} shards it needs stored; the servers that failed: {}",
                    segment.index,
                    manifest.codec().k,
                    failed_servers
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }

        // 2. The manifest, on every push server.
        let manifest_bytes = Bytes::from(manifest.encode());
        let manifest_hash = BlobHash::digest(&manifest_bytes);
        let results = futures_util::future::join_all(
            servers
                .iter()
                .map(|s| transport.put_blob(s, manifest_bytes.clone())),
        )
        .await;
        let mut stored = 0;
        for (server, result) in servers.iter().zip(results) {
            match result {
                Ok(_) => {
                    stored += 1;
                    *report.bytes_per_server.entry(server.clone()).or_default() +=
                        manifest_bytes.len() as u64;
                }
                Err(e) => tracing_failure(server, &e),
            }
        }
        if stored < options.min_accepted.min(servers.len()) {
            return Err(Error::Network(format!(
                "the pack manifest is stored on {stored} servers, {} required",
                options.min_accepted
            )));
        }
        report.manifest = Some(manifest_hash);

        // 3. Commit events, oldest first; 4. the state event.
        // Newer than the state it replaces, even within the same second.
        let now = Timestamp::from_secs(
            current
                .as_ref()
                .map_or(0, |s| s.created_at().as_secs().saturating_add(1))
                .max(Timestamp::now().as_secs()),
        );
        for id in new_commits.iter().rev() {
            let commit = store.find_commit(id)?;
            let mut buf = Vec::new();
            let body = store.find(id, &mut buf)?.data.to_vec();
            let event = CommitEvent {
                repo: coordinate.clone(),
                commit: *id,
                parents: commit.parents.clone(),
                packs: vec![manifest_hash],
                encryption: None,
                payload: body,
            };
            let signed =
                Signed::sign(event, signer, now).map_err(|e| Error::Invalid(e.to_string()))?;
            transport
                .publish(signed.event(), options.min_accepted)
                .await
                .map_err(net)?;
        }
        let mut state =
            current.map_or_else(|| RepoState::new(repo_id.clone()), |s| s.body().clone());
        state.refs.insert(name.clone(), tip);
        state.head = Some(name);
        let signed = Signed::sign(state, signer, now).map_err(|e| Error::Invalid(e.to_string()))?;
        transport
            .publish(signed.event(), options.min_accepted)
            .await
            .map_err(net)?;
        self.set_ref(tracking, tip)?;
        Ok(report)
    }

    /// Points `name` at `id`, whatever it held.
    fn set_ref(&self, name: RefName, id: ObjectId) -> Result<(), Error> {
        self.refs().commit(Transaction::new().edit(
            RefKey::Name(name),
            Expected::Any,
            Some(Target::Id(id)),
        ))?;
        Ok(())
    }

    /// Fetches branch `branch` of `repo` into `refs/remotes/origin/<branch>`, then fast-forwards
    /// the local branch and (when it is checked out) the working directory.
    ///
    /// # Errors
    /// [`Error::Network`] when no valid state is found or a pack cannot be rebuilt from the
    /// servers that answer; [`Error::Corrupt`] for data that does not match its hashes;
    /// [`Error::Invalid`] when the local branch has diverged.
    pub async fn pull(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        branch: &str,
    ) -> Result<PullReport, Error> {
        let report = self.fetch(transport, repo, branch).await?;
        let Some(tip) = report.tip else {
            return Ok(report);
        };
        let name = RefName::branch(branch).map_err(|e| Error::Invalid(e.to_string()))?;
        let local = self.refs().resolve(&RefKey::Name(name.clone()))?;
        if let Some(l) = local {
            if l == tip || is_ancestor(self.store(), &tip, &l).unwrap_or(false) {
                return Ok(report);
            }
            if !is_ancestor(self.store(), &l, &tip).map_err(|e| Error::Invalid(e.to_string()))? {
                return Err(Error::Invalid(format!(
                    "branch {branch} has diverged from the remote: merge origin/{branch} into it"
                )));
            }
        }
        // A clone of a fork is a fork of the same foundation: its own commits stay deltas.
        if self.fork_base()?.is_none()
            && let Some(base) = self.store().find_commit(&tip)?.base
        {
            self.set_fork_base(&base.repo, base.commit)?;
        }
        let checked_out = self.current_branch()? == Some(name.clone());
        if checked_out {
            let previous = match local {
                Some(l) => {
                    crate::worktree::files(self.store(), &self.store().find_commit(&l)?.tree)?
                }
                None => BTreeMap::new(),
            };
            self.materialize(&tip, self.root(), &previous)?;
        }
        let expected = local.map_or(Expected::Absent, |l| Expected::Value(Target::Id(l)));
        self.refs().commit(Transaction::new().edit(
            RefKey::Name(name),
            expected,
            Some(Target::Id(tip)),
        ))?;
        Ok(report)
    }

    /// Fetches branch `branch` of `repo` into `refs/remotes/origin/<branch>` without touching
    /// local branches or files. Packs whose objects are all local are not fetched again.
    ///
    /// # Errors
    /// As [`pull`](Self::pull).
    pub async fn fetch(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        branch: &str,
    ) -> Result<PullReport, Error> {
        let name = RefName::branch(branch).map_err(|e| Error::Invalid(e.to_string()))?;
        let Some(state) = self.remote_state(transport, repo).await? else {
            return Err(Error::Network(format!(
                "no valid state event for {repo} on the fetch relays"
            )));
        };
        let Some(&tip) = state.body().refs.get(&name) else {
            return Err(Error::UnknownRevision(format!("origin/{branch}")));
        };
        let mut report = PullReport {
            tip: Some(tip),
            ..PullReport::default()
        };
        if !self.store().contains(&tip)? {
            self.fetch_packs(transport, repo, &mut report).await?;
            if !self.store().contains(&tip)? {
                return Err(Error::Network(format!(
                    "the remote's tip {tip} is in no pack the relays list"
                )));
            }
        }
        // A fork's commits name their foundation (and its first commit descends from it): fetch
        // the foundation too, from its own repository, then check the history is complete.
        let (foundations, missing) = self.walk_history(&tip)?;
        for base in foundations {
            if !self.store().contains(&base.commit)? {
                let coordinate: RepoCoordinate = base.repo.parse().map_err(|e| {
                    Error::Corrupt(format!(
                        "a fork names a bad foundation {:?}: {e}",
                        base.repo
                    ))
                })?;
                self.fetch_packs(transport, &coordinate, &mut report)
                    .await?;
            }
        }
        if !missing.is_empty() {
            let (_, still) = self.walk_history(&tip)?;
            if let Some(m) = still.first() {
                return Err(Error::Network(format!(
                    "commit {m} of the remote's history is in no pack the relays list"
                )));
            }
        }
        let tracking =
            RefName::remote("origin", branch).map_err(|e| Error::Invalid(e.to_string()))?;
        self.set_ref(tracking, tip)?;
        Ok(report)
    }

    /// The state of `repo` that counts on the fetch relays, if any.
    async fn remote_state(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
    ) -> Result<Option<Signed<RepoState>>, Error> {
        let states = transport
            .query(&[Filter::new()
                .kind(Kind::Custom(agigit_event::kinds::REPO_STATE))
                .author(repo.owner)
                .custom_tag(tag('d')?, repo.id.as_str())])
            .await
            .map_err(net)?;
        Ok(resolve_state(repo, &[], states).current)
    }

    /// The fork bases named by the local part of `tip`'s history, and the commits it lacks.
    fn walk_history(&self, tip: &ObjectId) -> Result<(Vec<ForkBase>, Vec<ObjectId>), Error> {
        let (mut bases, mut missing) = (Vec::new(), Vec::new());
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![*tip];
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            if !self.store().contains(&id)? {
                missing.push(id);
                continue;
            }
            let commit = self.store().find_commit(&id)?;
            if let Some(base) = commit.base
                && !bases.contains(&base)
            {
                bases.push(base);
            }
            stack.extend(commit.parents);
        }
        Ok((bases, missing))
    }

    /// Fetches every pack of `repo` holding commits the local store lacks.
    async fn fetch_packs(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        report: &mut PullReport,
    ) -> Result<(), Error> {
        let events = transport
            .query(&[Filter::new()
                .kind(Kind::Custom(agigit_event::kinds::COMMIT))
                .author(repo.owner)
                .custom_tag(tag('a')?, repo.to_string())])
            .await
            .map_err(net)?;
        let mut packs: Vec<BlobHash> = Vec::new();
        for event in events {
            // Every event is verified again here: the transport's word is not enough.
            let Ok(commit) = Signed::<CommitEvent>::from_event(event) else {
                continue;
            };
            let body = commit.body();
            if body.repo != *repo || self.store().contains(&body.commit)? {
                continue;
            }
            for p in &body.packs {
                if !packs.contains(p) {
                    packs.push(*p);
                }
            }
        }
        for manifest in packs {
            let (objects, shards) = self.fetch_pack(transport, &manifest).await?;
            report.packs += 1;
            report.objects += objects;
            report.shards += shards;
        }
        Ok(())
    }

    /// Downloads pack `manifest` from any servers and stores its objects; returns the objects
    /// and shards received.
    async fn fetch_pack(
        &self,
        transport: &dyn Transport,
        manifest_hash: &BlobHash,
    ) -> Result<(usize, usize), Error> {
        let servers = transport.fetch_servers();
        let mut errors = Vec::new();
        let mut manifest = None;
        for s in &servers {
            match transport.get_blob(s, manifest_hash).await {
                Ok(bytes) => match ShardManifest::decode(&bytes) {
                    Ok(m) => {
                        manifest = Some(m);
                        break;
                    }
                    Err(e) => errors.push(format!("{s}: {e}")),
                },
                Err(e) => errors.push(e.to_string()),
            }
        }
        let manifest = manifest.ok_or_else(|| {
            Error::Network(format!(
                "no server has pack manifest {manifest_hash}: {}",
                errors.join("; ")
            ))
        })?;
        let code = codec_for(&manifest.codec()).map_err(|e| Error::Corrupt(e.to_string()))?;
        let k = manifest.codec().k;
        // Where the pusher put each shard, if these are its servers in its order; others after.
        let placement = Placement::new(servers.len().max(1), &manifest.codec())
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        // Per segment, shards from any server until k arrive with the right hashes (the
        // transport verifies each blob against its name).
        let mut shards: HashMap<(usize, usize), Vec<u8>> = HashMap::new();
        let mut received = 0;
        for segment in 0..manifest.segment_count() {
            let hashes = manifest
                .shard_hashes(segment)
                .ok_or_else(|| Error::Corrupt(format!("manifest lacks segment {segment}")))?;
            let mut good = 0;
            'shards: for (index, hash) in hashes.iter().enumerate() {
                let first = placement.server_of(segment, index);
                let order = servers.iter().skip(first).chain(servers.iter().take(first));
                for server in order {
                    if let Ok(bytes) = transport.get_blob(server, hash).await {
                        shards.insert((segment, index), bytes.to_vec());
                        good += 1;
                        received += 1;
                        break;
                    }
                }
                if good >= k {
                    break 'shards;
                }
            }
            if good < k {
                return Err(Error::Network(format!(
                    "segment {segment} of pack {manifest_hash}: {good} good shards found, {k} needed; bring more servers back"
                )));
            }
        }
        let mut pack = Vec::new();
        let source =
            |segment: usize, index: usize, _: &BlobHash| shards.get(&(segment, index)).cloned();
        agigit_shard::decode_stream(&manifest, code.as_ref(), &source, 1, &mut pack)
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        let ids = pack::read_pack(self.store(), &pack)?;
        Ok((ids.len(), received))
    }
}

fn tracing_failure(server: &str, e: &NetError) {
    tracing::warn!(%server, error = %e, "upload failed");
}
