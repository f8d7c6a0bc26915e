//! Fetch and pull: the newest state the clone may accept, the commit events reachable from the
//! wanted tip, their packs rebuilt by [`super::transfer`], then (pull) the branch and the files.

use std::collections::{BTreeMap, BTreeSet};

use agigit_dag::refs::{Expected, RefKey, RefName, Target, Transaction};
use agigit_dag::{FindExt, ForkBase, ObjectId, is_ancestor};
use agigit_event::nostr::prelude::{Filter, Kind, PublicKey};
use agigit_event::{CommitEvent, RepoCoordinate, Signed};
use agigit_hash::BlobHash;
use agigit_net::Transport;

use super::directory::RefDirectory;
use super::state::{Fetched, open_keys, published_tip, tip_of};
use super::*;
use crate::error::Error;
use crate::private::{PrivateKeys, Sealed};
use crate::repository::Repository;
use crate::worktree::Part;

/// A commit the relays list, checked: its id, the name it is published under, its packs.
pub(super) struct Listed {
    pub(super) id: ObjectId,
    pub(super) published: ObjectId,
    /// The parents (commit ids, from the commit itself).
    pub(super) parents: Vec<ObjectId>,
    /// The key epoch its event and packs are sealed in (0 for a public repository).
    pub(super) epoch: u32,
    pub(super) packs: Vec<BlobHash>,
    /// What the labelled packs hold.
    pub(super) parts: BTreeMap<BlobHash, String>,
}

/// Which packs a fetch wants: those of new commits in the parts `wanted`; and, for commits
/// already local, those of the parts `wanted` that the repository does not hold yet.
pub(super) struct Want {
    pub(super) wanted: BTreeSet<Part>,
    pub(super) held: BTreeSet<Part>,
    /// The commits whose objects are all here: those the local refs reach (through parents and
    /// fork bases). A commit that is only *present* may be what a fetch cut short left: its
    /// packs are fetched again.
    pub(super) complete: std::collections::HashSet<ObjectId>,
}

impl Want {
    pub(super) fn wants(&self, commit_is_local: bool, label: Option<&String>) -> bool {
        // An unlabelled pack, or one labelled with a part this build does not know, holds what
        // every checkout needs.
        let Some(part) = label.and_then(|l| Part::from_name(l)) else {
            return !commit_is_local;
        };
        self.wanted.contains(&part) && (!commit_is_local || !self.held.contains(&part))
    }
}

impl Repository {
    /// Fetches branch `branch` of `repo` into `refs/remotes/origin/<branch>`, then fast-forwards
    /// the local branch and (when it is checked out) the working directory.
    ///
    /// # Errors
    /// [`Error::Network`] when no valid state is found or a pack cannot be rebuilt from the
    /// servers that answer; [`Error::Corrupt`] for data that does not match its hashes;
    /// [`Error::Diverged`] when the local branch has commits the remote's does not; [`Error::NeedsKey`] or
    /// [`Error::NotAReader`] for a private repository the given secret cannot open.
    pub async fn pull(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        branch: &str,
        options: FetchOptions<'_>,
    ) -> Result<PullReport, crate::fetch::Error> {
        let before = self.parts()?;
        let mut report = self.fetch(transport, repo, branch, options).await?;
        let Some(tip) = report.tip else {
            return Ok(report);
        };
        // The files are written on the CPU pool, not on this async thread: a checkout reads,
        // checks and decodes every object it writes.
        let moved = {
            let (repo, branch, before, force) = (
                self.clone(),
                branch.to_owned(),
                before.clone(),
                options.force,
            );
            let (moved, took) = transfer::cpu(move || {
                timed(|| repo.fast_forward(&branch, tip, before.as_ref(), force))
            })
            .await?;
            report.stages.checkout += took;
            moved
        };
        if let Err(e) = moved {
            // The files of parts the fetch added are not checked out: a later pull must still
            // see them as new.
            self.set_parts(before.as_ref())?;
            return Err(e.into());
        }
        Ok(report)
    }

    /// Moves `branch` forward to `tip` (and the files, when it is checked out); `before` is the
    /// parts held before the fetch, whose files are already checked out.
    fn fast_forward(
        &self,
        branch: &str,
        tip: ObjectId,
        before: Option<&BTreeSet<Part>>,
        force: bool,
    ) -> Result<(), Error> {
        let name = RefName::branch(branch)?;
        let local = self.refs().resolve(&RefKey::Name(name.clone()))?;
        let checked_out = self.current_branch()? == Some(name.clone());
        if let Some(l) = local {
            if l == tip || is_ancestor(self.store(), &tip, &l).unwrap_or(false) {
                // A partial clone that now holds more parts: check out their files.
                if checked_out && self.parts()?.as_ref() != before {
                    let tree = self.store().find_commit(&l)?.tree;
                    let previous = crate::worktree::files_in(self.store(), &tree, before)?;
                    self.update_worktree("pull", &previous, &l, force)?;
                }
                return Ok(());
            }
            if !is_ancestor(self.store(), &l, &tip)? {
                return Err(Error::Diverged {
                    branch: branch.to_owned(),
                    local: l,
                    remote: tip,
                });
            }
        }
        if checked_out {
            let previous = match local {
                Some(l) => crate::worktree::files_in(
                    self.store(),
                    &self.store().find_commit(&l)?.tree,
                    before,
                )?,
                None => BTreeMap::new(),
            };
            self.update_worktree("pull", &previous, &tip, force)?;
        }
        // A clone of a fork is a fork of the same foundation: its own commits stay deltas.
        if self.fork_base()?.is_none()
            && let Some(base) = self.store().find_commit(&tip)?.base
        {
            self.set_fork_base(&base.repo, base.commit)?;
        }
        let expected = local.map_or(Expected::Absent, |l| Expected::Value(Target::Id(l)));
        self.refs().commit(Transaction::new().edit(
            RefKey::Name(name),
            expected,
            Some(Target::Id(tip)),
        ))?;
        Ok(())
    }

    /// The remote's branches as its newest valid state lists them, and its default branch (the
    /// one its `HEAD` names, which a clone checks out when not asked for another). A private
    /// repository's names are sealed: this lists none of them (see
    /// [`remote_refs_with`](Self::remote_refs_with)).
    ///
    /// # Errors
    /// [`Error::Network`] when no valid state is found.
    pub async fn remote_refs(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
    ) -> Result<RemoteRefs, crate::fetch::Error> {
        self.remote_refs_with(transport, repo, &FetchOptions::default())
            .await
    }

    /// As [`remote_refs`](Self::remote_refs), a private repository's too when `options` give
    /// a reader's secret: its sealed ref directory opened, each branch listed where the state's
    /// opaque ref for it names the commit the directory says.
    ///
    /// # Errors
    /// As [`remote_refs`](Self::remote_refs); for a private repository with a secret,
    /// [`Error::NotAReader`], and [`Error::CorruptData`] for a directory that does not open.
    pub async fn remote_refs_with(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        options: &FetchOptions<'_>,
    ) -> Result<RemoteRefs, crate::fetch::Error> {
        let state = self.fetched_state(transport, repo).await?.state;
        let body = state.body();
        if body.keys.is_some() {
            if options.secret.is_none() {
                return Ok(RemoteRefs::default());
            }
            let Some(keys) = open_keys(repo, body, options)? else {
                return Ok(RemoteRefs::default());
            };
            let directory = RefDirectory::of(body, &keys)?;
            return Ok(RemoteRefs {
                head: directory.head_in(body, &keys)?,
                branches: directory.branches_in(body, &keys)?,
            });
        }
        let branches: BTreeMap<String, ObjectId> = body
            .refs
            .iter()
            .filter_map(|(name, id)| Some((name.branch_name()?.to_owned(), *id)))
            .collect();
        let head = body
            .head
            .as_ref()
            .and_then(|h| h.branch_name())
            .filter(|h| branches.contains_key(*h))
            .map(str::to_owned);
        Ok(RemoteRefs { head, branches })
    }

    /// Fetches every branch of `repo` (as `git fetch` does) into `refs/remotes/origin/…`:
    /// those its state lists, or — a private repository names its branches opaquely — this
    /// clone's own branches that the remote has. Returns each branch's report.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch), for the first branch that fails.
    pub async fn fetch_all(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        options: FetchOptions<'_>,
    ) -> Result<BTreeMap<String, PullReport>, crate::fetch::Error> {
        let listed = self.remote_refs_with(transport, repo, &options).await?;
        let (names, guessed): (Vec<String>, bool) = if listed.branches.is_empty() {
            (self.branches()?.into_keys().collect(), true)
        } else {
            (listed.branches.into_keys().collect(), false)
        };
        let mut out = BTreeMap::new();
        for name in names {
            match self.fetch(transport, repo, &name, options).await {
                Ok(report) => {
                    out.insert(name, report);
                }
                // A local branch the remote does not have.
                Err(crate::fetch::Error::Other(e))
                    if guessed && matches!(*e, Error::UnknownRevision(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
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
        options: FetchOptions<'_>,
    ) -> Result<PullReport, crate::fetch::Error> {
        // A bad branch name is refused before anything is asked of the network.
        RefName::branch(branch).map_err(Error::from)?;
        let Fetched {
            state,
            writers,
            ignored,
            announcement,
        } = self.fetched_state(transport, repo).await?;
        // Never back to a state older than one this clone accepted: a relay replaying an old
        // (validly signed) state cannot roll the clone back.
        let mut state_forked = false;
        if let Some(accepted) = self.check_not_older(repo, Some(&state), &writers, false)? {
            // A newer state that does not build on the one accepted: the history forked.
            if state.id() != accepted.id && state.body().prev != Some(accepted.id) {
                tracing::warn!(%repo, "the repository's state history forked: the newest state does not build on the one this clone accepted");
                state_forked = true;
            }
        }
        let keys = open_keys(repo, state.body(), &options)?;
        let published_tip = published_tip(state.body(), keys.as_ref(), branch)?;
        let mut report = PullReport {
            envelope: state.body().keys.clone(),
            state_forked,
            ignored_states: ignored,
            ..PullReport::default()
        };
        let held: BTreeSet<Part> = self
            .parts()?
            .unwrap_or_else(|| Part::ALL.into_iter().collect());
        let want = Want {
            wanted: match options.parts {
                Some(parts) => {
                    let wanted: BTreeSet<Part> = parts.iter().copied().collect();
                    if self.head()?.is_some() && !wanted.is_superset(&held) {
                        return Err(Error::Invalid(
                            "a repository can fetch more parts, not drop some it holds: clone again with the parts you want".to_owned(),
                        ).into());
                    }
                    wanted
                }
                None => held.clone(),
            },
            held,
            complete: self.complete_commits()?,
        };
        let widening = !want.held.is_superset(&want.wanted);
        let tip = match &keys {
            // Public: the state names the commit, and nothing is fetched when it is local.
            None if !widening && want.complete.contains(&published_tip) => published_tip,
            _ => {
                let listed = self
                    .list_commits(transport, repo, keys.as_ref(), &writers)
                    .await?;
                let tip = tip_of(&listed, published_tip, keys.is_some(), repo)?;
                self.fetch_packs(
                    transport,
                    &listed,
                    &[tip],
                    keys.as_ref(),
                    &want,
                    options,
                    &mut report,
                )
                .await?;
                tip
            }
        };
        report.tip = Some(tip);
        if !self.store().contains(&tip)? {
            return Err(Error::Network(format!(
                "the remote's tip {tip} is in no pack the relays list"
            ))
            .into());
        }
        // A fork's commits name their foundation (and its first commit descends from it): fetch
        // the foundation too, from its own repository, then check the history is complete.
        let (foundations, missing) = self.walk_history(&tip)?;
        for base in foundations {
            if !want.complete.contains(&base.commit) {
                let coordinate: RepoCoordinate = base.repo.parse().map_err(Error::corrupt_data(
                    format_args!("a fork names a bad foundation {:?}", base.repo),
                ))?;
                let foundation = self.remote_state(transport, &coordinate, false).await?;
                let base_keys = match &foundation.current {
                    Some(s) => open_keys(&coordinate, s.body(), &options)?,
                    None => None,
                };
                let listed = self
                    .list_commits(
                        transport,
                        &coordinate,
                        base_keys.as_ref(),
                        &foundation.writers,
                    )
                    .await?;
                self.fetch_packs(
                    transport,
                    &listed,
                    &[base.commit],
                    base_keys.as_ref(),
                    &want,
                    options,
                    &mut report,
                )
                .await?;
            }
        }
        if !missing.is_empty() {
            let (_, still) = self.walk_history(&tip)?;
            if let Some(m) = still.first() {
                return Err(Error::Network(format!(
                    "commit {m} of the remote's history is in no pack the relays list"
                ))
                .into());
            }
        }
        self.set_parts(Some(&want.wanted))?;
        let tracking = RefName::remote(options.remote_name, branch).map_err(Error::from)?;
        // A remote branch that moves to a commit not descending from where it was is reported,
        // never followed silently.
        if let Some(old) = self.refs().resolve(&RefKey::Name(tracking.clone()))?
            && old != tip
            && !is_ancestor(self.store(), &old, &tip).unwrap_or(false)
        {
            tracing::warn!(%old, new = %tip, "{}/{branch} was rewritten: it no longer descends from where it was", options.remote_name);
            report.forced_from = Some(old);
        }
        self.set_ref(tracking, tip)?;
        // The remote's tags whose commits are now here (in the clear, or in a private
        // repository's sealed directory; a local tag of the same name is never moved).
        if options.remote_name == "origin" {
            match &keys {
                None => {
                    for (name, id) in &state.body().refs {
                        let note = state.body().notes.get(name).map(String::as_str);
                        if self.adopt_tag(name, *id, note)? {
                            report
                                .tags
                                .push(name.as_str()["refs/tags/".len()..].to_owned());
                        }
                    }
                }
                Some(k) => {
                    for (short, tag) in RefDirectory::of(state.body(), k)?.tags {
                        let name = crate::repository::tag_ref(&short)?;
                        if self.adopt_tag(&name, tag.commit, tag.note.as_deref())? {
                            report.tags.push(short);
                        }
                    }
                }
            }
        }
        self.record_state(repo, &state)?;
        if let Some(a) = announcement {
            self.record_announcement(repo, a)?;
        }
        Ok(report)
    }

    /// The commits the local refs reach, through parents and fork bases: their objects are all
    /// here (a ref moves only after a fetch has stored everything it names).
    fn complete_commits(&self) -> Result<std::collections::HashSet<ObjectId>, Error> {
        let mut stack: Vec<ObjectId> = self
            .refs()
            .list("refs/")?
            .into_values()
            .filter_map(|t| match t {
                agigit_dag::refs::Target::Id(id) => Some(id),
                agigit_dag::refs::Target::Symbolic(_) => None,
            })
            .collect();
        stack.extend(self.head()?);
        let mut seen = std::collections::HashSet::new();
        while let Some(id) = stack.pop() {
            if seen.contains(&id) || !self.store().contains(&id)? {
                continue;
            }
            let Ok(commit) = self.store().find_commit(&id) else {
                // A tag or another object kind: not a commit to walk.
                continue;
            };
            seen.insert(id);
            stack.extend(commit.parents);
            stack.extend(commit.base.map(|b| b.commit));
        }
        Ok(seen)
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

    /// The commit events of `repo`, each verified (signature, then its payload against the id
    /// it claims; for a private repository, opened with `keys` and its opaque name checked).
    /// Events that fail are left out.
    pub(super) async fn list_commits(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        keys: Option<&PrivateKeys>,
        writers: &[PublicKey],
    ) -> Result<Vec<Listed>, Error> {
        let events = transport
            .query(&[Filter::new()
                .kind(Kind::Custom(agigit_event::kinds::COMMIT))
                .authors(writers.iter().copied())
                .custom_tag(tag('a')?, repo.to_string())])
            .await
            .map_err(net)?;
        let mut listed = Vec::new();
        for event in events {
            // Every event is verified again here: the transport's word is not enough.
            let Ok(commit) = Signed::<CommitEvent>::from_event(event) else {
                continue;
            };
            let body = commit.body();
            // Only the owner and the maintainers write a repository's history, whatever a
            // transport's filter let through.
            if body.repo != *repo || !writers.contains(&commit.author()) {
                tracing::warn!(commit = %body.commit, author = %commit.author(), "ignoring a commit event signed by neither the repository's owner nor a maintainer");
                continue;
            }
            let (id, epoch, plain) = match (keys, &body.encryption) {
                (None, None) => (
                    agigit_dag::object::compute_id(agigit_dag::Kind::Commit, &body.payload),
                    0,
                    body.payload.clone(),
                ),
                (Some(k), Some(scheme)) => {
                    let Some(epoch) = crate::private::epoch_of(scheme) else {
                        continue;
                    };
                    let Ok(plain) =
                        k.open_sealed(Sealed::Commit(&body.commit), epoch, &body.payload)
                    else {
                        tracing::warn!(commit = %body.commit, epoch, "a commit event does not open with this keyring");
                        continue;
                    };
                    let id = agigit_dag::object::compute_id(agigit_dag::Kind::Commit, &plain);
                    if k.commit_name_in(epoch, &id)? != body.commit {
                        continue;
                    }
                    (id, epoch, plain)
                }
                _ => continue,
            };
            if keys.is_none() && id != body.commit {
                tracing::warn!(commit = %body.commit, "a commit event's payload is another commit");
                continue;
            }
            // The parents the commit itself names (plain ids, whatever epoch they were published
            // in): what the walk from a tip follows.
            let Ok(decoded) = agigit_dag::Commit::decode(&plain) else {
                tracing::warn!(commit = %body.commit, "a commit event's payload is not a commit");
                continue;
            };
            listed.push(Listed {
                id,
                published: body.commit,
                parents: decoded.parents,
                epoch,
                packs: body.packs.clone(),
                parts: body.pack_parts.clone(),
            });
        }
        Ok(listed)
    }

    /// Records a private repository's key envelope (from [`PullReport::envelope`]) in
    /// `.agigit/keys`, so this clone is private too and pushes encrypted for the same readers.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for bytes that are not an envelope; I/O errors.
    pub fn save_envelope(&self, envelope: &[u8]) -> Result<(), Error> {
        agigit_crypt::Keyring::decode_public(envelope, &agigit_crypt::EcdhWrap)
            .map_err(Error::corrupt_data("the repository's keyring"))?;
        crate::private::write_envelope(self.root(), envelope)
    }
}
