//! Commits.

use agigit_hash::ObjectId;

use super::codec::{Reader, put_str};
use super::{BODY_VERSION, DecodeError, Kind};

/// Most parents of one commit.
pub const MAX_PARENTS: usize = 1024;
/// Most extra headers.
pub const MAX_EXTRA: usize = 256;

/// The foundation a fork was made from: the foundation repository's coordinate (as text, e.g.
/// `30717:<owner>:<repo>`) and the commit forked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ForkBase {
    /// The foundation repository's coordinate: 1–512 bytes, no control characters.
    pub repo: String,
    /// The foundation commit.
    pub commit: ObjectId,
}

/// A commit: a model tree, its parents, the fork base if any, the author's Nostr key (x-only, 32
/// bytes), the time (Unix seconds), the message and free extra headers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Commit {
    /// The tree.
    pub tree: ObjectId,
    /// The parents, in order (the first is the branch the commit was made on).
    pub parents: Vec<ObjectId>,
    /// The foundation model this repository forks, when it is a fork.
    pub base: Option<ForkBase>,
    /// The author's x-only Nostr public key.
    pub author: [u8; 32],
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// The message (UTF-8).
    pub message: String,
    /// Extra headers, sorted by key, each key once: 1–64 characters of `a-z 0-9 -`.
    pub extra: Vec<(String, Vec<u8>)>,
}

impl Commit {
    /// Checks every field against the format's rules; `encode` assumes this holds.
    pub fn validate(&self) -> Result<(), String> {
        if self.parents.len() > MAX_PARENTS {
            return Err(format!(
                "{} parents (at most {MAX_PARENTS})",
                self.parents.len()
            ));
        }
        let mut sorted = self.parents.clone();
        sorted.sort();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err("a parent is listed twice".into());
        }
        if let Some(b) = &self.base
            && (b.repo.is_empty() || b.repo.len() > 512 || b.repo.chars().any(char::is_control))
        {
            return Err(format!("fork base repository {:?}", b.repo));
        }
        if u32::try_from(self.message.len()).is_err() {
            return Err("message longer than 4 GiB".into());
        }
        if self.extra.len() > MAX_EXTRA {
            return Err(format!(
                "{} extra headers (at most {MAX_EXTRA})",
                self.extra.len()
            ));
        }
        for (k, v) in &self.extra {
            let ok = !k.is_empty()
                && k.len() <= 64
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(format!("extra header name {k:?}"));
            }
            if u32::try_from(v.len()).is_err() {
                return Err(format!("extra header {k:?} longer than 4 GiB"));
            }
        }
        if self.extra.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("extra headers must be sorted by name, each once".into());
        }
        Ok(())
    }

    /// The canonical body. Call [`validate`](Self::validate) first.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.message.len() + 32 * self.parents.len());
        out.push(BODY_VERSION);
        out.extend_from_slice(self.tree.as_bytes());
        #[allow(clippy::cast_possible_truncation, reason = "validated: at most 1024")]
        out.extend_from_slice(&(self.parents.len() as u16).to_le_bytes());
        for p in &self.parents {
            out.extend_from_slice(p.as_bytes());
        }
        match &self.base {
            None => out.push(0),
            Some(b) => {
                out.push(1);
                put_str(&mut out, 2, &b.repo);
                out.extend_from_slice(b.commit.as_bytes());
            }
        }
        out.extend_from_slice(&self.author);
        out.extend_from_slice(&self.time.to_le_bytes());
        put_str(&mut out, 4, &self.message);
        #[allow(clippy::cast_possible_truncation, reason = "validated: at most 256")]
        out.extend_from_slice(&(self.extra.len() as u16).to_le_bytes());
        for (k, v) in &self.extra {
            put_str(&mut out, 1, k);
            #[allow(clippy::cast_possible_truncation, reason = "validated")]
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        out
    }

    /// Reads only the parents and the time of a commit body: what a history walk needs. The
    /// fields it reads are checked as [`decode`](Self::decode) checks them; the message and the
    /// extra headers are not read at all.
    pub fn decode_links(body: &[u8]) -> Result<(Vec<ObjectId>, i64), DecodeError> {
        let mut r = Reader::new(Kind::Commit, body)?;
        r.id("tree")?;
        let nparents = usize::from(r.u16("parent count")?);
        if nparents > MAX_PARENTS {
            return Err(r.invalid(format!("{nparents} parents")));
        }
        let parents: Vec<ObjectId> = (0..nparents)
            .map(|_| r.id("parent"))
            .collect::<Result<_, _>>()?;
        if r.flag("fork base")? {
            r.str(2, "fork base repository")?;
            r.id("fork base commit")?;
        }
        r.id("author")?;
        let time = r.i64("time")?;
        Ok((parents, time))
    }

    /// Decodes a canonical body.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Kind::Commit, body)?;
        let tree = r.id("tree")?;
        let nparents = usize::from(r.u16("parent count")?);
        if nparents > MAX_PARENTS {
            return Err(r.invalid(format!("{nparents} parents")));
        }
        let parents = (0..nparents)
            .map(|_| r.id("parent"))
            .collect::<Result<_, _>>()?;
        let base = if r.flag("fork base")? {
            let repo = r.str(2, "fork base repository")?.to_owned();
            Some(ForkBase {
                repo,
                commit: r.id("fork base commit")?,
            })
        } else {
            None
        };
        let author = *r.id("author")?.as_bytes();
        let time = r.i64("time")?;
        let message = r.str(4, "message")?.to_owned();
        let nextra = usize::from(r.u16("extra header count")?);
        if nextra > MAX_EXTRA {
            return Err(r.invalid(format!("{nextra} extra headers")));
        }
        let mut extra = Vec::with_capacity(nextra);
        for _ in 0..nextra {
            let k = r.str(1, "extra header name")?.to_owned();
            let len = r.u32("extra header length")? as usize;
            extra.push((k, r.bytes(len, "extra header value")?.to_vec()));
        }
        let c = Commit {
            tree,
            parents,
            base,
            author,
            time,
            message,
            extra,
        };
        c.validate().map_err(|reason| r.invalid(reason))?;
        r.finish()?;
        Ok(c)
    }
}
