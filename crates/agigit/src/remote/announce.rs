//! The repository announcement (kind 30717, `docs/format.md` §2.1): what a repository is, who
//! may move its branches and where its events and blobs live — published with a push and by
//! `announce`, so that others can find it and read it without being told its relays.

use agigit_event::nostr::prelude::{PublicKey, RelayUrl, Timestamp, Url};
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
    /// [`Error::Invalid`] for a maintainer that is not a key, a topic that is not one
    /// ([`agigit_event::is_topic`]), more than [`agigit_event::MAX_TOPICS`] topics, or a URL
    /// of the wrong kind; [`Error::Corrupt`] for a fork base that is not a coordinate.
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
                repo: base
                    .repo
                    .parse()
                    .map_err(|e| Error::Corrupt(format!("the fork base {:?}: {e}", base.repo)))?,
                commit: base.commit,
            });
        }
        for m in &settings.maintainers {
            let key = PublicKey::parse(m.trim())
                .map_err(|e| Error::Invalid(format!("maintainer {m:?} is not a key: {e}")))?;
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
        for r in relays {
            let url =
                RelayUrl::parse(r).map_err(|e| Error::Invalid(format!("relay {r:?}: {e}")))?;
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
        let signed = Signed::sign(announcement.clone(), self.signer(), Timestamp::now())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        self.transport()
            .publish(signed.event(), min_accepted.max(1))
            .await
            .map_err(net)
    }
}
