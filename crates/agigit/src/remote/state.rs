//! What the relays say a repository's state is, and the newest state this clone has accepted.

use agigit_event::nostr::prelude::{Filter, Kind};
use agigit_event::{RepoCoordinate, RepoState, Signed, resolve_state};
use agigit_net::Transport;

use super::*;
use crate::error::Error;
use crate::repository::Repository;

impl Repository {
    /// The state of `repo` that counts on the fetch relays (and, with `push`, the push relays
    /// too: a push builds on the newest state any relay it writes to holds), if any.
    pub(super) async fn remote_state(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
        push: bool,
    ) -> Result<Option<Signed<RepoState>>, Error> {
        let filter = [Filter::new()
            .kind(Kind::Custom(agigit_event::kinds::REPO_STATE))
            .author(repo.owner)
            .custom_tag(tag('d')?, repo.id.as_str())];
        let mut states = transport.query(&filter).await.map_err(net)?;
        if push {
            states.extend(transport.query_push(&filter).await.map_err(net)?);
        }
        Ok(resolve_state(repo, &[], states).current)
    }

    /// The state of `repo` that counts on the fetch relays.
    ///
    /// # Errors
    /// [`Error::Network`] when they hold no valid one.
    pub(super) async fn fetched_state(
        &self,
        transport: &dyn Transport,
        repo: &RepoCoordinate,
    ) -> Result<Signed<RepoState>, Error> {
        self.remote_state(transport, repo, false)
            .await?
            .ok_or_else(|| {
                Error::Network(format!(
                    "no valid state event for {repo} on the fetch relays"
                ))
            })
    }

    /// The newest state of `repo` this clone has accepted: its time and event id.
    pub(super) fn accepted_state(
        &self,
        repo: &RepoCoordinate,
    ) -> Result<Option<(u64, agigit_event::nostr::prelude::EventId)>, Error> {
        let path = self.root().join(crate::worktree::DOT_DIR).join("states");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        let key = repo.to_string();
        for line in text.lines() {
            let mut fields = line.split(' ');
            if fields.next() != Some(key.as_str()) {
                continue;
            }
            let parsed = (|| {
                let at = fields.next()?.parse().ok()?;
                let id = agigit_event::nostr::prelude::EventId::from_hex(fields.next()?).ok()?;
                Some((at, id))
            })();
            return parsed
                .map(Some)
                .ok_or_else(|| Error::Corrupt(format!("{}: bad line {line:?}", path.display())));
        }
        Ok(None)
    }

    /// Every repository this clone has accepted a state of.
    pub(super) fn accepted_coordinates(&self) -> Result<Vec<RepoCoordinate>, Error> {
        let path = self.root().join(crate::worktree::DOT_DIR).join("states");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        text.lines()
            .filter_map(|l| l.split(' ').next())
            .map(|c| {
                c.parse()
                    .map_err(|e| Error::Corrupt(format!("{}: {c:?}: {e}", path.display())))
            })
            .collect()
    }

    /// Records `state` as the newest state of `repo` this clone has accepted.
    pub(super) fn record_state(
        &self,
        repo: &RepoCoordinate,
        state: &Signed<RepoState>,
    ) -> Result<(), Error> {
        let path = self.root().join(crate::worktree::DOT_DIR).join("states");
        let key = repo.to_string();
        let old = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        let mut text: String = old
            .lines()
            .filter(|l| l.split(' ').next() != Some(key.as_str()))
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(&format!(
            "{key} {} {}\n",
            state.created_at().as_secs(),
            state.id().to_hex()
        ));
        crate::worktree::write_atomic(&path, false, |f| {
            std::io::Write::write_all(f, text.as_bytes()).map_err(Error::io(&path))
        })
    }
}
