//! Trees: sorted, named entries.

use agigit_hash::ObjectId;

use super::codec::{Reader, put_str};
use super::name::{NameError, check_entry_name};
use super::{BODY_VERSION, DecodeError, Kind};

/// What a tree entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryMode {
    /// A subtree.
    Tree,
    /// A regular file (its bytes in a blob).
    File,
    /// An executable file.
    Executable,
    /// A tensor (a tensor object).
    Tensor,
    /// A regular file stored as its content-defined chunks (a chunk list).
    Chunked,
}

impl EntryMode {
    const fn code(self) -> u8 {
        match self {
            EntryMode::Tree => 1,
            EntryMode::File => 2,
            EntryMode::Executable => 3,
            EntryMode::Tensor => 4,
            EntryMode::Chunked => 5,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => EntryMode::Tree,
            2 => EntryMode::File,
            3 => EntryMode::Executable,
            4 => EntryMode::Tensor,
            5 => EntryMode::Chunked,
            _ => return None,
        })
    }

    /// The kind of object an entry of this mode points at.
    pub const fn object_kind(self) -> Kind {
        match self {
            EntryMode::Tree => Kind::Tree,
            EntryMode::File | EntryMode::Executable => Kind::Blob,
            EntryMode::Tensor => Kind::Tensor,
            EntryMode::Chunked => Kind::Chunks,
        }
    }
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TreeEntry {
    /// The name (one path component).
    pub name: String,
    /// What it points at.
    pub mode: EntryMode,
    /// The object.
    pub id: ObjectId,
}

impl TreeEntry {
    /// An entry.
    pub fn new(name: impl Into<String>, mode: EntryMode, id: ObjectId) -> Self {
        TreeEntry {
            name: name.into(),
            mode,
            id,
        }
    }
}

/// A directory: entries sorted by name (bytewise), each name once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tree {
    entries: Vec<TreeEntry>,
}

impl Tree {
    /// A tree of `entries` in any order; fails on an invalid or repeated name.
    pub fn new(entries: impl IntoIterator<Item = TreeEntry>) -> Result<Self, NameError> {
        let mut entries: Vec<TreeEntry> = entries.into_iter().collect();
        for e in &entries {
            check_entry_name(&e.name, e.mode)?;
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = entries.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(NameError::Duplicate {
                name: w[0].name.clone(),
            });
        }
        Ok(Tree { entries })
    }

    /// The entries, sorted by name.
    pub fn entries(&self) -> &[TreeEntry] {
        &self.entries
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&TreeEntry> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Adds or replaces an entry; returns the one replaced.
    pub fn insert(&mut self, entry: TreeEntry) -> Result<Option<TreeEntry>, NameError> {
        check_entry_name(&entry.name, entry.mode)?;
        match self
            .entries
            .binary_search_by(|e| e.name.as_str().cmp(&entry.name))
        {
            Ok(i) => Ok(Some(std::mem::replace(&mut self.entries[i], entry))),
            Err(i) => {
                self.entries.insert(i, entry);
                Ok(None)
            }
        }
    }

    /// Removes the entry called `name`.
    pub fn remove(&mut self, name: &str) -> Option<TreeEntry> {
        let i = self
            .entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()?;
        Some(self.entries.remove(i))
    }

    /// Whether the tree has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The canonical body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.entries.len() * 48);
        out.push(BODY_VERSION);
        #[allow(
            clippy::cast_possible_truncation,
            reason = "a tree of 2^32 entries is not made"
        )]
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.push(e.mode.code());
            put_str(&mut out, 2, &e.name);
            out.extend_from_slice(e.id.as_bytes());
        }
        out
    }

    /// Decodes a canonical body: names valid, strictly increasing.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Kind::Tree, body)?;
        let count = r.u32("entry count")? as usize;
        // Each entry takes at least 1 + 2 + 1 + 32 bytes: refuse counts the body cannot hold
        // before allocating for them.
        if count > body.len() / 36 {
            return Err(DecodeError::Truncated {
                kind: Kind::Tree,
                what: "entries",
            });
        }
        let mut entries: Vec<TreeEntry> = Vec::with_capacity(count);
        for _ in 0..count {
            let code = r.u8("mode")?;
            let mode = EntryMode::from_code(code)
                .ok_or_else(|| r.invalid(format!("unknown entry mode {code}")))?;
            let name = r.str(2, "name")?;
            check_entry_name(name, mode).map_err(DecodeError::Name)?;
            if let Some(prev) = entries.last()
                && prev.name.as_str() >= name
            {
                return Err(r.invalid(format!(
                    "entries out of order or repeated: {:?} then {name:?}",
                    prev.name
                )));
            }
            let id = r.id("entry id")?;
            entries.push(TreeEntry::new(name, mode, id));
        }
        r.finish()?;
        Ok(Tree { entries })
    }
}
