//! Large plain files as content-defined chunks (FastCDC, 2020 variant).
//!
//! A plain file above [`CHUNKED_ABOVE`] bytes is cut where its content says — 64 KiB apart on
//! average, as Hugging Face's Xet storage does — so that inserting, deleting or editing rows of
//! a dataset moves only the boundaries near the edit, and a new version stores and sends only
//! the chunks around it. Each chunk is a blob; the file is a [`ChunkList`] of them (two levels
//! above [`MAX_CHUNK_ENTRIES`] chunks). Files are read a buffer at a time, and written back a
//! chunk at a time: memory stays bounded whatever a file's size.

use std::io::Read;
use std::path::Path;

use agigit_dag::object::MAX_CHUNK_ENTRIES;
use agigit_dag::{ChunkEntry, ChunkList, Kind, ObjectId};
use rayon::prelude::*;

use crate::error::Error;

/// The smallest chunk (but a file's last).
pub const CHUNK_MIN: usize = 16 << 10;
/// The average chunk the cut points aim at.
pub const CHUNK_AVG: usize = 64 << 10;
/// The largest chunk.
pub const CHUNK_MAX: usize = 256 << 10;
/// Plain, non-executable files larger than this are stored chunked; smaller ones as one blob.
pub const CHUNKED_ABOVE: u64 = 1 << 20;

/// Bytes read at a time: many chunks, hashed in parallel.
const READ_BUF: usize = 16 << 20;

/// Where a chunked file's objects go: stored (`commit`), or only named (`status`).
pub(crate) trait Sink: Sync {
    /// Stores (or only names) an object of `kind` with `body`; returns its id.
    fn put(&self, kind: Kind, body: &[u8]) -> Result<ObjectId, Error>;
}

/// Names objects without storing them.
pub(crate) struct IdOnly;

impl Sink for IdOnly {
    fn put(&self, kind: Kind, body: &[u8]) -> Result<ObjectId, Error> {
        Ok(agigit_dag::object::compute_id(kind, body))
    }
}

/// Stores objects in a store.
pub(crate) struct Store<'a, S: ?Sized>(pub(crate) &'a S);

impl<S: agigit_dag::Write + Sync + ?Sized> Sink for Store<'_, S> {
    fn put(&self, kind: Kind, body: &[u8]) -> Result<ObjectId, Error> {
        Ok(self.0.write_buf(kind, body)?)
    }
}

/// The chunk boundaries of `input`, a buffer at a time: calls `each` with every buffer's
/// complete chunks (the last one, cut short by the buffer's end, waits for the next read).
/// Returns the bytes read. The cut points are those of FastCDC over the whole input at once.
///
/// # Errors
/// Reading `input` (named `path` in the error), or `each`.
pub fn cut_chunks<R: Read>(
    path: &Path,
    mut input: R,
    mut each: impl FnMut(&[u8], &[std::ops::Range<usize>]) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut buf = vec![0u8; READ_BUF];
    let (mut len, mut total, mut eof) = (0usize, 0u64, false);
    let mut cuts = Vec::new();
    loop {
        while !eof && len < buf.len() {
            match input.read(&mut buf[len..]) {
                Ok(0) => eof = true,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(path)(e)),
            }
        }
        let cdc = fastcdc::v2020::FastCDC::new(&buf[..len], CHUNK_MIN, CHUNK_AVG, CHUNK_MAX);
        cuts.clear();
        let mut at = 0;
        // Before the end, only cut where a whole chunk's window is in the buffer: a cut in the
        // last `CHUNK_MAX` bytes might move once the next bytes are read.
        while at < len && (eof || len - at >= CHUNK_MAX) {
            let (_, end) = cdc.cut(at, len - at);
            cuts.push(at..end);
            at = end;
        }
        each(&buf[..len], &cuts)?;
        total += at as u64;
        buf.copy_within(at..len, 0);
        len -= at;
        if eof && len == 0 {
            return Ok(total);
        }
    }
}

/// Builds a file's chunk list as chunks arrive, writing a level 0 list each
/// [`MAX_CHUNK_ENTRIES`] chunks: memory holds one list's entries, whatever the file's size.
struct ListBuilder<'a> {
    sink: &'a dyn Sink,
    /// Entries per list: [`MAX_CHUNK_ENTRIES`] (fewer in tests, to make two levels).
    per_list: usize,
    current: Vec<ChunkEntry>,
    full: Vec<ChunkEntry>,
}

impl ListBuilder<'_> {
    fn push(&mut self, entry: ChunkEntry) -> Result<(), Error> {
        if self.current.len() == self.per_list {
            if self.full.len() == self.per_list {
                let most = (self.per_list as u64).pow(2);
                return Err(Error::Limit {
                    what: "chunks of one file".into(),
                    size: most + 1,
                    limit: most,
                });
            }
            let list = std::mem::take(&mut self.current);
            self.full.push(self.write(0, list)?);
        }
        self.current.push(entry);
        Ok(())
    }

    fn write(&self, level: u8, entries: Vec<ChunkEntry>) -> Result<ChunkEntry, Error> {
        let list = ChunkList::new(level, entries)
            .map_err(|e| Error::Invalid(format!("chunk list: {e}")))?;
        let id = self.sink.put(Kind::Chunks, &list.encode())?;
        Ok(ChunkEntry {
            len: list.total(),
            id,
        })
    }

    fn finish(mut self) -> Result<ObjectId, Error> {
        if self.full.is_empty() {
            let current = std::mem::take(&mut self.current);
            return Ok(self.write(0, current)?.id);
        }
        if !self.current.is_empty() {
            let current = std::mem::take(&mut self.current);
            self.full.push(self.write(0, current)?);
        }
        let full = std::mem::take(&mut self.full);
        Ok(self.write(1, full)?.id)
    }
}

/// Cuts `input` (the file at `path`) into chunks, puts each chunk and the lists into `sink`;
/// returns the file's chunk list id and its length. The chunks of each buffer are hashed in
/// parallel.
///
/// # Errors
/// Reading `input`, or `sink`; a file of no bytes has no chunk list.
pub(crate) fn write_chunked<R: Read>(
    path: &Path,
    input: R,
    sink: &dyn Sink,
) -> Result<(ObjectId, u64), Error> {
    write_lists(path, input, sink, MAX_CHUNK_ENTRIES)
}

fn write_lists<R: Read>(
    path: &Path,
    input: R,
    sink: &dyn Sink,
    per_list: usize,
) -> Result<(ObjectId, u64), Error> {
    let mut list = ListBuilder {
        sink,
        per_list,
        current: Vec::new(),
        full: Vec::new(),
    };
    let len = cut_chunks(path, input, |buf, cuts| {
        let ids: Vec<ObjectId> = cuts
            .par_iter()
            .map(|r| sink.put(Kind::Blob, &buf[r.clone()]))
            .collect::<Result<_, _>>()?;
        for (r, id) in cuts.iter().zip(ids) {
            list.push(ChunkEntry {
                len: r.len() as u64,
                id,
            })?;
        }
        Ok(())
    })?;
    if len == 0 {
        return Err(Error::Invalid(format!(
            "{}: an empty file is not stored chunked",
            path.display()
        )));
    }
    Ok((list.finish()?, len))
}

/// Every chunk of the chunked file `id`, in order, each checked against its length in the list:
/// calls `each` with one chunk's bytes at a time. Returns the bytes given.
///
/// # Errors
/// Store errors; [`Error::Corrupt`] when a chunk or a list is not what its parent says.
pub(crate) fn read_chunked<S: agigit_dag::FindExt + ?Sized>(
    store: &S,
    id: &ObjectId,
    mut each: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<u64, Error> {
    let root = store.find_chunks(id)?;
    let corrupt = |what: String| Error::Corrupt(format!("chunked file {id}: {what}"));
    let mut written = 0u64;
    let mut buf = Vec::new();
    let mut read_list = |list: &ChunkList, written: &mut u64| -> Result<(), Error> {
        for entry in list.entries() {
            let bytes = store.find_blob(&entry.id, &mut buf)?;
            if bytes.len() as u64 != entry.len {
                return Err(corrupt(format!(
                    "chunk {} holds {} bytes, the list says {}",
                    entry.id,
                    bytes.len(),
                    entry.len
                )));
            }
            each(bytes)?;
            *written += entry.len;
        }
        Ok(())
    };
    if root.level() == 0 {
        read_list(&root, &mut written)?;
    } else {
        for entry in root.entries() {
            let list = store.find_chunks(&entry.id)?;
            if list.level() != 0 || list.total() != entry.len {
                return Err(corrupt(format!(
                    "list {} is a level {} list of {} bytes, its parent says level 0 of {}",
                    entry.id,
                    list.level(),
                    list.total(),
                    entry.len
                )));
            }
            read_list(&list, &mut written)?;
        }
    }
    if written != root.total() {
        return Err(corrupt(format!(
            "{written} bytes read, the list says {}",
            root.total()
        )));
    }
    Ok(written)
}

/// The length of the chunked file `id` (its list's total; nothing else is read).
///
/// # Errors
/// Store errors.
pub(crate) fn chunked_len<S: agigit_dag::FindExt + ?Sized>(
    store: &S,
    id: &ObjectId,
) -> Result<u64, Error> {
    Ok(store.find_chunks(id)?.total())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agigit_dag::{FindExt as _, Write as _};

    /// Bytes that look like a dataset: lines of varying length.
    fn lines(n: usize, seed: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = seed | 1;
        for i in 0..n {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            out.extend_from_slice(
                format!(
                    "{{\"id\":{i},\"text\":\"{}\"}}\n",
                    "x".repeat((s % 200) as usize)
                )
                .as_bytes(),
            );
        }
        out
    }

    #[test]
    fn streamed_cuts_are_those_of_the_whole_input() {
        let data = lines(400_000, 7);
        assert!(data.len() > 2 * READ_BUF, "several buffers: {}", data.len());
        let whole: Vec<usize> =
            fastcdc::v2020::FastCDC::new(&data, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX)
                .map(|c| c.offset + c.length)
                .collect();
        let mut streamed = Vec::new();
        let mut base = 0usize;
        // A reader that returns few bytes at a time, as a pipe would.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = out.len().min(self.0.len()).min(100_003);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let total = cut_chunks(Path::new("trickle"), Trickle(&data), |_, cuts| {
            for r in cuts {
                streamed.push(base + r.end);
            }
            base += cuts.last().map_or(0, |r| r.end);
            Ok(())
        })
        .expect("cut");
        assert_eq!(total, data.len() as u64);
        assert_eq!(streamed, whole);
    }

    #[test]
    fn a_file_round_trips_and_an_edit_changes_few_chunks() {
        let store = agigit_dag::MemoryStore::new();
        let data = lines(60_000, 3);
        let path = Path::new("lines.jsonl");
        let (id, len) = write_chunked(path, &data[..], &Store(&store)).expect("write");
        assert_eq!(len, data.len() as u64);
        assert_eq!(write_chunked(path, &data[..], &IdOnly).expect("ids").0, id);
        let mut back = Vec::new();
        read_chunked(&store, &id, |c| {
            back.extend_from_slice(c);
            Ok(())
        })
        .expect("read");
        assert_eq!(back, data);
        // Insert a line in the middle: all but the chunks around it are shared.
        let mut edited = data.clone();
        let mid = edited[data.len() / 2..]
            .iter()
            .position(|&b| b == b'\n')
            .unwrap()
            + data.len() / 2
            + 1;
        edited.splice(
            mid..mid,
            b"{\"id\":-1,\"text\":\"inserted\"}\n".iter().copied(),
        );
        let (edited_id, _) = write_chunked(path, &edited[..], &Store(&store)).expect("write");
        let chunks = |id| store.find_chunks(&id).expect("list").entries().to_vec();
        let (a, b) = (chunks(id), chunks(edited_id));
        let old: std::collections::HashSet<_> = a.iter().map(|e| e.id).collect();
        let new = b.iter().filter(|e| !old.contains(&e.id)).count();
        // The chunk holding the edit, and at most the cuts on either side moving.
        assert!(new <= 3, "{new} of {} chunks new", b.len());
    }

    #[test]
    fn more_chunks_than_one_list_holds_make_two_levels() {
        let store = agigit_dag::MemoryStore::new();
        let data = lines(10_000, 11);
        let path = Path::new("two-levels.jsonl");
        // Five entries a list: ~15 chunks make a level 1 list of a few level 0 lists.
        let (id, len) = write_lists(path, &data[..], &Store(&store), 5).expect("write");
        let root = store.find_chunks(&id).expect("root");
        assert_eq!((root.level(), root.total()), (1, len));
        let mut back = Vec::new();
        read_chunked(&store, &id, |c| {
            back.extend_from_slice(c);
            Ok(())
        })
        .expect("read");
        assert_eq!(back, data);
        assert!(root.entries().len() > 1, "{} lists", root.entries().len());
        // More chunks than two levels of five hold: refused.
        let err = write_lists(path, &lines(100_000, 5)[..], &IdOnly, 5).expect_err("limit");
        assert!(matches!(err, Error::Limit { limit: 25, .. }), "{err}");
    }

    #[test]
    fn a_list_that_lies_about_its_chunks_is_refused() {
        let store = agigit_dag::MemoryStore::new();
        let chunk = store.write_buf(Kind::Blob, b"twelve bytes").expect("chunk");
        let entry = |len| ChunkEntry { len, id: chunk };
        // A chunk shorter than the list says.
        let list = ChunkList::new(0, vec![entry(12), entry(13)]).expect("list");
        let id = store.write_buf(Kind::Chunks, &list.encode()).expect("list");
        let err = read_chunked(&store, &id, |_| Ok(())).expect_err("lie");
        assert!(
            err.to_string().contains("holds 12 bytes, the list says 13"),
            "{err}"
        );
        // A level 1 entry whose list is not the size its parent says.
        let inner = ChunkList::new(0, vec![entry(12)]).expect("inner");
        let inner_id = store
            .write_buf(Kind::Chunks, &inner.encode())
            .expect("inner");
        let outer = ChunkList::new(
            1,
            vec![ChunkEntry {
                len: 24,
                id: inner_id,
            }],
        )
        .expect("outer");
        let id = store
            .write_buf(Kind::Chunks, &outer.encode())
            .expect("outer");
        let err = read_chunked(&store, &id, |_| Ok(())).expect_err("lie");
        assert!(
            err.to_string().contains("its parent says level 0 of 24"),
            "{err}"
        );
        // A level 1 entry naming a level 1 list (a loop of lists, or depth beyond two).
        let id2 = store
            .write_buf(
                Kind::Chunks,
                &ChunkList::new(1, vec![ChunkEntry { len: 24, id }])
                    .expect("l")
                    .encode(),
            )
            .expect("l");
        assert!(read_chunked(&store, &id2, |_| Ok(())).is_err());
    }
}
