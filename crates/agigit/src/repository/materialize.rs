//! A stored file's bytes, materialized and checked: written into the working directory
//! (atomically, renamed into place only when every byte checked) or handed to a reader.

use std::path::Path;

use agigit_dag::{FindExt, ObjectId};

use crate::error::Error;
use crate::repository::Repository;
use crate::repository::tensor::Loaded;
use crate::worktree::{self, FileSource};

impl Repository {
    /// Writes one file from its source, verified; returns the bytes written.
    pub(crate) fn write_source(&self, path: &Path, source: &FileSource) -> Result<u64, Error> {
        let executable = matches!(
            source,
            FileSource::Blob {
                executable: true,
                ..
            }
        );
        let mut written = 0u64;
        worktree::write_atomic(path, executable, |f| {
            let mut out = worktree::EarlySync::new(f, path);
            // The file is renamed into place only when every byte checked: a tensor's bytes
            // may be written while they are hashed.
            written =
                self.stream_source_with(source, Checks::BesideTheWrite, |data| out.write(data))?;
            out.wait()
        })?;
        Ok(written)
    }

    /// Hands a stored file's bytes to `sink` in order, every object checked against its id
    /// (a blob, each chunk, each tensor's materialized bytes) before its bytes are handed
    /// over; returns the bytes handed over. Memory holds one blob, one chunk, or two batches
    /// of tensors.
    pub(crate) fn stream_source(
        &self,
        source: &FileSource,
        sink: impl FnMut(&[u8]) -> Result<(), Error> + Send,
    ) -> Result<u64, Error> {
        self.stream_source_with(source, Checks::BeforeTheWrite, sink)
    }

    /// [`stream_source`](Self::stream_source), with a tensor's bytes checked before they are
    /// handed over or beside it, as `checks` says.
    fn stream_source_with(
        &self,
        source: &FileSource,
        checks: Checks,
        mut sink: impl FnMut(&[u8]) -> Result<(), Error> + Send,
    ) -> Result<u64, Error> {
        match source {
            FileSource::Blob { id, .. } => {
                let mut buf = Vec::new();
                // `find_blob` checks the blob against its id.
                let bytes = self.store().find_blob(id, &mut buf)?;
                sink(bytes)?;
                Ok(bytes.len() as u64)
            }
            // One chunk in memory at a time, each checked against its id and the list.
            FileSource::Chunked(id) => worktree::read_chunked(self.store(), id, sink),
            FileSource::Safetensors(tree) => {
                let worktree::SafetensorsLayout {
                    header,
                    tensors,
                    lens,
                } = worktree::safetensors_layout(self.store(), tree)?;
                sink(&header)?;
                Ok(header.len() as u64 + self.write_tensors(&tensors, &lens, checks, sink)?)
            }
        }
    }

    /// Materializes `tensors` (names and objects, in file order, of `lens` bytes) and hands
    /// each one's bytes to `write`, in order; returns the bytes written. Reading (and decoding
    /// a delta) runs on the CPU pool, a batch of tensors at once, beside the write of the batch
    /// before; hashing a dense tensor (the most of the work: one hash over every byte) runs
    /// beside its own write with [`Checks::BesideTheWrite`], before it otherwise. Memory holds
    /// two batches: each at most [`CHECKOUT_BATCH`] bytes, or one tensor larger than that.
    fn write_tensors(
        &self,
        tensors: &[(String, ObjectId)],
        lens: &[u64],
        checks: Checks,
        mut write: impl FnMut(&[u8]) -> Result<(), Error> + Send,
    ) -> Result<u64, Error> {
        use rayon::prelude::*;
        let batches = batches(lens, CHECKOUT_BATCH, rayon::current_num_threads().max(2));
        let load = |range: std::ops::Range<usize>| -> Result<Vec<Loaded>, Error> {
            tensors[range]
                .par_iter()
                .map(|(name, id)| self.load_tensor(name, id))
                .collect()
        };
        let verify = |loaded: &[Loaded]| -> Result<(), Error> {
            loaded.par_iter().try_for_each(Loaded::verify)
        };
        let mut write_all = |loaded: &[Loaded]| -> Result<u64, Error> {
            let mut n = 0u64;
            for data in loaded.iter().map(Loaded::bytes) {
                write(data)?;
                n += data.len() as u64;
            }
            Ok(n)
        };
        // The batch loaded before: checked and written, beside the next one's loading.
        let mut finish = |ready: &[Loaded]| -> Result<u64, Error> {
            match checks {
                Checks::BeforeTheWrite => {
                    verify(ready)?;
                    write_all(ready)
                }
                Checks::BesideTheWrite => {
                    let (wrote, checked) = rayon::join(|| write_all(ready), || verify(ready));
                    checked?;
                    wrote
                }
            }
        };
        let (mut written, mut ready) = (0u64, Vec::new());
        for range in batches {
            let (next, wrote) = rayon::join(|| load(range), || finish(&ready));
            written += wrote?;
            ready = next?;
        }
        Ok(written + finish(&ready)?)
    }
}

/// When a tensor's bytes are checked against their digest, relative to handing them over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checks {
    /// Before: whoever takes the bytes may use them at once.
    BeforeTheWrite,
    /// Beside: the taker keeps them aside until the whole file has checked (a checkout's
    /// temporary file, renamed into place only then).
    BesideTheWrite,
}

/// The bytes of tensors a checkout decodes at once (a larger tensor goes alone).
const CHECKOUT_BATCH: u64 = 128 << 20;

/// Consecutive ranges of `sizes`, each at most `budget` bytes in all (a larger item alone) and
/// at most `count` items.
fn batches(sizes: &[u64], budget: u64, count: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut total) = (0, 0u64);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (total.saturating_add(size) > budget || i - start >= count) {
            out.push(start..i);
            (start, total) = (i, 0);
        }
        total = total.saturating_add(size);
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::batches;

    #[test]
    fn batches_keep_order_and_bounds() {
        // Budget 10 bytes, at most 3 items: a larger item goes alone, nothing is dropped.
        let sizes = [4, 4, 4, 20, 1, 1, 1, 1, 0, 9];
        let got = batches(&sizes, 10, 3);
        assert_eq!(got, vec![0..2, 2..3, 3..4, 4..7, 7..10]);
        let covered: Vec<usize> = got.iter().flat_map(Clone::clone).collect();
        assert_eq!(covered, (0..sizes.len()).collect::<Vec<_>>());
        for r in &got {
            let total: u64 = sizes[r.clone()].iter().sum();
            assert!(r.len() <= 3 && (total <= 10 || r.len() == 1), "{r:?}");
        }
        assert!(batches(&[], 10, 3).is_empty());
        assert_eq!(batches(&[u64::MAX, u64::MAX], 10, 3), vec![0..1, 1..2]);
    }
}
