//! A stateful target: random sequences of writes (whole, streamed short or long), reads,
//! lookups and on-disk corruption against the filesystem store, checked after every step
//! against a map of what should be there.
#![no_main]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use std::io;
use std::path::Path;
use std::sync::Arc;

use agigit_dag::ObjectId;
use agigit_dag::object::{Kind, compute_id};
use agigit_dag::store::io_backend::{Io, StdIo, SyncWrite};
use agigit_dag::store::{Find, FsStore, StoreError, Write};
use libfuzzer_sys::fuzz_target;

/// The real file system without `fsync`: durability is not what this target checks, and syncing
/// would cut its speed a hundredfold.
#[derive(Debug)]
struct NoSync;

struct Unsynced(std::fs::File);

impl io::Write for Unsynced {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SyncWrite for Unsynced {
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Io for NoSync {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SyncWrite>> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(Unsynced(f)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdIo.remove_file(path)
    }
    fn read_into(&self, path: &Path, buf: &mut Vec<u8>) -> io::Result<bool> {
        StdIo.read_into(path, buf)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdIo.create_dir_all(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        StdIo.exists(path)
    }
}

static RUN: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!(
        "agigit-fuzz-store-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let store = FsStore::with_io(&dir, Arc::new(NoSync)).expect("open store");
    let mut model: HashMap<ObjectId, (Kind, Vec<u8>)> = HashMap::new();
    let mut ids: Vec<ObjectId> = Vec::new();
    let mut buf = Vec::new();
    let mut input = data.iter().copied();
    let kinds = [Kind::Blob, Kind::Tensor, Kind::Tree, Kind::Commit];
    while let Some(op) = input.next() {
        let len = usize::from(input.next().unwrap_or(0)) * 7;
        let body: Vec<u8> = (0..len).map(|i| input.next().unwrap_or(i as u8)).collect();
        let kind = kinds[usize::from(op >> 4) % kinds.len()];
        match op % 6 {
            // Write a whole object.
            0 | 1 => {
                let id = store.write_buf(kind, &body).expect("write");
                assert_eq!(id, compute_id(kind, &body));
                model.insert(id, (kind, body));
                ids.push(id);
            }
            // A source shorter than declared stores nothing.
            2 => {
                let declared = body.len() as u64 + 1;
                let r = store.write_stream(kind, declared, &mut &body[..]);
                assert!(matches!(r, Err(StoreError::SizeMismatch { .. })));
            }
            // Read back a known object, or an unknown one.
            3 => {
                let id = ids
                    .get(len % ids.len().max(1))
                    .copied()
                    .unwrap_or_else(|| compute_id(kind, &body));
                match (store.try_find(&id, &mut buf), model.get(&id)) {
                    (Ok(Some(o)), Some((k, b))) => assert!(o.kind == *k && o.data == b.as_slice()),
                    (Ok(None), None) => {}
                    (got, want) => panic!("store says {got:?}, model {want:?}"),
                }
            }
            // Corrupt a stored file: reading it must fail, never return other bytes.
            4 => {
                if let Some(&id) = ids.get(len % ids.len().max(1)) {
                    if model.contains_key(&id) {
                        let path = store.path_of(&id);
                        let mut bytes = std::fs::read(&path).expect("read object file");
                        let i = len % bytes.len();
                        bytes[i] ^= 1 + (op | 1);
                        std::fs::write(&path, &bytes).expect("corrupt");
                        assert!(matches!(
                            store.try_find(&id, &mut buf),
                            Err(StoreError::Corrupt { .. })
                        ));
                        // Rewriting the object repairs nothing (it exists); remove it from the
                        // model and the disk.
                        std::fs::remove_file(&path).expect("remove");
                        model.remove(&id);
                    }
                }
            }
            // Contains agrees with the model.
            _ => {
                for id in ids.iter().take(8) {
                    assert_eq!(
                        store.contains(id).expect("contains"),
                        model.contains_key(id)
                    );
                }
            }
        }
    }
    for (id, (kind, body)) in &model {
        let o = store
            .try_find(id, &mut buf)
            .expect("read")
            .expect("present");
        assert!(o.kind == *kind && o.data == body.as_slice());
    }
    let _ = std::fs::remove_dir_all(&dir);
});
