//! An in-memory object store.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, RwLock};

use agigit_hash::ObjectId;

use super::{Find, StoreError, Write};
use crate::object::{Kind, Limits, ObjectRef, compute_id};

type Objects = HashMap<ObjectId, (Kind, Arc<[u8]>)>;

/// Objects in a map, for tests and for short-lived work.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: RwLock<Objects>,
    limits: Limits,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.objects.read().map_or(0, |m| m.len())
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every object id, in no order.
    pub fn ids(&self) -> Vec<ObjectId> {
        self.objects
            .read()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }
}

fn poisoned() -> StoreError {
    StoreError::Io {
        path: "<memory>".into(),
        source: io::Error::other("a writer panicked while holding the store's lock"),
    }
}

impl Find for MemoryStore {
    fn ids_with_prefix(
        &self,
        prefix: &crate::rev::HexPrefix,
        limit: usize,
    ) -> Result<Vec<ObjectId>, StoreError> {
        let map = self.objects.read().map_err(|_| poisoned())?;
        let mut ids: Vec<ObjectId> = map
            .keys()
            .filter(|id| prefix.matches(id))
            .copied()
            .collect();
        ids.sort();
        ids.truncate(limit);
        Ok(ids)
    }

    fn try_find<'a>(
        &self,
        id: &ObjectId,
        buf: &'a mut Vec<u8>,
    ) -> Result<Option<ObjectRef<'a>>, StoreError> {
        let map = self.objects.read().map_err(|_| poisoned())?;
        let Some((kind, body)) = map.get(id) else {
            return Ok(None);
        };
        buf.clear();
        buf.extend_from_slice(body);
        Ok(Some(ObjectRef {
            kind: *kind,
            data: buf,
        }))
    }

    fn header_of(&self, id: &ObjectId) -> Result<Option<(Kind, u64)>, StoreError> {
        let map = self.objects.read().map_err(|_| poisoned())?;
        Ok(map.get(id).map(|(kind, body)| (*kind, body.len() as u64)))
    }

    fn contains(&self, id: &ObjectId) -> Result<bool, StoreError> {
        Ok(self
            .objects
            .read()
            .map_err(|_| poisoned())?
            .contains_key(id))
    }
}

impl Write for MemoryStore {
    fn write_stream(
        &self,
        kind: Kind,
        size: u64,
        from: &mut dyn Read,
    ) -> Result<ObjectId, StoreError> {
        super::check_size(self.limits, kind, size)?;
        let mut body = Vec::new();
        from.take(size.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(StoreError::Source)?;
        if body.len() as u64 != size {
            return Err(StoreError::SizeMismatch {
                declared: size,
                actual: body.len() as u64,
            });
        }
        let id = compute_id(kind, &body);
        self.objects
            .write()
            .map_err(|_| poisoned())?
            .entry(id)
            .or_insert_with(|| (kind, body.into()));
        Ok(id)
    }
}
