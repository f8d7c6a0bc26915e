//! A private repository's ref directory: its branch and tag names, which a public state lists
//! as refs in the clear, sealed into the state (`["sealed-refs", <epoch>, <base64>]`, DESIGN §5)
//! so that a reader can list the branches, find the default one and fetch the tags, while a
//! relay sees only opaque names.
//!
//! The plaintext is JSON — `{"branches": {<name>: <commit id>}, "tags": {<name>: {"commit":
//! <id>, "note": <message>}}}` — written by the owner or a maintainer, so hostile to a reader:
//! every name is checked as a ref name, every note as a state's note, and a branch is listed
//! only where the state's opaque ref for it names the same commit.

use std::collections::BTreeMap;

use agigit_dag::ObjectId;
use agigit_event::RefName;
use agigit_event::{RepoId, RepoState, SealedRefs, is_valid_note};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::private::{PrivateKeys, Sealed};
use crate::repository::tag_ref;

/// The most branches, and the most tags, one directory lists (a state event is bounded by the
/// relays' event size long before this).
const MAX_ENTRIES: usize = 65_536;

/// A tag in a [`RefDirectory`]: its commit and message (`None` for a lightweight tag).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagEntry {
    /// The commit.
    pub commit: ObjectId,
    /// The message (`agigit tag -m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A private repository's ref directory, as its state carries it sealed: branch names with the
/// commit each was pushed at, and tags. [`decode`](Self::decode) checks what a writer sealed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefDirectory {
    /// Branch names and the commit each was last pushed at.
    #[serde(default)]
    pub branches: BTreeMap<String, ObjectId>,
    /// Tag names and what they name.
    #[serde(default)]
    pub tags: BTreeMap<String, TagEntry>,
}

impl RefDirectory {
    /// The plaintext that is sealed: JSON, names in order.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a name that is not a ref name, a note a state cannot carry, or
    /// more than 65 536 branches or tags.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        self.check()
            .map_err(|e| Error::Invalid(format!("the ref directory: {e}")))?;
        serde_json::to_vec(self).map_err(Error::invalid_input("the ref directory"))
    }

    /// Reads an opened directory, checking every name and note.
    ///
    /// # Errors
    /// [`Error::CorruptData`] for bytes that are not one (the JSON error kept),
    /// [`Error::Corrupt`] for a name or note it must not hold.
    pub fn decode(plain: &[u8]) -> Result<Self, Error> {
        let directory: Self = serde_json::from_slice(plain)
            .map_err(Error::corrupt_data("the state's sealed ref directory"))?;
        directory
            .check()
            .map_err(|e| Error::Corrupt(format!("the state's sealed ref directory: {e}")))?;
        Ok(directory)
    }

    /// Checks every name and note, as [`RepoState`] checks a public state's.
    fn check(&self) -> Result<(), String> {
        if self.branches.len() > MAX_ENTRIES || self.tags.len() > MAX_ENTRIES {
            return Err(format!(
                "{} branches and {} tags: at most {MAX_ENTRIES} of each",
                self.branches.len(),
                self.tags.len()
            ));
        }
        for name in self.branches.keys() {
            RefName::branch(name).map_err(|e| format!("branch {name:?}: {e}"))?;
        }
        for (name, tag) in &self.tags {
            tag_ref(name).map_err(|e| e.to_string())?;
            if tag.note.as_deref().is_some_and(|n| !is_valid_note(n)) {
                return Err(format!(
                    "tag {name:?}: a message is 1–4096 bytes with no control characters but newline and tab"
                ));
            }
        }
        Ok(())
    }

    /// Seals the directory under the current key of `keys`, bound to repository `repo`.
    pub(crate) fn seal(&self, keys: &PrivateKeys, repo: &RepoId) -> Result<SealedRefs, Error> {
        let plain = self.encode()?;
        Ok(SealedRefs {
            epoch: keys.epoch(),
            sealed: keys.seal(Sealed::Refs(repo), &plain)?,
        })
    }

    /// Opens and checks a state's sealed directory.
    pub(crate) fn open(
        sealed: &SealedRefs,
        keys: &PrivateKeys,
        repo: &RepoId,
    ) -> Result<Self, Error> {
        Self::decode(&keys.open_sealed(Sealed::Refs(repo), sealed.epoch, &sealed.sealed)?)
    }

    /// The directory of `state`, opened with `keys`: empty when the state has none (a state
    /// published before directories existed).
    pub(crate) fn of(state: &RepoState, keys: &PrivateKeys) -> Result<Self, Error> {
        state
            .sealed_refs
            .as_ref()
            .map_or_else(|| Ok(Self::default()), |s| Self::open(s, keys, &state.repo))
    }

    /// The branches whose opaque ref in `state` names the commit the directory says, each with
    /// that commit; a branch pushed since by a client that left the directory as it was is not
    /// listed.
    pub(crate) fn branches_in(
        &self,
        state: &RepoState,
        keys: &PrivateKeys,
    ) -> Result<BTreeMap<String, ObjectId>, Error> {
        let mut out = BTreeMap::new();
        for (name, id) in &self.branches {
            let published = match super::state::published_tip(state, Some(keys), name) {
                Ok(p) => Some(p),
                // Not in the state: not listed either.
                Err(Error::UnknownRevision(_)) => None,
                Err(e) => return Err(e),
            };
            if published.is_some_and(|p| keys.is_name_of(id, &p)) {
                out.insert(name.clone(), *id);
            }
        }
        Ok(out)
    }

    /// The branch `state`'s `HEAD` names, if the directory lists it.
    pub(crate) fn head_in(
        &self,
        state: &RepoState,
        keys: &PrivateKeys,
    ) -> Result<Option<String>, Error> {
        let Some(head) = &state.head else {
            return Ok(None);
        };
        for name in self.branches.keys() {
            if keys.branch_refs(name)?.contains(head) {
                return Ok(Some(name.clone()));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> PrivateKeys {
        let owner = agigit_crypt::ReaderSecret::from_bytes(&[7; 32]).expect("secret");
        PrivateKeys::generate(&owner, &[]).expect("keys")
    }

    fn sample() -> RefDirectory {
        let mut d = RefDirectory::default();
        d.branches
            .insert("main".into(), ObjectId::digest(b"main tip"));
        d.branches
            .insert("exp/lora".into(), ObjectId::digest(b"exp tip"));
        d.tags.insert(
            "v1".into(),
            TagEntry {
                commit: ObjectId::digest(b"v1"),
                note: Some("first release\nwith notes".into()),
            },
        );
        d.tags.insert(
            "light".into(),
            TagEntry {
                commit: ObjectId::digest(b"light"),
                note: None,
            },
        );
        d
    }

    #[test]
    fn a_directory_opens_as_sealed_and_only_for_its_repository() {
        let k = keys();
        let repo = RepoId::new("model").expect("id");
        let sealed = sample().seal(&k, &repo).expect("seal");
        assert_eq!(sealed.epoch, 0);
        assert!(
            !sealed.sealed.windows(4).any(|w| w == b"main"),
            "a branch name is in the clear"
        );
        assert_eq!(
            RefDirectory::open(&sealed, &k, &repo).expect("open"),
            sample()
        );
        // Moved to another repository of the same owner: refused.
        let other = RepoId::new("other").expect("id");
        assert!(matches!(
            RefDirectory::open(&sealed, &k, &other),
            Err(Error::CorruptData { .. })
        ));
        // Another key: refused.
        assert!(RefDirectory::open(&sealed, &keys_other(), &repo).is_err());
        // A flipped byte: refused.
        let mut bad = sealed.clone();
        let last = bad.sealed.len() - 1;
        bad.sealed[last] ^= 1;
        assert!(matches!(
            RefDirectory::open(&bad, &k, &repo),
            Err(Error::CorruptData { .. })
        ));
    }

    fn keys_other() -> PrivateKeys {
        let owner = agigit_crypt::ReaderSecret::from_bytes(&[9; 32]).expect("secret");
        PrivateKeys::generate(&owner, &[]).expect("keys")
    }

    /// A hostile owner seals names a checkout or a terminal must not take: refused on open.
    #[test]
    fn hostile_names_and_notes_are_refused_on_open() {
        let k = keys();
        let repo = RepoId::new("model").expect("id");
        let seal_raw = |json: &str| SealedRefs {
            epoch: 0,
            sealed: k.seal(Sealed::Refs(&repo), json.as_bytes()).expect("seal"),
        };
        let id = ObjectId::digest(b"x").to_string();
        for json in [
            format!(r#"{{"branches": {{"../../etc": "{id}"}}}}"#),
            format!(r#"{{"branches": {{"a..b": "{id}"}}}}"#),
            format!(r#"{{"tags": {{"v1\u001b[2J": {{"commit": "{id}"}}}}}}"#),
            format!(r#"{{"tags": {{"v1": {{"commit": "{id}", "note": "\u001b[2Jhi"}}}}}}"#),
            format!(r#"{{"tags": {{"v1": {{"commit": "{id}", "note": ""}}}}}}"#),
            r#"{"branches": {"main": "not an id"}}"#.to_owned(),
            r#"{"branches": ["main"]}"#.to_owned(),
            "not json".to_owned(),
        ] {
            let r = RefDirectory::open(&seal_raw(&json), &k, &repo);
            assert!(
                matches!(r, Err(Error::Corrupt(_) | Error::CorruptData { .. })),
                "{json}: {r:?}"
            );
        }
        // And sealing one is refused before anything is published.
        let mut d = sample();
        d.branches
            .insert("bad..name".into(), ObjectId::digest(b"x"));
        assert!(matches!(d.seal(&k, &repo), Err(Error::Invalid(_))));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any directory of valid names and notes reads back as written, and its encoding is
        /// stable.
        #[test]
        fn a_directory_round_trips(
            branches in proptest::collection::btree_map(
                "[a-z0-9][a-z0-9_-]{0,8}(/[a-z0-9]{1,4})?",
                proptest::prelude::any::<[u8; 32]>(),
                0..6,
            ),
            tags in proptest::collection::btree_map(
                "[a-z0-9][a-z0-9._-]{0,8}",
                (
                    proptest::prelude::any::<[u8; 32]>(),
                    proptest::option::of("[ -~\n\t]{1,40}"),
                ),
                0..6,
            ),
        ) {
            let d = RefDirectory {
                branches: branches.into_iter().map(|(n, id)| (n, id.into())).collect(),
                tags: tags
                    .into_iter()
                    .map(|(n, (id, note))| (n, TagEntry { commit: id.into(), note }))
                    .collect(),
            };
            // Names the generator makes that the ref rules refuse (a ".." or a trailing '.')
            // are refused on both sides.
            match d.encode() {
                Ok(bytes) => {
                    let back = RefDirectory::decode(&bytes).expect("decodes");
                    proptest::prop_assert_eq!(&back, &d);
                    proptest::prop_assert_eq!(back.encode().expect("encodes"), bytes);
                }
                Err(_) => {
                    let raw = serde_json::to_vec(&d).expect("json");
                    proptest::prop_assert!(RefDirectory::decode(&raw).is_err());
                }
            }
        }
    }

    #[test]
    fn only_branches_whose_opaque_ref_agrees_are_listed() {
        let k = keys();
        let d = sample();
        let mut state = RepoState::new(RepoId::new("model").expect("id"));
        let main = ObjectId::digest(b"main tip");
        state
            .refs
            .insert(k.branch_ref("main").expect("ref"), k.commit_name(&main));
        // exp/lora's opaque ref names another commit: a client that did not update the
        // directory moved it.
        state.refs.insert(
            k.branch_ref("exp/lora").expect("ref"),
            k.commit_name(&ObjectId::digest(b"elsewhere")),
        );
        state.head = Some(k.branch_ref("main").expect("ref"));
        let listed = d.branches_in(&state, &k).expect("list");
        assert_eq!(listed, BTreeMap::from([("main".to_owned(), main)]));
        assert_eq!(
            d.head_in(&state, &k).expect("head").as_deref(),
            Some("main")
        );
    }
}
