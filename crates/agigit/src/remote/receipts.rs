//! Evaluation receipts (kind 1724, `docs/rounds.md`) on the relays: published signed by this
//! remote's signer, and listed for a repository with every signature checked.

use agigit_event::nostr::prelude::{Filter, Kind, Timestamp};
use agigit_event::{EvalReceipt, ProtocolEvent, RepoCoordinate, Signed, Signer};
use agigit_hash::ObjectId;
use agigit_net::PublishReport;

use super::{net, tag};
use crate::error::Error;

/// The most receipts listed for one repository (the newest first).
pub const MAX_RECEIPTS: usize = 1000;

/// A repository's receipts as the relays gave them: the ones that verify and parse, newest
/// first, and how many events were dropped (bad signature, malformed, another repository).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Receipts {
    /// Verified receipts, newest first, one per event id.
    pub receipts: Vec<Signed<EvalReceipt>>,
    /// Events dropped.
    pub ignored: usize,
}

impl<S: Signer + Sync + ?Sized> super::Remote<'_, S> {
    /// Signs `body` with this remote's signer, dated now, and publishes it to the push relays;
    /// at least `min_accepted` of them must take it.
    ///
    /// # Errors
    /// [`Error::Network`] when too few relays take it; [`Error::Sign`] when it cannot be signed.
    pub async fn publish_event<T: ProtocolEvent + Clone>(
        &self,
        body: &T,
        min_accepted: usize,
    ) -> Result<(Signed<T>, PublishReport), Error> {
        let signed = Signed::sign(body.clone(), self.signer(), Timestamp::now())?;
        let report = self
            .transport()
            .publish(signed.event(), min_accepted.max(1))
            .await
            .map_err(net)?;
        Ok((signed, report))
    }

    /// Signs `receipt` with this remote's signer and publishes it to the push relays; at least
    /// `min_accepted` of them must take it.
    ///
    /// # Errors
    /// [`Error::Network`] when too few relays take it; [`Error::Sign`] when it cannot be signed.
    pub async fn publish_receipt(
        &self,
        receipt: &EvalReceipt,
        min_accepted: usize,
    ) -> Result<(Signed<EvalReceipt>, PublishReport), Error> {
        self.publish_event(receipt, min_accepted).await
    }

    /// The receipts the fetch relays hold for `repo` (for `commit` only, when given), each
    /// verified; at most [`MAX_RECEIPTS`].
    ///
    /// # Errors
    /// [`Error::Network`] when no relay answers.
    pub async fn receipts(
        &self,
        repo: &RepoCoordinate,
        commit: Option<&ObjectId>,
    ) -> Result<Receipts, Error> {
        let filter = [Filter::new()
            .kind(Kind::Custom(agigit_event::kinds::EVAL_RECEIPT))
            .custom_tag(tag('a')?, repo.to_string())
            .limit(MAX_RECEIPTS)];
        let events = self.transport().query(&filter).await.map_err(net)?;
        let mut out = Receipts::default();
        let mut seen = std::collections::HashSet::new();
        for event in events {
            if !seen.insert(event.id) {
                continue;
            }
            match Signed::<EvalReceipt>::from_event(event) {
                Ok(r) if r.body().repo == *repo => {
                    if commit.is_none_or(|c| r.body().commit == *c) {
                        out.receipts.push(r);
                    }
                }
                _ => out.ignored += 1,
            }
        }
        out.receipts
            .sort_by_key(|r| std::cmp::Reverse((r.created_at(), r.id())));
        out.receipts.truncate(MAX_RECEIPTS);
        Ok(out)
    }
}
