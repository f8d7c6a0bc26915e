//! Market orders on the relays (kinds 1721 and 1723, their actions 1722, `docs/market.md`):
//! what the relays hold for one repository, gathered for a fold (`agigit-market`), which
//! checks every signature.

use agigit_event::RepoCoordinate;
use agigit_event::kinds::{self, kind};
use agigit_event::nostr::prelude::{Event, EventId, Filter};

use super::{net, tag};
use crate::error::Error;

/// Orders whose actions are asked in one query.
const ORDERS_PER_QUERY: usize = 20;

/// The most actions read per order (an order closes in a handful; more is noise).
const MAX_ACTIONS: usize = 200;

impl<S: agigit_event::Signer + Sync + ?Sized> super::Remote<'_, S> {
    /// The pull and storage orders for `repo` (their `a` tag) that the fetch relays hold, at
    /// most `limit`, and every action on them: the events as the relays gave them, for a fold
    /// to verify and order.
    ///
    /// # Errors
    /// [`Error::Network`] when no relay answers.
    pub async fn orders_of(
        &self,
        repo: &RepoCoordinate,
        limit: usize,
    ) -> Result<Vec<Event>, Error> {
        let filter = [Filter::new()
            .kinds([kind(kinds::PULL_ORDER), kind(kinds::STORAGE_ORDER)])
            .custom_tag(tag('a')?, repo.to_string())
            .limit(limit)];
        let mut events = self.transport().query(&filter).await.map_err(net)?;
        events.sort_by_key(|e| e.id);
        events.dedup_by_key(|e| e.id);
        events.truncate(limit);
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        for group in ids.chunks(ORDERS_PER_QUERY) {
            let filters: Vec<Filter> = group
                .iter()
                .map(|id| {
                    Filter::new()
                        .kind(kind(kinds::ORDER_ACTION))
                        .event(*id)
                        .limit(MAX_ACTIONS)
                })
                .collect();
            events.extend(self.transport().query(&filters).await.map_err(net)?);
        }
        Ok(events)
    }
}
