//! The repository announcement (kind 30717, `docs/format.md` §2.1): what a repository is, who
//! may move its branches and where its events and blobs live — published with a push and by
//! `announce`, so that others can find it and read it without being told its relays.

use agigit_event::nostr::prelude::{Filter, Kind, PublicKey, RelayUrl, Timestamp, Url};
use agigit_event::{ForkOf, RepoAnnouncement, RepoId, Signed, Signer, Visibility};
use agigit_net::PublishReport;

use super::net;
use crate::config::AnnounceConfig;
use crate::error::Error;
use crate::repository::Repository;

impl Repository {
    /// This repository's announcement as `id`: public or private as its keys say, the
    /// foundation it forks, `settings`' name, description, licence, maintainers and topics, and
    /// the `relays` (`ws://`/`wss://`) and `blob_servers` (`http://`/`https://`) it lives on.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a maintainer that is not a key or a relay URL that does not
    /// parse (the parser's error kept); [`Error::Invalid`] for a topic that is not one
    /// ([`agigit_event::is_topic`]), more than [`agigit_event::MAX_TOPICS`] topics, or a blob
    /// server that is not an http(s) URL; [`Error::CorruptData`] for a fork base that is not a
    /// coordinate.
    pub fn announcement(
        &self,
        id: &RepoId,
        settings: &AnnounceConfig,
        relays: &[String],
        blob_servers: &[String],
    ) -> Result<RepoAnnouncement, Error> {
        let visibility = if self.is_private()? {
            Visibility::Private
        } else {
            Visibility::Public
        };
        let mut a = RepoAnnouncement::new(id.clone(), visibility);
        a.name.clone_from(&settings.name);
        a.description.clone_from(&settings.description);
        a.license.clone_from(&settings.license);
        if let Some(base) = self.fork_base()? {
            a.fork_of = Some(ForkOf {
                repo: base.repo.parse().map_err(Error::corrupt_data(format_args!(
                    "the fork base {:?}",
                    base.repo
                )))?,
                commit: base.commit,
            });
        }
        for m in &settings.maintainers {
            let key = PublicKey::parse(m.trim()).map_err(Error::invalid_input(format_args!(
                "maintainer {m:?} is not a key"
            )))?;
            if !a.maintainers.contains(&key) {
                a.maintainers.push(key);
            }
        }
        for t in &settings.topics {
            let topic = t.trim().to_lowercase();
            if !agigit_event::is_topic(&topic) {
                return Err(Error::Invalid(format!(
                    "topic {t:?}: use 1 to 64 bytes of letters, digits, '-', '_' or '.'"
                )));
            }
            if !a.topics.contains(&topic) {
                a.topics.push(topic);
            }
        }
        if a.topics.len() > agigit_event::MAX_TOPICS {
            return Err(Error::Invalid(format!(
                "{} topics: an announcement carries at most {}",
                a.topics.len(),
                agigit_event::MAX_TOPICS
            )));
        }
        a.size = self.checked_out_size()?;
        for r in relays {
            let url =
                RelayUrl::parse(r).map_err(Error::invalid_input(format_args!("relay {r:?}")))?;
            if !a.relays.contains(&url) {
                a.relays.push(url);
            }
        }
        for b in blob_servers {
            let url = Url::parse(b)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                .ok_or_else(|| Error::Invalid(format!("blob server {b:?}: not an http(s) URL")))?;
            if !a.blob_servers.contains(&url) {
                a.blob_servers.push(url);
            }
        }
        Ok(a)
    }
}

impl Repository {
    /// The size in bytes of the files of `HEAD`'s commit, as a checkout writes them; `None`
    /// before the first commit, or in a partial clone (which lacks some parts' files).
    fn checked_out_size(&self) -> Result<Option<u64>, Error> {
        use agigit_dag::FindExt as _;
        let Some(head) = self.head()? else {
            return Ok(None);
        };
        if self
            .parts()?
            .is_some_and(|p| p.len() < crate::Part::ALL.len())
        {
            return Ok(None);
        }
        let tree = self.store().find_commit(&head)?.tree;
        let mut total = 0u64;
        for source in crate::worktree::files(self.store(), &tree)?.values() {
            total = total.saturating_add(self.stored_len(source)?);
        }
        Ok(Some(total))
    }
}

impl<S: Signer + Sync + ?Sized> super::Remote<'_, S> {
    /// Publishes `announcement`, signed by this remote's signer, to the push relays; at least
    /// `min_accepted` of them must take it.
    ///
    /// # Errors
    /// [`Error::Network`] when too few relays take it; [`Error::Invalid`] when it cannot be
    /// signed.
    pub async fn announce(
        &self,
        announcement: &RepoAnnouncement,
        min_accepted: usize,
    ) -> Result<PublishReport, Error> {
        // Dated after the newest announcement the relays hold (two in one second would leave
        // the relays keeping whichever has the lower id).
        let repo = announcement.coordinate(self.signer().public_key());
        let filter = [Filter::new()
            .kind(Kind::Custom(agigit_event::kinds::REPO_ANNOUNCEMENT))
            .author(repo.owner)
            .identifier(repo.id.as_str())];
        let mut held = self.transport().query(&filter).await.map_err(net)?;
        held.extend(self.transport().query_push(&filter).await.map_err(net)?);
        let at = agigit_event::newest_announcement(&repo, held)
            .map_or(0, |a| a.created_at().as_secs().saturating_add(1))
            .max(Timestamp::now().as_secs());
        let signed = Signed::sign(
            announcement.clone(),
            self.signer(),
            Timestamp::from_secs(at),
        )?;
        self.transport()
            .publish(signed.event(), min_accepted.max(1))
            .await
            .map_err(net)
    }
}
