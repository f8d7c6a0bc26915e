//! Competition rounds on the relays (kinds 1725 and 1726, `docs/rounds.md`): announcing and
//! acting on one, publishing an evaluation with its loss list, and gathering everything a fold
//! needs — the round's actions, the receipts on its foundation and submissions, and each
//! receipt's loss list from the blob servers, every signature and hash checked.

use agigit_eval::round::{Evidence, MAX_EVENTS};
use agigit_event::nostr::prelude::{EventId, Filter, Kind};
use agigit_event::round::{RoundAction, RoundEvent, RoundVerb};
use agigit_event::{EvalReceipt, Signed, Signer, kinds};
use agigit_hash::BlobHash;
use bytes::Bytes;

use super::{net, tag};
use crate::error::Error;

/// The largest loss list read (about a million documents with short names).
pub const MAX_LOSS_LIST: u64 = 64 << 20;

/// What the relays hold for a round.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RoundEvents {
    /// Its actions, verified.
    pub actions: Vec<Signed<RoundAction>>,
    /// Receipts on its foundation and submissions, with their loss lists.
    pub evidence: Vec<Evidence>,
    /// Events and receipts dropped, and why.
    pub ignored: Vec<(EventId, String)>,
}

impl<S: Signer + Sync + ?Sized> super::Remote<'_, S> {
    /// Uploads `losses` (a loss list, [`agigit_eval::encode_losses`]) to every push server that
    /// takes it; returns its hash, for the receipt's `blob` tag.
    ///
    /// # Errors
    /// [`Error::Network`] when no server takes it.
    pub async fn upload_losses(&self, losses: Vec<u8>) -> Result<BlobHash, Error> {
        let data = Bytes::from(losses);
        let hash = BlobHash::digest(&data);
        let mut stored = 0;
        let mut last = None;
        for server in self.transport().push_servers() {
            match self
                .transport()
                .put_blob_hashed(&server, &hash, data.clone())
                .await
            {
                Ok(_) => stored += 1,
                Err(e) => last = Some(e),
            }
        }
        match (stored, last) {
            (0, Some(e)) => Err(net(e)),
            (0, None) => Err(Error::Invalid(
                "no push server to upload the loss list to".into(),
            )),
            _ => Ok(hash),
        }
    }

    /// Round `id` as the fetch relays hold it, verified; `None` when none holds it.
    ///
    /// # Errors
    /// [`Error::Network`] when no relay answers.
    pub async fn round(&self, id: &EventId) -> Result<Option<Signed<RoundEvent>>, Error> {
        let filter = [Filter::new()
            .kind(Kind::Custom(kinds::ROUND))
            .id(*id)
            .limit(1)];
        let events = self.transport().query(&filter).await.map_err(net)?;
        Ok(events
            .into_iter()
            .filter(|e| e.id == *id)
            .find_map(|e| Signed::<RoundEvent>::from_event(e).ok()))
    }

    /// The rounds announced on repository `repo` (its `a` tag) that the fetch relays hold,
    /// verified, newest first, at most `limit`; events that do not verify or parse are left
    /// out.
    ///
    /// # Errors
    /// [`Error::Network`] when no relay answers.
    pub async fn rounds_of(
        &self,
        repo: &agigit_event::RepoCoordinate,
        limit: usize,
    ) -> Result<Vec<Signed<RoundEvent>>, Error> {
        let filter = [Filter::new()
            .kind(Kind::Custom(kinds::ROUND))
            .custom_tag(tag('a')?, repo.to_string())
            .limit(limit)];
        let events = self.transport().query(&filter).await.map_err(net)?;
        let mut rounds: Vec<Signed<RoundEvent>> = events
            .into_iter()
            .filter_map(|e| Signed::<RoundEvent>::from_event(e).ok())
            .filter(|r| r.body().repo == *repo)
            .collect();
        rounds.sort_by_key(|r| (std::cmp::Reverse(r.created_at()), r.id()));
        rounds.dedup_by_key(|r| r.id());
        rounds.truncate(limit);
        Ok(rounds)
    }

    /// Everything the relays hold for `round`: its actions, and the receipts on its foundation
    /// and each submission's repository with their loss lists (downloaded from the fetch
    /// servers, at most [`MAX_LOSS_LIST`] bytes each, decoded and checked against the receipt).
    /// What does not verify, parse or download is listed in [`RoundEvents::ignored`]; the fold
    /// decides what the rest is worth.
    ///
    /// # Errors
    /// [`Error::Network`] when no relay answers.
    pub async fn round_events(&self, round: &Signed<RoundEvent>) -> Result<RoundEvents, Error> {
        let mut out = RoundEvents::default();
        let filter = [Filter::new()
            .kind(Kind::Custom(kinds::ROUND_ACTION))
            .event(round.id())
            .limit(MAX_EVENTS)];
        let mut seen = std::collections::HashSet::new();
        for event in self.transport().query(&filter).await.map_err(net)? {
            let id = event.id;
            if !seen.insert(id) {
                continue;
            }
            match Signed::<RoundAction>::from_event(event) {
                Ok(a) if a.body().round == round.id() => out.actions.push(a),
                Ok(_) => out.ignored.push((id, "another round's action".into())),
                Err(e) => out.ignored.push((id, format!("not a round action: {e}"))),
            }
        }
        let mut repos = vec![round.body().repo.to_string()];
        for a in &out.actions {
            if let RoundVerb::Submit { repo, .. } = &a.body().verb {
                let repo = repo.to_string();
                if !repos.contains(&repo) {
                    repos.push(repo);
                }
            }
        }
        let filter = [Filter::new()
            .kind(Kind::Custom(kinds::EVAL_RECEIPT))
            .custom_tags(tag('a')?, repos)
            .since(round.created_at())
            .limit(MAX_EVENTS)];
        let servers = self.transport().fetch_servers();
        // The test set the fold accepts as revealed (by the organizer, in its window, opening
        // the seal): receipts on anything else are not this round's.
        let revealed = agigit_eval::round::fold(round, &out.actions, &[], u64::MAX)
            .revealed
            .map(|(data, _)| data);
        for event in self.transport().query(&filter).await.map_err(net)? {
            let id = event.id;
            if !seen.insert(id) {
                continue;
            }
            let receipt = match Signed::<EvalReceipt>::from_event(event) {
                Ok(r) => r,
                Err(e) => {
                    out.ignored.push((id, format!("not a receipt: {e}")));
                    continue;
                }
            };
            if Some(receipt.body().data) != revealed {
                continue; // Not on the revealed test set: not this round's.
            }
            let Some(blob) = receipt.body().blob else {
                out.ignored
                    .push((id, "a receipt without its loss list (no blob tag)".into()));
                continue;
            };
            match self.loss_list(&servers, &blob, receipt.body()).await {
                Ok(losses) => out.evidence.push(Evidence { receipt, losses }),
                Err(why) => out.ignored.push((id, why)),
            }
        }
        Ok(out)
    }

    async fn loss_list(
        &self,
        servers: &[String],
        blob: &BlobHash,
        receipt: &EvalReceipt,
    ) -> Result<Vec<agigit_eval::DocumentLoss>, String> {
        let mut why = String::from("no blob server to fetch its loss list from");
        for server in servers {
            match self.transport().get_blob(server, blob, MAX_LOSS_LIST).await {
                Ok(bytes) => {
                    return agigit_eval::decode_losses(&bytes, receipt.documents)
                        .map_err(|e| e.to_string());
                }
                Err(e) => why = format!("its loss list: {e}"),
            }
        }
        Err(why)
    }
}
