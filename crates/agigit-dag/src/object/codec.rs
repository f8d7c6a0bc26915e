//! Little-endian field readers and writers shared by the body codecs.

use agigit_hash::ObjectId;

use super::{BODY_VERSION, DecodeError, Kind};

pub(crate) struct Reader<'a> {
    kind: Kind,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over a body, after checking its version byte.
    pub(crate) fn new(kind: Kind, buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { kind, buf, pos: 0 };
        let version = r.u8("version")?;
        if version != BODY_VERSION {
            return Err(DecodeError::Version { kind, version });
        }
        Ok(r)
    }

    pub(crate) fn invalid(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::Invalid {
            kind: self.kind,
            reason: reason.into(),
        }
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(DecodeError::Truncated {
            kind: self.kind,
            what,
        })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.bytes(N, what)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn id(&mut self, what: &'static str) -> Result<ObjectId, DecodeError> {
        Ok(ObjectId::from_bytes(self.array(what)?))
    }

    pub(crate) fn flag(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.invalid(format!("{what} flag is {other}, expected 0 or 1"))),
        }
    }

    /// A UTF-8 string whose length is a `u8`, `u16` or `u32` (by `width`).
    pub(crate) fn str(&mut self, width: u8, what: &'static str) -> Result<&'a str, DecodeError> {
        let len = match width {
            1 => usize::from(self.u8(what)?),
            2 => usize::from(self.u16(what)?),
            _ => self.u32(what)? as usize,
        };
        let bytes = self.bytes(len, what)?;
        std::str::from_utf8(bytes).map_err(|_| self.invalid(format!("{what} is not UTF-8")))
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            count => Err(DecodeError::Trailing {
                kind: self.kind,
                count,
            }),
        }
    }
}

/// Appends a string with a length prefix of `width` bytes. Callers validate lengths first.
#[allow(
    clippy::cast_possible_truncation,
    reason = "lengths are validated by the callers"
)]
pub(crate) fn put_str(out: &mut Vec<u8>, width: u8, s: &str) {
    match width {
        1 => out.push(s.len() as u8),
        2 => out.extend_from_slice(&(s.len() as u16).to_le_bytes()),
        _ => out.extend_from_slice(&(s.len() as u32).to_le_bytes()),
    }
    out.extend_from_slice(s.as_bytes());
}
