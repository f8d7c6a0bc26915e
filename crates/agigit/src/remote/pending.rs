//! Packs a push has written and not finished sending, kept under `.agigit/push/` until the push
//! that made them has published its state. Pushing again after an interruption (a crash, a
//! kill, servers that went away) finds its pack there and sends the same shards — a private
//! pack's sealing is random, so writing it again would change every shard — asking each server
//! first whether it has the shard already, so that what landed is not sent again.
//!
//! A pending pack is named by what it holds (the object ids, and for a private repository its
//! keyring), written as `<key>.partial` and renamed to `<key>.pack` when whole, with
//! `<key>.sum` beside it giving its length and CRC-32: a pack that does not match its sum (a
//! crash of the machine before the page cache reached the disk) is written again. The sum
//! guards against a torn file, not an adversary (whoever can write `.agigit/` can write the
//! sum too, and every receiver checks every object against its id), so it is a checksum at
//! memory speed rather than a second SHA-256 over every pack a push sends.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agigit_dag::ObjectId;
use agigit_hash::{BlobHash, Hasher};

use super::transfer::cpu;
use crate::error::Error;
use crate::private::PrivateKeys;
use crate::repository::Repository;

/// Pending packs no push has touched for this long are removed by the next push that
/// completes.
const STALE_AFTER: Duration = Duration::from_secs(14 * 24 * 3600);

/// A pack on disk, ready to send.
#[derive(Debug)]
pub(super) struct PendingPack {
    /// The file.
    pub(super) path: PathBuf,
    /// Its length.
    pub(super) len: u64,
    /// An interrupted push left it: ask the servers before sending each shard.
    pub(super) resumed: bool,
}

impl PendingPack {
    /// The file and its sum.
    fn files(&self) -> [PathBuf; 2] {
        [self.path.clone(), self.path.with_extension("sum")]
    }
}

/// Writes a pack into a writer on the file at the path given (for its errors).
pub(super) type WritePack = dyn FnOnce(&mut dyn std::io::Write, &Path) -> Result<(), Error> + Send;

impl Repository {
    fn pending_dir(&self) -> PathBuf {
        self.root().join(crate::worktree::DOT_DIR).join("push")
    }

    /// The pending pack of `objects` (sealed under `keys`): the whole one an interrupted push
    /// left, or a new one that `write` fills on a thread of its own while the caller reads,
    /// codes and sends the segments written so far ([`PackFile::segments`]). `expected` is the
    /// length the pack will have (from the objects' stored headers); a pack that comes out
    /// otherwise fails the push at [`PackFile::finish`]. Checking an old pack's sum runs on the
    /// CPU pool.
    pub(super) async fn start_pending_pack(
        &self,
        objects: &[(agigit_dag::Kind, ObjectId)],
        keys: Option<&PrivateKeys>,
        expected: u64,
        segment_size: u64,
        write: Box<WritePack>,
    ) -> Result<PackFile, Error> {
        let dir = self.pending_dir();
        let key = pending_key(objects, keys);
        let path = dir.join(format!("{key}.pack"));
        let opened = cpu(move || -> Result<_, Error> {
            std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
            if let Some(len) = whole(&path) {
                let file = std::fs::File::open(&path).map_err(Error::io(&path))?;
                return Ok((path, len, file, None));
            }
            let partial = path.with_extension("partial");
            let out = std::fs::File::create(&partial).map_err(Error::io(&partial))?;
            let file = std::fs::File::open(&partial).map_err(Error::io(&partial))?;
            Ok((path, expected, file, Some((partial, out))))
        })
        .await??;
        let (path, len, file, writing) = opened;
        let count = usize::try_from(len.div_ceil(segment_size.max(1)))
            .map_err(|_| Error::Invalid("the pack has too many segments".into()))?;
        let mut pack = PackFile {
            pack: PendingPack {
                path,
                len,
                resumed: writing.is_none(),
            },
            file: Arc::new(file),
            segment_size: segment_size.max(1),
            count,
            written: None,
            done: None,
        };
        if let Some((partial, out)) = writing {
            let paths = (partial, pack.pack.path.clone());
            let (written, done) = spawn_writer(out, paths, expected, segment_size, write)?;
            (pack.written, pack.done) = (Some(written), Some(done));
        }
        Ok(pack)
    }

    /// The push that sent `packs` has published its state: they are no longer pending, nor are
    /// packs no push has touched for two weeks.
    pub(super) fn finish_pending(&self, packs: &[PendingPack]) {
        for file in packs.iter().flat_map(PendingPack::files) {
            let _ = std::fs::remove_file(file);
        }
        let Ok(entries) = std::fs::read_dir(self.pending_dir()) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_AFTER);
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// A pending pack being sent: read from while it is written (or whole, left by an
/// interrupted push).
pub(super) struct PackFile {
    pack: PendingPack,
    /// The pack, open for reading (the handle stays valid across the rename that ends its
    /// writing).
    pub(super) file: Arc<std::fs::File>,
    /// The size of its segments (the last may be shorter).
    segment_size: u64,
    /// Its segments.
    count: usize,
    /// While it is being written: the bytes in the file so far, at each segment's end.
    written: Option<futures_channel::mpsc::UnboundedReceiver<u64>>,
    /// While it is being written: the writer's outcome.
    done: Option<WriterOutcome>,
}

/// What the writer gives back: how long the writing took, or why it failed.
type WriterOutcome =
    futures_channel::oneshot::Receiver<std::thread::Result<Result<Duration, Error>>>;

impl PackFile {
    /// The pack's length, its path and whether an interrupted push left it.
    pub(super) fn pack(&self) -> &PendingPack {
        &self.pack
    }

    /// How many segments it has.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// The indices of its segments, in order, each as soon as all its bytes are in the file.
    /// Ends early when the writer fails: [`finish`](Self::finish) says why.
    pub(super) fn segments(&mut self) -> futures_util::stream::BoxStream<'static, usize> {
        use futures_util::StreamExt as _;
        let (count, len, step) = (self.count, self.pack.len, self.segment_size);
        let written = self.written.take();
        let ready_all = written.is_none();
        futures_util::stream::unfold(
            (written, 0usize, if ready_all { count } else { 0 }),
            move |(mut written, next, mut ready)| async move {
                if next >= count {
                    return None;
                }
                while next >= ready {
                    let at = written.as_mut()?.next().await?;
                    ready = if at >= len {
                        count
                    } else {
                        usize::try_from(at / step).unwrap_or(count).min(count)
                    };
                }
                Some((next, (written, next + 1, ready)))
            },
        )
        .boxed()
    }

    /// Waits for the writer (at once for a pack that was whole); the pack, whole, and how long
    /// its writing took (reading and checking each object, sealing, hashing, writing) — or why
    /// it is not whole.
    pub(super) async fn finish(self) -> Result<(PendingPack, Duration), Error> {
        let mut took = Duration::ZERO;
        if let Some(done) = self.done {
            match done.await {
                Ok(Ok(result)) => took = result?,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(futures_channel::oneshot::Canceled) => {
                    return Err(Error::Internal("the pack writer stopped without an answer"));
                }
            }
        }
        Ok((self.pack, took))
    }
}

/// Starts the thread that writes a new pending pack by `write` into `out`, the file at
/// `partial` (renamed to `path` when whole): the bytes in the file so far, sent at each
/// `segment_size` and once more when all `expected` bytes are there, and the thread's outcome.
fn spawn_writer(
    out: std::fs::File,
    (partial, path): (PathBuf, PathBuf),
    expected: u64,
    segment_size: u64,
    write: Box<WritePack>,
) -> Result<(futures_channel::mpsc::UnboundedReceiver<u64>, WriterOutcome), Error> {
    let (tx, written) = futures_channel::mpsc::unbounded();
    let (finished, done) = futures_channel::oneshot::channel();
    let step = segment_size.max(1);
    std::thread::Builder::new()
        .name("agigit-pack".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let started = std::time::Instant::now();
                let out = Watermark {
                    inner: out,
                    written: 0,
                    step,
                    next: step,
                    tx: tx.clone(),
                };
                let len = write_whole(out, &partial, &path, write, |len| {
                    // Everything is in the file: the last segment may be read.
                    let _ = tx.unbounded_send(len);
                })?;
                if len != expected {
                    return Err(Error::Internal(
                        "a pack came out another length than its objects' headers give",
                    ));
                }
                Ok(started.elapsed())
            }));
            // Nobody listens when the push was dropped; the pack is whole for the next.
            let _ = finished.send(outcome);
        })
        .map_err(|e| Error::Io {
            path: "agigit-pack thread".into(),
            source: e,
        })?;
    Ok((written, done))
}

/// `len` bytes of `file` (at `path`, for errors) from `offset`.
pub(super) fn read_at(
    file: &std::fs::File,
    path: &Path,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, Error> {
    let mut data = vec![0u8; len];
    read_exact_at(file, &mut data, offset).map_err(Error::io(path))?;
    Ok(data)
}

#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &std::fs::File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes a new pending pack into `out` (the file at `partial`) by `write`, hashing it; calls
/// `flushed` with its length once all of it is in the file; then renames it to `path` and
/// writes its sum beside it. Returns its length.
fn write_whole(
    out: impl std::io::Write,
    partial: &Path,
    path: &Path,
    write: Box<WritePack>,
    flushed: impl FnOnce(u64),
) -> Result<u64, Error> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, Summed::new(out));
    write(&mut out, partial)?;
    out.flush().map_err(Error::io(partial))?;
    let summed = out
        .into_inner()
        .map_err(|e| Error::io(partial)(e.into_error()))?;
    let len = summed.len;
    flushed(len);
    std::fs::rename(partial, path).map_err(Error::io(path))?;
    let sum_path = path.with_extension("sum");
    let tmp = path.with_extension("sum.partial");
    std::fs::write(&tmp, sum_line(len, summed.crc.finalize())).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, &sum_path).map_err(Error::io(&sum_path))?;
    Ok(len)
}

/// The sum file's line for a pack of `len` bytes with CRC-32 `crc`.
fn sum_line(len: u64, crc: u32) -> String {
    format!("{len} crc32:{crc:08x}\n")
}

/// A writer that sums what its inner writer took.
struct Summed<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W> Summed<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }
}

impl<W: std::io::Write> std::io::Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that says, each time the bytes written pass a multiple of `step`, how many are
/// written (in the file below it, readable).
struct Watermark<W> {
    inner: W,
    written: u64,
    step: u64,
    next: u64,
    tx: futures_channel::mpsc::UnboundedSender<u64>,
}

impl<W: std::io::Write> std::io::Write for Watermark<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if self.written >= self.next {
            // The receiver is gone when the push was dropped: the pack is still finished.
            let _ = self.tx.unbounded_send(self.written);
            self.next = (self.written / self.step + 1).saturating_mul(self.step);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What names a pending pack: its objects in order and, for a private repository, its keyring
/// (readers added since make another pack).
fn pending_key(objects: &[(agigit_dag::Kind, ObjectId)], keys: Option<&PrivateKeys>) -> BlobHash {
    let mut h = Hasher::new();
    h.update(b"agigit pending pack 1\n");
    for (kind, id) in objects {
        h.update(kind.as_str().as_bytes());
        h.update(id.as_bytes());
    }
    if let Some(k) = keys {
        h.update(b"sealed\n");
        h.update(&k.envelope_bytes());
    }
    BlobHash::from_bytes(h.finalize())
}

/// The length of the pack at `path` when it is whole (its length and CRC-32 match its sum
/// file); otherwise it and its sum are removed (a sum in an older format too: the pack is
/// written again).
fn whole(path: &Path) -> Option<u64> {
    let sum_path = path.with_extension("sum");
    let check = || -> Option<u64> {
        let text = std::fs::read_to_string(&sum_path).ok()?;
        let (len, sum) = text.trim().split_once(' ')?;
        let sum = sum.strip_prefix("crc32:").filter(|s| s.len() == 8)?;
        let (len, sum): (u64, u32) = (len.parse().ok()?, u32::from_str_radix(sum, 16).ok()?);
        let mut file = std::fs::File::open(path).ok()?;
        if file.metadata().ok()?.len() != len {
            return None;
        }
        let mut summed = Summed::new(std::io::sink());
        std::io::copy(&mut file, &mut summed).ok()?;
        (summed.len == len && summed.crc.finalize() == sum).then_some(len)
    };
    let found = check();
    if found.is_none() {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(&sum_path);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_pack_that_does_not_match_its_sum_is_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("p.pack");
        let sum = path.with_extension("sum");
        std::fs::write(&path, b"a whole pack").unwrap();
        std::fs::write(&sum, sum_line(12, crc32fast::hash(b"a whole pack"))).unwrap();
        assert_eq!(whole(&path), Some(12));
        // The same length, other bytes (what a crash of the machine can leave).
        std::fs::write(&path, b"a whale pack").unwrap();
        assert_eq!(whole(&path), None);
        assert!(!path.exists() && !sum.exists());
        // No sum: never finished.
        std::fs::write(&path, b"a whole pack").unwrap();
        assert_eq!(whole(&path), None);
        // A sum in the format before (SHA-256): written again, never trusted.
        std::fs::write(&path, b"a whole pack").unwrap();
        let old = BlobHash::digest(b"a whole pack");
        std::fs::write(&sum, format!("12 {old}\n")).unwrap();
        assert_eq!(whole(&path), None);
        assert!(!path.exists() && !sum.exists());
    }

    /// A pack being written, as [`Repository::start_pending_pack`] makes it, written by `write`.
    fn writing(dir: &Path, expected: u64, step: u64, write: Box<WritePack>) -> PackFile {
        let (partial, path) = (dir.join("p.partial"), dir.join("p.pack"));
        let out = std::fs::File::create(&partial).unwrap();
        let file = std::fs::File::open(&partial).unwrap();
        let (written, done) =
            spawn_writer(out, (partial, path.clone()), expected, step, write).unwrap();
        PackFile {
            pack: PendingPack {
                path,
                len: expected,
                resumed: false,
            },
            file: Arc::new(file),
            segment_size: step,
            count: usize::try_from(expected.div_ceil(step)).unwrap(),
            written: Some(written),
            done: Some(done),
        }
    }

    /// Reads each segment the pack hands out the moment it hands it out.
    fn read_all(pack: &mut PackFile) -> (Vec<usize>, Vec<u8>) {
        use futures_util::StreamExt as _;
        let step = pack.segment_size;
        let (file, path, len) = (
            Arc::clone(&pack.file),
            pack.pack.path.clone(),
            pack.pack.len,
        );
        let read = pack.segments().map(|i| {
            let offset = i as u64 * step;
            let n = usize::try_from((len - offset).min(step)).unwrap();
            (i, read_at(&file, &path, offset, n).unwrap())
        });
        let segments: Vec<(usize, Vec<u8>)> = block_on(read.collect());
        let indices = segments.iter().map(|(i, _)| *i).collect();
        (indices, segments.into_iter().flat_map(|(_, b)| b).collect())
    }

    #[test]
    fn segments_are_handed_out_as_they_are_written_and_read_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // 10 000 bytes in uneven writes, slowly, in segments of 1 024: the reader must never
        // get a segment before all of it is in the file.
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let expected = data.clone();
        let mut pack = writing(
            dir,
            data.len() as u64,
            1024,
            Box::new(move |out, _| {
                for piece in data.chunks(777) {
                    out.write_all(piece).unwrap();
                    out.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            }),
        );
        let (indices, bytes) = read_all(&mut pack);
        assert_eq!(indices, (0..10).collect::<Vec<_>>());
        assert_eq!(bytes, expected);
        let (done, _) = block_on(pack.finish()).unwrap();
        // Whole and summed: the next push would take it as it is.
        assert_eq!(whole(&done.path), Some(10_000));
    }

    #[test]
    fn a_failed_or_miscounted_pack_fails_the_push_and_is_never_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // The writer fails after 2.5 segments: only the two whole ones are handed out.
        let mut pack = writing(
            dir,
            4096,
            1024,
            Box::new(|out, path| {
                out.write_all(&[1u8; 2560]).unwrap();
                out.flush().unwrap();
                Err(Error::io(path)(std::io::Error::other(
                    "the store went away",
                )))
            }),
        );
        let (indices, _) = read_all(&mut pack);
        assert_eq!(indices, vec![0, 1]);
        let err = block_on(pack.finish()).unwrap_err();
        assert!(err.to_string().contains("the store went away"), "{err}");
        assert_eq!(whole(&dir.join("p.pack")), None);

        // Shorter than its headers said: the last segment is never handed out, and the push
        // fails.
        let mut pack = writing(
            dir,
            4096,
            1024,
            Box::new(|out, _| {
                out.write_all(&[2u8; 4000]).unwrap();
                Ok(())
            }),
        );
        let (indices, _) = read_all(&mut pack);
        assert_eq!(indices, vec![0, 1, 2]);
        let err = block_on(pack.finish()).unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{err}");
    }
}
