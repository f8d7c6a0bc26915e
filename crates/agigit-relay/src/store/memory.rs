//! Events in memory: the reference backend.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use nostr::prelude::{Event, EventId, Filter, Kind, PublicKey, Timestamp};

use super::{
    EventStore, EventStoreError, SaveOutcome, Slot, check_filters, deletion_targets, is_expired,
    matches, merge_results, newest_first, slot, supersedes, verify,
};

#[derive(Default)]
struct State {
    events: HashMap<EventId, Event>,
    /// Replaceable and addressable slots → the event holding them.
    slots: BTreeMap<(PublicKey, Kind, Option<String>), EventId>,
    /// Ids deleted by their author.
    deleted: HashSet<(EventId, PublicKey)>,
    /// Addressable coordinates deleted up to a time.
    deleted_coordinates: HashMap<(Kind, PublicKey, String), Timestamp>,
}

/// Events in a map behind a mutex: for tests, and the reference the SQLite store is held to.
#[derive(Default)]
pub struct MemoryEventStore {
    state: Mutex<State>,
}

impl MemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryEventStore")
    }
}

impl EventStore for MemoryEventStore {
    fn save(&self, event: &Event) -> Result<SaveOutcome, EventStoreError> {
        verify(event)?;
        let mut s = self.state.lock().map_err(|_| EventStoreError::Poisoned)?;
        if s.events.contains_key(&event.id) {
            return Ok(SaveOutcome::Duplicate);
        }
        if is_expired(event, Timestamp::now()) {
            return Ok(SaveOutcome::Expired);
        }
        if s.deleted.contains(&(event.id, event.pubkey)) {
            return Ok(SaveOutcome::Deleted);
        }
        let key = match slot(event) {
            Slot::Ephemeral => return Ok(SaveOutcome::Ephemeral),
            Slot::Regular => None,
            Slot::Replaceable => Some((event.pubkey, event.kind, None)),
            Slot::Addressable(d) => {
                let coordinate = (event.kind, event.pubkey, d.clone());
                if s.deleted_coordinates
                    .get(&coordinate)
                    .is_some_and(|&until| event.created_at <= until)
                {
                    return Ok(SaveOutcome::Deleted);
                }
                Some((event.pubkey, event.kind, Some(d)))
            }
        };
        let mut outcome = SaveOutcome::Stored;
        // A slot whose event a deletion (NIP-09, by id) removed is free: the slot map may still
        // name it.
        if let Some(key) = &key
            && let Some(old_id) = s.slots.get(key).copied()
            && let Some(old) = s.events.get(&old_id)
        {
            if !supersedes(event, old) {
                return Ok(SaveOutcome::Obsolete);
            }
            s.events.remove(&old_id);
            outcome = SaveOutcome::Replaced;
        }
        if event.kind == Kind::EventDeletion {
            let targets = deletion_targets(event);
            for id in targets.ids {
                s.deleted.insert((id, event.pubkey));
                if s.events.get(&id).is_some_and(|e| e.pubkey == event.pubkey) {
                    s.events.remove(&id);
                }
            }
            for (kind, author, d) in targets.coordinates {
                let until = event.created_at;
                let entry = s
                    .deleted_coordinates
                    .entry((kind, author, d.clone()))
                    .or_insert(until);
                *entry = (*entry).max(until);
                let slot_key = (author, kind, Some(d));
                if let Some(id) = s.slots.get(&slot_key).copied()
                    && s.events.get(&id).is_some_and(|e| e.created_at <= until)
                {
                    s.events.remove(&id);
                    s.slots.remove(&slot_key);
                }
            }
        }
        if let Some(key) = key {
            s.slots.insert(key, event.id);
        }
        s.events.insert(event.id, event.clone());
        Ok(outcome)
    }

    fn query(&self, filters: &[Filter]) -> Result<Vec<Event>, EventStoreError> {
        check_filters(filters)?;
        let s = self.state.lock().map_err(|_| EventStoreError::Poisoned)?;
        let now = Timestamp::now();
        let per_filter = filters
            .iter()
            .map(|f| {
                let mut hits: Vec<Event> = s
                    .events
                    .values()
                    .filter(|e| matches(f, e) && !is_expired(e, now))
                    .cloned()
                    .collect();
                hits.sort_by(newest_first);
                if let Some(limit) = f.limit {
                    hits.truncate(limit);
                }
                hits
            })
            .collect();
        Ok(merge_results(per_filter))
    }
}
