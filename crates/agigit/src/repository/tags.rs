//! Tags: names for commits (`refs/tags/<name>`), optionally annotated with a message. A push of
//! a public repository publishes the tags on the pushed history in its signed state (the
//! messages as the state's notes), and a fetch brings the remote's tags in.

use std::collections::BTreeMap;

use agigit_dag::refs::{Expected, RefKey, RefName, Target, Transaction};
use agigit_dag::{FindExt as _, ObjectId};

use crate::Repository;
use crate::error::Error;

/// A tag: the commit it names and, for an annotated tag, its message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tag {
    /// The commit.
    pub commit: ObjectId,
    /// The message (`agigit tag -m`).
    pub message: Option<String>,
}

/// The file the messages of annotated tags are kept in, under `.agigit/`.
const NOTES_FILE: &str = "tag-notes.toml";

/// `refs/tags/<name>`, checked as a ref name.
pub(crate) fn tag_ref(name: &str) -> Result<RefName, Error> {
    RefName::new(format!("refs/tags/{name}"))
        .map_err(Error::invalid_input(format_args!("tag name {name:?}")))
}

impl Repository {
    fn notes_path(&self) -> std::path::PathBuf {
        self.root().join(crate::worktree::DOT_DIR).join(NOTES_FILE)
    }

    fn read_notes(&self) -> Result<BTreeMap<String, String>, Error> {
        let path = self.notes_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(Error::corrupt_data(path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io(&path)(e)),
        }
    }

    fn write_notes(&self, notes: &BTreeMap<String, String>) -> Result<(), Error> {
        let path = self.notes_path();
        let text = toml::to_string(notes).map_err(Error::invalid_input("a tag's message"))?;
        crate::worktree::write_atomic(&path, false, |f| {
            std::io::Write::write_all(f, text.as_bytes()).map_err(Error::io(&path))
        })
    }

    /// Names commit `rev` `name` (`refs/tags/<name>`), with `message` for an annotated tag.
    /// An existing tag is kept unless `force`.
    ///
    /// # Errors
    /// [`Error::RefName`] for a name that is not a ref name; [`Error::Invalid`] for a message a
    /// state cannot carry (over 4096 bytes, or a control character); [`Error::TagExists`] for a
    /// tag that exists unless `force`; [`Error::UnknownRevision`].
    pub fn create_tag(
        &self,
        name: &str,
        rev: &str,
        message: Option<&str>,
        force: bool,
    ) -> Result<ObjectId, Error> {
        let tag = tag_ref(name)?;
        if let Some(m) = message
            && !agigit_event::is_valid_note(m)
        {
            return Err(Error::Invalid(
                "a tag message is 1–4096 bytes with no control characters but newline and tab"
                    .to_owned(),
            ));
        }
        let id = self.resolve(rev)?;
        let existing = self.refs().resolve(&RefKey::Name(tag.clone()))?;
        if let Some(old) = existing
            && !force
        {
            return Err(Error::TagExists {
                name: name.to_owned(),
                at: old,
            });
        }
        let expected = existing.map_or(Expected::Absent, |o| Expected::Value(Target::Id(o)));
        self.refs().commit(Transaction::new().edit(
            RefKey::Name(tag),
            expected,
            Some(Target::Id(id)),
        ))?;
        let mut notes = self.read_notes()?;
        let changed = match message {
            Some(m) => notes.insert(name.to_owned(), m.to_owned()).as_deref() != Some(m),
            None => notes.remove(name).is_some(),
        };
        if changed {
            self.write_notes(&notes)?;
        }
        Ok(id)
    }

    /// Every tag, by name.
    ///
    /// # Errors
    /// Ref errors; a notes file that does not read.
    pub fn tags(&self) -> Result<BTreeMap<String, Tag>, Error> {
        let notes = self.read_notes()?;
        let mut out = BTreeMap::new();
        for (name, target) in self.refs().list("refs/tags/")? {
            if let (Some(short), Target::Id(id)) =
                (name.as_str().strip_prefix("refs/tags/"), target)
            {
                out.insert(
                    short.to_owned(),
                    Tag {
                        commit: id,
                        message: notes.get(short).cloned(),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Deletes tag `name`; returns the commit it named.
    ///
    /// # Errors
    /// [`Error::UnknownRevision`] when there is no such tag.
    pub fn delete_tag(&self, name: &str) -> Result<ObjectId, Error> {
        let tag = tag_ref(name)?;
        let at = self
            .refs()
            .resolve(&RefKey::Name(tag.clone()))?
            .ok_or_else(|| Error::UnknownRevision(format!("tag {name}")))?;
        self.refs().commit(Transaction::new().edit(
            RefKey::Name(tag),
            Expected::Value(Target::Id(at)),
            None,
        ))?;
        let mut notes = self.read_notes()?;
        if notes.remove(name).is_some() {
            self.write_notes(&notes)?;
        }
        Ok(at)
    }

    /// Takes a remote tag in, unless a local tag of that name exists or its commit is not here:
    /// returns whether it did (a local tag is never moved by a fetch, as in git).
    pub(crate) fn adopt_tag(
        &self,
        name: &RefName,
        id: ObjectId,
        message: Option<&str>,
    ) -> Result<bool, Error> {
        let Some(short) = name.as_str().strip_prefix("refs/tags/") else {
            return Ok(false);
        };
        // The cheap check first: after the first branch of a fetch, most tags are here.
        if self.refs().resolve(&RefKey::Name(name.clone()))?.is_some()
            || self.store().find_commit(&id).is_err()
        {
            return Ok(false);
        }
        self.refs().commit(Transaction::new().edit(
            RefKey::Name(name.clone()),
            Expected::Absent,
            Some(Target::Id(id)),
        ))?;
        if let Some(m) = message {
            let mut notes = self.read_notes()?;
            notes.insert(short.to_owned(), m.to_owned());
            self.write_notes(&notes)?;
        }
        Ok(true)
    }
}
