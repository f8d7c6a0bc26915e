//! What the relays say a repository's state is, and the newest state this clone has accepted.

use agigit_event::nostr::prelude::{Event, EventId, Filter, Kind, PublicKey};
use agigit_event::{
    IgnoreReason, Ignored, RepoCoordinate, RepoState, Signed, newest_announcement, resolve_state,
};
use agigit_net::Transport;

use super::fetch::Listed;
use super::*;
use crate::error::Error;
use crate::repository::Repository;

/// The most state events of strangers (keys neither the owner nor a maintainer) a fetch asks
/// for, only to report them.
const STRANGER_STATES: usize = 16;

/// What the relays hold for a repository's state, resolved.
#[derive(Debug)]
pub(super) struct RemoteState {
    /// The state that counts.
    pub(super) current: Option<Signed<RepoState>>,
    /// Who may write the repository: its owner, then the maintainers its owner's newest
    /// announcement lists.
    pub(super) writers: Vec<PublicKey>,
    /// States left out for something other than being older: a stranger's, another
    /// repository's, one that does not verify.
    pub(super) ignored: Vec<Ignored>,
    /// The owner's newest announcement the relays hold: its time and id.
    pub(super) announcement: Option<(u64, EventId)>,
}

impl RemoteState {
    /// The state that counts, or [`Error::Network`] when no relay holds a valid one.
    pub(super) fn require(self, repo: &RepoCoordinate) -> Result<Fetched, Error> {
        let state = self.current.ok_or_else(|| {
            Error::Network(format!(
                "no valid state event for {repo} on the fetch relays"
            ))
        })?;
        Ok(Fetched {
            state,
            writers: self.writers,
            ignored: self.ignored,
            announcement: self.announcement,
        })
    }
}

/// How new an event is, as replaceable events are ordered (NIP-01): later first, then the
/// lowest id.
fn newness(at: u64, id: EventId) -> (u64, std::cmp::Reverse<EventId>) {
    (at, std::cmp::Reverse(id))
}

/// The newest state of a repository this clone has accepted.
#[derive(Clone, Copy, Debug)]
pub(super) struct Accepted {
    pub(super) at: u64,
    pub(super) id: EventId,
    /// Who signed it; `None` in a record written before authors were kept.
    pub(super) author: Option<PublicKey>,
}

/// A repository's state that counts, who may write the repository, and the states left out.
#[derive(Debug)]
pub(super) struct Fetched {
    pub(super) state: Signed<RepoState>,
    pub(super) writers: Vec<PublicKey>,
    pub(super) ignored: Vec<Ignored>,
    pub(super) announcement: Option<(u64, EventId)>,
}

impl Repository {
    /// The state of `repo` that counts on the fetch relays (and, with `push`, the push relays
    /// too: a push builds on the newest state any relay it writes to holds), if any.
    ///
    /// A state counts when its owner signed it or a maintainer the owner's newest
    /// announcement lists did (`docs/format.md` §2.2). A few states of other keys are asked
    /// for, only to report them.
    pub(super) async fn remote_state(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        push: bool,
    ) -> Result<RemoteState, Error> {
        let query = |filters: Vec<Filter>| async move {
            let mut events = transport.query(&filters).await.map_err(net)?;
            if push {
                events.extend(transport.query_push(&filters).await.map_err(net)?);
            }
            Ok::<_, Error>(events)
        };
        let state_filter = Filter::new()
            .kind(Kind::Custom(agigit_event::kinds::REPO_STATE))
            .identifier(repo.id.as_str());
        // One round trip for the announcement, the owner's states and a few of anyone's; a
        // second only when the announcement names maintainers.
        let events = query(vec![
            Filter::new()
                .kind(Kind::Custom(agigit_event::kinds::REPO_ANNOUNCEMENT))
                .author(repo.owner)
                .identifier(repo.id.as_str()),
            state_filter.clone().author(repo.owner),
            state_filter.clone().limit(STRANGER_STATES),
        ])
        .await?;
        let (announcements, mut states): (Vec<Event>, Vec<Event>) = events
            .into_iter()
            .partition(|e| e.kind == Kind::Custom(agigit_event::kinds::REPO_ANNOUNCEMENT));
        let newest = newest_announcement(repo, announcements);
        let announcement = newest.as_ref().map(|a| (a.created_at().as_secs(), a.id()));
        let maintainers = newest
            .map(|a| a.body().maintainers.clone())
            .unwrap_or_default();
        if !maintainers.is_empty() {
            states.extend(query(vec![state_filter.authors(maintainers.clone())]).await?);
        }
        let resolution = resolve_state(repo, &maintainers, states);
        let mut writers = vec![repo.owner];
        writers.extend(maintainers.iter().filter(|m| **m != repo.owner));
        Ok(RemoteState {
            current: resolution.current,
            announcement,
            writers,
            ignored: resolution
                .ignored
                .into_iter()
                .filter(|i| !matches!(i.reason, IgnoreReason::Superseded { .. }))
                .collect(),
        })
    }

    /// The state of `repo` that counts on the fetch relays, and who may write the repository.
    ///
    /// # Errors
    /// [`Error::Network`] when they hold no valid one.
    pub(super) async fn fetched_state(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
    ) -> Result<Fetched, Error> {
        let fetched = self
            .remote_state(transport, repo, false)
            .await?
            .require(repo)?;
        // The announcement names who may write: a relay that serves an older one (or none)
        // than this clone accepted could hide a maintainer's state, or bring back a removed one.
        if let Some(accepted) = self.accepted_announcement(repo)?
            && fetched
                .announcement
                .is_none_or(|(at, id)| newness(at, id) < newness(accepted.0, accepted.1))
        {
            return Err(Error::StaleAnnouncement {
                repo: repo.to_string(),
                offered: fetched.announcement.map(|a| a.0),
                accepted: accepted.0,
            });
        }
        Ok(fetched)
    }

    /// The text of `.agigit/<file>` (empty when there is none): one line per repository, its
    /// coordinate first, then space-separated fields.
    fn records(&self, file: &str) -> Result<String, Error> {
        let path = self.root().join(crate::worktree::DOT_DIR).join(file);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(Error::io(&path)(e)),
        }
    }

    /// The fields after `repo` on its line of `.agigit/<file>`, parsed by `parse` (a line that
    /// does not parse is [`Error::Corrupt`]).
    fn record<T>(
        &self,
        file: &str,
        repo: &RepoCoordinate,
        parse: impl Fn(&mut std::str::Split<'_, char>) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let key = repo.to_string();
        for line in self.records(file)?.lines() {
            let mut fields = line.split(' ');
            if fields.next() != Some(key.as_str()) {
                continue;
            }
            return parse(&mut fields)
                .map(Some)
                .ok_or_else(|| Error::Corrupt(format!(".agigit/{file}: bad line {line:?}")));
        }
        Ok(None)
    }

    /// Sets `repo`'s line of `.agigit/<file>` to `fields` (atomically: the old file or the new).
    fn put_record(&self, file: &str, repo: &RepoCoordinate, fields: &str) -> Result<(), Error> {
        let path = self.root().join(crate::worktree::DOT_DIR).join(file);
        let key = repo.to_string();
        let mut text: String = self
            .records(file)?
            .lines()
            .filter(|l| l.split(' ').next() != Some(key.as_str()))
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(&format!("{key} {fields}\n"));
        crate::worktree::write_atomic(&path, false, |f| {
            std::io::Write::write_all(f, text.as_bytes()).map_err(Error::io(&path))
        })
    }

    /// The newest state of `repo` this clone has accepted: its time, event id and author
    /// (unknown for a state recorded by an older version).
    pub(super) fn accepted_state(&self, repo: &RepoCoordinate) -> Result<Option<Accepted>, Error> {
        self.record("states", repo, |fields| {
            let at = fields.next()?.parse().ok()?;
            let id = EventId::from_hex(fields.next()?).ok()?;
            let author = match fields.next() {
                Some(a) => Some(PublicKey::from_hex(a).ok()?),
                None => None,
            };
            Some(Accepted { at, id, author })
        })
    }

    /// The newest announcement of `repo` this clone has accepted: its time and event id.
    fn accepted_announcement(
        &self,
        repo: &RepoCoordinate,
    ) -> Result<Option<(u64, EventId)>, Error> {
        self.record("announcements", repo, |fields| {
            Some((
                fields.next()?.parse().ok()?,
                EventId::from_hex(fields.next()?).ok()?,
            ))
        })
    }

    /// Records `announcement` as the newest of `repo` this clone has accepted.
    pub(super) fn record_announcement(
        &self,
        repo: &RepoCoordinate,
        announcement: (u64, EventId),
    ) -> Result<(), Error> {
        if self.accepted_announcement(repo)? == Some(announcement) {
            return Ok(());
        }
        self.put_record(
            "announcements",
            repo,
            &format!("{} {}", announcement.0, announcement.1.to_hex()),
        )
    }

    /// Refuses `offered` (the state that counts now) when it is older than the one this clone
    /// accepted: a relay replaying an old, validly signed state cannot roll the clone back.
    ///
    /// One exception, for the owner alone (`owner_pushing`): the state accepted was signed by
    /// a maintainer the owner has since removed (it is not among `writers`). The owner then
    /// builds on its own newest state; the removed maintainer's commits that the owner's
    /// clone holds stay in its history. (The state it publishes must still be dated after the
    /// one accepted, which is returned, so that readers who followed the maintainer move on.)
    pub(super) fn check_not_older(
        &self,
        repo: &RepoCoordinate,
        offered: Option<&Signed<RepoState>>,
        writers: &[PublicKey],
        owner_pushing: bool,
    ) -> Result<Option<Accepted>, Error> {
        let Some(accepted) = self.accepted_state(repo)? else {
            return Ok(None);
        };
        let offered_at = offered.map(|s| newness(s.created_at().as_secs(), s.id()));
        if offered_at.is_some_and(|o| o >= newness(accepted.at, accepted.id)) {
            return Ok(Some(accepted));
        }
        if let Some(author) = accepted.author.filter(|a| !writers.contains(a)) {
            if owner_pushing {
                tracing::warn!(%repo, %author, "the state this clone accepted was signed by a maintainer the owner has removed: building on the owner's newest state");
                return Ok(Some(accepted));
            }
            return Err(Error::RevokedWriter {
                repo: repo.to_string(),
                author: author.to_hex(),
            });
        }
        Err(Error::StaleState {
            repo: repo.to_string(),
            offered: offered_at.map_or(0, |o| o.0),
            accepted: accepted.at,
        })
    }

    /// Every repository this clone has accepted a state of.
    pub(super) fn accepted_coordinates(&self) -> Result<Vec<RepoCoordinate>, Error> {
        self.records("states")?
            .lines()
            .filter_map(|l| l.split(' ').next())
            .map(|c| {
                c.parse()
                    .map_err(Error::corrupt_data(format_args!(".agigit/states: {c:?}")))
            })
            .collect()
    }

    /// Records `state` as the newest state of `repo` this clone has accepted.
    pub(super) fn record_state(
        &self,
        repo: &RepoCoordinate,
        state: &Signed<RepoState>,
    ) -> Result<(), Error> {
        self.put_record(
            "states",
            repo,
            &format!(
                "{} {} {}",
                state.created_at().as_secs(),
                state.id().to_hex(),
                state.author().to_hex()
            ),
        )
    }
}

/// The tip of `branch` as the state names it: the commit, or its opaque name in a private
/// repository (whose branches are published under opaque names too).
pub(super) fn published_tip(
    state: &RepoState,
    keys: Option<&PrivateKeys>,
    branch: &str,
) -> Result<ObjectId, Error> {
    let published_refs = match keys {
        Some(k) => k.branch_refs(branch)?,
        None => vec![RefName::branch(branch)?],
    };
    published_refs
        .iter()
        .find_map(|r| state.refs.get(r).copied())
        .ok_or_else(|| Error::UnknownRevision(format!("origin/{branch}")))
}

/// The commit a published tip names: itself when public, the listed commit whose event carries
/// that opaque name when private.
pub(super) fn tip_of(
    listed: &[Listed],
    published: ObjectId,
    private: bool,
    repo: &RepoCoordinate,
) -> Result<ObjectId, Error> {
    if !private {
        return Ok(published);
    }
    listed
        .iter()
        .find(|l| l.published == published)
        .map(|l| l.id)
        .ok_or_else(|| {
            Error::Network(format!(
                "the remote's tip is in no commit event the relays list for {repo}"
            ))
        })
}

/// The keys of a private repository `repo` (from its state's envelope), opened with the secret
/// `options` give; `None` for a public one.
pub(super) fn open_keys(
    repo: &RepoCoordinate,
    state: &RepoState,
    options: &FetchOptions<'_>,
) -> Result<Option<PrivateKeys>, Error> {
    let secret = options.secret;
    let Some(envelope) = &state.keys else {
        return Ok(None);
    };
    let secret = secret.ok_or_else(|| {
        Error::NeedsKey(format!(
            "{repo} is private: fetch it with your secret key (set AGIGIT_NSEC or run `agigit key import`)"
        ))
    })?;
    let keys = match options.key_wrap {
        Some(wrap) => PrivateKeys::open_with(std::sync::Arc::clone(wrap), envelope, secret)?,
        None => PrivateKeys::open(envelope, secret)?,
    };
    Ok(Some(match options.cipher {
        Some(cipher) => keys.with_cipher(std::sync::Arc::clone(cipher)),
        None => keys,
    }))
}
